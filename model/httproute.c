/* SPDX-License-Identifier: Apache-2.0 */
/* HTTPRoute decoding and matching (contract in model/httproute.h). */
#include "model/httproute.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/errbuf.h"
#include "conf/warren.h"
#include "model/mesh_types.h"

#define HR_BACKENDS_MAX 16 /* the Gateway API's own limits */
#define HR_MATCHES_MAX  64
#define HR_RULES_MAX    16
#define HR_WEIGHT_MAX   1000000

struct hr_ctx {
	const char *where;
	char *err;
	size_t errlen;
};

static int __attribute__((format(printf, 3, 4)))
hr_err(const struct hr_ctx *c, const char *field, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!c->err || !c->errlen)
		return -EINVAL;
	n = snprintf(c->err, c->errlen, "%s: %s: ", c->where, field);
	if (n < 0 || (size_t)n >= c->errlen)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int hr_oom(const struct hr_ctx *c)
{
	hr_err(c, "memory", "out of memory");
	return -ENOMEM;
}

/* Every key of o is in keys; unsupported: known keys warren refuses. */
static int hr_keys(const struct hr_ctx *c, json_t *o, const char *field, const char *const *keys,
		   const char *const *unsupported)
{
	const char *k;
	json_t *v;

	if (!json_is_object(o))
		return hr_err(c, field, "expected a mapping, got %s", errbuf_json_type(o));
	json_object_foreach(o, k, v) {
		bool known = false;

		for (size_t i = 0; unsupported && unsupported[i]; i++)
			if (!strcmp(k, unsupported[i]))
				return hr_err(c, field, "\"%s\" is not supported by warren yet; refusing the route rather than applying it in part",
					      k);
		for (size_t i = 0; keys[i] && !known; i++)
			known = !strcmp(k, keys[i]);
		if (!known)
			return hr_err(c, field, "unknown key \"%s\"", k);
	}
	return 0;
}

/* An optional string: absent or null -> dflt. */
static int hr_str(const struct hr_ctx *c, json_t *o, const char *key, const char *field,
		  const char *dflt, const char **out)
{
	json_t *v = json_object_get(o, key);

	*out = dflt;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return hr_err(c, field, "expected a string, got %s", errbuf_json_type(v));
	*out = json_string_value(v);
	return 0;
}

static int hr_list(const struct hr_ctx *c, json_t *o, const char *key, const char *field,
		   size_t max, json_t **out)
{
	json_t *v = json_object_get(o, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return hr_err(c, field, "expected a list, got %s", errbuf_json_type(v));
	if (json_array_size(v) > max)
		return hr_err(c, field, "%zu items; at most %zu", json_array_size(v), max);
	*out = v;
	return 0;
}

static int hr_port(const struct hr_ctx *c, json_t *o, const char *field, bool required, uint16_t *out)
{
	json_t *v = json_object_get(o, "port");

	*out = 0;
	if (!v || json_is_null(v))
		return required ? hr_err(c, field, "port missing (a Service backend needs one)") : 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535)
		return hr_err(c, field, "port must be a number 1..65535");
	*out = (uint16_t)json_integer_value(v);
	return 0;
}

/* group "" (core) and kind Service, as GAMMA's parents and backends. */
static int hr_is_service(const struct hr_ctx *c, json_t *o, const char *field, const char *dflt_kind,
			 const char *dflt_group, bool *is)
{
	const char *group, *kind;
	int ret = hr_str(c, o, "group", field, dflt_group, &group);

	if (!ret)
		ret = hr_str(c, o, "kind", field, dflt_kind, &kind);
	if (ret)
		return ret;
	*is = !strcmp(kind, "Service") && (!*group || !strcmp(group, "core"));
	if (!strcmp(kind, "Service") && !*is)
		return hr_err(c, field, "kind Service of group \"%s\"; expected the core group \"\"", group);
	return 0;
}

static int hr_name(const struct hr_ctx *c, json_t *o, const char *field, const char **out)
{
	int ret = hr_str(c, o, "name", field, NULL, out);

	if (!ret && (!*out || !**out))
		return hr_err(c, field, "name missing or empty");
	return ret;
}

