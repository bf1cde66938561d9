/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for tunnel/loop.c and tunnel/relay.c on real TCP sockets over
 * 127.0.0.1 (no root). Topology of the relay tests, all in one loop:
 *
 *   client <-tcp-> A [relay] B <-tcp-> server
 *
 * client and server are test endpoints driven by the same loop: they send
 * a seeded pseudo-random stream and check every received byte against the
 * peer's seed. Waits poll a condition from a 1 ms timer, with a deadline.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <linux/sockios.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/unit/t.h"
#include "tunnel/loop.h"
#include "tunnel/relay.h"

#define MIB (1024u * 1024u)

/* --- data pattern: byte o of stream s, cheap and not periodic --- */

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void pattern(uint64_t seed, uint64_t off, unsigned char *p, size_t n)
{
	uint64_t w = mix(seed ^ (off >> 3));

	for (size_t i = 0; i < n; i++, off++) {
		if (i && !(off & 7))
			w = mix(seed ^ (off >> 3));
		p[i] = (unsigned char)(w >> (8 * (off & 7)));
	}
}

/* --- a test endpoint on the loop --- */

struct ep {
	struct loop *l;
	int fd;
	bool registered;
	uint64_t tx_seed, rx_seed;
	uint64_t to_send, sent;
	bool shut_when_sent, shut;
	bool tx_blocked;        /* last send() got EAGAIN */
	bool reading;
	uint64_t received;
	bool eof, rx_bad;
	int rx_err, tx_err;
};

static unsigned char iobuf[256 * 1024], chk[256 * 1024];

static void ep_arm(struct ep *e);

static void ep_send(struct ep *e)
{
	while (e->sent < e->to_send && !e->tx_err) {
		size_t n = e->to_send - e->sent < sizeof(iobuf) ? e->to_send - e->sent : sizeof(iobuf);
		ssize_t w;

		pattern(e->tx_seed, e->sent, iobuf, n);
		w = send(e->fd, iobuf, n, MSG_NOSIGNAL);
		e->tx_blocked = w < 0 && errno == EAGAIN;
		if (w < 0) {
			if (!e->tx_blocked)
				e->tx_err = errno;
			break;
		}
		e->sent += w;
	}
	if (e->sent == e->to_send && e->shut_when_sent && !e->shut) {
		shutdown(e->fd, SHUT_WR);
		e->shut = true;
	}
}

static void ep_recv(struct ep *e)
{
	ssize_t n = recv(e->fd, iobuf, sizeof(iobuf), 0);

	if (n < 0) {
		if (errno != EAGAIN)
			e->rx_err = errno;
		return;
	}
	if (n == 0) {
		e->eof = true;
		return;
	}
	pattern(e->rx_seed, e->received, chk, n);
	if (memcmp(iobuf, chk, n))
		e->rx_bad = true;
	e->received += n;
}

static void ep_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct ep *e = ctx;

	if (events & EPOLLOUT)
		ep_send(e);
	if (e->reading && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		ep_recv(e);
	ep_arm(e);
}

/* Registered only while it wants something, so a hung-up socket it is done
 * with cannot spin the loop. */
static void ep_arm(struct ep *e)
{
	uint32_t ev = 0;

	if (e->reading && !e->eof && !e->rx_err)
		ev |= EPOLLIN;
	if (e->sent < e->to_send && !e->tx_err)
		ev |= EPOLLOUT;
	if (!e->to_send && e->shut_when_sent && !e->shut)
		ep_send(e);
	if (ev && !e->registered)
		e->registered = loop_add(e->l, e->fd, ev, ep_cb, e) == 0;
	else if (ev)
		loop_mod(e->l, e->fd, ev);
	else if (e->registered)
		e->registered = loop_del(e->l, e->fd) != 0;
}

/* --- plumbing --- */

/* A connected pair over 127.0.0.1. bufsz, when set, caps both buffers of
 * both ends (set before connect/listen so the window matches). */
