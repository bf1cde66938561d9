/* SPDX-License-Identifier: Apache-2.0 */
/*
 * warren-waypoint: the L7 proxy a namespace's Services (or workloads) are
 * bound to with istio.io/use-waypoint. It runs as the pods of one Gateway
 * (gatewayClassName istio-waypoint) and serves HBONE on 15008 (data path:
 * waypoint/proxy.h), readiness on 15021 and metrics on 15020
 * (waypoint/stats.h). Its identity is
 * spiffe://<td>/ns/<namespace>/sa/<service account>, signed by warren-ca
 * (--ca-address) or a local CA directory (--ca-dir): waypoint/cert.h.
 *
 * It reuses the tunnel's modules (tunnel/loop, tls, hbone, ca, http) and
 * the model (mesh, waypoint attachment, policy engine in waypoint mode);
 * it is a separate binary so that a node's tunnel never parses HTTP and a
 * waypoint never touches a pod's network namespace.
 *
 * The model and policies come from the mesh file or the API server and
 * are kept current without a restart (waypoint/source.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/log.h"
#include "conf/warren.h"
#include "model/authz.h"
#include "model/mesh.h"
#include "model/waypoint.h"
#include "tunnel/ca.h"
#include "tunnel/hbone.h"
#include "tunnel/http.h"
#include "tunnel/loop.h"
#include "tunnel/tls.h"
#include "waypoint/admin.h"
#include "waypoint/cert.h"
#include "waypoint/proxy.h"
#include "waypoint/source.h"
#include "waypoint/stats.h"
#include "waypoint/wmodel.h"

/*
 * GnuTLS is loaded but never used: Debian's libcurl (OpenSSL build) links
 * librtmp, which links GnuTLS, whose load-time constructor runs its global
 * initialisation (ASN.1 tables, PKCS#11 and random state) unless the
 * program says to skip it through this hook (the Makefile exports it).
 * curl would initialise GnuTLS itself where it used it. Figures in
 * docs/performance.md.
 */
int _gnutls_global_init_skip(void);
int _gnutls_global_init_skip(void)
{
	return 1;
}

static struct loop *wpm_loop;
static struct wp_source *wpm_src;

static void wpm_usage(FILE *f)
{
	fprintf(f, "usage: warren-waypoint (--mesh PATH [--reload-ms MS] | --kube [--kubeconfig PATH])\n"
		   "         (--ca-dir DIR | --ca-address URL [--ca-token-file PATH] [--trust-bundle PATH])\n"
		   "         --namespace NS --name GATEWAY\n"
		   "         [--service-account SA] [--trust-domain TD] [--root-namespace NS]\n"
		   "         [--listen ADDR:PORT] [--readiness ADDR:PORT|off] [--metrics ADDR:PORT|off]\n"
		   "         [--admin PATH] [--log-level LEVEL]\n");
}

static int wpm_listen(const char *spec, int *out)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd, one = 1;
	long port;

	if (!colon || (size_t)(colon - spec) >= sizeof(host))
		return -EINVAL;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	port = strtol(colon + 1, NULL, 10);
	if (port < 1 || port > 65535 || inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return -EINVAL;
	a.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* inherited by accepted sockets: an answer's TLS records leave at
	 * once, not after the peer's (delayed) ACK of the one before */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1024) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	*out = fd;
	return 0;
}

static void wpm_accept(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct wp *w = ctx;

	(void)l;
	(void)events;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int c = accept4(fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (c < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("accept on 15008: %s", strerror(errno));
			return;
		}
		if (!w->server_ctx) { /* no certificate yet: fail closed */
			close(c);
			continue;
		}
		wp_accept(w, c, &peer);
	}
}

