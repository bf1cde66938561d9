/* SPDX-License-Identifier: Apache-2.0 */
/*
 * warren-tunnel internals shared by the tunnel/ sources (not a public API).
 *
 * One struct tunnel per process owns: the configuration (borrowed from
 * main), the main loop, the current mesh model (swapped whole on reload),
 * the pod registry (a doubly linked list of struct pod), the servers
 * (handoff, admin, readiness), the node's probe table (host_probe.c) and
 * the data-path workers (workers.c, which says how the threads share all
 * this). Control-plane code runs on the
 * main loop; each pod shard's data path on its worker's loop.
 *
 * A pod is one struct pod per worker: the primary (in t->pods, worker 0)
 * and its replicas (p->next_shard, workers 1..n-1), each with the same
 * strings, its own dup of the netns fd, its own SO_REUSEPORT listeners and
 * its own connections, HBONE pool and inbound HBONE connections. Only the
 * primary holds the identity reference and the state record; pod_new()
 * and pod_free() make and free every shard of a pod at once.
 *
 * A struct pod owns its strings, its netns fd, its three in-pod listener
 * fds and its live connections. pod_free() aborts the connections and
 * closes everything; it never touches the state record (callers decide
 * whether the record goes too: a DEL removes it, a shutdown keeps it).
 * An idle pod is a few hundred bytes plus three sockets: no per-pod
 * buffers (relays allocate their pipes on first data).
 *
 * mTLS (mtls.c, only when caDir is set): t->sec owns the mesh CA, the
 * identity manager (one certificate per service account with a pod here),
 * the renewal timer and the compiled L4 policy set. Each pod owns its
 * outbound HBONE pool (so pooled sockets are made in that pod's netns) and
 * its inbound HBONE server connections (struct hsrv). A connection
 * tunnelled over HBONE is a struct conn whose hs is the HBONE stream
 * instead of a relay.
 */
#ifndef WARREN_TUNNEL_H
#define WARREN_TUNNEL_H

#include <assert.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <jansson.h>

#include "conf/objcheck.h"
#include "conf/tunnel_conf.h"
#include "model/authz.h"
#include "model/mesh.h"
#include "netlink/inpod.h"
#include "tunnel/loop.h"
#include "tunnel/metrics.h"
#include "tunnel/relay.h"
#include "tunnel/route.h"
#include "tunnel/state_record.h"

#define TUNNEL_MAGIC 0x54554e4eu
#define POD_MAGIC    0x504f4421u
#define CONN_MAGIC   0x434f4e4eu
#define LIS_MAGIC    0x4c495354u
#define HSRV_MAGIC   0x48535256u

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

enum conn_dir { CONN_OUTBOUND, CONN_INBOUND };

/* One accepted app connection: connecting upstream, then relaying. */
struct conn {
	unsigned magic;
	struct conn *prev, *next;
	struct pod *pod;
	enum conn_dir dir;
	struct sockaddr_storage src, dst;
	uint64_t start_ms;
	int app_fd, up_fd;           /* owned until handed to relay_start */
	struct loop_timer *timer;    /* connect timeout */
	struct relay *relay;         /* set once relaying */
	struct conn_obs *obs;        /* metrics.c: labels, byte accounting, access log */
	/* HBONE (mTLS mode). Outbound: the stream to the destination's 15008;
	 * inbound: the stream that arrived on this pod's 15008. */
	struct hbone_stream *hs;
	struct hsrv *hsrv;           /* inbound HBONE: the connection it came on */
	bool hbone;
	struct route route;          /* route.h: where it goes, who the peer is */
	bool hs_open;                /* the stream is relaying (200 sent or received) */
	bool opening;                /* inside hbone_pool_open (early done is recorded) */
	char *early_reason;          /* a stream that ended inside hbone_pool_open */
};

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

struct mesh_watch;
struct kube_watch;
struct kube_seen;
struct worker;
struct admin;
struct accesslog;
struct adoption;
struct hclient;
struct host_probe;

