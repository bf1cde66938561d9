/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HBONE over nghttp2 + OpenSSL on the tunnel loop (contract: hbone.h).
 *
 * Re-entrancy: nghttp2 forbids nghttp2_session_send/mem_recv from inside
 * its own callbacks, and user callbacks may run deep inside them. Every
 * entry point therefore brackets its work with conn_enter()/conn_leave():
 * only the outermost leave pumps output (nghttp2_session_send + SSL_write)
 * and only the outermost leave frees a connection marked dead. Streams are
 * freed once their done callback ran and nghttp2 no longer knows them
 * (on_stream_close, or the session is deleted).
 *
 * nghttp2 1.52 (Debian 12) predates nghttp2_session_mem_recv2 and the
 * nghttp2_ssize callbacks, so the ssize_t variants are used.
 *
 * Cost model (measured with perf/strace through two tunnels; see hbone.h
 * for the byte path): no user-space copy of payload in the socket -> peer
 * direction (FIONREAD + read(2) into the TLS output buffer) and one in the
 * peer -> socket direction (SSL_read's, then send(2) from that buffer);
 * input gathered over several records per nghttp2_session_mem_recv; output
 * of an open connection written once per loop round (flush_cb), so the
 * HEADERS of many new streams share TLS records and send(2) calls.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "conf/log.h"
#include "conf/objcheck.h"
#include "conf/warren.h"
#include "tunnel/hbone.h"
#include "tunnel/relay.h"
#include "tunnel/tls.h"


#define OUTBUF_CAP   (1024u * 1024u) /* bounded HTTP/2 output per connection */
#define OUTBUF_MIN   (32u * 1024u)   /* its first size: two full TLS records */
#define TLS_RECORD   16384u          /* TLS plaintext record limit */
#define READ_BUF     (256u * 1024u)  /* decrypted input handed to nghttp2 at once */
#define DATA_FRAME_MAX (256 * 1024)   /* our DATA frame payload limit */
#define H2_FRAME_HDLEN 9              /* HTTP/2 frame header (RFC 9113 §4.1) */
#define READS_PER_EVENT 64           /* fairness between connections */
#define HDR_VALUE_MAX 4096           /* longest header value we keep */

/* ---------------------------------------------------------------- ring */

/*
 * A byte ring that grows on demand up to max (the stream window): most
 * bytes never enter it (they are written to the socket straight from the
 * decrypted TLS buffer), so it only holds what the app did not take yet,
 * and a stream that moves 1 KiB never allocates 4 MiB. Released when it
 * drains.
 */
struct ring {
	uint8_t *buf;
	size_t cap, head, len; /* invariant: len <= cap, head < cap (when cap) */
	size_t max;            /* cap never exceeds it */
	bool grew_big;         /* reached RING_BIG once: worth a heap trim when done */
};

#define RING_MIN (16u * 1024u)
#define RING_BIG (256u * 1024u)

static void ring_free(struct ring *r)
{
	free(r->buf);
	r->buf = NULL;
	r->cap = r->head = r->len = 0;
}

static size_t ring_space(const struct ring *r)
{
	return r->max - r->len;
}

/* Used bytes as up to two iovecs. */
static int ring_data_iov(struct ring *r, struct iovec iov[2])
{
	size_t first = r->cap - r->head < r->len ? r->cap - r->head : r->len;

	iov[0].iov_base = r->buf + r->head;
	iov[0].iov_len = first;
	iov[1].iov_base = r->buf;
	iov[1].iov_len = r->len - first;
	return iov[1].iov_len ? 2 : 1;
}

/* Room for n more bytes (n <= ring_space): grows (doubling, linearised
 * copy) when the allocation is too small. 0 or -ENOMEM. */
static int ring_reserve(struct ring *r, size_t n)
{
	size_t cap = r->cap ? r->cap : RING_MIN;
	struct iovec iov[2];
	uint8_t *nb;

	assert(n <= ring_space(r));
	if (r->buf && r->len + n <= r->cap)
		return 0;
	while (cap < r->len + n)
		cap *= 2;
	if (cap > r->max)
		cap = r->max;
	nb = malloc(cap);
	if (!nb)
		return -ENOMEM;
	if (r->len) {
		ring_data_iov(r, iov);
		memcpy(nb, iov[0].iov_base, iov[0].iov_len);
		memcpy(nb + iov[0].iov_len, iov[1].iov_base, iov[1].iov_len);
	}
	free(r->buf);
	r->buf = nb;
	r->cap = cap;
	r->head = 0;
	if (cap >= RING_BIG)
		r->grew_big = true;
	return 0;
}

static void ring_drop(struct ring *r, size_t n)
{
	assert(n <= r->len);
	r->head = (r->head + n) % r->cap;
	r->len -= n;
	if (!r->len)
		ring_free(r); /* an idle stream holds no buffer (re-allocated on next data) */
}

/* Appends n bytes; ring_reserve(r, n) succeeded before. */
static void ring_put(struct ring *r, const uint8_t *p, size_t n)
{
	size_t tail = (r->head + r->len) % r->cap;
	size_t a = r->cap - tail < n ? r->cap - tail : n;

	assert(r->len + n <= r->cap);
	memcpy(r->buf + tail, p, a);
	memcpy(r->buf, p + a, n - a);
	r->len += n;
}

/* ------------------------------------------------------------- structs */

enum stream_state {
	S_PENDING, /* client: waiting for the response; server: for a decision */
	S_RELAY,
	S_DONE,    /* done callback ran; waiting for nghttp2 to forget it */
};

struct hbone_stream {
	unsigned magic;
	struct hbone_stream *prev, *next;
	struct hbone_conn *c;
	int32_t id;              /* HTTP/2 stream id, 0 if none */
	enum stream_state st;
	int fd;                  /* the relayed socket, -1 none */
	uint32_t fd_events;      /* registered interest */
	bool fd_reg;
	bool h2_closed;          /* nghttp2 forgot the stream */
	bool announced;          /* server: on_request was called */
	bool peer_eof;           /* END_STREAM received */
	bool tcp_eof;            /* read() returned 0 */
	bool eof_sent;           /* END_STREAM handed to nghttp2 */
	bool wr_shut;            /* shutdown(SHUT_WR) done */
	bool deferred;           /* our data provider returned DEFERRED */
	bool drop_in;            /* EPOLLIN fired while not deferred: stop polling input */
	bool hup;                /* EPOLLHUP seen: no more input will arrive */
	bool rdhup;              /* EPOLLRDHUP seen: the app shut its side (EOF after the queue) */
	bool rst_sent;
	bool rst_after_response; /* rejected: RST_STREAM(NO_ERROR) once the answer left */
	int rd_err;              /* errno of a failed socket read, 0 none */
	int avail;               /* bytes known queued on fd: > 0 FIONREAD minus what
				    we read since (a lower bound, queued bytes only
				    grow); 0 FIONREAD's answer of just now, used
				    once; -1 unknown */
	struct ring down;        /* peer -> socket: what the app did not take yet */
	struct hbone_stream_stats stats;
	hbone_stream_done_cb cb;
	void *cb_ctx;
	void *user;
	/* request (server) / response (client) headers */
	char *method, *authority, *forwarded, *baggage, *traceparent;
	int status;
};

enum conn_role { ROLE_CLIENT, ROLE_SERVER };

struct hbone_conn {
	unsigned magic;
	struct hbone_conn *prev, *next; /* pool list */
	struct hbone_pool *pool;
	char *pool_key;
	char pool_dst[64];       /* a pooled dial's destination, for its backoff */
	struct loop *l;
	enum conn_role role;
	bool mem;                /* memory transport: no fd, no TLS */
	bool opened;             /* the TLS handshake completed */
	enum hbone_conn_state state;
	int fd;
	uint32_t events;
	bool fd_reg;
	SSL *ssl;
	enum tls_io hs_want;
	nghttp2_session *h2;
	struct hbone_opts o;
	uint8_t *out;
	size_t out_cap;          /* out's size: OUTBUF_MIN doubling up to OUTBUF_CAP */
	size_t out_off, out_len; /* pending output is out[out_off, out_off+out_len) */
	struct hbone_stream *streams;
	unsigned live;           /* streams not yet done */
	uint64_t streams_total;
	struct loop_timer *ping_timer, *idle_timer, *connect_timer;
	struct loop_timer *flush_timer; /* output pump at the end of this loop round */
	struct loop_timer *trim_timer;  /* malloc_trim after a burst */
	struct loop_timer *goaway_timer; /* server drain: the final GOAWAY */
	bool goaway_pending;     /* server drain asked before the handshake ended */
	bool pump_now;           /* flush_cb: conn_leave pumps instead of deferring */
	uint64_t ping_sent_ms, pings_sent, pings_acked;
	bool ping_outstanding;
	uint64_t created_ms, idle_since_ms;
	uint64_t bytes_in, bytes_out;
	char peer_id[SPIFFE_ID_MAX];
	char reason[256];
	int busy;
	bool dead, destroyed;
	bool hold;               /* memory transport: freed only by hbone_conn_abort */
	bool draining;           /* pool: no new streams; closed when the last one ends */
	hbone_conn_done_cb done_cb;
	void *done_ctx;
	struct hbone_server_cbs scbs;
};

/* A destination whose last dials failed (hbone.h: dial backoff). */
struct pool_backoff {
	struct pool_backoff *next;
	char dst[64];           /* "10.0.0.2:15008" */
	unsigned failures;      /* in a row */
	uint64_t until_ms;      /* no dial before */
	char last[160];         /* why the last dial failed */
};

struct hbone_pool {
	unsigned magic;
	struct loop *l;
	struct hbone_opts o;
	struct hbone_conn *conns;
	struct pool_backoff *backoff;
};

static hbone_handshake_cb hs_observer;
static void *hs_observer_ctx;

void hbone_set_handshake_observer(hbone_handshake_cb cb, void *ctx)
{
	hs_observer = cb;
	hs_observer_ctx = ctx;
}

static void hs_observe(struct hbone_conn *c, bool ok, const char *reason)
{
	if (hs_observer && !c->mem)
		hs_observer(hs_observer_ctx, c->role == ROLE_SERVER, ok, reason);
}

static struct pool_backoff *pool_backoff_find(struct hbone_pool *p, const char *dst)
{
	for (struct pool_backoff *b = p->backoff; b; b = b->next)
		if (!strcmp(b->dst, dst))
			return b;
	return NULL;
}

/* A pooled dial to dst ended: opened (why NULL) forgets the destination's
 * failures; failed waits HBONE_BACKOFF_MIN_MS, doubled per failure in a
 * row up to HBONE_BACKOFF_MAX_MS, before the next dial. */
static void pool_dial_result(struct hbone_pool *p, const char *dst, const char *why)
{
	struct pool_backoff *b = pool_backoff_find(p, dst), **pp;
	uint64_t wait = HBONE_BACKOFF_MIN_MS;

	if (!why) {
		for (pp = &p->backoff; b && *pp; pp = &(*pp)->next)
			if (*pp == b) {
				*pp = b->next;
				free(b);
				break;
			}
		return;
	}
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return; /* no backoff then: each connection dials */
		snprintf(b->dst, sizeof(b->dst), "%s", dst);
		b->next = p->backoff;
		p->backoff = b;
	}
	if (b->failures < 32)
		b->failures++;
	for (unsigned i = 1; i < b->failures && wait < HBONE_BACKOFF_MAX_MS; i++)
		wait *= 2;
	if (wait > HBONE_BACKOFF_MAX_MS)
		wait = HBONE_BACKOFF_MAX_MS;
	b->until_ms = loop_now_ms() + wait;
	snprintf(b->last, sizeof(b->last), "%s", why);
}