static int tcp_pair(int *cli, int *srv, int bufsz)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), s = -1, ret = -1;

	if (lfd < 0 || c < 0)
		goto out;
	if (bufsz) /* accepted sockets inherit the listener's */
		for (int i = 0; i < 4; i++)
			setsockopt(i < 2 ? c : lfd, SOL_SOCKET, i % 2 ? SO_RCVBUF : SO_SNDBUF, &bufsz,
				   sizeof(bufsz));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) < 0 ||
	    connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto out;
	s = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (s < 0 || fcntl(c, F_SETFL, O_NONBLOCK) < 0)
		goto out;
	*cli = c;
	*srv = s;
	c = s = -1;
	ret = 0;
out:
	for (int *fd = (int[]){ lfd, c, s }, i = 0; i < 3; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	return ret;
}

struct waiter {
	bool (*cond)(void *);
	void *arg;
	uint64_t deadline;
};

static void waiter_tick(struct loop *l, void *ctx)
{
	struct waiter *w = ctx;

	if (w->cond(w->arg) || loop_now_ms() >= w->deadline)
		loop_stop(l);
	else if (!loop_timer_add(l, 1, waiter_tick, w))
		loop_stop(l);
}

/* Runs the loop until cond holds or ms pass; returns cond. */
static bool run_until(struct loop *l, bool (*cond)(void *), void *arg, unsigned ms)
{
	struct waiter w = { cond, arg, loop_now_ms() + ms };

	if (!loop_timer_add(l, 1, waiter_tick, &w) || loop_run(l) < 0)
		return false;
	return cond(arg);
}

struct fx {
	struct loop *l;
	int a, b;               /* the relay's sockets (owned by it) */
	struct relay *r;
	int done_calls;
	struct relay_stats st;
	struct ep c, s;         /* client (talks to a), server (talks to b) */
};

static void on_done(void *ctx, const struct relay_stats *st)
{
	struct fx *f = ctx;

	f->done_calls++;
	f->st = *st;
}

/* With fx_watch_b, B is registered before relay_start() (EPOLLOUT, ready
 * at once), as the tunnel's connect leaves it: the relay takes it over and
 * the old callback must never run. */
static bool fx_watch_b;
static int watch_b_calls;

static void watch_b_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	watch_b_calls++;
}

/* cbuf, sbuf: socket buffer caps for client<->A and B<->server. */
static void fx_run(void (*body)(struct fx *), int cbuf, int sbuf)
{
	struct fx f = { .c.fd = -1, .s.fd = -1 };

	f.l = loop_new();
	if (!f.l || tcp_pair(&f.c.fd, &f.a, cbuf) < 0 || tcp_pair(&f.b, &f.s.fd, sbuf) < 0 ||
	    (fx_watch_b && loop_add(f.l, f.b, EPOLLOUT, watch_b_cb, NULL) < 0) ||
	    relay_start(f.l, f.a, f.b, on_done, &f, &f.r) < 0) {
		printf("# fixture setup failed: %s\n", strerror(errno));
		t_failed_current = 1;
		goto out;
	}
	f.c = (struct ep){ .l = f.l, .fd = f.c.fd, .tx_seed = 1, .rx_seed = 2, .reading = true };
	f.s = (struct ep){ .l = f.l, .fd = f.s.fd, .tx_seed = 2, .rx_seed = 1, .reading = true };
	body(&f);
out:
	if (f.r && !f.done_calls)
		relay_abort(f.r, "test teardown");
	for (struct ep **ep = (struct ep *[]){ &f.c, &f.s, NULL }, *e; (e = *ep); ep++) {
		if (e->registered)
			loop_del(f.l, e->fd);
		if (e->fd >= 0)
			close(e->fd);
	}
	loop_free(f.l);
}

static bool fx_finished(void *p)
{
	struct fx *f = p;

	return f->done_calls && f->c.eof && f->s.eof;
}

/* Both endpoints send their stream and shut down; checks every byte and the
 * relay's report. */
