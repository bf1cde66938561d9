/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HBONE (tunnel/hbone.h) end to end in one process, no root: a mesh CA and
 * two workload identities made in memory (tunnel/ca.h), real TLS 1.3 over
 * loopback TCP, real nghttp2 on both sides, client and server on the same
 * loop. "Apps" and upstream servers are socketpairs driven by struct
 * tpeer on the loop: a source writes a position-dependent byte pattern, a
 * sink verifies every byte against it (a checksum that also catches
 * reordering), an echo peer sends back what it reads. Tests wait for
 * conditions with run_until() (polled from a 1 ms timer, bounded); none
 * sleeps. Tests needing a blocking peer (raw nghttp2 client, a frozen
 * server) run the server loop on its own thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include "conf/log.h"
#include "tests/unit/t.h"
#include "tunnel/ca.h"
#include "tunnel/hbone.h"
#include "tunnel/loop.h"
#include "tunnel/tls.h"

#define TD "cluster.local"
#define CLIENT_ID "spiffe://cluster.local/ns/front/sa/web"
#define SERVER_ID "spiffe://cluster.local/ns/back/sa/db"

/* ------------------------------------------------------------- identities */

static struct mesh_ca *g_ca;
static struct ca_leaf *g_cleaf, *g_sleaf;
static SSL_CTX *g_cctx, *g_sctx;

static int pki_setup(void)
{
	char err[256];

	if (g_cctx)
		return 0;
	if (ca_create_root("warren-test", "test root", 1, &g_ca) ||
	    ca_issue(g_ca, TD, "front", "web", 0, &g_cleaf, err, sizeof(err)) ||
	    ca_issue(g_ca, TD, "back", "db", 0, &g_sleaf, err, sizeof(err)) ||
	    tls_ctx_new(TLS_CLIENT, g_cleaf, ca_root0(g_ca), &g_cctx, err, sizeof(err)) ||
	    tls_ctx_new(TLS_SERVER, g_sleaf, ca_root0(g_ca), &g_sctx, err, sizeof(err))) {
		printf("# pki setup failed: %s\n", err);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- tpeer */

static uint8_t pat(uint64_t i)
{
	uint64_t x = i * 0x9e3779b97f4a7c15ull;

	return (uint8_t)(x >> 56) ^ (uint8_t)i;
}

struct tpeer {
	struct tpeer *next;
	struct loop *l;
	int fd;
	bool echo;
	uint8_t buf[65536];
	size_t blen;
	uint64_t to_send, sent;
	bool shut_after_send, send_after_eof, shut_done;
	uint64_t received;
	bool eof, paused, mismatch, err;
	int errnum;
	uint64_t sent_at_eof;  /* upstream: bytes it had sent when EOF arrived */
	uint32_t events;
	bool reg;
};

static void tpeer_cb(struct loop *l, int fd, uint32_t events, void *ctx);

static void tpeer_interest(struct tpeer *p)
{
	uint32_t ev = 0;

	if (p->fd < 0 || p->err)
		return;
	if (p->echo) {
		if (!p->eof && p->blen < sizeof(p->buf))
			ev |= EPOLLIN;
		if (p->blen)
			ev |= EPOLLOUT;
	} else {
		if (!p->eof && !p->paused)
			ev |= EPOLLIN;
		if (p->sent < p->to_send && (!p->send_after_eof || p->eof))
			ev |= EPOLLOUT;
	}
	if (!p->reg) {
		loop_add(p->l, p->fd, ev, tpeer_cb, p);
		p->reg = true;
	} else if (ev != p->events) {
		loop_mod(p->l, p->fd, ev);
	}
	p->events = ev;
}

static void tpeer_fail(struct tpeer *p, int e)
{
	p->err = true;
	p->errnum = e;
	if (p->reg)
		loop_del(p->l, p->fd);
	p->reg = false;
}

static void tpeer_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct tpeer *p = ctx;
	uint8_t tmp[65536];
	ssize_t n;

	if (p->echo) {
		if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !p->eof && p->blen < sizeof(p->buf)) {
			n = read(fd, p->buf + p->blen, sizeof(p->buf) - p->blen);
			if (n < 0 && errno != EAGAIN)
				return tpeer_fail(p, errno);
			if (n == 0)
				p->eof = true;
			if (n > 0) {
				p->blen += (size_t)n;
				p->received += (uint64_t)n;
			}
		}
		if (p->blen) {
			n = send(fd, p->buf, p->blen, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0 && errno != EAGAIN)
				return tpeer_fail(p, errno);
			if (n > 0) {
				memmove(p->buf, p->buf + n, p->blen - (size_t)n);
				p->blen -= (size_t)n;
				p->sent += (uint64_t)n;
			}
		}
		if (p->eof && !p->blen && !p->shut_done) {
			shutdown(fd, SHUT_WR);
			p->shut_done = true;
		}
		tpeer_interest(p);
		return;
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !p->eof && !p->paused) {
		n = read(fd, tmp, sizeof(tmp));
		if (n < 0 && errno != EAGAIN)
			return tpeer_fail(p, errno);
		if (n == 0) {
			p->eof = true;
			p->sent_at_eof = p->sent;
		}
		for (ssize_t i = 0; i < n; i++)
			if (tmp[i] != pat(p->received + (uint64_t)i))
				p->mismatch = true;
		if (n > 0)
			p->received += (uint64_t)n;
	}
	if ((events & EPOLLOUT) && p->sent < p->to_send && (!p->send_after_eof || p->eof)) {
		size_t want = p->to_send - p->sent > sizeof(tmp) ? sizeof(tmp) : p->to_send - p->sent;

		for (size_t i = 0; i < want; i++)
			tmp[i] = pat(p->sent + i);
		n = send(fd, tmp, want, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN)
			return tpeer_fail(p, errno);
		if (n > 0)
			p->sent += (uint64_t)n;
	}
	if (p->sent == p->to_send && p->shut_after_send && !p->shut_done &&
	    (!p->send_after_eof || p->eof)) {
		shutdown(fd, SHUT_WR);
		p->shut_done = true;
	}
	tpeer_interest(p);
}

