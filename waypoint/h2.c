/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/2 and gRPC at the waypoint (contract in waypoint/h2.h). */
#include "waypoint/h2.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/log.h"
#include "conf/objcheck.h"
#include "waypoint/conn.h"
#include "waypoint/h2msg.h"
#include "waypoint/wmodel.h"

#define WPH2_MAGIC  0x77706832u /* "wph2" */
#define WPH2U_MAGIC 0x77706875u /* "wphu" */
#define WPH2_OUT    16384       /* an upstream session's output buffer */
#define WPH2_RETRIES 2

struct wph2_conn {
	unsigned magic;
	struct wp_conn *c;
	nghttp2_session *s;
	struct wph2_stream *streams;
	struct wph2_conn *next, **pprev; /* w->h2conns */
	unsigned n_streams;
	bool dirty, closing;
};

struct wph2_up {
	unsigned magic;
	struct wp *w;
	struct wph2_up *next, **pprev;   /* w->h2ups */
	struct wp_up *u;                 /* the HBONE stream; NULL once dead */
	nghttp2_session *s;
	char key[WPU_KEY];
	unsigned n_streams;
	bool dirty, dead, got_bytes, idle_counted;
	struct loop_timer *idle;
	size_t out_off, out_len;
	char out[WPH2_OUT];
};

struct wph2_stream {
	struct wph2_conn *h;             /* NULL once the client's stream closed */
	struct wph2_stream *next, **pprev;
	int32_t sid;
	struct wph2_up *up;              /* while an upstream stream is open */
	int32_t usid;
	struct wmodel *m;                /* the model it was decided with */
	struct wp_req r;
	struct h2m_hdrs q, qt, p;       /* request headers, request trailers, response headers/trailers */
	struct h2m_buf req, resp;
	char *replay;                    /* the request body so far, for a retry (up to WP_RETRY_MAX) */
	size_t replay_len, replay_pos;
	bool replay_over;                /* the body outgrew it: not retryable */
	bool started, discard, grpc, req_end, resp_end, resp_sent, resp_trailers;
	uint32_t resp_reset;             /* the app's RST_STREAM code, passed on after what it sent */
	unsigned retries;
	const struct mesh_service *bsvc;
	const struct mesh_service_port *bsp;
	struct loop_timer *timer;
	char local[160];                 /* a local answer's body */
};

static void wph2_run(struct wp *w);

/* ---- streams ---- */

static void wph2_timer_stop(struct wph2_stream *st)
{
	if (st->timer && st->h)
		loop_timer_cancel(st->h->c->w->loop, st->timer);
	st->timer = NULL;
}

static void wph2_up_unlink(struct wph2_stream *st);

static void wph2_stream_free(struct wph2_stream *st)
{
	wph2_timer_stop(st);
	wph2_up_unlink(st);
	if (st->pprev) {
		*st->pprev = st->next;
		if (st->next)
			st->next->pprev = st->pprev;
	}
	h2m_hdrs_clear(&st->q);
	h2m_hdrs_clear(&st->qt);
	h2m_hdrs_clear(&st->p);
	free(st->req.p);
	free(st->resp.p);
	free(st->replay);
	wmodel_unref(st->m);
	free(st);
}

static void wph2_mark(struct wph2_conn *h)
{
	if (h)
		h->dirty = true;
}

static void wph2_up_mark(struct wph2_up *up)
{
	if (up)
		up->dirty = true;
}

static ssize_t wph2_resp_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
			      nghttp2_data_source *src, void *ud);

/* Answers st from the waypoint: status and body (a gRPC request: a
 * trailers-only response with the mapped grpc-status and the body as
 * grpc-message). The request's remaining body is dropped. */
