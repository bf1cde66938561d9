/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HBONE transport: HTTP/2 CONNECT streams
 * over mutual TLS 1.3, one TCP connection per struct hbone_conn, driven by
 * the tunnel loop. nghttp2 is used sans-I/O: decrypted bytes (gathered over
 * several TLS records) go into nghttp2_session_mem_recv(); output leaves
 * through the send callbacks into a bounded per-connection buffer (allocated
 * while the connection has streams) that gathers frames and is flushed with
 * SSL_write in full 16 KiB records (NGHTTP2_ERR_WOULDBLOCK when full,
 * resumed on writability).
 *
 * Each CONNECT stream relays to one plain TCP (or any stream) socket:
 *  - socket -> peer has no buffer of ours: the kernel's receive queue is the
 *    buffer. When nghttp2 wants DATA, FIONREAD says how much is there and
 *    the payload is read(2) straight into the TLS output buffer behind the
 *    frame header (NGHTTP2_DATA_FLAG_NO_COPY). While the stream window is
 *    closed nothing is read, so the app's sender is stopped by TCP.
 *  - peer -> socket: DATA is sent to the socket straight from the decrypted
 *    buffer; only what the socket does not take now goes into the "down"
 *    ring, which grows on demand up to the HTTP/2 stream window (we
 *    advertise exactly what we can hold, and only return window with
 *    nghttp2_session_consume once bytes reached the socket, so an app that
 *    does not read stops the remote sender) and is released when it drains
 *    (an idle stream holds no buffer).
 * Half-close: socket EOF -> END_STREAM after the buffered bytes; END_STREAM
 * from the peer -> shutdown(SHUT_WR) once the down ring is drained. RST or
 * a socket error resets the other side (RST_STREAM CANCEL / SO_LINGER 0).
 *
 * Ownership and lifetime:
 *  - A connection is owned by the library from creation until its done
 *    callback has run; it frees itself after that. The SSL_CTX is only
 *    used to create the SSL (SSL_new up-refs it), the socket fd is owned
 *    (closed on every path, also when the constructor fails).
 *  - A stream owns its socket fd (given to hbone_stream_open /
 *    hbone_stream_accept, closed on every path). Its done callback runs
 *    exactly once; the struct hbone_stream pointer is invalid after it
 *    returns.
 *  - Callbacks run on the loop thread, possibly from inside library calls
 *    (e.g. a failed hbone_stream_open does not call done; a stream that
 *    fails later does). A callback may open streams and accept/reject other
 *    streams; it must not free the loop.
 *  - A connection, its streams and a pool belong to the loop they were
 *    made on: only that loop's thread, or another holding that loop's
 *    guard (the main thread with the workers isolated, tunnel/workers.h),
 *    touches them. Different loops may run on
 *    different threads.
 * Errors: 0 or -errno. Human-readable reasons (TLS failures from
 * tunnel/tls.h, HTTP status, socket errors) travel in the stats structs.
 * Sockets, the TLS one included (tunnel/tls.h), are written with
 * MSG_NOSIGNAL.
 */
#ifndef WARREN_HBONE_H
#define WARREN_HBONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "tunnel/ca.h"
#include "tunnel/hbone_wire.h"
#include "tunnel/loop.h"

#define HBONE_CONN_MAGIC   0x48424e43u /* "HBNC" */
#define HBONE_STREAM_MAGIC 0x48424e53u /* "HBNS" */
#define HBONE_POOL_MAGIC   0x48424e50u /* "HBNP" */

struct hbone_conn;
struct hbone_stream;
struct hbone_pool;

struct hbone_opts {
	uint32_t stream_window;    /* SETTINGS_INITIAL_WINDOW_SIZE = down ring size; 4 MiB */
	uint32_t conn_window;      /* connection receive window; 16 MiB */
	uint32_t max_frame;        /* SETTINGS_MAX_FRAME_SIZE; 1 MiB */
	uint32_t max_streams;      /* server: advertised MAX_CONCURRENT_STREAMS (200);
				    * client pool: streams per connection (100) */
	uint32_t max_header_list;  /* SETTINGS_MAX_HEADER_LIST_SIZE; 16 KiB client, 64 KiB server */
	uint32_t sock_buf;         /* SO_SNDBUF and SO_RCVBUF of the connection's TCP socket
				    * (the kernel doubles it), each set only where
				    * net.core.{w,r}mem_max allow the whole size; 4 MiB;
				    * 0 = the kernel's autotuning */
	uint32_t send_buf;         /* unused (socket -> peer is read from the socket when
				    * HTTP/2 can send); must be non-zero; 256 KiB */
	uint32_t ping_interval_ms; /* keepalive PING; 10 s; 0 = off */
	uint32_t ping_timeout_ms;  /* unanswered PING drops the connection; 20 s */
	uint32_t idle_ms;          /* client: close a connection without streams after; 5 min; 0 = never */
	uint32_t connect_timeout_ms; /* TCP connect + TLS handshake; 10 s */
};