/* ---------------------------------------------------------------- env */

enum srv_mode { SRV_ECHO, SRV_REJECT, SRV_SINK };

struct env {
	struct loop *l;
	int lfd;                       /* HBONE listener */
	struct sockaddr_in addr;
	struct hbone_opts copts, sopts;
	enum srv_mode mode;
	int reject_status;
	/* upstream template for SRV_SINK */
	bool up_paused, up_send_after_eof;
	uint64_t up_to_send;
	struct tpeer *peers;           /* every tpeer, freed at teardown */
	struct tpeer *last_up;
	struct hbone_stream *last_srv_stream;
	struct hbone_conn *last_srv_conn;
	struct hbone_conn *srv_live[8]; /* aborted at teardown */
	unsigned srv_conns, srv_conns_done, requests, srv_streams_done;
	char last_authority[128], last_forwarded[128], last_baggage[128], last_trace[128];
	char last_peer[SPIFFE_ID_MAX];
	struct hbone_stream_stats last_srv_stats;
	/* client side */
	unsigned cli_done;
	struct hbone_stream_stats last_cli_stats;
	char cli_conn_reason[256];
	bool cli_conn_done;
	/* run_until */
	bool (*pred)(struct env *e);
	bool timed_out, met;
	uint64_t deadline;
	bool goaway_on_accept;         /* hbone_conn_goaway() right after accept */
	int srv_sndbuf, srv_rcvbuf;    /* the last accepted socket's, once the server took it */
	/* backpressure sampling */
	size_t max_srv_buffered;
	uint64_t last_sent;
	unsigned stall_ticks;
	struct tpeer *watch;
};

static struct tpeer *tpeer_new(struct env *e, int fd)
{
	struct tpeer *p = calloc(1, sizeof(*p));

	p->l = e->l;
	p->fd = fd;
	p->next = e->peers;
	e->peers = p;
	return p;
}

static void srv_stream_done(void *ctx, struct hbone_stream *s, const struct hbone_stream_stats *st)
{
	struct env *e = ctx;

	e->srv_streams_done++;
	e->last_srv_stats = *st;
	if (s == e->last_srv_stream)
		e->last_srv_stream = NULL;
}

static void srv_conn_done(void *ctx, struct hbone_conn *c, const char *reason)
{
	struct env *e = ctx;

	e->srv_conns_done++;
	for (size_t i = 0; i < 8; i++)
		if (e->srv_live[i] == c)
			e->srv_live[i] = NULL;
	if (c == e->last_srv_conn)
		e->last_srv_conn = NULL;
}

static void srv_request(void *ctx, struct hbone_stream *s, const struct hbone_request *req)
{
	struct env *e = ctx;
	int sp[2];
	struct tpeer *p;

	e->requests++;
	snprintf(e->last_authority, sizeof(e->last_authority), "%s", req->authority);
	snprintf(e->last_forwarded, sizeof(e->last_forwarded), "%s",
		 req->forwarded ? req->forwarded : "");
	snprintf(e->last_baggage, sizeof(e->last_baggage), "%s", req->baggage ? req->baggage : "");
	snprintf(e->last_trace, sizeof(e->last_trace), "%s",
		 req->traceparent ? req->traceparent : "");
	snprintf(e->last_peer, sizeof(e->last_peer), "%s", req->peer_id);
	e->last_srv_stream = s;
	if (e->mode == SRV_REJECT) {
		hbone_stream_reject(s, e->reject_status);
		return;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) < 0) {
		hbone_stream_reject(s, 503);
		return;
	}
	p = tpeer_new(e, sp[1]);
	e->last_up = p;
	if (e->mode == SRV_ECHO) {
		p->echo = true;
	} else {
		p->paused = e->up_paused;
		p->send_after_eof = e->up_send_after_eof;
		p->to_send = e->up_to_send;
		p->shut_after_send = true;
	}
	tpeer_interest(p);
	hbone_stream_accept(s, sp[0]);
}

static void sock_bufs(int fd, int *snd, int *rcv)
{
	socklen_t len = sizeof(*snd);

	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, snd, &len) < 0)
		*snd = -1;
	len = sizeof(*rcv);
	if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, rcv, &len) < 0)
		*rcv = -1;
}

static void accept_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct env *e = ctx;
	struct hbone_server_cbs cbs = {
		.on_request = srv_request,
		.on_stream_done = srv_stream_done,
		.on_conn_done = srv_conn_done,
		.ctx = e,
	};
	int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (c < 0)
		return;
	if (hbone_server_accept(l, g_sctx, c, &e->sopts, &cbs, &e->last_srv_conn))
		return;
	sock_bufs(c, &e->srv_sndbuf, &e->srv_rcvbuf);
	if (e->goaway_on_accept)
		hbone_conn_goaway(e->last_srv_conn); /* still in its TLS handshake */
	for (size_t i = 0; i < 8; i++) {
		if (!e->srv_live[i]) {
			e->srv_live[i] = e->last_srv_conn;
			break;
		}
	}
	e->srv_conns++;
}

static int env_init(struct env *e)
{
	socklen_t len = sizeof(e->addr);

	memset(e, 0, sizeof(*e));
	if (pki_setup())
		return -1;
	hbone_opts_default(&e->copts, false);
	hbone_opts_default(&e->sopts, true);
	e->l = loop_new();
	e->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	e->addr.sin_family = AF_INET;
	e->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!e->l || e->lfd < 0 || bind(e->lfd, (struct sockaddr *)&e->addr, sizeof(e->addr)) ||
	    listen(e->lfd, 128) || getsockname(e->lfd, (struct sockaddr *)&e->addr, &len) ||
	    loop_add(e->l, e->lfd, EPOLLIN, accept_cb, e))
		return -1;
	return 0;
}

static void env_fini(struct env *e)
{
	struct tpeer *p, *n;

	for (size_t i = 0; i < 8; i++)
		hbone_conn_abort(e->srv_live[i], "test over");
	for (p = e->peers; p; p = n) {
		n = p->next;
		if (p->reg)
			loop_del(e->l, p->fd);
		if (p->fd >= 0)
			close(p->fd);
		free(p);
	}
	if (e->lfd >= 0) {
		loop_del(e->l, e->lfd);
		close(e->lfd);
	}
	loop_free(e->l);
}

