/* SPDX-License-Identifier: Apache-2.0 */
/*
 * warren-ca: signs workload certificates for tunnels, with node
 * authorization (ca/authz.h), over HTTPS (ca/sign.h). docs/ca.md.
 *
 * Threads: a fixed pool of workers, each blocking in accept(2) on the one
 * listening socket and serving one connection at a time (TLS 1.3, then
 * HTTP/1.1 requests parsed by tunnel/http.h's parser, kept alive); each
 * owns its libcurl handle to the API server. A connection gets
 * CAS_IO_TIMEOUT_S per read or write and CAS_CONN_MAX_S in all, so a slow
 * client holds one worker for a bounded time. The main thread re-issues
 * the serving certificate at half its lifetime and swaps the SSL_CTX under
 * a mutex; workers take a reference per connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "ca/authz.h"
#include "ca/sign.h"
#include "conf/errbuf.h"
#include "conf/kube.h"
#include "conf/log.h"
#include "tunnel/ca.h"
#include "tunnel/http.h"

#define CAS_IO_TIMEOUT_S 5
#define CAS_CONN_MAX_S   30
#define CAS_THREADS_MAX  64
#define CAS_DNS_MAX      8
#define CAS_SERVING_LIFETIME_S (24u * 3600u)

static struct {
	struct mesh_ca *ca;
	char td[SPIFFE_TD_MAX + 1];
	char self_ns[SPIFFE_NS_MAX + 1];
	uint32_t lifetime_s;
	const char *dns[CAS_DNS_MAX + 1];
	struct kube_creds creds;
	struct caz_conf authz;
	int lfd;
	pthread_mutex_t ctx_lock;
	SSL_CTX *ctx;
	atomic_bool stop;
} cas = { .ctx_lock = PTHREAD_MUTEX_INITIALIZER };

static SSL_CTX *cas_ctx_get(void)
{
	SSL_CTX *c;

	pthread_mutex_lock(&cas.ctx_lock);
	c = cas.ctx;
	SSL_CTX_up_ref(c);
	pthread_mutex_unlock(&cas.ctx_lock);
	return c;
}

/* A new serving context: a fresh key and certificate from the CA, with the
 * SPIFFE ID spiffe://<td>/ns/<self ns>/sa/warren-ca and the DNS names. */
static int cas_ctx_renew(char *err, size_t errlen)
{
	struct ca_leaf *leaf = NULL;
	SSL_CTX *c = NULL, *old;
	int ret;

	ret = ca_issue_server(cas.ca, cas.td, cas.self_ns, "warren-ca", cas.dns,
			      CAS_SERVING_LIFETIME_S, &leaf, err, errlen);
	if (ret)
		return ret;
	ret = -EIO;
	c = SSL_CTX_new(TLS_server_method());
	if (!c || !SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) ||
	    SSL_CTX_use_certificate(c, leaf->cert) != 1 || SSL_CTX_use_PrivateKey(c, leaf->key) != 1)
		goto out;
	for (int i = 0; i < sk_X509_num(leaf->chain); i++)
		if (X509_cmp(sk_X509_value(leaf->chain, i), ca_root0(cas.ca)) &&
		    SSL_CTX_add1_chain_cert(c, sk_X509_value(leaf->chain, i)) != 1)
			goto out;
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
	pthread_mutex_lock(&cas.ctx_lock);
	old = cas.ctx;
	cas.ctx = c;
	pthread_mutex_unlock(&cas.ctx_lock);
	SSL_CTX_free(old);
	c = NULL;
	ret = 0;
out:
	if (ret)
		errbuf_set(err, errlen, "serving TLS context: %s",
			ERR_reason_error_string(ERR_get_error()) ?: "OpenSSL error");
	SSL_CTX_free(c);
	ca_leaf_free(leaf);
	return ret;
}

