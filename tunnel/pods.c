/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pod registry (contract in pods.h): lookup, creation and teardown
 * of struct pod and its per-worker shards, and the readiness rule. Pods
 * are few (one per enrolled pod on the node), so lookups are linear scans
 * of the primaries.
 */
#include "tunnel/pods.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/handoff.h"
#include "conf/inpod_mode.h"
#include "conf/log.h"
#include "conf/warren.h"
#include "netlink/netns.h"
#include "tunnel/inpod_listen.h"
#include "tunnel/kube_tunnel.h"
#include "tunnel/mtls.h"
#include "tunnel/proxy.h"
#include "tunnel/state.h"
#include "tunnel/tunnel.h"
#include "tunnel/workers.h"

struct pod *pod_find_uid(struct tunnel *t, const char *uid)
{
	for (struct pod *p = t->pods; p; p = p->next)
		if (uid && !strcmp(p->uid, uid))
			return p;
	return NULL;
}

struct pod *pod_find_cid(struct tunnel *t, const char *container_id, const char *ifname)
{
	for (struct pod *p = t->pods; p; p = p->next)
		if (container_id && ifname && !strcmp(p->container_id, container_id) &&
		    !strcmp(p->ifname, ifname))
			return p;
	return NULL;
}

const struct pod *pod_find_ip(const struct tunnel *t, const struct mesh_ip *ip)
{
	for (const struct pod *p = t->pods; p; p = p->next)
		if (mesh_ip_in(p->addrs, p->n_addrs, ip))
			return p;
	return NULL;
}

static void pod_release(struct pod *p)
{
	if (!p)
		return;
	free(p->addrs);
	free(p->uid);
	free(p->container_id);
	free(p->ifname);
	free(p->namespace);
	free(p->name);
	free(p->service_account);
	free(p->netns_path);
	for (size_t i = 0; i < p->n_ips; i++)
		free(p->ips[i]);
	free(p->ips);
	p->magic = 0;
	free(p);
}

/* One shard (not linked anywhere); takes netns_fd on success only. */
static struct pod *pod_shard_new(struct tunnel *t, unsigned worker, const char *uid,
			     const char *container_id, const char *ifname, const char *ns,
			     const char *name, const char *sa, const char *netns_path, int netns_fd,
			     json_t *ips)
{
	struct pod *p;
	size_t n = json_is_array(ips) ? json_array_size(ips) : 0;

	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->magic = POD_MAGIC;
	p->t = t;
	p->worker = worker;
	p->loop = worker_loop(t, worker);
	p->netns_fd = -1;
	for (int k = 0; k < LIS_COUNT; k++)
		p->lis[k] = (struct pod_listener){ .magic = LIS_MAGIC, .kind = k, .fd = -1, .pod = p };
	p->uid = strdup(uid);
	p->container_id = strdup(container_id);
	p->ifname = strdup(ifname);
	p->namespace = strdup(ns);
	p->name = strdup(name);
	p->service_account = strdup(sa);
	p->netns_path = strdup(netns_path);
	p->ips = n ? calloc(n, sizeof(*p->ips)) : NULL;
	p->addrs = n ? calloc(n, sizeof(*p->addrs)) : NULL;
	if (!p->uid || !p->container_id || !p->ifname || !p->namespace || !p->name ||
	    !p->service_account || !p->netns_path || (n && (!p->ips || !p->addrs)))
		goto fail;
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(ips, i));
		char a[INET6_ADDRSTRLEN + 8], *slash;

		if (!s)
			continue;
		p->ips[p->n_ips] = strdup(s);
		if (!p->ips[p->n_ips])
			goto fail;
		p->n_ips++;
		snprintf(a, sizeof(a), "%s", s);
		slash = strchr(a, '/');
		if (slash)
			*slash = '\0';
		if (!mesh_ip_parse(a, &p->addrs[p->n_addrs]))
			p->n_addrs++;
	}
	p->netns_fd = netns_fd;
	return p;
fail:
	pod_release(p);
	return NULL;
}

/* Everything a shard owns but its strings; the shard stays allocated. */
static void pod_shard_close(struct pod *p)
{
	workers_forget_shard(p);
	mtls_pod_removed(p); /* HBONE first: its streams are conns too */
	proxy_abort_all(p, "pod removed");
	for (int f = 0; f < 2; f++)
		while (p->n_spare[f])
			close(p->spare[f][--p->n_spare[f]]);
	if (p->netns_fd >= 0)
		close(p->netns_fd);
	p->netns_fd = -1;
}

struct pod *pod_new(struct tunnel *t, const char *uid, const char *container_id,
		    const char *ifname, const char *ns, const char *name, const char *sa,
		    const char *netns_path, int netns_fd, json_t *ips)
{
	struct pod *p, **tail;

	p = pod_shard_new(t, 0, uid, container_id, ifname, ns, name, sa, netns_path, -1, ips);
	if (!p)
		return NULL;
	tail = &p->next_shard;
	for (unsigned w = 1; w < t->n_workers; w++) {
		int fd = fcntl(netns_fd, F_DUPFD_CLOEXEC, 0);

		*tail = fd < 0 ? NULL : pod_shard_new(t, w, uid, container_id, ifname, ns, name, sa,
						  netns_path, fd, ips);
		if (!*tail) {
			log_error("pod %s/%s: cannot make its shard for worker %u: %s", ns, name, w,
				  strerror(fd < 0 ? errno : ENOMEM));
			if (fd >= 0)
				close(fd);
			while (p) {
				struct pod *next = p->next_shard;

				pod_shard_close(p);
				pod_release(p);
				p = next;
			}
			return NULL;
		}
		(*tail)->primary = p;
		tail = &(*tail)->next_shard;
	}
	p->netns_fd = netns_fd;
	inpod_mode_init(&p->mode);
	workers_isolate(t); /* they walk t->pods (pod_find_ip, proxy_snap_changed) */
	p->next = t->pods;
	if (t->pods)
		t->pods->prev = p;
	t->pods = p;
	workers_release(t);
	t->n_pods++;
	t->host_probe_stale = true;
	kube_tunnel_pods_changed(t);
	return p;
}