static void conn_pump(struct hbone_conn *c);
static void conn_kill(struct hbone_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void stream_update(struct hbone_stream *s);
static void conn_arm_idle(struct hbone_conn *c);

void hbone_opts_default(struct hbone_opts *o, bool server)
{
	memset(o, 0, sizeof(*o));
	o->stream_window = 4u << 20;
	o->conn_window = 16u << 20;
	o->max_frame = 1u << 20;
	o->max_streams = server ? 200 : 100;
	o->max_header_list = server ? 64u << 10 : 16u << 10;
	o->send_buf = 256u << 10;
	o->ping_interval_ms = 10000;
	o->ping_timeout_ms = 20000;
	o->idle_ms = server ? 0 : 5 * 60 * 1000;
	o->connect_timeout_ms = 10000;
}

const char *hbone_conn_state_name(enum hbone_conn_state s)
{
	static const char *const n[] = { "connecting", "handshake", "open", "closing", "dead" };

	return (unsigned)s < ARRAY_SIZE(n) ? n[s] : "?";
}

/* ---------------------------------------------------------- enter/leave */

static void conn_destroy(struct hbone_conn *c);

static void conn_enter(struct hbone_conn *c)
{
	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	c->busy++;
}

static void conn_leave(struct hbone_conn *c);

static void flush_cb(struct loop *l, void *ctx)
{
	struct hbone_conn *c = ctx;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	c->flush_timer = NULL;
	conn_enter(c);
	c->pump_now = true;
	conn_leave(c);
}

/*
 * Output of an open connection is written once per loop round (a 0 ms
 * timer runs after every fd event of the round): the frames of all the
 * streams that had events in this round (64 new CONNECTs and their 200s
 * under a connection storm, window updates and DATA under bulk) share TLS
 * records and send(2) calls instead of one small record each.
 */
static void conn_leave(struct hbone_conn *c)
{
	assert(c->busy > 0);
	if (c->busy == 1 && !c->dead) {
		bool now = c->pump_now || c->mem ||
			   (c->state != HBONE_OPEN && c->state != HBONE_CLOSING) ||
			   !nghttp2_session_want_write(c->h2);

		c->pump_now = false;
		if (!now && !c->flush_timer) {
			c->flush_timer = loop_timer_add(c->l, 0, flush_cb, c);
			now = !c->flush_timer;
		}
		if (now)
			conn_pump(c);
	}
	if (--c->busy == 0 && c->dead && !c->hold)
		conn_destroy(c);
}

static void conn_kill(struct hbone_conn *c, const char *fmt, ...)
{
	va_list ap;

	if (c->dead)
		return;
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
	c->dead = true;
	c->state = HBONE_DEAD;
}

/* ----------------------------------------------------------- streams */

/*
 * Heap after a burst. free() only returns the top of the heap: after a
 * bulk stream, or 1000 relayed connections ending, the freed pages in the
 * middle stay resident. So a second after such a burst ends,
 * malloc_trim() hands the free pages back (a walk of the heap, well under
 * a millisecond here; at most one pending per connection). Bursts: a
 * stream whose ring reached RING_BIG ended, or the process-wide stream
 * count fell to a quarter of a peak of at least TRIM_MIN_PEAK. Pooled
 * connections outlive their streams' burst (they close when idle, minutes
 * later) and pin pages of their own, so the connection count falling to a
 * quarter of a peak of at least TRIM_MIN_CONNS trims too, at once (the
 * connection is gone, and connections end far more rarely than streams).
 * The counts are atomic: streams and connections end on their worker's
 * thread or, closed by the control plane, on the main thread; a lost race
 * only moves a trim.
 */
#define TRIM_MIN_PEAK 32u
#define TRIM_MIN_CONNS 4u
#define TRIM_DELAY_MS 1000u

struct burst {
	atomic_uint now, peak;
};
static struct burst g_streams, g_conns;

static void burst_inc(struct burst *b)
{
	unsigned n = atomic_fetch_add(&b->now, 1) + 1;
	unsigned peak = atomic_load(&b->peak);

	while (n > peak && !atomic_compare_exchange_weak(&b->peak, &peak, n))
		;
}

/* One fewer; true when that ends a burst of at least min (the count fell
 * to a quarter of its peak, which restarts from here). */
static bool burst_dec(struct burst *b, unsigned min)
{
	unsigned n = atomic_fetch_sub(&b->now, 1) - 1;
	unsigned peak = atomic_load(&b->peak);

	assert(n != UINT_MAX);
	return peak >= min && n <= peak / 4 && atomic_compare_exchange_strong(&b->peak, &peak, n);
}

/* conn_read()'s buffer: one per thread (a loop runs on one thread and its
 * callbacks never read another connection), mapped on first use and
 * page-aligned so a trim can hand its pages back once bulk reads filled it
 * (read_buf_high: the most it held since). A connection lives on one loop,
 * so its trim timer runs on the thread whose buffer it trims. Not a
 * _Thread_local array: glibc zeroes a thread's TLS block when the thread
 * starts, which would make all of it resident in every thread. */
static _Thread_local uint8_t *read_buf;
static _Thread_local bool read_buf_busy;
static _Thread_local size_t read_buf_high;

/* This thread's buffer, NULL when it cannot be mapped. */
static uint8_t *read_buf_get(void)
{
	if (!read_buf) {
		void *p = mmap(NULL, READ_BUF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p != MAP_FAILED)
			read_buf = p;
	}
	return read_buf;
}

static void heap_trim(void)
{
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

static void trim_cb(struct loop *l, void *ctx)
{
	struct hbone_conn *c = ctx;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	c->trim_timer = NULL;
	heap_trim();
	if (read_buf && !read_buf_busy && read_buf_high > TLS_RECORD) {
		(void)madvise(read_buf, READ_BUF, MADV_DONTNEED);
		read_buf_high = 0;
	}
}

static void conn_trim_soon(struct hbone_conn *c)
{
	if (!c->trim_timer && !c->mem)
		c->trim_timer = loop_timer_add(c->l, TRIM_DELAY_MS, trim_cb, c);
}

static void set_reason(struct hbone_stream *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_reason(struct hbone_stream *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->stats.reason, sizeof(s->stats.reason), fmt, ap);
	va_end(ap);
}

static struct hbone_stream *stream_new(struct hbone_conn *c)
{
	struct hbone_stream *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->magic = HBONE_STREAM_MAGIC;
	s->c = c;
	s->fd = -1;
	s->avail = -1;
	s->down.max = c->o.stream_window;
	s->next = c->streams;
	if (c->streams)
		c->streams->prev = s;
	c->streams = s;
	c->live++;
	burst_inc(&g_streams);
	c->streams_total++;
	if (c->idle_timer) {
		loop_timer_cancel(c->l, c->idle_timer);
		c->idle_timer = NULL;
	}
	return s;
}

static void stream_free(struct hbone_stream *s)
{
	struct hbone_conn *c;

	if (!s)
		return;
	CHECK_OBJ(s, HBONE_STREAM_MAGIC);
	c = s->c;
	assert(s->st == S_DONE && s->fd < 0);
	if (s->prev)
		s->prev->next = s->next;
	else
		c->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	ring_free(&s->down);
	free(s->method);
	free(s->authority);
	free(s->forwarded);
	free(s->baggage);
	free(s->traceparent);
	s->magic = 0;
	free(s);
}

static void stream_close_fd(struct hbone_stream *s, bool reset)
{
	if (s->fd < 0)
		return;
	if (s->fd_reg)
		loop_forget(s->c->l, s->fd);
	s->fd_reg = false;
	/* RST instead of FIN: the app must not mistake a failure for a clean
	 * end of stream. The app's socket resets on close unless told
	 * otherwise (relay.h). */
	if (reset)
		sock_rst_on_exit(s->fd);
	else
		sock_fin_on_close(s->fd);
	close(s->fd);
	s->fd = -1;
}

/*
 * Ends the stream once: closes (reset=true: resets) the socket, resets the
 * HTTP/2 stream when it is still open and reset is asked, runs the done
 * callback. Frees the stream when nghttp2 already forgot it. The caller
 * must not touch s afterwards.
 */
static void stream_end(struct hbone_stream *s, bool reset, uint32_t h2_error)
{
	struct hbone_conn *c = s->c;

	if (s->st == S_DONE)
		return;
	stream_close_fd(s, reset);
	if (!s->h2_closed && s->id > 0 && !c->dead && !s->rst_sent && (reset || !s->eof_sent)) {
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id,
					  h2_error ? h2_error : NGHTTP2_CANCEL);
		s->rst_sent = true;
		if (!s->stats.h2_error)
			s->stats.h2_error = h2_error ? h2_error : NGHTTP2_CANCEL;
	}
	s->st = S_DONE;
	if (s->down.len && !c->dead) /* unread bytes still hold connection window */
		nghttp2_session_consume_connection(c->h2, s->down.len);
	ring_free(&s->down);
	if (!s->stats.reason[0])
		set_reason(s, reset ? "reset" : "closed");
	assert(c->live > 0);
	c->live--;
	if (burst_dec(&g_streams, TRIM_MIN_PEAK))
		conn_trim_soon(c);
	/* a bulk stream: its ring, the output buffer or read_buf grew */
	if (s->down.grew_big || s->stats.tx >= RING_BIG || read_buf_high > TLS_RECORD)
		conn_trim_soon(c);
	if (s->cb && (c->role == ROLE_CLIENT || s->announced))
		s->cb(s->cb_ctx, s, &s->stats);
	s->cb = NULL;
	if (!c->live)
		conn_arm_idle(c);
	if (s->h2_closed)
		stream_free(s);
}

static void stream_fail(struct hbone_stream *s, uint32_t h2_error, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void stream_fail(struct hbone_stream *s, uint32_t h2_error, const char *fmt, ...)
{
	va_list ap;

	if (s->st == S_DONE)
		return;
	va_start(ap, fmt);
	vsnprintf(s->stats.reason, sizeof(s->stats.reason), fmt, ap);
	va_end(ap);
	stream_end(s, true, h2_error);
}

static void stream_fd_cb(struct loop *l, int fd, uint32_t events, void *ctx);

/*
 * Socket interest: EPOLLOUT while the down ring holds bytes, EPOLLIN while
 * our data provider is deferred for lack of input (the socket -> peer
 * direction has no buffer of ours: the kernel's receive queue is the
 * buffer, read straight into the TLS output when nghttp2 asks for DATA).
 * EPOLLIN is dropped lazily (drop_in, when it fired while not deferred), so
 * a stream alternating between "drained" and "more arrived" makes no
 * epoll_ctl calls.
 */
static void stream_set_interest(struct hbone_stream *s)
{
	uint32_t ev = 0;
	bool in_ok;

	if (s->st != S_RELAY || s->fd < 0 || s->hup)
		return;
	in_ok = !s->tcp_eof && !s->rd_err;
	if (in_ok && (s->deferred || ((s->fd_events & EPOLLIN) && !s->drop_in)))
		ev |= EPOLLIN | EPOLLRDHUP;
	s->drop_in = false;
	if (s->down.len > 0)
		ev |= EPOLLOUT;
	if (!s->fd_reg) {
		if (!ev)
			return;
		if (loop_add(s->c->l, s->fd, ev, stream_fd_cb, s) < 0) {
			stream_fail(s, NGHTTP2_INTERNAL_ERROR, "cannot watch the socket");
			return;
		}
		s->fd_reg = true;
	} else if (ev != s->fd_events) {
		loop_mod(s->c->l, s->fd, ev);
	}
	s->fd_events = ev;
}

static void stream_resume(struct hbone_stream *s)
{
	if (s->deferred && s->id > 0 && !s->h2_closed && !s->c->dead) {
		s->deferred = false;
		nghttp2_session_resume_data(s->c->h2, s->id);
	}
}

/* Peer -> socket: write what the down ring holds, give the window back. */
static int stream_flush_down(struct hbone_stream *s)
{
	struct hbone_conn *c = s->c;

	while (s->down.len > 0) {
		struct iovec iov[2];
		int n = ring_data_iov(&s->down, iov);
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t w = sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			return -errno;
		}
		ring_drop(&s->down, (size_t)w);
		s->stats.rx += (uint64_t)w;
		if (!c->dead) {
			/* Window goes back only for bytes the app has taken. */
			if (!s->h2_closed)
				nghttp2_session_consume(c->h2, s->id, (size_t)w);
			else
				nghttp2_session_consume_connection(c->h2, (size_t)w);
		}
	}
	return 0;
}

/* Moves the relay state machine forward after any event. */
static void stream_update(struct hbone_stream *s)
{
	int ret;

	if (s->st != S_RELAY)
		return;
	ret = stream_flush_down(s);
	if (ret < 0) {
		stream_fail(s, NGHTTP2_CANCEL, "write to the socket failed: %s", strerror(-ret));
		return;
	}
	if (s->down.len == 0 && s->peer_eof && !s->wr_shut) {
		shutdown(s->fd, SHUT_WR);
		s->wr_shut = true;
	}
	if (s->h2_closed && s->down.len == 0) {
		/* nghttp2 closed it cleanly (error streams were ended in
		 * on_stream_close): both END_STREAMs went through. */
		s->stats.ok = s->peer_eof && s->eof_sent;
		stream_end(s, !s->peer_eof, 0);
		return;
	}
	stream_set_interest(s);
}

static void stream_fd_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct hbone_stream *s = ctx;
	struct hbone_conn *c;

	CHECK_OBJ(s, HBONE_STREAM_MAGIC);
	c = s->c;
	conn_enter(c);
	if (s->st == S_RELAY) {
		if (events & (EPOLLERR | EPOLLHUP)) {
			int err = 0;
			socklen_t len = sizeof(err);

			/* A reset reports EPOLLERR; a hang-up alone is two clean
			 * FINs and needs no SO_ERROR (one syscall per stream). */
			if ((events & EPOLLERR) &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err) {
				stream_fail(s, NGHTTP2_CANCEL, "socket error: %s", strerror(err));
				goto out;
			}
			if (events & EPOLLHUP) {
				/* Both directions are shut: no input will come
				 * (what is queued and the EOF are read without
				 * epoll), and HUP would fire on every round. */
				s->hup = true;
				loop_del(l, fd);
				s->fd_reg = false;
				s->fd_events = 0;
			}
		}
		if (s->rd_err) {
			stream_fail(s, NGHTTP2_CANCEL, "read from the socket failed: %s",
				    strerror(s->rd_err));
			goto out;
		}
		if (events & (EPOLLRDHUP | EPOLLHUP))
			s->rdhup = true;
		if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
			if (s->deferred)
				stream_resume(s);
			else if (events & EPOLLIN)
				s->drop_in = true; /* input waits for window: stop polling it */
		}
	}
	stream_update(s);