static double cas_ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* One request; fills status and a malloc'd JSON body. */
static void cas_handle(struct caz *z, const char *head, size_t head_len,
		       const struct http_request *req, const char *body, unsigned *status,
		       char **out, const char *peer)
{
	char reason[512] = "", node[256] = "", pod[256] = "", token[4096], sid[SPIFFE_ID_MAX] = "";
	struct spiffe_id id;
	struct timespec t0;
	EVP_PKEY *pub = NULL;
	const char *auth;
	size_t alen;
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	*out = NULL;
	if (req->path_len == 8 && !memcmp(req->path, "/healthz", 8)) {
		*status = 200;
		*out = strdup("{\"status\":\"ok\"}");
		return;
	}
	if (req->path_len != 8 || memcmp(req->path, "/v1/sign", 8)) {
		*status = 404;
		*out = casign_error("not found: POST /v1/sign");
		return;
	}
	if (req->method_len != 4 || memcmp(req->method, "POST", 4)) {
		*status = 405;
		*out = casign_error("method not allowed: POST /v1/sign");
		return;
	}
	ret = http_header(head, head_len, "Authorization", &auth, &alen);
	if (ret || alen < 8 || strncasecmp(auth, "Bearer ", 7) || alen - 7 >= sizeof(token)) {
		*status = 401;
		snprintf(reason, sizeof(reason), "%s",
			ret == -EEXIST ? "more than one Authorization header"
				       : "want Authorization: Bearer <projected service-account token>");
		goto done;
	}
	memcpy(token, auth + 7, alen - 7);
	token[alen - 7] = 0;
	ret = casign_parse(body, req->content_length, cas.td, &id, &pub, reason, sizeof(reason));
	if (ret) {
		*status = 400;
		goto done;
	}
	spiffe_id_format(sid, sizeof(sid), id.td, id.ns, id.sa);
	ret = caz_authorize(z, token, id.ns, id.sa, node, sizeof(node), pod, sizeof(pod), reason,
			    sizeof(reason));
	if (ret) {
		*status = ret == -EACCES ? 403 : 503;
		goto done;
	}
	ret = casign_answer(cas.ca, &id, pub, cas.lifetime_s, out, reason, sizeof(reason));
	*status = ret ? 500 : 200;
done:
	explicit_bzero(token, sizeof(token));
	EVP_PKEY_free(pub);
	if (*status != 200) {
		free(*out);
		*out = casign_error(reason);
	}
	/* One line per signing request: what, for whom, the outcome; no token. */
	if (*status == 200)
		log_info("sign %s for node %s pod %s (%s): 200 in %.1f ms", sid, node, pod, peer,
			 cas_ms_since(&t0));
	else
		log_warn("sign %s for node %s pod %s (%s): %u %s in %.1f ms", sid[0] ? sid : "-",
			 node[0] ? node : "-", pod[0] ? pod : "-", peer, *status, reason,
			 cas_ms_since(&t0));
}

static int cas_write_all(SSL *ssl, const char *p, size_t n)
{
	size_t w;

	while (n) {
		if (SSL_write_ex(ssl, p, n, &w) != 1)
			return -EIO;
		p += w;
		n -= w;
	}
	return 0;
}

