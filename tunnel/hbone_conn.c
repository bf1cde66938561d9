/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HBONE connections over nghttp2 + OpenSSL on the tunnel loop (contract:
 * hbone.h; internal API: hbone_conn.h). Streams: hbone_stream.c; the server
 * side: hbone_server.c; the pool: hbone_pool.c.
 *
 * Re-entrancy: nghttp2 forbids nghttp2_session_send/mem_recv from inside
 * its own callbacks, and user callbacks may run deep inside them. Every
 * entry point therefore brackets its work with hbone_conn_enter()/_leave():
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
 * of an open connection written once per loop round (conn_flush_cb), so the
 * HEADERS of many new streams share TLS records and send(2) calls.
 */
#include <assert.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/err.h>

#include "conf/log.h"
#include "conf/objcheck.h"
#include "conf/warren.h"
#include "tunnel/hbone_conn.h"
#include "tunnel/hbone_pool.h"
#include "tunnel/hbone_server.h"
#include "tunnel/hbone_stream.h"
#include "tunnel/hbone_trim.h"
#include "tunnel/tls.h"

#define OUTBUF_CAP   (1024u * 1024u) /* bounded HTTP/2 output per connection */
#define OUTBUF_MIN   (32u * 1024u)   /* its first size: two full TLS records */
#define DATA_FRAME_MAX (256 * 1024)   /* our DATA frame payload limit */
#define H2_FRAME_HDLEN 9              /* HTTP/2 frame header (RFC 9113 §4.1) */
#define READS_PER_EVENT 64           /* fairness between connections */
#define HDR_VALUE_MAX 4096           /* longest header value we keep */

static void conn_pump(struct hbone_conn *c);

/* net.core.wmem_max and rmem_max, read once (0: unknown). */
static pthread_once_t conn_bufmax_once = PTHREAD_ONCE_INIT;
static unsigned long conn_wmem_max, conn_rmem_max;