out:
	conn_leave(c);
}

/*
 * nghttp2 asks for the next DATA payload (at most length bytes): we only
 * say how much the socket holds (s->avail, else FIONREAD) and send_data_cb reads it
 * straight into the TLS output buffer behind the frame header (no copy in
 * user space). Nothing queued: EOF (-> END_STREAM) once epoll reported
 * RDHUP/HUP (the queue is empty, so the FIN is next), else DEFERRED until
 * EPOLLIN (which also fires for a FIN that arrived meanwhile): no MSG_PEEK
 * probe per deferral.
 */
static ssize_t data_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
			    size_t length, uint32_t *data_flags, nghttp2_data_source *source,
			    void *user_data)
{
	struct hbone_stream *s = source->ptr;

	CHECK_OBJ(s, HBONE_STREAM_MAGIC);
	if (s->st != S_RELAY || s->fd < 0 || s->rd_err) {
		s->avail = -1;
		goto defer;
	}
	if (!s->tcp_eof) {
		int avail = s->avail;

		/* Known queued bytes are enough to go on; deferring or ending
		 * the stream needs the socket's word of just now (a 0 that
		 * data_len_cb left, used up here). */
		if (avail < 0 && ioctl(s->fd, FIONREAD, &avail) < 0) {
			s->avail = -1;
			s->rd_err = errno;
			goto defer;
		}
		s->avail = avail > 0 ? avail : -1;
		if (avail > 0) {
			*data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
			return (ssize_t)(length < (size_t)avail ? length : (size_t)avail);
		}
		if (!s->rdhup)
			goto defer;
		s->tcp_eof = true;
	}
	*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	s->eof_sent = true;
	return 0;
defer:
	s->deferred = true;
	stream_set_interest(s);
	return NGHTTP2_ERR_DEFERRED;
}

/* -------------------------------------------------------- connection I/O */

static struct hbone_stream *conn_stream(struct hbone_conn *c, int32_t id)
{
	struct hbone_stream *s = nghttp2_session_get_stream_user_data(c->h2, id);

