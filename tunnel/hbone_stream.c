/* SPDX-License-Identifier: Apache-2.0 */
/* One CONNECT stream relayed to its socket (contract: hbone_stream.h; the
 * byte path: hbone.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "conf/objcheck.h"
#include "tunnel/hbone_conn.h"
#include "tunnel/hbone_stream.h"
#include "tunnel/hbone_trim.h"
#include "tunnel/hbone_wire.h"
#include "tunnel/relay.h"

void hbone_stream_set_reason(struct hbone_stream *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->stats.reason, sizeof(s->stats.reason), fmt, ap);
	va_end(ap);
}

struct hbone_stream *hbone_stream_new(struct hbone_conn *c)
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
	hbone_trim_stream_begin();
	c->streams_total++;
	if (c->idle_timer) {
		loop_timer_cancel(c->l, c->idle_timer);
		c->idle_timer = NULL;
	}
	return s;
}

void hbone_stream_free(struct hbone_stream *s)
{
	struct hbone_conn *c;

	if (!s)
		return;
	CHECK_OBJ(s, HBONE_STREAM_MAGIC);
	c = s->c;
	assert(s->st == HBONE_ST_DONE && s->fd < 0);
	if (s->prev)
		s->prev->next = s->next;
	else
		c->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	hbone_ring_free(&s->down);
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
void hbone_stream_end(struct hbone_stream *s, bool reset, uint32_t h2_error)
{
	struct hbone_conn *c = s->c;

	if (s->st == HBONE_ST_DONE)
		return;
	stream_close_fd(s, reset);
	if (!s->h2_closed && s->id > 0 && !c->dead && !s->rst_sent && (reset || !s->eof_sent)) {
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id,
					  h2_error ? h2_error : NGHTTP2_CANCEL);
		s->rst_sent = true;
		if (!s->stats.h2_error)
			s->stats.h2_error = h2_error ? h2_error : NGHTTP2_CANCEL;
	}
	s->st = HBONE_ST_DONE;
	if (s->down.len && !c->dead) /* unread bytes still hold connection window */
		nghttp2_session_consume_connection(c->h2, s->down.len);
	hbone_ring_free(&s->down);
	if (!s->stats.reason[0])
		hbone_stream_set_reason(s, reset ? "reset" : "closed");
	assert(c->live > 0);
	c->live--;
	if (hbone_trim_stream_end())
		hbone_conn_trim_soon(c);
	/* a bulk stream: its ring, the output buffer or read_buf grew */
	if (s->down.grew_big || s->stats.tx >= HBONE_RING_BIG || hbone_trim_read_buf_big())
		hbone_conn_trim_soon(c);
	if (s->cb && (c->role == HBONE_ROLE_CLIENT || s->announced))
		s->cb(s->cb_ctx, s, &s->stats);
	s->cb = NULL;
	if (!c->live)
		hbone_conn_arm_idle(c);
	if (s->h2_closed)
		hbone_stream_free(s);
}

void hbone_stream_fail(struct hbone_stream *s, uint32_t h2_error, const char *fmt, ...)
{
	va_list ap;

	if (s->st == HBONE_ST_DONE)
		return;
	va_start(ap, fmt);
	vsnprintf(s->stats.reason, sizeof(s->stats.reason), fmt, ap);
	va_end(ap);
	hbone_stream_end(s, true, h2_error);
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

	if (s->st != HBONE_ST_RELAY || s->fd < 0 || s->hup)
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
			hbone_stream_fail(s, NGHTTP2_INTERNAL_ERROR, "cannot watch the socket");
			return;
		}
		s->fd_reg = true;
	} else if (ev != s->fd_events) {
		loop_mod(s->c->l, s->fd, ev);
	}
	s->fd_events = ev;
}

