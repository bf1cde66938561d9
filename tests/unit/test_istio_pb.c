/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Istio's certificate messages (tunnel/istio_pb.h): the request's bytes
 * field by field, and the response decoder on a well-formed answer (with
 * fields it does not know) and on each kind of malformed one.
 * (tests/netns/test_ca_istio.sh checks both against Go's grpc and
 * istio.io/api.)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/istio_pb.h"
#include "t.h"

static void test_request_bytes(void)
{
	static const uint8_t want[] = {
		0, 0, 0, 0, 43,                 /* gRPC prefix: not compressed, 43 bytes */
		0x0a, 3, 'c', 's', 'r',         /* csr = 1 */
		0x18, 0x90, 0x1c,               /* validity_duration = 3: 3600 */
		0x22, 33,                       /* metadata = 4 (Struct) */
		0x0a, 31,                       /* fields = 1 (map entry) */
		0x0a, 20, 'I', 'm', 'p', 'e', 'r', 's', 'o', 'n', 'a', 't', 'e', 'd',
		'I', 'd', 'e', 'n', 't', 'i', 't', 'y', /* key = 1 */
		0x12, 7, 0x1a, 5, 's', 'p', 'i', 'f', 'f', /* value = 2: string_value = 3 */
	};
	uint8_t *out = NULL;
	size_t len = 0;

	T_ASSERT_INT(istiopb_request("csr", 3600, "spiff", &out, &len), 0);
	T_ASSERT_INT(len, sizeof(want));
	T_ASSERT(!memcmp(out, want, len));
	free(out);
	T_ASSERT_INT(istiopb_request("csr", 3600, NULL, &out, &len), 0);
	T_ASSERT_INT(len, 5 + 5 + 3);
	T_ASSERT_INT(out[4], 8);
	free(out);
}

static size_t frame(uint8_t *buf, const uint8_t *msg, size_t n)
{
	buf[0] = 0;
	buf[1] = buf[2] = 0;
	buf[3] = (uint8_t)(n >> 8);
	buf[4] = (uint8_t)n;
	memcpy(buf + 5, msg, n);
	return n + 5;
}

static void test_response(void)
{
	static const uint8_t ok[] = {
		0x0a, 4, 'l', 'e', 'a', 'f',       /* cert_chain: "leaf" */
		0x10, 0x96, 0x01,                  /* unknown varint field 2 */
		0x1d, 1, 2, 3, 4,                  /* unknown fixed32 field 3 */
		0x21, 1, 2, 3, 4, 5, 6, 7, 8,      /* unknown fixed64 field 4 */
		0x2a, 2, 'x', 'y',                 /* unknown bytes field 5 */
		0x0a, 5, 'r', 'o', 'o', 't', '\n', /* cert_chain: "root\n" */
	};
	static const struct {
		const char *name;
		uint8_t msg[16];
		size_t n;
		const char *why;
	} bad[] = {
		{ "empty message", { 0 }, 0, "no certificate" },
		{ "truncated string", { 0x0a, 9, 'a' }, 3, "truncated" },
		{ "truncated varint", { 0x10, 0x80 }, 2, "truncated" },
		{ "cert_chain as varint", { 0x08, 1 }, 2, "wire type 0" },
		{ "a group", { 0x13 }, 1, "wire type 3" },
		{ "field 0", { 0x02, 0 }, 2, "field number 0" },
		{ "NUL in a certificate", { 0x0a, 2, 'a', 0 }, 4, "NUL" },
		{ "empty certificate", { 0x0a, 0 }, 2, "empty" },
		{ "11-byte varint", { 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1 },
		  12, "truncated" },
	};
	uint8_t buf[128];
	char err[256], *pem = NULL;
	size_t n;

	n = frame(buf, ok, sizeof(ok));
	T_ASSERT_INT(istiopb_response(buf, n, &pem, err, sizeof(err)), 0);
	T_ASSERT_STR(pem, "leaf\nroot\n");
	free(pem);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = frame(buf, bad[i].msg, bad[i].n);
		err[0] = 0;
		T_ASSERT_INT(istiopb_response(buf, n, &pem, err, sizeof(err)), -EINVAL);
		printf("# %s: %s\n", bad[i].name, err);
		T_ASSERT(pem == NULL && strstr(err, bad[i].why));
	}
	/* the frame: compressed, a length that is not the body's, too short */
	n = frame(buf, ok, sizeof(ok));
	buf[0] = 1;
	T_ASSERT_INT(istiopb_response(buf, n, &pem, err, sizeof(err)), -EINVAL);
	T_ASSERT(strstr(err, "compressed"));
	buf[0] = 0;
	T_ASSERT_INT(istiopb_response(buf, n - 1, &pem, err, sizeof(err)), -EINVAL);
	T_ASSERT_INT(istiopb_response(buf, n + 1, &pem, err, sizeof(err)), -EINVAL);
	T_ASSERT_INT(istiopb_response(buf, 4, &pem, err, sizeof(err)), -EINVAL);
	T_ASSERT(pem == NULL);
}

T_MAIN(T_CASE(test_request_bytes), T_CASE(test_response))