static void exchange(struct fx *f, uint64_t c_bytes, uint64_t s_bytes)
{
	f->c.to_send = c_bytes;
	f->s.to_send = s_bytes;
	f->c.shut_when_sent = f->s.shut_when_sent = true;
	ep_arm(&f->c);
	ep_arm(&f->s);
	T_ASSERT(run_until(f->l, fx_finished, f, 120000));
	T_ASSERT_INT(f->s.received, c_bytes);
	T_ASSERT_INT(f->c.received, s_bytes);
	T_ASSERT(!f->c.rx_bad && !f->s.rx_bad);
	T_ASSERT_INT(f->done_calls, 1);
	T_ASSERT_INT(f->st.error, 0);
	T_ASSERT_STR(f->st.reason, "closed");
	T_ASSERT_INT(f->st.a_to_b, c_bytes);
	T_ASSERT_INT(f->st.b_to_a, s_bytes);
}

/* --- loop tests --- */

struct order {
	int seen[8];
	int n;
};

static void timer_rec(struct loop *l, void *ctx, int id)
{
	struct order *o = ctx;

	if (o->n < 8)
		o->seen[o->n++] = id;
	if (id == 30)
		loop_stop(l);
}

static void t10a(struct loop *l, void *c) { timer_rec(l, c, 10); }
static void t10b(struct loop *l, void *c) { timer_rec(l, c, 11); }
static void t20(struct loop *l, void *c) { timer_rec(l, c, 20); }
static void t30(struct loop *l, void *c) { timer_rec(l, c, 30); }
static void tbad(struct loop *l, void *c) { timer_rec(l, c, -1); }

static void loop_timers_order_and_cancel(void)
{
	struct loop *l = loop_new();
	struct order o = { .n = 0 };
	uint64_t t0 = loop_now_ms();
	struct loop_timer *c1, *c2;
	int ok;

	T_ASSERT(l);
	loop_timer_add(l, 30, t30, &o);
	c1 = loop_timer_add(l, 15, tbad, &o);
	loop_timer_add(l, 10, t10a, &o);
	loop_timer_add(l, 20, t20, &o);
	c2 = loop_timer_add(l, 5, tbad, &o);
	loop_timer_add(l, 10, t10b, &o);
	loop_timer_cancel(l, c1);
	loop_timer_cancel(l, c2);
	ok = loop_run(l) == 0;
	loop_free(l);
	T_ASSERT(ok);
	T_ASSERT(loop_now_ms() - t0 >= 30);
	T_ASSERT_INT(o.n, 4);
	T_ASSERT_INT(o.seen[0], 10);
	T_ASSERT_INT(o.seen[1], 11);
	T_ASSERT_INT(o.seen[2], 20);
	T_ASSERT_INT(o.seen[3], 30);
}

struct delfx {
	int p1[2], p2[2], p3[2];
	int calls, stale_calls;
};

static void stale_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	((struct delfx *)ctx)->stale_calls++;
}

/* Whichever of p1/p2 runs first deletes and closes the other, then puts a
 * new pipe on the same fd number: the event already collected for the old
 * registration must reach neither the old nor the new callback. */
static void del_other_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct delfx *d = ctx;
	int other = fd == d->p1[0] ? d->p2[0] : d->p1[0];

	d->calls++;
	loop_del(l, other);
	close(other);
	if (pipe2(d->p3, O_CLOEXEC) == 0 && write(d->p3[1], "x", 1) == 1) {
		if (d->p3[0] == other)
			loop_add(l, d->p3[0], EPOLLIN, stale_cb, d);
		else
			d->stale_calls = 100; /* fd not reused: test would prove nothing */
	}
	loop_stop(l);
}

