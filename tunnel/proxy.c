/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Capture: accept on a pod's 15001/15006
 * listeners, recover the original destination (nftables mode: from
 * conntrack, SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST; eBPF mode: the
 * accepted socket's own local address, which the sk_lookup program left
 * untouched), open the upstream socket in
 * the pod netns with SO_MARK MARK_TUNNEL, connect without blocking (10 s
 * timeout) and hand both fds to relay_start(). Every connection's route is
 * resolved once (route.c) and read by everything after; in mTLS mode (t->sec)
 * an outbound route is HBONE to an enrolled destination (opened by
 * mtls_outbound_hbone()), else plain TCP to the resolved target; 15008 is
 * served by mtls_hbone_accept(), and an inbound HBONE stream uses the same
 * upstream connect as 15006, then hbone_stream_accept() instead of a
 * relay. Without a CA, 15008 connections are accepted and closed.
 *
 * Until the tunnel can serve (tunnel_serving: a model, its policies, a CA
 * or mtls: disabled) every accepted connection is reset at once, so
 * nothing is relayed unpoliced or in plaintext after a restart.
 *
 * Inbound L4 policy (conn_authorize) applies to 15006 (no identity) and
 * HBONE streams (the peer's SPIFFE ID) before the upstream connect, and
 * again on every model change (proxy_policy_recheck).
 *
 * Inbound preserves the client's address: the upstream socket is
 * IP_TRANSPARENT + IP_FREEBIND and bound to the client IP, and the in-pod
 * connmark 0x111 / table 100 rules route the app's replies back to it.
 *
 * Every accepted connection is a struct conn on its pod's list until the
 * relay's done_cb (or a failure) frees it. A failure before relaying
 * resets the app's connection (SO_LINGER 0): the app saw its connect()
 * succeed, so a reset is the honest signal.
 *
 * Observability hooks: metrics_conn_open() once the original destination
 * is known, metrics_conn_close() in conn_free() (every end, failures
 * included): counters and the access-log line live in metrics.c.
 */
#include "tunnel/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "conf/log.h"
#include "conf/warren.h"
#include "netlink/netns.h"
#include "tunnel/hbone.h"
#include "tunnel/inpod_listen.h"
#include "tunnel/loop.h"
#include "tunnel/metrics.h"
#include "tunnel/mtls.h"
#include "tunnel/pods.h"
#include "tunnel/relay.h"
#include "tunnel/tunnel.h"
#include "tunnel/workers.h"

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif
#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78
#endif

#define CONNECT_TIMEOUT_MS 10000
#define ACCEPT_BATCH 64

static const char *const proxy_dir_name[] = { "outbound", "inbound" };

/* v's digits at p; returns the end. */
static char *proxy_put_uint(char *p, unsigned v)
{
	char t[10];
	size_t n = 0;

	do {
		t[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = t[--n];
	return p;
}

/* Digit by digit rather than through snprintf: every access log line and
 * debug line takes two. */
const char *sockaddr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char t[INET6_ADDRSTRLEN + 16], *p = t;
	size_t n;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)ss;
		const unsigned char *b = (const void *)&s4->sin_addr;

		for (int i = 0; i < 4; i++) {
			p = proxy_put_uint(p, b[i]);
			*p++ = i < 3 ? '.' : ':';
		}
		p = proxy_put_uint(p, ntohs(s4->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		*p++ = '[';
		if (!inet_ntop(AF_INET6, &s6->sin6_addr, p, INET6_ADDRSTRLEN))
			strcpy(p, "?");
		p += strlen(p);
		*p++ = ']';
		*p++ = ':';
		p = proxy_put_uint(p, ntohs(s6->sin6_port));
	} else {
		*p++ = '?';
	}
	n = (size_t)(p - t);
	if (len) { /* as snprintf: cut to fit, always terminated */
		n = n < len - 1 ? n : len - 1;
		memcpy(buf, t, n);
		buf[n] = 0;
	}
	return buf;
}

/* v4-mapped v6 -> v4, so dual-stack listeners give one form per family. */
void ss_canonicalise(struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *s6 = (void *)ss;
	struct sockaddr_in s4 = { .sin_family = AF_INET };

	if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		return;
	s4.sin_port = s6->sin6_port;
	memcpy(&s4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &s4, sizeof(s4));
}

uint16_t ss_port(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
					      : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

socklen_t ss_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static bool proxy_ss_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

bool ss_same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return IN6_ARE_ADDR_EQUAL(&((const struct sockaddr_in6 *)a)->sin6_addr,
				  &((const struct sockaddr_in6 *)b)->sin6_addr);
}

bool port_is_tunnel(uint16_t port)
{
	return port == PORT_OUTBOUND || port == PORT_INBOUND_PLAIN || port == PORT_INBOUND_HBONE;
}

static int proxy_original_dst(const struct pod *p, int fd, struct sockaddr_storage *dst)
{
	socklen_t len = sizeof(struct sockaddr_in);

	memset(dst, 0, sizeof(*dst));
	/* The mode lives on the primary (shards copy only what they serve). */
	if ((p->primary ? p->primary : p)->mode.redirect == INPOD_REDIRECT_EBPF) {
		len = sizeof(*dst);
		if (getsockname(fd, (struct sockaddr *)dst, &len) < 0)
			return -errno;
		goto ok;
	}
	/* A v4 flow on a dual-stack socket is tracked by IPv4 conntrack. */
	if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, dst, &len) == 0)
		goto ok;
	len = sizeof(struct sockaddr_in6);
	memset(dst, 0, sizeof(*dst));
	if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, dst, &len) == 0)
		goto ok;
	return -errno;