static unsigned long conn_read_sysctl(const char *path)
{
	unsigned long v = 0;
	FILE *f = fopen(path, "re");

	if (f) {
		if (fscanf(f, "%lu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

static void conn_bufmax_init(void)
{
	conn_wmem_max = conn_read_sysctl("/proc/sys/net/core/wmem_max");
	conn_rmem_max = conn_read_sysctl("/proc/sys/net/core/rmem_max");
}

/*
 * Fixed socket buffers for the HBONE socket instead of the kernel's
 * autotuning: fewer CPU-s per GB on the loaded benchmark
 * (docs/performance.md). A size the kernel would cut is not set at all: a
 * locked but smaller buffer is worse than autotuning. Best effort: a
 * failure leaves autotuning on.
 */
static void conn_set_sock_buf(int fd, uint32_t size)
{
	int v = (int)size;

	if (!size || size > INT32_MAX / 2)
		return;
	pthread_once(&conn_bufmax_once, conn_bufmax_init);
	if (conn_wmem_max >= size)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
	if (conn_rmem_max >= size)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
}

static hbone_handshake_cb conn_hs_observer;
static void *conn_hs_observer_ctx;

void hbone_set_handshake_observer(hbone_handshake_cb cb, void *ctx)
{
	conn_hs_observer = cb;
	conn_hs_observer_ctx = ctx;
}

static void conn_hs_observe(struct hbone_conn *c, bool ok, const char *reason)
{
	if (conn_hs_observer && !c->mem)
		conn_hs_observer(conn_hs_observer_ctx, c->role == HBONE_ROLE_SERVER, ok, reason);
}

void hbone_opts_default(struct hbone_opts *o, bool server)
{
	memset(o, 0, sizeof(*o));
	o->stream_window = 4u << 20;
	o->conn_window = 16u << 20;
	o->max_frame = 1u << 20;
	o->max_streams = server ? 200 : 100;
	o->max_header_list = server ? 64u << 10 : 16u << 10;
	o->sock_buf = 4u << 20;
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

void hbone_conn_enter(struct hbone_conn *c)
{
	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	c->busy++;
}

static void conn_flush_cb(struct loop *l, void *ctx)
{
	struct hbone_conn *c = ctx;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	c->flush_timer = NULL;
	hbone_conn_enter(c);
	c->pump_now = true;
	hbone_conn_leave(c);
}

/*
 * Output of an open connection is written once per loop round (a 0 ms
 * timer runs after every fd event of the round): the frames of all the
 * streams that had events in this round (64 new CONNECTs and their 200s
 * under a connection storm, window updates and DATA under bulk) share TLS
 * records and send(2) calls instead of one small record each.
 */
void hbone_conn_leave(struct hbone_conn *c)
{
	assert(c->busy > 0);
	if (c->busy == 1 && !c->dead) {
		bool now = c->pump_now || c->mem ||
			   (c->state != HBONE_OPEN && c->state != HBONE_CLOSING) ||
			   !nghttp2_session_want_write(c->h2);

		c->pump_now = false;
		if (!now && !c->flush_timer) {
			c->flush_timer = loop_timer_add(c->l, 0, conn_flush_cb, c);
			now = !c->flush_timer;
		}
		if (now)
			conn_pump(c);
	}
	if (--c->busy == 0 && c->dead && !c->hold)
		conn_destroy(c);
}

void hbone_conn_kill(struct hbone_conn *c, const char *fmt, ...)
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

static void conn_trim_cb(struct loop *l, void *ctx)
{
	struct hbone_conn *c = ctx;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	c->trim_timer = NULL;
	hbone_trim_now();
}

void hbone_conn_trim_soon(struct hbone_conn *c)
{
	if (!c->trim_timer && !c->mem)
		c->trim_timer = loop_timer_add(c->l, HBONE_TRIM_DELAY_MS, conn_trim_cb, c);
}

/* -------------------------------------------------------- connection I/O */

struct hbone_stream *hbone_conn_stream(struct hbone_conn *c, int32_t id)
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
static int conn_out_reserve(struct hbone_conn *c, size_t need)
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

static ssize_t conn_send_cb(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
		       void *user_data)
{
	struct hbone_conn *c = user_data;
	size_t space;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	if (c->mem) {
		c->bytes_out += length;
		return (ssize_t)length;
	}
	if (conn_out_reserve(c, length > 4096 ? 4096 : length) < 0)
		return NGHTTP2_ERR_WOULDBLOCK;
	space = c->out_cap - c->out_off - c->out_len;
	if (length > space)
		length = space;
	memcpy(c->out + c->out_off + c->out_len, data, length);
	c->out_len += length;
	return (ssize_t)length;
}

/*
 * A DATA frame whose payload is still in the app socket (hbone_stream_data_read_cb said
 * how much): header, then read(2) the payload right behind it, so the
 * bytes go kernel -> TLS buffer -> AES with no copy of ours. The whole
 * frame or nothing: without room, WOULDBLOCK (nghttp2 retries the same
 * frame; the bytes wait in the socket).
 */
static int conn_send_data_cb(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
			size_t length, nghttp2_data_source *source, void *user_data)
{
	struct hbone_conn *c = user_data;
	struct hbone_stream *s = source->ptr;
	size_t pad = frame->data.padlen, need = H2_FRAME_HDLEN + length + pad;
	uint8_t *p;
	ssize_t r;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	CHECK_OBJ(s, HBONE_STREAM_MAGIC);
	if (s->st == HBONE_ST_DONE || s->fd < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* ended meanwhile: drop the frame */
	switch (conn_out_reserve(c, need)) {
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
	s->drained = s->avail <= (int)length && length < HBONE_TLS_RECORD;
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

static int conn_hdr_dup(char **dst, const uint8_t *v, size_t n)
{
	if (n > HDR_VALUE_MAX)
		return -1;
	free(*dst);
	*dst = strndup((const char *)v, n);
	return *dst ? 0 : -1;
}


static int conn_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user_data)
{
	struct hbone_conn *c = user_data;
	struct hbone_stream *s;
	char **dst = NULL;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	s = hbone_conn_stream(c, frame->hd.stream_id);
	if (!s || s->st == HBONE_ST_DONE)
		return 0;
#define IS(lit) (namelen == sizeof(lit) - 1 && !memcmp(name, lit, namelen))
	if (c->role == HBONE_ROLE_CLIENT) {
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
	if (dst && conn_hdr_dup(dst, value, valuelen))
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return 0;
}

static int conn_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
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
	s = hbone_conn_stream(c, frame->hd.stream_id);
	if (!s || s->st == HBONE_ST_DONE)
		return 0;
	if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
		s->peer_eof = true;
	if (frame->hd.type == NGHTTP2_HEADERS) {
		if (c->role == HBONE_ROLE_SERVER && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
			hbone_server_request(c, s);
			return 0;
		}
		if (c->role == HBONE_ROLE_CLIENT && s->st == HBONE_ST_PENDING &&
		    frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
			s->stats.status = s->status;
			if (s->status != 200) {
				hbone_stream_set_reason(s, "peer answered %d", s->status);
				hbone_stream_end(s, true, NGHTTP2_CANCEL);
				return 0;
			}
			s->st = HBONE_ST_RELAY;
			hbone_stream_resume(s); /* the app may have written already */
		}
	}
	hbone_stream_update(s);
	return 0;
}

static int conn_on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
			   void *user_data)
{
	struct hbone_conn *c = user_data;
	struct hbone_stream *s;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	s = hbone_conn_stream(c, stream_id);
	if (!s)
		return 0;
	nghttp2_session_set_stream_user_data(session, stream_id, NULL);
	s->h2_closed = true;
	if (s->st == HBONE_ST_DONE) {
		hbone_stream_free(s);
		return 0;
	}
	if (error_code != NGHTTP2_NO_ERROR || s->st == HBONE_ST_PENDING) {
		s->stats.h2_error = error_code;
		if (s->rd_err)
			hbone_stream_fail(s, 0, "read from the socket failed: %s", strerror(s->rd_err));
		else if (error_code != NGHTTP2_NO_ERROR)
			hbone_stream_fail(s, 0, "stream reset by the peer: %s",
				    nghttp2_http2_strerror(error_code));
		else
			hbone_stream_fail(s, 0, "stream closed before it was established");
		return 0;
	}
	hbone_stream_update(s); /* drains, then ends */
	return 0;
}

static int conn_on_frame_not_send(nghttp2_session *session, const nghttp2_frame *frame,
			     int lib_error_code, void *user_data)
{
	struct hbone_conn *c = user_data;
	struct hbone_stream *s;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	s = hbone_conn_stream(c, frame->hd.stream_id);
	if (!s || c->role != HBONE_ROLE_CLIENT || s->st != HBONE_ST_PENDING)
		return 0;
	/* The request never left. nghttp2 may still report a close (it
	 * closes a stream it opened for the request); the stream is freed
	 * then, or with the connection. No RST for a stream never sent. */
	s->rst_sent = true;
	hbone_stream_fail(s, 0, "request not sent: %s", nghttp2_strerror(lib_error_code));
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
static ssize_t conn_data_len_cb(nghttp2_session *session, uint8_t frame_type, int32_t stream_id,
			   int32_t session_remote_window_size, int32_t stream_remote_window_size,
			   uint32_t remote_max_frame_size, void *user_data)
{
	struct hbone_stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
	ssize_t n = 4096; /* nothing to send (EOF, deferral): stay in the default buffer */

	if (s && s->magic == HBONE_STREAM_MAGIC && s->st == HBONE_ST_RELAY && s->fd >= 0 &&
	    !s->tcp_eof && !s->rd_err) {
		int avail = s->avail;

		/* One FIONREAD per socket-full, not per frame: what it
		 * reported and we have not read yet is still there. */
		if (avail <= 0 && s->drained)
			avail = 0; /* defer: EPOLLIN tells when more comes */
		else if (avail <= 0 && ioctl(s->fd, FIONREAD, &avail) < 0) {
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

static int conn_session_new(struct hbone_conn *c)
{
	nghttp2_session_callbacks *cbs = NULL;
	nghttp2_option *opt = NULL;
	nghttp2_settings_entry iv[5];
	size_t niv = 0;
	int ret = -ENOMEM;

	if (nghttp2_session_callbacks_new(&cbs) || nghttp2_option_new(&opt))
		goto out;
	nghttp2_session_callbacks_set_send_callback(cbs, conn_send_cb);
	nghttp2_session_callbacks_set_send_data_callback(cbs, conn_send_data_cb);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, hbone_server_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, conn_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, conn_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, hbone_stream_on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, conn_on_stream_close);
	nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, conn_on_frame_not_send);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, hbone_server_on_frame_send);
	nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, conn_data_len_cb);
	/* Window only comes back when the socket took the bytes. */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	/* No priority tree: nothing to keep closed streams for (they would
	 * hold ~100 structs per busy connection). */
	nghttp2_option_set_no_closed_streams(opt, 1);
	nghttp2_option_set_max_send_header_block_length(opt, 64u << 10);
	if (c->role == HBONE_ROLE_CLIENT) {
		nghttp2_option_set_peer_max_concurrent_streams(opt, c->o.max_streams);
		ret = nghttp2_session_client_new2(&c->h2, cbs, c, opt);
	} else {
		ret = nghttp2_session_server_new2(&c->h2, cbs, c, opt);
	}
	if (ret) {
		ret = -ENOMEM;
		goto out;
	}
	if (c->role == HBONE_ROLE_CLIENT)
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

void hbone_conn_set_interest(struct hbone_conn *c)
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
			hbone_conn_kill(c, "cannot watch the socket");
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
static void conn_hbone_conn_flush_out(struct hbone_conn *c)
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
		hbone_conn_kill(c, "TLS write: %s", io == TLS_IO_CLOSED ? "peer closed" : tls_error(c->ssl));
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
					hbone_conn_kill(c, "HTTP/2: %s", nghttp2_strerror(rv));
					return;
				}
			}
			if (c->mem)
				break;
			conn_hbone_conn_flush_out(c);
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
				hbone_conn_kill(c, "closed");
			}
			return;
		}
	}
	hbone_conn_set_interest(c);
}

/*
 * Decrypted input is gathered over several records (SSL_read returns one
 * per call) before nghttp2 sees it: one mem_recv and, for DATA, one send()
 * to the app per HBONE_READ_BUF instead of per 16 KiB record. The buffer is
 * the thread's (hbone_trim.h); a nested call, or a thread whose buffer cannot
 * be mapped, falls back to a small stack buffer.
 */

static void conn_read(struct hbone_conn *c)
{
	uint8_t small[HBONE_TLS_RECORD];
	size_t cap = 0, high = 0;
	uint8_t *own, *buf;
	int reads = 0;
	bool drained = false;

	/* A client's new CONNECTs wait for the round's flush (hbone_conn_leave).
	 * Were the input a GOAWAY, nghttp2 would then refuse to send them,
	 * although a draining peer's notice admits every stream (drain.c):
	 * the app's connection would be reset in a rollout. Framed first, they
	 * count as sent; their bytes still leave with the flush. */
	if (c->connect_queued) {
		int rv = 0;

		c->connect_queued = false;
		if (nghttp2_session_get_outbound_queue_size(c->h2) > 0)
			rv = nghttp2_session_send(c->h2);
		if (rv) {
			hbone_conn_kill(c, "HTTP/2: %s", nghttp2_strerror(rv));
			return;
		}
	}
	own = hbone_trim_read_buf_take(&cap);
	buf = own ? own : small;
	if (!own)
		cap = sizeof(small);
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
			/* Less than a full record and nothing left in OpenSSL's
			 * read-ahead buffer: its read(2), which asked for a
			 * whole buffer, came back short, so the socket was
			 * empty. No read(2) just to hear EAGAIN (one per
			 * request/response message); EPOLLIN is
			 * level-triggered and reports whatever came since. */
			if (n < HBONE_TLS_RECORD && !SSL_has_pending(c->ssl)) {
				drained = true;
				break;
			}
		}
		if (fill > high)
			high = fill;
		if (fill) {
			rv = nghttp2_session_mem_recv(c->h2, buf, fill);
			if (rv < 0) {
				hbone_conn_kill(c, "HTTP/2 protocol error: %s", nghttp2_strerror((int)rv));
				break;
			}
			if (c->dead)
				break;
		}
		if (io == TLS_IO_OK && !drained)
			continue;
		if (io == TLS_IO_OK)
			break;
		if (io == TLS_IO_CLOSED)
			hbone_conn_kill(c, "peer closed the connection");
		else if (io == TLS_IO_FATAL)
			hbone_conn_kill(c, "TLS: %s", tls_error(c->ssl));
		break; /* WANT_READ / WANT_WRITE: wait for the socket */
	}
	if (own)
		hbone_trim_read_buf_release(high);
}