static void loop_del_in_same_round(void)
{
	struct loop *l = loop_new();
	struct delfx d = { .p3 = { -1, -1 } };
	int ok;

	T_ASSERT(l);
	T_ASSERT(pipe2(d.p1, O_CLOEXEC) == 0 && pipe2(d.p2, O_CLOEXEC) == 0);
	T_ASSERT(write(d.p1[1], "x", 1) == 1 && write(d.p2[1], "x", 1) == 1);
	T_ASSERT(loop_add(l, d.p1[0], EPOLLIN, del_other_cb, &d) == 0);
	T_ASSERT(loop_add(l, d.p2[0], EPOLLIN, del_other_cb, &d) == 0);
	T_ASSERT_INT(loop_add(l, d.p2[0], EPOLLIN, del_other_cb, &d), -EEXIST);
	ok = loop_run(l) == 0;
	loop_free(l);
	for (int *fd = (int[]){ d.p1[0], d.p1[1], d.p2[0], d.p2[1], d.p3[0], d.p3[1] }, i = 0; i < 6; i++)
		close(fd[i]); /* the deleted one is p3[0] now; EBADF for it is fine */
	T_ASSERT(ok);
	T_ASSERT_INT(d.calls, 1);
	T_ASSERT_INT(d.stale_calls, 0);
}

static void stop_cb(struct loop *l, void *ctx)
{
	loop_stop(l);
}

struct setfx {
	int p1[2], p2[2];
	int first;              /* fd whose callback ran first, -1 before */
	int other;              /* the fd handed over */
	int set_ret, old_calls, new_calls;
	char got;               /* what set_new_cb read: 0 = nothing */
};

static void set_new_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct setfx *d = ctx;

	d->new_calls++;
	if (read(fd, &d->got, 1) != 1)
		d->got = 0;
	loop_stop(l);
}

static void set_refill(struct loop *l, void *ctx)
{
	struct setfx *d = ctx;

	if (write(d->other == d->p1[0] ? d->p1[1] : d->p2[1], "z", 1) != 1)
		loop_stop(l);
}

/* Whichever of p1/p2 runs first hands the other to set_new_cb with
 * loop_set(), drains it and refills it a round later: the event already
 * collected for the old registration must reach neither callback (the new
 * one would find the pipe empty); the refill must reach the new one. */
static void set_old_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct setfx *d = ctx;
	char c;

	if (d->first >= 0) {
		d->old_calls++;
		return;
	}
	d->first = fd;
	d->other = fd == d->p1[0] ? d->p2[0] : d->p1[0];
	d->set_ret = loop_set(l, d->other, EPOLLIN, set_new_cb, d);
	if (read(d->other, &c, 1) != 1 || !loop_timer_add(l, 1, set_refill, d))
		loop_stop(l);
	loop_del(l, fd);
}

static void loop_set_hands_over_in_same_round(void)
{
	struct loop *l = loop_new();
	struct setfx d = { .first = -1, .set_ret = 1 };
	int ok;

	T_ASSERT(l);
	T_ASSERT(pipe2(d.p1, O_CLOEXEC | O_NONBLOCK) == 0 && pipe2(d.p2, O_CLOEXEC | O_NONBLOCK) == 0);
	T_ASSERT(write(d.p1[1], "x", 1) == 1 && write(d.p2[1], "x", 1) == 1);
	T_ASSERT(loop_add(l, d.p1[0], EPOLLIN, set_old_cb, &d) == 0);
	T_ASSERT(loop_add(l, d.p2[0], EPOLLIN, set_old_cb, &d) == 0);
	ok = loop_timer_add(l, 2000, stop_cb, NULL) && loop_run(l) == 0;
	loop_free(l);
	for (int *fd = (int[]){ d.p1[0], d.p1[1], d.p2[0], d.p2[1] }, i = 0; i < 4; i++)
		close(fd[i]);
	T_ASSERT(ok);
	T_ASSERT_INT(d.set_ret, 0);
	T_ASSERT_INT(d.old_calls, 0);
	T_ASSERT_INT(d.new_calls, 1);
	T_ASSERT_INT(d.got, 'z');
}

static void count_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	(*(int *)ctx)++;
	loop_stop(l);
}

/* loop_forget() + close(): the kernel drops the registration with the last
 * reference, the loop's slot is free for the fd number's next owner, and
 * the closed pipe's readable data never reaches its old callback. */
