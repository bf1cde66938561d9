/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mTLS wiring (mtls.c, only when caDir or caAddress is set): t->sec owns
 * the mesh CA or the CA client, the identity manager (one certificate per
 * service account with a pod here), the renewal timer and the HBONE client
 * and server options. Each pod shard owns its outbound HBONE pool (so
 * pooled sockets are made in that pod's netns) and its inbound HBONE
 * server connections (struct hsrv). A connection tunnelled over HBONE is a
 * struct conn whose hs is the HBONE stream instead of a relay.
 *
 * Threads: start, stop, the pod hooks, the policy compile and the admin
 * JSON run on the main thread (the pod hooks with the workers isolated;
 * the pool views and the scrape isolate them while they read the pools);
 * the accept, outbound and authorize calls on the connection's worker,
 * with the policies of that worker's snapshot (snap.h).
 */
#ifndef WARREN_TUNNEL_MTLS_H
#define WARREN_TUNNEL_MTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <jansson.h>

#include "model/authz.h"
#include "model/mesh.h"

#define HSRV_MAGIC   0x48535256u

struct tunnel;
struct pod;
struct conn;
struct hbone_conn;

/* One inbound HBONE connection on a pod's 15008 (TLS + HTTP/2). */
struct hsrv {
	unsigned magic;
	struct hsrv *prev, *next;
	struct pod *pod;
	struct hbone_conn *hc;
	struct sockaddr_storage peer;  /* the client (source pod) address */
	struct sockaddr_storage local; /* the pod address it arrived on */
	struct tunnel *t;
	unsigned worker;               /* counted in workers_hbone_conns_add */
};

/* Loads caDir (when set) and sets up t->sec; logs plaintext mode loudly
 * when not. 0 or -errno (a configured CA that does not load is fatal). */
int mtls_start(struct tunnel *t);
void mtls_stop(struct tunnel *t);
/* Pod enrolled / adopted: take its identity (0, or -errno logged). */
int mtls_pod_added(struct pod *p);
/* Pod going away: drop its identity, pool and HBONE connections. */
void mtls_pod_removed(struct pod *p);
/* The policies of model m (its generation set), compiled into *out (the
 * caller's, published with m: snap.h) and logged. Main thread; reads only
 * t->conf and the published set. 0, or -errno logged (the previous set
 * stays in use). */
int mtls_policies_compile(const struct tunnel *t, const struct mesh *m, struct authz_set **out);
/* Serve an accepted 15008 connection (fd owned). */
void mtls_hbone_accept(struct pod *p, int fd, const struct sockaddr_storage *peer);
/* An accepted 15001 connection whose route is ROUTE_HBONE: open its
 * stream through the pod's pool. c is owned by the stream, or failed and
 * freed, on return. */
void mtls_outbound_hbone(struct conn *c);
/* The L4 decision for inbound connection c from its route (the local
 * pod's labels, the peer's identity; none: plaintext). Returns 0 allow,
 * -EACCES deny; d filled. */
int mtls_authorize(const struct conn *c, struct authz_decision *d);
/* Admin JSON. */
json_t *mtls_certs_json(const struct tunnel *t);
json_t *mtls_policies_json(const struct tunnel *t);
json_t *mtls_pool_json(struct tunnel *t);
/* At scrape time: pool gauges. */
void mtls_scrape(struct tunnel *t);
/* The pod's SPIFFE ID, "" when none (plaintext). */
const char *mtls_pod_identity(const struct pod *p, char *buf, size_t len);
/* Does p's identity wait for its certificate (warren-ca has not signed
 * yet)? false without mTLS or without an identity at all. Main thread. */
bool mtls_pod_cert_pending(const struct pod *p);

#endif