/* Fills Istio's HBONE defaults for a client (server = false) or server. */
void hbone_opts_default(struct hbone_opts *o, bool server);

struct hbone_stream_stats {
	uint64_t tx;          /* socket -> peer, bytes handed to HTTP/2 as DATA */
	uint64_t rx;          /* peer -> socket, bytes written to the socket */
	int status;           /* HTTP status sent (server) or received (client); 0 none */
	bool ok;              /* relayed and closed cleanly in both directions */
	uint32_t h2_error;    /* RST_STREAM code received or sent, 0 if none */
	char reason[256];     /* "closed", "peer answered 401", TLS failure text, ... */
};

/* s is valid only during the call. */
typedef void (*hbone_stream_done_cb)(void *ctx, struct hbone_stream *s,
				     const struct hbone_stream_stats *st);
/* Runs once when a connection ends (after its streams' done callbacks). */
typedef void (*hbone_conn_done_cb)(void *ctx, struct hbone_conn *c, const char *reason);

/* ------------------------------------------------------------- client */

struct hbone_connect_req {
	const char *authority;   /* required: "10.0.0.2:8080", "[fd00::2]:80" or "svc.ns:80" */
	const char *forwarded;   /* optional full value (hbone_format_forwarded) */
	const char *baggage;     /* optional */
	const char *traceparent; /* optional; NULL = a random W3C traceparent */
};

/*
 * Starts an HBONE client connection: connect(fd, dst) (fd: a non-blocking
 * stream socket made by the caller, e.g. in the pod netns with SO_MARK;
 * owned from now on), TLS client handshake with ctx requiring the server to
 * present one of expect[0..n_expect) as a URI SAN, then HTTP/2 with the
 * client settings of opts (NULL = defaults). Streams may be opened at once;
 * they are sent after the handshake. done_cb (may be NULL) gets the reason
 * the connection ended.
 * 0, -EINVAL (no expected identity, bad arguments), -ENOMEM, -EIO, or the
 * connect() -errno. fd is closed on failure.
 */
int hbone_client_connect(struct loop *l, SSL_CTX *ctx, int fd, const struct sockaddr *dst,
			 socklen_t dstlen, const char *const *expect, size_t n_expect,
			 const struct hbone_opts *opts, hbone_conn_done_cb done_cb, void *ctx_cb,
			 struct hbone_conn **out);

/*
 * Opens a CONNECT stream on a client connection and relays app_fd (a
 * connected non-blocking stream socket, owned from now on) over it once the
 * 200 arrives. A non-200 answer ends the stream (app_fd reset, stats.status
 * = the status, no byte flows). done_cb runs exactly once unless this
 * returns an error. out (may be NULL) receives the handle.
 * 0, -EINVAL (no authority), -ENOTCONN (connection closing), -ENOMEM,
 * -EPROTO (nghttp2 refused). app_fd is closed on failure.
 */
int hbone_stream_open(struct hbone_conn *c, const struct hbone_connect_req *req, int app_fd,
		      hbone_stream_done_cb done_cb, void *ctx, struct hbone_stream **out);

/* ------------------------------------------------------------- server */

/* struct hbone_request: tunnel/hbone_wire.h */

/*
 * Called once per valid CONNECT request; the strings are valid during the
 * call only. It must decide, now or later, with hbone_stream_accept() or
 * hbone_stream_reject(). If the stream ends before that (peer reset,
 * connection lost) on_stream_done tells, and the handle is gone.
 */
typedef void (*hbone_request_cb)(void *ctx, struct hbone_stream *s,
				 const struct hbone_request *req);

struct hbone_server_cbs {
	hbone_request_cb on_request;       /* required */
	hbone_stream_done_cb on_stream_done; /* optional: every stream that reached on_request */
	hbone_conn_done_cb on_conn_done;   /* optional */
	void *ctx;
};