static int hr_same_ns(const struct hr_ctx *c, json_t *o, const char *field, const char *ns)
{
	const char *n;
	int ret = hr_str(c, o, "namespace", field, ns, &n);

	if (!ret && strcmp(n, ns))
		return hr_err(c, field, "namespace %s is not the route's (%s); cross-namespace references are not supported",
			      n, ns);
	return ret;
}

static int hr_parents(const struct hr_ctx *c, json_t *spec, const char *ns, struct mesh_httproute *r)
{
	static const char *const keys[] = { "group", "kind", "name", "namespace", "port", "sectionName", NULL };
	json_t *list, *e;
	size_t i;
	int ret = hr_list(c, spec, "parentRefs", "spec.parentRefs", 32, &list);

	if (ret)
		return ret;
	if (!list || !json_array_size(list))
		return hr_err(c, "spec.parentRefs", "missing or empty; a mesh route names its Service");
	r->parents = calloc(json_array_size(list), sizeof(*r->parents));
	if (!r->parents)
		return hr_oom(c);
	json_array_foreach(list, i, e) {
		struct mesh_route_parent *p = &r->parents[r->n_parents];
		bool svc;

		ret = hr_keys(c, e, "spec.parentRefs[]", keys, NULL);
		if (!ret)
			ret = hr_is_service(c, e, "spec.parentRefs[]", "Gateway", "gateway.networking.k8s.io", &svc);
		if (!ret)
			ret = hr_name(c, e, "spec.parentRefs[]", &p->service);
		if (ret)
			return ret;
		if (!svc)
			continue; /* a Gateway's route: not the mesh's */
		if (json_object_get(e, "sectionName"))
			return hr_err(c, "spec.parentRefs[]", "sectionName on a Service parent is not supported; use port");
		ret = hr_same_ns(c, e, "spec.parentRefs[]", ns);
		if (!ret)
			ret = hr_port(c, e, "spec.parentRefs[]", false, &p->port);
		if (ret)
			return ret;
		r->n_parents++;
	}
	return 0;
}

static bool hr_path_ok(const char *p)
{
	if (*p != '/')
		return false;
	for (; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '?' || *p == '#')
			return false;
	return true;
}

static int hr_path(const struct hr_ctx *c, json_t *m, struct mesh_route_match *mt)
{
	static const char *const keys[] = { "type", "value", NULL };
	json_t *p = json_object_get(m, "path");
	const char *type;
	int ret;

	mt->path_type = MESH_PATH_PREFIX;
	mt->path = "/";
	if (p && !json_is_null(p)) {
		ret = hr_keys(c, p, "spec.rules[].matches[].path", keys, NULL);
		if (!ret)
			ret = hr_str(c, p, "type", "spec.rules[].matches[].path.type", "PathPrefix", &type);
		if (!ret)
			ret = hr_str(c, p, "value", "spec.rules[].matches[].path.value", "/", &mt->path);
		if (ret)
			return ret;
		if (!strcmp(type, "Exact"))
			mt->path_type = MESH_PATH_EXACT;
		else if (!strcmp(type, "RegularExpression"))
			mt->path_type = MESH_PATH_REGEX;
		else if (strcmp(type, "PathPrefix"))
			return hr_err(c, "spec.rules[].matches[].path.type",
				      "\"%s\"; expected Exact, PathPrefix or RegularExpression", type);
	}
	mt->path_len = strlen(mt->path);
	if (mt->path_type == MESH_PATH_REGEX) {
		char msg[160];
		int rc;

		if (!mt->path_len || mt->path_len > MESH_ROUTE_REGEX_MAX)
			return hr_err(c, "spec.rules[].matches[].path.value", "a regex of 1..%d bytes",
				      MESH_ROUTE_REGEX_MAX);
		mt->re = calloc(1, sizeof(*mt->re));
		if (!mt->re)
			return hr_oom(c);
		rc = regcomp(mt->re, mt->path, REG_EXTENDED);
		if (rc) {
			regerror(rc, mt->re, msg, sizeof(msg));
			free(mt->re);
			mt->re = NULL;
			return hr_err(c, "spec.rules[].matches[].path.value", "bad regular expression \"%s\": %s",
				      mt->path, msg);
		}
		return 0;
	}
	if (!hr_path_ok(mt->path))
		return hr_err(c, "spec.rules[].matches[].path.value",
			      "\"%s\": a path starts with '/' and has no space, control byte, '?' or '#'", mt->path);
	if (mt->path_type == MESH_PATH_PREFIX)
		while (mt->path_len && mt->path[mt->path_len - 1] == '/')
			mt->path_len--;
	return 0;
}

