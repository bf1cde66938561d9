/* SPDX-License-Identifier: Apache-2.0 */
/* Waypoint attachment (contract in model/waypoint.h). */
#include "model/waypoint.h"

#include <string.h>
#include <sys/socket.h>

#include "conf/warren.h"

const struct mesh_gateway *mesh_find_gateway(const struct mesh *m, const char *ns, const char *name)
{
	/* Gateways are few (one per waypoint): a scan. */
	for (size_t i = 0; i < m->n_gateways; i++)
		if (!strcmp(m->gateways[i].name, name) && !strcmp(m->gateways[i].namespace, ns))
			return &m->gateways[i];
	return NULL;
}

const struct mesh_gateway *mesh_pod_waypoint_gateway(const struct mesh *m, const struct mesh_pod *p)
{
	const char *gn = mesh_label(&p->labels, LABEL_GATEWAY_NAME);
	const struct mesh_gateway *g = gn ? mesh_find_gateway(m, p->namespace, gn) : NULL;

	return g && g->waypoint ? g : NULL;
}

const struct mesh_pod *mesh_gateway_next_ready_pod(const struct mesh_gateway *gw, int family,
						   size_t *pos)
{
	while (*pos < gw->n_pods) {
		const struct mesh_pod *p = gw->pods[(*pos)++];
		bool fam = family == AF_UNSPEC && p->n_ips;

		for (size_t i = 0; !fam && i < p->n_ips; i++)
			fam = p->ips[i].family == family;
		if (p->ready && !p->host_network && !p->finished && fam)
			return p;
	}
	return NULL;
}

/* labels: the object's own; ns: its namespace. */
static void waypoint_resolve(const struct mesh *m, const struct mesh_labels *labels, const char *ns,
		    bool for_service, struct mesh_wp_binding *out)
{
	const struct mesh_namespace *n = mesh_find_namespace(m, ns);
	const struct mesh_labels *from = labels;
	const char *name = mesh_label(labels, LABEL_USE_WAYPOINT), *wns;
	const struct mesh_gateway *g;
	size_t pos = 0;

	memset(out, 0, sizeof(*out));
	out->state = MESH_WP_NONE;
	if (!name && n) {
		from = &n->labels;
		name = mesh_label(from, LABEL_USE_WAYPOINT);
	}
	if (!name || !*name || !strcmp(name, "none")) {
		out->reason = name ? "opted out (" LABEL_USE_WAYPOINT "=none)" : "no " LABEL_USE_WAYPOINT " label";
		return;
	}
	wns = mesh_label(from, LABEL_USE_WAYPOINT_NAMESPACE);
	out->ns = wns && *wns ? wns : ns;
	out->name = name;
	g = mesh_find_gateway(m, out->ns, name);
	if (!g || !g->waypoint) {
		out->state = MESH_WP_MISSING;
		out->reason = g ? "waypoint Gateway is not of class " GATEWAY_CLASS_WAYPOINT
				: "waypoint Gateway does not exist";
		return;
	}
	if (g->waypoint_for == MESH_WAYPOINT_FOR_NONE ||
	    (for_service && g->waypoint_for == MESH_WAYPOINT_FOR_WORKLOAD) ||
	    (!for_service && g->waypoint_for == MESH_WAYPOINT_FOR_SERVICE)) {
		out->ns = out->name = NULL;
		out->reason = for_service ? "the waypoint does not serve Services (" LABEL_WAYPOINT_FOR ")"
					  : "the waypoint does not serve workloads (" LABEL_WAYPOINT_FOR ")";
		return;
	}
	out->gw = g;
	if (!mesh_gateway_next_ready_pod(g, AF_UNSPEC, &pos)) {
		out->state = MESH_WP_NOT_READY;
		out->reason = "waypoint has no ready pod";
		return;
	}
	out->state = MESH_WP_BOUND;
	out->reason = "bound";
}

void mesh_service_waypoint(const struct mesh *m, const struct mesh_service *svc,
			   struct mesh_wp_binding *out)
{
	const struct mesh_gateway *own = mesh_find_gateway(m, svc->namespace, svc->name);

	if (own && own->waypoint) { /* the waypoint's own Service */
		memset(out, 0, sizeof(*out));
		out->reason = "is a waypoint's Service";
		return;
	}
	waypoint_resolve(m, &svc->labels, svc->namespace, true, out);
}

void mesh_pod_waypoint(const struct mesh *m, const struct mesh_pod *p, struct mesh_wp_binding *out)
{
	if (mesh_pod_waypoint_gateway(m, p)) {
		memset(out, 0, sizeof(*out));
		out->reason = "is a waypoint pod";
		return;
	}
	waypoint_resolve(m, &p->labels, p->namespace, false, out);
}

bool mesh_pod_requires_waypoint(const struct mesh *m, const struct mesh_pod *p,
				struct mesh_wp_binding *out)
{
	const char *opt = mesh_label(&p->annotations, MESH_ANNOTATION_ALLOW_DIRECT);
	const struct mesh_service *s;
	size_t pos = 0;

	mesh_pod_waypoint(m, p, out);
	if (out->state != MESH_WP_NONE)
		goto bound;
	while ((s = mesh_pod_next_service(m, p, &pos))) {
		mesh_service_waypoint(m, s, out);
		if (out->state != MESH_WP_NONE)
			goto bound;
	}
	return false;
bound:
	return !(opt && !strcmp(opt, "true"));
}

bool mesh_waypoint_identity(const struct mesh_wp_binding *b, const char *peer_ns,
			    const char *peer_sa)
{
	if (b->state == MESH_WP_NONE || !peer_ns || !peer_sa || strcmp(b->ns, peer_ns))
		return false;
	if (!strcmp(b->name, peer_sa))
		return true;
	for (size_t i = 0; b->gw && i < b->gw->n_pods; i++)
		if (!strcmp(b->gw->pods[i]->service_account, peer_sa))
			return true;
	return false;
}

const char *mesh_wp_state_name(enum mesh_wp_state s)
{
	switch (s) {
	case MESH_WP_NONE:
		return "none";
	case MESH_WP_BOUND:
		return "bound";
	case MESH_WP_MISSING:
		return "missing";
	case MESH_WP_NOT_READY:
		return "not-ready";
	}
	return "?";
}