static void cas_conn(struct caz *z, int fd, const char *peer)
{
	static __thread char buf[HTTP_HEAD_MAX + HTTP_BODY_MAX + 1];
	SSL_CTX *ctx = cas_ctx_get();
	SSL *ssl = SSL_new(ctx);
	time_t deadline = time(NULL) + CAS_CONN_MAX_S;
	size_t have = 0;

	SSL_CTX_free(ctx); /* the SSL holds its own reference */
	if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_accept(ssl) != 1) {
		log_debug("TLS handshake with %s failed: %s", peer,
			  ERR_reason_error_string(ERR_peek_last_error()) ?: "closed");
		goto out;
	}
	while (time(NULL) < deadline && !atomic_load(&cas.stop)) {
		struct http_request req;
		char *body = NULL, *resp = NULL;
		unsigned status = 500;
		size_t got;
		int hl, n;

		/* Each read waits at most CAS_IO_TIMEOUT_S; the connection as a
		 * whole, byte by slow byte, at most CAS_CONN_MAX_S. */
		while ((hl = http_parse_request(buf, have, &req)) == 0) {
			if (have == sizeof(buf) - 1 || time(NULL) >= deadline ||
			    SSL_read_ex(ssl, buf + have, sizeof(buf) - 1 - have, &got) != 1)
				goto out;
			have += got;
		}
		if (hl < 0) {
			status = http_error_status(hl);
			body = casign_error(req.error);
			req.keep_alive = false;
		} else {
			while (have < (size_t)hl + req.content_length) {
				if (time(NULL) >= deadline ||
				    SSL_read_ex(ssl, buf + have, sizeof(buf) - 1 - have, &got) != 1)
					goto out;
				have += got;
			}
			cas_handle(z, buf, (size_t)hl, &req, buf + hl, &status, &body, peer);
		}
		/* Head and body in one record and one segment: two writes would
		 * meet the client's delayed ACK (40 ms) on the second. */
		n = asprintf(&resp,
			     "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
			     "Cache-Control: no-store\r\n%s\r\n%s",
			     status, http_reason(status), body ? strlen(body) : 0,
			     req.keep_alive ? "" : "Connection: close\r\n", body ? body : "");
		free(body);
		if (n < 0 || cas_write_all(ssl, resp, (size_t)n)) {
			if (n >= 0)
				free(resp);
			goto out;
		}
		free(resp);
		if (hl < 0 || !req.keep_alive)
			break;
		/* Pipelined bytes after this request stay for the next one. */
		have -= (size_t)hl + req.content_length;
		memmove(buf, buf + hl + req.content_length, have);
	}
	SSL_shutdown(ssl);
out:
	explicit_bzero(buf, have); /* requests carry bearer tokens */
	ERR_clear_error();
	SSL_free(ssl);
	close(fd);
}

static void *cas_worker(void *arg)
{
	struct caz *z = NULL;
	struct timeval tv = { CAS_IO_TIMEOUT_S, 0 };

	(void)arg;
	if (caz_new(&cas.authz, &z)) {
		log_error("worker: out of memory");
		return NULL;
	}
	while (!atomic_load(&cas.stop)) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char peer[INET6_ADDRSTRLEN + 8] = "?";
		int fd = accept4(cas.lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				usleep(100 * 1000); /* let connections close */
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, peer, sizeof(peer));
		else if (ss.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, peer, sizeof(peer));
		cas_conn(z, fd, peer);
	}
	caz_free(z);
	return NULL;
}