static void wpm_ready(void *ctx, const struct http_request *req, struct http_response *resp)
{
	struct wp *w = ctx;
	char buf[200];
	int n;

	if (!strcmp(req->path, "/metrics") || !strcmp(req->path, "/stats/prometheus")) {
		size_t len = 0, slen = 0;
		char *body = w->stats ? wp_stats_render(w->stats, &len) : strdup(""), *more = NULL;
		FILE *f = wpm_src ? open_memstream(&more, &slen) : NULL;

		if (f) {
			wp_source_metrics(wpm_src, f);
			fclose(f);
		}
		if (body && more) {
			char *all = realloc(body, len + slen + 1);

			if (all) {
				memcpy(all + len, more, slen + 1);
				body = all;
				len += slen;
			}
		}
		free(more);
		resp->status = 200;
		resp->content_type = "text/plain; version=0.0.4";
		resp->body = body;
		resp->body_len = body ? len : 0;
		return;
	}
	if (!w->model || !w->server_ctx) {
		resp->status = 503;
		resp->content_type = "text/plain";
		resp->body = strdup(!w->model ? "not ready: no model yet\n" : "not ready: no certificate yet\n");
		resp->body_len = resp->body ? strlen(resp->body) : 0;
		return;
	}
	if (strcmp(req->path, "/healthz/ready") && strcmp(req->path, "/stats")) {
		resp->status = 404;
		resp->content_type = "text/plain";
		resp->body = strdup("not found\n");
		resp->body_len = resp->body ? strlen(resp->body) : 0;
		return;
	}
	n = snprintf(buf, sizeof(buf), "ready\nrequests %llu\ndenied %llu\nstreams %llu\n",
		     (unsigned long long)w->requests, (unsigned long long)w->denied,
		     (unsigned long long)w->n_conns);
	resp->status = 200;
	resp->content_type = "text/plain";
	resp->body = strndup(buf, (size_t)n);
	resp->body_len = resp->body ? (size_t)n : 0;
}

