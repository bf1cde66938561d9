/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One HBONE CONNECT stream relayed to its socket (the byte path is in
 * hbone.h): the stream record, the socket side (epoll interest, the down
 * ring, half-close), nghttp2's DATA provider and DATA receiver, and the
 * stream entry points of hbone.h (open, abort, user data, stats).
 *
 * Internal to the HBONE modules. Threads and re-entrancy as in hbone.h and
 * hbone_conn.h: a stream is touched on its connection's loop only, inside
 * hbone_conn_enter()/hbone_conn_leave() of its connection.
 *
 * Lifetime: hbone_stream_new() links a stream into its connection (counted
 * live); hbone_stream_end() (or _fail()) runs the done callback once and
 * closes the socket; hbone_stream_free() unlinks and frees a stream that
 * is done and that nghttp2 no longer knows (h2_closed).
 */
#ifndef WARREN_HBONE_STREAM_H
#define WARREN_HBONE_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "tunnel/hbone.h"
#include "tunnel/hbone_ring.h"

enum hbone_stream_state {
	HBONE_ST_PENDING, /* client: waiting for the response; server: for a decision */
	HBONE_ST_RELAY,
	HBONE_ST_DONE,    /* done callback ran; waiting for nghttp2 to forget it */
};

struct hbone_stream {
	unsigned magic;
	struct hbone_stream *prev, *next;
	struct hbone_conn *c;
	int32_t id;              /* HTTP/2 stream id, 0 if none */
	enum hbone_stream_state st;
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
	bool drained;            /* a read of less than a record took all that was
				    queued: request/response traffic; until the next
				    event on fd, no FIONREAD (EPOLLIN, level-triggered,
				    says when more comes) */
	struct hbone_ring down;  /* peer -> socket: what the app did not take yet */
	struct hbone_stream_stats stats;
	hbone_stream_done_cb cb;
	void *cb_ctx;
	void *user;
	/* request (server) / response (client) headers */
	char *method, *authority, *forwarded, *baggage, *traceparent;
	int status;
};

struct hbone_stream *hbone_stream_new(struct hbone_conn *c);
void hbone_stream_free(struct hbone_stream *s);
void hbone_stream_set_reason(struct hbone_stream *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Ends the stream once: closes (reset=true: resets) the socket, resets the
 * HTTP/2 stream when it is still open and reset is asked, runs the done
 * callback. Frees the stream when nghttp2 already forgot it. The caller
 * must not touch s afterwards. */
void hbone_stream_end(struct hbone_stream *s, bool reset, uint32_t h2_error);
/* hbone_stream_end(s, true, h2_error) with a reason. */
void hbone_stream_fail(struct hbone_stream *s, uint32_t h2_error, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The data provider waits for input no more (input arrived, or the
 * response opened the stream). */
void hbone_stream_resume(struct hbone_stream *s);
/* Moves the relay state machine forward after any event. */
void hbone_stream_update(struct hbone_stream *s);
/* nghttp2 data provider read callback (source.ptr = the stream). */
ssize_t hbone_stream_data_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
				  size_t length, uint32_t *data_flags,
				  nghttp2_data_source *source, void *user_data);
/* nghttp2 on_data_chunk_recv callback (user_data = the connection). */
int hbone_stream_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
			       const uint8_t *data, size_t len, void *user_data);

#endif
