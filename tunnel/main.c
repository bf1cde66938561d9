/* SPDX-License-Identifier: Apache-2.0 */
/*
 * warren-tunnel: the per-node process that owns the listeners inside every
 * enrolled pod's network namespace and relays their traffic.
 *
 * Process model: a main thread whose epoll loop (tunnel/loop.h) runs the
 * control plane, and workerThreads data-path threads, each with its own
 * loop and its own shard of every pod (tunnel/workers.c); nothing blocks.
 * Per-pod sockets are created inside the pod's netns with a scoped
 * setns round trip (netns_socket) and live there for their whole life, so
 * one process serves every pod. The plugin hands pods over on a root-only
 * Unix socket (handoff_server.c); each pod is recorded in stateDir
 * (state.c) so a restarted tunnel re-adopts its pods without the runtime
 * re-creating them. The mesh model (mesh_watch.c) is reloaded when
 * meshPath changes; a bad file keeps the last good model.
 *
 * Startup: config, logging, signals; admin/readiness/metrics servers;
 * mesh model (a failure is logged and retried); the handoff socket; the
 * capability drop (below); then the loop, on which the recorded pods are
 * re-adopted a batch per iteration (state.c) while readiness answers 503
 * "adopting N/M pods" and the handoff socket holds adds until adoption is
 * complete. SIGTERM/SIGINT
 * stop cleanly (an unfinished adoption too):
 * listeners close, state records stay (a restart re-adopts), live
 * connections are reset.
 *
 * Privileges: everything that needs a file or a port is opened before the
 * loop starts, so from then on (keepCapabilities: true, the default) the
 * process keeps only tunnel_kept_caps in its permitted and effective sets (the
 * worker threads start after the drop and inherit it), the
 * same in its bounding set, none inheritable or ambient, and sets
 * no_new_privs. Fds inherited from whoever started us are closed first
 * thing; every fd we open is O_CLOEXEC. When adoption is done,
 * CAP_SYS_PTRACE goes too and a seccomp allow-list covers every thread
 * (tunnel/harden.h).
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <cap-ng.h>

#include "conf/log.h"
#include "conf/warren.h"
#include "tunnel/accesslog.h"
#include "tunnel/admin.h"
#include "tunnel/drain.h"
#include "tunnel/handoff_server.h"
#include "tunnel/host_probe.h"
#include "tunnel/keeper.h"
#include "tunnel/kube_tunnel.h"
#include "tunnel/loop.h"
#include "tunnel/mesh_watch.h"
#include "tunnel/metrics.h"
#include "tunnel/mtls.h"
#include "tunnel/pods.h"
#include "tunnel/state.h"
#include "tunnel/tunnel.h"
#include "tunnel/workers.h"

static void tunnel_usage(FILE *f)
{
	fprintf(f,
		"usage: warren-tunnel --config FILE\n"
		"       warren-tunnel --help | --version\n"
		"\n"
		"Per-node warren data plane: owns the 15001/15006/15008 listeners inside every\n"
		"enrolled pod's network namespace and relays their traffic.\n"
		"\n"
		"  -c, --config FILE  tunnel configuration (YAML or JSON); keys: node, pluginSocket,\n"
		"                     stateDir, meshPath (required), adminAddress, adminSocket,\n"
		"                     metricsAddress, readinessAddress, logLevel, logFile,\n"
		"                     trustDomain, meshReloadMs, accessLog (stdout|off|PATH),\n"
		"                     clusterId, caDir (mTLS; none = plaintext), certLifetimeSeconds,\n"
		"                     rootNamespace, poolMaxStreams, poolIdleTimeoutMs,\n"
		"                     hbonePingIntervalMs, keepCapabilities, adoptBatch,\n"
		"                     workerThreads, hostProbeSnat, kubeletUid, drainSeconds,\n"
		"                     hboneHandshakeTimeoutMs, hboneMaxPendingHandshakes,\n"
		"                     hboneMaxPendingPerSource\n"
		"  -h, --help         this help\n"
		"  -V, --version      print the version\n"
		"\n"
		"Admin API (adminSocket, default /var/run/warren/admin.sock): GET /pods,\n"
		"/workloads, /services, /connections, /certs, /policies, /pool, /config_dump,\n"
		"GET|POST /logging?level=LEVEL; on adminAddress (TCP, none by default) the\n"
		"read-only part only (no /certs, /config_dump, POST /logging); readiness: GET\n"
		"/healthz/ready (default :15021); Prometheus metrics: GET /metrics or\n"
		"/stats/prometheus (default :15020). One JSON access-log line per closed\n"
		"connection goes to accessLog (default stdout).\n"
		"Stop with SIGTERM or SIGINT; pod records in stateDir are kept for the restart.\n");
}

/*
 * The capabilities the data path needs once the servers are up: with
 * exactly these, tests/netns test_tunnel, test_e2e, test_mtls,
 * test_observe and test_runtime pass; without any one of them
 * test_tunnel.sh fails. Not kept: CAP_NET_RAW (CAP_NET_ADMIN also allows
 * SO_MARK and IP_TRANSPARENT; no raw sockets), CAP_NET_BIND_SERVICE (our
 * ports are above 1024 and bound before the drop; transparent upstreams
 * bind port 0), CAP_DAC_* (we stay uid 0 and only touch root's files),
 * CAP_SYS_RESOURCE (the fd limit is raised before the drop; CAP_SYS_ADMIN
 * already exempts pipes from the per-user pipe quota).
 */
