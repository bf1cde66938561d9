/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hbonebench: HBONE (tunnel/hbone*.c) as a TCP forwarder, to compare its
 * throughput with a direct connection and with other mTLS proxies on
 * loopback (e.g. iperf3 through it).
 *
 *   hbonebench gen DIR                  in-memory mesh CA saved to DIR
 *   hbonebench server DIR HPORT TPORT   HBONE on 127.0.0.1:HPORT; each
 *                                       CONNECT is relayed to 127.0.0.1:TPORT
 *   hbonebench client DIR LPORT HPORT   plain TCP on 127.0.0.1:LPORT; each
 *                                       connection becomes a CONNECT stream
 *                                       (pooled) to 127.0.0.1:HPORT
 *
 * Each side issues its own workload certificate from DIR's CA
 * (client: ns/bench/sa/client, server: ns/bench/sa/server). Runs until
 * SIGINT/SIGTERM. One line per finished stream on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/log.h"
#include "tunnel/ca.h"
#include "tunnel/hbone.h"
#include "tunnel/loop.h"
#include "tunnel/tls.h"

#define TD "cluster.local"
#define SERVER_ID "spiffe://cluster.local/ns/bench/sa/server"
#define CLIENT_ID "spiffe://cluster.local/ns/bench/sa/client"

static SSL_CTX *ctx;
static struct hbone_pool *pool;
static struct sockaddr_in hbone_addr, target_addr;
static int sig_fd = -1;

static struct sockaddr_in lo(const char *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)atoi(port));
	return a;
}

static void on_done(void *c, struct hbone_stream *s, const struct hbone_stream_stats *st)
{
	fprintf(stderr, "hbonebench: stream done: %s, status %d, %llu bytes sent, %llu received\n",
		st->reason, st->status, (unsigned long long)st->tx, (unsigned long long)st->rx);
}

static void on_signal(struct loop *l, int fd, uint32_t events, void *c)
{
	loop_stop(l);
}

static int listen_on(struct sockaddr_in a)
{
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 512)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void on_request(void *c, struct hbone_stream *s, const struct hbone_request *req)
{
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	/* Loopback connect completes at once; blocking keeps this simple. */
	if (fd < 0 || connect(fd, (struct sockaddr *)&target_addr, sizeof(target_addr))) {
		if (fd >= 0)
			close(fd);
		hbone_stream_reject(s, 503);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, O_NONBLOCK);
	hbone_stream_accept(s, fd);
}

static void server_accept(struct loop *l, int lfd, uint32_t events, void *c)
{
	struct hbone_server_cbs cbs = { .on_request = on_request, .on_stream_done = on_done };
	int one = 1, fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	hbone_server_accept(l, ctx, fd, NULL, &cbs, NULL);
}

static int mksock(void *c, const struct sockaddr *dst, socklen_t len)
{
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void client_accept(struct loop *l, int lfd, uint32_t events, void *c)
{
	const char *ids[] = { SERVER_ID };
	struct hbone_pool_target t = {
		.src_id = CLIENT_ID, .ctx = ctx, .dst = (struct sockaddr *)&hbone_addr,
		.dstlen = sizeof(hbone_addr), .expect = ids, .n_expect = 1, .mksock = mksock,
	};
	struct hbone_connect_req req = { .authority = "127.0.0.1:5201" };
	int one = 1, fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	int ret;

	if (fd < 0)
		return;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ret = hbone_pool_open(pool, &t, &req, fd, on_done, NULL, NULL);
	if (ret)
		fprintf(stderr, "hbonebench: cannot open a stream: %s\n", strerror(-ret));
}

int main(int argc, char **argv)
{
	char err[256] = "";
	struct mesh_ca *ca = NULL;
	struct ca_leaf *leaf = NULL;
	struct loop *l = NULL;
	sigset_t ss;
	int lfd = -1, ret = 1;
	bool server;

	signal(SIGPIPE, SIG_IGN);
	wlog_init("hbonebench", NULL, WLOG_WARN);
	if (argc == 3 && !strcmp(argv[1], "gen")) {
		if (ca_create_root("warren-bench", "bench root", 30, &ca) || ca_save(ca, argv[2])) {
			fprintf(stderr, "hbonebench: cannot write a CA to %s\n", argv[2]);
			return 1;
		}
		ca_free(ca);
		return 0;
	}
	if (argc != 5 || (strcmp(argv[1], "server") && strcmp(argv[1], "client"))) {
		fprintf(stderr, "usage: hbonebench gen DIR | server DIR HPORT TPORT | "
				"client DIR LPORT HPORT\n");
		return 2;
	}
	server = !strcmp(argv[1], "server");
	if (ca_load_dir(argv[2], &ca, err, sizeof(err)) ||
	    ca_issue(ca, TD, "bench", server ? "server" : "client", 0, &leaf, err, sizeof(err)) ||
	    tls_ctx_new(server ? TLS_SERVER : TLS_CLIENT, leaf, ca_root0(ca), &ctx, err,
			sizeof(err))) {
		fprintf(stderr, "hbonebench: %s\n", err);
		goto out;
	}
	l = loop_new();
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	sig_fd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
	if (!l || sig_fd < 0 || loop_add(l, sig_fd, EPOLLIN, on_signal, NULL))
		goto out;
	if (server) {
		target_addr = lo(argv[4]);
		lfd = listen_on(lo(argv[3]));
	} else {
		hbone_addr = lo(argv[4]);
		lfd = listen_on(lo(argv[3]));
		if (hbone_pool_new(l, NULL, &pool))
			goto out;
	}
	if (lfd < 0 || loop_add(l, lfd, EPOLLIN, server ? server_accept : client_accept, NULL)) {
		fprintf(stderr, "hbonebench: cannot listen on 127.0.0.1:%s\n", argv[3]);
		goto out;
	}
	ret = loop_run(l) ? 1 : 0;
out:
	hbone_pool_free(pool);
	if (lfd >= 0)
		close(lfd);
	if (sig_fd >= 0)
		close(sig_fd);
	loop_free(l);
	SSL_CTX_free(ctx);
	ca_leaf_free(leaf);
	ca_free(ca);
	return ret;
}
