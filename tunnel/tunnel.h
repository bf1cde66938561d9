/* SPDX-License-Identifier: Apache-2.0 */
/*
 * struct tunnel: one per process, the state the tunnel/ modules share (not
 * a public API; each module's functions are in its own header).
 *
 * It owns: the configuration (borrowed from main), the main loop, the
 * published snapshot of the mesh model and compiled policy set (snap.h:
 * replaced whole on reload, read by the workers without locking), the pod
 * registry (pods.h), the servers (handoff, admin, readiness), the node's
 * probe table (host_probe.h) and the data-path workers (workers.h; workers.c
 * says how the threads share all this). Control-plane code runs on the main
 * loop; each pod shard's data path on its worker's loop. Fields without a
 * note are the main thread's.
 */
#ifndef WARREN_TUNNEL_H
#define WARREN_TUNNEL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "conf/inpod_mode.h"
#include "conf/objcheck.h"
#include "conf/tunnel_conf.h"
#include "model/authz.h"
#include "model/mesh.h"
#include "tunnel/snap.h"

#define TUNNEL_MAGIC 0x54554e4eu

struct pod;
struct loop;
struct loop_timer;
struct metrics;
struct mtls;
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
	/* snap.h: the published model and policies, main thread's to change */
	struct tunnel_snap *_Atomic snap; /* NULL until the first good load */
	struct tunnel_snap *snap_retired; /* replaced, maybe still used by a worker */
	pthread_mutex_t snap_mu;       /* the publish/acquire handover (snap.c) */
	int snap_retire_fd;            /* eventfd: a worker let go of a retired one */
	bool snap_started;
	unsigned isolated;             /* workers.c: workers_isolate() depth */
	uint64_t mesh_reload_errors;
	char mesh_error[512];          /* last load error, "" when none */
	size_t mesh_pods_kept;         /* held pods the model kept from an earlier one */
	struct mesh_watch *mw;
	struct kube_watch *kw;         /* kube_watch.c: meshSource kubernetes */
	struct kube_seen *seen;        /* kube_enroll.c: pods known from ADD, enrolled or not */
	struct pod *pods;
	size_t n_pods;
	bool adopted;                  /* adoption of the recorded pods is complete */
	struct adoption *adoption;     /* state.c: in progress; NULL before and after */
	json_t *bad_records;           /* state.c: records set aside at start (array); NULL: none */
	int handoff_fd;
	int keeper_fd;                 /* keeper.c: the pool keeper's socket, when keeper */
	bool keeper, keeper_gone;
	char keeper_due[INPOD_BPF_DIR_MAX]; /* keeper.c: a bpfDir to send once the handoff is answered */
	struct hclient *held, *held_tail; /* handoff_server.c: requests held during adoption */
	struct loop_timer *handoff_pause; /* handoff_server.c: accepting paused (out of fds) */
	uint64_t handoff_warned_ms;
	struct hclient *model_wait;    /* handoff_server.c: requests waiting for their pod */
	struct loop_timer *retry_timer; /* re-try listeners of adopted pods */
	struct admin *admin;
	struct metrics *metrics;       /* NULL: metrics off (hooks are no-ops) */
	struct accesslog *alog;        /* NULL: access log off */
	struct mtls *sec;              /* NULL: no caDir (plaintext only with mtls: disabled) */
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

#endif
