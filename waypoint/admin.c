/* SPDX-License-Identifier: Apache-2.0 */
/* The waypoint's admin API (contract in waypoint/admin.h). */
#include "waypoint/admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "conf/log.h"
#include "model/authz.h"
#include "model/httproute.h"
#include "model/waypoint.h"
#include "tunnel/http.h"
#include "waypoint/proxy.h"
#include "waypoint/source.h"
#include "waypoint/wmodel.h"

struct wp_admin {
	struct wp *w;
	struct wp_source *src;
	struct http_server *hs;
	char *path;
};

static void wpa_policy(const struct authz_policy_info *in, void *ctx)
{
	json_t *arr = ctx, *msgs = json_array();

	for (size_t i = 0; msgs && i < in->n_msgs; i++)
		json_array_append_new(msgs, json_pack("{s:s,s:s}", "level",
						      authz_msg_level_name(in->msgs[i].level), "text",
						      in->msgs[i].text));
	json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:o}", "key", in->key, "scope", in->scope,
					     "action", in->action, "state", authz_state_name(in->state),
					     "messages", msgs ? msgs : json_array()));
}

static json_t *wpa_routes(const struct wp *w)
{
	const struct wmodel *wm = w->model;
	json_t *arr = json_array();

	for (size_t i = 0; arr && wm && i < wm->mesh->n_httproutes; i++) {
		const struct mesh_httproute *r = &wm->mesh->httproutes[i];
		json_t *parents = json_array(), *rules = json_array();

		for (size_t k = 0; parents && k < r->n_parents; k++) {
			const char *why = wmodel_refused(wm, r->namespace, r->parents[k].service);
			char p[320];

			if (r->parents[k].port)
				snprintf(p, sizeof(p), "%s/%s:%u", r->namespace, r->parents[k].service,
					 r->parents[k].port);
			else
				snprintf(p, sizeof(p), "%s/%s", r->namespace, r->parents[k].service);
			json_array_append_new(parents, json_pack("{s:s,s:s}", "service", p, "state",
								 why ? why : "active"));
		}
		for (size_t k = 0; rules && k < r->n_rules; k++) {
			const struct mesh_route_rule *ru = &r->rules[k];
			json_t *bes = json_array();

			for (size_t b = 0; bes && b < ru->n_backends; b++)
				json_array_append_new(bes, json_pack("{s:s,s:i,s:i}", "service", ru->backends[b].service,
								     "port", ru->backends[b].port, "weight",
								     (int)ru->backends[b].weight));
			json_array_append_new(rules, json_pack("{s:i,s:o,s:i,s:i}", "matches", (int)ru->n_matches,
							       "backends", bes ? bes : json_array(),
							       "timeoutMs", (int)ru->timeout_ms,
							       "backendTimeoutMs", (int)ru->backend_timeout_ms));
		}
		json_array_append_new(arr, json_pack("{s:s,s:s,s:o,s:o}", "namespace", r->namespace, "name", r->name,
						     "parents", parents ? parents : json_array(), "rules",
						     rules ? rules : json_array()));
	}
	return arr;
}

static void wpa_handle(void *ctx, const struct http_request *req, struct http_response *resp)
{
	struct wp_admin *a = ctx;
	struct wp *w = a->w;
	json_t *j = NULL;

	if (req->method_len != 3 || memcmp(req->method, "GET", 3)) {
		resp->status = 405;
	} else if (req->path_len == 9 && !memcmp(req->path, "/waypoint", 9)) {
		j = json_pack("{s:s,s:s,s:s,s:b,s:I,s:I,s:I,s:o}", "namespace", w->ns, "name", w->name,
			      "identity", w->id ? w->id : "", "ready", w->model != NULL,
			      "requests", (json_int_t)w->requests, "denied", (json_int_t)w->denied,
			      "streams", (json_int_t)w->n_conns, "source", wp_source_json(a->src));
	} else if (req->path_len == 16 && !memcmp(req->path, "/waypoint/routes", 16)) {
		j = wpa_routes(w);
	} else if (req->path_len == 18 && !memcmp(req->path, "/waypoint/policies", 18)) {
		j = json_array();
		if (j && w->model)
			authz_policies_foreach(w->model->authz, wpa_policy, j);
	} else {
		resp->status = 404;
	}
	if (j) {
		resp->body = json_dumps(j, JSON_COMPACT);
		resp->body_len = resp->body ? strlen(resp->body) : 0;
		resp->status = resp->body ? 200 : 500;
		resp->content_type = "application/json";
		json_decref(j);
	}
	if (!resp->body) {
		resp->content_type = "text/plain";
		resp->body = strdup(resp->status == 404 ? "not found\n" : resp->status == 405 ? "GET only\n" :
							   "out of memory\n");
		resp->body_len = resp->body ? strlen(resp->body) : 0;
	}
}

int wp_admin_start(struct wp *w, struct wp_source *src, const char *path, struct wp_admin **out)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct wp_admin *a;
	mode_t old;
	int fd, ret;

	*out = NULL;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_error("admin socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	a = calloc(1, sizeof(*a));
	if (!a || !(a->path = strdup(path))) {
		free(a);
		return -ENOMEM;
	}
	a->w = w;
	a->src = src;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		goto fail;
	}
	unlink(path);
	old = umask(0177); /* the socket is born 0600 */
	ret = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (ret < 0 || listen(fd, 16) < 0) {
		ret = -errno;
		close(fd);
		goto fail;
	}
	ret = http_server_new(w->loop, fd, "admin", wpa_handle, a, &a->hs); /* owns fd */
	if (ret < 0)
		goto fail;
	*out = a;
	return 0;
fail:
	log_error("cannot serve the admin API on %s: %s", path, strerror(-ret));
	http_server_free(a->hs);
	free(a->path);
	free(a);
	return ret;
}

void wp_admin_free(struct wp_admin *a)
{
	if (!a)
		return;
	http_server_free(a->hs);
	unlink(a->path);
	free(a->path);
	free(a);
}