static void wph2_local(struct wph2_stream *st, unsigned status, const char *body)
{
	char code[8], gs[8], clen[24];
	nghttp2_data_provider dp = { .read_callback = wph2_resp_read };
	int rv;

	st->r.status = status;
	st->discard = true;
	st->resp_sent = st->resp_end = true;
	if (!st->h)
		return;
	if (st->req.len) { /* dropped: the client gets its window back */
		nghttp2_session_consume(st->h->s, st->sid, st->req.len);
		st->req.len = st->req.off = 0;
	}
	snprintf(code, sizeof(code), "%u", st->grpc ? 200 : status);
	snprintf(st->local, sizeof(st->local), "%s", body);
	if (st->grpc) {
		snprintf(gs, sizeof(gs), "%u", h2m_grpc_of(status));
		snprintf(st->r.grpc_status, sizeof(st->r.grpc_status), "%s", gs);
		nghttp2_nv nv[] = {
			{ (uint8_t *)":status", (uint8_t *)code, 7, strlen(code), 0 },
			{ (uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, 0 },
			{ (uint8_t *)"grpc-status", (uint8_t *)gs, 11, strlen(gs), 0 },
			{ (uint8_t *)"grpc-message", (uint8_t *)st->local, 12, strlen(st->local), 0 },
		};
		rv = nghttp2_submit_response(st->h->s, st->sid, nv, 4, NULL);
	} else {
		snprintf(clen, sizeof(clen), "%zu", strlen(st->local));
		nghttp2_nv nv[] = {
			{ (uint8_t *)":status", (uint8_t *)code, 7, strlen(code), 0 },
			{ (uint8_t *)"content-type", (uint8_t *)"text/plain", 12, 10, 0 },
			{ (uint8_t *)"content-length", (uint8_t *)clen, 14, strlen(clen), 0 },
		};
		h2m_buf_put(&st->resp, (const uint8_t *)st->local, strlen(st->local));
		st->r.resp_bytes += strlen(st->local);
		rv = nghttp2_submit_response(st->h->s, st->sid, nv, 3, &dp);
	}
	if (rv)
		nghttp2_submit_rst_stream(st->h->s, NGHTTP2_FLAG_NONE, st->sid, NGHTTP2_INTERNAL_ERROR);
	wph2_mark(st->h);
}

/* ---- upstream sessions ---- */

static void wph2_up_io(struct loop *l, int fd, uint32_t events, void *ctx);

static void wph2_up_unlink(struct wph2_stream *st)
{
	struct wph2_up *up = st->up;

	if (!up)
		return;
	if (up->s && st->usid > 0) {
		nghttp2_session_set_stream_user_data(up->s, st->usid, NULL);
		if (st->resp.len) /* no longer consumed as it goes */
			nghttp2_session_consume_connection(up->s, st->resp.len);
	}
	st->up = NULL;
	st->usid = 0;
	if (up->n_streams)
		up->n_streams--;
	wph2_up_mark(up);
}

static void wph2_up_free(struct wph2_up *up)
{
	CHECK_OBJ(up, WPH2U_MAGIC);
	if (up->idle)
		loop_timer_cancel(up->w->loop, up->idle);
	if (up->idle_counted)
		up->w->h2_idle--;
	*up->pprev = up->next;
	if (up->next)
		up->next->pprev = up->pprev;
	if (up->u)
		wp_up_release(up->u);
	nghttp2_session_del(up->s);
	up->magic = 0;
	free(up);
}

static void wph2_retry_or_fail(struct wph2_stream *st, bool connect_failed, uint32_t code);

/* The session to the endpoint is gone: each of its streams fails (or goes
 * again elsewhere); the session itself is freed by wph2_run. */
static void wph2_up_kill(struct wph2_up *up, const char *why)
{
	struct wp *w = up->w;
	bool cf = !up->got_bytes || (up->u && wp_up_connect_failed(up->u));

	if (up->dead)
		return;
	up->dead = true;
	up->dirty = true;
	log_debug("upstream HTTP/2 session %s ended: %s", up->key, why);
	/* streams are found through the client connections (each names its up) */
	for (struct wph2_conn *h = w->h2conns; h; h = h->next)
		for (struct wph2_stream *st = h->streams, *nx; st; st = nx) {
			nx = st->next;
			if (st->up == up) {
				wph2_up_unlink(st);
				wph2_retry_or_fail(st, cf, NGHTTP2_CANCEL);
			}
		}
}

static void wph2_up_idle_expire(struct loop *l, void *ctx)
{
	struct wph2_up *up = ctx;

	(void)l;
	up->idle = NULL;
	if (!up->n_streams)
		wph2_up_kill(up, "idle");
	wph2_run(up->w);
}

static ssize_t wph2_up_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
	struct wph2_up *up = ud;

	(void)s;
	(void)flags;
	return h2m_append(up->out, WPH2_OUT, &up->out_len, data, len);
}

static int wph2_up_on_header(nghttp2_session *s, const nghttp2_frame *f, nghttp2_rcbuf *n, nghttp2_rcbuf *v,
			     uint8_t flags, void *ud)
{
	struct wph2_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);

	(void)flags;
	(void)ud;
	if (st && f->hd.type == NGHTTP2_HEADERS)
		h2m_hdrs_add(&st->p, n, v);
	return 0;
}

static void wph2_note_grpc(struct wph2_stream *st)
{
	size_t n;
	const char *g = h2m_hdrs_get(&st->p, "grpc-status", &n);

	if (g && n < sizeof(st->r.grpc_status)) {
		memcpy(st->r.grpc_status, g, n);
		st->r.grpc_status[n] = '\0';
	}
}

static void wph2_start_upstream(struct wph2_stream *st);