static void tick_cb(struct loop *l, void *ctx)
{
	struct env *e = ctx;

	if (e->pred(e)) {
		e->met = true;
		loop_stop(l);
		return;
	}
	if (loop_now_ms() >= e->deadline) {
		e->timed_out = true;
		loop_stop(l);
		return;
	}
	loop_timer_add(l, 1, tick_cb, e);
}

/* Runs the loop until pred(e) holds (checked every ms) or timeout_ms. */
static bool run_until(struct env *e, bool (*pred)(struct env *), uint64_t timeout_ms)
{
	e->pred = pred;
	e->met = e->timed_out = false;
	e->deadline = loop_now_ms() + timeout_ms;
	if (pred(e))
		return true;
	loop_timer_add(e->l, 1, tick_cb, e);
	loop_run(e->l);
	return e->met;
}

/* ---------------------------------------------------------- client side */

static void cli_stream_done(void *ctx, struct hbone_stream *s, const struct hbone_stream_stats *st)
{
	struct env *e = ctx;

	e->cli_done++;
	e->last_cli_stats = *st;
}

static void cli_conn_done(void *ctx, struct hbone_conn *c, const char *reason)
{
	struct env *e = ctx;

	e->cli_conn_done = true;
	snprintf(e->cli_conn_reason, sizeof(e->cli_conn_reason), "%s", reason);
}

static int tcp_socket(void)
{
	return socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

static int mksock(void *ctx, const struct sockaddr *dst, socklen_t len)
{
	int fd = tcp_socket();

	return fd < 0 ? -errno : fd;
}

static struct hbone_conn *client_conn(struct env *e, const char *expect)
{
	const char *ids[] = { expect };
	struct hbone_conn *c = NULL;

	if (hbone_client_connect(e->l, g_cctx, tcp_socket(), (struct sockaddr *)&e->addr,
				 sizeof(e->addr), ids, 1, &e->copts, cli_conn_done, e, &c))
		return NULL;
	return c;
}

/* Opens a stream whose app side is a new tpeer (returned). */
static struct tpeer *open_app(struct env *e, struct hbone_conn *c, struct hbone_stream **out)
{
	struct hbone_connect_req req = {
		.authority = "127.0.0.1:8080",
		.forwarded = "for=\"10.1.2.3:40000\"",
		.baggage = "k8s.namespace.name=front,k8s.pod.name=web-0",
	};
	int sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) < 0)
		return NULL;
	if (hbone_stream_open(c, &req, sp[0], cli_stream_done, e, out)) {
		close(sp[1]);
		return NULL;
	}
	return tpeer_new(e, sp[1]);
}

/* ---------------------------------------------------------------- tests */

static void t_authority(void)
{
	struct hbone_request r;
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(443) };
	char buf[128];

	T_ASSERT_INT(hbone_parse_authority("10.0.0.2:8080", &r), 0);
	T_ASSERT(r.is_ip && r.port == 8080);
	T_ASSERT_STR(r.host, "10.0.0.2");
	T_ASSERT_INT(hbone_parse_authority("[fd00::2]:80", &r), 0);
	T_ASSERT(r.is_ip && r.port == 80 && r.target.ss_family == AF_INET6);
	T_ASSERT_INT(hbone_parse_authority("reviews.bookinfo.svc.cluster.local:9080", &r), 0);
	T_ASSERT(!r.is_ip && r.port == 9080);
	static const char *const bad[] = { "", "10.0.0.2", "10.0.0.2:", "10.0.0.2:0",
					   "10.0.0.2:65536", "10.0.0.2:+80", ":80", "fd00::2:80",
					   "[fd00::2]80", "[zz::]:80", "a..b:80", "a b:80",
					   "host:80x", "[]:80" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (hbone_parse_authority(bad[i], &r) != -EINVAL) {
			printf("# accepted bad authority '%s'\n", bad[i]);
			T_ASSERT(0);
		}
	}
	inet_pton(AF_INET6, "fd00::1", &s6.sin6_addr);
	T_ASSERT_INT(hbone_format_forwarded(buf, sizeof(buf), (struct sockaddr *)&s6, "svc.ns"), 0);
	T_ASSERT_STR(buf, "for=\"[fd00::1]:443\";host=svc.ns");
	T_ASSERT_INT(hbone_format_forwarded(buf, 10, (struct sockaddr *)&s6, NULL), -ENOSPC);
}

static struct tpeer *g_app;
static bool app_finished(struct env *e)
{
	return (g_app->eof && g_app->shut_done && e->cli_done >= 1 && e->srv_streams_done >= 1) ||
	       g_app->err || g_app->mismatch;
}

static void echo_case(uint64_t total, unsigned timeout_ms)
{
	struct env e;
	struct hbone_conn *c;
	struct hbone_stream *s = NULL;

	T_ASSERT_INT(env_init(&e), 0);
	e.mode = SRV_ECHO;
	c = client_conn(&e, SERVER_ID);
	T_ASSERT(c);
	g_app = open_app(&e, c, &s);
	T_ASSERT(g_app && s);
	g_app->to_send = total;
	g_app->shut_after_send = true;
	tpeer_interest(g_app);
	T_ASSERT(run_until(&e, app_finished, timeout_ms));
	printf("# app err=%d mismatch=%d sent=%llu recv=%llu; client: %s; server: %s\n", g_app->errnum,
	       g_app->mismatch, (unsigned long long)g_app->sent, (unsigned long long)g_app->received,
	       e.last_cli_stats.reason, e.last_srv_stats.reason);
	T_ASSERT(!g_app->err && !g_app->mismatch);
	T_ASSERT_INT(g_app->sent, total);
	T_ASSERT_INT(g_app->received, total);
	T_ASSERT(e.last_cli_stats.ok);
	T_ASSERT_INT(e.last_cli_stats.status, 200);
	T_ASSERT_INT(e.last_cli_stats.tx, total);
	T_ASSERT_INT(e.last_cli_stats.rx, total);
	T_ASSERT(e.last_srv_stats.ok);
	T_ASSERT_INT(e.last_srv_stats.tx, total);
	T_ASSERT_INT(e.last_srv_stats.rx, total);
	/* what the server saw */
	T_ASSERT_STR(e.last_authority, "127.0.0.1:8080");
	T_ASSERT_STR(e.last_forwarded, "for=\"10.1.2.3:40000\"");
	T_ASSERT_STR(e.last_baggage, "k8s.namespace.name=front,k8s.pod.name=web-0");
	T_ASSERT_INT(strlen(e.last_trace), 55);
	T_ASSERT(!strncmp(e.last_trace, "00-", 3));
	T_ASSERT_STR(e.last_peer, CLIENT_ID);
	T_ASSERT_INT(e.srv_conns, 1);
	hbone_conn_abort(c, "test over");
	T_ASSERT(e.cli_conn_done);
	env_fini(&e);
}

