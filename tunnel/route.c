/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A connection's route, resolved once (contract in route.h).
 *
 * Outbound: Service VIP:port -> a ready, non-host-network endpoint of the
 * Service with an address of the same family, picked round-robin, port
 * mapped by the targetPort (a named one through the endpoint's container
 * ports, and pods without it are no endpoint); a pod IP is that workload.
 * Enrolled destination -> HBONE to <pod IP>:15008; so is a pod enrolled
 * and held here, whatever the model says of it (a file cut short, a stale
 * entry: never plaintext); an address several live pods of the model claim
 * alike is refused; anything else -> plain TCP to the resolved target.
 */
#include "tunnel/route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/warren.h"
#include "model/waypoint.h"
#include "tunnel/ca.h"
#include "tunnel/pods.h"
#include "tunnel/proxy.h"
#include "tunnel/tunnel.h"

/* Service endpoint round robin, shared by the workers. */
static atomic_uint_fast64_t route_rr;

bool route_ss_to_ip(const struct sockaddr_storage *ss, struct mesh_ip *ip, uint16_t *port)
{
	memset(ip, 0, sizeof(*ip));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)ss;

		ip->family = AF_INET;
		ip->addr.v4 = s4->sin_addr;
		if (port)
			*port = ntohs(s4->sin_port);
		return true;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		ip->family = AF_INET6;
		ip->addr.v6 = s6->sin6_addr;
		if (port)
			*port = ntohs(s6->sin6_port);
		return true;
	}
	return false;
}