void hbone_stream_resume(struct hbone_stream *s)
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
		int n = hbone_ring_data_iov(&s->down, iov);
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t w = sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			return -errno;
		}
		hbone_ring_drop(&s->down, (size_t)w);
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
void hbone_stream_update(struct hbone_stream *s)
{
	int ret;

	if (s->st != HBONE_ST_RELAY)
		return;
	ret = stream_flush_down(s);
	if (ret < 0) {
		hbone_stream_fail(s, NGHTTP2_CANCEL, "write to the socket failed: %s", strerror(-ret));
		return;
	}
	if (s->down.len == 0 && s->peer_eof && !s->wr_shut) {
		shutdown(s->fd, SHUT_WR);
		s->wr_shut = true;
	}
	if (s->h2_closed && s->down.len == 0) {
		/* nghttp2 closed it cleanly (error streams were ended in
		 * conn_on_stream_close): both END_STREAMs went through. */
		s->stats.ok = s->peer_eof && s->eof_sent;
		hbone_stream_end(s, !s->peer_eof, 0);
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
	hbone_conn_enter(c);
	if (s->st == HBONE_ST_RELAY) {
		if (events & (EPOLLERR | EPOLLHUP)) {
			int err = 0;
			socklen_t len = sizeof(err);

			/* A reset reports EPOLLERR; a hang-up alone is two clean
			 * FINs and needs no SO_ERROR (one syscall per stream). */
			if ((events & EPOLLERR) &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err) {
				hbone_stream_fail(s, NGHTTP2_CANCEL, "socket error: %s", strerror(err));
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
			hbone_stream_fail(s, NGHTTP2_CANCEL, "read from the socket failed: %s",
				    strerror(s->rd_err));
			goto out;
		}
		s->drained = false; /* what the event announced needs FIONREAD */
		if (events & (EPOLLRDHUP | EPOLLHUP))
			s->rdhup = true;
		if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
			if (s->deferred)
				hbone_stream_resume(s);
			else if (events & EPOLLIN)
				s->drop_in = true; /* input waits for window: stop polling it */
		}
	}
	hbone_stream_update(s);
out:
	hbone_conn_leave(c);
}

/*
 * nghttp2 asks for the next DATA payload (at most length bytes): we only
 * say how much the socket holds (s->avail, else FIONREAD) and conn_send_data_cb reads it
 * straight into the TLS output buffer behind the frame header (no copy in
 * user space). Nothing queued: EOF (-> END_STREAM) once epoll reported
 * RDHUP/HUP (the queue is empty, so the FIN is next), else DEFERRED until
 * EPOLLIN (which also fires for a FIN that arrived meanwhile): no MSG_PEEK
 * probe per deferral.
 */
ssize_t hbone_stream_data_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
				  size_t length, uint32_t *data_flags,
				  nghttp2_data_source *source, void *user_data)
{
	struct hbone_stream *s = source->ptr;

	CHECK_OBJ(s, HBONE_STREAM_MAGIC);
	if (s->st != HBONE_ST_RELAY || s->fd < 0 || s->rd_err) {
		s->avail = -1;
		goto defer;
	}
	if (!s->tcp_eof) {
		int avail = s->avail;

		/* Known queued bytes are enough to go on; deferring or ending
		 * the stream needs the socket's word of just now (a 0 that
		 * conn_data_len_cb left, used up here). */
		if (avail < 0 && s->drained)
			avail = 0;
		else if (avail < 0 && ioctl(s->fd, FIONREAD, &avail) < 0) {
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

int hbone_stream_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
			       const uint8_t *data, size_t len, void *user_data)
{
	struct hbone_conn *c = user_data;
	struct hbone_stream *s;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	s = hbone_conn_stream(c, stream_id);
	if (!s || s->st == HBONE_ST_DONE) {
		/* Nobody will read it: return the window at once. */
		nghttp2_session_consume(session, stream_id, len);
		return 0;
	}
	if (len > hbone_ring_space(&s->down)) {
		/* Cannot happen with a peer that honours our window. */
		nghttp2_session_consume(session, stream_id, len);
		hbone_stream_fail(s, NGHTTP2_FLOW_CONTROL_ERROR, "peer exceeded the stream window");
		return 0;
	}
	if (s->st == HBONE_ST_RELAY && !s->down.len && s->fd >= 0 && !s->wr_shut) {
		/* Straight from the decrypted TLS buffer to the socket; only
		 * what the app cannot take now is buffered. */
		ssize_t w;

		do
			w = send(s->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (w < 0 && errno == EINTR);
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			nghttp2_session_consume(session, stream_id, len);
			hbone_stream_fail(s, NGHTTP2_CANCEL, "write to the socket failed: %s",
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
	if (hbone_ring_reserve(&s->down, len)) {
		nghttp2_session_consume(session, stream_id, len);
		hbone_stream_fail(s, NGHTTP2_INTERNAL_ERROR, "out of memory buffering %zu bytes", len);
		return 0;
	}
	hbone_ring_put(&s->down, data, len);
	stream_set_interest(s); /* EPOLLOUT now, not at the end of the frame */
	return 0;
}

void hbone_stream_abort(struct hbone_stream *s, const char *reason)
{
	struct hbone_conn *c;

	if (!s)
		return;
	CHECK_OBJ(s, HBONE_STREAM_MAGIC);
	c = s->c;
	hbone_conn_enter(c);
	hbone_stream_fail(s, NGHTTP2_CANCEL, "%s", reason ? reason : "aborted");
	hbone_conn_leave(c);
}

#define MKNV(n, v) \
	{ (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }

int hbone_stream_open(struct hbone_conn *c, const struct hbone_connect_req *req, int app_fd,
		      hbone_stream_done_cb done_cb, void *ctx, struct hbone_stream **out)
{
	nghttp2_data_provider prd = { .read_callback = hbone_stream_data_read_cb };
	struct hbone_stream *s = NULL;
	char tp[HBONE_TRACEPARENT_LEN];
	nghttp2_nv nva[5];
	size_t n = 0;
	int32_t id;
	int ret = 0;

	if (out)
		*out = NULL;
	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	if (!req || !req->authority || !*req->authority || app_fd < 0 || c->role != HBONE_ROLE_CLIENT) {
		ret = -EINVAL;
		goto fail_fd;
	}
	hbone_conn_enter(c);
	if (c->dead || c->state == HBONE_CLOSING) {
		ret = -ENOTCONN;
		goto out;
	}
	s = hbone_stream_new(c);
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
		hbone_wire_traceparent(tp);
	nva[n++] = (nghttp2_nv)MKNV("traceparent", req->traceparent ? req->traceparent : tp);
	prd.source.ptr = s;
	id = nghttp2_submit_request(c->h2, NULL, nva, n, &prd, s);
	if (id < 0) {
		ret = -EPROTO;
		s->fd = -1;
		s->st = HBONE_ST_DONE;
		s->h2_closed = true;
		c->live--;
		hbone_trim_stream_forget(); /* it never opened: not an end */
		c->streams_total--;
		hbone_stream_free(s);
		goto out;
	}
	s->id = id;
	c->connect_queued = true;
	if (out)
		*out = s;
out:
	hbone_conn_leave(c);
	if (!ret)
		return 0;
fail_fd:
	if (app_fd >= 0)
		close(app_fd);
	return ret;
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
