/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mintls client|server PEM CA THREADS LISTEN_IP:PORT=TARGET_IP:PORT...
 *
 * The benchmark's bound for the HBONE per-byte figures (tests/bench/run.sh,
 * section mtls): the least a pair of user-space TLS relays does on this
 * path. client: plain TCP in, TLS out; server: TLS in, plain TCP out. One
 * TLS connection per app connection, no HTTP/2, no policy, no logging, no
 * timers, no socket options but TCP_NODELAY (socket buffers autotuned).
 * TLS as the tunnels set it up: TLS 1.3 only, AES-128-GCM preferred
 * (AES-256-GCM and ChaCha20-Poly1305 accepted), the peer's chain verified
 * against CA on both sides, no tickets, read-ahead of one record. PEM holds
 * the leaf certificate and its key (the bench uses haproxy's: ECDSA P-256
 * from the mesh CA, like the tunnels' own).
 * THREADS workers, each with its own epoll and its own SO_REUSEPORT
 * listener per mapping; a connection stays on the worker that accepted it.
 * Per connection: two buffers of MINTLS_BUF bytes (environment, 16 KiB to
 * 16 MiB, default 256 KiB: the tunnels read the app in chunks of that
 * order; haproxy's buffers are 16 KiB), one per direction, both sockets
 * edge-triggered for in and out from the start (no epoll_ctl after the
 * connection is set up); a side is read again only after an edge for its
 * input: a short read, or a short record with nothing left in OpenSSL's
 * read-ahead buffer, means the socket is drained (no read just to hear
 * EAGAIN; a later arrival is a new edge). A read EOF is passed on as a half-close (TLS:
 * close_notify, then shutdown); the connection closes when both directions
 * have ended.
 * Prints "mintls: listening" once all listeners are bound and, at
 * SIGINT/SIGTERM, the connections relayed and failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MT_MAPS 8
#define MT_THREADS 16
#define MT_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define MT_READ_AHEAD (SSL3_RT_MAX_PLAIN_LENGTH + SSL3_RT_MAX_ENCRYPTED_OVERHEAD + SSL3_RT_HEADER_LENGTH)

struct mt_dir {
	char *buf;
	size_t off, len;
	bool eof;  /* the reading side ended */
	bool shut; /* passed on to the writing side */
};

struct mt_conn;
struct mt_side { /* epoll's data: one per socket */
	int kind;  /* 0: plain socket, 1: TLS socket, 2: listener (first field of all) */
	struct mt_conn *c;
};

struct mt_conn {
	int pfd, tfd; /* plain and TLS sockets */
	SSL *ssl;
	bool hs_done, dead;
	bool p_drained, t_drained; /* read to empty, no edge since */
	struct mt_side side[2];
	struct mt_dir up;   /* plain -> TLS */
	struct mt_dir down; /* TLS -> plain */
	struct mt_conn *next_dead;
};

struct mt_listener {
	int kind; /* 2 */
	int fd;
	struct sockaddr_in target;
};

struct mt_worker {
	pthread_t th;
	int ep;
	struct mt_listener lis[MT_MAPS];
	struct mt_conn *dead;
};

static bool mt_server;
static SSL_CTX *mt_ctx;
static int mt_nmaps;
static size_t mt_buf = 256 * 1024; /* per direction; MINTLS_BUF */
static atomic_ulong mt_done, mt_failed;

static void mt_end(struct mt_worker *w, struct mt_conn *c, bool error)
{
	if (c->dead)
		return;
	if (error) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(c->pfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		setsockopt(c->tfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(c->pfd);
	close(c->tfd);
	SSL_free(c->ssl);
	free(c->up.buf);
	free(c->down.buf);
	atomic_fetch_add(error ? &mt_failed : &mt_done, 1);
	c->dead = true;
	c->next_dead = w->dead;
	w->dead = c;
}

static bool mt_ssl_wait(SSL *ssl, int r)
{
	int e = SSL_get_error(ssl, r);

	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* Moves bytes both ways until nothing moves, or ends the connection. */
static void mt_run(struct mt_worker *w, struct mt_conn *c)
{
	if (!c->hs_done) {
		int r = SSL_do_handshake(c->ssl);

		if (r != 1) {
			if (!mt_ssl_wait(c->ssl, r))
				mt_end(w, c, true);
			return;
		}
		c->hs_done = true;
	}
	for (;;) {
		bool prog = false;
		ssize_t n;
		int r;

		/* plain -> TLS */
		if (!c->up.eof && !c->up.len && !c->p_drained) {
			n = read(c->pfd, c->up.buf, mt_buf);
			if (n > 0) {
				c->up.off = 0;
				c->up.len = n;
				c->p_drained = (size_t)n < mt_buf;
				prog = true;
			} else if (n == 0) {
				c->up.eof = prog = true;
			} else if (errno == EAGAIN) {
				c->p_drained = true;
			} else {
				goto fail;
			}
		}
		if (c->up.len) {
			ERR_clear_error();
			r = SSL_write(c->ssl, c->up.buf + c->up.off, c->up.len);
			if (r > 0) {
				c->up.off += r;
				c->up.len -= r;
				prog = true;
			} else if (!mt_ssl_wait(c->ssl, r)) {
				goto fail;
			}
		}
		if (c->up.eof && !c->up.len && !c->up.shut) {
			SSL_shutdown(c->ssl); /* close_notify; the peer tolerates its loss */
			shutdown(c->tfd, SHUT_WR);
			c->up.shut = prog = true;
		}
		/* TLS -> plain: records until the buffer cannot take one more */
		while (!c->down.eof && !c->down.off && !c->t_drained &&
		       mt_buf - c->down.len >= SSL3_RT_MAX_PLAIN_LENGTH) {
			ERR_clear_error();
			r = SSL_read(c->ssl, c->down.buf + c->down.len, mt_buf - c->down.len);
			if (r > 0) {
				c->down.len += r;
				prog = true;
				/* A short record and an empty read-ahead buffer:
				 * OpenSSL's read(2) came back short, the socket
				 * is empty (no read just to hear EAGAIN). */
				if (r < SSL3_RT_MAX_PLAIN_LENGTH && !SSL_has_pending(c->ssl))
					c->t_drained = true;
				continue;
			}
			switch (SSL_get_error(c->ssl, r)) {
			case SSL_ERROR_WANT_READ:
			case SSL_ERROR_WANT_WRITE:
				c->t_drained = true;
				break;
			case SSL_ERROR_ZERO_RETURN:
				c->down.eof = prog = true;
				break;
			default:
				goto fail;
			}
		}
		if (c->down.len) {
			n = write(c->pfd, c->down.buf + c->down.off, c->down.len);
			if (n > 0) {
				c->down.off += n;
				c->down.len -= n;
				if (!c->down.len)
					c->down.off = 0;
				prog = true;
			} else if (errno != EAGAIN) {
				goto fail;
			}
		}
		if (c->down.eof && !c->down.len && !c->down.shut) {
			shutdown(c->pfd, SHUT_WR);
			c->down.shut = prog = true;
		}
		if (c->up.shut && c->down.shut) {
			mt_end(w, c, false);
			return;
		}
		if (!prog)
			return;
	}
fail:
	mt_end(w, c, true);
}

static int mt_socket(void)
{
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void mt_accept(struct mt_worker *w, struct mt_listener *l)
{
	for (;;) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET };
		struct mt_conn *c;
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), up, one = 1;

		if (fd < 0)
			return;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		up = mt_socket();
		c = calloc(1, sizeof(*c));
		if (c) {
			c->up.buf = malloc(mt_buf);
			c->down.buf = malloc(mt_buf);
		}
		if (up < 0 || !c || !c->up.buf || !c->down.buf || !(c->ssl = SSL_new(mt_ctx))) {
			if (up >= 0)
				close(up);
			close(fd);
			if (c) {
				free(c->up.buf);
				free(c->down.buf);
			}
			free(c);
			atomic_fetch_add(&mt_failed, 1);
			continue;
		}
		c->pfd = mt_server ? up : fd;
		c->tfd = mt_server ? fd : up;
		if (mt_server)
			SSL_set_accept_state(c->ssl);
		else
			SSL_set_connect_state(c->ssl);
		if (!SSL_set_fd(c->ssl, c->tfd) ||
		    (connect(up, (struct sockaddr *)&l->target, sizeof(l->target)) < 0 && errno != EINPROGRESS)) {
			mt_end(w, c, true);
			continue;
		}
		c->side[0] = (struct mt_side){ 0, c };
		c->side[1] = (struct mt_side){ 1, c };
		ev.data.ptr = &c->side[0];
		if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->pfd, &ev) < 0 ||
		    (ev.data.ptr = &c->side[1], epoll_ctl(w->ep, EPOLL_CTL_ADD, c->tfd, &ev) < 0)) {
			mt_end(w, c, true);
			continue;
		}
		mt_run(w, c); /* the client's hello goes out once connected */
	}
}

static void *mt_worker_main(void *arg)
{
	struct mt_worker *w = arg;
	struct epoll_event evs[64];

	for (;;) {
		int n = epoll_wait(w->ep, evs, 64, -1);

		for (int k = 0; k < n; k++) {
			struct mt_side *s = evs[k].data.ptr;
			struct mt_conn *c = s->c;

			if (s->kind == 2) {
				mt_accept(w, (struct mt_listener *)s);
				continue;
			}
			if (c->dead)
				continue;
			/* new input (or its end) on this side: read it again */
			if (evs[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
				if (s->kind == 0)
					c->p_drained = false;
				else
					c->t_drained = false;
			}
			mt_run(w, c);
		}
		while (w->dead) {
			struct mt_conn *c = w->dead;

			w->dead = c->next_dead;
			free(c);
		}
	}
	return NULL;
}

static int mt_addr(const char *s, struct sockaddr_in *sa)
{
	char ip[64];
	const char *colon = strrchr(s, ':');

	if (!colon || (size_t)(colon - s) >= sizeof(ip))
		return -1;
	memcpy(ip, s, colon - s);
	ip[colon - s] = 0;
	*sa = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(atoi(colon + 1)) };
	return inet_pton(AF_INET, ip, &sa->sin_addr) == 1 && sa->sin_port ? 0 : -1;
}

static SSL_CTX *mt_ctx_new(const char *pem, const char *ca)
{
	SSL_CTX *ctx = SSL_CTX_new(mt_server ? TLS_server_method() : TLS_client_method());

	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, MT_SUITES) ||
	    SSL_CTX_use_certificate_chain_file(ctx, pem) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, pem, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		ERR_print_errors_fp(stderr);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF |
					 (mt_server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (mt_server)
		SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, MT_READ_AHEAD);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (mt_server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
	return ctx;
}

int main(int argc, char **argv)
{
	static struct mt_worker workers[MT_THREADS];
	struct sockaddr_in lis[MT_MAPS], tgt[MT_MAPS];
	int nthreads = argc > 4 ? atoi(argv[4]) : 0, sig;
	sigset_t set;

	mt_server = argc > 1 && !strcmp(argv[1], "server");
	mt_nmaps = argc - 5;
	if (argc < 6 || (!mt_server && strcmp(argv[1], "client")) || nthreads < 1 ||
	    nthreads > MT_THREADS || mt_nmaps > MT_MAPS) {
		fprintf(stderr, "usage: mintls client|server PEM CA THREADS LISTEN_IP:PORT=TARGET_IP:PORT...\n"
				"  (1 to %d threads, at most %d mappings)\n", MT_THREADS, MT_MAPS);
		return 2;
	}
	for (int m = 0; m < mt_nmaps; m++) {
		char *eq = strchr(argv[5 + m], '=');

		if (eq)
			*eq = 0;
		if (!eq || mt_addr(argv[5 + m], &lis[m]) < 0 || mt_addr(eq + 1, &tgt[m]) < 0) {
			fprintf(stderr, "mintls: bad mapping %s (want IPv4:PORT=IPv4:PORT)\n", argv[5 + m]);
			return 2;
		}
	}
	if (getenv("MINTLS_BUF")) {
		mt_buf = strtoul(getenv("MINTLS_BUF"), NULL, 10);
		if (mt_buf < SSL3_RT_MAX_PLAIN_LENGTH || mt_buf > 16 << 20) {
			fprintf(stderr, "mintls: MINTLS_BUF must be 16384 to 16777216 bytes\n");
			return 2;
		}
	}
	mt_ctx = mt_ctx_new(argv[2], argv[3]);
	if (!mt_ctx)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* inherited: only main takes them */
	for (int t = 0; t < nthreads; t++) {
		struct mt_worker *w = &workers[t];

		w->ep = epoll_create1(EPOLL_CLOEXEC);
		for (int m = 0; m < mt_nmaps; m++) {
			struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &w->lis[m] };
			int one = 1, fd = mt_socket();

			w->lis[m] = (struct mt_listener){ .kind = 2, .fd = fd, .target = tgt[m] };
			if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
			    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
			    bind(fd, (struct sockaddr *)&lis[m], sizeof(lis[m])) < 0 || listen(fd, 1024) < 0 ||
			    epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
				perror("mintls: listen");
				return 1;
			}
		}
		if (pthread_create(&w->th, NULL, mt_worker_main, w)) {
			fprintf(stderr, "mintls: cannot start a worker\n");
			return 1;
		}
	}
	fprintf(stderr, "mintls: listening (%s, %d threads)\n", argv[1], nthreads);
	sigwait(&set, &sig);
	fprintf(stderr, "mintls: %lu relayed, %lu failed\n", atomic_load(&mt_done), atomic_load(&mt_failed));
	return 0;
}