static void conn_ping_cb(struct loop *l, void *ctx);

static void conn_arm_ping(struct hbone_conn *c)
{
	if (c->o.ping_interval_ms && !c->mem)
		c->ping_timer = loop_timer_add(c->l, c->o.ping_interval_ms, conn_ping_cb, c);
}

static void conn_ping_cb(struct loop *l, void *ctx)
{
	struct hbone_conn *c = ctx;
	uint64_t now = loop_now_ms();

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	c->ping_timer = NULL;
	hbone_conn_enter(c);
	if (c->ping_outstanding && now - c->ping_sent_ms >= c->o.ping_timeout_ms) {
		hbone_conn_kill(c, "no PING answer within %u ms", c->o.ping_timeout_ms);
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
	hbone_conn_leave(c);
}

static void conn_idle_cb(struct loop *l, void *ctx)
{
	struct hbone_conn *c = ctx;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	c->idle_timer = NULL;
	hbone_conn_enter(c);
	if (!c->live) {
		log_debug("hbone: closing idle connection to %s", c->peer_id);
		hbone_conn_shutdown(c);
	}
	hbone_conn_leave(c);
}

void hbone_conn_arm_idle(struct hbone_conn *c)
{
	c->idle_since_ms = loop_now_ms();
	if (c->role != HBONE_ROLE_CLIENT || (!c->o.idle_ms && !c->draining) || c->idle_timer || c->dead)
		return;
	c->idle_timer = loop_timer_add(c->l, c->draining ? 0 : c->o.idle_ms, conn_idle_cb, c);
}

void hbone_conn_connect_timeout_cb(struct loop *l, void *ctx)
{
	struct hbone_conn *c = ctx;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	c->connect_timer = NULL;
	hbone_conn_enter(c);
	if (c->state == HBONE_HANDSHAKE)
		conn_hs_observe(c, false, "TLS handshake timed out");
	hbone_conn_kill(c, "%s did not complete within %u ms",
		  c->state == HBONE_CONNECTING ? "TCP connect" : "TLS handshake",
		  c->o.connect_timeout_ms);
	hbone_conn_leave(c);
}

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
		conn_hs_observe(c, false, why);
		hbone_conn_kill(c, "TLS handshake failed: %s", why);
		return;
	}
	if (tls_peer_identity(c->ssl, c->peer_id, sizeof(c->peer_id))) {
		conn_hs_observe(c, false, "peer presented no SPIFFE identity");
		hbone_conn_kill(c, "peer presented no SPIFFE identity");
		return;
	}
	if (!c->h2 && conn_session_new(c)) {
		conn_hs_observe(c, false, "out of memory");
		hbone_conn_kill(c, "cannot start HTTP/2: out of memory");
		return;
	}
	if (c->role == HBONE_ROLE_SERVER)
		tls_conn_opened(c->ssl);
	conn_hs_observe(c, true, "ok");
	if (c->pool)
		hbone_pool_conn_opened(c);
	if (c->connect_timer) {
		loop_timer_cancel(c->l, c->connect_timer);
		c->connect_timer = NULL;
	}
	c->state = HBONE_OPEN;
	c->opened = true;
	if (c->goaway_pending)
		hbone_server_goaway_start(c);
	conn_arm_ping(c);
	/* Input that arrived with the last handshake flight. */
	if (SSL_has_pending(c->ssl))
		conn_read(c);
}