static const struct {
	unsigned cap;
	const char *why;
} tunnel_kept_caps[] = {
	{ CAP_NET_ADMIN, "SO_MARK on in-pod sockets, IP_TRANSPARENT upstreams, nftables reads" },
	{ CAP_SYS_ADMIN, "setns into pod network namespaces" },
	/* opening /proc/PID/ns/net is a ptrace read check: without it EACCES
	 * for a process of another uid or with capabilities we no longer have
	 * (a container's init), and ctr records such paths for re-adoption */
	/* ... only until adoption is done (tunnel/harden.h), so never in
	 * the bounding set */
	{ CAP_SYS_PTRACE, "re-adopting pods recorded as /proc/PID/ns/net, until adoption is done" },
};

/* The process is single-threaded here: capabilities, the bounding set and
 * no_new_privs are per thread. 0 or -errno (logged). */
static int tunnel_drop_capabilities(void)
{
	bool have[ARRAY_SIZE(tunnel_kept_caps)];
	char kept[512] = "";
	size_t len = 0;
	bool bounds;
	int ret;

	if (capng_get_caps_process() < 0) {
		ret = errno ? -errno : -EIO;
		log_error("cannot read our capabilities: %s; set keepCapabilities: false to skip the drop",
			  strerror(-ret));
		return ret;
	}
	/* the bounding set only shrinks with CAP_SETPCAP (a container may not
	 * grant it); no_new_privs already keeps an exec from regaining more */
	bounds = capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP);
	for (size_t i = 0; i < ARRAY_SIZE(tunnel_kept_caps); i++)
		have[i] = capng_have_capability(CAPNG_PERMITTED, tunnel_kept_caps[i].cap);
	capng_clear(CAPNG_SELECT_ALL);
	for (size_t i = 0; i < ARRAY_SIZE(tunnel_kept_caps); i++) {
		const char *name = capng_capability_to_name(tunnel_kept_caps[i].cap);

		if (!have[i]) {
			log_warn("capability cap_%s is missing; %s will fail", name, tunnel_kept_caps[i].why);
			continue;
		}
		capng_update(CAPNG_ADD,
			     CAPNG_EFFECTIVE | CAPNG_PERMITTED |
				     (tunnel_kept_caps[i].cap == CAP_SYS_PTRACE ? 0 : CAPNG_BOUNDING_SET),
			     tunnel_kept_caps[i].cap);
		len += snprintf(kept + len, sizeof(kept) - len, "%scap_%s (%s)", len ? ", " : "", name,
				tunnel_kept_caps[i].why);
		if (len >= sizeof(kept))
			len = sizeof(kept) - 1;
	}
	ret = capng_apply(bounds ? CAPNG_SELECT_ALL : CAPNG_SELECT_CAPS | CAPNG_SELECT_AMBIENT);
	if (ret) {
		log_error("cannot drop capabilities (libcap-ng error %d); set keepCapabilities: false to "
			  "run with every capability", ret);
		return -EPERM;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		ret = -errno;
		log_error("cannot set no_new_privs: %s", strerror(-ret));
		return ret;
	}
	if (!bounds)
		log_warn("no CAP_SETPCAP: the capability bounding set is left as it was");
	log_info("capabilities: kept %s; dropped every other one%s; none inheritable or ambient; "
		 "no_new_privs set", kept[0] ? kept : "none",
		 bounds ? " (bounding set too)" : "");
	return 0;
}

