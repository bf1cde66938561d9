/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mesh model (contract in model/mesh.h).
 *
 * mesh_build() deep-copies the input objects and points every string of the
 * model into that private copy, so the model does not depend on the caller's
 * array and mesh_free() releases all strings with one json_decref().
 * mesh_build_shared() holds references to the caller's objects instead
 * (jansson's reference counts are atomic; the objects are never changed). The
 * copy lives in struct mesh_impl around the public struct; only models made
 * by mesh_build()/mesh_load_path() may be passed to mesh_free().
 *
 * Arrays keep the input order (directory mode: file name order, then order
 * in the file). Lookups go through the model's hash indexes
 * (model/mesh_index.c), built once the model is complete; a struct mesh
 * filled by hand (tests) has none and is scanned, with the same answers.
 * Duplicates (same kind,
 * namespace and name) fail the build; they are found through a temporary
 * sorted index, O(n log n).
 */
#include "model/mesh.h"
#include "model/mesh_index.h"
#include "model/httproute.h"

#include <arpa/inet.h>
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf/errbuf.h"
#include "conf/kobj.h"
#include "conf/objcheck.h"
#include "conf/warren.h"

#define MESH_MAGIC 0x6d657368u

struct mesh_impl {
	struct mesh pub;
	unsigned magic;
	json_t *src; /* private deep copy; every model string points into it */
};

#define impl_of(m) ((struct mesh_impl *)((char *)(m) - offsetof(struct mesh_impl, pub)))

/* One object being decoded, for error messages. */
struct objctx {
	const char *origin;
	size_t index; /* position in its file, from 1 */
	const char *kind;
	const char *ns;   /* NULL for cluster-scoped kinds */
	const char *name; /* NULL until known */
	char *err;
	size_t errlen;
};

static void __attribute__((format(printf, 3, 4)))
mesh_oerr(const struct objctx *c, const char *field, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!c->err || !c->errlen)
		return;
	if (c->name && c->ns)
		n = snprintf(c->err, c->errlen, "%s: object %zu (%s %s/%s): %s: ", c->origin,
			     c->index, c->kind, c->ns, c->name, field);
	else if (c->name)
		n = snprintf(c->err, c->errlen, "%s: object %zu (%s %s): %s: ", c->origin, c->index,
			     c->kind, c->name, field);
	else
		n = snprintf(c->err, c->errlen, "%s: object %zu (%s): %s: ", c->origin, c->index,
			     c->kind, field);
	if (n < 0 || (size_t)n >= c->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

/* ---- small typed getters: absent or null means "unset" ---- */

static int mesh_get_string(const struct objctx *c, json_t *parent, const char *key, const char *field,
		      const char *dflt, const char **out)
{
	json_t *v = json_object_get(parent, key);

	if (!v || json_is_null(v)) {
		*out = dflt;
		return 0;
	}
	if (!json_is_string(v)) {
		mesh_oerr(c, field, "expected a string, got %s", errbuf_json_type(v));
		return -EINVAL;
	}
	*out = json_string_value(v);
	return 0;
}

static int mesh_get_object(const struct objctx *c, json_t *parent, const char *key, const char *field,
		      json_t **out)
{
	json_t *v = json_object_get(parent, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v)) {
		mesh_oerr(c, field, "expected a mapping, got %s", errbuf_json_type(v));
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int mesh_get_array(const struct objctx *c, json_t *parent, const char *key, const char *field,
		     json_t **out)
{
	json_t *v = json_object_get(parent, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v)) {
		mesh_oerr(c, field, "expected a list, got %s", errbuf_json_type(v));
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int mesh_get_bool(const struct objctx *c, json_t *parent, const char *key, const char *field,
		    bool *out)
{
	json_t *v = json_object_get(parent, key);

	*out = false;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v)) {
		mesh_oerr(c, field, "expected true or false, got %s", errbuf_json_type(v));
		return -EINVAL;
	}
	*out = json_is_true(v);
	return 0;
}

/* Label maps: every value must be a string (Kubernetes rejects others; a
 * YAML "version: 1" needs quotes). */
static int mesh_get_labels(const struct objctx *c, json_t *parent, const char *key, const char *field,
		      struct mesh_labels *out)
{
	json_t *obj, *v;
	const char *k;
	size_t i = 0;
	int ret;

	out->items = NULL;
	out->n = 0;
	ret = mesh_get_object(c, parent, key, field, &obj);
	if (ret || !obj || !json_object_size(obj))
		return ret;
	out->items = calloc(json_object_size(obj), sizeof(*out->items));
	if (!out->items) {
		mesh_oerr(c, field, "out of memory");
		return -ENOMEM;
	}
	json_object_foreach(obj, k, v) {
		if (!json_is_string(v)) {
			mesh_oerr(c, field, "value of \"%s\" must be a string, got %s (quote it)", k,
			     errbuf_json_type(v));
			return -EINVAL; /* items freed with the model */
		}
		out->items[i].key = k;
		out->items[i].value = json_string_value(v);
		out->n = ++i;
	}
	return 0;
}

static int mesh_parse_ip_field(const struct objctx *c, const char *field, const char *s,
			  struct mesh_ip *ip)
{
	if (mesh_ip_parse(s, ip)) {
		mesh_oerr(c, field, "\"%s\" is not an IPv4 or IPv6 address", s);
		return -EINVAL;
	}
	return 0;
}

/* metadata.name (required) and metadata.namespace (default "default"). */
static int mesh_decode_meta(struct objctx *c, json_t *o, bool namespaced, json_t **meta)
{
	const char *name, *ns = NULL;
	int ret;

	ret = mesh_get_object(c, o, "metadata", "metadata", meta);
	if (ret)
		return ret;
	if (!*meta) {
		mesh_oerr(c, "metadata", "missing; every object needs metadata.name");
		return -EINVAL;
	}
	ret = mesh_get_string(c, *meta, "name", "metadata.name", NULL, &name);
	if (ret)
		return ret;
	if (!name || !*name) {
		mesh_oerr(c, "metadata.name", "missing or empty");
		return -EINVAL;
	}
	if (namespaced) {
		ret = mesh_get_string(c, *meta, "namespace", "metadata.namespace", "default", &ns);
		if (ret)
			return ret;
		if (!*ns)
			ns = "default";
	}
	c->name = name;
	c->ns = ns;
	return 0;
}

/* ---- kinds ---- */

static int mesh_decode_namespace(struct objctx *c, json_t *o, struct mesh_namespace *out)
{
	json_t *meta;
	int ret;

	ret = mesh_decode_meta(c, o, false, &meta);
	if (ret)
		return ret;
	out->name = c->name;
	return mesh_get_labels(c, meta, "labels", "metadata.labels", &out->labels);
}

static int mesh_decode_pod_status(struct objctx *c, json_t *status, struct mesh_pod *p)
{
	json_t *ips, *conds, *e;
	const char *phase, *ip;
	size_t i;
	int ret;

	p->ready = p->running = true;
	if (!status)
		return 0;
	ret = mesh_get_string(c, status, "phase", "status.phase", NULL, &phase);
	if (ret)
		return ret;
	if (phase && strcmp(phase, "Running"))
		p->ready = p->running = false;
	/* A finished pod's IP goes back to the pool and may be a live pod's now. */
	p->finished = phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"));
	ret = mesh_get_array(c, status, "conditions", "status.conditions", &conds);
	if (ret)
		return ret;
	json_array_foreach(conds, i, e) {
		const char *type, *st;

		if (!json_is_object(e)) {
			mesh_oerr(c, "status.conditions", "item %zu is %s, expected a mapping", i,
			     errbuf_json_type(e));
			return -EINVAL;
		}
		ret = mesh_get_string(c, e, "type", "status.conditions[].type", "", &type);
		if (!ret)
			ret = mesh_get_string(c, e, "status", "status.conditions[].status", "", &st);
		if (ret)
			return ret;
		if (!strcmp(type, "Ready") && !strcmp(st, "False"))
			p->ready = false;
	}

	ret = mesh_get_array(c, status, "podIPs", "status.podIPs", &ips);
	if (ret)
		return ret;
	if (ips && json_array_size(ips)) {
		p->ips = calloc(json_array_size(ips), sizeof(*p->ips));
		if (!p->ips) {
			mesh_oerr(c, "status.podIPs", "out of memory");
			return -ENOMEM;
		}
		json_array_foreach(ips, i, e) {
			struct mesh_ip a;

			if (!json_is_object(e)) {
				mesh_oerr(c, "status.podIPs", "item %zu is %s, expected {ip: ...}", i,
				     errbuf_json_type(e));
				return -EINVAL;
			}
			ret = mesh_get_string(c, e, "ip", "status.podIPs[].ip", NULL, &ip);
			if (ret)
				return ret;
			if (!ip) {
				mesh_oerr(c, "status.podIPs[].ip", "missing in item %zu", i);
				return -EINVAL;
			}
			ret = mesh_parse_ip_field(c, "status.podIPs[].ip", ip, &a);
			if (ret)
				return ret;
			if (!mesh_ip_in(p->ips, p->n_ips, &a))
				p->ips[p->n_ips++] = a;
		}
		return 0;
	}
	ret = mesh_get_string(c, status, "podIP", "status.podIP", "", &ip);
	if (ret || !*ip)
		return ret;
	p->ips = calloc(1, sizeof(*p->ips));
	if (!p->ips) {
		mesh_oerr(c, "status.podIP", "out of memory");
		return -ENOMEM;
	}
	ret = mesh_parse_ip_field(c, "status.podIP", ip, &p->ips[0]);
	if (ret)
		return ret;
	p->n_ips = 1;
	return 0;
}

static int mesh_get_port(const struct objctx *c, json_t *v, const char *field, size_t i,
		    uint16_t *out)
{
	json_int_t n;

	if (!json_is_integer(v)) {
		mesh_oerr(c, field, "item %zu: expected an integer, got %s", i, errbuf_json_type(v));
		return -EINVAL;
	}
	n = json_integer_value(v);
	if (n < 1 || n > 65535) {
		mesh_oerr(c, field, "item %zu: %lld is not a port (1-65535)", i, (long long)n);
		return -EINVAL;
	}
	*out = (uint16_t)n;
	return 0;
}

/* One container list's named ports into p->ports (room for all counted by
 * the caller). Every port is checked; of initContainers only sidecars
 * (restartPolicy Always) are kept, the ones that keep running and serve. */
static int mesh_decode_container_ports(const struct objctx *c, json_t *list, const char *field,
				  bool sidecars_only, struct mesh_pod *p)
{
	json_t *ct, *ports, *e, *v;
	const char *rp, *name, *proto;
	char f_rp[64], f_ports[64], f_name[64], f_proto[64], f_cport[64];
	size_t i, k;
	bool keep;
	int ret;

	snprintf(f_rp, sizeof(f_rp), "%s[].restartPolicy", field);
	snprintf(f_ports, sizeof(f_ports), "%s[].ports", field);
	snprintf(f_name, sizeof(f_name), "%s[].ports[].name", field);
	snprintf(f_proto, sizeof(f_proto), "%s[].ports[].protocol", field);
	snprintf(f_cport, sizeof(f_cport), "%s[].ports[].containerPort", field);
	json_array_foreach(list, i, ct) {
		if (!json_is_object(ct)) {
			mesh_oerr(c, field, "item %zu is %s, expected a mapping", i, errbuf_json_type(ct));
			return -EINVAL;
		}
		ret = mesh_get_string(c, ct, "restartPolicy", f_rp, "", &rp);
		if (ret)
			return ret;
		keep = !sidecars_only || !strcmp(rp, "Always");
		ret = mesh_get_array(c, ct, "ports", f_ports, &ports);
		if (ret)
			return ret;
		json_array_foreach(ports, k, e) {
			struct mesh_container_port *cp = &p->ports[p->n_ports];

			if (!json_is_object(e)) {
				mesh_oerr(c, f_ports, "item %zu is %s, expected a mapping", k,
				     errbuf_json_type(e));
				return -EINVAL;
			}
			ret = mesh_get_string(c, e, "name", f_name, "", &name);
			if (!ret)
				ret = mesh_get_string(c, e, "protocol", f_proto, "TCP", &proto);
			if (ret)
				return ret;
			v = json_object_get(e, "containerPort");
			if (!v) {
				mesh_oerr(c, f_cport, "missing in item %zu", k);
				return -EINVAL;
			}
			ret = mesh_get_port(c, v, f_cport, k, &cp->port);
			if (ret)
				return ret;
			if (!*name || !keep)
				continue; /* only a name can be a targetPort's */
			cp->name = name;
			cp->protocol = proto;
			p->n_ports++;
		}
	}
	return 0;
}

static int mesh_decode_pod_ports(const struct objctx *c, json_t *spec, struct mesh_pod *p)
{
	json_t *ctrs, *inits, *ct;
	size_t i, n = 0;
	int ret;

	ret = mesh_get_array(c, spec, "containers", "spec.containers", &ctrs);
	if (!ret)
		ret = mesh_get_array(c, spec, "initContainers", "spec.initContainers", &inits);
	if (ret)
		return ret;
	json_array_foreach(ctrs, i, ct)
		n += json_array_size(json_object_get(ct, "ports"));
	json_array_foreach(inits, i, ct)
		n += json_array_size(json_object_get(ct, "ports"));
	p->ports = n ? calloc(n, sizeof(*p->ports)) : NULL;
	if (n && !p->ports) {
		mesh_oerr(c, "spec.containers", "out of memory");
		return -ENOMEM;
	}
	ret = mesh_decode_container_ports(c, ctrs, "spec.containers", false, p);
	if (!ret)
		ret = mesh_decode_container_ports(c, inits, "spec.initContainers", true, p);
	return ret;
}

static int mesh_decode_pod(struct objctx *c, json_t *o, struct mesh_pod *p)
{
	json_t *meta, *spec, *status;
	const char *sa;
	int ret;

	ret = mesh_decode_meta(c, o, true, &meta);
	if (ret)
		return ret;
	p->namespace = c->ns;
	p->name = c->name;
	ret = mesh_get_string(c, meta, "uid", "metadata.uid", "", &p->uid);
	if (!ret)
		ret = mesh_get_labels(c, meta, "labels", "metadata.labels", &p->labels);
	if (!ret)
		ret = mesh_get_labels(c, meta, "annotations", "metadata.annotations", &p->annotations);
	if (!ret)
		ret = mesh_get_object(c, o, "spec", "spec", &spec);
	if (!ret)
		ret = mesh_get_object(c, o, "status", "status", &status);
	if (ret)
		return ret;
	p->service_account = "default";
	p->node = "";
	if (spec) {
		/* serviceAccount is the deprecated alias; serviceAccountName wins */
		ret = mesh_get_string(c, spec, "serviceAccount", "spec.serviceAccount", NULL, &sa);
		if (ret)
			return ret;
		if (sa && *sa)
			p->service_account = sa;
		ret = mesh_get_string(c, spec, "serviceAccountName", "spec.serviceAccountName", NULL, &sa);
		if (ret)
			return ret;
		if (sa && *sa)
			p->service_account = sa;
		ret = mesh_get_string(c, spec, "nodeName", "spec.nodeName", "", &p->node);
		if (!ret)
			ret = mesh_get_bool(c, spec, "hostNetwork", "spec.hostNetwork", &p->host_network);
		if (!ret)
			ret = mesh_decode_pod_ports(c, spec, p);
		if (ret)
			return ret;
	}
	p->kept = mesh_label(&p->annotations, MESH_ANNOTATION_KEPT) != NULL;
	return mesh_decode_pod_status(c, status, p);
}

static int mesh_decode_service_port(const struct objctx *c, json_t *e, size_t i,
			       struct mesh_service_port *sp)
{
	json_t *v;
	int ret;

	if (!json_is_object(e)) {
		mesh_oerr(c, "spec.ports", "item %zu is %s, expected a mapping", i, errbuf_json_type(e));
		return -EINVAL;
	}
	ret = mesh_get_string(c, e, "name", "spec.ports[].name", "", &sp->name);
	if (!ret)
		ret = mesh_get_string(c, e, "protocol", "spec.ports[].protocol", "TCP", &sp->protocol);
	if (!ret)
		ret = mesh_get_string(c, e, "appProtocol", "spec.ports[].appProtocol", "", &sp->app_protocol);
	if (ret)
		return ret;
	v = json_object_get(e, "port");
	if (!v) {
		mesh_oerr(c, "spec.ports[].port", "missing in item %zu", i);
		return -EINVAL;
	}
	ret = mesh_get_port(c, v, "spec.ports[].port", i, &sp->port);
	if (ret)
		return ret;
	v = json_object_get(e, "targetPort");
	if (!v || json_is_null(v)) {
		sp->target_port = sp->port;
		return 0;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		unsigned long n;

		if (!*s) {
			mesh_oerr(c, "spec.ports[].targetPort", "item %zu: empty name", i);
			return -EINVAL;
		}
		/* "8080" quoted in YAML: IntOrString, read it as the number */
		n = strtoul(s, &end, 10);
		if (s[0] >= '0' && s[0] <= '9' && *end == '\0') {
			if (n < 1 || n > 65535) {
				mesh_oerr(c, "spec.ports[].targetPort", "item %zu: %s is not a port (1-65535)",
				     i, s);
				return -EINVAL;
			}
			sp->target_port = (uint16_t)n;
			return 0;
		}
		sp->target_port_name = s;
		return 0;
	}
	return mesh_get_port(c, v, "spec.ports[].targetPort", i, &sp->target_port);
}

static int mesh_add_vip(const struct objctx *c, struct mesh_service *s, const char *field,
		   const char *ip, size_t cap)
{
	struct mesh_ip a;
	int ret;

	if (!*ip || !strcmp(ip, "None"))
		return 0; /* headless */
	ret = mesh_parse_ip_field(c, field, ip, &a);
	if (ret)
		return ret;
	if (mesh_ip_in(s->vips, s->n_vips, &a))
		return 0;
	assert(s->n_vips < cap); /* cap counts every candidate */
	s->vips[s->n_vips++] = a;
	return 0;
}

static int mesh_decode_service(struct objctx *c, json_t *o, struct mesh_service *s)
{
	json_t *meta, *spec, *ips, *ports, *e;
	const char *ip;
	size_t i, cap;
	int ret;

	ret = mesh_decode_meta(c, o, true, &meta);
	if (ret)
		return ret;
	s->namespace = c->ns;
	s->name = c->name;
	ret = mesh_get_labels(c, meta, "labels", "metadata.labels", &s->labels);
	if (!ret)
		ret = mesh_get_object(c, o, "spec", "spec", &spec);
	if (ret || !spec)
		return ret;
	ret = mesh_get_labels(c, spec, "selector", "spec.selector", &s->selector);
	if (!ret)
		ret = mesh_get_string(c, spec, "clusterIP", "spec.clusterIP", "", &ip);
	if (!ret)
		ret = mesh_get_array(c, spec, "clusterIPs", "spec.clusterIPs", &ips);
	if (!ret)
		ret = mesh_get_array(c, spec, "ports", "spec.ports", &ports);
	if (ret)
		return ret;
	cap = 1 + json_array_size(ips);
	s->vips = calloc(cap, sizeof(*s->vips));
	if (!s->vips) {
		mesh_oerr(c, "spec.clusterIP", "out of memory");
		return -ENOMEM;
	}
	ret = mesh_add_vip(c, s, "spec.clusterIP", ip, cap);
	if (ret)
		return ret;
	json_array_foreach(ips, i, e) {
		if (!json_is_string(e)) {
			mesh_oerr(c, "spec.clusterIPs", "item %zu is %s, expected a string", i,
			     errbuf_json_type(e));
			return -EINVAL;
		}
		ret = mesh_add_vip(c, s, "spec.clusterIPs", json_string_value(e), cap);
		if (ret)
			return ret;
	}
	if (!json_array_size(ports))
		return 0;
	s->ports = calloc(json_array_size(ports), sizeof(*s->ports));
	if (!s->ports) {
		mesh_oerr(c, "spec.ports", "out of memory");
		return -ENOMEM;
	}
	json_array_foreach(ports, i, e) {
		ret = mesh_decode_service_port(c, e, i, &s->ports[i]);
		if (ret)
			return ret;
		s->n_ports = i + 1;
	}
	return 0;
}

/* Policies stay raw for the policy engine; check only what every consumer
 * needs (a name) and fill the namespace default into the private copy. */
static int mesh_decode_policy(struct objctx *c, json_t *o, json_t *arr)
{
	json_t *meta;
	int ret;

	ret = mesh_decode_meta(c, o, true, &meta);
	if (ret)
		return ret;
	if (!json_is_string(json_object_get(meta, "namespace")) &&
	    json_object_set_new(meta, "namespace", json_string("default"))) {
		mesh_oerr(c, "metadata.namespace", "out of memory");
		return -ENOMEM;
	}
	if (json_array_append(arr, o)) {
		mesh_oerr(c, "metadata", "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* A Gateway. A waypoint (gatewayClassName istio-waypoint) must listen on
 * 15008 with protocol HBONE, as Istio's waypoints do, and may say which
 * traffic it serves (label istio.io/waypoint-for); anything else about it
 * is wrong, and wrong means the load fails (a typo must not leave a
 * Service's L7 policy silently unenforced). Other classes are kept, unread. */
static const char *const mesh_listener_keys[] = { "name", "port", "protocol", "hostname",
						  "allowedRoutes", "tls" };

static int mesh_decode_listener(const struct objctx *c, json_t *l, size_t i, struct mesh_gateway *g)
{
	const char *k, *proto = NULL;
	json_t *v, *port;
	bool known;

	if (!json_is_object(l)) {
		mesh_oerr(c, "spec.listeners", "item %zu is %s, expected a mapping", i, errbuf_json_type(l));
		return -EINVAL;
	}
	json_object_foreach(l, k, v) {
		known = false;
		for (size_t j = 0; j < ARRAY_SIZE(mesh_listener_keys); j++)
			known |= !strcmp(k, mesh_listener_keys[j]);
		if (!known) {
			mesh_oerr(c, "spec.listeners", "item %zu: unknown key \"%s\"", i, k);
			return -EINVAL;
		}
	}
	port = json_object_get(l, "port");
	if (!json_is_integer(port) || json_integer_value(port) < 1 ||
	    json_integer_value(port) > 65535) {
		mesh_oerr(c, "spec.listeners", "item %zu: port must be a number 1..65535", i);
		return -EINVAL;
	}
	if (mesh_get_string(c, l, "protocol", "spec.listeners[].protocol", NULL, &proto))
		return -EINVAL;
	if (!proto) {
		mesh_oerr(c, "spec.listeners", "item %zu: protocol missing", i);
		return -EINVAL;
	}
	if (!strcmp(proto, "HBONE")) {
		if (json_integer_value(port) != PORT_INBOUND_HBONE) {
			mesh_oerr(c, "spec.listeners", "item %zu: an HBONE listener must be on port %d, not %lld",
			     i, PORT_INBOUND_HBONE, (long long)json_integer_value(port));
			return -EINVAL;
		}
		g->hbone_port = PORT_INBOUND_HBONE;
	}
	return 0;
}

static int mesh_decode_gateway(struct objctx *c, json_t *o, struct mesh_gateway *g)
{
	static const char *const fors[] = { "service", "workload", "all", "none" };
	json_t *meta, *spec, *listeners, *e;
	const char *wf;
	size_t i;
	int ret;

	ret = mesh_decode_meta(c, o, true, &meta);
	if (ret)
		return ret;
	g->namespace = c->ns;
	g->name = c->name;
	ret = mesh_get_labels(c, meta, "labels", "metadata.labels", &g->labels);
	if (!ret)
		ret = mesh_get_object(c, o, "spec", "spec", &spec);
	if (!ret && !spec) {
		mesh_oerr(c, "spec", "missing");
		ret = -EINVAL;
	}
	if (!ret)
		ret = mesh_get_string(c, spec, "gatewayClassName", "spec.gatewayClassName", NULL,
				 &g->class_name);
	if (ret)
		return ret;
	if (!g->class_name || !*g->class_name) {
		mesh_oerr(c, "spec.gatewayClassName", "missing or empty");
		return -EINVAL;
	}
	g->waypoint = !strcmp(g->class_name, GATEWAY_CLASS_WAYPOINT);
	if (!g->waypoint)
		return 0;
	wf = mesh_label(&g->labels, LABEL_WAYPOINT_FOR);
	g->waypoint_for = MESH_WAYPOINT_FOR_SERVICE;
	if (wf) {
		for (i = 0; i < ARRAY_SIZE(fors) && strcmp(wf, fors[i]); i++)
			;
		if (i == ARRAY_SIZE(fors)) {
			mesh_oerr(c, "metadata.labels", LABEL_WAYPOINT_FOR " is \"%s\"; expected service, workload, all or none",
			     wf);
			return -EINVAL;
		}
		g->waypoint_for = (enum mesh_waypoint_for)i;
	}
	ret = mesh_get_array(c, spec, "listeners", "spec.listeners", &listeners);
	if (ret)
		return ret;
	json_array_foreach(listeners, i, e) {
		ret = mesh_decode_listener(c, e, i, g);
		if (ret)
			return ret;
	}
	if (!g->hbone_port) {
		mesh_oerr(c, "spec.listeners", "a waypoint needs a listener with port %d and protocol HBONE",
		     PORT_INBOUND_HBONE);
		return -EINVAL;
	}
	return 0;
}

/* An HTTPRoute: decoded and checked by model/httproute.c. */
static int mesh_decode_httproute(struct objctx *c, json_t *o, struct mesh_httproute *r)
{
	char where[600];
	json_t *meta;
	int ret = mesh_decode_meta(c, o, true, &meta);

	if (ret)
		return ret;
	snprintf(where, sizeof(where), "%s: object %zu (HTTPRoute %s/%s)", c->origin, c->index, c->ns, c->name);
	return mesh_httproute_decode(o, c->ns, c->name, where, r, c->err, c->errlen);
}

/* An EndpointSlice, decoded and checked, until its Service is known. */
struct slice_port {
	const char *name;     /* "" default */
	const char *protocol; /* "TCP" default */
	uint16_t port;        /* 0: null (all ports), which no Service port names */
};

struct slice_addr {
	struct mesh_ip ip;
	bool ready;
};

struct mesh_slice {
	const char *ns;
	const char *service; /* label kubernetes.io/service-name, or NULL: no Service's */
	bool used;           /* FQDN slices are checked and left out */
	struct slice_addr *addrs;
	size_t n_addrs;
	struct slice_port *ports;
	size_t n_ports;
};

static int mesh_decode_slice_ports(struct objctx *c, json_t *ports, struct mesh_slice *sl)
{
	json_t *e, *v;
	size_t i;
	int ret;

	if (!json_array_size(ports))
		return 0;
	sl->ports = calloc(json_array_size(ports), sizeof(*sl->ports));
	if (!sl->ports) {
		mesh_oerr(c, "ports", "out of memory");
		return -ENOMEM;
	}
	json_array_foreach(ports, i, e) {
		struct slice_port *sp = &sl->ports[i];

		if (!json_is_object(e)) {
			mesh_oerr(c, "ports", "item %zu is %s, expected a mapping", i, errbuf_json_type(e));
			return -EINVAL;
		}
		ret = mesh_get_string(c, e, "name", "ports[].name", "", &sp->name);
		if (!ret)
			ret = mesh_get_string(c, e, "protocol", "ports[].protocol", "TCP", &sp->protocol);
		v = json_object_get(e, "port");
		if (!ret && v && !json_is_null(v))
			ret = mesh_get_port(c, v, "ports[].port", i, &sp->port);
		if (ret)
			return ret;
		sl->n_ports = i + 1;
	}
	return 0;
}

static int mesh_decode_slice(struct objctx *c, json_t *o, struct mesh_slice *sl)
{
	json_t *meta, *eps, *ports, *e, *addrs, *conds, *rv;
	struct mesh_labels labels = { 0 };
	const char *type;
	int family = 0;
	size_t i;
	int ret;

	ret = mesh_decode_meta(c, o, true, &meta);
	if (ret)
		return ret;
	sl->ns = c->ns;
	ret = mesh_get_labels(c, meta, "labels", "metadata.labels", &labels);
	if (!ret)
		sl->service = mesh_label(&labels, "kubernetes.io/service-name");
	free(labels.items);
	if (!ret)
		ret = mesh_get_string(c, o, "addressType", "addressType", NULL, &type);
	if (ret)
		return ret;
	if (!type) {
		mesh_oerr(c, "addressType", "missing (IPv4, IPv6 or FQDN)");
		return -EINVAL;
	}
	if (!strcmp(type, "IPv4"))
		family = AF_INET;
	else if (!strcmp(type, "IPv6"))
		family = AF_INET6;
	else if (strcmp(type, "FQDN")) {
		mesh_oerr(c, "addressType", "\"%s\" is none of IPv4, IPv6, FQDN", type);
		return -EINVAL;
	}
	ret = mesh_get_array(c, o, "endpoints", "endpoints", &eps);
	if (!ret)
		ret = mesh_get_array(c, o, "ports", "ports", &ports);
	if (!ret)
		ret = mesh_decode_slice_ports(c, ports, sl);
	if (ret || !family || !json_array_size(eps))
		return ret;
	sl->used = true;
	sl->addrs = calloc(json_array_size(eps), sizeof(*sl->addrs));
	if (!sl->addrs) {
		mesh_oerr(c, "endpoints", "out of memory");
		return -ENOMEM;
	}
	json_array_foreach(eps, i, e) {
		struct slice_addr *a = &sl->addrs[i];
		json_t *first;

		if (!json_is_object(e)) {
			mesh_oerr(c, "endpoints", "item %zu is %s, expected a mapping", i, errbuf_json_type(e));
			return -EINVAL;
		}
		ret = mesh_get_array(c, e, "addresses", "endpoints[].addresses", &addrs);
		if (!ret)
			ret = mesh_get_object(c, e, "conditions", "endpoints[].conditions", &conds);
		if (ret)
			return ret;
		first = json_array_get(addrs, 0);
		if (!json_is_string(first)) {
			mesh_oerr(c, "endpoints[].addresses", "item %zu: needs at least one address, a string", i);
			return -EINVAL;
		}
		ret = mesh_parse_ip_field(c, "endpoints[].addresses", json_string_value(first), &a->ip);
		if (ret)
			return ret;
		if (a->ip.family != family) {
			mesh_oerr(c, "endpoints[].addresses", "item %zu: \"%s\" is not an %s address", i,
			     json_string_value(first), type);
			return -EINVAL;
		}
		/* Kubernetes: an unknown (null) readiness is read as ready */
		rv = json_object_get(conds, "ready");
		if (rv && !json_is_null(rv) && !json_is_boolean(rv)) {
			mesh_oerr(c, "endpoints[].conditions.ready", "item %zu: expected true or false, got %s",
			     i, errbuf_json_type(rv));
			return -EINVAL;
		}
		a->ready = !rv || json_is_null(rv) || json_is_true(rv);
		sl->n_addrs = i + 1;
	}
	return 0;
}

static void mesh_slice_clear(struct mesh_slice *sl)
{
	free(sl->addrs);
	free(sl->ports);
}

static int mesh_slice_cmp(const void *a, const void *b)
{
	const struct mesh_slice *x = a, *y = b;
	int r = strcmp(x->ns, y->ns);

	return r ? r : strcmp(x->service ? x->service : "", y->service ? y->service : "");
}

/* The endpoints of each Service without a selector, from the slices naming
 * it (sorted by mesh_slice_cmp), in slice order. Pods are looked up by IP, so
 * the model's indexes must be built. */
static int mesh_attach_slices(struct mesh *m, struct mesh_slice *sl, size_t n, char *err, size_t errlen)
{
	for (size_t i = 0; i < m->n_services; i++) {
		struct mesh_service *s = &m->services[i];
		struct mesh_slice key = { .ns = s->namespace, .service = s->name }, *lo;
		size_t cnt = 0, k;

		if (s->selector.n || !n)
			continue;
		lo = bsearch(&key, sl, n, sizeof(*sl), mesh_slice_cmp);
		if (!lo)
			continue;
		while (lo > sl && !mesh_slice_cmp(lo - 1, &key))
			lo--;
		for (k = (size_t)(lo - sl); k < n && !mesh_slice_cmp(&sl[k], &key); k++)
			cnt += sl[k].used ? sl[k].n_addrs : 0;
		if (!cnt)
			continue;
		s->endpoints = calloc(cnt, sizeof(*s->endpoints));
		if (!s->endpoints)
			goto oom;
		for (k = (size_t)(lo - sl); k < n && !mesh_slice_cmp(&sl[k], &key); k++) {
			for (size_t a = 0; sl[k].used && a < sl[k].n_addrs; a++) {
				struct mesh_endpoint *ep = &s->endpoints[s->n_endpoints++];

				ep->ip = sl[k].addrs[a].ip;
				ep->ready = sl[k].addrs[a].ready;
				ep->pod = mesh_find_pod_by_ip(m, &ep->ip);
				if (!s->n_ports)
					continue;
				ep->ports = calloc(s->n_ports, sizeof(*ep->ports));
				if (!ep->ports)
					goto oom;
				for (size_t p = 0; p < s->n_ports; p++)
					for (size_t q = 0; q < sl[k].n_ports && !ep->ports[p]; q++)
						if (!strcmp(sl[k].ports[q].name, s->ports[p].name) &&
						    !strcmp(sl[k].ports[q].protocol, s->ports[p].protocol))
							ep->ports[p] = sl[k].ports[q].port;
			}
		}
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

/* ---- build ---- */

enum okind { K_NONE, K_NAMESPACE, K_POD, K_SERVICE, K_SLICE, K_AUTHZ, K_PEERAUTHN, K_GATEWAY, K_HTTPROUTE };

static enum okind mesh_classify(const char *api, const char *kind)
{
	bool istio = !strcmp(api, "security.istio.io/v1") || !strcmp(api, "security.istio.io/v1beta1");

	if (!strcmp(api, "v1")) {
		if (!strcmp(kind, "Namespace"))
			return K_NAMESPACE;
		if (!strcmp(kind, "Pod"))
			return K_POD;
		if (!strcmp(kind, "Service"))
			return K_SERVICE;
	} else if (!strcmp(api, "discovery.k8s.io/v1")) {
		if (!strcmp(kind, "EndpointSlice"))
			return K_SLICE;
	} else if (!strcmp(api, "gateway.networking.k8s.io/v1") ||
		   !strcmp(api, "gateway.networking.k8s.io/v1beta1")) {
		if (!strcmp(kind, "Gateway"))
			return K_GATEWAY;
		if (!strcmp(kind, "HTTPRoute"))
			return K_HTTPROUTE;
	} else if (istio) {
		if (!strcmp(kind, "AuthorizationPolicy"))
			return K_AUTHZ;
		if (!strcmp(kind, "PeerAuthentication"))
			return K_PEERAUTHN;
	}
	return K_NONE;
}

/* Each object's provenance, for errors about duplicates. */
struct prov {
	const char *origin;
	size_t index;
};

struct dupkey {
	const char *ns;
	const char *name;
	const struct prov *prov;
};

static int mesh_dupkey_cmp(const void *a, const void *b)
{
	const struct dupkey *x = a, *y = b;
	int r = strcmp(x->ns ? x->ns : "", y->ns ? y->ns : "");

	return r ? r : strcmp(x->name, y->name);
}

static int mesh_check_dups(struct dupkey *keys, size_t n, const char *kind, char *err, size_t errlen)
{
	qsort(keys, n, sizeof(*keys), mesh_dupkey_cmp);
	for (size_t i = 1; i < n; i++) {
		if (mesh_dupkey_cmp(&keys[i - 1], &keys[i]))
			continue;
		const struct dupkey *a = &keys[i - 1], *b = &keys[i];

		/* qsort is not stable: name them in input order */
		if (a->prov > b->prov) {
			const struct dupkey *t = a;

			a = b;
			b = t;
		}
		snprintf(err, errlen, "%s: object %zu: duplicate %s %s%s%s (first defined in %s, object %zu)",
			 b->prov->origin, b->prov->index, kind, a->ns ? a->ns : "", a->ns ? "/" : "",
			 a->name, a->prov->origin, a->prov->index);
		return -EINVAL;
	}
	return 0;
}

static int mesh_find_dups(struct mesh *m, const struct prov *pns, const struct prov *ppod,
		     const struct prov *psvc, char *err, size_t errlen)
{
	size_t n = m->n_namespaces > m->n_pods ? m->n_namespaces : m->n_pods;
	struct dupkey *keys;
	int ret;

	if (m->n_services > n)
		n = m->n_services;
	if (!n)
		return 0;
	keys = calloc(n, sizeof(*keys));
	if (!keys) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->n_namespaces; i++)
		keys[i] = (struct dupkey){ NULL, m->namespaces[i].name, &pns[i] };
	ret = mesh_check_dups(keys, m->n_namespaces, "Namespace", err, errlen);
	if (ret)
		goto out;
	for (size_t i = 0; i < m->n_pods; i++)
		keys[i] = (struct dupkey){ m->pods[i].namespace, m->pods[i].name, &ppod[i] };
	ret = mesh_check_dups(keys, m->n_pods, "Pod", err, errlen);
	if (ret)
		goto out;
	for (size_t i = 0; i < m->n_services; i++)
		keys[i] = (struct dupkey){ m->services[i].namespace, m->services[i].name, &psvc[i] };
	ret = mesh_check_dups(keys, m->n_services, "Service", err, errlen);
out:
	free(keys);
	return ret;
}

static int mesh_link_gateway_pods(struct mesh *m, char *err, size_t errlen);

static int mesh_find_gateway_dups(struct mesh *m, const struct prov *pgw, char *err, size_t errlen)
{
	struct dupkey *keys;
	int ret;

	if (!m->n_gateways)
		return 0;
	keys = calloc(m->n_gateways, sizeof(*keys));
	if (!keys) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->n_gateways; i++)
		keys[i] = (struct dupkey){ m->gateways[i].namespace, m->gateways[i].name, &pgw[i] };
	ret = mesh_check_dups(keys, m->n_gateways, "Gateway", err, errlen);
	free(keys);
	return ret;
}

static int mesh_find_httproute_dups(struct mesh *m, const struct prov *phr, char *err, size_t errlen)
{
	struct dupkey *keys;
	int ret;

	if (!m->n_httproutes)
		return 0;
	keys = calloc(m->n_httproutes, sizeof(*keys));
	if (!keys) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->n_httproutes; i++)
		keys[i] = (struct dupkey){ m->httproutes[i].namespace, m->httproutes[i].name, &phr[i] };
	ret = mesh_check_dups(keys, m->n_httproutes, "HTTPRoute", err, errlen);
	free(keys);
	return ret;
}

/* objs: private array, stolen (freed with the model or on error). provs[i]:
 * where objs[i] came from, for error messages. */
static int mesh_build_objects(json_t *objs, const struct prov *provs, bool index, struct mesh **out, char *err,
		 size_t errlen)
{
	struct mesh_impl *mi = NULL;
	struct mesh *m;
	struct prov *pns = NULL, *ppod = NULL, *psvc = NULL, *pgw = NULL, *phr = NULL;
	struct mesh_slice *slices = NULL;
	size_t n = json_array_size(objs), i, n_slices = 0;
	json_t *o;
	int ret = 0;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	mi = calloc(1, sizeof(*mi));
	if (!mi) {
		json_decref(objs);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	mi->magic = MESH_MAGIC;
	mi->src = objs;
	m = &mi->pub;
	m->authorization_policies = json_array();
	m->peer_authentications = json_array();
	pns = calloc(n + 1, sizeof(*pns));
	ppod = calloc(n + 1, sizeof(*ppod));
	psvc = calloc(n + 1, sizeof(*psvc));
	/* Upper bounds: one slot per input object; shrinking is not worth it. */
	m->namespaces = calloc(n + 1, sizeof(*m->namespaces));
	m->pods = calloc(n + 1, sizeof(*m->pods));
	m->services = calloc(n + 1, sizeof(*m->services));
	m->gateways = calloc(n + 1, sizeof(*m->gateways));
	pgw = calloc(n + 1, sizeof(*pgw));
	m->httproutes = calloc(n + 1, sizeof(*m->httproutes));
	phr = calloc(n + 1, sizeof(*phr));
	slices = calloc(n + 1, sizeof(*slices));
	if (!m->authorization_policies || !m->peer_authentications || !pns || !ppod || !psvc ||
	    !m->namespaces || !m->pods || !m->services || !m->gateways || !pgw || !slices ||
	    !m->httproutes || !phr) {
		snprintf(err, errlen, "out of memory");
		ret = -ENOMEM;
		goto out;
	}

	json_array_foreach(objs, i, o) {
		struct objctx c = { .origin = provs[i].origin, .index = provs[i].index,
				    .err = err, .errlen = errlen };
		const char *api, *kind;

		if (!json_is_object(o)) {
			snprintf(err, errlen, "%s: object %zu: is %s, expected a mapping",
				 c.origin, c.index, errbuf_json_type(o));
			ret = -EINVAL;
			goto out;
		}
		api = json_string_value(json_object_get(o, "apiVersion"));
		kind = json_string_value(json_object_get(o, "kind"));
		if (!kind || !api) {
			snprintf(err, errlen, "%s: object %zu: %s missing or not a string; every object needs apiVersion and kind",
				 c.origin, c.index, kind ? "apiVersion" : "kind");
			ret = -EINVAL;
			goto out;
		}
		c.kind = kind;
		switch (mesh_classify(api, kind)) {
		case K_NONE:
			break;
		case K_NAMESPACE:
			pns[m->n_namespaces] = provs[i];
			ret = mesh_decode_namespace(&c, o, &m->namespaces[m->n_namespaces++]);
			break;
		case K_POD:
			ppod[m->n_pods] = provs[i];
			ret = mesh_decode_pod(&c, o, &m->pods[m->n_pods++]);
			break;
		case K_SERVICE:
			psvc[m->n_services] = provs[i];
			ret = mesh_decode_service(&c, o, &m->services[m->n_services++]);
			break;
		case K_SLICE:
			ret = mesh_decode_slice(&c, o, &slices[n_slices++]);
			break;
		case K_AUTHZ:
			ret = mesh_decode_policy(&c, o, m->authorization_policies);
			break;
		case K_PEERAUTHN:
			ret = mesh_decode_policy(&c, o, m->peer_authentications);
			break;
		case K_GATEWAY:
			pgw[m->n_gateways] = provs[i];
			ret = mesh_decode_gateway(&c, o, &m->gateways[m->n_gateways++]);
			break;
		case K_HTTPROUTE:
			phr[m->n_httproutes] = provs[i];
			ret = mesh_decode_httproute(&c, o, &m->httproutes[m->n_httproutes]);
			if (!ret)
				m->n_httproutes++;
			break;
		}
		if (ret)
			goto out;
	}
	ret = mesh_find_dups(m, pns, ppod, psvc, err, errlen);
	if (!ret)
		ret = mesh_find_gateway_dups(m, pgw, err, errlen);
	if (!ret)
		ret = mesh_find_httproute_dups(m, phr, err, errlen);
	if (!ret && m->n_gateways)
		ret = mesh_link_gateway_pods(m, err, errlen);
	if (!ret && index)
		m->index = mesh_index_build(m, mesh_pod_ip_rank); /* NULL (out of memory): lookups scan */
	if (!ret && n_slices) {
		qsort(slices, n_slices, sizeof(*slices), mesh_slice_cmp);
		ret = mesh_attach_slices(m, slices, n_slices, err, errlen);
	}
out:
	for (i = 0; slices && i < n_slices; i++)
		mesh_slice_clear(&slices[i]);
	free(slices);
	free(pns);
	free(ppod);
	free(psvc);
	free(pgw);
	free(phr);
	if (ret) {
		mesh_free(m);
		return ret;
	}
	*out = m;
	return 0;
}

static int mesh_keep_pods(json_t *objs, struct prov **provs, const struct mesh *prev,
		     mesh_keep_fn keep, void (*on_kept)(void *, const struct mesh_pod *),
		     void *ctx, size_t *n_kept);

int mesh_build(json_t *objects, const char *origin, struct mesh **out, char *err, size_t errlen)
{
	return mesh_build_keeping(objects, origin, NULL, NULL, NULL, NULL, NULL, out, err, errlen);
}

static int mesh_build_keeping_deep(json_t *objects, bool deep, const char *origin, const struct mesh *prev,
			 mesh_keep_fn keep, void (*on_kept)(void *ctx, const struct mesh_pod *p),
			 void *ctx, size_t *n_kept, struct mesh **out, char *err, size_t errlen)
{
	struct prov *provs;
	json_t *copy;
	size_t n;
	int ret;

	*out = NULL;
	if (n_kept)
		*n_kept = 0;
	if (!origin || !*origin)
		origin = "<objects>";
	if (!json_is_array(objects)) {
		snprintf(err, errlen, "%s: expected an array of objects", origin);
		return -EINVAL;
	}
	n = json_array_size(objects);
	provs = calloc(n + 1, sizeof(*provs));
	copy = deep ? json_deep_copy(objects) : json_copy(objects);
	if (!provs || !copy)
		goto oom;
	for (size_t i = 0; i < n; i++)
		provs[i] = (struct prov){ origin, i + 1 };
	if (mesh_keep_pods(copy, &provs, prev, keep, on_kept, ctx, n_kept) < 0)
		goto oom;
	/* copy is private: mesh_build_objects() takes it */
	ret = mesh_build_objects(copy, provs, true, out, err, errlen);
	free(provs);
	return ret;
oom:
	free(provs);
	json_decref(copy);
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

int mesh_build_keeping(json_t *objects, const char *origin, const struct mesh *prev,
		       mesh_keep_fn keep, void (*on_kept)(void *ctx, const struct mesh_pod *p),
		       void *ctx, size_t *n_kept, struct mesh **out, char *err, size_t errlen)
{
	return mesh_build_keeping_deep(objects, true, origin, prev, keep, on_kept, ctx, n_kept, out, err, errlen);
}

int mesh_build_shared(json_t *objects, const char *origin, const struct mesh *prev,
		      mesh_keep_fn keep, void (*on_kept)(void *ctx, const struct mesh_pod *p),
		      void *ctx, size_t *n_kept, struct mesh **out, char *err, size_t errlen)
{
	return mesh_build_keeping_deep(objects, false, origin, prev, keep, on_kept, ctx, n_kept, out, err, errlen);
}

int mesh_check_object(json_t *obj, const char *origin, char *err, size_t errlen)
{
	struct prov prov = { origin && *origin ? origin : "<objects>", 1 };
	struct mesh *m = NULL;
	json_t *one = json_pack("[O]", obj);
	int ret;

	if (!one) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* no copy: the model is freed before obj can change; no indexes: no lookups */
	ret = mesh_build_objects(one, &prov, false, &m, err, errlen);
	mesh_free(m);
	return ret;
}

static bool mesh_want_file(const char *name)
{
	size_t n = strlen(name);

	if (name[0] == '.')
		return false;
	return (n > 5 && !strcmp(name + n - 5, ".json")) || (n > 5 && !strcmp(name + n - 5, ".yaml")) ||
	       (n > 4 && !strcmp(name + n - 4, ".yml"));
}

static int mesh_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A 0-byte file is a truncation or a write not yet done, never "no objects". */
static int mesh_load_file(const char *path, const struct stat *st, json_t **objs, char *err,
		     size_t errlen)
{
	if (st->st_size == 0) {
		snprintf(err, errlen, "%s: the file is empty (truncated, or a write in progress?); an empty mesh is not loaded",
			 path);
		return -ENODATA;
	}
	return kobj_load_file(path, objs, err, errlen);
}

static const char *mesh_obj_str(json_t *o, const char *k1, const char *k2)
{
	return json_string_value(json_object_get(json_object_get(o, k1), k2));
}

static bool mesh_obj_is(json_t *o, const char *kind, const char *ns, const char *name)
{
	const char *k = json_string_value(json_object_get(o, "kind"));
	const char *n = mesh_obj_str(o, "metadata", "name"), *s = mesh_obj_str(o, "metadata", "namespace");

	if (!k || strcmp(k, kind) || !n || strcmp(n, name))
		return false;
	if (!ns) /* cluster-scoped */
		return true;
	return !strcmp(s && *s ? s : "default", ns);
}

static bool mesh_objs_have(json_t *objs, const char *kind, const char *ns, const char *name)
{
	size_t i;
	json_t *o;

	json_array_foreach(objs, i, o)
		if (mesh_obj_is(o, kind, ns, name))
			return true;
	return false;
}

/* A deep copy of prev's source object (kind, ns, name) appended to objs,
 * annotated when pods. 0, 1 (not in prev), -ENOMEM. */
static int mesh_keep_obj(json_t *objs, json_t *src, const char *kind, const char *ns, const char *name,
		    uint64_t gen)
{
	char g[32];
	size_t i;
	json_t *o, *copy, *meta, *ann;

	json_array_foreach(src, i, o) {
		if (!mesh_obj_is(o, kind, ns, name))
			continue;
		copy = json_deep_copy(o);
		if (!copy)
			return -ENOMEM;
		if (ns) {
			snprintf(g, sizeof(g), "%llu", (unsigned long long)gen);
			meta = json_object_get(copy, "metadata");
			ann = json_object_get(meta, "annotations");
			if (!json_is_object(ann)) {
				ann = json_object();
				if (!ann || json_object_set_new(meta, "annotations", ann)) {
					json_decref(copy);
					return -ENOMEM;
				}
			}
			if (json_object_set_new(ann, MESH_ANNOTATION_KEPT, json_string(g))) {
				json_decref(copy);
				return -ENOMEM;
			}
		}
		return json_array_append_new(objs, copy) ? -ENOMEM : 0;
	}
	return 1;
}

/* Adds to objs (and provs, *n long) what prev knew of the pods keep
 * selects and objs lacks. */
static int mesh_keep_pods(json_t *objs, struct prov **provs, const struct mesh *prev,
		     mesh_keep_fn keep, void (*on_kept)(void *, const struct mesh_pod *),
		     void *ctx, size_t *n_kept)
{
	json_t *src;
	size_t before = json_array_size(objs);
	struct prov *np;
	int ret;

	if (!prev || !keep)
		return 0;
	src = impl_of(prev)->src;
	for (size_t i = 0; i < prev->n_pods; i++) {
		const struct mesh_pod *p = &prev->pods[i];

		if (!keep(ctx, p) || mesh_objs_have(objs, "Pod", p->namespace, p->name))
			continue;
		ret = mesh_keep_obj(objs, src, "Pod", p->namespace, p->name, prev->generation);
		if (ret < 0)
			return ret;
		if (ret)
			continue;
		if (!mesh_objs_have(objs, "Namespace", NULL, p->namespace) &&
		    mesh_keep_obj(objs, src, "Namespace", NULL, p->namespace, prev->generation) < 0)
			return -ENOMEM;
		if (n_kept)
			(*n_kept)++;
		if (on_kept)
			on_kept(ctx, p);
	}
	np = realloc(*provs, (json_array_size(objs) + 1) * sizeof(**provs));
	if (!np)
		return -ENOMEM;
	*provs = np;
	for (size_t i = before; i < json_array_size(objs); i++)
		np[i] = (struct prov){ "<kept from the previous model>", i - before + 1 };
	return 0;
}

int mesh_load_path(const char *path, struct mesh **out, char *err, size_t errlen)
{
	return mesh_load_path_keeping(path, NULL, NULL, NULL, NULL, NULL, out, err, errlen);
}

int mesh_load_path_keeping(const char *path, const struct mesh *prev, mesh_keep_fn keep,
			   void (*on_kept)(void *ctx, const struct mesh_pod *p), void *ctx,
			   size_t *n_kept, struct mesh **out, char *err, size_t errlen)
{
	struct stat st;
	DIR *d = NULL;
	struct dirent *de;
	char **names = NULL, **paths = NULL;
	size_t n_names = 0, cap = 0, total = 0;
	json_t *all = NULL, *objs = NULL;
	struct prov *provs = NULL;
	int ret = 0;

	*out = NULL;
	if (stat(path, &st)) {
		ret = -errno;
		snprintf(err, errlen, "%s: cannot read the mesh: %s", path, strerror(-ret));
		return ret;
	}
	if (n_kept)
		*n_kept = 0;
	if (!S_ISDIR(st.st_mode)) {
		ret = mesh_load_file(path, &st, &objs, err, errlen);
		if (ret)
			return ret;
		provs = calloc(json_array_size(objs) + 1, sizeof(*provs));
		if (!provs) {
			json_decref(objs);
			snprintf(err, errlen, "%s: out of memory", path);
			return -ENOMEM;
		}
		for (size_t i = 0; i < json_array_size(objs); i++)
			provs[i] = (struct prov){ path, i + 1 };
		if (mesh_keep_pods(objs, &provs, prev, keep, on_kept, ctx, n_kept) < 0) {
			json_decref(objs);
			free(provs);
			snprintf(err, errlen, "%s: out of memory", path);
			return -ENOMEM;
		}
		/* objs is private: mesh_build_objects() takes it without a copy */
		ret = mesh_build_objects(objs, provs, true, out, err, errlen);
		free(provs);
		return ret;
	}

	d = opendir(path);
	if (!d) {
		ret = -errno;
		snprintf(err, errlen, "%s: cannot open the directory: %s", path, strerror(-ret));
		return ret;
	}
	while ((de = readdir(d))) {
		if (!mesh_want_file(de->d_name))
			continue;
		if (n_names == cap) {
			char **nn;

			cap = cap ? 2 * cap : 16;
			nn = realloc(names, cap * sizeof(*names));
			if (!nn)
				goto oom;
			names = nn;
		}
		names[n_names] = strdup(de->d_name);
		if (!names[n_names])
			goto oom;
		n_names++;
	}
	if (n_names)
		qsort(names, n_names, sizeof(*names), mesh_name_cmp);
	paths = calloc(n_names + 1, sizeof(*paths));
	all = json_array();
	if (!paths || !all)
		goto oom;
	for (size_t i = 0; i < n_names; i++) {
		struct stat fst;
		struct prov *np;
		size_t k;
		json_t *x;

		if (asprintf(&paths[i], "%s/%s", path, names[i]) < 0) {
			paths[i] = NULL;
			goto oom;
		}
		/* directories named x.yaml, dangling links: not mesh files */
		if (stat(paths[i], &fst) || !S_ISREG(fst.st_mode))
			continue;
		ret = mesh_load_file(paths[i], &fst, &objs, err, errlen);
		if (ret)
			goto out;
		np = realloc(provs, (total + json_array_size(objs) + 1) * sizeof(*provs));
		if (!np)
			goto oom;
		provs = np;
		json_array_foreach(objs, k, x)
			provs[total + k] = (struct prov){ paths[i], k + 1 };
		total += json_array_size(objs);
		if (json_array_extend(all, objs))
			goto oom;
		json_decref(objs);
		objs = NULL;
	}
	if (!provs) {
		provs = calloc(1, sizeof(*provs));
		if (!provs)
			goto oom;
	}
	if (mesh_keep_pods(all, &provs, prev, keep, on_kept, ctx, n_kept) < 0)
		goto oom;
	/* all is private: no deep copy needed */
	ret = mesh_build_objects(all, provs, true, out, err, errlen);
	all = NULL;
	goto out;
oom:
	snprintf(err, errlen, "%s: out of memory", path);
	ret = -ENOMEM;
out:
	json_decref(objs);
	json_decref(all);
	free(provs);
	for (size_t i = 0; i < n_names; i++) {
		free(names[i]);
		if (paths)
			free(paths[i]);
	}
	free(names);
	free(paths);
	if (d)
		closedir(d);
	return ret;
}

void mesh_free(struct mesh *m)
{
	struct mesh_impl *mi;

	if (!m)
		return;
	mi = impl_of(m);
	CHECK_OBJ(mi, MESH_MAGIC); /* made by mesh_build(), freed once */
	mi->magic = 0;
	for (size_t i = 0; i < m->n_namespaces; i++)
		free(m->namespaces[i].labels.items);
	for (size_t i = 0; i < m->n_pods; i++) {
		free(m->pods[i].labels.items);
		free(m->pods[i].annotations.items);
		free(m->pods[i].ips);
		free(m->pods[i].ports);
	}
	for (size_t i = 0; i < m->n_services; i++) {
		free(m->services[i].labels.items);
		free(m->services[i].selector.items);
		free(m->services[i].vips);
		free(m->services[i].ports);
		for (size_t k = 0; k < m->services[i].n_endpoints; k++)
			free(m->services[i].endpoints[k].ports);
		free(m->services[i].endpoints);
	}
	for (size_t i = 0; i < m->n_gateways; i++) {
		free(m->gateways[i].labels.items);
		free(m->gateways[i].pods);
	}
	free(m->namespaces);
	free(m->pods);
	free(m->services);
	free(m->gateways);
	for (size_t i = 0; i < m->n_httproutes; i++)
		mesh_httproute_clear(&m->httproutes[i]);
	free(m->httproutes);
	mesh_index_free(m->index);
	json_decref(m->authorization_policies);
	json_decref(m->peer_authentications);
	json_decref(mi->src);
	free(mi);
}

/* ---- lookups ---- */

uint16_t mesh_pod_target_port(const struct mesh_pod *p, const struct mesh_service_port *sp)
{
	const char *proto = sp->protocol ? sp->protocol : "TCP";

	if (!sp->target_port_name)
		return sp->target_port ? sp->target_port : sp->port;
	for (size_t i = 0; i < p->n_ports; i++)
		if (!strcmp(p->ports[i].name, sp->target_port_name) &&
		    !strcmp(p->ports[i].protocol, proto))
			return p->ports[i].port;
	return 0;
}

const struct mesh_namespace *mesh_find_namespace(const struct mesh *m, const char *name)
{
	ssize_t i;

	if (!m || !name)
		return NULL;
	if (m->index) {
		i = mesh_index_namespace(m->index, m, name);
		return i < 0 ? NULL : &m->namespaces[i];
	}
	for (size_t k = 0; k < m->n_namespaces; k++)
		if (!strcmp(m->namespaces[k].name, name))
			return &m->namespaces[k];
	return NULL;
}

const struct mesh_pod *mesh_find_pod(const struct mesh *m, const char *ns, const char *name)
{
	ssize_t i;

	if (!m || !ns || !name)
		return NULL;
	if (m->index) {
		i = mesh_index_pod_by_name(m->index, m, ns, name);
		return i < 0 ? NULL : &m->pods[i];
	}
	for (size_t k = 0; k < m->n_pods; k++)
		if (!strcmp(m->pods[k].name, name) && !strcmp(m->pods[k].namespace, ns))
			return &m->pods[k];
	return NULL;
}

const struct mesh_pod *mesh_find_pod_by_uid(const struct mesh *m, const char *uid)
{
	ssize_t i;

	if (!m || !uid || !*uid)
		return NULL; /* "" means unknown, never a match */
	if (m->index) {
		i = mesh_index_pod_by_uid(m->index, m, uid);
		return i < 0 ? NULL : &m->pods[i];
	}
	for (size_t k = 0; k < m->n_pods; k++)
		if (!strcmp(m->pods[k].uid, uid))
			return &m->pods[k];
	return NULL;
}

int mesh_pod_ip_rank(const struct mesh *m, const struct mesh_pod *p)
{
	return (p->running ? 4 : 0) + (mesh_pod_is_enrolled(m, p) ? 2 : 0) + (p->kept ? 0 : 1);
}

/* Host-network pods share the node's IP; they never identify a workload.
 * *conflict: the best holders of ip tie. */
static const struct mesh_pod *mesh_pod_by_ip(const struct mesh *m, const struct mesh_ip *ip,
					bool *conflict)
{
	const struct mesh_pod *best = NULL;
	int best_rank = -1;
	ssize_t i;

	*conflict = false;
	if (!m || !ip)
		return NULL;
	if (m->index) {
		i = mesh_index_pod_by_ip(m->index, m, ip);
		*conflict = i == -2;
		return i < 0 ? NULL : &m->pods[i];
	}
	for (size_t k = 0; k < m->n_pods; k++) {
		const struct mesh_pod *p = &m->pods[k];
		int r;

		if (p->host_network || p->finished || !mesh_ip_in(p->ips, p->n_ips, ip))
			continue;
		r = mesh_pod_ip_rank(m, p);
		if (r > best_rank) {
			best = p;
			best_rank = r;
			*conflict = false;
		} else if (r == best_rank) {
			*conflict = true;
		}
	}
	return *conflict ? NULL : best;
}

const struct mesh_pod *mesh_find_pod_by_ip(const struct mesh *m, const struct mesh_ip *ip)
{
	bool conflict;

	return mesh_pod_by_ip(m, ip, &conflict);
}

bool mesh_ip_conflict(const struct mesh *m, const struct mesh_ip *ip)
{
	bool conflict;

	mesh_pod_by_ip(m, ip, &conflict);
	return conflict;
}

size_t mesh_ip_conflicts(const struct mesh *m, struct mesh_ip *first)
{
	return m && m->index ? mesh_index_ip_conflicts(m->index, first) : 0;
}

const struct mesh_service *mesh_find_service_by_vip(const struct mesh *m, const struct mesh_ip *ip)
{
	ssize_t i;

	if (!m || !ip)
		return NULL;
	if (m->index) {
		i = mesh_index_service_by_vip(m->index, m, ip);
		return i < 0 ? NULL : &m->services[i];
	}
	for (size_t k = 0; k < m->n_services; k++)
		if (mesh_ip_in(m->services[k].vips, m->services[k].n_vips, ip))
			return &m->services[k];
	return NULL;
}

const struct mesh_pod *mesh_service_next_pod(const struct mesh *m, const struct mesh_service *svc,
					     size_t *pos)
{
	if (m->index) {
		size_t n;
		const uint32_t *pods = mesh_index_service_pods(m->index, (size_t)(svc - m->services), &n);

		return *pos < n ? &m->pods[pods[(*pos)++]] : NULL;
	}
	while (*pos < m->n_pods) {
		const struct mesh_pod *p = &m->pods[(*pos)++];

		if (!strcmp(p->namespace, svc->namespace) && mesh_selector_matches(&svc->selector, &p->labels))
			return p;
	}
	return NULL;
}

bool mesh_service_next_endpoint(const struct mesh *m, const struct mesh_service *svc,
				const struct mesh_service_port *sp, int family, size_t *pos,
				struct mesh_ep *out)
{
	const struct mesh_pod *mp;
	size_t k = (size_t)(sp - svc->ports);

	if (!svc->selector.n) {
		while (*pos < svc->n_endpoints) {
			const struct mesh_endpoint *e = &svc->endpoints[(*pos)++];

			if (!e->ready || e->ip.family != family || !e->ports || !e->ports[k])
				continue;
			*out = (struct mesh_ep){ .pod = e->pod, .ip = e->ip, .port = e->ports[k] };
			return true;
		}
		return false;
	}
	while ((mp = mesh_service_next_pod(m, svc, pos))) {
		uint16_t port;

		if (!mp->ready || mp->host_network || !(port = mesh_pod_target_port(mp, sp)))
			continue;
		for (size_t i = 0; i < mp->n_ips; i++) {
			if (mp->ips[i].family == family) {
				*out = (struct mesh_ep){ .pod = mp, .ip = mp->ips[i], .port = port };
				return true;
			}
		}
	}
	return false;
}

const struct mesh_service *mesh_pod_next_service(const struct mesh *m, const struct mesh_pod *p,
						 size_t *pos)
{
	if (m->index) {
		size_t n;
		const uint32_t *svcs = mesh_index_pod_services(m->index, (size_t)(p - m->pods), &n);

		return *pos < n ? &m->services[svcs[(*pos)++]] : NULL;
	}
	while (*pos < m->n_services) {
		const struct mesh_service *s = &m->services[(*pos)++];

		if (!strcmp(s->namespace, p->namespace) && mesh_selector_matches(&s->selector, &p->labels))
			return s;
	}
	return NULL;
}

static bool mesh_pod_enrolled_in(const struct mesh *m, const struct mesh_pod *p, const char *ns,
			 const char **reason);
static const struct mesh_gateway *mesh_pod_waypoint_of(const struct mesh *m, const struct mesh_pod *p);

bool mesh_pod_enrolled(const struct mesh *m, const char *ns, const char *name, const char **reason)
{
	if (!m) {
		if (reason)
			*reason = "no mesh model is loaded";
		return false;
	}
	return mesh_pod_enrolled_in(m, mesh_find_pod(m, ns, name), ns, reason);
}

bool mesh_pod_is_enrolled(const struct mesh *m, const struct mesh_pod *p)
{
	return mesh_pod_enrolled_in(m, p, p->namespace, NULL);
}

/* The waypoint Gateway pod p belongs to (label gateway-name naming an
 * istio-waypoint Gateway of its namespace), or NULL. */
static const struct mesh_gateway *mesh_pod_waypoint_of(const struct mesh *m, const struct mesh_pod *p)
{
	const char *gn = mesh_label(&p->labels, LABEL_GATEWAY_NAME);

	for (size_t i = 0; gn && i < m->n_gateways; i++) {
		const struct mesh_gateway *g = &m->gateways[i];

		if (g->waypoint && !strcmp(g->name, gn) && !strcmp(g->namespace, p->namespace))
			return g;
	}
	return NULL;
}

/* Each waypoint's pods (struct mesh_gateway.pods). */
static int mesh_link_gateway_pods(struct mesh *m, char *err, size_t errlen)
{
	for (size_t i = 0; i < m->n_pods; i++) {
		struct mesh_gateway *g = (struct mesh_gateway *)mesh_pod_waypoint_of(m, &m->pods[i]);
		const struct mesh_pod **np;

		if (!g)
			continue;
		np = realloc(g->pods, (g->n_pods + 1) * sizeof(*g->pods));
		if (!np) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		g->pods = np;
		g->pods[g->n_pods++] = &m->pods[i];
	}
	return 0;
}

/* p may be NULL: judged by namespace ns alone. */
static bool mesh_pod_enrolled_in(const struct mesh *m, const struct mesh_pod *p, const char *ns,
			 const char **reason)
{
	/* Reasons naming the namespace are formatted here: valid until the next
	 * call in the same thread. */
	static __thread char buf[320];
	const struct mesh_namespace *n;
	const char *why, *pl, *nl;
	bool on = false;

	if (p && p->host_network) {
		why = "pod uses the host network (spec.hostNetwork)";
		goto out;
	}
	if (p && mesh_label(&p->annotations, ANNOTATION_SIDECAR_STATUS)) {
		why = "pod has a sidecar (annotation " ANNOTATION_SIDECAR_STATUS ")";
		goto out;
	}
	if (p && mesh_pod_waypoint_of(m, p)) {
		/* its own traffic is the waypoint's HBONE: capturing it would loop */
		why = "pod is a waypoint (label " LABEL_GATEWAY_NAME ")";
		goto out;
	}
	pl = p ? mesh_label(&p->labels, LABEL_DATAPLANE_MODE) : NULL;
	if (pl && !strcmp(pl, "ambient")) {
		on = true;
		why = "pod has " LABEL_DATAPLANE_MODE "=ambient";
		goto out;
	}
	if (pl && !strcmp(pl, "none")) {
		why = "pod has " LABEL_DATAPLANE_MODE "=none";
		goto out;
	}
	n = mesh_find_namespace(m, ns);
	if (!n) {
		snprintf(buf, sizeof(buf), "namespace %.128s is not in the mesh model", ns ? ns : "");
		why = buf;
		goto out;
	}
	nl = mesh_label(&n->labels, LABEL_DATAPLANE_MODE);
	on = nl && !strcmp(nl, "ambient");
	snprintf(buf, sizeof(buf), "namespace %.128s %s " LABEL_DATAPLANE_MODE "=ambient%s", n->name,
		 on ? "has" : "does not have", p ? "" : " (pod not in the mesh model)");
	why = buf;
out:
	if (reason)
		*reason = why;
	return on;
}

bool mesh_pod_capture_inbound(const struct mesh_pod *p, const char **bad_value)
{
	static const char *const yes[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const no[] = { "0", "f", "F", "FALSE", "false", "False" };
	const char *v = mesh_label(&p->annotations, ANNOTATION_BYPASS_INBOUND_CAPTURE);

	if (bad_value)
		*bad_value = NULL;
	if (!v)
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (!strcmp(v, yes[i]))
			return false;
		if (!strcmp(v, no[i]))
			return true;
	}
	if (bad_value)
		*bad_value = v;
	return true;
}
