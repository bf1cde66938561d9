/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How the waypoint tells a stream's protocol: by its Service port, as
 * Istio does (appProtocol first, then the port name's prefix up to its
 * first '-'), else by sniffing the stream's first bytes. Pure functions: no
 * allocation, no state, any thread.
 */
#ifndef WARREN_WAYPOINT_PROTO_H
#define WARREN_WAYPOINT_PROTO_H

#include <stddef.h>

#include "model/mesh.h"

enum wp_proto {
	WP_PROTO_SNIFF, /* undeclared (by a port) or undecided yet (by bytes) */
	WP_PROTO_HTTP,
	WP_PROTO_TCP,
};

#define WP_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

/* One of Istio's protocol names (n bytes at p, any case): http, http2, grpc,
 * grpc-web, kubernetes.io/h2c, kubernetes.io/ws are HTTP; tcp, tls, https,
 * mongo, mysql, redis, kubernetes.io/wss are TCP; anything else SNIFF. */
enum wp_proto wp_proto_of(const char *p, size_t n);

/* A Service port's: appProtocol's if it names one, else its name's. */
enum wp_proto wp_port_proto(const struct mesh_service_port *sp);

/* The first n bytes of a stream: an HTTP/1 request method and a space, or
 * the HTTP/2 preface, is HTTP; a proper prefix of one is SNIFF (wait for
 * more); anything else is TCP. */
enum wp_proto wp_sniff(const char *p, size_t n);

#endif
