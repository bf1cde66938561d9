/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: arbitrary bytes as a warren-ca request. The first byte
 * picks what they are: a request body for casign_parse (JSON holding a
 * CSR), a bare PEM CSR for csr_check, or an HTTP head whose Authorization
 * field http_header looks up; an accepted CSR is then signed, as warren-ca
 * does. Must never crash, leak or trip a sanitizer; errors are expected.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "ca/sign.h"
#include "tunnel/ca.h"
#include "tunnel/csr.h"
#include "tunnel/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mesh_ca *ca;
	struct spiffe_id id;
	struct http_request req;
	EVP_PKEY *pub = NULL;
	const char *p = (const char *)data + 1, *v;
	char err[256], *body = NULL;
	size_t n = size ? size - 1 : 0, vlen;
	int hl;

	if (!size)
		return 0;
	if (!ca && ca_create_root("fuzz", "fuzz root", 1, &ca))
		abort();
	switch (data[0] % 3) {
	case 0:
		if (casign_parse(p, n, "cluster.local", &id, &pub, err, sizeof(err)) == 0 &&
		    casign_answer(ca, &id, pub, 3600, &body, err, sizeof(err)) == 0)
			free(body);
		break;
	case 1:
		if (csr_check(p, n, "cluster.local", &id, &pub, err, sizeof(err)) == 0 &&
		    casign_answer(ca, &id, pub, 3600, &body, err, sizeof(err)) == 0)
			free(body);
		break;
	default:
		hl = http_parse_request(p, n, &req);
		if (hl > 0)
			(void)http_header(p, (size_t)hl, "Authorization", &v, &vlen);
		break;
	}
	EVP_PKEY_free(pub);
	return 0;
}
