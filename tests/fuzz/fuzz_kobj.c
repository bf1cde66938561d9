/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: arbitrary bytes through kobj_load_text (JSON or YAML),
 * then mesh_build and every lookup on what it built. Must never crash,
 * leak or trip a sanitizer; errors are expected and ignored. Every lookup
 * is asked again with the model's hash index set aside (the lookups then
 * scan): a different answer aborts. HTTPRoutes that built are asked to
 * route a few requests to every Service port and to rewrite a head: a
 * picked backend is one of the rule's, with a weight.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/kobj.h"
#include "model/httproute.h"
#include "model/mesh.h"
#include "conf/warren.h"
#include "netlink/inpod.h"

static const char *fz_header(void *ctx, const char *name, size_t *len)
{
	(void)ctx;
	*len = 2;
	return name[0] == 'x' ? "v2" : NULL;
}

static void check_routes(const struct mesh *m)
{
	static const char *const paths[] = { "/", "/v2/a", "/re/123", "/exact", "/q" };
	static const char head[] = "GET / HTTP/1.1\r\nHost: a\r\nx-a: 1\r\n\r\n";
	char out[512];

	for (size_t i = 0; i < m->n_services; i++)
		for (size_t k = 0; k < m->services[i].n_ports; k++)
			for (size_t j = 0; j < sizeof(paths) / sizeof(paths[0]); j++) {
				struct mesh_route_req rq = { .method = "GET", .path = paths[j],
							     .path_len = strlen(paths[j]), .query = "tier=gold",
							     .query_len = 9, .header = fz_header };
				const struct mesh_route_rule *r =
					mesh_route_select(m, &m->services[i], m->services[i].ports[k].port, &rq, NULL);
				const struct mesh_route_backend *b = r ? mesh_route_pick(r, (uint32_t)(j * 0x9e3779b9u)) : NULL;

				if (b && (b < r->backends || b >= r->backends + r->n_backends || !b->weight))
					abort();
				if (r && mesh_route_rewrite_head(head, sizeof(head) - 1, &r->req_mod, out, sizeof(out)) < 0 &&
				    r->req_mod.n_set + r->req_mod.n_add < 16)
					abort();
			}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mesh_index *idx;

/* The same question, indexed and scanned. */
#define SAME(m, call)                                      \
	do {                                               \
		const void *a_ = (call);                   \
		(m)->index = NULL;                         \
		if ((const void *)(call) != a_)            \
			abort();                           \
		(m)->index = idx;                          \
	} while (0)

static void same_selection(struct mesh *m)
{
	for (size_t i = 0; i < m->n_services; i++) {
		size_t a = 0, b = 0;
		const struct mesh_pod *p;

		do {
			p = mesh_service_next_pod(m, &m->services[i], &a);
			m->index = NULL;
			if (mesh_service_next_pod(m, &m->services[i], &b) != p)
				abort();
			m->index = idx;
		} while (p);
	}
	/* endpoints: the same with or without indexes, each with a port */
	for (size_t i = 0; i < m->n_services; i++) {
		for (size_t k = 0; k < m->services[i].n_ports; k++) {
			const struct mesh_service *s = &m->services[i];
			struct mesh_ep x, y;
			size_t a = 0, b = 0;
			bool more;

			do {
				more = mesh_service_next_endpoint(m, s, &s->ports[k], AF_INET, &a, &x);
				m->index = NULL;
				if (mesh_service_next_endpoint(m, s, &s->ports[k], AF_INET, &b, &y) != more ||
				    (more && (x.pod != y.pod || x.port != y.port || !x.port)))
					abort();
				m->index = idx;
			} while (more);
		}
	}
	for (size_t i = 0; i < m->n_pods; i++) {
		size_t a = 0, b = 0;
		const struct mesh_service *s;

		do {
			s = mesh_pod_next_service(m, &m->pods[i], &a);
			m->index = NULL;
			if (mesh_pod_next_service(m, &m->pods[i], &b) != s)
				abort();
			m->index = idx;
		} while (s);
	}
}

/* A numeric targetPort always resolves; a named one to 0 or to one of the
 * pod's own container ports. */
static void check_target_port(const struct mesh_pod *p, const struct mesh_service_port *sp)
{
	uint16_t tp = mesh_pod_target_port(p, sp);
	bool declared = false;

	if (!sp->target_port_name) {
		if (!tp)
			abort();
		return;
	}
	for (size_t i = 0; i < p->n_ports; i++)
		declared |= p->ports[i].port == tp;
	if (tp && !declared)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	json_t *objs = NULL;
	struct mesh *m = NULL;
	const char *why;
	char buf[64];

	if (kobj_load_text((const char *)data, size, "fuzz", &objs, err, sizeof(err)))
		return 0;
	if (mesh_build(objs, "fuzz", &m, err, sizeof(err)) == 0) {
		idx = m->index;
		for (size_t i = 0; i < m->n_pods; i++) {
			const struct mesh_pod *p = &m->pods[i];

			SAME(m, mesh_find_pod(m, p->namespace, p->name));
			SAME(m, mesh_find_pod_by_uid(m, p->uid));
			mesh_pod_enrolled(m, p->namespace, p->name, &why);
			{
				const char *bad;

				struct inpod_mode mode;
				const char *ifs = mesh_label(&p->annotations,
							     ANNOTATION_REROUTE_VIRTUAL_INTERFACES);

				/* an unreadable annotation never bypasses capture */
				if (!mesh_pod_capture_inbound(p, &bad) && bad)
					abort();
				/* an accepted reroute list holds only kernel-valid names */
				inpod_mode_init(&mode);
				if (ifs && inpod_mode_parse_reroute(&mode, ifs, buf, sizeof(buf)) == 0)
					for (size_t k = 0; k < mode.n_reroute; k++)
						if (!mode.reroute[k][0] || strpbrk(mode.reroute[k], "/: \t\n") ||
						    strlen(mode.reroute[k]) > 15)
							abort();
			}
			for (size_t j = 0; j < p->n_ips; j++) {
				SAME(m, mesh_find_pod_by_ip(m, &p->ips[j]));
				SAME(m, mesh_find_service_by_vip(m, &p->ips[j]));
				mesh_ip_str(&p->ips[j], buf, sizeof(buf));
			}
		}
		for (size_t i = 0; i < m->n_services; i++) {
			const struct mesh_service *s = &m->services[i];

			for (size_t j = 0; j < s->n_vips; j++) {
				SAME(m, mesh_find_service_by_vip(m, &s->vips[j]));
				SAME(m, mesh_find_pod_by_ip(m, &s->vips[j]));
			}
			for (size_t j = 0; j < m->n_pods; j++) {
				mesh_selector_matches(&s->selector, &m->pods[j].labels);
				for (size_t k = 0; k < s->n_ports; k++)
					check_target_port(&m->pods[j], &s->ports[k]);
			}
		}
		for (size_t i = 0; i < m->n_namespaces; i++) {
			SAME(m, mesh_find_namespace(m, m->namespaces[i].name));
			mesh_pod_enrolled(m, m->namespaces[i].name, "absent", &why);
		}
		same_selection(m);
		check_routes(m);
		mesh_free(m);
	}
	json_decref(objs);
	return 0;
}
