/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hboneconnect: one HBONE CONNECT with a chosen :authority, for tests of
 * what a tunnel answers (tunnel/hbone.h client, real TLS 1.3).
 *
 *   hboneconnect CADIR NS SA ADDR PORT AUTHORITY EXPECT_ID
 *
 * Issues a workload certificate for ns/NS/sa/SA from the mesh CA in CADIR
 * (as the tunnel's caDir), connects to ADDR:PORT expecting the server's
 * SPIFFE ID EXPECT_ID, sends CONNECT AUTHORITY and prints the answer's
 * HTTP status (0: none) and reason on stdout. The stream carries no
 * data (its app side is closed at once). Exit 0 when it got an answer, 1
 * otherwise. Gives up after 10 s.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/log.h"
#include "tunnel/ca.h"
#include "tunnel/hbone.h"
#include "tunnel/loop.h"
#include "tunnel/tls.h"

static int g_status = -1;
static char g_reason[256];

static void on_done(void *l, struct hbone_stream *s, const struct hbone_stream_stats *st)
{
	(void)s;
	g_status = st->status;
	snprintf(g_reason, sizeof(g_reason), "%s", st->reason);
	loop_stop(l);
}

static void on_timeout(struct loop *l, void *c)
{
	(void)c;
	loop_stop(l);
}

static int mksock(void *c, const struct sockaddr *dst, socklen_t len)
{
	int fd = socket(dst->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	(void)c;
	(void)len;
	return fd < 0 ? -errno : fd;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage dst = { 0 };
	struct hbone_pool *pool = NULL;
	struct ca_leaf *leaf = NULL;
	struct mesh_ca *ca = NULL;
	SSL_CTX *ctx = NULL;
	struct loop *l = NULL;
	char err[512] = "";
	int sp[2], ret = 1;

	if (argc != 8) {
		fprintf(stderr, "usage: hboneconnect CADIR NS SA ADDR PORT AUTHORITY EXPECT_ID\n");
		return 2;
	}
	wlog_init("hboneconnect", NULL, WLOG_WARN);
	if (inet_pton(AF_INET, argv[4], &((struct sockaddr_in *)&dst)->sin_addr) == 1) {
		dst.ss_family = AF_INET;
		((struct sockaddr_in *)&dst)->sin_port = htons((uint16_t)atoi(argv[5]));
	} else if (inet_pton(AF_INET6, argv[4], &((struct sockaddr_in6 *)&dst)->sin6_addr) == 1) {
		dst.ss_family = AF_INET6;
		((struct sockaddr_in6 *)&dst)->sin6_port = htons((uint16_t)atoi(argv[5]));
	} else {
		fprintf(stderr, "hboneconnect: bad address %s\n", argv[4]);
		return 2;
	}
	if (ca_load_dir(argv[1], &ca, err, sizeof(err)) ||
	    ca_issue(ca, "cluster.local", argv[2], argv[3], 0, &leaf, err, sizeof(err)) ||
	    tls_ctx_new(TLS_CLIENT, leaf, ca_root0(ca), &ctx, err, sizeof(err))) {
		fprintf(stderr, "hboneconnect: %s\n", err);
		goto out;
	}
	l = loop_new();
	if (!l || hbone_pool_new(l, NULL, &pool) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp))
		goto out;
	{
		const char *expect[] = { argv[7] };
		struct hbone_pool_target t = {
			.src_id = "client", .ctx = ctx, .dst = (struct sockaddr *)&dst,
			.dstlen = dst.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6),
			.expect = expect, .n_expect = 1, .mksock = mksock,
		};
		struct hbone_connect_req req = { .authority = argv[6] };

		if (hbone_pool_open(pool, &t, &req, sp[0], on_done, l, NULL) < 0) {
			fprintf(stderr, "hboneconnect: cannot open the stream\n");
			goto out;
		}
	}
	/* the "app" ends at once: an accepted stream then ends too, after
	 * its answer, so that every answer reaches on_done */
	close(sp[1]);
	sp[1] = -1;
	loop_timer_add(l, 10000, on_timeout, NULL);
	loop_run(l);
	if (g_status >= 0) {
		printf("%d %s\n", g_status, g_reason);
		ret = 0;
	} else {
		fprintf(stderr, "hboneconnect: no answer within 10 s\n");
	}
out:
	hbone_pool_free(pool);
	loop_free(l);
	SSL_CTX_free(ctx);
	ca_leaf_free(leaf);
	ca_free(ca);
	return ret;
}
