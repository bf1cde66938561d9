/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server side of HBONE (entry points in hbone.h, "server"): CONNECT
 * requests are checked (method, :authority) before on_request sees them;
 * a rejected one is answered with its status and END_STREAM, then
 * RST_STREAM(NO_ERROR) once the answer left; a draining connection sends a
 * shutdown notice, then the final GOAWAY after HBONE_GOAWAY_GRACE_MS.
 *
 * Internal hooks the connection (hbone_conn.c) calls on its loop's thread,
 * inside hbone_conn_enter(): the two nghttp2 callbacks below, and
 * hbone_server_request() / hbone_server_goaway_start().
 */
#ifndef WARREN_HBONE_SERVER_H
#define WARREN_HBONE_SERVER_H

#include <nghttp2/nghttp2.h>

struct hbone_conn;
struct hbone_stream;

/* nghttp2 on_begin_headers: a request opens a stream record. */
int hbone_server_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
				  void *user_data);
/* nghttp2 on_frame_send: a rejection's answer left, reset the stream. */
int hbone_server_on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
			       void *user_data);
/* A complete request header block arrived on s. */
void hbone_server_request(struct hbone_conn *c, struct hbone_stream *s);
/* c: an open server connection: start draining it. */
void hbone_server_goaway_start(struct hbone_conn *c);

#endif