/* A final response head from the app: to the client (or a retry). */
static void wph2_up_response(struct wph2_stream *st, bool end)
{
	nghttp2_data_provider dp = { .read_callback = wph2_resp_read };
	nghttp2_nv nv[WPH2_FIELDS + 32];
	char names[1024];
	size_t n, k;
	const char *s = h2m_hdrs_get(&st->p, ":status", &n);
	unsigned status = 0;
	bool final;

	for (size_t i = 0; s && i < n && i < 3; i++)
		status = status * 10 + (unsigned)(s[i] - '0');
	final = status >= 200 || status == 101;
	if (st->p.over) {
		h2m_hdrs_clear(&st->p);
		if (st->up)
			nghttp2_submit_rst_stream(st->up->s, NGHTTP2_FLAG_NONE, st->usid, NGHTTP2_CANCEL);
		wph2_up_unlink(st);
		st->r.flag = "UPE";
		snprintf(st->r.reason, sizeof(st->r.reason), "the response head is over %u fields or %u bytes",
			 WPH2_FIELDS, WPH2_HEADER_LIST);
		wph2_local(st, 502, "upstream response headers too large");
		return;
	}
	if (final && st->grpc)
		wph2_note_grpc(st);
	/* gRPC's unavailable and cancelled (a trailers-only answer): Istio's
	 * default retry policy goes again, to the next endpoint */
	if (final && end && st->grpc && (!strcmp(st->r.grpc_status, "14") || !strcmp(st->r.grpc_status, "1")) &&
	    st->retries < WPH2_RETRIES && !st->replay_over && st->req_end) {
		if (st->up)
			nghttp2_submit_rst_stream(st->up->s, NGHTTP2_FLAG_NONE, st->usid, NGHTTP2_NO_ERROR);
		wph2_up_unlink(st);
		st->retries++;
		log_info("retry %u of %s %s to %s: grpc-status %s", st->retries, st->r.method, st->r.path,
			 st->h ? st->h->c->authority : "?", st->r.grpc_status);
		st->r.grpc_status[0] = '\0';
		h2m_hdrs_clear(&st->p);
		st->replay_pos = 0;
		wph2_start_upstream(st);
		return;
	}
	if (!st->h) {
		h2m_hdrs_clear(&st->p);
		return;
	}
	k = h2m_nv(&st->p, final && st->r.rule ? &st->r.rule->resp_mod : NULL, nv, names, sizeof(names));
	if (!final) {
		nghttp2_submit_headers(st->h->s, NGHTTP2_FLAG_NONE, st->sid, NULL, nv, k, NULL);
	} else {
		st->r.status = status;
		st->resp_sent = true;
		st->resp_end = end;
		free(st->replay); /* answered: never goes again */
		st->replay = NULL;
		st->replay_over = true;
		if (nghttp2_submit_response(st->h->s, st->sid, nv, k, end ? NULL : &dp))
			nghttp2_submit_rst_stream(st->h->s, NGHTTP2_FLAG_NONE, st->sid, NGHTTP2_INTERNAL_ERROR);
	}
	h2m_hdrs_clear(&st->p);
	wph2_mark(st->h);
}

static int wph2_up_on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct wph2_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;

	(void)ud;
	if (!st)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS) {
		st->r.resp_bytes += f->hd.length + 9;
		if (f->headers.cat == NGHTTP2_HCAT_RESPONSE || !st->resp_sent) {
			wph2_up_response(st, end);
		} else { /* trailers: sent once the body before them is */
			if (st->grpc)
				wph2_note_grpc(st);
			st->resp_trailers = !st->p.over;
			if (st->p.over)
				h2m_hdrs_clear(&st->p);
			st->resp_end = true;
		}
	} else if (f->hd.type == NGHTTP2_DATA && end) {
		st->resp_end = true;
	}
	if (st->h && st->resp_sent)
		nghttp2_session_resume_data(st->h->s, st->sid);
	wph2_mark(st->h);
	return 0;
}

static int wph2_up_on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t len,
			   void *ud)
{
	struct wph2_stream *st = nghttp2_session_get_stream_user_data(s, sid);

	(void)flags;
	(void)ud;
	if (!st || !st->h || !st->resp_sent || st->discard) {
		nghttp2_session_consume(s, sid, len);
		return 0;
	}
	if (h2m_buf_put(&st->resp, data, len) < len) /* the window bounds it: a peer past it */
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	st->r.resp_bytes += len;
	nghttp2_session_resume_data(st->h->s, st->sid);
	wph2_mark(st->h);
	return 0;
}

static int wph2_up_on_close(nghttp2_session *s, int32_t sid, uint32_t code, void *ud)
{
	struct wph2_stream *st = nghttp2_session_get_stream_user_data(s, sid);

	(void)ud;
	if (!st)
		return 0;
	wph2_up_unlink(st);
	if (code == NGHTTP2_NO_ERROR && st->resp_end)
		return 0; /* the client side finishes sending what is buffered */
	if (!st->resp_sent) {
		wph2_retry_or_fail(st, false, code);
	} else if (st->h) {
		/* cut mid-response: the client's stream is reset the same way */
		snprintf(st->r.reason, sizeof(st->r.reason), "upstream reset the stream mid-response (%s)",
			 nghttp2_http2_strerror(code));
		st->r.flag = "UR";
		st->resp_reset = code ? code : NGHTTP2_CANCEL; /* once the body before it went */
		nghttp2_session_resume_data(st->h->s, st->sid);
		wph2_mark(st->h);
	}
	return 0;
}

/* The request body to the app: what a retry replays first, then what the
 * client sent since; the client gets the window back as it goes. */
static ssize_t wph2_req_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
			     nghttp2_data_source *src, void *ud)
{
	struct wph2_stream *st = nghttp2_session_get_stream_user_data(s, sid);
	size_t n;

	(void)src;
	(void)ud;
	if (!st)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (st->replay && st->replay_pos < st->replay_len) {
		n = st->replay_len - st->replay_pos < len ? st->replay_len - st->replay_pos : len;
		memcpy(buf, st->replay + st->replay_pos, n);
		st->replay_pos += n;
		return (ssize_t)n;
	}
	n = h2m_buf_take(&st->req, buf, len);
	if (n) {
		if (st->h)
			nghttp2_session_consume(st->h->s, st->sid, n);
		wph2_mark(st->h);
		if (!st->replay_over) {
			if (st->replay_len + n > WP_RETRY_MAX) {
				st->replay_over = true;
				free(st->replay);
				st->replay = NULL;
			} else if (st->replay || (st->replay = malloc(WP_RETRY_MAX))) {
				memcpy(st->replay + st->replay_len, buf, n);
				st->replay_len += n;
				st->replay_pos = st->replay_len;
			} else {
				st->replay_over = true;
			}
		}
		return (ssize_t)n;
	}
	if (!st->req_end)
		return NGHTTP2_ERR_DEFERRED;
	h2m_body_end(s, sid, flags, &st->qt);
	return 0;
}

