/* SPDX-License-Identifier: Apache-2.0 */
/* The waypoint's model sources (contract in waypoint/source.h). */
#include "waypoint/source.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf/log.h"
#include "conf/warren.h"
#include "model/authz.h"
#include "model/mesh.h"
#include "model/waypoint.h"
#include "tunnel/kube_watch.h"
#include "tunnel/loop.h"
#include "waypoint/proxy.h"
#include "waypoint/wmodel.h"

#define WPS_ORIGIN "the API server"

struct wp_source {
	struct wp *w;
	struct wp_source_conf conf;
	struct kube_watch *kw;
	struct loop_timer *poll;
	struct stat seen, pending; /* the file as last loaded / as last polled */
	uint64_t gen, loads, errors;
	json_t *refused_list;      /* [{kind, name, error}] of the model in use */
	char last_error[512];
};

static void wps_policy(const struct authz_policy_info *in, void *ctx)
{
	(void)ctx;
	for (size_t i = 0; i < in->n_msgs; i++)
		log_info("policy %s (%s, %s): %s: %s", in->key, in->action, authz_state_name(in->state),
			 authz_msg_level_name(in->msgs[i].level), in->msgs[i].text);
}

static void wps_failed(struct wp_source *s, const char *origin, const char *err)
{
	s->errors++;
	snprintf(s->last_error, sizeof(s->last_error), "%s: %s", origin, err);
	log_error("model from %s not loaded: %s; %s", origin, err,
		  s->w->model ? "the last good model stays in use" : "no model: every stream is refused");
}

/* Compiles m's policies and puts the model in use (m and refused owned). */
static int wps_install(struct wp_source *s, struct mesh *m, json_t *refused, json_t *list,
		       const char *origin)
{
	struct wp *w = s->w;
	struct authz_set *set = NULL;
	const struct mesh_gateway *gw;
	struct wmodel *wm;

	if (authz_compile_waypoint(m->authorization_policies, s->conf.root_ns, w->ns, w->name, &set)) {
		mesh_free(m);
		json_decref(refused);
		json_decref(list);
		wps_failed(s, origin, "cannot compile the policies");
		return -ENOMEM;
	}
	authz_policies_foreach(set, wps_policy, NULL);
	gw = mesh_find_gateway(m, w->ns, w->name);
	if (!gw || !gw->waypoint)
		log_warn("Gateway %s/%s %s in the model from %s: no destination is served", w->ns, w->name,
			 gw ? "is not of class " GATEWAY_CLASS_WAYPOINT : "is not", origin);
	log_info("model generation %llu from %s: %zu policies (%zu invalid), %zu refused objects",
		 (unsigned long long)(s->gen + 1), origin, authz_set_count(set),
		 authz_set_invalid_count(set), list ? json_array_size(list) : 0);
	wm = wmodel_new(m, set, refused, s->gen + 1);
	if (!wm) {
		json_decref(list);
		wps_failed(s, origin, "out of memory");
		return -ENOMEM;
	}
	s->gen++;
	s->loads++;
	wmodel_unref(w->model);
	w->model = wm;
	json_decref(s->refused_list);
	s->refused_list = list;
	return 0;
}

/* ---- the mesh file ---- */

