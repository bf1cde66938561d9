/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HBONE wire values: the CONNECT request's :authority, and the Forwarded
 * and traceparent headers a client sends. Pure functions of their
 * arguments (hbone_wire_traceparent draws random bytes): no allocation, no
 * global state, safe on any thread. The :authority comes from the peer and
 * is untrusted (tests/fuzz/fuzz_hbone_wire.c); a malformed one is refused
 * with -EINVAL and leaves nothing half-parsed that a caller could use.
 */
#ifndef WARREN_HBONE_WIRE_H
#define WARREN_HBONE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A CONNECT request as the server sees it (hbone.h: on_request). */
struct hbone_request {
	const char *peer_id;      /* the client's SPIFFE identity (verified) */
	const char *method;       /* always "CONNECT" here (others got 400) */
	const char *authority;
	bool is_ip;               /* authority is ip:port (else hostname:port) */
	struct sockaddr_storage target; /* when is_ip: the parsed address */
	char host[256];           /* the host part without brackets */
	uint16_t port;
	const char *forwarded;    /* NULL when absent; hints only, never trust */
	const char *baggage;
	const char *traceparent;
};

/* Parses an HBONE :authority (ip:port, [v6]:port, hostname:port) into r's
 * is_ip/target/host/port. 0 or -EINVAL. */
int hbone_parse_authority(const char *authority, struct hbone_request *r);

/* forwarded: for="<ip>:<port>" ("[v6]:port"), plus ;host=<host> when host
 * is non-NULL. 0, -EINVAL, -ENOSPC. */
int hbone_format_forwarded(char *buf, size_t len, const struct sockaddr *src, const char *host);

/* "ip:port" / "[v6]:port" of an AF_INET/AF_INET6 address. 0, -EINVAL
 * (other family), -ENOSPC. */
int hbone_addr_port_str(const struct sockaddr *sa, char *buf, size_t len);

/* A random W3C traceparent, "00-<32 hex>-<16 hex>-01" and its NUL. */
#define HBONE_TRACEPARENT_LEN 56
void hbone_wire_traceparent(char buf[HBONE_TRACEPARENT_LEN]);

#endif