static void conn_fd_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct hbone_conn *c = ctx;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	hbone_conn_enter(c);
	switch (c->state) {
	case HBONE_CONNECTING: {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			hbone_conn_kill(c, "TCP connect failed: %s", strerror(err));
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
		/* EPOLLOUT: hbone_conn_leave pumps */
		break;
	case HBONE_DEAD:
		break;
	}
	hbone_conn_leave(c);
}

static void conn_destroy(struct hbone_conn *c)
{
	struct hbone_stream *s, *next;

	assert(c->dead && !c->busy && !c->destroyed);
	c->destroyed = true;
	c->busy++; /* callbacks below must not recurse into destroy */
	for (s = c->streams; s; s = next) {
		next = s->next;
		if (s->st != HBONE_ST_DONE) {
			if (!s->stats.reason[0])
				hbone_stream_set_reason(s, "connection closed: %s", c->reason);
			s->h2_closed = true;
			hbone_stream_end(s, true, 0); /* frees s */
		} else {
			s->h2_closed = true;
			hbone_stream_free(s);
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
	if (c->pool)
		hbone_pool_conn_gone(c);
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
	hbone_trim_conn_end();
}

int hbone_conn_new(struct loop *l, enum hbone_conn_role role, int fd,
		   const struct hbone_opts *opts, struct hbone_conn **out)
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
		hbone_opts_default(&c->o, role == HBONE_ROLE_SERVER);
	if (c->o.stream_window < 65535 || c->o.stream_window > NGHTTP2_MAX_WINDOW_SIZE ||
	    c->o.conn_window < 65535 || c->o.conn_window > NGHTTP2_MAX_WINDOW_SIZE ||
	    c->o.max_frame < 16384 || c->o.max_frame > 16777215 || !c->o.send_buf ||
	    !c->o.max_streams) {
		free(c);
		return -EINVAL;
	}
	c->created_ms = c->idle_since_ms = loop_now_ms();
	if (fd >= 0) /* before connect(): the window scale follows SO_RCVBUF */
		conn_set_sock_buf(fd, c->o.sock_buf);
	/* A TLS server connection gets its HTTP/2 session once the client
	 * has authenticated: a pending handshake costs no more than the SSL. */
	ret = role == HBONE_ROLE_SERVER && fd >= 0 ? 0 : conn_session_new(c);
	if (ret) {
		nghttp2_session_del(c->h2);
		free(c);
		return ret;
	}
	hbone_trim_conn_begin();
	*out = c;
	return 0;
}

/* Frees a connection that never ran (constructor failure paths). */
void hbone_conn_discard(struct hbone_conn *c)
{
	c->done_cb = NULL;
	hbone_conn_kill(c, "setup failed");
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
	ret = hbone_conn_new(l, HBONE_ROLE_CLIENT, fd, opts, &c);
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
		c->connect_timer = loop_timer_add(l, c->o.connect_timeout_ms, hbone_conn_connect_timeout_cb, c);
	hbone_conn_set_interest(c);
	if (c->dead) {
		ret = -ENOMEM;
		goto fail;
	}
	if (out)
		*out = c;
	return 0;
fail:
	hbone_conn_discard(c); /* closes fd */
	return ret;
}

int hbone_client_new_mem(struct loop *l, const struct hbone_opts *opts, const char *peer_id,
			 struct hbone_conn **out)
{
	struct hbone_conn *c = NULL;
	int ret;

	*out = NULL;
	ret = hbone_conn_new(l, HBONE_ROLE_CLIENT, -1, opts, &c);
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

	hbone_conn_enter(c);
	assert(c->mem);
	if (c->dead) {
		ret = -EPROTO;
		goto out;
	}
	rv = nghttp2_session_mem_recv(c->h2, data, len);
	if (rv < 0) {
		hbone_conn_kill(c, "HTTP/2 protocol error: %s", nghttp2_strerror((int)rv));
		ret = -EPROTO;
	}
out:
	hbone_conn_leave(c); /* c->hold keeps it for hbone_conn_abort() */
	return ret;
}

void hbone_conn_shutdown(struct hbone_conn *c)
{
	hbone_conn_enter(c);
	if (!c->dead && c->state != HBONE_CLOSING) {
		if (c->state == HBONE_OPEN) {
			c->state = HBONE_CLOSING;
			nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
			snprintf(c->reason, sizeof(c->reason), "closed (idle or shutdown)");
		} else {
			hbone_conn_kill(c, "shut down before it was established");
		}
	}
	hbone_conn_leave(c);
}

void hbone_conn_abort(struct hbone_conn *c, const char *reason)
{
	if (!c)
		return;
	hbone_conn_enter(c);
	c->hold = false;
	hbone_conn_kill(c, "%s", reason ? reason : "aborted");
	hbone_conn_leave(c);
}

void hbone_conn_get_info(const struct hbone_conn *c, struct hbone_conn_info *info)
{
	const struct hbone_stream *s;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	memset(info, 0, sizeof(*info));
	info->state = c->state;
	info->server = c->role == HBONE_ROLE_SERVER;
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
