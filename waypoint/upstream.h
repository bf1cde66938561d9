/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The waypoint's upstream HBONE streams, and upstream keep-alive.
 *
 * wp_up_open() gives a request a stream to an endpoint's 15008 (the
 * waypoint's identity, the endpoint's expected, :authority podIP:port) on
 * the waypoint's pooled HBONE connections: a parked one to the same
 * authority and identity if one is still quiet, else a new one. The caller
 * reads and writes u->fd (one end of a socketpair, non-blocking), watched
 * on the loop with the caller's callback.
 *
 * After a complete keep-alive response the caller parks the stream
 * (wp_up_park): at most WP_IDLE_MAX in all, each for at most WP_IDLE_MS,
 * released at once if its peer sends or closes; a parked stream is checked
 * again (MSG_PEEK) before reuse.
 *
 * Ownership: a stream belongs to the request that opened or took it until
 * it parks or releases it (wp_up_release: closes u->fd, the HBONE stream
 * then ends); parked, to the idle list. The struct lives until both we
 * released it and its HBONE done callback ran. Single-threaded (the
 * waypoint's loop).
 */
#ifndef WARREN_WAYPOINT_UPSTREAM_H
#define WARREN_WAYPOINT_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "tunnel/ca.h"
#include "tunnel/hbone.h"
#include "tunnel/loop.h"

#define WP_IDLE_MAX 128
#define WP_IDLE_MS  60000
#define WPU_KEY     (SPIFFE_ID_MAX + 80)

struct wp_stats;
struct wp_up;

/* The waypoint's upstream side: what streams are opened with (borrowed,
 * set before the first wp_up_open), and the idle list. */
struct wp_ups {
	struct loop *loop;
	struct hbone_pool *pool;
	SSL_CTX *ctx;             /* the client context: our identity */
	const char *id;           /* our SPIFFE ID */
	struct wp_stats *stats;   /* may be NULL */
	struct wp_up *idle;       /* parked, most recent first */
	unsigned n_idle;
	uint64_t n_new, n_reused;
};

struct wp_up {
	unsigned magic;
	struct wp_ups *ups;
	int fd;                      /* ours; -1 once released */
	bool done, released;
	int status;                  /* the CONNECT's answer (from done); 0: none */
	char key[WPU_KEY];           /* "podIP:port identity" */
	struct wp_up *next, **pprev; /* w->idle, when parked */
	struct loop_timer *timer;    /* parked: its expiry */
};

/* Where a request goes: the endpoint's HBONE address (port 15008), its
 * :authority, the identity it must present, the client for Forwarded. */
struct wp_up_dest {
	const struct sockaddr *hbone;
	socklen_t hbone_len;
	const char *authority, *expect;
	const struct sockaddr *client;
	bool fresh;                 /* a new stream, never a parked one (HTTP/2 upstream sessions) */
};

/*
 * A stream to d, watched with cb(ctx) for EPOLLIN. *reused says whether it
 * was a parked one. NULL with why on failure (-errno in *err: -ECONNREFUSED
 * while the dial to that address is in backoff, ...).
 */
struct wp_up *wp_up_open(struct wp_ups *ups, const struct wp_up_dest *d, loop_fd_cb cb, void *ctx, bool *reused,
			 int *err, char *why, size_t whylen);
/* Parks u (the response ended cleanly); false when it cannot be parked,
 * and then u is released. */
bool wp_up_park(struct wp_up *u);
void wp_up_release(struct wp_up *u);
/* Did u's CONNECT fail (a status other than 2xx, or none: the dial or the
 * handshake failed)? Known once its done callback ran. */
bool wp_up_connect_failed(const struct wp_up *u);
/* Releases every parked stream (shutdown). */
void wp_up_drain(struct wp_ups *ups);

#endif
