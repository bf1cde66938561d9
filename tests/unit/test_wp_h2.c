/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the waypoint's HTTP/2 server side (waypoint/h2.c) against
 * a real nghttp2 client session (and its pure pieces, waypoint/h2msg.h): what the client's session sends is fed
 * to a waypoint connection without a model (every request is answered by
 * the waypoint itself), and the waypoint's answer is read back by the
 * client's session. Checks the SETTINGS (100 streams, 16 KiB header lists,
 * 16 KiB windows), a local answer (503, and its gRPC form: trailers-only,
 * grpc-status 14), 431 for a header list over the limit, 400 for CONNECT,
 * 414 for a path over 255 bytes, and GOAWAY PROTOCOL_ERROR for DATA on
 * stream 0.
 */
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/t.h"
#include "waypoint/h2.h"
#include "waypoint/proto.h"
#include "waypoint/conn.h"

#define TH2_MAX 300

struct th2 {
	uint8_t in[1 << 20], out[1 << 18];
	size_t in_len, out_len;
	unsigned status[TH2_MAX * 2 + 2];
	uint32_t rst[TH2_MAX * 2 + 2];
	char grpc[TH2_MAX * 2 + 2][8];
	uint32_t set_streams, set_hlist, set_win;
	int goaway; /* error code, -1 none */
};

static struct th2 th2;

static ssize_t th2_send(nghttp2_session *s, const uint8_t *d, size_t n, int f, void *ud)
{
	(void)s, (void)f, (void)ud;
	if (n > sizeof(th2.in) - th2.in_len)
		return NGHTTP2_ERR_WOULDBLOCK;
	memcpy(th2.in + th2.in_len, d, n);
	th2.in_len += n;
	return (ssize_t)n;
}

static int th2_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *n, size_t nl, const uint8_t *v,
		      size_t vl, uint8_t fl, void *ud)
{
	int32_t id = f->hd.stream_id;

	(void)s, (void)fl, (void)ud;
	if (id <= 0 || id >= TH2_MAX * 2 + 2)
		return 0;
	if (nl == 7 && !memcmp(n, ":status", 7))
		th2.status[id] = (unsigned)atoi((const char *)v);
	if (nl == 11 && !memcmp(n, "grpc-status", 11) && vl < 8)
		memcpy(th2.grpc[id], v, vl);
	return 0;
}

static int th2_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	(void)s, (void)ud;
	if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK))
		for (size_t i = 0; i < f->settings.niv; i++) {
			if (f->settings.iv[i].settings_id == NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)
				th2.set_streams = f->settings.iv[i].value;
			if (f->settings.iv[i].settings_id == NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE)
				th2.set_hlist = f->settings.iv[i].value;
			if (f->settings.iv[i].settings_id == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE)
				th2.set_win = f->settings.iv[i].value;
		}
	if (f->hd.type == NGHTTP2_RST_STREAM && f->hd.stream_id < TH2_MAX * 2 + 2)
		th2.rst[f->hd.stream_id] = f->rst_stream.error_code;
	if (f->hd.type == NGHTTP2_GOAWAY)
		th2.goaway = (int)f->goaway.error_code;
	return 0;
}

/* A client session whose output starts with the preface. */
static nghttp2_session *th2_client(void)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_session *s = NULL;

	memset(&th2, 0, sizeof(th2));
	th2.goaway = -1;
	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_send_callback(cbs, th2_send);
	nghttp2_session_callbacks_set_on_header_callback(cbs, th2_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, th2_frame);
	nghttp2_session_client_new(&s, cbs, NULL);
	nghttp2_session_callbacks_del(cbs);
	nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0);
	return s;
}

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }

static int32_t th2_get(nghttp2_session *s, const char *method, const char *path, const char *ct, bool end)
{
	nghttp2_nv nv[] = { NV(":method", method), NV(":path", path), NV(":scheme", "http"),
			    NV(":authority", "10.96.0.1"), NV("content-type", ct ? ct : "text/plain") };

	if (end)
		return nghttp2_submit_request(s, NULL, nv, 5, NULL, NULL);
	return nghttp2_submit_headers(s, NGHTTP2_FLAG_NONE, -1, NULL, nv, 5, NULL);
}

/* Sends what s has to the waypoint, reads the answer back. */
static int th2_exchange(nghttp2_session *s, const uint8_t *extra, size_t extra_len)
{
	int ret;

	nghttp2_session_send(s);
	if (extra) {
		memcpy(th2.in + th2.in_len, extra, extra_len);
		th2.in_len += extra_len;
	}
	ret = wph2_feed_local(th2.in, th2.in_len, th2.out, sizeof(th2.out), &th2.out_len);
	nghttp2_session_mem_recv(s, th2.out, th2.out_len);
	return ret;
}

