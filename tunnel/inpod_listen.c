/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-pod listeners: TCP [::]:15001, [::]:15006, [::]:15008, created
 * inside the pod netns (netns_socket), dual-stack, SO_MARK MARK_TUNNEL so
 * nothing they send is captured again, SO_REUSEADDR + SO_REUSEPORT so a
 * restarted tunnel can bind while the old process's sockets linger and so
 * each worker's shard has its own listener, the kernel spreading new
 * connections over them by their address hash. pod_listen() is
 * all-or-nothing over the shards; the fds are owned by each shard and
 * closed by pod_unlisten(). A pod captured by eBPF gets the first shard's
 * 15001 and 15006 in its pinned listener map (pod_publish): the program
 * assigns connections to them and the kernel's reuseport selection spreads
 * them over the shards; closing them empties the map (fail closed).
 */
#include "tunnel/inpod_listen.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "conf/log.h"
#include "conf/objcheck.h"
#include "conf/warren.h"
#include "netlink/inpod_ebpf.h"
#include "netlink/netns.h"
#include "tunnel/loop.h"
#include "tunnel/metrics.h"
#include "tunnel/pods.h"
#include "tunnel/proxy.h"
#include "tunnel/tunnel.h"
#include "tunnel/workers.h"

static const uint16_t lis_port[LIS_COUNT] = { PORT_OUTBOUND, PORT_INBOUND_PLAIN, PORT_INBOUND_HBONE };

#define LIS_PAUSE_MS 100
#define LIS_WARN_EVERY_MS 10000

static const char *const lis_name[LIS_COUNT] = { "outbound", "inbound", "hbone" };

static void lis_resume_one(struct pod_listener *pl)
{
	struct pod *p = pl->pod;

	if (pl->pause) {
		loop_timer_cancel(p->loop, pl->pause);
		pl->pause = NULL;
	}
	if (pl->fd >= 0)
		loop_mod(p->loop, pl->fd, EPOLLIN);
}

static void lis_pause_done(struct loop *l, void *ctx)
{
	struct pod_listener *pl = ctx;

	CHECK_OBJ(pl, LIS_MAGIC);
	pl->pause = NULL;
	lis_resume_one(pl);
}

void pod_listen_pause(struct pod_listener *pl, int err)
{
	/* One warning every 10 s for all listeners of all workers: a full fd
	 * table hits every pod at once. */
	static _Atomic uint64_t warned_ms;
	static _Atomic unsigned long pauses;
	struct pod *p = pl->pod;
	uint64_t now = loop_now_ms(), last = warned_ms;
	unsigned long n = ++pauses;

	metrics_accept_paused(p->t, lis_name[pl->kind]);
	if ((!last || now - last >= LIS_WARN_EVERY_MS) &&
	    atomic_compare_exchange_strong(&warned_ms, &last, now)) {
		pauses = 0;
		log_warn("cannot accept on the %s listener of pod %s/%s: %s; pausing accepts for %d ms "
			 "(%lu pauses since the last warning; see warren_accept_paused_total)",
			 lis_name[pl->kind], p->namespace, p->name, strerror(err), LIS_PAUSE_MS, n);
	}
	if (pl->pause || loop_mod(p->loop, pl->fd, 0) < 0)
		return;
	pl->pause = loop_timer_add(p->loop, LIS_PAUSE_MS, lis_pause_done, pl);
	if (!pl->pause)
		loop_mod(p->loop, pl->fd, EPOLLIN);
}

void pod_listen_resume(struct pod *p)
{
	for (int k = 0; k < LIS_COUNT; k++)
		if (p->lis[k].pause)
			lis_resume_one(&p->lis[k]);
}

static void lis_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct pod_listener *pl = ctx;

	CHECK_OBJ(pl, LIS_MAGIC);
	proxy_accept(pl);
}

