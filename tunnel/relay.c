/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The plain TCP relay behind tunnel/relay.h. Each direction has two ways
 * to move bytes, chosen by what the last read saw:
 *   - bulk (splice): src -> pipe -> dst with splice(), payload never enters
 *     user space; the pipe (1 MiB, RELAY_PIPE_SIZE) is the direction's buffer;
 *   - small (copy): recv() into a stack buffer, send() to dst at once. For
 *     request/response traffic this is the same number of syscalls as
 *     splice but no pipe page handling, and a short read ends the round
 *     without the extra read that would only return EAGAIN (epoll is
 *     level-triggered: unread data reports again). What dst refuses is
 *     written into the pipe and drained from there like spliced data.
 *     The read interest carries EPOLLRDHUP: when the peer's FIN is already
 *     there, a short read goes on to read the EOF in the same event, so
 *     the FIN is forwarded without another round of the loop.
 * A direction starts in copy mode, switches to splice when a read fills
 * the copy buffer or dst refuses data (the pipe is then topped up from
 * src, so a blocked direction always buffers a full pipe), and back when
 * a splice brings less than RELAY_SMALL.
 * A direction reads only while its pipe is empty: data left in the pipe
 * means dst refused it, so we stop reading src (no EPOLLIN) and wait for
 * dst to be writable (EPOLLOUT). The kernel socket buffers plus one pipe
 * bound the memory of a direction; nothing is allocated after
 * relay_start() but the pipe, on the first bulk read or refused write.
 * Each socket has one registration carrying the interest of both
 * directions that touch it, changed only when the interest changes (a
 * pipe filling or draining), not per event. relay_end() is the only
 * teardown path.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/objcheck.h"
#include "tunnel/relay.h"

#define RELAY_MAGIC 0x72656c61u /* "rela" */
/* More than a pipe holds: the pipe's capacity is the real bound. */
#define RELAY_CHUNK (4 * 1024 * 1024)
/* Fill/drain rounds per event before yielding to other connections. */
#define RELAY_BURST 16
/* Copy-mode buffer (on the stack); a read that fills it means bulk. Below
 * a pipe's capacity, so a refused remainder always fits the empty pipe. */
#define RELAY_COPY (16 * 1024)
/* A splice bringing less than this goes back to copy mode. */
#define RELAY_SMALL (4 * 1024)

struct relay_dir {           /* bytes flowing fd[d] -> fd[!d] */
	int pipe[2];         /* -1 until the first data */
	size_t pending;      /* bytes sitting in the pipe */
	uint64_t bytes;      /* bytes written to fd[!d] */
	bool bulk;           /* splice mode, else copy mode */
	bool eof;            /* read EOF from fd[d] */
	bool shut;           /* EOF forwarded: shutdown(fd[!d], SHUT_WR) */
};

struct relay {
	unsigned magic;
	struct loop *loop;
	int fd[2];           /* a, b */
	struct relay_dir dir[2];
	uint32_t et[2];      /* EPOLLET once fd[i] hung up, see relay_event() */
	relay_done_cb cb;
	void *ctx;
	int error;
	const char *reason;
};

static struct relay *relay_cast(void *p)
{
	struct relay *r = p;

	CHECK_OBJ(r, RELAY_MAGIC);
	return r;
}

/* Records why the relay failed (the first error wins); returns -err. */
static int relay_fail(struct relay *r, int side, int err)
{
	static const char *const reset[2] = { "reset by a", "reset by b" };
	static const char *const other[2] = { "error on a", "error on b" };

	if (!r->error) {
		r->error = err;
		r->reason = (err == ECONNRESET || err == EPIPE) ? reset[side] : other[side];
	}
	return -err;
}

int sock_rst_on_exit(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	return setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0 ? -errno : 0;
}