static bool hr_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!strchr("!#$%&'*+-.^_`|~", *s) && !(*s >= '0' && *s <= '9') &&
		    !((*s | 0x20) >= 'a' && (*s | 0x20) <= 'z'))
			return false;
	return true;
}

/* headers or queryParams: Exact only. */
static int hr_kvs(const struct hr_ctx *c, json_t *m, const char *key, const char *field, bool header,
		  struct mesh_route_kv **out, size_t *n)
{
	static const char *const keys[] = { "type", "name", "value", NULL };
	json_t *list, *e;
	size_t i;
	int ret = hr_list(c, m, key, field, 16, &list);

	if (ret || !list)
		return ret;
	*out = calloc(json_array_size(list) + 1, sizeof(**out));
	if (!*out)
		return hr_oom(c);
	json_array_foreach(list, i, e) {
		struct mesh_route_kv *kv = &(*out)[i];
		const char *type;

		ret = hr_keys(c, e, field, keys, NULL);
		if (!ret)
			ret = hr_str(c, e, "type", field, "Exact", &type);
		if (!ret)
			ret = hr_name(c, e, field, &kv->name);
		if (!ret)
			ret = hr_str(c, e, "value", field, NULL, &kv->value);
		if (ret)
			return ret;
		if (strcmp(type, "Exact"))
			return hr_err(c, field, "type \"%s\" is not supported; only Exact", type);
		if (!kv->value)
			return hr_err(c, field, "%s: value missing", kv->name);
		if (header && !hr_token(kv->name))
			return hr_err(c, field, "\"%s\" is not a header name", kv->name);
		for (size_t j = 0; j < i; j++)
			if (header ? !strcasecmp((*out)[j].name, kv->name) : !strcmp((*out)[j].name, kv->name))
				return hr_err(c, field, "\"%s\" twice", kv->name);
		*n = i + 1;
	}
	return 0;
}

static int hr_match(const struct hr_ctx *c, json_t *m, struct mesh_route_match *mt)
{
	static const char *const keys[] = { "path", "headers", "queryParams", "method", NULL };
	static const char *const methods[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT",
					       "OPTIONS", "TRACE", "PATCH" };
	bool ok = false;
	int ret = hr_keys(c, m, "spec.rules[].matches[]", keys, NULL);

	if (!ret)
		ret = hr_path(c, m, mt);
	if (!ret)
		ret = hr_kvs(c, m, "headers", "spec.rules[].matches[].headers[]", true, &mt->headers,
			     &mt->n_headers);
	if (!ret)
		ret = hr_kvs(c, m, "queryParams", "spec.rules[].matches[].queryParams[]", false, &mt->query,
			     &mt->n_query);
	if (!ret)
		ret = hr_str(c, m, "method", "spec.rules[].matches[].method", NULL, &mt->method);
	if (ret || !mt->method)
		return ret;
	for (size_t i = 0; i < ARRAY_SIZE(methods); i++)
		ok |= !strcmp(mt->method, methods[i]);
	return ok ? 0 : hr_err(c, "spec.rules[].matches[].method", "\"%s\" is not an HTTP method the Gateway API names",
			       mt->method);
}

