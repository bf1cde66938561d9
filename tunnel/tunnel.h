/* SPDX-License-Identifier: Apache-2.0 */
/*
 * warren-tunnel internals shared by the tunnel/ sources (not a public API).
 *
 * One struct tunnel per process owns: the configuration (borrowed from
 * main), the loop, the current mesh model (swapped whole on reload), the
 * pod registry (a doubly linked list of struct pod), and the servers
 * (handoff, admin, readiness). Everything runs on the loop thread.
 *
 * A struct pod owns its strings, its netns fd, its three in-pod listener
 * fds and its live connections. pod_free() aborts the connections and
 * closes everything; it never touches the state record (callers decide
 * whether the record goes too: a DEL removes it, a shutdown keeps it).
 * An idle pod is a few hundred bytes plus three sockets: no per-pod
 * buffers (relays allocate their pipes on first data).
 */
#ifndef WARREN_TUNNEL_H
#define WARREN_TUNNEL_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <jansson.h>

#include "conf/mesh.h"
#include "conf/tunnel_conf.h"
#include "tunnel/loop.h"
#include "tunnel/metrics.h"
#include "tunnel/relay.h"

#define TUNNEL_MAGIC 0x54554e4eu
#define POD_MAGIC    0x504f4421u
#define CONN_MAGIC   0x434f4e4eu
#define LIS_MAGIC    0x4c495354u

/* Verify a pointer that came back through a void * (loop/relay ctx). */
#define CHECK_OBJ(p, m) assert((p) && (p)->magic == (m))

enum lis_kind { LIS_OUTBOUND = 0, LIS_INBOUND, LIS_HBONE, LIS_COUNT };

struct pod;

struct pod_listener {
	unsigned magic;
	enum lis_kind kind;
	int fd;
	struct pod *pod;
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
};

struct pod {
	unsigned magic;
	struct pod *prev, *next;
	struct tunnel *t;
	char *uid, *container_id, *ifname, *namespace, *name, *service_account, *netns_path;
	int netns_fd;
	uint64_t netns_dev, netns_ino;
	char **ips; /* "10.0.0.2/24" as the plugin passed them */
	size_t n_ips;
	struct pod_listener lis[LIS_COUNT];
	bool listening;
	struct conn *conns;
	size_t n_conns;
};

struct mesh_watch;
struct admin;
struct accesslog;

struct tunnel {
	unsigned magic;
	const struct tunnel_conf *conf;
	struct loop *loop;
	struct mesh *mesh;             /* NULL until the first good load */
	uint64_t mesh_generation;
	uint64_t mesh_reload_errors;
	char mesh_error[512];          /* last load error, "" when none */
	struct mesh_watch *mw;
	struct pod *pods;
	size_t n_pods;
	bool adopted;
	int handoff_fd;
	struct loop_timer *retry_timer; /* re-try listeners of adopted pods */
	struct admin *admin;
	struct metrics *metrics;       /* NULL: metrics off (hooks are no-ops) */
	struct accesslog *alog;        /* NULL: access log off */
};

/* ---- pods.c: registry ---- */
struct pod *pod_find_uid(struct tunnel *t, const char *uid);
struct pod *pod_find_cid(struct tunnel *t, const char *container_id, const char *ifname);
/* Allocate a pod (strings copied; ips: borrowed JSON array of strings, may
 * be NULL) and link it. Takes netns_fd on success only; NULL on ENOMEM. */
struct pod *pod_new(struct tunnel *t, const char *uid, const char *container_id,
		    const char *ifname, const char *ns, const char *name, const char *sa,
		    const char *netns_path, int netns_fd, json_t *ips);
/* The pod as JSON (admin /pods and state records share field names). */
json_t *pod_to_json(const struct pod *p);
/* Unlink, abort connections, close listeners and the netns fd, free. */
void pod_free(struct pod *p);
/* Ready: model loaded, adoption done, every pod listening. reason static. */
bool tunnel_ready(const struct tunnel *t, const char **reason);

/* ---- inpod_listen.c ---- */
/* Create the three listeners inside the pod netns. 0 or -errno with err. */
int pod_listen(struct pod *p, char *err, size_t errlen);
void pod_unlisten(struct pod *p);

/* ---- proxy.c ---- */
void proxy_accept(struct pod_listener *pl);
/* Abort every live connection of the pod (relays reset). */
void proxy_abort_all(struct pod *p, const char *reason);
/* "ip:port" / "[v6]:port". Returns buf. */
const char *sockaddr_str(const struct sockaddr_storage *ss, char *buf, size_t len);

/* ---- state.c ---- */
int state_write(struct tunnel *t, const struct pod *p, char *err, size_t errlen);
int state_remove(struct tunnel *t, const char *uid);
/* Re-adopt the pods recorded in stateDir; sets t->adopted. */
void state_adopt(struct tunnel *t);
/* Safe as a file name component. */
bool state_uid_valid(const char *uid);

/* ---- mesh_watch.c ---- */
/* Load now (errors logged, retried) and watch meshPath. 0 or -errno. */
int mesh_watch_start(struct tunnel *t);
void mesh_watch_stop(struct tunnel *t);

/* ---- handoff_server.c ---- */
int handoff_server_start(struct tunnel *t);
void handoff_server_stop(struct tunnel *t);

/* ---- admin.c ---- */
int admin_start(struct tunnel *t);
void admin_stop(struct tunnel *t);

#endif