static int wph2_up_session_new(struct wph2_up *up)
{
	nghttp2_session_callbacks *cbs = NULL;
	nghttp2_option *opt = NULL;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, WPH2_WIN },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, WPH2_HEADER_LIST },
	};
	int rv = -1;

	if (nghttp2_session_callbacks_new(&cbs) || nghttp2_option_new(&opt))
		goto out;
	nghttp2_session_callbacks_set_send_callback(cbs, wph2_up_send);
	nghttp2_session_callbacks_set_on_header_callback2(cbs, wph2_up_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, wph2_up_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, wph2_up_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, wph2_up_on_close);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_no_closed_streams(opt, 1);
	nghttp2_option_set_peer_max_concurrent_streams(opt, WP_MAX_STREAMS);
	if (nghttp2_session_client_new2(&up->s, cbs, up, opt))
		goto out;
	rv = nghttp2_submit_settings(up->s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) ? -1 : 0;
out:
	nghttp2_session_callbacks_del(cbs);
	nghttp2_option_del(opt);
	return rv;
}

/* A session to e's endpoint with room for one more stream: a live one, or a
 * new one. NULL with why. */
static struct wph2_up *wph2_up_get(struct wp *w, const struct wp_ep *e, char *why, size_t whylen)
{
	char key[WPU_KEY];
	struct wph2_up *up;
	struct wp_up_dest d = e->d;
	bool reused;
	int err;

	snprintf(key, sizeof(key), "%s %s", e->authority, e->expect);
	for (up = w->h2ups; up; up = up->next) {
		uint32_t max = up->s ? nghttp2_session_get_remote_settings(up->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) : 0;

		if (max > WP_MAX_STREAMS)
			max = WP_MAX_STREAMS;
		if (!up->dead && up->n_streams < max && !strcmp(up->key, key) &&
		    nghttp2_session_check_request_allowed(up->s)) {
			if (up->idle)
				loop_timer_cancel(w->loop, up->idle);
			up->idle = NULL;
			if (up->idle_counted)
				w->h2_idle--;
			up->idle_counted = false;
			if (w->stats)
				wp_stats_upstream(w->stats, true);
			w->ups.n_reused++;
			return up;
		}
	}
	up = calloc(1, sizeof(*up));
	if (!up) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	up->magic = WPH2U_MAGIC;
	up->w = w;
	snprintf(up->key, sizeof(up->key), "%s", key);
	if (wph2_up_session_new(up) < 0) {
		nghttp2_session_del(up->s);
		free(up);
		snprintf(why, whylen, "out of memory (HTTP/2 session)");
		return NULL;
	}
	d.fresh = true;
	wp_ups_sync(w);
	up->u = wp_up_open(&w->ups, &d, wph2_up_io, up, &reused, &err, why, whylen);
	if (!up->u) {
		nghttp2_session_del(up->s);
		free(up);
		return NULL;
	}
	up->next = w->h2ups;
	if (up->next)
		up->next->pprev = &up->next;
	up->pprev = &w->h2ups;
	w->h2ups = up;
	return up;
}

/* Opens st's request on a session to one endpoint of (bsvc, bsp); false
 * (st answered) when none can be had. */
static void wph2_start_upstream(struct wph2_stream *st)
{
	struct wp_conn *c = st->h ? st->h->c : NULL;
	nghttp2_data_provider dp = { .read_callback = wph2_req_read };
	nghttp2_nv nv[WPH2_FIELDS + 32];
	char names[1024], why[300];
	struct wph2_up *up = NULL;
	struct wp_ep e;
	int ret = -EHOSTUNREACH;
	size_t k;

	if (!c)
		return;
	for (;;) {
		struct wmodel *cm = c->m;

		c->m = st->m; /* the model st's backend is of (c's may be newer) */
		ret = wp_endpoint(c, st->bsvc, st->bsp, &e, why, sizeof(why));
		c->m = cm;
		if (ret == 0 && (up = wph2_up_get(c->w, &e, why, sizeof(why))))
			break;
		if (ret == -EHOSTUNREACH || st->retries >= WPH2_RETRIES)
			break;
		st->retries++;
		log_info("retry %u of %s %s to %s: %s", st->retries, st->r.method, st->r.path, c->authority, why);
	}
	if (!up) {
		snprintf(st->r.reason, sizeof(st->r.reason), "%s", why);
		wph2_local(st, 503, "upstream connect error");
		return;
	}
	log_debug("HTTP/2 request of %s to %s: upstream %s (expecting %s)", c->peer, c->authority, e.authority,
		  e.expect);
	k = h2m_nv(&st->q, st->r.rule ? &st->r.rule->req_mod : NULL, nv, names, sizeof(names));
	st->usid = nghttp2_submit_request(up->s, NULL, nv, k, st->req_end && !st->req.len && !st->qt.count &&
								     !st->replay_len ? NULL : &dp, st);
	if (st->usid < 0) {
		st->usid = 0;
		snprintf(st->r.reason, sizeof(st->r.reason), "cannot submit the request upstream: %s",
			 nghttp2_strerror(st->usid));
		wph2_local(st, 503, "upstream connect error");
		return;
	}
	st->up = up;
	up->n_streams++;
	wph2_up_mark(up);
}