static void loop_forget_before_close(void)
{
	struct loop *l = loop_new();
	int p1[2], p2[2] = { -1, -1 }, old_calls = 0, new_calls = 0, add_ret = 1, ok, reused;

	T_ASSERT(l);
	T_ASSERT(pipe2(p1, O_CLOEXEC) == 0 && write(p1[1], "x", 1) == 1);
	T_ASSERT(loop_add(l, p1[0], EPOLLIN, count_cb, &old_calls) == 0);
	loop_forget(l, p1[0]);
	loop_forget(l, p1[1]); /* never registered: a no-op */
	close(p1[0]);
	reused = pipe2(p2, O_CLOEXEC) == 0 && p2[0] == p1[0];
	if (reused && write(p2[1], "y", 1) == 1)
		add_ret = loop_add(l, p2[0], EPOLLIN, count_cb, &new_calls);
	/* a deadline, so a failure to register cannot hang the test */
	ok = loop_timer_add(l, 2000, stop_cb, NULL) && loop_run(l) == 0;
	loop_free(l);
	for (int *fd = (int[]){ p1[1], p2[0], p2[1] }, i = 0; i < 3; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	T_ASSERT(reused); /* else the test would prove nothing */
	T_ASSERT(ok);
	T_ASSERT_INT(add_ret, 0);
	T_ASSERT_INT(old_calls, 0);
	T_ASSERT_INT(new_calls, 1);
}

/* --- relay tests --- */

static void echo_body(struct fx *f)
{
	exchange(f, 100000, 70000);
}

static void relay_both_ways(void)
{
	fx_run(echo_body, 0, 0);
}

static void large_body(struct fx *f)
{
	exchange(f, 64 * MIB, 16 * MIB);
}

static void relay_64mib_byte_exact(void)
{
	fx_run(large_body, 0, 0);
}

static bool server_saw_eof(void *p)
{
	struct fx *f = p;

	return f->s.eof;
}

static void half_close_body(struct fx *f)
{
	f->c.to_send = 1000;
	f->c.shut_when_sent = true;
	ep_arm(&f->c);
	ep_arm(&f->s);
	T_ASSERT(run_until(f->l, server_saw_eof, f, 10000));
	T_ASSERT_INT(f->s.received, 1000);
	T_ASSERT_INT(f->done_calls, 0); /* the other direction is still open */
	f->s.to_send = 300000;
	f->s.shut_when_sent = true;
	ep_arm(&f->s);
	T_ASSERT(run_until(f->l, fx_finished, f, 10000));
	T_ASSERT_INT(f->c.received, 300000);
	T_ASSERT(!f->c.rx_bad && !f->s.rx_bad);
	T_ASSERT_INT(f->done_calls, 1);
	T_ASSERT_INT(f->st.error, 0);
	T_ASSERT_STR(f->st.reason, "closed");
	T_ASSERT_INT(f->st.a_to_b, 1000);
	T_ASSERT_INT(f->st.b_to_a, 300000);
}

static void relay_half_close(void)
{
	fx_run(half_close_body, 0, 0);
}

static void relay_takes_over_registration(void)
{
	fx_watch_b = true;
	watch_b_calls = 0;
	fx_run(echo_body, 0, 0);
	fx_watch_b = false;
	T_ASSERT_INT(watch_b_calls, 0);
}

static bool server_got_1000(void *p)
{
	return ((struct fx *)p)->s.received == 1000;
}

static bool reset_seen(void *p)
{
	struct fx *f = p;

	return f->done_calls && f->c.rx_err;
}

static void reset_body(struct fx *f)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	f->c.to_send = 1000;
	ep_arm(&f->c);
	ep_arm(&f->s);
	T_ASSERT(run_until(f->l, server_got_1000, f, 10000));
	/* The server aborts: B receives an RST. */
	f->s.reading = false;
	ep_arm(&f->s);
	T_ASSERT(setsockopt(f->s.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0);
	close(f->s.fd);
	f->s.fd = -1;
	T_ASSERT(run_until(f->l, reset_seen, f, 10000));
	T_ASSERT_INT(f->c.rx_err, ECONNRESET);
	T_ASSERT_INT(f->done_calls, 1);
	T_ASSERT_INT(f->st.error, ECONNRESET);
	T_ASSERT_STR(f->st.reason, "reset by b");
	T_ASSERT_INT(f->st.a_to_b, 1000);
}

static void relay_reset_propagates(void)
{
	fx_run(reset_body, 0, 0);
}

struct stall {
	struct fx *f;
	uint64_t sent, moved, since;
};

/* True once neither the client nor the relay has moved a byte for 100 ms
 * while the client's last write was refused. */
static bool stalled(void *p)
{
	struct stall *s = p;
	struct relay_stats st;

	relay_get_stats(s->f->r, &st);
	if (s->f->c.sent != s->sent || st.a_to_b != s->moved || !s->f->c.tx_blocked) {
		s->sent = s->f->c.sent;
		s->moved = st.a_to_b;
		s->since = loop_now_ms();
		return false;
	}
	return loop_now_ms() - s->since >= 100;
}

static bool server_got_all(void *p)
{
	struct fx *f = p;

	return f->s.received == f->c.to_send;
}

static void backpressure_body(struct fx *f)
{
	struct stall s = { .f = f, .since = loop_now_ms() };
	struct relay_stats st;
	int inq = 0, outq = 0;
	int64_t held;

	f->c.to_send = 32 * MIB;
	f->c.shut_when_sent = true;
	f->s.reading = false;
	ep_arm(&f->c);
	T_ASSERT(run_until(f->l, stalled, &s, 20000));
	relay_get_stats(f->r, &st);
	T_ASSERT(f->c.sent < f->c.to_send);
	/* The relay stopped reading A although A has data queued... */
	T_ASSERT(ioctl(f->a, SIOCINQ, &inq) == 0 && ioctl(f->c.fd, SIOCOUTQ, &outq) == 0);
	T_ASSERT(inq > 0);
	/* ...and holds no more than a pipe's worth itself. */
	held = (int64_t)f->c.sent - (int64_t)st.a_to_b - inq - outq;
	printf("# stalled: client sent %llu, relayed %llu, A queue %d, client queue %d, relay holds %lld\n",
	       (unsigned long long)f->c.sent, (unsigned long long)st.a_to_b, inq, outq,
	       (long long)held);
	T_ASSERT(held >= 0 && held <= RELAY_PIPE_SIZE); /* one pipe */
	/* The server reads again: everything arrives, in order. */
	f->s.reading = true;
	f->s.shut_when_sent = true;
	ep_arm(&f->s);
	T_ASSERT(run_until(f->l, server_got_all, f, 60000));
	T_ASSERT(!f->s.rx_bad);
	T_ASSERT(run_until(f->l, fx_finished, f, 10000));
	T_ASSERT_INT(f->st.a_to_b, 32 * MIB);
}

static void relay_backpressure(void)
{
	fx_run(backpressure_body, 256 * 1024, 256 * 1024);
}

static uint64_t cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
	       ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static bool server_flushed(void *p)
{
	struct fx *f = p;
	int outq = -1;

	/* FIN included: the write sequence counts it, so 0 means B has it. */
	return f->s.shut && ioctl(f->s.fd, SIOCOUTQ, &outq) == 0 && outq == 0;
}

static bool never(void *p)
{
	return false;
}

static bool client_finished(void *p)
{
	struct fx *f = p;

	return f->done_calls && f->c.eof;
}

/* B hangs up completely (A's EOF was forwarded to it, then its peer sent
 * everything and closed) while B->A is blocked on a client that does not
 * read: the relay must wait without spinning, then deliver everything. */
static void hup_body(struct fx *f)
{
	struct relay_stats st;
	uint64_t cpu0, used;

	f->c.reading = false;
	f->c.shut_when_sent = true;
	f->s.to_send = 128 * 1024;
	f->s.shut_when_sent = true;
	ep_arm(&f->c);
	ep_arm(&f->s);
	T_ASSERT(run_until(f->l, server_flushed, f, 20000));
	loop_del(f->l, f->s.fd);
	f->s.registered = false;
	close(f->s.fd);
	f->s.fd = -1;
	/* A measurement window, not a synchronisation: the relay is stuck
	 * until the client reads, and must not burn CPU meanwhile. */
	cpu0 = cpu_us();
	run_until(f->l, never, f, 200);
	used = cpu_us() - cpu0;
	relay_get_stats(f->r, &st);
	printf("# blocked 200 ms with %llu bytes relayed of 131072: %llu us of CPU\n",
	       (unsigned long long)st.b_to_a, (unsigned long long)used);
	T_ASSERT(st.b_to_a < 128 * 1024);
	T_ASSERT(used < 50000);
	T_ASSERT_INT(f->done_calls, 0);
	f->c.reading = true;
	ep_arm(&f->c);
	T_ASSERT(run_until(f->l, client_finished, f, 20000));
	T_ASSERT_INT(f->c.received, 128 * 1024);
	T_ASSERT(!f->c.rx_bad);
	T_ASSERT_INT(f->st.error, 0);
	T_ASSERT_STR(f->st.reason, "closed");
	T_ASSERT_INT(f->st.b_to_a, 128 * 1024);
}

static void relay_hangup_while_blocked(void)
{
	fx_run(hup_body, 4096, 0);
}

static bool both_reset(void *p)
{
	struct fx *f = p;

	return f->c.rx_err && f->s.rx_err;
}

static void abort_body(struct fx *f)
{
	f->c.to_send = 10000;
	ep_arm(&f->c);
	ep_arm(&f->s);
	T_ASSERT(run_until(f->l, server_got_all, f, 10000));
	relay_abort(f->r, "test abort");
	T_ASSERT_INT(f->done_calls, 1); /* synchronously */
	T_ASSERT_STR(f->st.reason, "test abort");
	T_ASSERT(f->st.error != 0);
	T_ASSERT_INT(f->st.a_to_b, 10000);
	T_ASSERT(run_until(f->l, both_reset, f, 10000));
	T_ASSERT_INT(f->c.rx_err, ECONNRESET);
	T_ASSERT_INT(f->s.rx_err, ECONNRESET);
}

static void relay_abort_resets_both(void)
{
	fx_run(abort_body, 0, 0);
}

/* --- copy mode for small messages, splice for bulk, and back --- */

static uint64_t want_c, want_s;

static int nfds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static bool got_wanted(void *p)
{
	struct fx *f = p;

	return f->s.received >= want_s && f->c.received >= want_c;
}

/* One request/response: cb bytes client -> server, sb bytes back. */
static void step(struct fx *f, uint64_t cb, uint64_t sb)
{
	f->c.to_send += cb;
	f->s.to_send += sb;
	want_s += cb;
	want_c += sb;
	ep_arm(&f->c);
	ep_arm(&f->s);
	T_ASSERT(run_until(f->l, got_wanted, f, 20000));
}

static void modes_body(struct fx *f)
{
	int fds0 = nfds();

	want_c = want_s = 0;
	for (int i = 0; i < 20; i++)
		step(f, 1024, 512);
	/* request/response went through the copy path: no pipe was made */
	T_ASSERT_INT(nfds(), fds0);
	step(f, 8 * MIB, 4 * MIB);
	for (int i = 0; i < 20; i++)
		step(f, 100, 3000);
	T_ASSERT(!f->c.rx_bad && !f->s.rx_bad);
	exchange(f, f->c.to_send + 1000, f->s.to_send + 1000);
}

static void relay_small_copy_bulk_splice(void)
{
	fx_run(modes_body, 0, 0);
}

T_MAIN(T_CASE(loop_timers_order_and_cancel), T_CASE(loop_del_in_same_round),
       T_CASE(loop_set_hands_over_in_same_round), T_CASE(loop_forget_before_close),
       T_CASE(relay_both_ways), T_CASE(relay_half_close), T_CASE(relay_takes_over_registration), T_CASE(relay_reset_propagates),
       T_CASE(relay_abort_resets_both), T_CASE(relay_backpressure), T_CASE(relay_hangup_while_blocked),
       T_CASE(relay_64mib_byte_exact), T_CASE(relay_small_copy_bulk_splice))