ok:
	ss_canonicalise(dst);
	return 0;
}

void rst_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* The one teardown. st: the relay's final stats (NULL: it never relayed);
 * reason: why it ended (NULL: st's). A stream still attached is detached
 * first (its done callback then ignores it), then ended: a pending inbound
 * one is answered 503, any other reset. */
void conn_free(struct conn *c, const struct relay_stats *st, const char *reason)
{
	struct pod *p = c->pod;

	metrics_conn_close(c, st, reason);
	if (c->hs) {
		struct hbone_stream *s = c->hs;

		c->hs = NULL;
		hbone_stream_set_user(s, NULL);
		if (c->dir == CONN_INBOUND && !c->hs_open)
			hbone_stream_reject(s, 503);
		else
			hbone_stream_abort(s, reason ? reason : "closed");
	}
	if (c->timer)
		loop_timer_cancel(p->loop, c->timer);
	if (c->up_fd >= 0) {
		loop_forget(p->loop, c->up_fd);
		rst_close(c->up_fd);
	}
	rst_close(c->app_fd);
	pod_listen_resume(p); /* fds freed: a paused listener may accept again */
	route_clear(&c->route);
	free(c->early_reason);
	if (c->prev)
		c->prev->next = c->next;
	else
		p->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	p->n_conns--;
	c->magic = 0;
	free(c);
}

void conn_fail(struct conn *c, const char *what, int err)
{
	char s[64], d[64], why[512];

	snprintf(why, sizeof(why), "%s%s%s", what, err ? ": " : "", err ? strerror(err) : "");
	log_info("%s%s connection %s -> %s of pod %s/%s failed: %s; %s", proxy_dir_name[c->dir],
		 c->hbone ? " HBONE" : "", sockaddr_str(&c->src, s, sizeof(s)),
		 sockaddr_str(&c->dst, d, sizeof(d)), c->pod->namespace, c->pod->name, why,
		 c->hbone && c->dir == CONN_INBOUND ? "answering 503" : "resetting the app's connection");
	conn_free(c, NULL, why);
}

void conn_hs_reject(struct conn *c, int status, const char *why)
{
	struct hbone_stream *s = c->hs;
	char src[64], d[64];

	log_info("inbound HBONE stream %s -> %s of pod %s/%s (peer %s) refused with %d: %s",
		 sockaddr_str(&c->src, src, sizeof(src)), sockaddr_str(&c->dst, d, sizeof(d)),
		 c->pod->namespace, c->pod->name, c->route.peer_id ? c->route.peer_id : "?", status, why);
	c->hs = NULL;
	if (s)
		hbone_stream_set_user(s, NULL);
	conn_free(c, NULL, why);
	if (s)
		hbone_stream_reject(s, status);
}

void conn_get_stats(const struct conn *c, struct relay_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (c->relay) {
		relay_get_stats(c->relay, st);
	} else if (c->hs) {
		struct hbone_stream_stats hs;

		hbone_stream_get_stats(c->hs, &hs);
		/* the stream's socket is the app (outbound) or the upstream (inbound) */
		st->a_to_b = c->dir == CONN_OUTBOUND ? hs.tx : hs.rx;
		st->b_to_a = c->dir == CONN_OUTBOUND ? hs.rx : hs.tx;
	}
}

/* Both directions: the stream ended. */
static void proxy_hs_done(struct conn *c, const struct hbone_stream_stats *hst)
{
	struct relay_stats st = {
		.a_to_b = c->dir == CONN_OUTBOUND ? hst->tx : hst->rx,
		.b_to_a = c->dir == CONN_OUTBOUND ? hst->rx : hst->tx,
		.reason = hst->reason[0] ? hst->reason : "closed",
	};
	char s[64], d[64];

	c->hs = NULL;
	if (!c->hs_open) {
		char why[320];

		if (c->dir == CONN_OUTBOUND && hst->status && hst->status != 200)
			snprintf(why, sizeof(why), "destination answered %d: %s", hst->status, hst->reason);
		else
			snprintf(why, sizeof(why), "HBONE stream failed: %s", hst->reason);
		conn_fail(c, why, 0);
		return;
	}
	log_debug("%s HBONE connection %s -> %s of pod %s/%s ended (%s): %llu bytes sent, %llu received",
		  proxy_dir_name[c->dir], sockaddr_str(&c->src, s, sizeof(s)),
		  sockaddr_str(&c->dst, d, sizeof(d)), c->pod->namespace, c->pod->name, st.reason,
		  (unsigned long long)st.a_to_b, (unsigned long long)st.b_to_a);
	conn_free(c, &st, hst->ok ? "closed" : st.reason);
}

void conn_hs_out_done(void *ctx, struct hbone_stream *s, const struct hbone_stream_stats *st)
{
	struct conn *c = ctx;

	CHECK_OBJ(c, CONN_MAGIC);
	if (c->opening) { /* ended inside hbone_pool_open: the opener handles it */
		free(c->early_reason);
		c->early_reason = strdup(st->reason[0] ? st->reason : "stream ended at once");
		return;
	}
	if (c->hs != s)
		return; /* detached by conn_free */
	if (st->status == 200)
		c->hs_open = true;
	proxy_hs_done(c, st);
}

void conn_hs_in_done(void *ctx, struct hbone_stream *s, const struct hbone_stream_stats *st)
{
	struct conn *c = hbone_stream_user(s);

	(void)ctx;
	if (!c)
		return;
	CHECK_OBJ(c, CONN_MAGIC);
	proxy_hs_done(c, st);
}

static void proxy_relay_done(void *ctx, const struct relay_stats *st);
static void proxy_conn_relay(struct conn *c);

/* Upstream connected: relay, or answer the inbound HBONE stream 200. */
static void proxy_conn_connected(struct conn *c)
{
	struct hbone_stream *s = c->hs;
	int fd = c->up_fd, ret;

	if (!c->hbone) {
		proxy_conn_relay(c);
		return;
	}
	assert(c->dir == CONN_INBOUND && s);
	c->up_fd = -1;
	c->hs_open = true;
	/* last use of c: a stream failing inside accept frees it */
	ret = hbone_stream_accept(s, fd);
	if (ret < 0)
		log_debug("HBONE stream accept failed: %s", strerror(-ret));
}

static void proxy_relay_done(void *ctx, const struct relay_stats *st)
{
	struct conn *c = ctx;
	char s[64], d[64];

	CHECK_OBJ(c, CONN_MAGIC);
	log_debug("%s connection %s -> %s of pod %s/%s ended (%s): %llu bytes sent, %llu received, %llu ms",
		  proxy_dir_name[c->dir], sockaddr_str(&c->src, s, sizeof(s)),
		  sockaddr_str(&c->dst, d, sizeof(d)), c->pod->namespace, c->pod->name,
		  st->reason ? st->reason : "closed", (unsigned long long)st->a_to_b,
		  (unsigned long long)st->b_to_a,
		  (unsigned long long)(loop_now_ms() - c->start_ms));
	c->relay = NULL;
	conn_free(c, st, NULL);
}

static void proxy_conn_relay(struct conn *c)
{
	struct relay *r = NULL;
	int a = c->app_fd, b = c->up_fd, ret;

	c->app_fd = c->up_fd = -1;
	/* relay_start owns both fds from here on, on every path. */
	ret = relay_start(c->pod->loop, a, b, proxy_relay_done, c, &r);
	if (ret < 0) {
		conn_fail(c, "cannot start the relay", -ret);
		return;
	}
	c->relay = r;
}

static void proxy_connect_timeout(struct loop *l, void *ctx)
{
	struct conn *c = ctx;

	CHECK_OBJ(c, CONN_MAGIC);
	c->timer = NULL;
	conn_fail(c, "upstream connect timed out after 10 s", 0);
}

static void proxy_upstream_writable(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct conn *c = ctx;
	socklen_t len = sizeof(int);
	int err = 0;

	CHECK_OBJ(c, CONN_MAGIC);
	/* A failed connect reports EPOLLERR; writable alone means connected,
	 * without asking SO_ERROR. */
	if (events & (EPOLLERR | EPOLLHUP)) {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err == 0 && !(events & EPOLLOUT))
			err = ECONNRESET;
	}
	if (err) {
		conn_fail(c, "upstream connect failed", err);
		return;
	}
	/* The relay takes the registration over (relay_start); an HBONE
	 * stream registers the socket itself. */
	if (c->hbone)
		loop_del(l, fd);
	loop_timer_cancel(l, c->timer);
	c->timer = NULL;
	proxy_conn_connected(c);
}