void sock_fin_on_close(int fd)
{
	struct linger lg = { .l_onoff = 0, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* The one teardown: RST both on error so no peer mistakes it for a clean
 * close (app-facing sockets already reset on close, relay.h), a FIN
 * otherwise; then close everything, report, and free. */
static void relay_end(struct relay *r)
{
	struct relay_stats st;

	for (int i = 0; i < 2; i++) {
		if (r->error)
			sock_rst_on_exit(r->fd[i]);
		else
			sock_fin_on_close(r->fd[i]);
		loop_forget(r->loop, r->fd[i]);
		close(r->fd[i]);
		for (int j = 0; j < 2; j++)
			if (r->dir[i].pipe[j] >= 0)
				close(r->dir[i].pipe[j]);
	}
	relay_get_stats(r, &st);
	r->magic = 0;
	if (r->cb)
		r->cb(r->ctx, &st);
	free(r);
}

static int relay_pipe(struct relay *r, int d)
{
	struct relay_dir *h = &r->dir[d];

	if (h->pipe[0] >= 0)
		return 0;
	if (pipe2(h->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		return relay_fail(r, d, errno);
	/* RELAY_PIPE_SIZE (1 MiB, the kernel's pipe-max-size) instead of the
	 * 64 KiB default: 16x fewer splice pairs and larger segments, more
	 * throughput for less CPU per GB (docs/performance.md). A pipe holds page
	 * references, not copies, and only while dst is slower than src; the
	 * source socket's receive buffer (up to tcp_rmem's 6 MiB) already
	 * bounds a stalled direction far more loosely. If the kernel refuses
	 * the size, the default pipe still works. */
	(void)fcntl(h->pipe[1], F_SETPIPE_SZ, RELAY_PIPE_SIZE);
	return 0;
}

/* Copy mode, one read: recv into buf, send at once, park what dst refuses
 * in the (empty) pipe. Returns the bytes read (0 at EOF), or -EAGAIN when
 * src is dry, or another -errno (recorded by relay_fail). */
static ssize_t relay_copy(struct relay *r, int d, char *buf)
{
	struct relay_dir *h = &r->dir[d];
	int src = r->fd[d], dst = r->fd[!d];
	ssize_t n, w;

	n = recv(src, buf, RELAY_COPY, MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN ? -EAGAIN : relay_fail(r, d, errno);
	if (n == 0)
		return 0;
	w = send(dst, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w < 0) {
		if (errno != EAGAIN)
			return relay_fail(r, !d, errno);
		w = 0;
	}
	h->bytes += w;
	if (w < n) {
		ssize_t k;

		if (relay_pipe(r, d) < 0)
			return -r->error;
		/* An empty pipe holds at least 64 KiB > RELAY_COPY: this cannot be short. */
		k = write(h->pipe[1], buf + w, n - w);
		if (k != n - w)
			return relay_fail(r, d, k < 0 ? errno : EIO);
		h->pending = k;
		/* dst is slower than src: top the pipe up so a blocked
		 * direction buffers a full pipe, as in splice mode, and stay
		 * in splice mode until reads turn small again. */
		k = splice(src, NULL, h->pipe[1], NULL, RELAY_CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (k > 0)
			h->pending += k;
		else if (k == 0)
			h->eof = true;
		else if (errno != EAGAIN)
			return relay_fail(r, d, errno);
		h->bulk = true;
	}
	return n;
}

/* Moves what it can for direction d: drain the pipe to dst, and while
 * it is empty refill it from src (splice) or copy straight through.
 * bounded: level-triggered registration, so stop after RELAY_BURST rounds
 * or a short copy read (unless fin: src's FIN has arrived, so the next
 * read is its EOF); else read until EAGAIN (no further edge would bring
 * us back). 0 or -errno (recorded by relay_fail). */
static int relay_pump(struct relay *r, int d, bool bounded, bool fin)
{
	struct relay_dir *h = &r->dir[d];
	const unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
	int src = r->fd[d], dst = r->fd[!d];
	char buf[RELAY_COPY];

	for (int round = 0; !bounded || round < RELAY_BURST; round++) {
		ssize_t n;

		if (h->pending) {
			n = splice(h->pipe[0], NULL, dst, NULL, h->pending, flags);
			if (n < 0)
				return errno == EAGAIN ? 0 : relay_fail(r, !d, errno);
			h->pending -= n;
			h->bytes += n;
			if (h->pending)
				return 0; /* dst is full: wait for EPOLLOUT */
		}
		if (h->eof)
			break;
		if (!h->bulk) {
			n = relay_copy(r, d, buf);
			if (n == -EAGAIN)
				return 0;
			if (n < 0)
				return n;
			if (n == 0) {
				h->eof = true;
				continue;
			}
			if (n == RELAY_COPY)
				h->bulk = true;
			else if (bounded && !h->pending && !fin)
				return 0; /* short read: src is (very likely) dry */
			continue;
		}
		if (relay_pipe(r, d) < 0)
			return -r->error;
		/* An empty pipe cannot be full, so EAGAIN here means src is dry. */
		n = splice(src, NULL, h->pipe[1], NULL, RELAY_CHUNK, flags);
		if (n < 0)
			return errno == EAGAIN ? 0 : relay_fail(r, d, errno);
		if (n == 0)
			h->eof = true;
		else if (n < RELAY_SMALL)
			h->bulk = false;
		h->pending = n;
	}
	if (h->eof && !h->pending && !h->shut) {
		/* The last direction to end: relay_end()'s close() sends the
		 * FIN (a FIN, not a reset: the EOF of both sockets was read, so
		 * nothing is left unread), one shutdown() fewer per connection. */
		if (!r->dir[!d].shut && shutdown(dst, SHUT_WR) < 0 && errno != ENOTCONN)
			return relay_fail(r, !d, errno);
		h->shut = true;
	}
	return 0;
}

/* Interest follows state: read while the pipe is empty, want EPOLLOUT
 * while it is not. 0 or -errno (recorded by relay_fail). */
static int relay_update(struct relay *r)
{
	for (int i = 0; i < 2; i++) {
		const struct relay_dir *in = &r->dir[i], *out = &r->dir[!i];
		uint32_t ev = r->et[i];
		int ret;

		if (!in->eof && !in->pending)
			ev |= EPOLLIN | EPOLLRDHUP;
		if (out->pending)
			ev |= EPOLLOUT;
		ret = loop_mod(r->loop, r->fd[i], ev);
		if (ret < 0)
			return relay_fail(r, i, -ret);
	}
	return 0;
}

static int relay_sock_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	return err ? err : EIO;
}

static void relay_event(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct relay *r = relay_cast(ctx);
	int i = fd == r->fd[1];

	assert(fd == r->fd[i]);
	if (events & EPOLLERR) {
		relay_fail(r, i, relay_sock_error(fd));
		goto out;
	}
	/* Read from fd (EPOLLIN), and flush what waits for it (EPOLLOUT). A
	 * hang-up is reported whatever the interest: let both try. */
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) &&
	    relay_pump(r, i, !r->et[i], events & (EPOLLRDHUP | EPOLLHUP)) < 0)
		goto out;
	if ((events & (EPOLLOUT | EPOLLHUP)) && relay_pump(r, !i, !r->et[!i], false) < 0)
		goto out;
	if (events & EPOLLHUP) {
		/* HUP means both halves of fd are shut. If we did not shut its
		 * write half ourselves, it is dead (RST, error already taken). */
		if (!r->dir[!i].shut) {
			relay_fail(r, i, ECONNRESET);
			goto out;
		}
		/* Only its queued input is left, and we read it whenever the
		 * pipe drains; edge-triggered stops a level-triggered HUP from
		 * spinning the loop meanwhile. Pumps from it are unbounded now
		 * since no further edge would bring us back. */
		r->et[i] = EPOLLET;
	}
out:
	if (r->error || (r->dir[0].shut && r->dir[1].shut) || relay_update(r) < 0)
		relay_end(r);
}

int relay_start(struct loop *l, int fd_a, int fd_b, relay_done_cb cb, void *ctx,
		struct relay **out)
{
	struct relay *r = NULL;
	int ret;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r) {
		ret = -ENOMEM;
		goto out;
	}
	*r = (struct relay){
		.magic = RELAY_MAGIC, .loop = l, .fd = { fd_a, fd_b }, .cb = cb, .ctx = ctx,
		.dir = { { .pipe = { -1, -1 } }, { .pipe = { -1, -1 } } },
		.reason = "closed",
	};
	/* Non-blocking and TCP_NODELAY are the callers' (relay.h): checking
	 * them here cost four syscalls per connection for nothing. A socket
	 * the caller still watches (its connect) is taken over in place. */
	for (int i = 0; i < 2; i++) {
		ret = loop_set(l, r->fd[i], EPOLLIN | EPOLLRDHUP, relay_event, r);
		if (ret < 0)
			goto out;
	}
	*out = r;
	return 0;
out:
	free(r);
	loop_forget(l, fd_a);
	loop_forget(l, fd_b);
	close(fd_a);
	close(fd_b);
	return ret;
}

void relay_abort(struct relay *r, const char *reason)
{
	relay_cast(r);
	r->error = ECONNABORTED;
	r->reason = reason ? reason : "aborted";
	relay_end(r);
}

void relay_get_stats(const struct relay *r, struct relay_stats *st)
{
	CHECK_OBJ(r, RELAY_MAGIC);
	*st = (struct relay_stats){
		.a_to_b = r->dir[0].bytes,
		.b_to_a = r->dir[1].bytes,
		.error = r->error,
		.reason = r->reason,
	};
}