	if (s) {
		CHECK_OBJ(s, HBONE_STREAM_MAGIC);
		return s;
	}
	for (s = c->streams; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

/*
 * Room for need more bytes at the end of the output buffer (allocated on
 * first use, released when the connection has drained and has no stream).
 * It starts at OUTBUF_MIN, so request/response traffic stays on small heap
 * chunks, and doubles up to OUTBUF_CAP under bulk; a grown buffer is a
 * large one only while the connection is busy. Pending bytes are moved to
 * the front only when that copies no more than it frees: a connection
 * whose socket is slow does not memmove its whole buffer per frame.
 * 0, -EAGAIN (full for now), -ENOMEM.
 */
static int out_reserve(struct hbone_conn *c, size_t need)
{
	size_t cap;
	uint8_t *nb;

	if (!c->out_len)
		c->out_off = 0;
	if (c->out && c->out_off + c->out_len + need <= c->out_cap)
		return 0;
	if (c->out_len + need > OUTBUF_CAP)
		return -EAGAIN;
	if (c->out && c->out_len + need <= c->out_cap && c->out_len <= c->out_off) {
		/* SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows this with a write pending. */
		memmove(c->out, c->out + c->out_off, c->out_len);
		c->out_off = 0;
		return 0;
	}
	if (c->out && c->out_cap == OUTBUF_CAP)
		return -EAGAIN;
	for (cap = c->out ? c->out_cap * 2 : OUTBUF_MIN; cap < c->out_len + need; cap *= 2)
		;
	assert(cap <= OUTBUF_CAP);
	nb = malloc(cap);
	if (!nb)
		return -ENOMEM;
	if (c->out_len)
		memcpy(nb, c->out + c->out_off, c->out_len); /* a pending write may move, as above */
	free(c->out);
	c->out = nb;
	c->out_cap = cap;
	c->out_off = 0;
	return 0;
}

static ssize_t send_cb(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
		       void *user_data)
{
	struct hbone_conn *c = user_data;
	size_t space;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	if (c->mem) {
		c->bytes_out += length;
		return (ssize_t)length;
	}
	if (out_reserve(c, length > 4096 ? 4096 : length) < 0)
		return NGHTTP2_ERR_WOULDBLOCK;
	space = c->out_cap - c->out_off - c->out_len;
	if (length > space)
		length = space;
	memcpy(c->out + c->out_off + c->out_len, data, length);
	c->out_len += length;
	return (ssize_t)length;
}

/*
 * A DATA frame whose payload is still in the app socket (data_read_cb said
 * how much): header, then read(2) the payload right behind it, so the
 * bytes go kernel -> TLS buffer -> AES with no copy of ours. The whole
 * frame or nothing: without room, WOULDBLOCK (nghttp2 retries the same
 * frame; the bytes wait in the socket).
 */
static int send_data_cb(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
			size_t length, nghttp2_data_source *source, void *user_data)
{
	struct hbone_conn *c = user_data;
	struct hbone_stream *s = source->ptr;
	size_t pad = frame->data.padlen, need = H2_FRAME_HDLEN + length + pad;
	uint8_t *p;
	ssize_t r;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	CHECK_OBJ(s, HBONE_STREAM_MAGIC);
	if (s->st == S_DONE || s->fd < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* ended meanwhile: drop the frame */
	switch (out_reserve(c, need)) {
	case 0:
		break;
	case -EAGAIN:
		return NGHTTP2_ERR_WOULDBLOCK;
	default:
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	p = c->out + c->out_off + c->out_len;
	memcpy(p, framehd, H2_FRAME_HDLEN);
	p += H2_FRAME_HDLEN;
	if (pad)
		*p++ = (uint8_t)(pad - 1);
	do
		r = read(s->fd, p, length);
	while (r < 0 && errno == EINTR);
	if (r != (ssize_t)length) {
		/* FIONREAD promised these bytes: the socket failed. */
		s->avail = -1;
		s->rd_err = r < 0 ? errno : EIO;
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	s->avail = s->avail > (int)length ? s->avail - (int)length : -1;
	if (pad > 1)
		memset(p + length, 0, pad - 1);
	s->stats.tx += length;
	if (c->mem)
		c->bytes_out += need; /* counted and dropped */
	else
		c->out_len += need;
	return 0;
}

static int hdr_dup(char **dst, const uint8_t *v, size_t n)
{
	if (n > HDR_VALUE_MAX)
		return -1;
	free(*dst);
	*dst = strndup((const char *)v, n);
	return *dst ? 0 : -1;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct hbone_conn *c = user_data;
	struct hbone_stream *s;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	if (c->role != ROLE_SERVER || frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	s = stream_new(c);
	if (!s)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets just this stream */
	s->id = frame->hd.stream_id;
	s->cb = c->scbs.on_stream_done;
	s->cb_ctx = c->scbs.ctx;
	nghttp2_session_set_stream_user_data(session, s->id, s);
	return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user_data)
{
	struct hbone_conn *c = user_data;
	struct hbone_stream *s;
	char **dst = NULL;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	s = conn_stream(c, frame->hd.stream_id);
	if (!s || s->st == S_DONE)
		return 0;
#define IS(lit) (namelen == sizeof(lit) - 1 && !memcmp(name, lit, namelen))
	if (c->role == ROLE_CLIENT) {
		if (IS(":status")) {
			int st = 0;

			for (size_t i = 0; i < valuelen && i < 3; i++)
				st = st * 10 + (value[i] - '0');
			s->status = st; /* nghttp2 checked it is 3 digits */
		} else if (IS("baggage")) {
			dst = &s->baggage;
		}
	} else if (IS(":method")) {
		dst = &s->method;
	} else if (IS(":authority")) {
		dst = &s->authority;
	} else if (IS("forwarded")) {
		dst = &s->forwarded;
	} else if (IS("baggage")) {
		dst = &s->baggage;
	} else if (IS("traceparent")) {
		dst = &s->traceparent;
	}
#undef IS
	if (dst && hdr_dup(dst, value, valuelen))
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return 0;
}

static int submit_status(struct hbone_stream *s, int status, bool with_body)
{
	char st[4];
	nghttp2_nv nv = { (uint8_t *)":status", (uint8_t *)st, 7, 3, NGHTTP2_NV_FLAG_NONE };
	nghttp2_data_provider prd = { .source.ptr = s, .read_callback = data_read_cb };

	snprintf(st, sizeof(st), "%03d", status);
	s->stats.status = status;
	return nghttp2_submit_response(s->c->h2, s->id, &nv, 1, with_body ? &prd : NULL);
}

/* Answers status with END_STREAM and ends the stream (reason already set
 * or "rejected <status>"). */
static void server_reject(struct hbone_stream *s, int status)
{
	struct hbone_conn *c = s->c;

	if (!c->dead && !s->h2_closed) {
		submit_status(s, status, false);
		/* We will not read the request body: tell the client to stop
		 * (RFC 9113 §8.1) so the stream does not linger half-open. Not
		 * now: a RST_STREAM queued now would cancel the answer. */
		s->rst_after_response = true;
		s->rst_sent = true;
	}
	s->stats.status = status;
	if (!s->stats.reason[0])
		set_reason(s, "rejected %d", status);
	stream_end(s, false, 0);
}

/* Server: a complete request header block arrived. */
static void server_request(struct hbone_conn *c, struct hbone_stream *s)
{
	struct hbone_request req;

	memset(&req, 0, sizeof(req));
	if (!s->method || strcmp(s->method, "CONNECT")) {
		set_reason(s, "rejected 400: method %s is not CONNECT",
			   s->method ? s->method : "(none)");
		log_debug("hbone: %s", s->stats.reason);
		server_reject(s, 400);
		return;
	}
	if (!s->authority || hbone_parse_authority(s->authority, &req)) {
		set_reason(s, "rejected 400: unparsable :authority");
		server_reject(s, 400);
		return;
	}
	req.peer_id = c->peer_id;
	req.method = s->method;
	req.authority = s->authority;
	req.forwarded = s->forwarded;
	req.baggage = s->baggage;
	req.traceparent = s->traceparent;
	s->announced = true;
	c->scbs.on_request(c->scbs.ctx, s, &req);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct hbone_conn *c = user_data;
	struct hbone_stream *s = NULL;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	switch (frame->hd.type) {
	case NGHTTP2_PING:
		if (frame->hd.flags & NGHTTP2_FLAG_ACK) {
			c->pings_acked++;
			c->ping_outstanding = false;
		}
		return 0;
	case NGHTTP2_GOAWAY:
		if (c->state == HBONE_OPEN)
			c->state = HBONE_CLOSING;
		return 0;
	case NGHTTP2_HEADERS:
	case NGHTTP2_DATA:
		break;
	default:
		return 0;
	}
	s = conn_stream(c, frame->hd.stream_id);
	if (!s || s->st == S_DONE)
		return 0;
	if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
		s->peer_eof = true;
	if (frame->hd.type == NGHTTP2_HEADERS) {
		if (c->role == ROLE_SERVER && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
			server_request(c, s);
			return 0;
		}
		if (c->role == ROLE_CLIENT && s->st == S_PENDING &&
		    frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
			s->stats.status = s->status;
			if (s->status != 200) {
				set_reason(s, "peer answered %d", s->status);
				stream_end(s, true, NGHTTP2_CANCEL);
				return 0;
			}
			s->st = S_RELAY;
			stream_resume(s); /* the app may have written already */
		}
	}
	stream_update(s);
	return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
			 const uint8_t *data, size_t len, void *user_data)
{
	struct hbone_conn *c = user_data;
	struct hbone_stream *s;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	s = conn_stream(c, stream_id);
	if (!s || s->st == S_DONE) {
		/* Nobody will read it: return the window at once. */
		nghttp2_session_consume(session, stream_id, len);
		return 0;
	}
	if (len > ring_space(&s->down)) {
		/* Cannot happen with a peer that honours our window. */
		nghttp2_session_consume(session, stream_id, len);
		stream_fail(s, NGHTTP2_FLOW_CONTROL_ERROR, "peer exceeded the stream window");
		return 0;
	}
	if (s->st == S_RELAY && !s->down.len && s->fd >= 0 && !s->wr_shut) {
		/* Straight from the decrypted TLS buffer to the socket; only
		 * what the app cannot take now is buffered. */
		ssize_t w;

		do
			w = send(s->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (w < 0 && errno == EINTR);
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			nghttp2_session_consume(session, stream_id, len);
			stream_fail(s, NGHTTP2_CANCEL, "write to the socket failed: %s",
				    strerror(errno));
			return 0;
		}
		if (w > 0) {
			s->stats.rx += (uint64_t)w;
			nghttp2_session_consume(session, stream_id, (size_t)w);
			data += w;
			len -= (size_t)w;
		}
		if (!len)
			return 0;
	}
	if (ring_reserve(&s->down, len)) {
		nghttp2_session_consume(session, stream_id, len);
		stream_fail(s, NGHTTP2_INTERNAL_ERROR, "out of memory buffering %zu bytes", len);
		return 0;
	}
	ring_put(&s->down, data, len);
	stream_set_interest(s); /* EPOLLOUT now, not at the end of the frame */
	return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
			   void *user_data)
{
	struct hbone_conn *c = user_data;
	struct hbone_stream *s;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	s = conn_stream(c, stream_id);
	if (!s)
		return 0;
	nghttp2_session_set_stream_user_data(session, stream_id, NULL);
	s->h2_closed = true;
	if (s->st == S_DONE) {
		stream_free(s);
		return 0;
	}
	if (error_code != NGHTTP2_NO_ERROR || s->st == S_PENDING) {
		s->stats.h2_error = error_code;
		if (s->rd_err)
			stream_fail(s, 0, "read from the socket failed: %s", strerror(s->rd_err));
		else if (error_code != NGHTTP2_NO_ERROR)
			stream_fail(s, 0, "stream reset by the peer: %s",
				    nghttp2_http2_strerror(error_code));
		else
			stream_fail(s, 0, "stream closed before it was established");
		return 0;
	}
	stream_update(s); /* drains, then ends */
	return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct hbone_conn *c = user_data;
	struct hbone_stream *s;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	if (frame->hd.type != NGHTTP2_HEADERS || c->role != ROLE_SERVER)
		return 0;
	s = conn_stream(c, frame->hd.stream_id);
	if (s && s->rst_after_response && !s->h2_closed) {
		s->rst_after_response = false;
		nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
	}
	return 0;
}

static int on_frame_not_send(nghttp2_session *session, const nghttp2_frame *frame,
			     int lib_error_code, void *user_data)
{
	struct hbone_conn *c = user_data;
	struct hbone_stream *s;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	s = conn_stream(c, frame->hd.stream_id);
	if (!s || c->role != ROLE_CLIENT || s->st != S_PENDING)
		return 0;
	/* The request never left. nghttp2 may still report a close (it
	 * closes a stream it opened for the request); the stream is freed
	 * then, or with the connection. No RST for a stream never sent. */
	s->rst_sent = true;
	stream_fail(s, 0, "request not sent: %s", nghttp2_strerror(lib_error_code));
	return 0;
}

/*
 * DATA frame size: what the socket holds (s->avail, asked with FIONREAD
 * when nothing is known to be queued), up to DATA_FRAME_MAX (fewer frames and
 * syscalls per byte than nghttp2's 16 KiB default), bounded by the peer's
 * MAX_FRAME_SIZE and the windows. Sized to the data because nghttp2 grows
 * the connection's frame buffer to the largest length returned here and
 * never shrinks it: a connection that only carries small requests keeps
 * the default 16 KiB buffer.
 */
static ssize_t data_len_cb(nghttp2_session *session, uint8_t frame_type, int32_t stream_id,
			   int32_t session_remote_window_size, int32_t stream_remote_window_size,
			   uint32_t remote_max_frame_size, void *user_data)
{
	struct hbone_stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
	ssize_t n = 4096; /* nothing to send (EOF, deferral): stay in the default buffer */

	if (s && s->magic == HBONE_STREAM_MAGIC && s->st == S_RELAY && s->fd >= 0 &&
	    !s->tcp_eof && !s->rd_err) {
		int avail = s->avail;

		/* One FIONREAD per socket-full, not per frame: what it
		 * reported and we have not read yet is still there. */
		if (avail <= 0 && ioctl(s->fd, FIONREAD, &avail) < 0) {
			s->rd_err = errno;
			avail = 0;
		}
		s->avail = avail;
		if (avail > 0)
			n = avail < DATA_FRAME_MAX ? avail : DATA_FRAME_MAX;
	}

	if ((uint32_t)n > remote_max_frame_size)
		n = (ssize_t)remote_max_frame_size;
	if (n > session_remote_window_size)
		n = session_remote_window_size;
	if (n > stream_remote_window_size)
		n = stream_remote_window_size;
	return n > 0 ? n : 1;
}

static int session_new(struct hbone_conn *c)
{
	nghttp2_session_callbacks *cbs = NULL;
	nghttp2_option *opt = NULL;
	nghttp2_settings_entry iv[5];
	size_t niv = 0;
	int ret = -ENOMEM;

	if (nghttp2_session_callbacks_new(&cbs) || nghttp2_option_new(&opt))
		goto out;
	nghttp2_session_callbacks_set_send_callback(cbs, send_cb);
	nghttp2_session_callbacks_set_send_data_callback(cbs, send_data_cb);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
	nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, data_len_cb);
	/* Window only comes back when the socket took the bytes. */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	/* No priority tree: nothing to keep closed streams for (they would
	 * hold ~100 structs per busy connection). */
	nghttp2_option_set_no_closed_streams(opt, 1);
	nghttp2_option_set_max_send_header_block_length(opt, 64u << 10);
	if (c->role == ROLE_CLIENT) {
		nghttp2_option_set_peer_max_concurrent_streams(opt, c->o.max_streams);
		ret = nghttp2_session_client_new2(&c->h2, cbs, c, opt);
	} else {
		ret = nghttp2_session_server_new2(&c->h2, cbs, c, opt);
	}
	if (ret) {
		ret = -ENOMEM;
		goto out;
	}
	if (c->role == ROLE_CLIENT)
		iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 };
	else
		iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
						      c->o.max_streams };
	iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
					      c->o.stream_window };
	iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_FRAME_SIZE, c->o.max_frame };
	iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
					      c->o.max_header_list };
	ret = nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, niv);
	if (!ret)
		ret = nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0,
							    (int32_t)c->o.conn_window);
	ret = ret ? -EINVAL : 0;