static void wph2_retry_or_fail(struct wph2_stream *st, bool connect_failed, uint32_t code)
{
	bool refused = code == NGHTTP2_REFUSED_STREAM;

	if (st->resp_sent || !st->h)
		return;
	/* Istio's connect-failure and refused-stream: the app never saw it;
	 * a reset after it did only for an idempotent request (as HTTP/1.1) */
	if ((connect_failed || refused || wp_idempotent(st->r.method)) && st->retries < WPH2_RETRIES &&
	    !st->replay_over && st->started) {
		st->retries++;
		log_info("retry %u of %s %s to %s: %s", st->retries, st->r.method, st->r.path, st->h->c->authority,
			 connect_failed ? "its CONNECT failed" : refused ? "refused stream" : "upstream reset");
		st->replay_pos = 0;
		wph2_start_upstream(st);
		return;
	}
	snprintf(st->r.reason, sizeof(st->r.reason), "%s",
		 connect_failed ? "upstream connect error (CONNECT failed or the app closed)" :
				  "upstream reset the stream before a response");
	wph2_local(st, 503, "upstream connect error or disconnect/reset before headers");
}

static void wph2_up_flush(struct wph2_up *up)
{
	for (int i = 0; i < 64 && !up->dead; i++) {
		while (up->out_off < up->out_len) {
			ssize_t n = send(up->u->fd, up->out + up->out_off, up->out_len - up->out_off, MSG_NOSIGNAL);

			if (n < 0) {
				if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
					wph2_up_kill(up, "write failed");
				break;
			}
			up->out_off += (size_t)n;
		}
		if (up->dead || up->out_off < up->out_len)
			break;
		up->out_off = up->out_len = 0;
		if (!nghttp2_session_want_write(up->s))
			break;
		if (nghttp2_session_send(up->s)) {
			wph2_up_kill(up, "HTTP/2 send failed");
			break;
		}
		if (!up->out_len)
			break;
	}
	if (!up->dead && !nghttp2_session_want_read(up->s) && !nghttp2_session_want_write(up->s) &&
	    up->out_len == up->out_off)
		wph2_up_kill(up, "session ended (GOAWAY)");
	if (!up->dead)
		loop_mod(up->w->loop, up->u->fd, EPOLLIN | (up->out_len > up->out_off ? EPOLLOUT : 0));
}

static void wph2_up_io(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct wph2_up *up = ctx;
	uint8_t buf[16384];

	(void)l;
	(void)events;
	CHECK_OBJ(up, WPH2U_MAGIC);
	for (int i = 0; i < 16 && !up->dead; i++) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			wph2_up_kill(up, n ? "read failed" : "closed");
			break;
		}
		if (n < 0)
			break;
		up->got_bytes = true;
		if (nghttp2_session_mem_recv(up->s, buf, (size_t)n) < 0) {
			wph2_up_kill(up, "HTTP/2 protocol error from the app");
			break;
		}
	}
	up->dirty = true;
	wph2_run(up->w);
}

/* ---- the client's session ---- */

static ssize_t wph2_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
	struct wph2_conn *h = ud;

	(void)s;
	(void)flags;
	return h2m_append(h->c->dout, WP_BUF, &h->c->dout_len, data, len);
}

static ssize_t wph2_resp_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
			      nghttp2_data_source *src, void *ud)
{
	struct wph2_stream *st = nghttp2_session_get_stream_user_data(s, sid);
	size_t n;

	(void)src;
	(void)ud;
	if (!st)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	n = h2m_buf_take(&st->resp, buf, len);
	if (n) {
		if (st->up) {
			nghttp2_session_consume(st->up->s, st->usid, n);
			wph2_up_mark(st->up);
		}
		return (ssize_t)n;
	}
	if (st->resp_reset) {
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, sid, st->resp_reset);
		return NGHTTP2_ERR_DEFERRED;
	}
	if (!st->resp_end)
		return NGHTTP2_ERR_DEFERRED;
	h2m_body_end(s, sid, flags, st->resp_trailers ? &st->p : NULL);
	if (st->resp_trailers)
		h2m_hdrs_clear(&st->p);
	st->resp_trailers = false;
	return 0;
}

static int wph2_on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct wph2_conn *h = ud;
	struct wph2_stream *st;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (h->n_streams >= WP_MAX_STREAMS || h->closing || !(st = calloc(1, sizeof(*st)))) {
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
		return 0;
	}
	st->h = h;
	st->sid = f->hd.stream_id;
	st->r.start_ms = wp_now_ms();
	st->next = h->streams;
	if (st->next)
		st->next->pprev = &st->next;
	st->pprev = &h->streams;
	h->streams = st;
	h->n_streams++;
	nghttp2_session_set_stream_user_data(s, st->sid, st);
	return 0;
}

static int wph2_on_header(nghttp2_session *s, const nghttp2_frame *f, nghttp2_rcbuf *n, nghttp2_rcbuf *v,
			  uint8_t flags, void *ud)
{
	struct wph2_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);

	(void)flags;
	(void)ud;
	if (st && f->hd.type == NGHTTP2_HEADERS)
		h2m_hdrs_add(f->headers.cat == NGHTTP2_HCAT_REQUEST ? &st->q : &st->qt, n, v);
	return 0;
}

