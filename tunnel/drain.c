/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Graceful stop on SIGTERM, for rollouts with no failed connection (the
 * shape of ztunnel's). The successor starts while
 * this tunnel runs: it takes over the plugin and admin sockets (their
 * paths, by unlinking and binding anew), binds the admin, metrics and
 * readiness ports beside ours (SO_REUSEPORT; seeing adminSocket taken,
 * admin.c closes our readiness port), adopts every pod from the shared
 * state directory and, once it can serve them (a model; each pod's
 * certificate), opens its listeners in each pod beside ours (the same
 * SO_REUSEPORT groups). Then this tunnel gets SIGTERM and:
 *
 *  - closes its listeners in every pod at once, so new connections go to
 *    the successor's; first it sets net.ipv4.tcp_migrate_req in each pod,
 *    so that connections already queued on our listeners move to the
 *    successor's instead of being reset;
 *  - sends its peers a GOAWAY notice on every inbound HBONE connection,
 *    so their pools open new streams on new connections (the successor's)
 *    while the streams in flight finish here; a connection still in its
 *    handshake, or accepted but not yet served, gets it once open;
 *  - stops serving the plugin (a request already read is refused with a
 *    reason) and reports not ready;
 *  - keeps relaying its established connections until they end or
 *    drainSeconds pass, then stops: what is left is reset, as ztunnel's
 *    (an L4 proxy cannot hand over a TCP connection).
 *
 * Without a successor the same holds: new connections are refused by the
 * pods' own rules (fail closed) while established ones finish. A second
 * signal, or drainSeconds: 0, stops at once. State records stay either way.
 * Main thread only.
 */
#include "tunnel/drain.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "conf/log.h"
#include "netlink/netns.h"
#include "tunnel/handoff_server.h"
#include "tunnel/hbone.h"
#include "tunnel/inpod_listen.h"
#include "tunnel/loop.h"
#include "tunnel/mtls.h"
#include "tunnel/pods.h"
#include "tunnel/state.h"
#include "tunnel/tunnel.h"
#include "tunnel/workers.h"

#define DRAIN_POLL_MS 100

/* Queued connections of a closing listener go to another listener of its
 * SO_REUSEPORT group (Linux 5.14+). Per netns, so per pod; best effort. */
static void drain_migrate_on_close(struct pod *p)
{
	int ret = netns_sysctl_write(p->netns_fd, "/proc/sys/net/ipv4/tcp_migrate_req", "1");

	/* In a container /proc/sys is read-only: the plugin set it at ADD. */
	if (ret < 0)
		log_debug("pod %s/%s: cannot set net.ipv4.tcp_migrate_req: %s (the plugin sets it at ADD)",
			  p->namespace, p->name, strerror(-ret));
}

static size_t drain_live_connections(struct tunnel *t)
{
	size_t n = 0;

	workers_isolate(t); /* the counts are the workers' */
	for (const struct pod *p = t->pods; p; p = p->next)
		n += pod_conn_count(p);
	workers_release(t);
	return n;
}

static void drain_tick(struct loop *l, void *ctx)
{
	struct tunnel *t = ctx;
	uint64_t now = loop_now_ms();
	size_t n;

	CHECK_OBJ(t, TUNNEL_MAGIC);
	t->drain_timer = NULL;
	n = drain_live_connections(t);
	/* With inbound HBONE connections, a CONNECT sent before the peer saw
	 * our GOAWAY notice may still be on its way: the grace is waited out. */
	if (!n && now >= t->drain_start_ms + t->drain_min_ms) {
		log_info("drained: no connection left after %.1f s; stopping",
			 (double)(loop_now_ms() - t->drain_start_ms) / 1000);
		loop_stop(l);
		return;
	}
	if (now >= t->drain_start_ms + (uint64_t)t->conf->drain_seconds * 1000) {
		log_info("drain period (drainSeconds: %d) over: closing the %zu connection(s) left",
			 t->conf->drain_seconds, n);
		loop_stop(l);
		return;
	}
	t->drain_timer = loop_timer_add(l, DRAIN_POLL_MS, drain_tick, t);
	if (!t->drain_timer) {
		log_warn("cannot schedule the drain check (out of memory); stopping now");
		loop_stop(l);
	}
}

void tunnel_drain_start(struct tunnel *t, int signo)
{
	size_t pods = 0;

	if (t->draining || t->conf->drain_seconds == 0) {
		log_info("received signal %d%s; stopping (pod records kept for the next start)", signo,
			 t->draining ? " while draining" : "");
		loop_stop(t->loop);
		return;
	}
	/* The workers read draining and own the shards' listeners and HBONE
	 * connections: all of it changes at once. */
	workers_isolate(t);
	t->draining = true;
	t->drain_start_ms = loop_now_ms();
	state_adopt_stop(t);
	if (t->retry_timer) {
		loop_timer_cancel(t->loop, t->retry_timer);
		t->retry_timer = NULL;
	}
	handoff_server_stop(t);
	for (struct pod *p = t->pods; p; p = p->next) {
		if (!p->listening)
			continue;
		drain_migrate_on_close(p);
		pod_unlisten(p);
		pods++;
	}
	/* Peers' pools must stop opening streams on our inbound HBONE
	 * connections, or they would keep this tunnel busy to the end. */
	t->drain_min_ms = 0;
	for (struct pod *s = t->pods; s; s = pod_shard_next(s)) {
		for (struct hsrv *h = s->hsrvs; h; h = h->next) {
			hbone_conn_goaway(h->hc);
			t->drain_min_ms = HBONE_GOAWAY_GRACE_MS + 2 * DRAIN_POLL_MS;
		}
	}
	workers_release(t);
	log_info("received signal %d: draining. Listeners closed in %zu pod(s) and the plugin socket closed; %zu established connection(s) are served for up to %d s (a second signal stops at once)",
		 signo, pods, drain_live_connections(t), t->conf->drain_seconds);
	drain_tick(t->loop, t);
}