static void t_echo(void)
{
	echo_case(100000, 5000);
}

static void t_32mib(void)
{
	echo_case(32u << 20, 60000);
}

static struct tpeer *g_up;
static bool half_done(struct env *e)
{
	g_up = e->last_up;
	return (g_app->eof && g_up && g_up->eof && g_up->shut_done && e->cli_done &&
		e->srv_streams_done) || g_app->err || g_app->mismatch;
}

/* App sends 5000 bytes and shuts down writing; the upstream sees all of
 * them and EOF while it has sent nothing, then answers 3000 bytes and
 * shuts down; the app receives them and EOF. */
static void t_half_close(void)
{
	struct env e;
	struct hbone_conn *c;

	T_ASSERT_INT(env_init(&e), 0);
	e.mode = SRV_SINK;
	e.up_send_after_eof = true;
	e.up_to_send = 3000;
	c = client_conn(&e, SERVER_ID);
	T_ASSERT(c);
	g_app = open_app(&e, c, NULL);
	T_ASSERT(g_app);
	g_app->to_send = 5000;
	g_app->shut_after_send = true;
	tpeer_interest(g_app);
	T_ASSERT(run_until(&e, half_done, 5000));
	T_ASSERT(!g_app->err && !g_app->mismatch && !g_up->err && !g_up->mismatch);
	T_ASSERT_INT(g_up->received, 5000);
	T_ASSERT_INT(g_up->sent_at_eof, 0);
	T_ASSERT_INT(g_app->received, 3000);
	T_ASSERT(e.last_cli_stats.ok && e.last_srv_stats.ok);
	T_ASSERT_INT(e.last_cli_stats.tx, 5000);
	T_ASSERT_INT(e.last_cli_stats.rx, 3000);
	hbone_conn_abort(c, "test over");
	env_fini(&e);
}

#define NPOOL 101
static bool pool_requests(struct env *e)
{
	return e->requests >= NPOOL;
}

static bool pool_all_done(struct env *e)
{
	return e->cli_done >= NPOOL && e->srv_streams_done >= NPOOL;
}

static bool pool_empty(struct env *e)
{
	return e->srv_conns_done >= 2;
}

static void t_pool(void)
{
	struct env e;
	struct hbone_pool *pool = NULL;
	struct hbone_pool_conn_info info[4];
	struct tpeer *apps[NPOOL];
	const char *ids[] = { SERVER_ID };
	struct hbone_pool_target t;
	struct hbone_connect_req req = { .authority = "127.0.0.1:9" };
	size_t n;

	T_ASSERT_INT(env_init(&e), 0);
	e.mode = SRV_ECHO;
	e.copts.idle_ms = 50;
	T_ASSERT_INT(hbone_pool_new(e.l, &e.copts, &pool), 0);
	memset(&t, 0, sizeof(t));
	t.src_id = CLIENT_ID;
	t.ctx = g_cctx;
	t.dst = (struct sockaddr *)&e.addr;
	t.dstlen = sizeof(e.addr);
	t.expect = ids;
	t.n_expect = 1;
	t.mksock = mksock;
	for (int i = 0; i < NPOOL; i++) {
		int sp[2];

		T_ASSERT_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp), 0);
		T_ASSERT_INT(hbone_pool_open(pool, &t, &req, sp[0], cli_stream_done, &e, NULL), 0);
		apps[i] = tpeer_new(&e, sp[1]);
	}
	n = hbone_pool_stats(pool, info, 4);
	T_ASSERT_INT(n, 2);
	/* newest first */
	T_ASSERT_INT(info[0].conn.streams + info[1].conn.streams, NPOOL);
	T_ASSERT(info[0].conn.streams == 100 || info[1].conn.streams == 100);
	T_ASSERT_STR(info[0].src_id, CLIENT_ID);
	T_ASSERT(!strncmp(info[0].dst, "127.0.0.1:", 10));
	T_ASSERT(run_until(&e, pool_requests, 10000));
	T_ASSERT_INT(e.srv_conns, 2); /* 101 streams, two TLS connections */
	n = hbone_pool_stats(pool, info, 4);
	T_ASSERT_INT(n, 2);
	T_ASSERT_STR(info[0].conn.peer_id, SERVER_ID);
	T_ASSERT_INT(info[0].conn.state, HBONE_OPEN);
	/* Every app closes: each stream ends cleanly both ways. */
	for (int i = 0; i < NPOOL; i++) {
		apps[i]->eof = false;
		shutdown(apps[i]->fd, SHUT_WR);
		apps[i]->shut_done = true;
		tpeer_interest(apps[i]);
	}
	T_ASSERT(run_until(&e, pool_all_done, 10000));
	T_ASSERT(e.last_cli_stats.ok);
	/* idle_ms = 50: both connections are released. */
	T_ASSERT(run_until(&e, pool_empty, 5000));
	T_ASSERT_INT(hbone_pool_stats(pool, info, 4), 0);
	hbone_pool_free(pool);
	env_fini(&e);
}