static void tunnel_on_signal(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct signalfd_siginfo si;

	(void)l;
	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	tunnel_drain_start(ctx, (int)si.ssi_signo);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct tunnel_conf conf = { 0 };
	struct tunnel t = { .magic = TUNNEL_MAGIC, .conf = &conf, .handoff_fd = -1,
			   .snap_mu = PTHREAD_MUTEX_INITIALIZER };
	const char *config = NULL;
	char err[1024] = "";
	sigset_t mask;
	int sfd = -1, ret, c, rc = 1;

	while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			tunnel_usage(stdout);
			return 0;
		case 'V':
			printf("warren-tunnel %s\n", WARREN_VERSION);
			return 0;
		default:
			tunnel_usage(stderr);
			return 2;
		}
	}
	/* fds inherited from whoever started us are not ours to keep (kernels
	 * before 5.9 lack close_range: then they stay) */
	(void)close_range(3, ~0U, 0);
	if (!config || optind != argc) {
		fprintf(stderr, "warren-tunnel: %s\n", config ? "unexpected argument" : "--config FILE is required");
		tunnel_usage(stderr);
		return 2;
	}
	ret = tunnel_conf_load(config, &conf, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "warren-tunnel: cannot load config %s: %s\n", config, err[0] ? err : strerror(-ret));
		return 1;
	}
	ret = wlog_init("warren-tunnel", conf.log_file, conf.log_level);
	if (ret < 0)
		fprintf(stderr, "warren-tunnel: cannot open log file %s: %s; logging to stderr only\n",
			conf.log_file, strerror(-ret));

	signal(SIGPIPE, SIG_IGN);
	/* Before any thread and any privilege drop: the keeper of the eBPF
	 * capture's spare programs keeps what loading needs, we do not. */
	keeper_start(&t, conf.keep_capabilities);
	/* two fds per relayed connection (six while bulk data flows through
	 * pipes): the usual soft limit of 1024 would cap a node at a few
	 * hundred connections */
	{
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				log_warn("cannot raise the open-file limit: %s", strerror(errno));
		}
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	t.loop = loop_new();
	if (sfd < 0 || !t.loop) {
		log_error("cannot set up the event loop or signalfd: %s", strerror(errno));
		goto out;
	}
	if (loop_add(t.loop, sfd, EPOLLIN, tunnel_on_signal, &t) < 0)
		goto out;
	ret = tunnel_snap_start(&t);
	if (ret < 0) {
		log_error("cannot set up the model snapshots: %s", strerror(-ret));
		goto out;
	}
#ifdef __GLIBC__
	/* One malloc arena for every thread: glibc's per-thread arenas keep
	 * their free top chunk (up to twice the mmap threshold, which rises to
	 * 1 MiB with the HBONE buffers) even through malloc_trim(), so after a
	 * burst the tunnel kept megabytes it no longer used (docs/performance.md).
	 * The workers rarely malloc at the same time (tcache serves most). */
	mallopt(M_ARENA_MAX, 1);
	/* A fixed mmap threshold (glibc's default value). The dynamic one
	 * rises to the largest buffer freed so far (a grown HBONE output
	 * buffer or ring: up to MiBs), and from then on such buffers come
	 * from the heap, whose freed pages stay resident after a burst of
	 * held connections (docs/performance.md). Fixed, buffers from 128 KiB
	 * up are mapped, and unmapped when freed. */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
	ret = workers_create(&t, (unsigned)conf.worker_threads);
	if (ret < 0) {
		log_error("cannot create %d worker loops: %s", conf.worker_threads, strerror(-ret));
		goto out;
	}
	ret = metrics_new(&t.metrics);
	if (ret < 0) {
		log_error("cannot create the metrics registry: %s", strerror(-ret));
		goto out;
	}
	ret = accesslog_open(conf.access_log, &t.alog, err, sizeof(err));
	if (ret < 0) {
		log_error("%s", err);
		goto out;
	}
	log_info("warren-tunnel %s starting (node %s, mesh %s, state %s)", WARREN_VERSION,
		 conf.node ? conf.node : "?", conf.kube ? "from the Kubernetes API" : conf.mesh_path,
		 conf.state_dir);
	if (mtls_start(&t) < 0)
		goto out;
	if (admin_start(&t) < 0)
		goto out;
	if (conf.kube ? kube_tunnel_start(&t) < 0 : mesh_watch_start(&t) < 0)
		goto out;
	if (handoff_server_start(&t) < 0)
		goto out;
	if (host_probe_start(&t) < 0)
		goto out;
	ret = state_adopt_start(&t);
	if (ret < 0) {
		log_error("cannot start re-adopting the recorded pods: %s", strerror(-ret));
		goto out;
	}
	if (!conf.keep_capabilities)
		log_warn("keepCapabilities is false: running with every capability we were started with "
			 "(for debugging only)");
	else if (tunnel_drop_capabilities() < 0)
		goto out;
	if (workers_start(&t) < 0)
		goto out;
	ret = loop_run(t.loop);
	if (ret < 0) {
		log_error("event loop failed: %s", strerror(-ret));
		goto out;
	}
	rc = 0;
out:
	if (t.workers)
		workers_stop(&t); /* from here on, one thread again */
	handoff_server_stop(&t);
	state_adopt_stop(&t);
	if (t.retry_timer)
		loop_timer_cancel(t.loop, t.retry_timer);
	if (t.drain_timer)
		loop_timer_cancel(t.loop, t.drain_timer);
	while (t.pods)
		pod_free(t.pods); /* records stay on disk for the next start */
	host_probe_stop(&t); /* its table stays too (host_probe.c says why) */
	keeper_stop(&t);
	admin_stop(&t);
	mesh_watch_stop(&t);
	kube_tunnel_stop(&t);
	mtls_stop(&t);
	tunnel_snap_stop(&t); /* the workers let theirs go when they stopped */
	accesslog_close(t.alog);
	metrics_free(t.metrics);
	if (sfd >= 0) {
		if (t.loop)
			loop_del(t.loop, sfd);
		close(sfd);
	}
	workers_free(&t);
	loop_free(t.loop);
	log_info("warren-tunnel stopped");
	wlog_close();
	tunnel_conf_free(&conf);
	return rc;
}