static int hr_backends(const struct hr_ctx *c, json_t *rule, const char *ns, struct mesh_route_rule *ru)
{
	static const char *const keys[] = { "group", "kind", "name", "namespace", "port", "weight", NULL };
	static const char *const unsupported[] = { "filters", NULL };
	json_t *list, *e, *w;
	size_t i;
	int ret = hr_list(c, rule, "backendRefs", "spec.rules[].backendRefs", HR_BACKENDS_MAX, &list);

	if (ret || !list)
		return ret;
	ru->backends = calloc(json_array_size(list) + 1, sizeof(*ru->backends));
	if (!ru->backends)
		return hr_oom(c);
	json_array_foreach(list, i, e) {
		struct mesh_route_backend *b = &ru->backends[i];
		bool svc;

		ret = hr_keys(c, e, "spec.rules[].backendRefs[]", keys, unsupported);
		if (!ret)
			ret = hr_is_service(c, e, "spec.rules[].backendRefs[]", "Service", "", &svc);
		if (!ret && !svc)
			ret = hr_err(c, "spec.rules[].backendRefs[]", "only Services can be backends");
		if (!ret)
			ret = hr_name(c, e, "spec.rules[].backendRefs[]", &b->service);
		if (!ret)
			ret = hr_same_ns(c, e, "spec.rules[].backendRefs[]", ns);
		if (!ret)
			ret = hr_port(c, e, "spec.rules[].backendRefs[]", true, &b->port);
		if (ret)
			return ret;
		w = json_object_get(e, "weight");
		b->weight = 1;
		if (w && !json_is_null(w)) {
			if (!json_is_integer(w) || json_integer_value(w) < 0 ||
			    json_integer_value(w) > HR_WEIGHT_MAX)
				return hr_err(c, "spec.rules[].backendRefs[]", "%s: weight must be a number 0..%d",
					      b->service, HR_WEIGHT_MAX);
			b->weight = (uint32_t)json_integer_value(w);
		}
		ru->weight_sum += b->weight;
		ru->n_backends = i + 1;
	}
	return 0;
}

/* A Gateway API Duration: ^([0-9]{1,5}(h|m|s|ms)){1,4}$, in ms. */
static int hr_duration(const struct hr_ctx *c, json_t *t, const char *key, uint32_t *out)
{
	const char *s, *p;
	uint64_t total = 0;
	unsigned parts = 0;
	int ret = hr_str(c, t, key, "spec.rules[].timeouts", NULL, &s);

	*out = 0;
	if (ret || !s)
		return ret;
	for (p = s; *p; parts++) {
		uint64_t v = 0, unit;
		unsigned digits = 0;

		while (*p >= '0' && *p <= '9' && digits < 6) {
			v = v * 10 + (uint64_t)(*p++ - '0');
			digits++;
		}
		if (!digits || digits > 5 || parts == 4)
			goto bad;
		if (p[0] == 'm' && p[1] == 's') {
			unit = 1;
			p += 2;
		} else if (*p == 'h' || *p == 'm' || *p == 's') {
			unit = *p == 'h' ? 3600000 : *p == 'm' ? 60000 : 1000;
			p++;
		} else {
			goto bad;
		}
		total += v * unit;
	}
	if (!parts)
		goto bad;
	if (total > 24 * 3600000ull)
		return hr_err(c, "spec.rules[].timeouts", "%s \"%s\": at most 24h", key, s);
	*out = (uint32_t)total;
	return 0;
bad:
	return hr_err(c, "spec.rules[].timeouts", "%s \"%s\" is not a duration such as 10s, 500ms or 1m30s", key, s);
}

static int hr_timeouts(const struct hr_ctx *c, json_t *rule, struct mesh_route_rule *ru)
{
	static const char *const keys[] = { "request", "backendRequest", NULL };
	json_t *t = json_object_get(rule, "timeouts");
	int ret;

	if (!t || json_is_null(t))
		return 0;
	ret = hr_keys(c, t, "spec.rules[].timeouts", keys, NULL);
	if (!ret)
		ret = hr_duration(c, t, "request", &ru->timeout_ms);
	if (!ret)
		ret = hr_duration(c, t, "backendRequest", &ru->backend_timeout_ms);
	if (!ret && ru->timeout_ms && ru->backend_timeout_ms > ru->timeout_ms)
		return hr_err(c, "spec.rules[].timeouts", "backendRequest is longer than request");
	return ret;
}

static const char *const hr_framing[] = { "content-length", "transfer-encoding", "connection", "upgrade",
					   "te", "trailer", "keep-alive", "proxy-connection", "expect", "host" };