static bool cli_stream_done_p(struct env *e)
{
	return e->cli_done >= 1 && (g_app->eof || g_app->err);
}

static void reject_case(int status)
{
	struct env e;
	struct hbone_conn *c;

	T_ASSERT_INT(env_init(&e), 0);
	e.mode = SRV_REJECT;
	e.reject_status = status;
	c = client_conn(&e, SERVER_ID);
	T_ASSERT(c);
	g_app = open_app(&e, c, NULL);
	T_ASSERT(g_app);
	g_app->to_send = 1000; /* written at once; must never reach anyone */
	tpeer_interest(g_app);
	T_ASSERT(run_until(&e, cli_stream_done_p, 5000));
	T_ASSERT_INT(e.last_cli_stats.status, status);
	T_ASSERT(!e.last_cli_stats.ok);
	T_ASSERT_INT(e.last_cli_stats.tx, 0);
	T_ASSERT_INT(e.last_cli_stats.rx, 0);
	T_ASSERT_INT(g_app->received, 0);
	T_ASSERT(strstr(e.last_cli_stats.reason, "answered"));
	T_ASSERT_INT(e.requests, 1);
	T_ASSERT_INT(e.srv_streams_done, 1);
	T_ASSERT_INT(e.last_srv_stats.status, status);
	T_ASSERT_INT(e.last_srv_stats.tx + e.last_srv_stats.rx, 0);
	T_ASSERT(!e.last_up); /* no upstream was ever made */
	/* The connection survives a rejected stream. */
	T_ASSERT_INT(e.srv_conns_done, 0);
	T_ASSERT(!e.cli_conn_done);
	hbone_conn_abort(c, "test over");
	env_fini(&e);
}

static void t_reject_401(void)
{
	reject_case(401);
}

static void t_reject_503(void)
{
	reject_case(503);
}

static bool conn_failed(struct env *e)
{
	return e->cli_conn_done && e->cli_done >= 1;
}

static void t_identity_mismatch(void)
{
	struct env e;
	struct hbone_conn *c;

	T_ASSERT_INT(env_init(&e), 0);
	e.mode = SRV_ECHO;
	c = client_conn(&e, "spiffe://cluster.local/ns/back/sa/not-db");
	T_ASSERT(c);
	g_app = open_app(&e, c, NULL);
	T_ASSERT(g_app);
	T_ASSERT(run_until(&e, conn_failed, 5000));
	printf("# client: %s\n", e.cli_conn_reason);
	T_ASSERT(strstr(e.cli_conn_reason, "not-db"));
	T_ASSERT(strstr(e.last_cli_stats.reason, "TLS handshake failed"));
	T_ASSERT_INT(e.last_cli_stats.status, 0);
	T_ASSERT_INT(e.requests, 0);
	env_fini(&e);
}

#define BP_TOTAL (16u << 20)
#define BP_WINDOW (256u << 10)
#define BP_SENDBUF (64u << 10)

static bool bp_stalled(struct env *e)
{
	struct tpeer *app = e->watch;
	size_t b = e->last_srv_stream ? hbone_stream_buffered(e->last_srv_stream) : 0;

	if (b > e->max_srv_buffered)
		e->max_srv_buffered = b;
	if (app->sent == e->last_sent && app->sent > 0)
		e->stall_ticks++;
	else
		e->stall_ticks = 0;
	e->last_sent = app->sent;
	return e->stall_ticks >= 100 || app->err;
}

static bool bp_finished(struct env *e)
{
	size_t b = e->last_srv_stream ? hbone_stream_buffered(e->last_srv_stream) : 0;

	if (b > e->max_srv_buffered)
		e->max_srv_buffered = b;
	return (e->last_up && e->last_up->eof && e->srv_streams_done) || e->watch->err ||
	       (e->last_up && e->last_up->mismatch);
}

/* The upstream does not read: the sender stops, the server holds at most
 * one stream window, and everything arrives once it reads. */
static void t_backpressure(void)
{
	struct env e;
	struct hbone_conn *c;
	struct hbone_conn_info ci;

	T_ASSERT_INT(env_init(&e), 0);
	e.mode = SRV_SINK;
	e.up_paused = true;
	e.sopts.stream_window = e.copts.stream_window = BP_WINDOW;
	e.sopts.send_buf = e.copts.send_buf = BP_SENDBUF;
	c = client_conn(&e, SERVER_ID);
	T_ASSERT(c);
	g_app = open_app(&e, c, NULL);
	T_ASSERT(g_app);
	e.watch = g_app;
	g_app->to_send = BP_TOTAL;
	g_app->shut_after_send = true;
	tpeer_interest(g_app);
	T_ASSERT(run_until(&e, bp_stalled, 10000));
	T_ASSERT(!g_app->err);
	printf("# sender stalled at %llu bytes; server buffered max %zu\n",
	       (unsigned long long)g_app->sent, e.max_srv_buffered);
	T_ASSERT(g_app->sent < BP_TOTAL / 2);
	T_ASSERT(e.max_srv_buffered <= BP_WINDOW);
	T_ASSERT(e.last_srv_conn);
	hbone_conn_get_info(e.last_srv_conn, &ci);
	T_ASSERT(ci.buffered <= BP_WINDOW + BP_SENDBUF + (128u << 10));
	hbone_conn_get_info(c, &ci);
	T_ASSERT(ci.buffered <= BP_SENDBUF + (128u << 10));
	/* Reading resumes: everything arrives, in order. */
	e.last_up->paused = false;
	tpeer_interest(e.last_up);
	T_ASSERT(run_until(&e, bp_finished, 30000));
	T_ASSERT(!e.last_up->mismatch);
	T_ASSERT_INT(e.last_up->received, BP_TOTAL);
	T_ASSERT(e.max_srv_buffered <= BP_WINDOW);
	hbone_conn_abort(c, "test over");
	env_fini(&e);
}

static struct hbone_conn *g_pc;
static bool pings_done(struct env *e)
{
	struct hbone_conn_info ci, si;

	if (!e->last_srv_conn)
		return false;
	hbone_conn_get_info(g_pc, &ci);
	hbone_conn_get_info(e->last_srv_conn, &si);
	return ci.pings_acked >= 3 && si.pings_acked >= 3;
}

