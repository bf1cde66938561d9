/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pod registry (pods.c): struct pod and its shards, lookups, and
 * whether the tunnel may serve captured connections at all.
 *
 * A pod is one struct pod per worker: the primary (in t->pods, worker 0)
 * and its replicas (p->next_shard, workers 1..n-1), each with the same
 * strings, its own dup of the netns fd, its own SO_REUSEPORT listeners and
 * its own connections, HBONE pool and inbound HBONE connections. Only the
 * primary holds the identity reference and the state record; pod_new()
 * and pod_free() make and free every shard of a pod at once.
 *
 * Ownership: a struct pod owns its strings, its netns fd, its three in-pod
 * listener fds and its live connections. pod_free() aborts the connections
 * and closes everything; it never touches the state record (callers decide
 * whether the record goes too: a DEL removes it, a shutdown keeps it). An
 * idle pod is a few hundred bytes plus three sockets: no per-pod buffers
 * (relays allocate their pipes on first data).
 *
 * Threads: the registry (t->pods, pod_new, pod_free) changes on the main
 * thread only, with the workers isolated (workers.h) while a pod is linked
 * or unlinked and its shards torn down; a shard's connections, pool and
 * listeners belong to its worker. The main thread reads the registry
 * freely; it reads a shard's connections only with the workers isolated.
 */
#ifndef WARREN_TUNNEL_PODS_H
#define WARREN_TUNNEL_PODS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "conf/inpod_mode.h"
#include "model/mesh.h"

#define POD_MAGIC    0x504f4421u
#define LIS_MAGIC    0x4c495354u

struct tunnel;
struct conn;
struct hsrv;
struct hbone_pool;
struct loop;
struct loop_timer;

enum lis_kind { LIS_OUTBOUND = 0, LIS_INBOUND, LIS_HBONE, LIS_COUNT };

struct pod;
struct hbone_stream;
struct hbone_stream_stats;
struct hbone_conn;
struct hbone_pool;
struct mtls;

struct pod_listener {
	unsigned magic;
	enum lis_kind kind;
	int fd;
	struct pod *pod;
	struct loop_timer *pause;    /* accepting paused (out of fds); inpod_listen.c */
};

#define POD_SPARE_SOCKETS 16

struct pod {
	unsigned magic;
	struct pod *prev, *next;     /* t->pods, primaries only */
	struct tunnel *t;
	struct loop *loop;           /* its worker's */
	unsigned worker;
	struct pod *primary;         /* NULL on the primary */
	struct pod *next_shard;      /* the primary's replicas, in worker order */
	char *uid, *container_id, *ifname, *namespace, *name, *service_account, *netns_path;
	int netns_fd;
	uint64_t netns_dev, netns_ino;
	char **ips; /* "10.0.0.2/24" as the plugin passed them */
	size_t n_ips;
	struct mesh_ip *addrs;       /* the same, parsed (those that parse) */
	size_t n_addrs;
	struct pod_listener lis[LIS_COUNT];
	bool listening;
	struct inpod_mode mode;      /* how the plugin captured it (annotations) */
	bool in_host_table;          /* primary: its addresses are in the probe table */
	struct conn *conns;
	size_t n_conns;
	bool id_held;                /* holds a reference on its identity (mtls) */
	struct hbone_pool *pool;     /* outbound HBONE, created on first use */
	struct hsrv *hsrvs;          /* inbound HBONE connections */
	/* Upstream sockets made ahead in the pod netns (pod_socket): [0] v4,
	 * [1] v6. Filled on demand, POD_SPARE_SOCKETS per setns round trip. */
	int spare[2][POD_SPARE_SOCKETS];
	unsigned n_spare[2];
};

struct pod *pod_find_uid(struct tunnel *t, const char *uid);
struct pod *pod_find_cid(struct tunnel *t, const char *container_id, const char *ifname);
/* The primary of the enrolled pod here with address ip, or NULL. Any
 * thread (t->pods changes only with the workers isolated). */
const struct pod *pod_find_ip(const struct tunnel *t, const struct mesh_ip *ip);
/* Allocate a pod, one shard per worker (strings copied; ips: borrowed JSON
 * array of strings, may be NULL) and link the primary. Takes netns_fd on
 * success only; NULL on ENOMEM or when the fd cannot be duplicated. */
struct pod *pod_new(struct tunnel *t, const char *uid, const char *container_id,
		    const char *ifname, const char *ns, const char *name, const char *sa,
		    const char *netns_path, int netns_fd, json_t *ips);
/* The pod as JSON (admin /pods and state records share field names). */
json_t *pod_to_json(const struct pod *p);
/* The primary: unlink, abort every shard's connections, close listeners
 * and netns fds, free every shard. */
void pod_free(struct pod *p);
/* Every shard of every pod: for (p = t->pods; p; p = pod_shard_next(p)). */
struct pod *pod_shard_next(const struct pod *p);
static inline const struct pod *pod_primary(const struct pod *p)
{
	return p->primary ? p->primary : p;
}
/* Live connections over every shard of primary p. */
size_t pod_conn_count(const struct pod *p);
/* A TCP socket in the pod netns for an upstream connection: non-blocking,
 * close-on-exec, SO_MARK MARK_TUNNEL, TCP_NODELAY. family AF_INET or
 * AF_INET6. Returns the fd (the caller owns it) or -errno. */
int pod_socket(struct pod *p, int family);
/* May captured connections (15001, 15006, 15008) be served at all? Only
 * once a mesh model and its policies have loaded, and with a mesh CA
 * unless mtls: disabled says plaintext is wanted. Otherwise every one is
 * refused: without them the tunnel cannot tell what is enrolled or
 * allowed. Any thread (reads that thread's snapshot, snap.h). *reason
 * static. */
bool tunnel_serving(const struct tunnel *t, const char **reason);
/* Ready: serving, adoption done, every pod listening. *reason is
 * static or, while adopting, valid until the next loop callback. */
bool tunnel_ready(const struct tunnel *t, const char **reason);

#endif
