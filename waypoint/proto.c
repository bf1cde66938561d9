/* SPDX-License-Identifier: Apache-2.0 */
/* Protocol detection (contract in waypoint/proto.h). */
#include "waypoint/proto.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* A protocol name of Istio's (appProtocol, or a port name up to its first
 * '-'): HTTP for http, http2, grpc, grpc-web and kubernetes.io/{h2c,ws};
 * bytes for tcp and the TLS and database ones; anything else is sniffed. */
enum wp_proto wp_proto_of(const char *p, size_t n)
{
	static const char *const http[] = { "http", "http2", "grpc", "grpc-web", "kubernetes.io/h2c",
					    "kubernetes.io/ws" };
	static const char *const tcp[] = { "tcp", "tls", "https", "mongo", "mysql", "redis", "kubernetes.io/wss" };

	for (size_t i = 0; i < sizeof(http) / sizeof(http[0]); i++)
		if (strlen(http[i]) == n && !strncasecmp(p, http[i], n))
			return WP_PROTO_HTTP;
	for (size_t i = 0; i < sizeof(tcp) / sizeof(tcp[0]); i++)
		if (strlen(tcp[i]) == n && !strncasecmp(p, tcp[i], n))
			return WP_PROTO_TCP;
	return WP_PROTO_SNIFF;
}

/* As Istio: appProtocol first, then the port name's prefix. */
enum wp_proto wp_port_proto(const struct mesh_service_port *sp)
{
	const char *n = sp->name ? sp->name : "", *dash = strchr(n, '-');
	enum wp_proto p = WP_PROTO_SNIFF;

	if (sp->app_protocol && *sp->app_protocol)
		p = wp_proto_of(sp->app_protocol, strlen(sp->app_protocol));
	return p != WP_PROTO_SNIFF ? p : wp_proto_of(n, dash ? (size_t)(dash - n) : strlen(n));
}

/* The first bytes of a connection: an HTTP/1 request line's method and
 * space, or the HTTP/2 preface, is HTTP; a prefix of one is undecided
 * (SNIFF); anything else is TCP. */
enum wp_proto wp_sniff(const char *p, size_t n)
{
	static const char *const starts[] = { "GET ",   "HEAD ",  "POST ",    "PUT ",   "DELETE ",
					       "PATCH ", "TRACE ", "OPTIONS ", "CONNECT ", WP_H2_PREFACE };
	bool maybe = false;

	if (!n)
		return WP_PROTO_SNIFF;
	for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
		size_t k = strlen(starts[i]);

		if (!memcmp(p, starts[i], n < k ? n : k)) {
			if (n >= k)
				return WP_PROTO_HTTP;
			maybe = true;
		}
	}
	return maybe ? WP_PROTO_SNIFF : WP_PROTO_TCP;
}