static void wpm_signal(int sig)
{
	(void)sig;
	if (wpm_loop)
		loop_stop(wpm_loop);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mesh", required_argument, NULL, 'm' },
		{ "ca-dir", required_argument, NULL, 'c' },
		{ "ca-address", required_argument, NULL, 'C' },
		{ "ca-token-file", required_argument, NULL, 'O' },
		{ "trust-bundle", required_argument, NULL, 'B' },
		{ "namespace", required_argument, NULL, 'n' },
		{ "name", required_argument, NULL, 'g' },
		{ "service-account", required_argument, NULL, 's' },
		{ "trust-domain", required_argument, NULL, 't' },
		{ "root-namespace", required_argument, NULL, 'r' },
		{ "listen", required_argument, NULL, 'l' },
		{ "readiness", required_argument, NULL, 'R' },
		{ "metrics", required_argument, NULL, 'M' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "kube", no_argument, NULL, 'K' },
		{ "kubeconfig", required_argument, NULL, 'k' },
		{ "reload-ms", required_argument, NULL, 'T' },
		{ "admin", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *mesh_path = NULL, *ns = NULL, *name = NULL, *sa = NULL;
	const char *td = "cluster.local", *root = NULL, *listen_on = "0.0.0.0:15008";
	const char *ready_on = "0.0.0.0:15021", *metrics_on = "0.0.0.0:15020", *admin_path = NULL;
	struct wp_admin *admin = NULL;
	enum wlog_level level = WLOG_INFO;
	struct wp_source_conf sc = { 0 };
	struct wp_source *src = NULL;
	struct wp_cert_conf cc = { .token_file = "/var/run/secrets/warren-ca/token",
				   .bundle_file = "/etc/warren/bundle/roots.pem" };
	struct wp_cert *cert = NULL;
	struct http_server *hs = NULL, *ms = NULL;
	const struct mesh_gateway *gw;
	struct wp w = { 0 };
	int opt, lfd = -1, rfd = -1, ret = 1;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'm': mesh_path = optarg; break;
		case 'c': cc.ca_dir = optarg; break;
		case 'C': cc.ca_address = optarg; break;
		case 'O': cc.token_file = optarg; break;
		case 'B': cc.bundle_file = optarg; break;
		case 'n': ns = optarg; break;
		case 'g': name = optarg; break;
		case 's': sa = optarg; break;
		case 't': td = optarg; break;
		case 'r': root = optarg; break;
		case 'l': listen_on = optarg; break;
		case 'R': ready_on = optarg; break;
		case 'M': metrics_on = optarg; break;
		case 'K': sc.kube = true; break;
		case 'k': sc.kube = true; sc.kubeconfig = optarg; break;
		case 'A': admin_path = optarg; break;
		case 'T': sc.reload_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'L':
			if (wlog_parse_level(optarg, &level)) {
				fprintf(stderr, "warren-waypoint: unknown log level %s\n", optarg);
				return 2;
			}
			break;
		case 'h': wpm_usage(stdout); return 0;
		default: wpm_usage(stderr); return 2;
		}
	}
	if (!mesh_path == !sc.kube || !cc.ca_dir == !cc.ca_address || !ns || !name || optind != argc) {
		wpm_usage(stderr);
		return 2;
	}
	if (!sa)
		sa = name; /* as Istio's rendered waypoints: the Gateway's name */
	wlog_init("warren-waypoint", NULL, level);
	signal(SIGPIPE, SIG_IGN);

	wpm_loop = w.loop = loop_new();
	if (!w.loop || hbone_pool_new(w.loop, NULL, &w.pool)) {
		log_error("out of memory");
		goto out;
	}
	w.ns = ns;
	w.name = name;
	w.td = td;
	cc.td = td;
	cc.ns = ns;
	cc.sa = sa;
	if (wp_cert_start(&w, &cc, &cert) < 0)
		goto out;
	sc.mesh_path = mesh_path;
	sc.root_ns = root;
	if (wp_source_start(&w, &sc, &src) < 0)
		goto out;
	wpm_src = src;
	gw = w.model ? mesh_find_gateway(w.model->mesh, ns, name) : NULL;
	if (!sc.kube && (!gw || !gw->waypoint)) {
		log_error("Gateway %s/%s %s; refusing to serve", ns, name,
			  gw ? "is not of class " GATEWAY_CLASS_WAYPOINT : "is not in the mesh model");
		goto out;
	}
	if (wpm_listen(listen_on, &lfd) || loop_add(w.loop, lfd, EPOLLIN, wpm_accept, &w)) {
		log_error("cannot listen on %s: %s", listen_on, strerror(errno));
		goto out;
	}
	if (strcmp(ready_on, "off")) {
		int r2 = wpm_listen(ready_on, &rfd);

		if (!r2) {
			r2 = http_server_new(w.loop, rfd, "readiness", wpm_ready, &w, &hs);
			rfd = -1; /* the server owns it, also when it failed */
		}
		if (r2) {
			log_error("cannot serve readiness on %s", ready_on);
			goto out;
		}
	}
	if (strcmp(metrics_on, "off")) {
		int r2 = (w.stats = wp_stats_new()) ? wpm_listen(metrics_on, &rfd) : -ENOMEM;

		if (!r2) {
			r2 = http_server_new(w.loop, rfd, "metrics", wpm_ready, &w, &ms);
			rfd = -1;
		}
		if (r2) {
			log_error("cannot serve metrics on %s", metrics_on);
			goto out;
		}
	}
	if (admin_path && wp_admin_start(&w, src, admin_path, &admin) < 0)
		goto out;
	log_info("waypoint %s/%s as %s: HBONE on %s, readiness on %s, model from %s", ns, name, w.id,
		 listen_on, ready_on, sc.kube ? "the API server" : mesh_path);
	signal(SIGTERM, wpm_signal);
	signal(SIGINT, wpm_signal);
	ret = loop_run(w.loop) ? 1 : 0;
	log_info("stopping: %llu requests, %llu denied", (unsigned long long)w.requests,
		 (unsigned long long)w.denied);
out:
	wp_shutdown(&w);
	wp_admin_free(admin);
	wpm_src = NULL;
	wp_source_free(src);
	http_server_free(hs);
	http_server_free(ms);
	if (w.pool)
		hbone_pool_free(w.pool);
	if (lfd >= 0)
		close(lfd);
	if (rfd >= 0)
		close(rfd);
	wp_cert_free(cert); /* its renewal timer is on the loop */
	if (w.loop)
		loop_free(w.loop);
	wp_stats_free(w.stats);
	wmodel_unref(w.model);
	return ret;
}
