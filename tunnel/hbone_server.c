/* SPDX-License-Identifier: Apache-2.0 */
/* The server side of HBONE: accepting connections, CONNECT requests and
 * their answers, the draining GOAWAY (contract: hbone.h; hooks for the
 * connection: hbone_server.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "conf/log.h"
#include "conf/objcheck.h"
#include "tunnel/hbone_conn.h"
#include "tunnel/hbone_server.h"
#include "tunnel/hbone_stream.h"
#include "tunnel/hbone_wire.h"
#include "tunnel/tls.h"

int hbone_server_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
				  void *user_data)
{
	struct hbone_conn *c = user_data;
	struct hbone_stream *s;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	if (c->role != HBONE_ROLE_SERVER || frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	s = hbone_stream_new(c);
	if (!s)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets just this stream */
	s->id = frame->hd.stream_id;
	s->cb = c->scbs.on_stream_done;
	s->cb_ctx = c->scbs.ctx;
	nghttp2_session_set_stream_user_data(session, s->id, s);
	return 0;
}

static int server_submit_status(struct hbone_stream *s, int status, bool with_body)
{
	char st[4];
	nghttp2_nv nv = { (uint8_t *)":status", (uint8_t *)st, 7, 3, NGHTTP2_NV_FLAG_NONE };
	nghttp2_data_provider prd = { .source.ptr = s, .read_callback = hbone_stream_data_read_cb };

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
		server_submit_status(s, status, false);
		/* We will not read the request body: tell the client to stop
		 * (RFC 9113 §8.1) so the stream does not linger half-open. Not
		 * now: a RST_STREAM queued now would cancel the answer. */
		s->rst_after_response = true;
		s->rst_sent = true;
	}
	s->stats.status = status;
	if (!s->stats.reason[0])
		hbone_stream_set_reason(s, "rejected %d", status);
	hbone_stream_end(s, false, 0);
}

/* Server: a complete request header block arrived. */
void hbone_server_request(struct hbone_conn *c, struct hbone_stream *s)
{
	struct hbone_request req;

	memset(&req, 0, sizeof(req));
	if (!s->method || strcmp(s->method, "CONNECT")) {
		hbone_stream_set_reason(s, "rejected 400: method %s is not CONNECT",
			   s->method ? s->method : "(none)");
		log_debug("hbone: %s", s->stats.reason);
		server_reject(s, 400);
		return;
	}
	if (!s->authority || hbone_parse_authority(s->authority, &req)) {
		hbone_stream_set_reason(s, "rejected 400: unparsable :authority");
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

int hbone_server_on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
			       void *user_data)
{
	struct hbone_conn *c = user_data;
	struct hbone_stream *s;

	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	if (frame->hd.type != NGHTTP2_HEADERS || c->role != HBONE_ROLE_SERVER)
		return 0;
	s = hbone_conn_stream(c, frame->hd.stream_id);
	if (s && s->rst_after_response && !s->h2_closed) {
		s->rst_after_response = false;
		nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
	}
	return 0;
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
	ret = hbone_conn_new(l, HBONE_ROLE_SERVER, fd, opts, &c);
	if (ret) {
		close(fd);
		return ret;
	}
	c->scbs = *cbs;
	ret = tls_conn_new(ctx, fd, &c->ssl);
	if (ret)
		goto fail;
	tls_conn_handshaking(c->ssl);
	c->state = HBONE_HANDSHAKE;
	c->hs_want = TLS_IO_WANT_READ;
	if (c->o.connect_timeout_ms)
		c->connect_timer = loop_timer_add(l, c->o.connect_timeout_ms, hbone_conn_connect_timeout_cb, c);
	hbone_conn_set_interest(c);
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
	hbone_conn_discard(c);
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
	ret = hbone_conn_new(l, HBONE_ROLE_SERVER, -1, opts, &c);
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

static void server_goaway_cb(struct loop *l, void *ctx)
{
	struct hbone_conn *c = ctx;

	(void)l;
	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	c->goaway_timer = NULL;
	hbone_conn_enter(c);
	if (!c->dead)
		nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(c->h2), NGHTTP2_NO_ERROR,
				      NULL, 0);
	hbone_conn_leave(c);
}

/* c: an open server connection, inside hbone_conn_enter(). */
void hbone_server_goaway_start(struct hbone_conn *c)
{
	c->goaway_pending = false;
	c->state = HBONE_CLOSING;
	snprintf(c->reason, sizeof(c->reason), "closed (the tunnel is draining)");
	/* A CONNECT already on its way was sent before the peer saw the
	 * notice: the final GOAWAY, which refuses later streams, waits until
	 * it has arrived. */
	nghttp2_submit_shutdown_notice(c->h2);
	c->goaway_timer = loop_timer_add(c->l, HBONE_GOAWAY_GRACE_MS, server_goaway_cb, c);
	if (!c->goaway_timer)
		nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(c->h2), NGHTTP2_NO_ERROR,
				      NULL, 0);
}

void hbone_conn_goaway(struct hbone_conn *c)
{
	CHECK_OBJ(c, HBONE_CONN_MAGIC);
	hbone_conn_enter(c);
	if (!c->dead && c->role == HBONE_ROLE_SERVER) {
		if (c->state == HBONE_OPEN)
			hbone_server_goaway_start(c);
		else if (c->state == HBONE_CONNECTING || c->state == HBONE_HANDSHAKE)
			c->goaway_pending = true; /* sent as soon as it is open */
	}
	hbone_conn_leave(c);
}

int hbone_stream_accept(struct hbone_stream *s, int fd)
{
	struct hbone_conn *c;
	int ret = 0;

	CHECK_OBJ(s, HBONE_STREAM_MAGIC);
	c = s->c;
	if (s->st != HBONE_ST_PENDING || c->role != HBONE_ROLE_SERVER) {
		close(fd);
		return -EALREADY;
	}
	hbone_conn_enter(c);
	if (c->dead) {
		close(fd);
		ret = -ENOTCONN;
		goto out;
	}
	s->fd = fd;
	if (server_submit_status(s, 200, true)) {
		hbone_stream_fail(s, NGHTTP2_INTERNAL_ERROR, "cannot submit the 200 response");
		ret = -EPROTO;
		goto out;
	}
	s->st = HBONE_ST_RELAY;
	hbone_stream_update(s);
out:
	hbone_conn_leave(c);
	return ret;
}

int hbone_stream_reject(struct hbone_stream *s, int status)
{
	struct hbone_conn *c;

	CHECK_OBJ(s, HBONE_STREAM_MAGIC);
	c = s->c;
	if (status < 300 || status > 599)
		return -EINVAL;
	if (s->st != HBONE_ST_PENDING || c->role != HBONE_ROLE_SERVER)
		return -EALREADY;
	hbone_conn_enter(c);
	server_reject(s, status);
	hbone_conn_leave(c);
	return 0;
}