/* One upstream socket in the pod, from the client's address when it is
 * another's (source-preserving): fd, or -errno with what. */
static int proxy_upstream_socket1(struct conn *c, const char **what)
{
	struct pod *p = c->pod;
	int fd, one = 1;

	*what = "cannot create the upstream socket in the pod netns";
	fd = pod_socket(p, c->route.target.ss_family);
	if (fd < 0)
		return fd;
	*what = "cannot set SO_LINGER on the upstream socket";
	if (sock_rst_on_exit(fd) < 0) /* an app is at the other end (relay.h) */
		goto fail;
	if (c->dir == CONN_INBOUND && c->src.ss_family == c->route.target.ss_family &&
	    !ss_same_ip(&c->src, &c->route.target)) {
		struct sockaddr_storage b = c->src;

		/* Transparent alone lets bind() take the client's (non-local)
		 * address; IP_FREEBIND on top would add nothing. */
		*what = "cannot make the upstream socket transparent (source-preserving)";
		if (c->route.target.ss_family == AF_INET) {
			if (setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0)
				goto fail;
			((struct sockaddr_in *)&b)->sin_port = 0;
		} else {
			if (setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one)) < 0)
				goto fail;
			((struct sockaddr_in6 *)&b)->sin6_port = 0;
		}
		/* eBPF capture: over lo, the program passes it to the app
		 * (docs/ebpf.md); otherwise it arrives "on eth0", like the
		 * client's own connection, and would be captured again. */
		*what = "cannot bind the upstream socket to lo (eBPF capture)";
		if ((p->primary ? p->primary : p)->mode.redirect == INPOD_REDIRECT_EBPF &&
		    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3) < 0)
			goto fail;
		*what = "cannot bind the upstream socket to the client's address";
		if (bind(fd, (struct sockaddr *)&b, ss_len(&b)) < 0)
			goto fail;
	}
	return fd;