static void wph2_timeout(struct loop *l, void *ctx)
{
	struct wph2_stream *st = ctx;
	struct wp *w = st->h->c->w;

	(void)l;
	st->timer = NULL;
	st->r.flag = "UT";
	if (st->up)
		nghttp2_submit_rst_stream(st->up->s, NGHTTP2_FLAG_NONE, st->usid, NGHTTP2_CANCEL);
	wph2_up_unlink(st);
	if (!st->resp_sent) {
		snprintf(st->r.reason, sizeof(st->r.reason), "upstream request timeout (%u ms, HTTPRoute %s)",
			 st->r.timeout_ms, st->r.route);
		wph2_local(st, 504, "upstream request timeout");
	} else if (!st->resp_end) {
		snprintf(st->r.reason, sizeof(st->r.reason), "upstream request timeout (%u ms) mid-response",
			 st->r.timeout_ms);
		nghttp2_submit_rst_stream(st->h->s, NGHTTP2_FLAG_NONE, st->sid, NGHTTP2_CANCEL);
	}
	wph2_mark(st->h);
	wph2_run(w);
}

/* A request's head is complete: decide it, route it, send it on. */
static void wph2_request(struct wph2_stream *st)
{
	struct wp_conn *c = st->h->c;
	const char *m, *p, *a, *ct, *q;
	size_t mn = 0, pn = 0, an = 0, ctn = 0, qn;
	char host[256];
	const struct mesh_service *bsvc;
	const struct mesh_service_port *bsp;

	st->started = true;
	c->w->requests++;
	m = h2m_hdrs_get(&st->q, ":method", &mn);
	p = h2m_hdrs_get(&st->q, ":path", &pn);
	a = h2m_hdrs_get(&st->q, ":authority", &an);
	if (!a)
		a = h2m_hdrs_get(&st->q, "host", &an);
	ct = h2m_hdrs_get(&st->q, "content-type", &ctn);
	st->grpc = ct && ctn >= 16 && !strncasecmp(ct, "application/grpc", 16);
	st->r.proto = st->grpc ? "grpc" : "http";
	snprintf(st->r.method, sizeof(st->r.method), "%.*s", (int)(m ? mn : 0), m ? m : "");
	q = p ? memchr(p, '?', pn) : NULL;
	qn = q ? pn - (size_t)(q - p) - 1 : 0;
	if (p)
		snprintf(st->r.path, sizeof(st->r.path), "%.*s", (int)(q ? (size_t)(q - p) : pn), p);
	if (st->q.over) {
		snprintf(st->r.reason, sizeof(st->r.reason), "request head over %u fields or %u bytes", WPH2_FIELDS,
			 WPH2_HEADER_LIST);
		wph2_local(st, 431, "request header fields too large");
		return;
	}
	if (!m || !p || !strcmp(st->r.method, "CONNECT") || mn >= sizeof(st->r.method)) {
		snprintf(st->r.reason, sizeof(st->r.reason), "%s", "no :method or :path, or CONNECT (not proxied)");
		wph2_local(st, 400, "bad request");
		return;
	}
	if ((q ? (size_t)(q - p) : pn) >= sizeof(st->r.path)) {
		snprintf(st->r.reason, sizeof(st->r.reason), "path over %zu bytes", sizeof(st->r.path) - 1);
		wph2_local(st, 414, "URI too long");
		return;
	}
	if (!c->m) { /* the fuzz target's connection: nothing upstream */
		snprintf(st->r.reason, sizeof(st->r.reason), "no model");
		wph2_local(st, 503, "no model");
		return;
	}
	if (!wp_refresh(c)) {
		snprintf(st->r.reason, sizeof(st->r.reason), "no longer a destination of this waypoint");
		wph2_local(st, 404, "no longer a destination of this waypoint");
		st->h->closing = true;
		nghttp2_submit_goaway(st->h->s, NGHTTP2_FLAG_NONE, st->sid, NGHTTP2_NO_ERROR, NULL, 0);
		return;
	}
	st->m = wmodel_ref(c->m);
	if (an >= sizeof(host))
		an = sizeof(host) - 1;
	memcpy(host, a ? a : "", an);
	host[an] = '\0';
	bsvc = c->svc;
	bsp = c->sp;
	if (!wp_authorize(c, &st->r, host, h2m_req_header, &st->q)) {
		c->w->denied++;
		wph2_local(st, 403, "RBAC: access denied");
		return;
	}
	if (!wp_route(c, &st->r, p, q ? (size_t)(q - p) : pn, q ? q + 1 : NULL, qn, h2m_req_header, &st->q, &bsvc,
		      &bsp)) {
		unsigned s = st->r.status;

		wph2_local(st, s, s == 404 ? "no route matched" : s == 503 ? "route configuration refused" :
								   "route has no usable backend");
		return;
	}
	st->bsvc = bsvc;
	st->bsp = bsp;
	if (st->r.timeout_ms)
		st->timer = loop_timer_add(c->w->loop, st->r.timeout_ms, wph2_timeout, st);
	wph2_start_upstream(st);
}

static int wph2_on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct wph2_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;

	(void)ud;
	if (!st)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS) {
		st->r.req_bytes += f->hd.length + 9;
		if (end)
			st->req_end = true;
		if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
			wph2_request(st);
		} else if (st->qt.over) {
			snprintf(st->r.reason, sizeof(st->r.reason), "request trailers too large");
			if (st->up)
				nghttp2_submit_rst_stream(st->up->s, NGHTTP2_FLAG_NONE, st->usid, NGHTTP2_CANCEL);
			wph2_up_unlink(st);
			if (!st->resp_sent)
				wph2_local(st, 431, "request trailers too large");
			else
				nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->sid, NGHTTP2_CANCEL);
		}
	} else if (f->hd.type == NGHTTP2_DATA && end) {
		st->req_end = true;
	}
	if (st->up) {
		nghttp2_session_resume_data(st->up->s, st->usid);
		wph2_up_mark(st->up);
	}
	return 0;
}

