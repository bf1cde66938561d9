/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where the waypoint's model comes from, kept current without a restart
 * (source.c): the mesh file (--mesh, polled; a change is loaded once the
 * file has stayed the same for one interval) or the Kubernetes API server
 * (--kube: the tunnel's source, tunnel/kube_watch.h). Each new model gets
 * the waypoint's policies compiled (authz_compile_waypoint) and goes in
 * use as w->model (waypoint/wmodel.h): new requests are decided with it.
 *
 * Fail closed: a file that does not load leaves the last good model in use
 * (logged, counted); the first must load or the waypoint does not start.
 * From the API server an object the builder refuses stays out of the
 * model (its previous version stays), and when it is an HTTPRoute (or an
 * AuthorizationPolicy) the Services it names (its parentRefs of kind
 * Service; every Service of its namespace when they cannot be read; all
 * when a policy is in the root namespace) are refused with 503 until the
 * object is fixed or deleted. Until every resource has listed once there
 * is no model and streams are refused.
 *
 * Ownership: the source keeps pointers to conf's strings and to w.
 * Single-threaded (w->loop).
 */
#ifndef WARREN_WAYPOINT_SOURCE_H
#define WARREN_WAYPOINT_SOURCE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

struct wp;
struct wp_source;

struct wp_source_conf {
	const char *mesh_path;  /* file mode, or NULL */
	bool kube;              /* Kubernetes mode */
	const char *kubeconfig; /* Kubernetes mode: NULL for in-cluster */
	const char *root_ns;    /* the mesh's root namespace (policies), may be NULL */
	unsigned reload_ms;     /* file mode: poll interval */
};

/* File mode: the first model is loaded now (0, or -errno logged); then
 * both modes keep it current on w->loop. */
int wp_source_start(struct wp *w, const struct wp_source_conf *conf, struct wp_source **out);
void wp_source_free(struct wp_source *s);
/* The source's state: mode, generation, loads, errors, the last error, the
 * refused objects, and (Kubernetes) each resource's state. */
json_t *wp_source_json(const struct wp_source *s);
/* Prometheus text: warren_waypoint_model_generation, _reloads_total,
 * _reload_errors_total, _refused_objects. */
void wp_source_metrics(const struct wp_source *s, FILE *f);

#endif
