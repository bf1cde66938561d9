/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the HTTP server's connection state machine
 * (tunnel/http.c), beyond the head parser that fuzz_http covers: the
 * input is what one client sends on a real Unix stream connection to a
 * real server on the loop, in two writes with a loop round between them
 * (heads split anywhere, pipelined requests, bodies, garbage after a
 * response), then the client half-closes and reads every answer until
 * the server closes. The handler answers by path: "/big" with 256 KiB (the
 * write path under backpressure), "/empty" with no body, others 200 or
 * 404. The server must close every connection once the client is gone;
 * memory errors are caught by ASan/UBSan.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf/log.h"
#include "tunnel/http.h"
#include "tunnel/loop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct loop *l;
static struct http_server *srv;
static struct sockaddr_un addr;
static socklen_t addrlen;

struct client {
	int fd;
	const uint8_t *rest;
	size_t rest_len;
	bool eof;
	struct loop_timer *t_write, *t_bound; /* NULL once fired */
};

static void handler(void *ctx, const struct http_request *req, struct http_response *resp)
{
	size_t n = 0;

	(void)ctx;
	if (req->path_len == 4 && !memcmp(req->path, "/big", 4))
		n = 256 * 1024;
	else if (!(req->path_len == 6 && !memcmp(req->path, "/empty", 6)))
		n = 16;
	resp->status = req->path_len == 1 || n == 256 * 1024 ? 200 : 404;
	resp->content_type = "text/plain";
	resp->body = malloc(n ? n : 1);
	if (resp->body)
		memset(resp->body, 'x', n);
	resp->body_len = n;
}

static void client_cb(struct loop *lp, int fd, uint32_t events, void *ctx)
{
	struct client *c = ctx;
	char buf[65536];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		c->eof = true;
		loop_stop(lp);
	}
}

static void second_write(struct loop *lp, void *ctx)
{
	struct client *c = ctx;

	(void)lp;
	c->t_write = NULL;
	if (c->rest_len)
		(void)!send(c->fd, c->rest, c->rest_len, MSG_NOSIGNAL | MSG_DONTWAIT);
	shutdown(c->fd, SHUT_WR);
}

static void give_up(struct loop *lp, void *ctx)
{
	struct client *c = ctx;

	c->t_bound = NULL;
	loop_stop(lp);
}

static int setup(void)
{
	int lfd;

	signal(SIGPIPE, SIG_IGN);
	wlog_init("fuzz_http_server", NULL, WLOG_ERROR);
	l = loop_new();
	if (!l)
		return -1;
	addr.sun_family = AF_UNIX;
	/* abstract: nothing left behind on disk */
	snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "warren-fuzz-http-%d", (int)getpid());
	addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(addr.sun_path + 1));
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, addrlen) || listen(lfd, 64))
		return -1;
	return http_server_new(l, lfd, "fuzz", handler, NULL, &srv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct client c = { .fd = -1 };
	size_t first = size ? data[0] % (size + 1) : 0;

	if (!srv && setup() < 0)
		abort();
	c.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c.fd < 0)
		return 0;
	if (connect(c.fd, (struct sockaddr *)&addr, addrlen) < 0) {
		close(c.fd);
		return 0;
	}
	(void)!send(c.fd, data, first, MSG_NOSIGNAL | MSG_DONTWAIT);
	c.rest = data + first;
	c.rest_len = size - first;
	if (loop_add(l, c.fd, EPOLLIN, client_cb, &c) < 0) {
		close(c.fd);
		return 0;
	}
	c.t_write = loop_timer_add(l, 0, second_write, &c);
	/* a generous bound: the server has the client's EOF at once */
	c.t_bound = loop_timer_add(l, 5000, give_up, &c);
	loop_run(l);
	if (!c.eof)
		abort(); /* the server kept a connection whose client had gone */
	if (c.t_write)
		loop_timer_cancel(l, c.t_write);
	if (c.t_bound)
		loop_timer_cancel(l, c.t_bound);
	loop_del(l, c.fd);
	close(c.fd);
	return 0;
}