static int wph2_on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t len, void *ud)
{
	struct wph2_stream *st = nghttp2_session_get_stream_user_data(s, sid);

	(void)flags;
	(void)ud;
	if (!st || st->discard) {
		nghttp2_session_consume(s, sid, len);
		return 0;
	}
	st->r.req_bytes += len;
	if (h2m_buf_put(&st->req, data, len) < len)
		return NGHTTP2_ERR_CALLBACK_FAILURE; /* past the window we gave, or out of memory */
	if (st->up) {
		nghttp2_session_resume_data(st->up->s, st->usid);
		wph2_up_mark(st->up);
	}
	return 0;
}

/* The client's stream ended (answered, or reset by either side): its one
 * access-log line; the upstream stream, if still open, is reset. */
static int wph2_on_close(nghttp2_session *s, int32_t sid, uint32_t code, void *ud)
{
	struct wph2_stream *st = nghttp2_session_get_stream_user_data(s, sid);
	struct wph2_conn *h = ud;

	if (!st)
		return 0;
	nghttp2_session_set_stream_user_data(s, sid, NULL);
	if (st->up) {
		nghttp2_submit_rst_stream(st->up->s, NGHTTP2_FLAG_NONE, st->usid, code ? code : NGHTTP2_CANCEL);
		wph2_up_unlink(st);
	}
	if (code && !st->r.flag) {
		snprintf(st->r.reason, sizeof(st->r.reason), "stream reset (%s)", nghttp2_http2_strerror(code));
		st->r.flag = "DR";
	}
	if (st->req.len) /* what the client sent that never went on */
		nghttp2_session_consume_connection(s, st->req.len);
	if (st->started)
		wp_log_request(h->c, &st->r, "http");
	wph2_timer_stop(st);
	h->n_streams--;
	st->h = NULL;
	wph2_stream_free(st);
	return 0;
}

int wph2_start(struct wp_conn *c)
{
	nghttp2_session_callbacks *cbs = NULL;
	nghttp2_option *opt = NULL;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, WP_MAX_STREAMS },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, WPH2_WIN },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, WPH2_HEADER_LIST },
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
	};
	struct wph2_conn *h = calloc(1, sizeof(*h));
	int rv = -ENOMEM;

	if (!h || nghttp2_session_callbacks_new(&cbs) || nghttp2_option_new(&opt))
		goto out;
	h->magic = WPH2_MAGIC;
	h->c = c;
	nghttp2_session_callbacks_set_send_callback(cbs, wph2_send);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, wph2_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback2(cbs, wph2_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, wph2_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, wph2_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, wph2_on_close);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_no_closed_streams(opt, 1);
	nghttp2_option_set_max_outbound_ack(opt, 100);
	if (nghttp2_session_server_new2(&h->s, cbs, h, opt))
		goto out;
	if (nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])))
		goto out;
	c->h2 = h;
	c->st = S_H2;
	h->next = c->w->h2conns;
	if (h->next)
		h->next->pprev = &h->next;
	h->pprev = &c->w->h2conns;
	c->w->h2conns = h;
	rv = 0;
out:
	nghttp2_session_callbacks_del(cbs);
	nghttp2_option_del(opt);
	if (rv && h) {
		nghttp2_session_del(h->s);
		free(h);
	}
	return rv;
}

void wph2_conn_free(struct wp_conn *c)
{
	struct wph2_conn *h = c->h2;

	if (!h)
		return;
	CHECK_OBJ(h, WPH2_MAGIC);
	while (h->streams) {
		struct wph2_stream *st = h->streams;

		if (st->up)
			nghttp2_submit_rst_stream(st->up->s, NGHTTP2_FLAG_NONE, st->usid, NGHTTP2_CANCEL);
		if (st->started) {
			if (!st->r.reason[0])
				snprintf(st->r.reason, sizeof(st->r.reason), "client connection closed");
			st->r.flag = st->r.flag ? st->r.flag : "DC";
			wp_log_request(c, &st->r, "http");
		}
		wph2_timer_stop(st);
		st->h = NULL;
		wph2_stream_free(st);
	}
	if (h->pprev) {
		*h->pprev = h->next;
		if (h->next)
			h->next->pprev = h->pprev;
	}
	nghttp2_session_del(h->s);
	h->magic = 0;
	free(h);
	c->h2 = NULL;
}

/* wph2_feed_local's output */
static uint8_t *wph2_cap;
static size_t wph2_cap_len, wph2_cap_max;