struct tunnel {
	unsigned magic;
	const struct tunnel_conf *conf;
	struct loop *loop;
	struct mesh *mesh;             /* NULL until the first good load */
	uint64_t mesh_generation;
	uint64_t mesh_reload_errors;
	char mesh_error[512];          /* last load error, "" when none */
	size_t mesh_pods_kept;         /* held pods t->mesh kept from an earlier model */
	struct mesh_watch *mw;
	struct kube_watch *kw;         /* kube_watch.c: meshSource kubernetes */
	struct kube_seen *seen;        /* kube_enroll.c: pods known from ADD, enrolled or not */
	struct pod *pods;
	size_t n_pods;
	bool adopted;                  /* adoption of the recorded pods is complete */
	struct adoption *adoption;     /* state.c: in progress; NULL before and after */
	json_t *bad_records;           /* state.c: records set aside at start (array); NULL: none */
	int handoff_fd;
	struct hclient *held, *held_tail; /* handoff_server.c: requests held during adoption */
	struct loop_timer *handoff_pause; /* handoff_server.c: accepting paused (out of fds) */
	uint64_t handoff_warned_ms;
	struct hclient *model_wait;    /* handoff_server.c: requests waiting for their pod */
	struct loop_timer *retry_timer; /* re-try listeners of adopted pods */
	struct admin *admin;
	struct metrics *metrics;       /* NULL: metrics off (hooks are no-ops) */
	struct accesslog *alog;        /* NULL: access log off */
	struct mtls *sec;              /* NULL: no caDir (plaintext only with mtls: disabled) */
	struct authz_set *authz;       /* compiled policies of t->mesh; NULL: none */
	bool policies_loaded;          /* a compiled set was installed (tunnel_serving) */
	atomic_uint_fast64_t gate_refused; /* captured connections refused by the gate */
	atomic_uint_fast64_t gate_log_ms;  /* when the gate last logged (rate limit) */
	struct worker *workers;        /* workers.c */
	unsigned n_workers;
	bool draining;                 /* drain.c: SIGTERM received, listeners closed */
	uint64_t drain_start_ms, drain_min_ms;
	struct loop_timer *drain_timer;
	struct host_probe *hp;         /* host_probe.c */
	bool host_probe_stale;         /* pods came or went since the last sync */
	bool host_probe_full;          /* ... and some went: sync the whole table */
};

/* ---- workers.c ---- */
/* n worker loops (no threads yet); makes t->loop's guard lock them all.
 * 0 or -ENOMEM. */
int workers_create(struct tunnel *t, unsigned n);
/* Start the threads (after the capability drop: capabilities are per
 * thread and inherited). 0 or -errno (none left running). */
int workers_start(struct tunnel *t);
/* Stop and join the threads; their loops stay for the teardown. */
void workers_stop(struct tunnel *t);
void workers_free(struct tunnel *t);
/* Outside the main loop's callbacks (which hold them already). */
void workers_lock_all(struct tunnel *t);
void workers_unlock_all(struct tunnel *t);
struct loop *worker_loop(const struct tunnel *t, unsigned i);
/* An HBONE connection accepted on shard p (fd owned): served here, or, when
 * another worker serves fewer inbound HBONE connections, queued to that
 * worker's shard of the same pod. A pooled connection carries many
 * streams, so spreading the few of them by the kernel's hash alone can
 * leave a worker idle. */
void workers_hbone_accept(struct pod *p, int fd, const struct sockaddr_storage *peer);
/* Live inbound HBONE connections served by worker w (mtls.c). */
void workers_hbone_conns_add(struct tunnel *t, unsigned w, int delta);
/* Shard s is going away: close the connections queued to it (main
 * thread, every worker paused). */
void workers_forget_shard(struct pod *s);

/* ---- pods.c: registry ---- */
struct pod *pod_find_uid(struct tunnel *t, const char *uid);
struct pod *pod_find_cid(struct tunnel *t, const char *container_id, const char *ifname);
/* The primary of the enrolled pod here with address ip, or NULL. Any
 * thread (t->pods changes only under every worker's lock). */
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
 * allowed. Any thread (reads what the guard protects). *reason static. */
