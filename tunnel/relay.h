/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Plain TCP relay between two connected, non-blocking stream sockets, on
 * the loop. Zero-copy with splice() through one pipe per direction (the
 * pipe is the bounded buffer: when it is full we stop reading that side,
 * which gives backpressure; pipes are created on first data). Half-close
 * is propagated: EOF from A, once A->B is drained, becomes shutdown(B,
 * SHUT_WR), and the relay ends when both directions are finished. An error
 * on either side resets both (SO_LINGER 0), so a peer never sees a clean
 * close that did not happen.
 *
 * Both fds must be non-blocking (a blocking one would stall the loop), and
 * TCP_NODELAY where the relay should forward what it got at once: the
 * tunnel's listeners and upstream sockets set both when they are made.
 *
 * Ownership: relay_start() takes both fds (closed on every path, including
 * its own failure), and their loop registrations if the caller still has
 * one (replaced in place). done_cb runs exactly once, after both fds are closed
 * and before the relay is freed; the relay handle is invalid after it.
 */
#ifndef WARREN_RELAY_H
#define WARREN_RELAY_H

#include <stdint.h>

#include "tunnel/loop.h"

struct relay;

/* What one direction holds at most in user-visible buffers: its pipe,
 * asked for at this size (the kernel may give the 64 KiB default). */
#define RELAY_PIPE_SIZE (1024 * 1024)

struct relay_stats {
	uint64_t a_to_b;     /* bytes written to B */
	uint64_t b_to_a;     /* bytes written to A */
	int error;           /* 0, or the errno that ended it */
	const char *reason;  /* static: "closed", "reset by a", "aborted", ... */
};

typedef void (*relay_done_cb)(void *ctx, const struct relay_stats *st);

/* 0 or -errno (fds closed, done_cb not called). */
int relay_start(struct loop *l, int fd_a, int fd_b, relay_done_cb cb, void *ctx,
		struct relay **out);
/* Tear down now (both sides reset); done_cb runs before this returns. */
void relay_abort(struct relay *r, const char *reason);
/* Live counters. */
void relay_get_stats(const struct relay *r, struct relay_stats *st);

/* App-facing sockets (accepted on 15001/15006, which inherit it from the
 * listener, and upstreams to an app) carry SO_LINGER {1, 0} for their
 * whole life: when the tunnel dies (kill -9, a crash) the kernel resets
 * them, so the app sees an abnormal end instead of a FIN that would make a
 * truncated response read as complete. A graceful end clears it just
 * before close(), which then sends the FIN (relay_end, the HBONE stream's
 * close). 0 or -errno. */
int sock_rst_on_exit(int fd);
void sock_fin_on_close(int fd);

#endif