out:
	nghttp2_session_callbacks_del(cbs);
	nghttp2_option_del(opt);
	return ret;
}

static void conn_fd_cb(struct loop *l, int fd, uint32_t events, void *ctx);

static void conn_set_interest(struct hbone_conn *c)
{
	uint32_t ev = 0;

	if (c->mem || c->fd < 0 || c->dead)
		return;
	switch (c->state) {
	case HBONE_CONNECTING:
		ev = EPOLLOUT;
		break;
	case HBONE_HANDSHAKE:
		ev = c->hs_want == TLS_IO_WANT_WRITE ? EPOLLOUT : EPOLLIN;
		break;
	case HBONE_OPEN:
	case HBONE_CLOSING:
		ev = EPOLLIN | (c->out_len ? EPOLLOUT : 0);
		break;
	case HBONE_DEAD:
		return;
	}
	if (!c->fd_reg) {
		if (loop_add(c->l, c->fd, ev, conn_fd_cb, c) < 0) {
			conn_kill(c, "cannot watch the socket");
			return;
		}
		c->fd_reg = true;
	} else if (ev != c->events) {
		loop_mod(c->l, c->fd, ev);
	}
	c->events = ev;
}

/*
 * Output buffer -> SSL_write, one full record per call (partial writes).
 * Not MSG_MORE/TCP_CORK: on the veth + forwarding path, 64 KiB segments
 * cost far more in the kernel than 16 KiB pushes (docs/performance.md).
 */
static void conn_flush(struct hbone_conn *c)
{
	while (c->out_len > 0) {
		size_t n = 0;
		enum tls_io io;

		io = tls_write(c->ssl, c->out + c->out_off, c->out_len, &n);
		if (io == TLS_IO_OK) {
			c->out_off += n;
			c->out_len -= n;
			c->bytes_out += n;
			continue;
		}
		if (io == TLS_IO_WANT_WRITE || io == TLS_IO_WANT_READ)
			return;
		conn_kill(c, "TLS write: %s", io == TLS_IO_CLOSED ? "peer closed" : tls_error(c->ssl));
		return;
	}
	c->out_off = 0;
	if (!c->live && c->out) {
		/* An idle connection (pooled, or inbound between bursts)
		 * holds no output buffer, and OpenSSL's record buffers (~85
		 * KiB with read-ahead) go too when empty: SSL_free_buffers
		 * refuses otherwise, and they come back on the next record.
		 * Not SSL_MODE_RELEASE_BUFFERS: that frees them per record. */
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
		SSL_free_buffers(c->ssl);
	}
}

static void conn_pump(struct hbone_conn *c)
{
	if (c->dead)
		return;
	if (c->state == HBONE_OPEN || c->state == HBONE_CLOSING || c->mem) {
		for (int round = 0; round < 64; round++) {
			size_t before = c->out_len;
			uint64_t before_mem = c->bytes_out;
			int rv;

			if (nghttp2_session_want_write(c->h2)) {
				rv = nghttp2_session_send(c->h2);
				if (rv) {
					conn_kill(c, "HTTP/2: %s", nghttp2_strerror(rv));
					return;
				}
			}
			if (c->mem)
				break;
			conn_flush(c);
			if (c->dead)
				return;
			if (c->out_len || !nghttp2_session_want_write(c->h2))
				break;
			if (c->out_len == before && c->bytes_out == before_mem)
				break; /* no progress */
		}
		if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) &&
		    !c->out_len) {
			if (c->reason[0]) {
				c->dead = true;
				c->state = HBONE_DEAD;
			} else {
				conn_kill(c, "closed");
			}
			return;
		}
	}
	conn_set_interest(c);
}

/*
 * Decrypted input is gathered over several records (SSL_read returns one
 * per call) before nghttp2 sees it: one mem_recv and, for DATA, one send()
 * to the app per READ_BUF instead of per 16 KiB record. The buffer is
 * read_buf (see trim_cb); a nested call, or a thread whose buffer cannot
 * be mapped, falls back to a small stack buffer.
 */

static void conn_read(struct hbone_conn *c)
{
	uint8_t small[TLS_RECORD];
	bool own = !read_buf_busy && read_buf_get();
	uint8_t *buf = own ? read_buf : small;
	size_t cap = own ? READ_BUF : sizeof(small);
	int reads = 0;

	if (own)
		read_buf_busy = true;
	while (reads < READS_PER_EVENT || SSL_has_pending(c->ssl)) {
		enum tls_io io = TLS_IO_OK;
		size_t fill = 0;
		ssize_t rv;

		while (fill < cap) {
			size_t n = 0;

			io = tls_read(c->ssl, buf + fill, cap - fill, &n);
			reads++;
			if (io != TLS_IO_OK)
				break;
			c->bytes_in += n;
			fill += n;
		}
		if (own && fill > read_buf_high)
			read_buf_high = fill;
		if (fill) {
			rv = nghttp2_session_mem_recv(c->h2, buf, fill);
			if (rv < 0) {
				conn_kill(c, "HTTP/2 protocol error: %s", nghttp2_strerror((int)rv));
				break;
			}
			if (c->dead)
				break;
		}
		if (io == TLS_IO_OK)
			continue;
		if (io == TLS_IO_CLOSED)
			conn_kill(c, "peer closed the connection");
		else if (io == TLS_IO_FATAL)
			conn_kill(c, "TLS: %s", tls_error(c->ssl));
		break; /* WANT_READ / WANT_WRITE: wait for the socket */
	}
	if (own)
		read_buf_busy = false;
}