fail:
	{
		int ret = -errno;

		close(fd);
		return ret;
	}
}

/* eBPF capture: the client's connection, assigned to our 15006, keeps the
 * target as its local address. An upstream bound to the client's address
 * and the same port would make the app's side of it the same four-tuple:
 * its SYN would find the client's connection instead of the app, and the
 * connect hang until it timed out (docs/ebpf.md). 1 when fd got that port. */
static bool proxy_upstream_twins_client(const struct conn *c, int fd)
{
	struct sockaddr_storage b;
	socklen_t len = sizeof(b);

	if (c->dir != CONN_INBOUND || c->hbone ||
	    (c->pod->primary ? c->pod->primary : c->pod)->mode.redirect != INPOD_REDIRECT_EBPF ||
	    getsockname(fd, (struct sockaddr *)&b, &len) < 0 || b.ss_family != c->src.ss_family)
		return false;
	return ss_port(&b) == ss_port(&c->src) && ss_same_ip(&b, &c->src);
}

int conn_upstream_socket(struct conn *c, const char **what)
{
	int fd = proxy_upstream_socket1(c, what), other;

	if (fd < 0 || !proxy_upstream_twins_client(c, fd))
		return fd;
	/* bound while the next one binds: the kernel picks another port */
	other = proxy_upstream_socket1(c, what);
	close(fd);
	return other;
}

