/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Connection access log: one JSON object per line per closed connection
 * (ztunnel's field names, dotted keys kept flat):
 *   {"time", "scope":"access", "message":"connection closed", "start_time"
 *    (RFC 3339 UTC, ms), "duration_ms", "direction" ("outbound"|"inbound"),
 *    "src.addr", "src.workload", "src.namespace", "src.identity",
 *    "dst.addr", "dst.workload", "dst.namespace", "dst.identity",
 *    "dst.service", "bytes_sent", "bytes_received",
 *    "policy": {"decision": "allow"|"deny"|"none", "policy": "ns/name"|null},
 *    "reason"}
 * bytes_sent is what the source sent to the destination, bytes_received
 * what came back. Unknown peers/identities/services are JSON null.
 *
 * Destination (accessLog key): "stdout", "off", or a file path (opened
 * O_APPEND, created 0640). Lines go out whole, never interleaved: the
 * lines written by a loop's callbacks wait in a bounded buffer and go out
 * in one write(2) at the end of that loop's round (accesslog.c); a line
 * written outside any loop, at once. A write error is logged once and
 * the lines dropped: the access log never stops traffic.
 *
 * Threads: any; one log is shared by the workers. accesslog_close() after
 * every loop that wrote to it has stopped (it writes what still waits).
 *
 * Names: the fields fixed per label set (direction, workloads,
 * namespaces, identities, Service) can be rendered once into an
 * accesslog_names and given with each line instead of the strings; the
 * line is the same byte for byte. An accesslog_names is immutable once
 * made: any thread may use it, its owner frees it after the last line
 * that uses it.
 */
#ifndef WARREN_ACCESSLOG_H
#define WARREN_ACCESSLOG_H

#include <stdint.h>
#include <stddef.h>

struct accesslog;
struct accesslog_names;

struct accesslog_entry {
	int64_t start_unix_ms;
	uint64_t duration_ms;
	const char *direction;
	const char *src_addr, *src_workload, *src_namespace, *src_identity;
	const char *dst_addr, *dst_workload, *dst_namespace, *dst_identity, *dst_service;
	uint64_t bytes_sent, bytes_received;
	const char *policy_decision; /* NULL: "none" */
	const char *policy_name;
	const char *reason;
	/* Non-NULL: these take the place of direction, src_workload,
	 * src_namespace, src_identity, dst_workload, dst_namespace,
	 * dst_identity and dst_service (ignored then). Borrowed. */
	const struct accesslog_names *names;
};

/* spec NULL means "stdout". *out NULL for "off". 0 or -errno with err. */
int accesslog_open(const char *spec, struct accesslog **out, char *err, size_t errlen);
void accesslog_close(struct accesslog *al);
/* Format and write (see above for when); no-op when al is NULL (log off). */
void accesslog_write(struct accesslog *al, const struct accesslog_entry *e);
/* e's direction, workloads, namespaces, identities and Service rendered
 * once (other fields ignored); NULL on ENOMEM or when they are longer
 * than a line (the caller then passes the strings). Free with
 * accesslog_names_free (NULL is a no-op). */
struct accesslog_names *accesslog_names_new(const struct accesslog_entry *e);
void accesslog_names_free(struct accesslog_names *n);
/* "2026-01-02T03:04:05.678Z" into buf (>= 32 bytes). Returns buf. */
const char *accesslog_time(int64_t unix_ms, char *buf, size_t len);

#endif