/*
 * Serves HBONE on an accepted non-blocking socket (owned from now on):
 * TLS server handshake with ctx (client certificate required and verified
 * by tunnel/tls.c), HTTP/2 with the server settings of opts (NULL =
 * defaults). Requests whose method is not CONNECT, or whose :authority does
 * not parse, are answered 400 without calling on_request; nghttp2 rejects
 * malformed CONNECT pseudo-headers itself. cbs is copied.
 * 0, -EINVAL, -ENOMEM, -EIO. fd is closed on failure.
 */
int hbone_server_accept(struct loop *l, SSL_CTX *ctx, int fd, const struct hbone_opts *opts,
			const struct hbone_server_cbs *cbs, struct hbone_conn **out);

/* Answers 200 and relays the stream to fd (connected, non-blocking; owned
 * from now on, closed on every path). 0, -EALREADY (already decided),
 * -ENOTCONN (the connection is closing), -EPROTO. */
int hbone_stream_accept(struct hbone_stream *s, int fd);
/* Answers status (400, 401, 503, ...) and ends the stream. 0, -EINVAL
 * (status < 300 or > 599), -EALREADY. The done callback runs before this
 * returns (when the stream reached on_request). */
int hbone_stream_reject(struct hbone_stream *s, int status);

/* ---------------------------------------------------------- both sides */

void hbone_stream_set_user(struct hbone_stream *s, void *user);
void *hbone_stream_user(const struct hbone_stream *s);
/* Live counters (reason is "" until the stream ends). */
void hbone_stream_get_stats(const struct hbone_stream *s, struct hbone_stream_stats *st);
/* Bytes buffered for the stream right now (its peer -> socket ring; the
 * socket -> peer direction waits in the socket, not here). */
size_t hbone_stream_buffered(const struct hbone_stream *s);
struct hbone_conn *hbone_stream_conn(const struct hbone_stream *s);

enum hbone_conn_state {
	HBONE_CONNECTING = 0, /* TCP connect in progress */
	HBONE_HANDSHAKE,      /* TLS */
	HBONE_OPEN,
	HBONE_CLOSING,        /* GOAWAY sent or received: no new streams */
	HBONE_DEAD,
};

struct hbone_conn_info {
	enum hbone_conn_state state;
	bool server;
	char peer_id[SPIFFE_ID_MAX];  /* "" before the handshake */
	unsigned streams;             /* live streams */
	uint64_t streams_total;
	uint64_t bytes_in, bytes_out; /* TLS plaintext (HTTP/2 framing) */
	uint64_t pings_sent, pings_acked;
	size_t buffered;              /* output buffer + every stream's rings */
	uint64_t age_ms, idle_ms;     /* idle_ms: 0 while streams are live */
};

void hbone_conn_get_info(const struct hbone_conn *c, struct hbone_conn_info *info);
const char *hbone_conn_state_name(enum hbone_conn_state s);
/* Ends one stream now (socket reset, RST_STREAM CANCEL); its done callback
 * runs before this returns, with reason. Works on both sides, also on a
 * server stream still waiting for accept/reject. */
void hbone_stream_abort(struct hbone_stream *s, const char *reason);

/* Observer of every TLS handshake (client and server, not the memory
 * transport): ok, or the failure reason (tls_error text). One per process
 * (the tunnel's metrics); NULL clears it. */
typedef void (*hbone_handshake_cb)(void *ctx, bool server, bool ok, const char *reason);
void hbone_set_handshake_observer(hbone_handshake_cb cb, void *ctx);

/* Graceful: GOAWAY, no new streams, close when the live streams ended. */
void hbone_conn_shutdown(struct hbone_conn *c);
/* Server side, for a draining tunnel: a GOAWAY shutdown notice (last
 * stream 2^31-1), so the peer opens no new stream here but streams it
 * already sent are served; HBONE_GOAWAY_GRACE_MS later the final GOAWAY
 * names the last stream taken. The connection closes when its streams
 * have ended. A connection still in its handshake gets the notice as soon
 * as it is open. No-op on a client connection. */
#define HBONE_GOAWAY_GRACE_MS 1000
void hbone_conn_goaway(struct hbone_conn *c);
/* Hard: every stream is reset, callbacks run, the connection is freed
 * (when called from one of its own callbacks, on return to the loop). */