bool tunnel_serving(const struct tunnel *t, const char **reason);
/* Ready: serving, adoption done, every pod listening. *reason is
 * static or, while adopting, valid until the next loop callback. */
bool tunnel_ready(const struct tunnel *t, const char **reason);

/* ---- drain.c ---- */
/* SIGTERM/SIGINT: start draining (drain.c says how), or stop the loop at
 * once when already draining or drainSeconds is 0. */
void tunnel_drain_start(struct tunnel *t, int signo);

/* ---- host_probe.c: the node's table for kubelet probes ---- */
/* Opens the netfilter socket and finds the kubelet's UID; with
 * hostProbeSnat: false deletes the table instead. Problems are logged and
 * leave probes captured: 0, or -ENOMEM. */
int host_probe_start(struct tunnel *t);
void host_probe_stop(struct tunnel *t);
/* Sync the table with the pods when t->host_probe_stale (after adoption). */
void host_probe_flush(struct tunnel *t);
json_t *host_probe_json(const struct tunnel *t);
/* The UID of a kubelet, kubelite or k3s process under proc (a procfs
 * path), Istio's way: 0 with *uid and *pid, -ENOENT, -EEXIST when such
 * processes run under different UIDs (err says which), or -errno. */
int kubelet_uid_find(const char *proc, long long *uid, long *pid, char *err, size_t errlen);
/* The cgroup v2 of process pid (its "0::" line under proc) as a path, its
 * id (the inode of cgroot+path) and depth. 0; -EEXIST when the cgroup is
 * the root or holds a process that is neither pid nor its child (err says
 * which), so that the kubelet's uid alone must do; -ENOENT; -errno. */
int kubelet_cgroup_find(const char *proc, const char *cgroot, long pid, char *path,
			size_t pathlen, uint64_t *id, uint32_t *level, char *err, size_t errlen);

/* ---- inpod_listen.c ---- */
/* Create the three listeners of every shard of primary p inside the pod
 * netns (all or none), then pod_publish(). 0 or -errno with err. */
int pod_listen(struct pod *p, char *err, size_t errlen);
/* An eBPF-captured pod: put its listening 15001/15006 into the pod's
 * pinned listener map (again: a re-ADD may have re-created the map). 0
 * for other pods. 0 or -errno with err. */
int pod_publish(struct pod *p, char *err, size_t errlen);
void pod_unlisten(struct pod *p);
/* accept4() failed with err (EMFILE, ENFILE, ENOBUFS, ENOMEM or another
 * lasting error): the connection stays queued and the listener readable,
 * so stop polling it (no spin) until a timer, or a connection of its shard
 * closing (pod_listen_resume), tries again. Logs at most every 10 s over
 * all listeners and counts warren_accept_paused_total. Worker thread. */
void pod_listen_pause(struct pod_listener *pl, int err);
/* Shard p freed fds: resume its paused listeners now. */
void pod_listen_resume(struct pod *p);

/* ---- proxy.c ---- */
void proxy_accept(struct pod_listener *pl);
/* Abort every live connection of the pod (relays reset). */
void proxy_abort_all(struct pod *p, const char *reason);
/* "ip:port" / "[v6]:port". Returns buf. */
const char *sockaddr_str(const struct sockaddr_storage *ss, char *buf, size_t len);

/* Live byte counters of a connection in relay_stats terms (a_to_b: from
 * the source to the destination), from its relay or its HBONE stream. */
void conn_get_stats(const struct conn *c, struct relay_stats *st);
/* Re-evaluates every inbound connection of every pod against t->authz and
 * closes those now denied. */
void proxy_policy_recheck(struct tunnel *t);

/* ---- mtls.c ---- */
/* Loads caDir (when set) and sets up t->sec; logs plaintext mode loudly
 * when not. 0 or -errno (a configured CA that does not load is fatal). */