static int lis_listen_one(int netns_fd, uint16_t port, bool transparent, const char **what)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT,
				   .sin6_port = htons(port) };
	int one = 1, zero = 0, fd, ret;
	unsigned mark = MARK_TUNNEL;

	*what = "socket in the pod netns";
	fd = netns_socket(netns_fd, AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	*what = "setsockopt";
	if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    /* inherited by accepted sockets: relayed bytes leave at once */
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		goto fail;
	/* the app's connections, accepted here, reset if the tunnel dies
	 * (relay.h); 15008's peers are tunnels, which tell a cut TLS stream */
	*what = "SO_LINGER";
	if (port != PORT_INBOUND_HBONE && sock_rst_on_exit(fd) < 0)
		goto fail;
	/* eBPF capture assigns the app's outbound connections to 15001 with
	 * their original (non-local) destination as the local address: the
	 * SYN-ACK may only leave from it on a transparent socket. */
	*what = "IP_TRANSPARENT (needs CAP_NET_ADMIN)";
	if (transparent && (setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0 ||
			    setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one)) < 0))
		goto fail;
	*what = "SO_MARK (needs CAP_NET_ADMIN)";
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0)
		goto fail;
	*what = "bind";
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail;
	*what = "listen";
	if (listen(fd, 1024) < 0)
		goto fail;
	return fd;
fail:
	ret = -errno;
	close(fd);
	return ret;
}

/* The sockets are made while the workers run; only their registration in
 * the worker's loop isolates it. */
static int lis_shard_listen(struct pod *p, char *err, size_t errlen)
{
	const struct pod *prim = pod_primary(p);
	int fds[LIS_COUNT], ret = 0, k, n;
	const char *what = "";

	for (n = 0; n < LIS_COUNT; n++) {
		ret = lis_listen_one(p->netns_fd, lis_port[n],
				 prim->mode.redirect == INPOD_REDIRECT_EBPF && n == LIS_OUTBOUND, &what);
		if (ret < 0)
			break;
		fds[n] = ret;
	}
	k = n;
	if (ret >= 0) {
		workers_isolate(p->t);
		for (k = 0; k < LIS_COUNT; k++) {
			ret = loop_add(p->loop, fds[k], EPOLLIN, lis_cb, &p->lis[k]);
			if (ret < 0) {
				what = "loop_add";
				break;
			}
			p->lis[k].fd = fds[k];
		}
		if (ret >= 0)
			p->listening = true;
		workers_release(p->t);
	}
	if (ret < 0) /* what was registered goes with lis_shard_unlisten() */
		for (int i = k; i < n; i++)
			close(fds[i]);
	else
		ret = 0;
	if (ret < 0)
		snprintf(err, errlen, "cannot create listener on [::]:%u in the netns of pod %s/%s (%s): %s: %s",
			 lis_port[k], p->namespace, p->name, p->netns_path, what, strerror(-ret));
	return ret;
}

static void lis_shard_unlisten(struct pod *p)
{
	workers_isolate(p->t);
	for (int k = 0; k < LIS_COUNT; k++) {
		if (p->lis[k].pause) {
			loop_timer_cancel(p->loop, p->lis[k].pause);
			p->lis[k].pause = NULL;
		}
		if (p->lis[k].fd < 0)
			continue;
		loop_del(p->loop, p->lis[k].fd);
		close(p->lis[k].fd);
		p->lis[k].fd = -1;
	}
	p->listening = false;
	workers_release(p->t);
}

int pod_publish(struct pod *p, char *err, size_t errlen)
{
	char e[384];
	int ret;

	CHECK_OBJ(p, POD_MAGIC);
	if (p->mode.redirect != INPOD_REDIRECT_EBPF || !p->listening)
		return 0;
	ret = ebpf_capture_publish(p->mode.bpf_dir, p->container_id, p->lis[LIS_OUTBOUND].fd, p->lis[LIS_INBOUND].fd, e,
				   sizeof(e));
	if (ret < 0)
		snprintf(err, errlen, "pod %s/%s: %s", p->namespace, p->name, e);
	return ret;
}

int pod_listen(struct pod *p, char *err, size_t errlen)
{
	int ret;

	CHECK_OBJ(p, POD_MAGIC);
	assert(!p->primary);
	if (p->listening)
		return 0;
	for (struct pod *s = p; s; s = s->next_shard) {
		ret = lis_shard_listen(s, err, errlen);
		if (ret < 0) {
			pod_unlisten(p);
			return ret;
		}
	}
	ret = pod_publish(p, err, errlen);
	if (ret < 0)
		pod_unlisten(p);
	return ret;
}

void pod_unlisten(struct pod *p)
{
	if (!p)
		return;
	assert(!p->primary);
	for (struct pod *s = p; s; s = s->next_shard)
		lis_shard_unlisten(s);
}
