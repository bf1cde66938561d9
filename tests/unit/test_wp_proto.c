/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the waypoint's protocol detection (waypoint/proto.c): a
 * Service port's protocol from appProtocol and the name's prefix, as Istio
 * reads them, and the sniffing of a stream's first bytes, fed one byte at
 * a time as a slow client sends them.
 */
#include <string.h>

#include "tests/unit/t.h"
#include "waypoint/proto.h"

static void test_port(void)
{
	static const struct {
		const char *name, *app;
		enum wp_proto want;
	} cases[] = {
		{ "http", "", WP_PROTO_HTTP },          { "http-web", NULL, WP_PROTO_HTTP },
		{ "HTTP2-x", "", WP_PROTO_HTTP },       { "grpc", "", WP_PROTO_HTTP },
		{ "grpc-web", "", WP_PROTO_HTTP },      { "tcp-db", "", WP_PROTO_TCP },
		{ "https", "", WP_PROTO_TCP },          { "mysql", "", WP_PROTO_TCP },
		{ "", "", WP_PROTO_SNIFF },             { "web", "", WP_PROTO_SNIFF },
		{ "httpfoo", "", WP_PROTO_SNIFF },      { "grpcx", "", WP_PROTO_SNIFF },
		{ "web-ui", "http", WP_PROTO_HTTP },    { "http-echo", "tcp", WP_PROTO_TCP },
		{ "x", "kubernetes.io/h2c", WP_PROTO_HTTP }, { "x", "kubernetes.io/wss", WP_PROTO_TCP },
		{ "http", "unknown.example/proto", WP_PROTO_HTTP }, /* an unknown appProtocol: the name decides */
		{ "", "unknown", WP_PROTO_SNIFF },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mesh_service_port sp = { .name = cases[i].name, .app_protocol = cases[i].app, .port = 80 };

		T_ASSERT_INT(wp_port_proto(&sp), cases[i].want);
	}
}

/* Each prefix of s is undecided until the answer, which then holds. */
static void sniffs(const char *s, size_t decided_at, enum wp_proto want)
{
	size_t n = strlen(s);

	for (size_t k = 0; k <= n; k++)
		T_ASSERT_INT(wp_sniff(s, k), k < decided_at ? WP_PROTO_SNIFF : want);
}

static void test_sniff(void)
{
	sniffs("GET / HTTP/1.1\r\n", 4, WP_PROTO_HTTP);
	sniffs("DELETE /x HTTP/1.1\r\n", 7, WP_PROTO_HTTP);
	sniffs("PUT /x", 4, WP_PROTO_HTTP);   /* P: PUT, POST, PATCH; PU: PUT */
	sniffs("OPTIONS * HTTP/1.1", 8, WP_PROTO_HTTP);
	sniffs(WP_H2_PREFACE "\0\0", 24, WP_PROTO_HTTP);
	sniffs("hello", 1, WP_PROTO_TCP);
	sniffs("GEX / HTTP/1.1", 3, WP_PROTO_TCP);
	sniffs("GET/", 4, WP_PROTO_TCP);      /* no space after the method */
	sniffs("get / HTTP/1.1", 1, WP_PROTO_TCP); /* methods are case-sensitive */
	sniffs("PRI * HTTP/2.0\r\n\r\nXX", 19, WP_PROTO_TCP);
	sniffs("\x16\x03\x01\x02\x00", 1, WP_PROTO_TCP); /* a TLS ClientHello */
	T_ASSERT_INT(wp_sniff("", 0), WP_PROTO_SNIFF);
}

T_MAIN(T_CASE(test_port), T_CASE(test_sniff))