void route_ip_to_ss(const struct mesh_ip *ip, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (ip->family == AF_INET) {
		struct sockaddr_in *s4 = (void *)ss;

		s4->sin_family = AF_INET;
		s4->sin_addr = ip->addr.v4;
		s4->sin_port = htons(port);
	} else {
		struct sockaddr_in6 *s6 = (void *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = ip->addr.v6;
		s6->sin6_port = htons(port);
	}
}

const struct mesh_pod *route_local_pod(const struct tunnel *t, const struct pod *p)
{
	const struct mesh *m = tunnel_model(t);
	const struct mesh_pod *mp;

	if (!m)
		return NULL;
	mp = *p->uid ? mesh_find_pod_by_uid(m, p->uid) : NULL;
	return mp ? mp : mesh_find_pod(m, p->namespace, p->name);
}

/* The Service a connection to pod mp on port reached: a Service of the
 * pod's namespace selecting it whose targetPort resolves to port. */
static const struct mesh_service *route_service_of_pod(const struct mesh *m,
							const struct mesh_pod *mp, uint16_t port)
{
	const struct mesh_service *s;
	size_t pos = 0;

	if (!m || !mp)
		return NULL;
	while ((s = mesh_pod_next_service(m, mp, &pos))) {
		for (size_t k = 0; k < s->n_ports; k++)
			if (mesh_pod_target_port(mp, &s->ports[k]) == port)
				return s;
	}
	return NULL;
}

const char *route_service_host(const struct route *r, char *buf, size_t len)
{
	if (!r->svc)
		buf[0] = '\0';
	else
		snprintf(buf, len, "%s.%s.svc.cluster.local", r->svc->name, r->svc->namespace);
	return buf;
}

static enum route_kind route_refuse(struct route *r, char *why, size_t whylen, const char *fmt,
				    ...) __attribute__((format(printf, 4, 5)));
static enum route_kind route_refuse(struct route *r, char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return r->kind = ROUTE_REFUSE;
}

/* dst is svc's VIP on port: pick the endpoint (r->peer, r->target). */
static enum route_kind route_vip(struct route *r, const struct mesh *m, const struct mesh_ip *ip,
				 uint16_t port, struct mesh_ip *epip, char *why, size_t whylen)
{
	const struct mesh_service *svc = r->svc;
	const struct mesh_service_port *sp = NULL;
	struct mesh_ep e;
	size_t n = 0, k, pos;

	for (size_t i = 0; i < svc->n_ports; i++)
		if (svc->ports[i].port == port &&
		    (!svc->ports[i].protocol || !strcmp(svc->ports[i].protocol, "TCP")))
			sp = &svc->ports[i];
	if (!sp)
		return route_refuse(r, why, whylen, "Service %s/%s has no TCP port %u", svc->namespace,
				    svc->name, port);
	r->svc_port = sp;
	for (pos = 0; mesh_service_next_endpoint(m, svc, sp, ip->family, &pos, &e);)
		n++;
	if (!n) {
		if (!svc->selector.n)
			return route_refuse(r, why, whylen,
					    "Service %s/%s has no ready endpoint for port %u (it has no selector: no ready address of its EndpointSlices has a port named \"%s\")",
					    svc->namespace, svc->name, port, sp->name);
		if (sp->target_port_name)
			return route_refuse(r, why, whylen,
					    "Service %s/%s has no ready endpoint for port %u (no ready, non-host-network pod with an IP that its selector matches has a %s container port named \"%s\")",
					    svc->namespace, svc->name, port,
					    sp->protocol ? sp->protocol : "TCP", sp->target_port_name);
		return route_refuse(r, why, whylen,
				    "Service %s/%s has no ready endpoint (selector matching a ready, non-host-network pod with an IP)",
				    svc->namespace, svc->name);
	}
	k = (size_t)(atomic_fetch_add_explicit(&route_rr, 1, memory_order_relaxed) % n);
	for (pos = 0; mesh_service_next_endpoint(m, svc, sp, ip->family, &pos, &e) && k--;)
		;
	r->peer = e.pod;
	*epip = e.ip;
	route_ip_to_ss(epip, e.port, &r->target);
	return ROUTE_PLAIN;
}

/* The destination (what: "Service ns/name" or "pod ns/name") is bound to
 * b's waypoint: HBONE to one of its ready pods (round robin), :authority
 * the original destination, or refused when it has none (Istio would go
 * direct, past the waypoint's policy). */
static enum route_kind route_waypoint(struct route *r, const struct tunnel *t,
				      const struct mesh_wp_binding *b, const struct mesh_ip *ip,
				      uint16_t port, const char *what, char *why, size_t whylen)
{
	struct route_waypoint *w = &r->waypoint;
	const struct mesh_pod *q = NULL;
	struct mesh_ip wip = { 0 };
	size_t n = 0, k, pos = 0;
	char a[INET6_ADDRSTRLEN], id[SPIFFE_ID_MAX], au[80];

	if (asprintf(&w->name, "%s/%s", b->ns, b->name) < 0) {
		w->name = NULL;
		return route_refuse(r, why, whylen, "out of memory routing the connection");
	}
	if (b->state == MESH_WP_BOUND)
		while (mesh_gateway_next_ready_pod(b->gw, ip->family, &pos))
			n++;
	if (!n) {
		w->refused = b->state == MESH_WP_MISSING ? "missing" : "not_ready";
		return route_refuse(r, why, whylen,
				    "%s is bound to waypoint %s, which %s; refusing rather than skipping its policy",
				    what, w->name, b->state == MESH_WP_MISSING ?
				    "does not exist (no Gateway of class " GATEWAY_CLASS_WAYPOINT ")" :
				    "has no ready pod of this address family");
	}
	k = (size_t)(atomic_fetch_add_explicit(&route_rr, 1, memory_order_relaxed) % n);
	pos = 0;
	while ((q = mesh_gateway_next_ready_pod(b->gw, ip->family, &pos)) && k--)
		;
	for (size_t i = 0; q && i < q->n_ips; i++)
		if (q->ips[i].family == ip->family) {
			wip = q->ips[i];
			break;
		}
	if (!q || spiffe_id_format(id, sizeof(id), t->conf->trust_domain, q->namespace,
				   q->service_account) < 0)
		return route_refuse(r, why, whylen, "waypoint %s's pod has no valid identity", w->name);
	mesh_ip_str(ip, a, sizeof(a));
	snprintf(au, sizeof(au), ip->family == AF_INET6 ? "[%s]:%u" : "%s:%u", a, port);
	route_ip_to_ss(&wip, PORT_INBOUND_HBONE, &w->addr);
	w->identity = strdup(id);
	w->authority = strdup(au);
	r->peer_id = strdup(id);
	if (!w->identity || !w->authority || !r->peer_id)
		return route_refuse(r, why, whylen, "out of memory routing the connection");
	r->hbone_addr = w->addr;
	snprintf(r->authority, sizeof(r->authority), "%s", au);
	return r->kind = ROUTE_HBONE;
}

enum route_kind route_outbound(struct route *r, const struct tunnel *t, const struct pod *p,
			       const struct sockaddr_storage *dst, bool resolve, char *why,
			       size_t whylen)
{
	struct mesh_wp_binding wb;
	char what[300];
	const struct mesh *m = tunnel_model(t);
	const char *dst_ns, *dst_sa;
	struct mesh_ip ip, epip;
	uint16_t port;
	char a[INET6_ADDRSTRLEN], expect[SPIFFE_ID_MAX];

	r->target = *dst;
	why[0] = '\0';
	if (!m || !route_ss_to_ip(dst, &ip, &port))
		return ROUTE_PLAIN;
	r->svc = mesh_find_service_by_vip(m, &ip);
	r->via_vip = r->svc != NULL;
	if (!resolve) {
		/* mtls: disabled: the kernel routes; the labels still name them */
		if (!r->svc && (r->peer = mesh_find_pod_by_ip(m, &ip)))
			r->svc = route_service_of_pod(m, r->peer, port);
		return ROUTE_PLAIN;
	}
	epip = ip;
	if (r->svc) {
		mesh_service_waypoint(m, r->svc, &wb);
		if (wb.state != MESH_WP_NONE) {
			for (size_t i = 0; i < r->svc->n_ports; i++)
				if (r->svc->ports[i].port == port)
					r->svc_port = &r->svc->ports[i];
			snprintf(what, sizeof(what), "Service %s/%s", r->svc->namespace, r->svc->name);
			return route_waypoint(r, t, &wb, &ip, port, what, why, whylen);
		}
		if (route_vip(r, m, &ip, port, &epip, why, whylen) == ROUTE_REFUSE)
			return ROUTE_REFUSE;
	} else {
		r->peer = mesh_find_pod_by_ip(m, &ip);
		r->svc = route_service_of_pod(m, r->peer, port);
		if (r->peer) {
			mesh_pod_waypoint(m, r->peer, &wb);
			if (wb.state != MESH_WP_NONE) {
				snprintf(what, sizeof(what), "pod %s/%s", r->peer->namespace, r->peer->name);
				return route_waypoint(r, t, &wb, &ip, port, what, why, whylen);
			}
		}
	}
	if (!r->peer || r->peer->host_network || !mesh_pod_is_enrolled(m, r->peer)) {
		const struct pod *held = pod_find_ip(t, &epip);

		if (held) {
			dst_ns = held->namespace;
			dst_sa = held->service_account;
		} else if (!r->via_vip && mesh_ip_conflict(m, &ip)) {
			return route_refuse(r, why, whylen,
					    "the mesh model has several live pods with this address (see the log); refusing rather than guessing which");
		} else {
			return ROUTE_PLAIN; /* outside the mesh: plain TCP to target */
		}
	} else {
		dst_ns = r->peer->namespace;
		dst_sa = r->peer->service_account;
	}
	if (spiffe_id_format(expect, sizeof(expect), t->conf->trust_domain, dst_ns, dst_sa) < 0)
		return route_refuse(r, why, whylen,
				    "destination pod in %s has no valid identity (service account \"%s\")",
				    dst_ns, dst_sa);
	r->peer_id = strdup(expect);
	if (!r->peer_id)
		return route_refuse(r, why, whylen, "out of memory routing the connection");
	route_ip_to_ss(&epip, PORT_INBOUND_HBONE, &r->hbone_addr);
	mesh_ip_str(&epip, a, sizeof(a));
	snprintf(r->authority, sizeof(r->authority), epip.family == AF_INET6 ? "[%s]:%u" : "%s:%u", a,
		 ss_port(&r->target));
	return r->kind = ROUTE_HBONE;
}

void route_begin(struct route *r, const struct tunnel *t, const struct pod *p)
{
	memset(r, 0, sizeof(*r));
	r->generation = tunnel_generation(t);
	r->local = route_local_pod(t, p);
}

static void route_bind_inbound(struct route *r, const struct tunnel *t,
			       const struct sockaddr_storage *src, const struct sockaddr_storage *dst)
{
	const struct mesh *m = tunnel_model(t);
	struct mesh_ip ip;
	uint16_t port = 0;

	r->peer = NULL;
	r->svc = NULL;
	r->svc_port = NULL;
	if (route_ss_to_ip(dst, &ip, &port))
		r->svc = route_service_of_pod(m, r->local, port);
	if (m && route_ss_to_ip(src, &ip, &port))
		r->peer = mesh_find_pod_by_ip(m, &ip);
}

void route_inbound(struct route *r, const struct tunnel *t, const struct pod *p,
		   const struct sockaddr_storage *src, const struct sockaddr_storage *dst)
{
	r->kind = ROUTE_PLAIN;
	r->inbound = true;
	r->via_vip = false;
	r->target = *dst;
	(void)p;
	route_bind_inbound(r, t, src, dst);
}

void route_rebind(struct route *r, const struct tunnel *t, const struct pod *p,
		  const struct sockaddr_storage *src, const struct sockaddr_storage *dst)
{
	if (r->generation == tunnel_generation(t))
		return;
	r->generation = tunnel_generation(t);
	r->local = route_local_pod(t, p);
	/* Only inbound routes are read after their first callback (the
	 * policy recheck); an outbound one keeps its decision and drops the
	 * pointers it can no longer vouch for. */
	if (r->inbound) {
		route_bind_inbound(r, t, src, dst);
		return;
	}
	r->peer = NULL;
	r->svc = NULL;
	r->svc_port = NULL;
}

void route_clear(struct route *r)
{
	free(r->peer_id);
	free(r->waypoint.identity);
	free(r->waypoint.authority);
	free(r->waypoint.name);
	memset(r, 0, sizeof(*r));
}