static void test_settings_and_local_answer(void)
{
	nghttp2_session *s = th2_client();
	int32_t a = th2_get(s, "GET", "/x?q=1", NULL, true);
	int32_t g = th2_get(s, "POST", "/pkg.Svc/Call", "application/grpc+proto", true);

	T_ASSERT_INT(th2_exchange(s, NULL, 0), 0);
	T_ASSERT_INT(th2.set_streams, 100);
	T_ASSERT_INT(th2.set_hlist, WPH2_HEADER_LIST);
	T_ASSERT_INT(th2.set_win, WPH2_WIN);
	T_ASSERT_INT(th2.status[a], 503);
	T_ASSERT_INT(th2.status[g], 200); /* gRPC: trailers-only, the status in grpc-status */
	T_ASSERT_STR(th2.grpc[g], "14");
	T_ASSERT_INT(th2.goaway, -1);
	nghttp2_session_del(s);
}

static void test_refusals(void)
{
	nghttp2_session *s = th2_client();
	static char big[WPH2_HEADER_LIST + 100];
	nghttp2_nv nv[] = { NV(":method", "GET"), NV(":path", "/"), NV(":scheme", "http"), NV(":authority", "a"),
			    NV("x-big", big) };
	nghttp2_nv cn[] = { NV(":method", "CONNECT"), NV(":authority", "10.0.0.1:443") };
	char longpath[400];
	int32_t b, c, l;

	memset(big, 'x', sizeof(big) - 1);
	nv[4].valuelen = sizeof(big) - 1;
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	b = nghttp2_submit_request(s, NULL, nv, 5, NULL, NULL);
	c = nghttp2_submit_request(s, NULL, cn, 2, NULL, NULL);
	l = th2_get(s, "GET", longpath, NULL, true);
	T_ASSERT_INT(th2_exchange(s, NULL, 0), 0);
	T_ASSERT_INT(th2.status[b], 431);
	T_ASSERT_INT(th2.status[c], 400);
	T_ASSERT_INT(th2.status[l], 414);
	nghttp2_session_del(s);
}

static void test_bad_frame_goaway(void)
{
	nghttp2_session *s = th2_client();
	static const uint8_t data0[] = { 0, 0, 2, NGHTTP2_DATA, 0, 0, 0, 0, 0, 'x', 'x' };
	int32_t a = th2_get(s, "GET", "/before", NULL, true);

	(void)a;
	T_ASSERT_INT(th2_exchange(s, data0, sizeof(data0)), -1);
	T_ASSERT_INT(th2.goaway, NGHTTP2_PROTOCOL_ERROR);
	nghttp2_session_del(s);
}

/* waypoint/h2msg.h's pure pieces: gRPC's status for the waypoint's own
 * answers (Envoy's mapping), and a body buffer's bound. */
static void test_msg_pieces(void)
{
	static const unsigned map[][2] = { { 403, 7 }, { 404, 12 }, { 503, 14 }, { 504, 14 },
					   { 502, 14 }, { 400, 13 }, { 401, 16 }, { 500, 2 } };
	static uint8_t big[70000], back[70000];
	struct h2m_buf b = { 0 };

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		T_ASSERT_INT(h2m_grpc_of(map[i][0]), map[i][1]);
	T_ASSERT_INT(h2m_buf_put(&b, big, WPH2_WIN), WPH2_WIN);
	/* past the window: at most RFC 9113's initial window in all */
	T_ASSERT_INT(h2m_buf_put(&b, big, sizeof(big)), NGHTTP2_INITIAL_WINDOW_SIZE - WPH2_WIN);
	T_ASSERT_INT(h2m_buf_put(&b, big, 1), 0);
	T_ASSERT_INT(h2m_buf_take(&b, back, 100), 100);
	T_ASSERT_INT(h2m_buf_put(&b, big, 1000), 100);
	T_ASSERT_INT(h2m_buf_take(&b, back, sizeof(back)), NGHTTP2_INITIAL_WINDOW_SIZE);
	T_ASSERT_INT(b.len, 0);
	free(b.p);
}

T_MAIN(T_CASE(test_msg_pieces), T_CASE(test_settings_and_local_answer), T_CASE(test_refusals),
       T_CASE(test_bad_frame_goaway))