static int cas_listen(const char *addr, char *err, size_t errlen)
{
	struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6 };
	char host[128];
	const char *colon = strrchr(addr, ':');
	char *end;
	long port;
	int fd, one = 1;

	if (!colon || (size_t)(colon - addr) >= sizeof(host)) {
		errbuf_set(err, errlen, "--listen %s: want ADDRESS:PORT", addr);
		return -EINVAL;
	}
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = 0;
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535) {
		errbuf_set(err, errlen, "--listen %s: bad port", addr);
		return -EINVAL;
	}
	sa6.sin6_port = htons((uint16_t)port);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		host[strlen(host) - 1] = 0;
		memmove(host, host + 1, strlen(host));
	}
	if (!host[0] || !strcmp(host, "0.0.0.0") || !strcmp(host, "::")) {
		sa6.sin6_addr = in6addr_any;
	} else if (inet_pton(AF_INET, host, &sa6.sin6_addr.s6_addr[12]) == 1) {
		sa6.sin6_addr.s6_addr[10] = sa6.sin6_addr.s6_addr[11] = 0xff; /* v4-mapped */
	} else if (inet_pton(AF_INET6, host, &sa6.sin6_addr) != 1) {
		errbuf_set(err, errlen, "--listen %s: not an IP address", addr);
		return -EINVAL;
	}
	fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){ 0 }, sizeof(int)) ||
	    bind(fd, (struct sockaddr *)&sa6, sizeof(sa6)) || listen(fd, 256)) {
		errbuf_set(err, errlen, "--listen %s: %s", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	return fd;
}

static void cas_usage(FILE *f)
{
	fprintf(f,
		"usage: warren-ca --ca-dir DIR [options]\n"
		"  --ca-dir DIR          signing CA (a Secret volume): root-cert.pem + root-key.pem,\n"
		"                        or ca-cert.pem + ca-key.pem + cert-chain.pem (an intermediate)\n"
		"  --listen ADDR:PORT    HTTPS address (default 0.0.0.0:15012)\n"
		"  --trust-domain TD     (default cluster.local)\n"
		"  --cert-lifetime SEC   workload certificate lifetime (default 86400)\n"
		"  --audience AUD        audience of the tunnels' tokens (default warren-ca)\n"
		"  --tunnel-sa NS/NAME   the tunnel's service account (default warren-system/warren)\n"
		"  --namespace NS        warren-ca's own namespace, for its serving identity\n"
		"                        (default $POD_NAMESPACE or warren-system)\n"
		"  --dns NAME            a DNS name (or IP address) of the serving certificate\n"
		"                        (repeatable; default warren-ca.<namespace>.svc)\n"
		"  --kubeconfig PATH     API server credentials (default: in-cluster)\n"
		"  --threads N           workers (default 8, at most 64)\n"
		"  --log-level LEVEL     error|warn|info|debug (default info)\n");
}

static void cas_on_signal(int sig)
{
	(void)sig;
	atomic_store(&cas.stop, true);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ca-dir", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "trust-domain", required_argument, NULL, 't' },
		{ "cert-lifetime", required_argument, NULL, 'L' },
		{ "audience", required_argument, NULL, 'a' },
		{ "tunnel-sa", required_argument, NULL, 's' },
		{ "namespace", required_argument, NULL, 'n' },
		{ "dns", required_argument, NULL, 'd' },
		{ "kubeconfig", required_argument, NULL, 'k' },
		{ "threads", required_argument, NULL, 'T' },
		{ "log-level", required_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *ca_dir = NULL, *listen_addr = "0.0.0.0:15012", *kubeconfig = NULL;
	const char *tunnel_sa = "warren-system/warren", *ns_env = getenv("POD_NAMESPACE");
	char err[512], tns[SPIFFE_NS_MAX + 1], tsa[SPIFFE_SA_MAX + 1], dflt_dns[128];
	pthread_t th[CAS_THREADS_MAX];
	enum wlog_level level = WLOG_INFO;
	long threads = 8, life = CA_DEFAULT_LIFETIME_S;
	size_t ndns = 0;
	const char *slash;
	struct sigaction sa = { .sa_handler = cas_on_signal };
	int c, ret;

	snprintf(cas.td, sizeof(cas.td), "cluster.local");
	snprintf(cas.self_ns, sizeof(cas.self_ns), "%s", ns_env && *ns_env ? ns_env : "warren-system");
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': ca_dir = optarg; break;
		case 'l': listen_addr = optarg; break;
		case 't': snprintf(cas.td, sizeof(cas.td), "%s", optarg); break;
		case 'L': life = strtol(optarg, NULL, 10); break;
		case 'a': cas.authz.audience = optarg; break;
		case 's': tunnel_sa = optarg; break;
		case 'n': snprintf(cas.self_ns, sizeof(cas.self_ns), "%s", optarg); break;
		case 'd':
			if (ndns == CAS_DNS_MAX) {
				fprintf(stderr, "warren-ca: at most %d --dns names\n", CAS_DNS_MAX);
				return 2;
			}
			cas.dns[ndns++] = optarg;
			break;
		case 'k': kubeconfig = optarg; break;
		case 'T': threads = strtol(optarg, NULL, 10); break;
		case 'v':
			if (wlog_parse_level(optarg, &level)) {
				fprintf(stderr, "warren-ca: --log-level %s: want error|warn|info|debug\n", optarg);
				return 2;
			}
			break;
		case 'h': cas_usage(stdout); return 0;
		default: cas_usage(stderr); return 2;
		}
	}
	wlog_init("warren-ca", NULL, level);
	if (!ca_dir || optind != argc) {
		cas_usage(stderr);
		return 2;
	}
	if (threads < 1 || threads > CAS_THREADS_MAX) {
		log_error("--threads %ld: want 1 to %d", threads, CAS_THREADS_MAX);
		return 2;
	}
	if (life < (long)CA_MIN_LIFETIME_S || life > (long)CA_MAX_LIFETIME_S) {
		log_error("--cert-lifetime %ld: want %u to %u seconds", life, CA_MIN_LIFETIME_S,
			  CA_MAX_LIFETIME_S);
		return 2;
	}
	cas.lifetime_s = (uint32_t)life;
	if (!cas.authz.audience)
		cas.authz.audience = "warren-ca";
	slash = strchr(tunnel_sa, '/');
	if (!slash || (size_t)(slash - tunnel_sa) > SPIFFE_NS_MAX || strlen(slash + 1) > SPIFFE_SA_MAX ||
	    slash == tunnel_sa || !slash[1]) {
		log_error("--tunnel-sa %s: want NAMESPACE/NAME", tunnel_sa);
		return 2;
	}
	snprintf(tns, sizeof(tns), "%.*s", (int)(slash - tunnel_sa), tunnel_sa);
	snprintf(tsa, sizeof(tsa), "%s", slash + 1);
	cas.authz.tunnel_ns = tns;
	cas.authz.tunnel_sa = tsa;
	if (!ndns) {
		snprintf(dflt_dns, sizeof(dflt_dns), "warren-ca.%s.svc", cas.self_ns);
		cas.dns[ndns++] = dflt_dns;
	}
	if (spiffe_id_format(err, sizeof(err), cas.td, cas.self_ns, "warren-ca")) {
		log_error("--trust-domain %s / --namespace %s: not a valid SPIFFE trust domain and "
			  "namespace", cas.td, cas.self_ns);
		return 2;
	}

	ret = ca_load_dir(ca_dir, &cas.ca, err, sizeof(err));
	if (ret) {
		log_error("%s", err);
		return 1;
	}
	ret = kubeconfig ? kube_config_load(kubeconfig, &cas.creds, err, sizeof(err))
			 : kube_config_incluster(NULL, &cas.creds, err, sizeof(err));
	if (ret) {
		log_error("API server credentials: %s", err);
		return 1;
	}
	cas.authz.creds = &cas.creds;
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		log_error("libcurl initialisation failed");
		return 1;
	}
	if (cas_ctx_renew(err, sizeof(err))) {
		log_error("%s", err);
		return 1;
	}
	cas.lfd = cas_listen(listen_addr, err, sizeof(err));
	if (cas.lfd < 0) {
		log_error("%s", err);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	for (long i = 0; i < threads; i++) {
		if (pthread_create(&th[i], NULL, cas_worker, NULL)) {
			log_error("cannot start worker %ld", i);
			return 1;
		}
	}
	log_info("serving on %s: trust domain %s, certificates for %u s, tunnels %s/%s with "
		 "audience %s, API server %s (%s), %ld workers", listen_addr, cas.td,
		 cas.lifetime_s, tns, tsa, cas.authz.audience, cas.creds.server, cas.creds.origin,
		 threads);
	/* The serving certificate is re-issued at half its lifetime. */
	for (time_t next = time(NULL) + CAS_SERVING_LIFETIME_S / 2; !atomic_load(&cas.stop);) {
		sleep(1);
		if (time(NULL) < next)
			continue;
		if (cas_ctx_renew(err, sizeof(err)))
			log_warn("serving certificate renewal failed (retry in 60 s): %s", err);
		else
			next = time(NULL) + CAS_SERVING_LIFETIME_S / 2;
		if (time(NULL) >= next)
			next = time(NULL) + 60;
	}
	log_info("stopping");
	/* Workers block in accept(2) or in a kept-alive connection: no joining
	 * and no atexit cleanup under them (OpenSSL's would race their reads);
	 * nothing is buffered, the kernel closes every socket. */
	_exit(0);
}