/* Sends what c's session has, within c->dout; false when c is to close. */
static bool wph2_flush(struct wph2_conn *h)
{
	struct wp_conn *c = h->c;

	if (!c->dout) /* idle, its buffers freed: nothing to send */
		return nghttp2_session_want_read(h->s) || nghttp2_session_want_write(h->s);
	for (int i = 0; i < 64; i++) {
		while (c->dfd >= 0 && c->dout_off < c->dout_len) {
			ssize_t n = send(c->dfd, c->dout + c->dout_off, c->dout_len - c->dout_off, MSG_NOSIGNAL);

			if (n < 0) {
				if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
					return false;
				break;
			}
			c->dout_off += (size_t)n;
		}
		if (c->dfd < 0) { /* wph2_feed_local: kept as far as they fit */
			size_t n = c->dout_len - c->dout_off;

			if (n > wph2_cap_max - wph2_cap_len)
				n = wph2_cap_max - wph2_cap_len;
			if (n)
				memcpy(wph2_cap + wph2_cap_len, c->dout + c->dout_off, n);
			wph2_cap_len += n;
			c->dout_off = c->dout_len;
		}
		if (c->dout_off < c->dout_len)
			break;
		c->dout_off = c->dout_len = 0;
		if (!nghttp2_session_want_write(h->s))
			break;
		if (nghttp2_session_send(h->s))
			return false;
		if (!c->dout_len)
			break;
	}
	return nghttp2_session_want_read(h->s) || nghttp2_session_want_write(h->s) || c->dout_len;
}

/* Sends what every marked session has; frees what ended. */
static void wph2_run(struct wp *w)
{
	for (int round = 0; round < 8; round++) {
		bool again = false;

		for (struct wph2_up *up = w->h2ups, *nx; up; up = nx) {
			nx = up->next;
			if (up->dirty) {
				up->dirty = false;
				if (!up->dead)
					wph2_up_flush(up);
				again = true;
			}
		}
		for (struct wph2_conn *h = w->h2conns, *nx; h; h = nx) {
			struct wp_conn *c = h->c;

			nx = h->next;
			if (!h->dirty)
				continue;
			h->dirty = false;
			again = true;
			if (!wph2_flush(h) || c->d_eof) { /* the client is gone: its streams are cancelled */
				wp_conn_close(c);
				continue;
			}
			if (c->dfd >= 0)
				loop_mod(w->loop, c->dfd, (c->d_eof ? 0 : EPOLLIN) | (c->dout_len ? EPOLLOUT : 0));
			if (c->dfd >= 0 && c->din && !h->n_streams && !c->din_len && !c->dout_len &&
			    !nghttp2_session_want_write(h->s)) {
				/* idle: the stream's buffers go until its next bytes (wp_pump) */
				free(c->din);
				c->din = c->uin = c->dout = c->uout = NULL;
			}
		}
		if (!again)
			break;
	}
	for (struct wph2_up *up = w->h2ups, *nx; up; up = nx) {
		nx = up->next;
		if (up->dead) {
			wph2_up_free(up);
		} else if (!up->n_streams && !up->idle) {
			if (w->h2_idle >= WP_IDLE_MAX) {
				wph2_up_free(up);
				continue;
			}
			up->idle = loop_timer_add(w->loop, WP_IDLE_MS, wph2_up_idle_expire, up);
			up->idle_counted = true;
			w->h2_idle++;
		}
	}
}

void wph2_pump(struct wp_conn *c)
{
	struct wph2_conn *h = c->h2;
	struct wp *w = c->w;

	CHECK_OBJ(h, WPH2_MAGIC);
	for (int i = 0; i < 16; i++) {
		if (c->din_len) {
			ssize_t n = nghttp2_session_mem_recv(h->s, (const uint8_t *)c->din, c->din_len);

			c->din_len = 0;
			if (n < 0) {
				log_info("HTTP/2 connection of %s to %s closed: %s", c->peer, c->authority,
					 nghttp2_strerror((int)n));
				nghttp2_session_terminate_session(h->s, NGHTTP2_PROTOCOL_ERROR);
				h->closing = true;
			}
		}
		if (c->d_eof || c->dfd < 0)
			break;
		{
			ssize_t n = read(c->dfd, c->din, WP_BUF);

			if (n == 0) {
				c->d_eof = true;
			} else if (n < 0) {
				if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
					c->d_eof = true;
				break;
			} else {
				c->din_len = (size_t)n;
			}
		}
	}
	if (c->d_eof)
		h->closing = true;
	h->dirty = true;
	wph2_run(w);
}

void wph2_shutdown(struct wp *w)
{
	while (w->h2ups) {
		w->h2ups->dead = true;
		wph2_up_free(w->h2ups);
	}
}

int wph2_feed_local(const uint8_t *data, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
	static struct wp w;
	struct wp_conn *c = calloc(1, sizeof(*c));
	int ret = 0;

	wph2_cap = out;
	wph2_cap_max = out ? cap : 0;
	wph2_cap_len = 0;
	if (out_len)
		*out_len = 0;
	if (!c)
		return 0;
	if (!w.access)
		w.access = fopen("/dev/null", "w"); /* NULL: stdout */
	c->w = &w;
	c->dfd = c->ufd = -1;
	c->din = malloc(4 * WP_BUF);
	if (!c->din || wph2_start(c) < 0) {
		free(c->din);
		free(c);
		return 0;
	}
	c->dout = c->din + 2 * WP_BUF;
	while (len) {
		size_t n = len < WP_BUF ? len : WP_BUF;

		memcpy(c->din, data, n);
		c->din_len = n;
		data += n;
		len -= n;
		if (nghttp2_session_mem_recv(c->h2->s, (const uint8_t *)c->din, n) < 0) {
			ret = -1;
			break;
		}
		if (!wph2_flush(c->h2)) {
			ret = -1;
			break;
		}
	}
	wph2_conn_free(c);
	free(c->din);
	free(c);
	if (out_len)
		*out_len = wph2_cap_len;
	wph2_cap = NULL;
	return ret;
}