void pod_free(struct pod *p)
{
	struct tunnel *t;
	struct pod *s, *next;

	if (!p)
		return;
	CHECK_OBJ(p, POD_MAGIC);
	assert(!p->primary);
	t = p->t;
	/* Every shard's connections, pool and listeners are its worker's:
	 * they all go at once, with the workers isolated. */
	workers_isolate(t);
	pod_unlisten(p);
	/* replicas first: the primary's identity outlives their TLS */
	for (s = p->next_shard; s; s = next) {
		next = s->next_shard;
		pod_shard_close(s);
		pod_release(s);
	}
	pod_shard_close(p);
	if (p->prev)
		p->prev->next = p->next;
	else
		t->pods = p->next;
	if (p->next)
		p->next->prev = p->prev;
	workers_release(t);
	t->n_pods--;
	t->host_probe_stale = t->host_probe_full = true;
	kube_tunnel_pods_changed(t);
	pod_release(p);
}

struct pod *pod_shard_next(const struct pod *p)
{
	if (p->next_shard)
		return p->next_shard;
	return pod_primary(p)->next;
}

size_t pod_conn_count(const struct pod *p)
{
	size_t n = 0;

	for (const struct pod *s = p; s; s = s->next_shard)
		n += s->n_conns;
	return n;
}

/* Setting the mark and NODELAY here, once per socket, keeps the refill
 * the only place that knows what an upstream socket needs. */
static int pod_refill_spares(struct pod *p, int family)
{
	int f = family == AF_INET6, one = 1, ret;
	unsigned mark = MARK_TUNNEL, kept = 0;
	int *fds = p->spare[f];

	ret = netns_sockets(p->netns_fd, family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
			    fds, POD_SPARE_SOCKETS);
	if (ret < 0)
		return ret;
	for (int i = 0; i < ret; i++) {
		if (setsockopt(fds[i], SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0 ||
		    setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
			/* Unmarked, it would loop back into our own capture. */
			ret = -errno;
			close(fds[i]);
			continue;
		}
		fds[kept++] = fds[i];
	}
	p->n_spare[f] = kept;
	return kept ? 0 : ret;
}

int pod_socket(struct pod *p, int family)
{
	int f = family == AF_INET6, ret;

	CHECK_OBJ(p, POD_MAGIC);
	assert(family == AF_INET || family == AF_INET6);
	if (!p->n_spare[f]) {
		ret = pod_refill_spares(p, family);
		if (ret < 0)
			return ret;
	}
	return p->spare[f][--p->n_spare[f]];
}

json_t *pod_to_json(const struct pod *p)
{
	json_t *o, *ips;

	ips = json_array();
	for (size_t i = 0; ips && i < p->n_ips; i++)
		json_array_append_new(ips, json_string(p->ips[i]));
	o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:o}",
		      "uid", p->uid, "containerId", p->container_id, "ifname", p->ifname,
		      "namespace", p->namespace, "name", p->name,
		      "serviceAccount", p->service_account, "netns", p->netns_path,
		      "netnsDev", (json_int_t)p->netns_dev, "netnsIno", (json_int_t)p->netns_ino,
		      "ips", ips ? ips : json_array());
	if (o && handoff_mode_put(o, &p->mode) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

bool tunnel_serving(const struct tunnel *t, const char **reason)
{
	const char *r = NULL;

	if (!tunnel_model(t))
		r = t->mesh_error[0] ? "mesh model not loaded (last load failed; see the log)"
				     : "mesh model not loaded yet";
	else if (!tunnel_snap_here(t)->policies_loaded)
		r = "the mesh model's policies did not compile (see the log)";
	else if (!t->sec && !t->conf->mtls_disabled)
		r = t->conf->ca_address ? "the warren-ca client (caAddress) did not start (see the log)"
		    : t->conf->ca_dir   ? "the mesh CA (caDir) did not load (see the log)"
					: "no mesh CA: set caAddress or caDir, or mtls: disabled for plaintext between enrolled pods";
	if (reason)
		*reason = r ? r : "serving";
	return !r;
}

bool tunnel_ready(const struct tunnel *t, const char **reason)
{
	const char *r = "ready";
	bool ok = false;

	if (t->draining)
		r = "draining: stopping after SIGTERM";
	else if (!tunnel_model(t) && !kube_tunnel_synced(t, &r))
		; /* r says which resource has not listed yet */
	else if (!tunnel_serving(t, &r))
		;
	else if (!t->adopted)
		r = state_adopt_progress(t);
	else {
		ok = true;
		for (const struct pod *p = t->pods; p; p = p->next)
			if (!p->listening) {
				r = mtls_pod_cert_pending(p) ? "a pod's identity has no certificate yet (see the log)"
							     : "a pod has no listeners yet (retrying; see the log)";
				ok = false;
				break;
			}
	}
	if (reason)
		*reason = r;
	return ok;
}
