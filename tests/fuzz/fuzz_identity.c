/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the certificate-identity code: the input is a DER
 * certificate as a peer could present it, and spiffe_id_from_cert()
 * (tunnel/ca.h, what tunnel/tls.c uses for a peer's identity) extracts
 * its SPIFFE ID. Checks the contract: an identity is a NUL-terminated
 * "spiffe://" URI that fits the buffer, found among at least one URI SAN;
 * a buffer too small never overflows. Aborts on a broken invariant;
 * memory errors are caught by ASan/UBSan.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "tunnel/ca.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *p = data;
	char id[SPIFFE_ID_MAX], small[16];
	X509 *cert = d2i_X509(NULL, &p, (long)size);
	int nuri = -1;

	if (!cert) {
		ERR_clear_error(); /* the queue would grow with every bad input */
		return 0;
	}
	memset(id, 'x', sizeof(id));
	if (spiffe_id_from_cert(cert, id, sizeof(id), &nuri) == 0) {
		if (!memchr(id, 0, sizeof(id)) || strncmp(id, "spiffe://", 9) || nuri < 1)
			abort();
	}
	memset(small, 'x', sizeof(small));
	if (spiffe_id_from_cert(cert, small, sizeof(small), NULL) == 0 && !memchr(small, 0, sizeof(small)))
		abort();
	X509_free(cert);
	ERR_clear_error();
	return 0;
}