static int hr_hdrname(const struct hr_ctx *c, const char *field, const char *name)
{
	if (!hr_token(name))
		return hr_err(c, field, "\"%s\" is not a header name", name);
	for (size_t i = 0; i < ARRAY_SIZE(hr_framing); i++)
		if (!strcasecmp(name, hr_framing[i]))
			return hr_err(c, field, "%s frames the message or the connection; a route may not change it",
				      name);
	return 0;
}

static int hr_modkvs(const struct hr_ctx *c, json_t *o, const char *key, const char *field,
		     struct mesh_route_kv **out, size_t *n)
{
	static const char *const keys[] = { "name", "value", NULL };
	json_t *list, *e;
	size_t i;
	int ret = hr_list(c, o, key, field, 16, &list);

	if (ret || !list)
		return ret;
	*out = calloc(json_array_size(list) + 1, sizeof(**out));
	if (!*out)
		return hr_oom(c);
	json_array_foreach(list, i, e) {
		struct mesh_route_kv *kv = &(*out)[i];

		ret = hr_keys(c, e, field, keys, NULL);
		if (!ret)
			ret = hr_name(c, e, field, &kv->name);
		if (!ret)
			ret = hr_hdrname(c, field, kv->name);
		if (!ret)
			ret = hr_str(c, e, "value", field, NULL, &kv->value);
		if (ret)
			return ret;
		if (!kv->value)
			return hr_err(c, field, "%s: value missing", kv->name);
		for (const char *p = kv->value; *p; p++)
			if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
				return hr_err(c, field, "%s: the value has a control byte", kv->name);
		*n = i + 1;
	}
	return 0;
}

static int hr_hdrmod(const struct hr_ctx *c, json_t *o, const char *field, struct mesh_route_hdrmod *m)
{
	static const char *const keys[] = { "set", "add", "remove", NULL };
	json_t *list, *e;
	size_t i;
	int ret = hr_keys(c, o, field, keys, NULL);

	if (!ret)
		ret = hr_modkvs(c, o, "set", field, &m->set, &m->n_set);
	if (!ret)
		ret = hr_modkvs(c, o, "add", field, &m->add, &m->n_add);
	if (!ret)
		ret = hr_list(c, o, "remove", field, 16, &list);
	if (ret || !list)
		return ret;
	m->remove = calloc(json_array_size(list) + 1, sizeof(*m->remove));
	if (!m->remove)
		return hr_oom(c);
	json_array_foreach(list, i, e) {
		if (!json_is_string(e))
			return hr_err(c, field, "remove: item %zu is %s, expected a string", i, errbuf_json_type(e));
		m->remove[i] = json_string_value(e);
		ret = hr_hdrname(c, field, m->remove[i]);
		if (ret)
			return ret;
		m->n_remove = i + 1;
	}
	return 0;
}

static int hr_filters(const struct hr_ctx *c, json_t *rule, struct mesh_route_rule *ru)
{
	static const char *const keys[] = { "type", "requestHeaderModifier", "responseHeaderModifier", NULL };
	json_t *list, *e, *o;
	bool req = false, resp = false;
	size_t i;
	int ret = hr_list(c, rule, "filters", "spec.rules[].filters", 16, &list);

	if (ret || !list)
		return ret;
	json_array_foreach(list, i, e) {
		const char *type;

		ret = hr_str(c, e, "type", "spec.rules[].filters[].type", NULL, &type);
		if (ret)
			return ret;
		if (!type)
			return hr_err(c, "spec.rules[].filters[]", "type missing");
		if (!strcmp(type, "RequestHeaderModifier") || !strcmp(type, "ResponseHeaderModifier")) {
			ret = hr_keys(c, e, "spec.rules[].filters[]", keys, NULL);
			if (ret)
				return ret;
			bool is_req = type[2] == 'q';
			const char *k = is_req ? "requestHeaderModifier" : "responseHeaderModifier";

			if (is_req ? req : resp)
				return hr_err(c, "spec.rules[].filters[]", "%s twice in a rule", type);
			o = json_object_get(e, k);
			if (!json_is_object(o))
				return hr_err(c, "spec.rules[].filters[]", "%s needs the mapping %s", type, k);
			if (json_object_get(e, is_req ? "responseHeaderModifier" : "requestHeaderModifier"))
				return hr_err(c, "spec.rules[].filters[]", "%s with the other modifier's field", type);
			ret = hr_hdrmod(c, o, is_req ? "spec.rules[].filters[].requestHeaderModifier"
						     : "spec.rules[].filters[].responseHeaderModifier",
					is_req ? &ru->req_mod : &ru->resp_mod);
			if (ret)
				return ret;
			*(is_req ? &req : &resp) = true;
			continue;
		}
		return hr_err(c, "spec.rules[].filters[].type",
			      "\"%s\" is not supported by warren yet (only RequestHeaderModifier and ResponseHeaderModifier); refusing the route rather than applying it in part",
			      type);
	}
	return 0;
}