static void ping_cb(struct loop *l, void *ctx);

static void conn_arm_ping(struct hbone_conn *c)
{
	if (c->o.ping_interval_ms && !c->mem)
		c->ping_timer = loop_timer_add(c->l, c->o.ping_interval_ms, ping_cb, c);
}

static void ping_cb(struct loop *l, void *ctx)
{
	struct hbone_conn *c = ctx;
	uint64_t now = loop_now_ms();

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	c->ping_timer = NULL;
	conn_enter(c);
	if (c->ping_outstanding && now - c->ping_sent_ms >= c->o.ping_timeout_ms) {
		conn_kill(c, "no PING answer within %u ms", c->o.ping_timeout_ms);
	} else {
		if (!c->ping_outstanding) {
			uint8_t opaque[8];

			memcpy(opaque, &now, sizeof(opaque));
			if (!nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, opaque)) {
				c->ping_outstanding = true;
				c->ping_sent_ms = now;
				c->pings_sent++;
			}
		}
		conn_arm_ping(c);
	}
	conn_leave(c);
}

static void idle_cb(struct loop *l, void *ctx)
{
	struct hbone_conn *c = ctx;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	c->idle_timer = NULL;
	conn_enter(c);
	if (!c->live) {
		log_debug("hbone: closing idle connection to %s", c->peer_id);
		hbone_conn_shutdown(c);
	}
	conn_leave(c);
}

static void conn_arm_idle(struct hbone_conn *c)
{
	c->idle_since_ms = loop_now_ms();
	if (c->role != ROLE_CLIENT || (!c->o.idle_ms && !c->draining) || c->idle_timer || c->dead)
		return;
	c->idle_timer = loop_timer_add(c->l, c->draining ? 0 : c->o.idle_ms, idle_cb, c);
}

static void connect_timeout_cb(struct loop *l, void *ctx)
{
	struct hbone_conn *c = ctx;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	c->connect_timer = NULL;
	conn_enter(c);
	if (c->state == HBONE_HANDSHAKE)
		hs_observe(c, false, "TLS handshake timed out");
	conn_kill(c, "%s did not complete within %u ms",
		  c->state == HBONE_CONNECTING ? "TCP connect" : "TLS handshake",
		  c->o.connect_timeout_ms);
	conn_leave(c);
}

static void goaway_start(struct hbone_conn *c);

static void conn_handshake(struct hbone_conn *c)
{
	enum tls_io io = tls_handshake(c->ssl);

	if (io == TLS_IO_WANT_READ || io == TLS_IO_WANT_WRITE) {
		c->hs_want = io;
		return;
	}
	if (io != TLS_IO_OK) {
		const char *why = tls_error(c->ssl);

		if (!why[0])
			why = io == TLS_IO_CLOSED ? "peer closed the connection" : tls_io_name(io);
		hs_observe(c, false, why);
		conn_kill(c, "TLS handshake failed: %s", why);
		return;
	}
	if (tls_peer_identity(c->ssl, c->peer_id, sizeof(c->peer_id))) {
		hs_observe(c, false, "peer presented no SPIFFE identity");
		conn_kill(c, "peer presented no SPIFFE identity");
		return;
	}
	hs_observe(c, true, "ok");
	if (c->pool)
		pool_dial_result(c->pool, c->pool_dst, NULL);
	if (c->connect_timer) {
		loop_timer_cancel(c->l, c->connect_timer);
		c->connect_timer = NULL;
	}
	c->state = HBONE_OPEN;
	c->opened = true;
	if (c->goaway_pending)
		goaway_start(c);
	conn_arm_ping(c);
	/* Input that arrived with the last handshake flight. */
	if (SSL_has_pending(c->ssl))
		conn_read(c);
}

static void conn_fd_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct hbone_conn *c = ctx;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	conn_enter(c);
	switch (c->state) {
	case HBONE_CONNECTING: {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			conn_kill(c, "TCP connect failed: %s", strerror(err));
			break;
		}
		c->state = HBONE_HANDSHAKE;
		conn_handshake(c);
		break;
	}
	case HBONE_HANDSHAKE:
		conn_handshake(c);
		break;
	case HBONE_OPEN:
	case HBONE_CLOSING:
		if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			conn_read(c);
		/* EPOLLOUT: conn_leave pumps */
		break;
	case HBONE_DEAD:
		break;
	}
	conn_leave(c);
}

static void conn_destroy(struct hbone_conn *c)
{
	struct hbone_stream *s, *next;

	assert(c->dead && !c->busy && !c->destroyed);
	c->destroyed = true;
	c->busy++; /* callbacks below must not recurse into destroy */
	for (s = c->streams; s; s = next) {
		next = s->next;
		if (s->st != S_DONE) {
			if (!s->stats.reason[0])
				set_reason(s, "connection closed: %s", c->reason);
			s->h2_closed = true;
			stream_end(s, true, 0); /* frees s */
		} else {
			s->h2_closed = true;
			stream_free(s);
		}
	}
	/* Streams opened by callbacks above on this dead connection were
	 * refused, so the list is empty now. */
	assert(!c->streams);
	if (c->ping_timer)
		loop_timer_cancel(c->l, c->ping_timer);
	if (c->idle_timer)
		loop_timer_cancel(c->l, c->idle_timer);
	if (c->connect_timer)
		loop_timer_cancel(c->l, c->connect_timer);
	if (c->flush_timer)
		loop_timer_cancel(c->l, c->flush_timer);
	if (c->trim_timer)
		loop_timer_cancel(c->l, c->trim_timer);
	if (c->goaway_timer)
		loop_timer_cancel(c->l, c->goaway_timer);
	if (c->pool) {
		if (!c->opened)
			pool_dial_result(c->pool, c->pool_dst, c->reason);
		if (c->prev)
			c->prev->next = c->next;
		else
			c->pool->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
	}
	if (c->fd_reg)
		loop_del(c->l, c->fd);
	if (c->ssl) {
		/* Best effort close_notify; never wait for it. */
		if (SSL_is_init_finished(c->ssl))
			SSL_shutdown(c->ssl);
		ERR_clear_error();
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
	nghttp2_session_del(c->h2);
	if (c->done_cb)
		c->done_cb(c->done_ctx, c, c->reason);
	free(c->out);
	free(c->pool_key);
	c->magic = 0;
	free(c);
	if (burst_dec(&g_conns, TRIM_MIN_CONNS))
		heap_trim();
}

static int conn_new(struct loop *l, enum conn_role role, int fd, const struct hbone_opts *opts,
		    struct hbone_conn **out)
{
	struct hbone_conn *c = calloc(1, sizeof(*c));
	int ret;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->magic = HBONE_CONN_MAGIC;
	c->l = l;
	c->role = role;
	c->fd = fd;
	if (opts)
		c->o = *opts;
	else
		hbone_opts_default(&c->o, role == ROLE_SERVER);
	if (c->o.stream_window < 65535 || c->o.stream_window > NGHTTP2_MAX_WINDOW_SIZE ||
	    c->o.conn_window < 65535 || c->o.conn_window > NGHTTP2_MAX_WINDOW_SIZE ||
	    c->o.max_frame < 16384 || c->o.max_frame > 16777215 || !c->o.send_buf ||
	    !c->o.max_streams) {
		free(c);
		return -EINVAL;
	}
	c->created_ms = c->idle_since_ms = loop_now_ms();
	ret = session_new(c);
	if (ret) {
		nghttp2_session_del(c->h2);
		free(c);
		return ret;
	}
	burst_inc(&g_conns);
	*out = c;
	return 0;
}

/* Frees a connection that never ran (constructor failure paths). */
static void conn_discard(struct hbone_conn *c)
{
	c->done_cb = NULL;
	conn_kill(c, "setup failed");
	conn_destroy(c);
}

int hbone_client_connect(struct loop *l, SSL_CTX *ctx, int fd, const struct sockaddr *dst,
			 socklen_t dstlen, const char *const *expect, size_t n_expect,
			 const struct hbone_opts *opts, hbone_conn_done_cb done_cb, void *ctx_cb,
			 struct hbone_conn **out)
{
	struct hbone_conn *c = NULL;
	int ret;

	if (out)
		*out = NULL;
	if (!l || !ctx || fd < 0 || !dst || !expect || !n_expect) {
		if (fd >= 0)
			close(fd);
		return -EINVAL;
	}
	ret = conn_new(l, ROLE_CLIENT, fd, opts, &c);
	if (ret) {
		close(fd);
		return ret;
	}
	ret = tls_conn_new(ctx, fd, &c->ssl);
	for (size_t i = 0; !ret && i < n_expect; i++)
		ret = tls_client_expect_identity(c->ssl, expect[i]);
	if (ret)
		goto fail;
	if (connect(fd, dst, dstlen) < 0 && errno != EINPROGRESS) {
		ret = -errno;
		goto fail;
	}
	c->state = HBONE_CONNECTING;
	c->done_cb = done_cb;
	c->done_ctx = ctx_cb;
	if (c->o.connect_timeout_ms)
		c->connect_timer = loop_timer_add(l, c->o.connect_timeout_ms, connect_timeout_cb, c);
	conn_set_interest(c);
	if (c->dead) {
		ret = -ENOMEM;
		goto fail;
	}
	if (out)
		*out = c;
	return 0;
fail:
	conn_discard(c); /* closes fd */
	return ret;
}

int hbone_server_accept(struct loop *l, SSL_CTX *ctx, int fd, const struct hbone_opts *opts,
			const struct hbone_server_cbs *cbs, struct hbone_conn **out)
{
	struct hbone_conn *c = NULL;
	int ret;

	if (out)
		*out = NULL;
	if (!l || !ctx || fd < 0 || !cbs || !cbs->on_request) {
		if (fd >= 0)
			close(fd);
		return -EINVAL;
	}
	ret = conn_new(l, ROLE_SERVER, fd, opts, &c);
	if (ret) {
		close(fd);
		return ret;
	}
	c->scbs = *cbs;
	ret = tls_conn_new(ctx, fd, &c->ssl);
	if (ret)
		goto fail;
	c->state = HBONE_HANDSHAKE;
	c->hs_want = TLS_IO_WANT_READ;
	if (c->o.connect_timeout_ms)
		c->connect_timer = loop_timer_add(l, c->o.connect_timeout_ms, connect_timeout_cb, c);
	conn_set_interest(c);
	if (c->dead) {
		ret = -ENOMEM;
		goto fail;
	}
	c->done_cb = cbs->on_conn_done;
	c->done_ctx = cbs->ctx;
	if (out)
		*out = c;
	return 0;
fail:
	conn_discard(c);
	return ret;
}

int hbone_server_new_mem(struct loop *l, const struct hbone_opts *opts,
			 const struct hbone_server_cbs *cbs, const char *peer_id,
			 struct hbone_conn **out)
{
	struct hbone_conn *c = NULL;
	int ret;

	*out = NULL;
	if (!cbs || !cbs->on_request)
		return -EINVAL;
	ret = conn_new(l, ROLE_SERVER, -1, opts, &c);
	if (ret)
		return ret;
	c->mem = true;
	c->hold = true;
	c->scbs = *cbs;
	c->done_cb = cbs->on_conn_done;
	c->done_ctx = cbs->ctx;
	c->state = HBONE_OPEN;
	snprintf(c->peer_id, sizeof(c->peer_id), "%s", peer_id ? peer_id : "");
	*out = c;
	return 0;
}

int hbone_client_new_mem(struct loop *l, const struct hbone_opts *opts, const char *peer_id,
			 struct hbone_conn **out)
{
	struct hbone_conn *c = NULL;
	int ret;

	*out = NULL;
	ret = conn_new(l, ROLE_CLIENT, -1, opts, &c);
	if (ret)
		return ret;
	c->mem = true;
	c->hold = true;
	c->state = HBONE_OPEN;
	c->opened = true;
	snprintf(c->peer_id, sizeof(c->peer_id), "%s", peer_id ? peer_id : "");
	*out = c;
	return 0;
}

int hbone_conn_mem_feed(struct hbone_conn *c, const uint8_t *data, size_t len)
{
	ssize_t rv;
	int ret = 0;

	conn_enter(c);
	assert(c->mem);
	if (c->dead) {
		ret = -EPROTO;
		goto out;
	}
	rv = nghttp2_session_mem_recv(c->h2, data, len);
	if (rv < 0) {
		conn_kill(c, "HTTP/2 protocol error: %s", nghttp2_strerror((int)rv));
		ret = -EPROTO;
	}
out:
	conn_leave(c); /* c->hold keeps it for hbone_conn_abort() */
	return ret;
}

void hbone_conn_shutdown(struct hbone_conn *c)
{
	conn_enter(c);
	if (!c->dead && c->state != HBONE_CLOSING) {
		if (c->state == HBONE_OPEN) {
			c->state = HBONE_CLOSING;
			nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
			snprintf(c->reason, sizeof(c->reason), "closed (idle or shutdown)");
		} else {
			conn_kill(c, "shut down before it was established");
		}
	}
	conn_leave(c);
}

static void goaway_cb(struct loop *l, void *ctx)
{
	struct hbone_conn *c = ctx;

	(void)l;
	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	c->goaway_timer = NULL;
	conn_enter(c);
	if (!c->dead)
		nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(c->h2), NGHTTP2_NO_ERROR,
				      NULL, 0);
	conn_leave(c);
}