int mtls_start(struct tunnel *t);
void mtls_stop(struct tunnel *t);
/* Pod enrolled / adopted: take its identity (0, or -errno logged). */
int mtls_pod_added(struct pod *p);
/* Pod going away: drop its identity, pool and HBONE connections. */
void mtls_pod_removed(struct pod *p);
/* The policies of model m (its generation set), compiled into *out (the
 * caller's) and logged. Reads only t->conf and, on the main thread,
 * t->authz: runs without the guard.
 * 0, or -errno logged (the previous set stays in use). */
int mtls_policies_compile(const struct tunnel *t, const struct mesh *m, struct authz_set **out);
/* Puts set (owned, may be NULL) in use and re-evaluates the open inbound
 * connections against it; returns the previous set, the caller's to free. */
struct authz_set *mtls_policies_install(struct tunnel *t, struct authz_set *set);
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
json_t *mtls_pool_json(const struct tunnel *t);
/* At scrape time: pool gauges. */
void mtls_scrape(struct tunnel *t);
/* The pod's SPIFFE ID, "" when none (plaintext). */
const char *mtls_pod_identity(const struct pod *p, char *buf, size_t len);

/* proxy.c helpers shared with mtls.c */
struct conn *conn_new(struct pod *p, enum conn_dir dir, int fd, const struct sockaddr_storage *src);
/* Connect up_fd to c->target without blocking, then relay (plain) or
 * accept the HBONE stream (inbound HBONE). c may be gone on return. */
void conn_connect(struct conn *c);
/* Inbound L4 policy: records the decision; on deny logs, closes (RST or
 * HBONE 401) and frees c. 0 allowed, -EACCES denied (c is gone). */
int conn_authorize(struct conn *c);
/* HBONE stream callbacks (ctx: outbound the conn, inbound the hsrv). */
void conn_hs_out_done(void *ctx, struct hbone_stream *s, const struct hbone_stream_stats *st);
void conn_hs_in_done(void *ctx, struct hbone_stream *s, const struct hbone_stream_stats *st);
/* Answer a pending inbound HBONE stream with status and free c. */
void conn_hs_reject(struct conn *c, int status, const char *why);
void conn_free(struct conn *c, const struct relay_stats *st, const char *reason);
void conn_fail(struct conn *c, const char *what, int err);
/* Non-blocking socket in the pod netns with SO_MARK, for c->target
 * (inbound: transparent, bound to c->src). fd or -errno, *what says which
 * step failed. */
int conn_upstream_socket(struct conn *c, const char **what);
void rst_close(int fd);
socklen_t ss_len(const struct sockaddr_storage *ss);
uint16_t ss_port(const struct sockaddr_storage *ss);
void ss_canonicalise(struct sockaddr_storage *ss);

/* ---- state.c ---- */
/* Writes p's record atomically. Releases the main loop's guard while it
 * writes the file: call it only while no worker can reach p (before
 * pod_listen). 0, or -errno with err filled. */
int state_write(struct tunnel *t, const struct pod *p, char *err, size_t errlen);
/* Removes uid's record; also releases the guard while it unlinks. 0 or
 * -errno (logged). */
int state_remove(struct tunnel *t, const char *uid);
/* Lists the pods recorded in stateDir and re-adopts them on the loop, a
 * batch per iteration, so readiness and the handoff socket answer
 * meanwhile; when done sets t->adopted and calls handoff_server_resume().
 * 0 or -ENOMEM (nothing started). */
int state_adopt_start(struct tunnel *t);
/* Shutdown: drop an unfinished adoption (the records stay on disk) and
 * the list of records set aside. */
void state_adopt_stop(struct tunnel *t);
/* The records that could not be read at start, each moved aside to
 * <uid>.json.bad-<unix time> in the same directory (kept for a human, never
 * deleted): [{uid, record, reason}], a new reference (NULL on ENOMEM). */