struct conn *conn_new(struct pod *p, enum conn_dir dir, int fd, const struct sockaddr_storage *src)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	/* calloc zeroed the rest (a compound literal would zero and copy
	 * all of its ~1 KiB again) */
	c->magic = CONN_MAGIC;
	c->pod = p;
	c->dir = dir;
	c->src = *src;
	c->start_ms = loop_now_ms();
	c->app_fd = fd;
	c->up_fd = -1;
	ss_canonicalise(&c->src);
	route_begin(&c->route, p->t, p);
	c->next = p->conns;
	if (p->conns)
		p->conns->prev = c;
	p->conns = c;
	p->n_conns++;
	return c;
}

int conn_authorize(struct conn *c)
{
	struct tunnel *t = c->pod->t;
	struct authz_decision d;
	char s[64], dst[64], why[900];

	if (!authz_set_count(tunnel_policies(t)))
		return 0; /* no policy: nothing to decide, the access log says "none" */
	if (!mtls_authorize(c, &d)) {
		metrics_conn_policy(c, true, d.policy[0] == '(' ? NULL : d.policy);
		return 0;
	}
	metrics_conn_policy(c, false, d.policy[0] == '(' ? NULL : d.policy);
	snprintf(why, sizeof(why), "denied by policy %s: %s", d.policy, d.reason);
	if (c->hbone) {
		conn_hs_reject(c, 401, why);
		return -EACCES;
	}
	log_info("inbound connection %s -> %s of pod %s/%s (%s) %s; resetting it",
		 sockaddr_str(&c->src, s, sizeof(s)), sockaddr_str(&c->dst, dst, sizeof(dst)),
		 c->pod->namespace, c->pod->name, c->route.peer_id ? c->route.peer_id : "plaintext", why);
	conn_free(c, NULL, why);
	return -EACCES;
}