static int hr_rules(const struct hr_ctx *c, json_t *spec, const char *ns, struct mesh_httproute *r)
{
	static const char *const keys[] = { "name", "matches", "backendRefs", "timeouts", "filters", NULL };
	static const char *const unsupported[] = { "retry", "sessionPersistence", NULL };
	json_t *list, *e, *ml, *m;
	size_t i, j;
	int ret = hr_list(c, spec, "rules", "spec.rules", HR_RULES_MAX, &list);

	if (ret)
		return ret;
	if (!list || !json_array_size(list))
		return hr_err(c, "spec.rules", "missing or empty");
	r->rules = calloc(json_array_size(list), sizeof(*r->rules));
	if (!r->rules)
		return hr_oom(c);
	json_array_foreach(list, i, e) {
		struct mesh_route_rule *ru = &r->rules[i];

		r->n_rules = i + 1;
		ret = hr_keys(c, e, "spec.rules[]", keys, unsupported);
		if (!ret)
			ret = hr_list(c, e, "matches", "spec.rules[].matches", HR_MATCHES_MAX, &ml);
		if (ret)
			return ret;
		ru->matches = calloc(ml && json_array_size(ml) ? json_array_size(ml) : 1, sizeof(*ru->matches));
		if (!ru->matches)
			return hr_oom(c);
		if (!ml || !json_array_size(ml)) {
			ru->matches[0] = (struct mesh_route_match){ .path_type = MESH_PATH_PREFIX, .path = "/" };
			ru->n_matches = 1;
		}
		json_array_foreach(ml, j, m) {
			ru->n_matches = j + 1;
			ret = hr_match(c, m, &ru->matches[j]);
			if (ret)
				return ret;
		}
		ret = hr_backends(c, e, ns, ru);
		if (!ret)
			ret = hr_timeouts(c, e, ru);
		if (!ret)
			ret = hr_filters(c, e, ru);
		if (ret)
			return ret;
	}
	return 0;
}

int mesh_httproute_decode(json_t *o, const char *ns, const char *name, const char *where,
			  struct mesh_httproute *r, char *err, size_t errlen)
{
	static const char *const keys[] = { "parentRefs", "hostnames", "rules", NULL };
	struct hr_ctx c = { .where = where, .err = err, .errlen = errlen };
	json_t *spec = json_object_get(o, "spec"), *hosts;
	int ret;

	memset(r, 0, sizeof(*r));
	r->namespace = ns;
	r->name = name;
	if (!spec)
		return hr_err(&c, "spec", "missing");
	ret = hr_keys(&c, spec, "spec", keys, NULL);
	if (!ret)
		ret = hr_list(&c, spec, "hostnames", "spec.hostnames", 16, &hosts);
	if (!ret)
		ret = hr_parents(&c, spec, ns, r);
	if (!ret)
		ret = hr_rules(&c, spec, ns, r);
	if (ret)
		mesh_httproute_clear(r);
	return ret;
}

void mesh_httproute_clear(struct mesh_httproute *r)
{
	for (size_t i = 0; r->rules && i < r->n_rules; i++) {
		struct mesh_route_rule *ru = &r->rules[i];

		for (size_t j = 0; ru->matches && j < ru->n_matches; j++) {
			if (ru->matches[j].re) {
				regfree(ru->matches[j].re);
				free(ru->matches[j].re);
			}
			free(ru->matches[j].headers);
			free(ru->matches[j].query);
		}
		free(ru->matches);
		free(ru->backends);
		free(ru->req_mod.set);
		free(ru->req_mod.add);
		free(ru->req_mod.remove);
		free(ru->resp_mod.set);
		free(ru->resp_mod.add);
		free(ru->resp_mod.remove);
	}
	free(r->rules);
	free(r->parents);
	memset(r, 0, sizeof(*r));
}