static void t_ping(void)
{
	struct env e;
	struct hbone_conn_info ci;

	T_ASSERT_INT(env_init(&e), 0);
	e.copts.ping_interval_ms = e.sopts.ping_interval_ms = 10;
	g_pc = client_conn(&e, SERVER_ID);
	T_ASSERT(g_pc);
	T_ASSERT(run_until(&e, pings_done, 5000));
	hbone_conn_get_info(g_pc, &ci);
	T_ASSERT_INT(ci.state, HBONE_OPEN);
	T_ASSERT(!e.cli_conn_done);
	hbone_conn_abort(g_pc, "test over");
	env_fini(&e);
}

/* ------------------------------------------- server on its own thread */

static void *srv_thread(void *arg)
{
	struct env *e = arg;

	loop_run(e->l);
	return NULL;
}

struct raw {
	int status;
	bool closed;
	uint32_t error;
	SSL *ssl;
};

static ssize_t raw_send(nghttp2_session *s, const uint8_t *d, size_t n, int f, void *u)
{
	struct raw *r = u;
	size_t w = 0;

	return SSL_write_ex(r->ssl, d, n, &w) ? (ssize_t)w : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int raw_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		      const uint8_t *v, size_t vl, uint8_t flags, void *u)
{
	struct raw *r = u;

	if (nl == 7 && !memcmp(name, ":status", 7))
		r->status = atoi((const char *)v);
	return 0;
}

static int raw_close(nghttp2_session *s, int32_t id, uint32_t err, void *u)
{
	struct raw *r = u;

	r->closed = true;
	r->error = err;
	return 0;
}

/* A plain blocking TLS + nghttp2 client: one request, returns its status
 * (0 if none), or -1 on a setup error. */
static int raw_request(struct env *e, const char *method, const char *authority)
{
	struct raw r = { 0 };
	nghttp2_session_callbacks *cbs;
	nghttp2_session *h2 = NULL;
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool connect_m = !strcmp(method, "CONNECT");
	nghttp2_nv nva[4] = {
		{ (uint8_t *)":method", (uint8_t *)method, 7, strlen(method), 0 },
		{ (uint8_t *)":authority", (uint8_t *)authority, 10, strlen(authority), 0 },
		{ (uint8_t *)":scheme", (uint8_t *)"https", 7, 5, 0 },
		{ (uint8_t *)":path", (uint8_t *)"/", 5, 1, 0 },
	};
	int ret = -1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&e->addr, sizeof(e->addr)) ||
	    tls_conn_new(g_cctx, fd, &r.ssl) || tls_client_expect_identity(r.ssl, SERVER_ID) ||
	    SSL_connect(r.ssl) != 1)
		goto out;
	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_send_callback(cbs, raw_send);
	nghttp2_session_callbacks_set_on_header_callback(cbs, raw_header);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, raw_close);
	nghttp2_session_client_new(&h2, cbs, &r);
	nghttp2_session_callbacks_del(cbs);
	nghttp2_submit_settings(h2, NGHTTP2_FLAG_NONE, NULL, 0);
	if (nghttp2_submit_request(h2, NULL, nva, connect_m ? 2 : 4, NULL, NULL) < 0)
		goto out;
	while (!r.closed) {
		uint8_t buf[16384];
		size_t n = 0;

		if (nghttp2_session_send(h2))
			goto out;
		if (!SSL_read_ex(r.ssl, buf, sizeof(buf), &n))
			break;
		if (nghttp2_session_mem_recv(h2, buf, n) < 0)
			goto out;
	}
	ret = r.status;
out:
	nghttp2_session_del(h2);
	SSL_free(r.ssl);
	close(fd);
	return ret;
}

/* A GET (nghttp2 accepts it as a valid request) gets 400 from us; so does
 * a CONNECT whose authority has no port; on_request never runs. */
static void t_bad_requests_400(void)
{
	struct env e;
	pthread_t th;
	int st_get, st_auth;

	T_ASSERT_INT(env_init(&e), 0);
	e.mode = SRV_ECHO;
	T_ASSERT_INT(pthread_create(&th, NULL, srv_thread, &e), 0);
	st_get = raw_request(&e, "GET", "127.0.0.1:80");
	st_auth = raw_request(&e, "CONNECT", "no-port-here");
	loop_stop(e.l);
	pthread_join(th, NULL);
	T_ASSERT_INT(st_get, 400);
	T_ASSERT_INT(st_auth, 400);
	T_ASSERT_INT(e.requests, 0);
	T_ASSERT_INT(e.srv_conns, 2);
	env_fini(&e);
}

static bool cli_open(struct env *e)
{
	struct hbone_conn_info ci;

	hbone_conn_get_info(g_pc, &ci);
	return ci.state == HBONE_OPEN && ci.bytes_in > 0 && ci.pings_acked >= 1;
}

static bool cli_dead(struct env *e)
{
	return e->cli_conn_done;
}

/* The server stops answering (its loop is frozen): the client drops the
 * connection after ping_timeout_ms. The client runs on its own loop. */
static void t_ping_timeout(void)
{
	struct env srv, cli;
	pthread_t th;
	const char *ids[] = { SERVER_ID };

	T_ASSERT_INT(env_init(&srv), 0);
	T_ASSERT_INT(env_init(&cli), 0);
	cli.copts.ping_interval_ms = 20;
	cli.copts.ping_timeout_ms = 200;
	T_ASSERT_INT(pthread_create(&th, NULL, srv_thread, &srv), 0);
	T_ASSERT_INT(hbone_client_connect(cli.l, g_cctx, tcp_socket(), (struct sockaddr *)&srv.addr,
					  sizeof(srv.addr), ids, 1, &cli.copts, cli_conn_done, &cli,
					  &g_pc), 0);
	T_ASSERT(run_until(&cli, cli_open, 5000));
	loop_stop(srv.l);
	pthread_join(th, NULL); /* frozen: nobody reads the server socket */
	T_ASSERT(run_until(&cli, cli_dead, 5000));
	printf("# client: %s\n", cli.cli_conn_reason);
	T_ASSERT(strstr(cli.cli_conn_reason, "PING"));
	env_fini(&cli);
	env_fini(&srv); /* the thread is joined: its connection is ours to abort */
}