void hbone_conn_abort(struct hbone_conn *c, const char *reason);

/* ----------------------------------------------------------------- pool */

/* Makes a non-blocking stream socket for dst (not connected): the tunnel
 * creates it in the source pod's netns with SO_MARK. fd or -errno. */
typedef int (*hbone_socket_fn)(void *ctx, const struct sockaddr *dst, socklen_t dstlen);

struct hbone_pool_target {
	const char *src_id;          /* our SPIFFE identity (part of the key) */
	SSL_CTX *ctx;                /* client context for src_id */
	const struct sockaddr *dst;  /* <pod IP>:15008 (part of the key) */
	socklen_t dstlen;
	const char *const *expect;   /* expected server identities (part of the key) */
	size_t n_expect;
	hbone_socket_fn mksock;
	void *mksock_ctx;
};

/* opts NULL = client defaults; max_streams and idle_ms apply per
 * connection. 0 or -ENOMEM. */
int hbone_pool_new(struct loop *l, const struct hbone_opts *opts, struct hbone_pool **out);
/* Aborts every pooled connection (their streams' done callbacks run). */
void hbone_pool_free(struct hbone_pool *p);

/*
 * hbone_stream_open() on a pooled connection for the key (src_id, dst,
 * expect): an existing one with a free stream slot (fewer than
 * min(max_streams, the server's MAX_CONCURRENT_STREAMS) live streams), or a
 * new one. Same contract as hbone_stream_open (app_fd owned, closed on
 * failure); also -errno from mksock/connect.
 *
 * Dial backoff, per destination address: when a new pooled connection
 * fails before its TLS handshake completes (a refused or timed-out TCP
 * connect, as when the destination's tunnel is down, or a failed
 * handshake), the next dial to that address waits HBONE_BACKOFF_MIN_MS,
 * doubled per failure in a row up to HBONE_BACKOFF_MAX_MS; a completed
 * handshake resets it. Meanwhile a stream that would need a new connection
 * fails at once with -ECONNREFUSED, and hbone_pool_backoff() says why.
 */
#define HBONE_BACKOFF_MIN_MS 100
#define HBONE_BACKOFF_MAX_MS 5000
int hbone_pool_open(struct hbone_pool *p, const struct hbone_pool_target *t,
		    const struct hbone_connect_req *req, int app_fd, hbone_stream_done_cb done_cb,
		    void *ctx, struct hbone_stream **out);

/* 1 with why ("retry in N ms after K failed dials to ADDR; the last: ...")
 * while dst is backed off, else 0. */
int hbone_pool_backoff(struct hbone_pool *p, const struct sockaddr *dst, char *why, size_t len);

/* Stops giving new streams to the pooled connections of src_id (NULL: all):
 * their live streams go on, each closes when its last stream ends, and the
 * next hbone_pool_open() dials a new one (e.g. with a renewed certificate). */
void hbone_pool_drain(struct hbone_pool *p, const char *src_id);

struct hbone_pool_conn_info {
	char src_id[SPIFFE_ID_MAX];
	char dst[64];                 /* "10.0.0.2:15008" */
	struct hbone_conn_info conn;
};
/* Fills up to max entries; returns the number of pooled connections. */
size_t hbone_pool_stats(const struct hbone_pool *p, struct hbone_pool_conn_info *out, size_t max);

/* ------------------------------------------------ memory transport (tests) */

/*
 * A server connection without socket or TLS, for fuzzing and tests: the
 * caller feeds what would be the decrypted byte stream; output is counted
 * and dropped. peer_id is what on_request will see. Free it with
 * hbone_conn_abort(). 0, -ENOMEM.
 */
int hbone_server_new_mem(struct loop *l, const struct hbone_opts *opts,
			 const struct hbone_server_cbs *cbs, const char *peer_id,
			 struct hbone_conn **out);
/* The client side of the same: streams are opened with hbone_stream_open()
 * and the fed bytes are the server's answers. 0, -ENOMEM. */
int hbone_client_new_mem(struct loop *l, const struct hbone_opts *opts, const char *peer_id,
			 struct hbone_conn **out);
/* 0, or -EPROTO once the HTTP/2 session failed (the connection is dead but
 * still needs hbone_conn_abort). */
int hbone_conn_mem_feed(struct hbone_conn *c, const uint8_t *data, size_t len);

#endif