/* c: an open server connection, inside conn_enter(). */
static void goaway_start(struct hbone_conn *c)
{
	c->goaway_pending = false;
	c->state = HBONE_CLOSING;
	snprintf(c->reason, sizeof(c->reason), "closed (the tunnel is draining)");
	/* A CONNECT already on its way was sent before the peer saw the
	 * notice: the final GOAWAY, which refuses later streams, waits until
	 * it has arrived. */
	nghttp2_submit_shutdown_notice(c->h2);
	c->goaway_timer = loop_timer_add(c->l, HBONE_GOAWAY_GRACE_MS, goaway_cb, c);
	if (!c->goaway_timer)
		nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(c->h2), NGHTTP2_NO_ERROR,
				      NULL, 0);
}

void hbone_conn_goaway(struct hbone_conn *c)
{
	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	conn_enter(c);
	if (!c->dead && c->role == ROLE_SERVER) {
		if (c->state == HBONE_OPEN)
			goaway_start(c);
		else if (c->state == HBONE_CONNECTING || c->state == HBONE_HANDSHAKE)
			c->goaway_pending = true; /* sent as soon as it is open */
	}
	conn_leave(c);
}

void hbone_stream_abort(struct hbone_stream *s, const char *reason)
{
	struct hbone_conn *c;

	if (!s)
		return;
	CHECK_OBJ(s, HBONE_STREAM_MAGIC);
	c = s->c;
	conn_enter(c);
	stream_fail(s, NGHTTP2_CANCEL, "%s", reason ? reason : "aborted");
	conn_leave(c);
}

void hbone_conn_abort(struct hbone_conn *c, const char *reason)
{
	if (!c)
		return;
	conn_enter(c);
	c->hold = false;
	conn_kill(c, "%s", reason ? reason : "aborted");
	conn_leave(c);
}

void hbone_conn_get_info(const struct hbone_conn *c, struct hbone_conn_info *info)
{
	const struct hbone_stream *s;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	memset(info, 0, sizeof(*info));
	info->state = c->state;
	info->server = c->role == ROLE_SERVER;
	snprintf(info->peer_id, sizeof(info->peer_id), "%s", c->peer_id);
	info->streams = c->live;
	info->streams_total = c->streams_total;
	info->bytes_in = c->bytes_in;
	info->bytes_out = c->bytes_out;
	info->pings_sent = c->pings_sent;
	info->pings_acked = c->pings_acked;
	info->buffered = c->out_len;
	for (s = c->streams; s; s = s->next)
		info->buffered += s->down.len;
	info->age_ms = loop_now_ms() - c->created_ms;
	info->idle_ms = c->live ? 0 : loop_now_ms() - c->idle_since_ms;
}

/* -------------------------------------------------------- stream API */

static void random_traceparent(char buf[56])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t r[24];
	char *p = buf;

	if (RAND_bytes(r, sizeof(r)) != 1) {
		/* Telemetry only: a fixed id is better than none. */
		memset(r, 0x5a, sizeof(r));
	}
	/* 00-<32 hex trace id>-<16 hex span id>-01; no printf per stream. */
	*p++ = '0';
	*p++ = '0';
	*p++ = '-';
	for (int i = 0; i < 24; i++) {
		if (i == 16)
			*p++ = '-';
		*p++ = hex[r[i] >> 4];
		*p++ = hex[r[i] & 15];
	}
	memcpy(p, "-01", 4);
}