void conn_connect(struct conn *c)
{
	struct pod *p = c->pod;
	const char *what = "";
	int ret;

	ret = conn_upstream_socket(c, &what);
	if (ret < 0) {
		conn_fail(c, what, -ret);
		return;
	}
	c->up_fd = ret;
	if (connect(c->up_fd, (struct sockaddr *)&c->route.target, ss_len(&c->route.target)) == 0) {
		proxy_conn_connected(c);
		return;
	}
	if (errno != EINPROGRESS) {
		conn_fail(c, "upstream connect failed", errno);
		return;
	}
	c->timer = loop_timer_add(p->loop, CONNECT_TIMEOUT_MS, proxy_connect_timeout, c);
	if (!c->timer) {
		conn_fail(c, "cannot arm the connect timer", ENOMEM);
		return;
	}
	ret = loop_add(p->loop, c->up_fd, EPOLLOUT, proxy_upstream_writable, c);
	if (ret < 0) {
		/* not registered: keep conn_free from deleting it */
		int ufd = c->up_fd;

		c->up_fd = -1;
		rst_close(ufd);
		conn_fail(c, "cannot watch the upstream socket", -ret);
	}
}

static void proxy_conn_start(struct pod *p, enum conn_dir dir, int fd, struct sockaddr_storage *src)
{
	struct conn *c;
	char s[64], d[64];
	int ret;

	c = conn_new(p, dir, fd, src);
	if (!c) {
		log_error("out of memory accepting a connection for pod %s/%s", p->namespace, p->name);
		rst_close(fd);
		return;
	}
	ret = proxy_original_dst(p, fd, &c->dst);
	if (ret < 0) {
		conn_fail(c, "no original destination (was the connection redirected by the in-pod rules?)", -ret);
		return;
	}
	if (dir == CONN_OUTBOUND && proxy_ss_loopback(&c->dst) && port_is_tunnel(ss_port(&c->dst))) {
		conn_fail(c, "self-call to a tunnel port refused", 0);
		return;
	}
	if (dir == CONN_INBOUND && port_is_tunnel(ss_port(&c->dst))) {
		conn_fail(c, "inbound to a tunnel port refused (self-call)", 0);
		return;
	}
	log_debug("%s connection %s -> %s of pod %s/%s accepted", proxy_dir_name[dir],
		  sockaddr_str(&c->src, s, sizeof(s)), sockaddr_str(&c->dst, d, sizeof(d)),
		  p->namespace, p->name);
	if (dir == CONN_INBOUND) {
		route_inbound(&c->route, p->t, p, &c->src, &c->dst);
		if (conn_authorize(c) < 0)
			return;
	} else {
		char why[400];

		switch (route_outbound(&c->route, p->t, p, &c->dst, p->t->sec != NULL, why,
				       sizeof(why))) {
		case ROUTE_REFUSE:
			if (c->route.waypoint.refused)
				metrics_waypoint_refused(p->t, c->route.waypoint.name,
							 c->route.waypoint.refused);
			conn_fail(c, why, 0);
			return;
		case ROUTE_HBONE:
			mtls_outbound_hbone(c);
			return; /* c is owned by its stream, or gone */
		case ROUTE_PLAIN:
			break;
		}
	}
	metrics_conn_open(c);
	conn_connect(c);
}