static bool wps_same(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static int wps_load_file(struct wp_source *s)
{
	struct mesh *m = NULL;
	char err[512];

	if (mesh_load_path(s->conf.mesh_path, &m, err, sizeof(err))) {
		wps_failed(s, s->conf.mesh_path, err);
		return -EINVAL;
	}
	return wps_install(s, m, NULL, NULL, s->conf.mesh_path);
}

/* A change is loaded once the file has stayed the same for one interval
 * (a writer still writing is not read). A directory's own times change
 * when a file in it is replaced by rename. */
static void wps_poll_cb(struct loop *l, void *ctx)
{
	struct wp_source *s = ctx;
	struct stat st;

	s->poll = loop_timer_add(l, s->conf.reload_ms, wps_poll_cb, s);
	if (stat(s->conf.mesh_path, &st) < 0 || wps_same(&st, &s->seen))
		return;
	if (!wps_same(&st, &s->pending)) {
		s->pending = st;
		return;
	}
	s->seen = st;
	log_info("mesh file %s changed: reloading", s->conf.mesh_path);
	wps_load_file(s);
}

/* ---- the API server ---- */

struct wps_refusal {
	json_t *refused, *list;
	const char *root_ns;
};

static void wps_refused_one(void *ctx, const char *kind, const char *key, json_t *obj, const char *err)
{
	struct wps_refusal *r = ctx;

	json_array_append_new(r->list, json_pack("{s:s,s:s,s:s}", "kind", kind, "name", key, "error",
						 err ? err : "?"));
	wmodel_refuse(r->refused, kind, key, obj, err, r->root_ns);
}

static int wps_rebuild(void *ctx, json_t *all)
{
	struct wp_source *s = ctx;
	struct wps_refusal r = { json_object(), json_array(),
				 s->conf.root_ns ? s->conf.root_ns : AUTHZ_DEFAULT_ROOT_NAMESPACE };
	struct mesh *m = NULL;
	char err[512] = "";
	int ret;

	if (!r.refused || !r.list) {
		json_decref(r.refused);
		json_decref(r.list);
		wps_failed(s, WPS_ORIGIN, "out of memory");
		return -ENOMEM;
	}
	kube_watch_foreach_refused(s->kw, wps_refused_one, &r);
	ret = mesh_build_shared(all, WPS_ORIGIN, NULL, NULL, NULL, NULL, NULL, &m, err, sizeof(err));
	if (ret < 0) {
		json_decref(r.refused);
		json_decref(r.list);
		wps_failed(s, WPS_ORIGIN, err[0] ? err : strerror(-ret));
		return ret;
	}
	return wps_install(s, m, r.refused, r.list, WPS_ORIGIN);
}

/* ---- start, stop, state ---- */

int wp_source_start(struct wp *w, const struct wp_source_conf *conf, struct wp_source **out)
{
	struct wp_source *s = calloc(1, sizeof(*s));
	int ret;

	*out = s;
	if (!s)
		return -ENOMEM;
	s->w = w;
	s->conf = *conf;
	if (!s->conf.reload_ms)
		s->conf.reload_ms = 500;
	if (conf->kube) {
		struct kube_watch_host h = {
			.loop = w->loop,
			.kubeconfig = conf->kubeconfig,
			.account = "the waypoint's account",
			.rebuild = wps_rebuild,
			.ctx = s,
		};

		return kube_watch_new(&h, &s->kw);
	}
	if (stat(conf->mesh_path, &s->seen) < 0) {
		log_error("mesh file %s: %s", conf->mesh_path, strerror(errno));
		return -errno;
	}
	s->pending = s->seen;
	ret = wps_load_file(s);
	if (ret < 0)
		return ret;
	s->poll = loop_timer_add(w->loop, s->conf.reload_ms, wps_poll_cb, s);
	return s->poll ? 0 : -ENOMEM;
}

void wp_source_free(struct wp_source *s)
{
	if (!s)
		return;
	kube_watch_free(s->kw);
	if (s->poll)
		loop_timer_cancel(s->w->loop, s->poll);
	json_decref(s->refused_list);
	free(s);
}

json_t *wp_source_json(const struct wp_source *s)
{
	json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:o,s:o}", "source", s->kw ? "kubernetes" : "file",
			      "generation", (json_int_t)s->gen, "loads", (json_int_t)s->loads,
			      "errors", (json_int_t)s->errors,
			      "lastError", s->last_error[0] ? json_string(s->last_error) : json_null(),
			      "refused", s->refused_list ? json_incref(s->refused_list) : json_array());

	if (o && s->kw)
		json_object_set_new(o, "kubernetes", kube_watch_state(s->kw));
	else if (o)
		json_object_set_new(o, "path", json_string(s->conf.mesh_path));
	return o;
}

void wp_source_metrics(const struct wp_source *s, FILE *f)
{
	fprintf(f, "# HELP warren_waypoint_model_generation The model in use (1, 2, ... as installed).\n"
		   "# TYPE warren_waypoint_model_generation gauge\nwarren_waypoint_model_generation %llu\n"
		   "# HELP warren_waypoint_model_reload_errors_total Models that did not load (the last good one stays).\n"
		   "# TYPE warren_waypoint_model_reload_errors_total counter\nwarren_waypoint_model_reload_errors_total %llu\n"
		   "# HELP warren_waypoint_refused_objects Objects the source refused whose Services fail closed.\n"
		   "# TYPE warren_waypoint_refused_objects gauge\nwarren_waypoint_refused_objects %zu\n",
		   (unsigned long long)s->gen, (unsigned long long)s->errors,
		   s->refused_list ? json_array_size(s->refused_list) : 0);
	if (s->kw)
		kube_watch_write_metrics(s->kw, f);
}