/* ---- matching ---- */

static bool hr_path_match(const struct mesh_route_match *mt, const char *p, size_t n)
{
	switch (mt->path_type) {
	case MESH_PATH_EXACT:
		return n == mt->path_len && !memcmp(p, mt->path, n);
	case MESH_PATH_PREFIX:
		return n >= mt->path_len && !memcmp(p, mt->path, mt->path_len) &&
		       (n == mt->path_len || p[mt->path_len] == '/' || !mt->path_len);
	case MESH_PATH_REGEX: {
		regmatch_t rm = { .rm_so = 0, .rm_eo = (regoff_t)n };

		/* REG_STARTEND: the path is not NUL-terminated; leftmost-longest,
		 * so a full match exists iff the match spans the whole path */
		return !regexec(mt->re, p, 1, &rm, REG_STARTEND) && rm.rm_so == 0 && (size_t)rm.rm_eo == n;
	}
	}
	return false;
}

static bool hr_query_match(const struct mesh_route_kv *kv, const char *q, size_t n)
{
	size_t nl = strlen(kv->name), vl = strlen(kv->value);

	while (q && n) {
		const char *amp = memchr(q, '&', n);
		size_t len = amp ? (size_t)(amp - q) : n;
		const char *eq = memchr(q, '=', len);
		size_t kl = eq ? (size_t)(eq - q) : len;

		if (kl == nl && !memcmp(q, kv->name, nl)) /* the first of that name decides */
			return eq ? len - kl - 1 == vl && !memcmp(eq + 1, kv->value, vl) : !vl;
		q = amp ? amp + 1 : NULL;
		n = amp ? n - len - 1 : 0;
	}
	return false;
}

bool mesh_route_match(const struct mesh_route_match *mt, const struct mesh_route_req *rq)
{
	if (!hr_path_match(mt, rq->path, rq->path_len))
		return false;
	if (mt->method && (!rq->method || strcmp(mt->method, rq->method)))
		return false;
	for (size_t i = 0; i < mt->n_headers; i++) {
		size_t len = 0;
		const char *v = rq->header ? rq->header(rq->ctx, mt->headers[i].name, &len) : NULL;

		if (!v || len != strlen(mt->headers[i].value) || memcmp(v, mt->headers[i].value, len))
			return false;
	}
	for (size_t i = 0; i < mt->n_query; i++)
		if (!hr_query_match(&mt->query[i], rq->query, rq->query_len))
			return false;
	return true;
}

static bool hr_attached(const struct mesh_httproute *r, const struct mesh_service *svc, uint16_t port)
{
	if (strcmp(r->namespace, svc->namespace))
		return false;
	for (size_t i = 0; i < r->n_parents; i++)
		if (!strcmp(r->parents[i].service, svc->name) && (!r->parents[i].port || r->parents[i].port == port))
			return true;
	return false;
}

bool mesh_service_routed(const struct mesh *m, const struct mesh_service *svc, uint16_t port)
{
	for (size_t i = 0; i < m->n_httproutes; i++)
		if (hr_attached(&m->httproutes[i], svc, port))
			return true;
	return false;
}

/* Higher is more specific (the Gateway API's order). */
static int hr_cmp_match(const struct mesh_route_match *a, const struct mesh_route_match *b)
{
	static const int rank[] = { [MESH_PATH_PREFIX] = 0, [MESH_PATH_REGEX] = 1, [MESH_PATH_EXACT] = 2 };

	if (rank[a->path_type] != rank[b->path_type])
		return rank[a->path_type] - rank[b->path_type];
	if (a->path_type == MESH_PATH_PREFIX && a->path_len != b->path_len)
		return a->path_len > b->path_len ? 1 : -1;
	if (!a->method != !b->method)
		return a->method ? 1 : -1;
	if (a->n_headers != b->n_headers)
		return a->n_headers > b->n_headers ? 1 : -1;
	if (a->n_query != b->n_query)
		return a->n_query > b->n_query ? 1 : -1;
	return 0;
}

