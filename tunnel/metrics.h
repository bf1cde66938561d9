/* SPDX-License-Identifier: Apache-2.0 */
/*
 * warren-tunnel metrics: one registry per process (t->metrics), rendered
 * in the Prometheus text exposition format 0.0.4 by metrics_render() and
 * served on metricsAddress (/metrics, /stats/prometheus) by admin.c.
 *
 * Istio TCP metrics (istio_tcp_connections_opened_total, ..._closed_total,
 * istio_tcp_sent_bytes_total, istio_tcp_received_bytes_total) carry
 * Istio's standard labels. A connection's labels are fixed when it opens
 * (metrics_conn_open); byte counters of live connections are brought up to
 * date from relay_get_stats() at every scrape, the rest at close, so a
 * long connection shows progress. As in Istio, "received" is bytes from
 * the source to the destination (the request side), "sent" is bytes back.
 * One series per distinct label set, at most METRICS_MAX_SERIES (then new
 * label sets are counted in warren_metrics_series_dropped_total).
 *
 * warren_* internals are read from struct tunnel at scrape time or kept
 * here by the setters below. Every setter is a no-op when t or t->metrics
 * is NULL, so callers never check. Strings passed in are copied.
 *
 * Worker threads call the per-connection hooks side by side, and the main
 * thread its setters while they run (a lock inside guards the shared
 * series and families); metrics_render isolates the workers only while it
 * reads the live connections' byte counters (tunnel/workers.h).
 */
#ifndef WARREN_METRICS_H
#define WARREN_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tunnel;
struct conn;
struct relay_stats;
struct metrics;

#define METRICS_MAX_SERIES 10000

/* 0 or -ENOMEM. metrics_free() is NULL-tolerant. */
int metrics_new(struct metrics **out);
void metrics_free(struct metrics *m);

/* ---- per-connection hooks (proxy.c; later hbone.c) ---- */

/* Before metrics_conn_open(): the peers' SPIFFE identities once mTLS
 * authenticated them (NULL: unknown); marks the connection mutual_tls. */
void metrics_conn_identity(struct conn *c, const char *src_principal, const char *dst_principal);
/* The policy decision for the access log. allow false = denied; policy is
 * "ns/name" of the deciding AuthorizationPolicy, or NULL. Denials also
 * count in warren_policy_denials_total. */
void metrics_conn_policy(struct conn *c, bool allow, const char *policy);
/* The connection's source and original destination are known: count it
 * opened and fix its labels (peers are looked up in the mesh model now). */
void metrics_conn_open(struct conn *c);
/* The connection is gone: st is the relay's final stats (NULL when it
 * never relayed), reason why it ended (NULL: st->reason, else "closed").
 * st NULL means it failed before relaying: its close is counted with
 * response_flags "CONNECT" (ztunnel's connection-failure flag), else "-".
 * Counts it closed, settles its bytes, writes its access-log line, and
 * frees c->obs. A connection that was never opened is only logged. */
void metrics_conn_close(struct conn *c, const struct relay_stats *st, const char *reason);

/* ---- warren_* internals ---- */

/* One handoff request: op as received (unknown ops count as "other"). */
void metrics_plugin_request(struct tunnel *t, const char *op, bool ok);
/* One mTLS handshake; reason: short, low-cardinality ("ok" when ok). */
void metrics_handshake(struct tunnel *t, bool ok, const char *reason);
/* A connection denied by an AuthorizationPolicy ("ns/name", or NULL for
 * the default deny of an ALLOW-only policy set). */
void metrics_policy_denial(struct tunnel *t, const char *policy);
/* A listener stopped accepting for a while: the process was out of fds or
 * memory (listener: "outbound", "inbound", "hbone", "handoff", "admin",
 * "metrics", "readiness"). Any thread. */
void metrics_accept_paused(struct tunnel *t, const char *listener);
/* A connection to a pod's 15008 refused before its TLS handshake (reason:
 * "pod_limit", "source_limit"). Any thread. */
void metrics_hbone_refused(struct tunnel *t, const char *reason);
/* A connection refused for waypoint ("ns/name"): reason "missing",
 * "not_ready" (source side) or "bypass" (destination side). */
void metrics_waypoint_refused(struct tunnel *t, const char *waypoint, const char *reason);
/* A state record that could not be read was moved aside at start. */
void metrics_state_record_bad(struct tunnel *t);
/* The pod of a record moved aside: re-adopted from its netns, or refused. */
void metrics_state_record_readopt(struct tunnel *t, bool adopted);
/* Current HBONE pool size. */
void metrics_pool_set(struct tunnel *t, uint64_t connections, uint64_t streams);
/* Certificate of identity (spiffe://...) expires at not_after (Unix s);
 * the gauge is the expiry timestamp, so "x - time()" is the time left. */
void metrics_cert_expiry(struct tunnel *t, const char *identity, int64_t not_after);
void metrics_cert_forget(struct tunnel *t, const char *identity);
/* One CSR to warren-ca: its result (0, -EACCES refused, else unavailable)
 * and duration. */
void metrics_csr(struct tunnel *t, int ret, double ms);

/* The whole exposition (malloc'd text, caller frees), NULL on ENOMEM. */
char *metrics_render(struct tunnel *t);

/* Exposition-format label value escaping (\ " newline) into buf;
 * truncates safely. Returns buf. Exposed for unit tests. */
const char *metrics_escape(const char *s, char *buf, size_t len);

/* Istio workload naming from a pod's labels (app.kubernetes.io/name, app)
 * with the pod name as the fallback. Exposed for admin.c and tests. */
struct mesh_pod;
const char *metrics_workload_name(const struct mesh_pod *p);

#endif