json_t *state_bad_records_json(const struct tunnel *t);
/* "adopting N/M pods" while adopting; valid until the next loop callback. */
const char *state_adopt_progress(const struct tunnel *t);
/* state_uid_valid(): tunnel/state_record.h. */

/* ---- mesh_watch.c ---- */
/* Load now (errors logged, retried) and watch meshPath. 0 or -errno. */
int mesh_watch_start(struct tunnel *t);
void mesh_watch_stop(struct tunnel *t);
/* The one way a new model (owned, from mesh_build_keeping or
 * mesh_load_path_keeping) goes in use, whatever its source: generation set,
 * policies compiled, swapped in, the plugin requests waiting for their pod
 * answered, the old one freed. kept: how many held pods m kept from the
 * previous model (warren_mesh_pods_kept). Main loop, guard held. */
void mesh_watch_install(struct tunnel *t, struct mesh *m, const char *origin, size_t kept);
/* The keep rule every source applies (mesh_build_keeping's keep and
 * on_kept, ctx a struct mesh_watch_keep): a new model never drops a pod
 * this tunnel holds. Main thread (reads t->pods), guard not needed. */
struct mesh_watch_keep {
	struct tunnel *t;
	const char *origin;
};
bool mesh_watch_held_pod(void *ctx, const struct mesh_pod *mp);
void mesh_watch_log_kept(void *ctx, const struct mesh_pod *mp);
/* A build from origin failed: counted, err kept for the admin API, logged;
 * the model in use (if any) stays. hint says how it gets retried. */
void mesh_watch_failed(struct tunnel *t, const char *origin, const char *err, const char *hint);

/* ---- kube_watch.c: meshSource kubernetes ---- */
/* Start listing and watching the API server on t->loop (the model is built
 * once every resource has listed). 0 or -errno (bad credentials: logged). */
int kube_watch_start(struct tunnel *t);
void kube_watch_stop(struct tunnel *t);
/* Per resource: state, resourceVersion, counters, last sync; NULL when not
 * in kubernetes mode. */
json_t *kube_watch_json(const struct tunnel *t);
/* Prometheus text for the same (nothing when not in kubernetes mode). */
void kube_watch_metrics(const struct tunnel *t, FILE *f);
/* false with *reason while some resource has never listed. */
bool kube_watch_synced(const struct tunnel *t, const char **reason);
/* A pod was enrolled or released here: its status annotation follows
 * (a no-op in file mode). */
void kube_watch_pods_changed(struct tunnel *t);

/* ---- handoff_server.c ---- */
int handoff_server_start(struct tunnel *t);
/* Frees the held requests too (unanswered: their clients see EOF). */
void handoff_server_stop(struct tunnel *t);
/* Adoption is complete: answer the requests held meanwhile, in order. */
void handoff_server_resume(struct tunnel *t);
/* A new model is in use: answer the requests that waited for it. */
void handoff_server_model_changed(struct tunnel *t);
/* A request of the tunnel's own (kube_enroll.c), through the plugin's code
 * path: answered at once (main loop, after adoption). *pfd as for "add". */
json_t *handoff_server_local(struct tunnel *t, json_t *req, int *pfd);

/* ---- kube_enroll.c: enrollment follows labels (Kubernetes mode) ---- */
/* A "query" carrying netns/containerId/ifname: remember where the pod is. */
void kube_enroll_remember(struct tunnel *t, json_t *req);
/* A "del" from the plugin: the pod is gone. */
void kube_enroll_forget(struct tunnel *t, json_t *req);
/* After a model change: enroll the remembered pods the model now enrolls,
 * release the enrolled ones it no longer does. */
void kube_enroll_reconcile(struct tunnel *t);
/* At start: what the last run remembered (stateDir/kube-seen.json). */
void kube_enroll_load(struct tunnel *t);
void kube_enroll_stop(struct tunnel *t);

/* ---- admin.c ---- */
int admin_start(struct tunnel *t);
void admin_stop(struct tunnel *t);

#endif