#define MKNV(n, v) \
	{ (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }

int hbone_stream_open(struct hbone_conn *c, const struct hbone_connect_req *req, int app_fd,
		      hbone_stream_done_cb done_cb, void *ctx, struct hbone_stream **out)
{
	nghttp2_data_provider prd = { .read_callback = data_read_cb };
	struct hbone_stream *s = NULL;
	char tp[56];
	nghttp2_nv nva[5];
	size_t n = 0;
	int32_t id;
	int ret = 0;

	if (out)
		*out = NULL;
	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	if (!req || !req->authority || !*req->authority || app_fd < 0 || c->role != ROLE_CLIENT) {
		ret = -EINVAL;
		goto fail_fd;
	}
	conn_enter(c);
	if (c->dead || c->state == HBONE_CLOSING) {
		ret = -ENOTCONN;
		goto out;
	}
	s = stream_new(c);
	if (!s) {
		ret = -ENOMEM;
		goto out;
	}
	s->fd = app_fd;
	s->cb = done_cb;
	s->cb_ctx = ctx;
	nva[n++] = (nghttp2_nv)MKNV(":method", "CONNECT");
	nva[n++] = (nghttp2_nv)MKNV(":authority", req->authority);
	if (req->forwarded)
		nva[n++] = (nghttp2_nv)MKNV("forwarded", req->forwarded);
	if (req->baggage)
		nva[n++] = (nghttp2_nv)MKNV("baggage", req->baggage);
	if (!req->traceparent)
		random_traceparent(tp);
	nva[n++] = (nghttp2_nv)MKNV("traceparent", req->traceparent ? req->traceparent : tp);
	prd.source.ptr = s;
	id = nghttp2_submit_request(c->h2, NULL, nva, n, &prd, s);
	if (id < 0) {
		ret = -EPROTO;
		s->fd = -1;
		s->st = S_DONE;
		s->h2_closed = true;
		c->live--;
		atomic_fetch_sub(&g_streams.now, 1); /* it never opened: not an end */
		c->streams_total--;
		stream_free(s);
		goto out;
	}
	s->id = id;
	if (out)
		*out = s;
out:
	conn_leave(c);
	if (!ret)
		return 0;
fail_fd:
	if (app_fd >= 0)
		close(app_fd);
	return ret;
}

int hbone_stream_accept(struct hbone_stream *s, int fd)
{
	struct hbone_conn *c;
	int ret = 0;

	CHECK_OBJ(s, HBONE_STREAM_MAGIC);
	c = s->c;
	if (s->st != S_PENDING || c->role != ROLE_SERVER) {
		close(fd);
		return -EALREADY;
	}
	conn_enter(c);
	if (c->dead) {
		close(fd);
		ret = -ENOTCONN;
		goto out;
	}
	s->fd = fd;
	if (submit_status(s, 200, true)) {
		stream_fail(s, NGHTTP2_INTERNAL_ERROR, "cannot submit the 200 response");
		ret = -EPROTO;
		goto out;
	}
	s->st = S_RELAY;
	stream_update(s);
out:
	conn_leave(c);
	return ret;
}

int hbone_stream_reject(struct hbone_stream *s, int status)
{
	struct hbone_conn *c;

	CHECK_OBJ(s, HBONE_STREAM_MAGIC);
	c = s->c;
	if (status < 300 || status > 599)
		return -EINVAL;
	if (s->st != S_PENDING || c->role != ROLE_SERVER)
		return -EALREADY;
	conn_enter(c);
	server_reject(s, status);
	conn_leave(c);
	return 0;
}

void hbone_stream_set_user(struct hbone_stream *s, void *user)
{
	CHECK_OBJ(s, HBONE_STREAM_MAGIC);
	s->user = user;
}

void *hbone_stream_user(const struct hbone_stream *s)
{
	CHECK_OBJ(s, HBONE_STREAM_MAGIC);
	return s->user;
}

void hbone_stream_get_stats(const struct hbone_stream *s, struct hbone_stream_stats *st)
{
	CHECK_OBJ(s, HBONE_STREAM_MAGIC);
	*st = s->stats;
}

size_t hbone_stream_buffered(const struct hbone_stream *s)
{
	CHECK_OBJ(s, HBONE_STREAM_MAGIC);
	return s->down.len;
}

struct hbone_conn *hbone_stream_conn(const struct hbone_stream *s)
{
	CHECK_OBJ(s, HBONE_STREAM_MAGIC);
	return s->c;
}

/* ------------------------------------------------------------ helpers */

static int addr_port_str(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	int n;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		n = snprintf(buf, len, "%s:%u", ip, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		n = snprintf(buf, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		return -EINVAL;
	}
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

int hbone_format_forwarded(char *buf, size_t len, const struct sockaddr *src, const char *host)
{
	char a[INET6_ADDRSTRLEN + 10];
	int n, ret = addr_port_str(src, a, sizeof(a));

	if (ret)
		return ret;
	if (host)
		n = snprintf(buf, len, "for=\"%s\";host=%s", a, host);
	else
		n = snprintf(buf, len, "for=\"%s\"", a);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static int parse_port(const char *p, uint16_t *port)
{
	unsigned long v = 0;

	if (!*p || strlen(p) > 5)
		return -EINVAL;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int hbone_parse_authority(const char *a, struct hbone_request *r)
{
	const char *colon;
	size_t hl;

	r->is_ip = false;
	memset(&r->target, 0, sizeof(r->target));
	r->host[0] = 0;
	if (!a || !*a)
		return -EINVAL;
	if (a[0] == '[') {
		const char *end = strchr(a, ']');
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&r->target;

		if (!end || end[1] != ':')
			return -EINVAL;
		hl = (size_t)(end - a - 1);
		if (!hl || hl >= sizeof(r->host))
			return -EINVAL;
		memcpy(r->host, a + 1, hl);
		r->host[hl] = 0;
		if (inet_pton(AF_INET6, r->host, &in6->sin6_addr) != 1 ||
		    parse_port(end + 2, &r->port))
			return -EINVAL;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(r->port);
		r->is_ip = true;
		return 0;
	}
	colon = strrchr(a, ':');
	if (!colon || colon == a)
		return -EINVAL;
	hl = (size_t)(colon - a);
	if (hl >= sizeof(r->host) || hl > 253)
		return -EINVAL;
	memcpy(r->host, a, hl);
	r->host[hl] = 0;
	if (parse_port(colon + 1, &r->port))
		return -EINVAL;
	{
		struct sockaddr_in *in = (struct sockaddr_in *)&r->target;

		if (inet_pton(AF_INET, r->host, &in->sin_addr) == 1) {
			in->sin_family = AF_INET;
			in->sin_port = htons(r->port);
			r->is_ip = true;
			return 0;
		}
	}
	/* A DNS name (double HBONE): letters, digits, '-', '.'; no empty label. */
	for (size_t i = 0; i < hl; i++) {
		char ch = r->host[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '-' || ch == '.';

		if (!ok || (ch == '.' && (i == 0 || r->host[i - 1] == '.')))
			return -EINVAL;
	}
	if (r->host[0] == '-')
		return -EINVAL;
	return 0;
}

/* ---------------------------------------------------------------- pool */

int hbone_pool_new(struct loop *l, const struct hbone_opts *opts, struct hbone_pool **out)
{
	struct hbone_pool *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->magic = HBONE_POOL_MAGIC;
	p->l = l;
	if (opts)
		p->o = *opts;
	else
		hbone_opts_default(&p->o, false);
	*out = p;
	return 0;
}

void hbone_pool_free(struct hbone_pool *p)
{
	if (!p)
		return;
	CHECK_OBJ(p, HBONE_POOL_MAGIC);
	while (p->backoff) {
		struct pool_backoff *b = p->backoff;

		p->backoff = b->next;
		free(b);
	}
	while (p->conns) {
		struct hbone_conn *c = p->conns;

		/* Detach first: a busy connection is freed later, by its
		 * own callback, and must not touch the pool then. */
		p->conns = c->next;
		if (p->conns)
			p->conns->prev = NULL;
		c->pool = NULL;
		c->prev = c->next = NULL;
		hbone_conn_abort(c, "pool freed");
	}
	p->magic = 0;
	free(p);
}

static char *pool_key(const struct hbone_pool_target *t)
{
	char dst[64];
	size_t len;
	char *k;

	if (addr_port_str(t->dst, dst, sizeof(dst)))
		return NULL;
	len = strlen(t->src_id) + strlen(dst) + 3;
	for (size_t i = 0; i < t->n_expect; i++)
		len += strlen(t->expect[i]) + 1;
	k = malloc(len);
	if (!k)
		return NULL;
	len = (size_t)sprintf(k, "%s|%s|", t->src_id, dst);
	for (size_t i = 0; i < t->n_expect; i++)
		len += (size_t)sprintf(k + len, "%s%s", i ? "," : "", t->expect[i]);
	return k;
}

static bool conn_has_slot(const struct hbone_conn *c, uint32_t max)
{
	uint32_t remote;

	if (c->dead || c->state == HBONE_CLOSING || c->draining)
		return false;
	remote = nghttp2_session_get_remote_settings(c->h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
	if (remote < max)
		max = remote;
	return c->live < max;
}

int hbone_pool_open(struct hbone_pool *p, const struct hbone_pool_target *t,
		    const struct hbone_connect_req *req, int app_fd, hbone_stream_done_cb done_cb,
		    void *ctx, struct hbone_stream **out)
{
	struct hbone_conn *c;
	char *key = NULL;
	int fd, ret;

	if (out)
		*out = NULL;
	CHECK_OBJ(p, HBONE_POOL_MAGIC);
	if (!t || !t->src_id || !t->ctx || !t->dst || !t->mksock || !t->n_expect ||
	    (t->dst->sa_family != AF_INET && t->dst->sa_family != AF_INET6)) {
		ret = -EINVAL;
		goto fail;
	}
	key = pool_key(t);
	if (!key) {
		ret = -ENOMEM;
		goto fail;
	}
	for (c = p->conns; c; c = c->next)
		if (!strcmp(c->pool_key, key) && conn_has_slot(c, p->o.max_streams))
			break;
	if (!c) {
		char dst[64];
		struct pool_backoff *b;

		if (addr_port_str(t->dst, dst, sizeof(dst))) {
			ret = -EINVAL;
			goto fail;
		}
		b = pool_backoff_find(p, dst);
		if (b && loop_now_ms() < b->until_ms) {
			ret = -ECONNREFUSED; /* no dial: hbone_pool_backoff() says why */
			goto fail;
		}
		fd = t->mksock(t->mksock_ctx, t->dst, t->dstlen);
		if (fd < 0) {
			ret = fd;
			goto fail;
		}
		ret = hbone_client_connect(p->l, t->ctx, fd, t->dst, t->dstlen, t->expect,
					   t->n_expect, &p->o, NULL, NULL, &c);
		if (ret) {
			pool_dial_result(p, dst, strerror(-ret));
			goto fail;
		}
		snprintf(c->pool_dst, sizeof(c->pool_dst), "%s", dst);
		c->pool = p;
		c->pool_key = key;
		key = NULL;
		c->next = p->conns;
		if (p->conns)
			p->conns->prev = c;
		p->conns = c;
	}
	free(key);
	return hbone_stream_open(c, req, app_fd, done_cb, ctx, out);
fail:
	free(key);
	if (app_fd >= 0)
		close(app_fd);
	return ret;
}

int hbone_pool_backoff(struct hbone_pool *p, const struct sockaddr *dst, char *why, size_t len)
{
	struct pool_backoff *b;
	char d[64];
	uint64_t now = loop_now_ms();

	CHECK_OBJ(p, HBONE_POOL_MAGIC);
	if (addr_port_str(dst, d, sizeof(d)) || !(b = pool_backoff_find(p, d)) || now >= b->until_ms)
		return 0;
	snprintf(why, len, "retry in %llu ms after %u failed dial%s to %s; the last: %s",
		 (unsigned long long)(b->until_ms - now), b->failures, b->failures == 1 ? "" : "s",
		 d, b->last);
	return 1;
}

void hbone_pool_drain(struct hbone_pool *p, const char *src_id)
{
	size_t n = src_id ? strlen(src_id) : 0;

	CHECK_OBJ(p, HBONE_POOL_MAGIC);
	for (struct hbone_conn *c = p->conns; c; c = c->next) {
		if (c->draining || (src_id && (strncmp(c->pool_key, src_id, n) || c->pool_key[n] != '|')))
			continue;
		c->draining = true;
		if (!c->live)
			conn_arm_idle(c);
	}
}

size_t hbone_pool_stats(const struct hbone_pool *p, struct hbone_pool_conn_info *out, size_t max)
{
	size_t n = 0;

	CHECK_OBJ(p, HBONE_POOL_MAGIC);
	for (const struct hbone_conn *c = p->conns; c; c = c->next, n++) {
		const char *k = c->pool_key, *bar1, *bar2;

		if (n >= max)
			continue;
		bar1 = strchr(k, '|');
		bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;
		memset(&out[n], 0, sizeof(out[n]));
		snprintf(out[n].src_id, sizeof(out[n].src_id), "%.*s",
			 bar1 ? (int)(bar1 - k) : 0, k);
		if (bar2)
			snprintf(out[n].dst, sizeof(out[n].dst), "%.*s", (int)(bar2 - bar1 - 1),
				 bar1 + 1);
		hbone_conn_get_info(c, &out[n].conn);
	}
	return n;
}
