/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the decoder of Istio's certificate response
 * (tunnel/istio_pb.h): a gRPC response body as a CA (or anyone between)
 * could send it. Checks the contract: on success a NUL-terminated PEM text
 * of at most the input's length plus one newline per element and the NUL,
 * with no NUL inside; on failure no output and a message. Aborts on a
 * broken invariant; memory errors are caught by ASan/UBSan.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/istio_pb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256] = "", *pem = (char *)1;
	int ret = istiopb_response(data, size, &pem, err, sizeof(err));

	if (ret == 0) {
		size_t n = strlen(pem);

		if (!n || n > 2 * size || pem[n - 1] != '\n')
			abort();
		free(pem);
	} else if (pem || !err[0] || !memchr(err, 0, sizeof(err))) {
		abort();
	}
	return 0;
}