static struct hbone_conn *g_goaway_cli;
static uint64_t g_goaway_at;
static bool cli_closing(struct env *e)
{
	struct hbone_conn_info ci;

	if (e->cli_conn_done) /* gone: the checks after say so */
		return true;
	hbone_conn_get_info(g_goaway_cli, &ci);
	return ci.state == HBONE_CLOSING;
}

static bool app_finished_3000(struct env *e)
{
	(void)e;
	return (g_app->received >= 3000 && loop_now_ms() >= g_goaway_at + HBONE_GOAWAY_GRACE_MS + 100) ||
	       g_app->err || g_app->mismatch;
}

static bool some_echoed(struct env *e)
{
	(void)e;
	return g_app->received >= 1000 || g_app->err || g_app->mismatch;
}

static bool drained(struct env *e)
{
	return (e->srv_conns_done >= 1 && e->cli_conn_done) || g_app->err || g_app->mismatch;
}

/* g_goaway_cli, a client connection on fd (its own socket: -1), and g_app,
 * a stream on it that has echoed 1000 bytes, for the GOAWAY cases (a
 * failed assertion here leaves t_failed_current set for the caller). */
static void goaway_setup(struct env *e, int fd)
{
	const char *ids[] = { SERVER_ID };

	T_ASSERT_INT(env_init(e), 0);
	e->mode = SRV_ECHO;
	if (fd < 0)
		fd = tcp_socket();
	T_ASSERT(fd >= 0);
	T_ASSERT_INT(hbone_client_connect(e->l, g_cctx, fd, (struct sockaddr *)&e->addr, sizeof(e->addr),
					  ids, 1, &e->copts, cli_conn_done, e, &g_goaway_cli), 0);
	g_app = open_app(e, g_goaway_cli, NULL);
	T_ASSERT(g_app);
	g_app->to_send = 1000;
	tpeer_interest(g_app);
	T_ASSERT(run_until(e, some_echoed, 5000));
	T_ASSERT(!g_app->err && !g_app->mismatch && e->last_srv_conn);
}

/* A draining tunnel's inbound connection (hbone_conn_goaway): the client
 * learns that it may open no new stream there, the stream it has keeps
 * working to its end, then both sides close the connection. */
static void t_goaway_drain(void)
{
	struct env e;
	struct hbone_conn_info ci;
	struct hbone_stream *s2 = NULL;
	struct hbone_connect_req req = { .authority = "127.0.0.1:8080" };
	int sp[2];

	goaway_setup(&e, -1);
	T_ASSERT(!t_failed_current);
	hbone_conn_goaway(g_goaway_cli); /* a client connection: no-op */
	hbone_conn_get_info(g_goaway_cli, &ci);
	T_ASSERT_INT(ci.state, HBONE_OPEN);
	hbone_conn_goaway(e.last_srv_conn);
	g_goaway_at = loop_now_ms();
	T_ASSERT(run_until(&e, cli_closing, 5000));
	T_ASSERT(!e.cli_conn_done && !g_app->err);
	T_ASSERT_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp), 0);
	T_ASSERT_INT(hbone_stream_open(g_goaway_cli, &req, sp[0], cli_stream_done, &e, &s2), -ENOTCONN);
	close(sp[1]);
	/* the live stream still carries data, both ways, past the final
	 * GOAWAY (HBONE_GOAWAY_GRACE_MS) */
	g_app->to_send = 3000;
	tpeer_interest(g_app);
	T_ASSERT(run_until(&e, app_finished_3000, 5000));
	T_ASSERT(!g_app->err && !g_app->mismatch);
	T_ASSERT_INT(e.srv_conns_done, 0);
	shutdown(g_app->fd, SHUT_WR);
	g_app->shut_done = true;
	T_ASSERT(run_until(&e, drained, 5000));
	T_ASSERT(!g_app->err && !g_app->mismatch);
	T_ASSERT_INT(g_app->received, 3000);
	T_ASSERT(e.last_cli_stats.ok);
	T_ASSERT_INT(e.requests, 1);
	env_fini(&e);
}

static bool srv_conn_closed(struct env *e)
{
	return e->srv_conns_done >= 1;
}

/* A draining tunnel's connection that was still in its handshake gets the
 * notice once open: the client never gets to open a stream on it. */
static void t_goaway_during_handshake(void)
{
	struct env e;
	struct hbone_stream *s = NULL;
	struct hbone_connect_req req = { .authority = "127.0.0.1:8080" };
	int sp[2];

	T_ASSERT_INT(env_init(&e), 0);
	e.mode = SRV_ECHO;
	e.goaway_on_accept = true;
	g_goaway_cli = client_conn(&e, SERVER_ID);
	T_ASSERT(g_goaway_cli);
	/* closing, or already closed: with no stream, a client closes on GOAWAY */
	T_ASSERT(run_until(&e, cli_closing, 5000));
	if (!e.cli_conn_done) {
		T_ASSERT_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp), 0);
		T_ASSERT_INT(hbone_stream_open(g_goaway_cli, &req, sp[0], cli_stream_done, &e, &s),
			     -ENOTCONN);
		close(sp[1]);
	}
	T_ASSERT(run_until(&e, srv_conn_closed, 5000));
	T_ASSERT_INT(e.requests, 0);
	if (!e.cli_conn_done)
		hbone_conn_abort(g_goaway_cli, "test over");
	env_fini(&e);
}

static int g_race_fd = -1;
static bool cli_has_input(struct env *e)
{
	int n = 0;

	(void)e;
	return ioctl(g_race_fd, FIONREAD, &n) == 0 && n > 0;
}

static bool app_echoed_100(struct env *e)
{
	(void)e;
	return g_app->received >= 100 || g_app->err || g_app->mismatch || e->cli_done >= 1;
}