const struct mesh_route_rule *mesh_route_select(const struct mesh *m, const struct mesh_service *svc,
						uint16_t port, const struct mesh_route_req *rq,
						const struct mesh_httproute **route)
{
	const struct mesh_route_rule *best = NULL;
	const struct mesh_route_match *bm = NULL;
	const struct mesh_httproute *br = NULL;

	for (size_t i = 0; i < m->n_httproutes; i++) {
		const struct mesh_httproute *r = &m->httproutes[i];

		if (!hr_attached(r, svc, port))
			continue;
		for (size_t j = 0; j < r->n_rules; j++)
			for (size_t k = 0; k < r->rules[j].n_matches; k++) {
				const struct mesh_route_match *mt = &r->rules[j].matches[k];
				int cmp;

				if (!mesh_route_match(mt, rq))
					continue;
				cmp = bm ? hr_cmp_match(mt, bm) : 1;
				/* a tie goes to the route first by name (same namespace) */
				if (cmp > 0 || (!cmp && r != br && strcmp(r->name, br->name) < 0)) {
					best = &r->rules[j];
					bm = mt;
					br = r;
				}
			}
	}
	if (route)
		*route = br;
	return best;
}

const struct mesh_route_backend *mesh_route_pick(const struct mesh_route_rule *rule, uint32_t rnd)
{
	uint64_t x;

	if (!rule->weight_sum)
		return NULL;
	x = ((uint64_t)rnd * rule->weight_sum) >> 32;
	for (size_t i = 0; i < rule->n_backends; i++) {
		if (x < rule->backends[i].weight)
			return &rule->backends[i];
		x -= rule->backends[i].weight;
	}
	return NULL; /* not reached: x < weight_sum */
}

/* ---- header modifiers ---- */

static bool hr_named(const char *line, size_t n, const char *name)
{
	size_t nl = strlen(name);

	return n > nl && line[nl] == ':' && !strncasecmp(line, name, nl);
}

static bool hr_put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
	if (n > cap - *len)
		return false;
	memcpy(out + *len, s, n);
	*len += n;
	return true;
}

static bool hr_put_field(char *out, size_t cap, size_t *len, const struct mesh_route_kv *kv)
{
	return hr_put(out, cap, len, kv->name, strlen(kv->name)) && hr_put(out, cap, len, ": ", 2) &&
	       hr_put(out, cap, len, kv->value, strlen(kv->value)) && hr_put(out, cap, len, "\r\n", 2);
}

long mesh_route_rewrite_head(const char *head, size_t len, const struct mesh_route_hdrmod *m, char *out,
			     size_t cap)
{
	const char *p = head, *end = head + len, *eol;
	size_t o = 0;
	bool first = true;

	/* the start line, then each field line, up to the empty line */
	while (p < end && (eol = memmem(p, (size_t)(end - p), "\r\n", 2))) {
		size_t n = (size_t)(eol - p);
		bool drop = false;

		if (!n && first) { /* leading empty lines (RFC 9112 2.2): dropped */
			p = eol + 2;
			continue;
		}
		if (!n)
			break;
		for (size_t i = 0; !first && n && i < m->n_remove; i++)
			drop |= hr_named(p, n, m->remove[i]);
		for (size_t i = 0; !first && n && i < m->n_set; i++)
			drop |= hr_named(p, n, m->set[i].name);
		if (!drop && !hr_put(out, cap, &o, p, n + 2))
			return -E2BIG;
		first = false;
		p = eol + 2;
	}
	for (size_t i = 0; i < m->n_set; i++)
		if (!hr_put_field(out, cap, &o, &m->set[i]))
			return -E2BIG;
	for (size_t i = 0; i < m->n_add; i++)
		if (!hr_put_field(out, cap, &o, &m->add[i]))
			return -E2BIG;
	if (!hr_put(out, cap, &o, "\r\n", 2))
		return -E2BIG;
	return (long)o;
}