void proxy_snap_changed(struct tunnel *t, unsigned worker)
{
	for (struct pod *p = t->pods; p; p = pod_shard_next(p)) {
		struct conn *c, *next;

		if (p->worker != worker)
			continue; /* another worker's: not even its list head */
		for (c = p->conns; c; c = next) {
			struct authz_decision d;
			char why[400], s[64], dst[64];

			next = c->next;
			CHECK_OBJ(c, CONN_MAGIC);
			/* every route: the old model goes once we let it go */
			route_rebind(&c->route, t, p, &c->src, &c->dst);
			if (c->dir != CONN_INBOUND || (!c->relay && !c->hs && c->up_fd < 0))
				continue;
			if (!authz_set_count(tunnel_policies(t)) || !mtls_authorize(c, &d))
				continue;
			snprintf(why, sizeof(why), "closed by policy change: %s", d.policy);
			log_info("inbound %sconnection %s -> %s of pod %s/%s (%s) %s (%s)",
				 c->hbone ? "HBONE " : "", sockaddr_str(&c->src, s, sizeof(s)),
				 sockaddr_str(&c->dst, dst, sizeof(dst)), p->namespace, p->name,
				 c->route.peer_id ? c->route.peer_id : "plaintext", why, d.reason);
			metrics_conn_policy(c, false, d.policy[0] == '(' ? NULL : d.policy);
			if (c->relay)
				relay_abort(c->relay, why); /* done_cb frees c */
			else if (c->hbone && c->hs && !c->hs_open)
				conn_hs_reject(c, 401, why); /* still connecting upstream */
			else
				conn_free(c, NULL, why);
		}
	}
}

#define GATE_LOG_MS 5000

/* The gate is closed (tunnel_serving): reset fd, and say why at most once
 * per GATE_LOG_MS over all workers, with the count refused meanwhile. */
static void proxy_gate_refuse(struct pod *p, enum lis_kind kind, int fd, const char *why)
{
	static const unsigned short port[] = { PORT_OUTBOUND, PORT_INBOUND_PLAIN, PORT_INBOUND_HBONE };
	struct tunnel *t = p->t;
	uint64_t now = loop_now_ms(), last = atomic_load(&t->gate_log_ms);
	uint64_t n = atomic_fetch_add(&t->gate_refused, 1) + 1;

	rst_close(fd);
	if ((last && now - last < GATE_LOG_MS) ||
	    !atomic_compare_exchange_strong(&t->gate_log_ms, &last, now))
		return;
	log_warn("refusing captured connections (%llu so far; this one on port %u of pod %s/%s): %s. Nothing is relayed past policy or in plaintext until this is fixed",
		 (unsigned long long)n, port[kind], p->namespace, p->name, why);
}

void proxy_accept(struct pod_listener *pl)
{
	struct pod *p = pl->pod;
	const char *why;

	CHECK_OBJ(p, POD_MAGIC);
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage src;
		socklen_t len = sizeof(src);
		char s[64];
		int fd;

		fd = accept4(pl->fd, (struct sockaddr *)&src, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			if (errno == ECONNABORTED)
				continue;
			/* EMFILE & co: the connection stays queued, the
			 * listener readable; polling it now would spin. */
			pod_listen_pause(pl, errno);
			return;
		}
		/* Before any model, policy or CA: refused, never relayed. */
		if (!tunnel_serving(p->t, &why)) {
			proxy_gate_refuse(p, pl->kind, fd, why);
			continue;
		}
		switch (pl->kind) {
		case LIS_OUTBOUND:
			proxy_conn_start(p, CONN_OUTBOUND, fd, &src);
			break;
		case LIS_INBOUND:
			proxy_conn_start(p, CONN_INBOUND, fd, &src);
			break;
		default:
			ss_canonicalise(&src);
			if (p->t->sec) {
				workers_hbone_accept(p, fd, &src);
				break;
			}
			log_debug("HBONE connection from %s to pod %s/%s closed: no mesh CA (caDir), plaintext mode",
				  sockaddr_str(&src, s, sizeof(s)), p->namespace, p->name);
			close(fd);
			break;
		}
	}
}

void proxy_abort_all(struct pod *p, const char *reason)
{
	struct conn *c = p->conns, *next;

	for (; c; c = next) {
		next = c->next;
		CHECK_OBJ(c, CONN_MAGIC);
		if (c->relay)
			relay_abort(c->relay, reason); /* done_cb frees c */
		else
			conn_free(c, NULL, reason);
	}
	assert(!p->conns);
}