/* A CONNECT the client submits in the loop round in which a draining
 * server's GOAWAY notice arrives is served: it is framed before the
 * notice is read. Framed only at the round's flush, after it, nghttp2
 * refused it ("request HEADERS is not allowed") and the app's connection
 * was reset in a rollout. The client's socket is left unwatched until
 * the notice is in it, so that both land in one round. */
static void t_goaway_race(void)
{
	struct hbone_stream *s2 = NULL;
	struct hbone_conn_info ci;
	struct env e;

	g_race_fd = tcp_socket();
	goaway_setup(&e, g_race_fd);
	T_ASSERT(!t_failed_current);
	T_ASSERT_INT(loop_mod(e.l, g_race_fd, 0), 0);
	hbone_conn_goaway(e.last_srv_conn);
	T_ASSERT(run_until(&e, cli_has_input, 5000));
	hbone_conn_get_info(g_goaway_cli, &ci);
	T_ASSERT_INT(ci.state, HBONE_OPEN); /* the notice is unread */
	g_app = open_app(&e, g_goaway_cli, &s2);
	T_ASSERT(g_app && s2);
	T_ASSERT_INT(loop_mod(e.l, g_race_fd, EPOLLIN), 0);
	g_app->to_send = 100;
	tpeer_interest(g_app);
	T_ASSERT(run_until(&e, app_echoed_100, 5000));
	printf("# second stream: received %llu; client: %s\n", (unsigned long long)g_app->received,
	       e.cli_done ? e.last_cli_stats.reason : "live");
	T_ASSERT(!g_app->err && !g_app->mismatch);
	T_ASSERT_INT(g_app->received, 100);
	T_ASSERT_INT(e.requests, 2);
	hbone_conn_get_info(g_goaway_cli, &ci);
	T_ASSERT_INT(ci.state, HBONE_CLOSING);
	hbone_conn_abort(g_goaway_cli, "test over");
	env_fini(&e);
}

/* net.core.{w,r}mem_max as the kernel applies them: it cuts a size set on
 * a socket to its maximum (and reports twice that). */
static void sock_buf_max(unsigned long *wmax, unsigned long *rmax)
{
	int fd = tcp_socket(), v = INT32_MAX / 4, snd = 0, rcv = 0;

	*wmax = *rmax = 0;
	if (fd < 0)
		return;
	if (!setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v)) &&
	    !setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v))) {
		sock_bufs(fd, &snd, &rcv);
		*wmax = snd > 0 ? (unsigned long)snd / 2 : 0;
		*rmax = rcv > 0 ? (unsigned long)rcv / 2 : 0;
	}
	close(fd);
}

static bool srv_accepted(struct env *e)
{
	return e->srv_conns > 0;
}

/* Both ends of an HBONE connection get the configured socket buffers
 * (the kernel reports twice the size set), and a size above what
 * net.core.{w,r}mem_max allow is not set at all (the kernel would cut it
 * and lock the socket at that smaller size). */
static void t_sock_buf(void)
{
	const char *ids[] = { SERVER_ID };
	unsigned long wmax, rmax;
	int snd, rcv;
	struct hbone_conn *c;
	struct env e;
	int fd;

	sock_buf_max(&wmax, &rmax);
	T_ASSERT(wmax >= 96u << 10 && rmax >= 96u << 10); /* the kernel's default is 208 KiB */
	T_ASSERT_INT(env_init(&e), 0);
	e.mode = SRV_ECHO;
	e.copts.sock_buf = e.sopts.sock_buf = 96u << 10;
	fd = tcp_socket();
	T_ASSERT(fd >= 0);
	T_ASSERT_INT(hbone_client_connect(e.l, g_cctx, fd, (struct sockaddr *)&e.addr, sizeof(e.addr),
					  ids, 1, &e.copts, cli_conn_done, &e, &c), 0);
	sock_bufs(fd, &snd, &rcv);
	T_ASSERT_INT(snd, 192 << 10);
	T_ASSERT_INT(rcv, 192 << 10);
	T_ASSERT(run_until(&e, srv_accepted, 5000));
	T_ASSERT_INT(e.srv_sndbuf, 192 << 10);
	T_ASSERT_INT(e.srv_rcvbuf, 192 << 10);
	hbone_conn_abort(c, "test over");
	env_fini(&e);

	T_ASSERT_INT(env_init(&e), 0);
	e.mode = SRV_ECHO;
	e.copts.sock_buf = (uint32_t)(wmax > rmax ? wmax : rmax) + 4096;
	e.sopts.sock_buf = 0;
	fd = tcp_socket();
	T_ASSERT(fd >= 0);
	T_ASSERT_INT(hbone_client_connect(e.l, g_cctx, fd, (struct sockaddr *)&e.addr, sizeof(e.addr),
					  ids, 1, &e.copts, cli_conn_done, &e, &c), 0);
	sock_bufs(fd, &snd, &rcv);
	/* set anyway, the kernel would have cut it to twice its maximum */
	T_ASSERT(snd > 0 && (unsigned long)snd < 2 * wmax);
	T_ASSERT(rcv > 0 && (unsigned long)rcv < 2 * rmax);
	T_ASSERT(run_until(&e, srv_accepted, 5000));
	hbone_conn_abort(c, "test over");
	env_fini(&e);
}

static void t_init(void)
{
	signal(SIGPIPE, SIG_IGN);
	wlog_init("test_hbone", NULL, WLOG_WARN);
	T_ASSERT_INT(pki_setup(), 0);
}

T_MAIN(T_CASE(t_init), T_CASE(t_authority), T_CASE(t_echo), T_CASE(t_half_close),
       T_CASE(t_32mib), T_CASE(t_pool), T_CASE(t_reject_401), T_CASE(t_reject_503),
       T_CASE(t_bad_requests_400), T_CASE(t_identity_mismatch), T_CASE(t_backpressure),
       T_CASE(t_ping), T_CASE(t_ping_timeout), T_CASE(t_goaway_drain),
       T_CASE(t_goaway_during_handshake), T_CASE(t_goaway_race), T_CASE(t_sock_buf))
