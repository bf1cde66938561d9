/* SPDX-License-Identifier: Apache-2.0 */
/*
 * L4 authorization engine (contract and semantics in model/authz.h).
 *
 * Compilation mirrors istiod's ambient conversion (authorization.go
 * handleRule) and evaluation mirrors ztunnel's rbac.rs, so that the same
 * objects give the same decisions. Everything a set owns (policies, rules,
 * strings, messages) lives in one arena, freed at once by authz_set_free():
 * the compiled structure is never modified after authz_compile() returns.
 */
#include "model/authz.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

struct arena_blk {
	struct arena_blk *next;
	size_t used, cap;
	max_align_t data[];
};

struct arena {
	struct arena_blk *head;
	bool nomem; /* sticky: some allocation failed */
};

#define ARENA_BLK 16384u

static void *ar_alloc(struct arena *a, size_t n)
{
	struct arena_blk *b = a->head;
	size_t al = sizeof(max_align_t);

	if (n > SIZE_MAX / 2) {
		a->nomem = true;
		return NULL;
	}
	n = (n + al - 1) / al * al;
	if (!n)
		n = al;
	if (!b || b->cap - b->used < n) {
		size_t cap = n > ARENA_BLK ? n : ARENA_BLK;

		b = calloc(1, sizeof(*b) + cap);
		if (!b) {
			a->nomem = true;
			return NULL;
		}
		b->cap = cap;
		b->next = a->head;
		a->head = b;
	}
	void *p = (char *)b->data + b->used;

	b->used += n;
	return p; /* zeroed: blocks come from calloc and are never reused */
}

static void *ar_calloc(struct arena *a, size_t n, size_t sz)
{
	if (sz && n > SIZE_MAX / sz) {
		a->nomem = true;
		return NULL;
	}
	return ar_alloc(a, n * sz);
}

static char *ar_strndup(struct arena *a, const char *s, size_t len)
{
	char *p = ar_alloc(a, len + 1);

	if (p)
		memcpy(p, s, len);
	return p;
}

static char *ar_strdup(struct arena *a, const char *s)
{
	return ar_strndup(a, s, strlen(s));
}

static void ar_free(struct arena *a)
{
	struct arena_blk *b = a->head;

	while (b) {
		struct arena_blk *n = b->next;

		free(b);
		b = n;
	}
	a->head = NULL;
}

/* ---- compiled form ---- */

/* Match field types, as in ztunnel's RbacMatch. */
enum field { F_NS, F_PR, F_SA, F_SIP, F_DIP, F_DPORT, F_MAX };
enum vtype { T_STR, T_SA, T_IP, T_PORT, T_L7, T_L7IP };
enum smkind { SM_EXACT, SM_PREFIX, SM_SUFFIX, SM_PRESENCE };

struct strmatch {
	enum smkind kind;
	const char *s;
	size_t len;
};

struct samatch {
	const char *ns;
	const char *sa;
};

struct cidr {
	int family;
	uint8_t addr[16];
	unsigned bits;
};

struct flist {
	size_t n;
	union {
		struct strmatch *s;
		struct samatch *sa;
		struct cidr *c;
		uint16_t *port;
	} u;
};

struct match {
	struct flist f[F_MAX][2]; /* [field][0 positive, 1 not-form] */
};

struct clause {
	struct match *m;
	size_t n;
};

struct rule {
	struct clause *c;
	size_t n;
};

enum scope { SC_NONE, SC_GLOBAL, SC_NS, SC_WL, SC_MESH };
enum action { A_ALLOW, A_DENY };
enum mtls { M_UNSET, M_DISABLE, M_PERMISSIVE, M_STRICT };

struct portmode {
	uint16_t port;
	enum mtls mode;
};

struct policy {
	enum authz_policy_kind kind;
	const char *ns, *name, *key;
	const char *created; /* creationTimestamp or "" */
	enum scope scope;
	struct mesh_label *sel;
	size_t n_sel;
	enum action action;
	const char *action_str;
	enum authz_policy_state state;
	struct rule *rules;
	size_t n_rules;
	struct authz_msg *msgs;
	size_t n_msgs, cap_msgs;
	const char *first_error;
	/* PeerAuthentication */
	enum mtls mode;
	struct portmode *ports;
	size_t n_ports;
};

struct authz_set {
	struct arena ar;
	const char *root;
	struct policy *ap;
	size_t n_ap;
	struct policy *pa;
	size_t n_pa;
	size_t n_invalid;
};

/* ---- compile context ---- */

struct pctx {
	struct arena *ar;
	struct policy *p;
	const char *root;
	/* L7 attribute names found, for the warning (unique, in order seen) */
	const char **l7;
	size_t n_l7, cap_l7;
};

static void __attribute__((format(printf, 3, 4)))
addmsg(struct pctx *pc, enum authz_msg_level level, const char *fmt, ...)
{
	struct policy *p = pc->p;
	char buf[768];
	va_list ap;
	char *s;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s = ar_strdup(pc->ar, buf);
	if (!s)
		return;
	if (p->n_msgs == p->cap_msgs) {
		size_t cap = p->cap_msgs ? p->cap_msgs * 2 : 4;
		struct authz_msg *m = ar_calloc(pc->ar, cap, sizeof(*m));

		if (!m)
			return;
		if (p->n_msgs)
			memcpy(m, p->msgs, p->n_msgs * sizeof(*m));
		p->msgs = m;
		p->cap_msgs = cap;
	}
	p->msgs[p->n_msgs].level = level;
	p->msgs[p->n_msgs].text = s;
	p->n_msgs++;
	if (level == AUTHZ_MSG_ERROR) {
		p->state = AUTHZ_POLICY_INVALID;
		if (!p->first_error)
			p->first_error = s;
	}
}

static void note_l7(struct pctx *pc, const char *name)
{
	for (size_t i = 0; i < pc->n_l7; i++)
		if (!strcmp(pc->l7[i], name))
			return;
	if (pc->n_l7 == pc->cap_l7) {
		size_t cap = pc->cap_l7 ? pc->cap_l7 * 2 : 8;
		const char **v = ar_calloc(pc->ar, cap, sizeof(*v));

		if (!v)
			return;
		if (pc->n_l7)
			memcpy(v, pc->l7, pc->n_l7 * sizeof(*v));
		pc->l7 = v;
		pc->cap_l7 = cap;
	}
	pc->l7[pc->n_l7++] = ar_strdup(pc->ar, name);
	if (!pc->l7[pc->n_l7 - 1])
		pc->n_l7--;
}

/* snprintf for message paths: truncation only shortens a message. */
static void __attribute__((format(printf, 3, 4)))
pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static const char *jtype(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "a list";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

/* ---- value parsers ---- */

/* Decimal 1..65535, digits only (Istio ValidatePorts). */
static int parse_port(const char *s, uint16_t *out)
{
	unsigned long v = 0;
	size_t i;

	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 5)
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (!i || v == 0 || v > 65535)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

/* "a.b.c.d", "a.b.c.d/n", "v6", "v6/n"; a bare IP is /32 or /128. */
static int parse_cidr(const char *s, struct cidr *c)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned bits = 0, maxbits;

	memset(c, 0, sizeof(*c));
	if (!alen || alen >= INET6_ADDRSTRLEN)
		return -EINVAL;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		maxbits = 128;
	} else {
		return -EINVAL;
	}
	if (!slash) {
		c->bits = maxbits;
		return 0;
	}
	const char *b = slash + 1;

	if (!*b || strlen(b) > 3)
		return -EINVAL;
	for (; *b; b++) {
		if (*b < '0' || *b > '9')
			return -EINVAL;
		bits = bits * 10 + (unsigned)(*b - '0');
	}
	if (bits > maxbits)
		return -EINVAL;
	c->bits = bits;
	return 0;
}

/* istiod stringToMatch: "*" presence, "*x" suffix, "x*" prefix, else exact. */
static void make_strmatch(struct arena *ar, const char *v, struct strmatch *m)
{
	size_t len = strlen(v);

	if (!strcmp(v, "*")) {
		m->kind = SM_PRESENCE;
		m->s = "";
		m->len = 0;
	} else if (v[0] == '*') {
		m->kind = SM_SUFFIX;
		m->s = ar_strdup(ar, v + 1);
		m->len = len - 1;
	} else if (len && v[len - 1] == '*') {
		m->kind = SM_PREFIX;
		m->s = ar_strndup(ar, v, len - 1);
		m->len = len - 1;
	} else {
		m->kind = SM_EXACT;
		m->s = ar_strdup(ar, v);
		m->len = len;
	}
}

/*
 * Reads a list of non-empty strings at obj[key] (path names it in
 * messages) and converts it by type into *out (which may be NULL for L7
 * types). Absent or null: empty list. Problems are policy errors.
 */
static void conv_list(struct pctx *pc, const json_t *arr, enum vtype type, struct flist *out,
		      const char *path)
{
	size_t n, i, k = 0;
	const json_t *v;

	if (!arr || json_is_null(arr))
		return;
	if (!json_is_array(arr)) {
		addmsg(pc, AUTHZ_MSG_ERROR, "%s: must be a list of strings, found %s", path, jtype(arr));
		return;
	}
	n = json_array_size(arr);
	if (!n)
		return;
	if (out) {
		size_t sz = type == T_STR ? sizeof(struct strmatch) :
			    type == T_SA  ? sizeof(struct samatch) :
			    type == T_IP  ? sizeof(struct cidr) : sizeof(uint16_t);
		void *mem = ar_calloc(pc->ar, n, sz);

		if (!mem)
			return;
		out->u.s = mem;
	}
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);

		if (!json_is_string(v)) {
			addmsg(pc, AUTHZ_MSG_ERROR, "%s[%zu]: must be a string, found %s", path, i,
			       jtype(v));
			continue;
		}
		if (!*s) {
			addmsg(pc, AUTHZ_MSG_ERROR, "%s[%zu]: empty string is not allowed", path, i);
			continue;
		}
		switch (type) {
		case T_STR:
			make_strmatch(pc->ar, s, &out->u.s[k++]);
			break;
		case T_SA: {
			const char *sl = strchr(s, '/');
			struct samatch *m = &out->u.sa[k];

			if (sl && (sl == s || !sl[1] || strchr(sl + 1, '/'))) {
				addmsg(pc, AUTHZ_MSG_ERROR,
				       "%s[%zu]: \"%s\" is not a service account: use \"sa\" or \"namespace/sa\"",
				       path, i, s);
				continue;
			}
			if (sl) {
				m->ns = ar_strndup(pc->ar, s, (size_t)(sl - s));
				m->sa = ar_strdup(pc->ar, sl + 1);
			} else {
				/* bare name: the policy's namespace (istiod) */
				m->ns = pc->p->ns;
				m->sa = ar_strdup(pc->ar, s);
			}
			k++;
			break;
		}
		case T_IP:
		case T_L7IP: {
			struct cidr c;

			if (parse_cidr(s, &c)) {
				addmsg(pc, AUTHZ_MSG_ERROR,
				       "%s[%zu]: \"%s\" is not an IP address or CIDR (e.g. 10.0.0.0/8, fd00::/8, 10.1.2.3)",
				       path, i, s);
				continue;
			}
			if (type == T_IP)
				out->u.c[k++] = c;
			break;
		}
		case T_PORT:
			if (parse_port(s, &out->u.port[k])) {
				addmsg(pc, AUTHZ_MSG_ERROR,
				       "%s[%zu]: \"%s\" is not a port: use a number 1..65535 as a string",
				       path, i, s);
				continue;
			}
			k++;
			break;
		case T_L7:
			break;
		}
	}
	if (out)
		out->n = k;
}

/* ---- rules ---- */

struct fspec {
	const char *name;
	enum field field;
	int neg;
	enum vtype type;
};

static const struct fspec source_fields[] = {
	{ "principals", F_PR, 0, T_STR },
	{ "notPrincipals", F_PR, 1, T_STR },
	{ "namespaces", F_NS, 0, T_STR },
	{ "notNamespaces", F_NS, 1, T_STR },
	{ "serviceAccounts", F_SA, 0, T_SA },
	{ "notServiceAccounts", F_SA, 1, T_SA },
	{ "ipBlocks", F_SIP, 0, T_IP },
	{ "notIpBlocks", F_SIP, 1, T_IP },
	{ "requestPrincipals", F_MAX, 0, T_L7 },
	{ "notRequestPrincipals", F_MAX, 0, T_L7 },
	{ "remoteIpBlocks", F_MAX, 0, T_L7IP },
	{ "notRemoteIpBlocks", F_MAX, 0, T_L7IP },
	{ "trustDomains", F_MAX, 0, T_L7 },
	{ "notTrustDomains", F_MAX, 0, T_L7 },
};

static const struct fspec operation_fields[] = {
	{ "ports", F_DPORT, 0, T_PORT },
	{ "notPorts", F_DPORT, 1, T_PORT },
	{ "hosts", F_MAX, 0, T_L7 },
	{ "notHosts", F_MAX, 0, T_L7 },
	{ "methods", F_MAX, 0, T_L7 },
	{ "notMethods", F_MAX, 0, T_L7 },
	{ "paths", F_MAX, 0, T_L7 },
	{ "notPaths", F_MAX, 0, T_L7 },
};

static bool match_is_empty(const struct match *m)
{
	for (int f = 0; f < F_MAX; f++)
		if (m->f[f][0].n || m->f[f][1].n)
			return false;
	return true;
}

/* One from[].source or to[].operation entry -> one match. Returns whether
 * any L7 field was present. */
static bool conv_entry(struct pctx *pc, const json_t *obj, const struct fspec *specs,
		       size_t n_specs, struct match *m, const char *path)
{
	const char *k;
	const json_t *v;
	bool l7 = false, any = false;
	char sub[320];

	json_object_foreach((json_t *)obj, k, v) {
		const struct fspec *fs = NULL;

		for (size_t i = 0; i < n_specs; i++)
			if (!strcmp(specs[i].name, k))
				fs = &specs[i];
		if (!fs) {
			addmsg(pc, AUTHZ_MSG_ERROR, "%s: unknown field \"%s\"", path, k);
			continue;
		}
		pathf(sub, sizeof(sub), "%s.%s", path, k);
		if (fs->field == F_MAX) {
			conv_list(pc, v, fs->type, NULL, sub);
			if (json_array_size(v)) {
				l7 = any = true;
				note_l7(pc, k);
			}
		} else {
			conv_list(pc, v, fs->type, &m->f[fs->field][fs->neg], sub);
			if (json_array_size(v))
				any = true;
		}
	}
	if (!any)
		addmsg(pc, AUTHZ_MSG_ERROR, "%s: must not be empty", path);
	return l7;
}

static const struct {
	const char *key;
	enum field field;
	enum vtype type;
} when_keys[] = {
	{ "source.ip", F_SIP, T_IP },
	{ "source.namespace", F_NS, T_STR },
	{ "source.principal", F_PR, T_STR },
	{ "destination.ip", F_DIP, T_IP },
	{ "destination.port", F_DPORT, T_PORT },
};

/* A clause of one match per element of list (from[] or to[]). */
static bool conv_entries(struct pctx *pc, const json_t *list, const char *inner,
			 const struct fspec *specs, size_t n_specs, struct clause *cl,
			 const char *path)
{
	size_t i, n = json_array_size(list);
	const json_t *e;
	bool l7 = false;
	char sub[320];

	cl->m = ar_calloc(pc->ar, n, sizeof(*cl->m));
	if (!cl->m)
		return false;
	cl->n = n;
	json_array_foreach(list, i, e) {
		const json_t *o;
		const char *k;
		const json_t *v;

		pathf(sub, sizeof(sub), "%s[%zu]", path, i);
		if (!json_is_object(e)) {
			addmsg(pc, AUTHZ_MSG_ERROR, "%s: must be an object, found %s", sub, jtype(e));
			continue;
		}
		json_object_foreach((json_t *)e, k, v)
			if (strcmp(k, inner))
				addmsg(pc, AUTHZ_MSG_ERROR, "%s: unknown field \"%s\"", sub, k);
		o = json_object_get(e, inner);
		pathf(sub, sizeof(sub), "%s[%zu].%s", path, i, inner);
		if (!json_is_object(o)) {
			addmsg(pc, AUTHZ_MSG_ERROR, "%s: must be an object, found %s", sub,
			       o ? jtype(o) : "nothing");
			continue;
		}
		l7 |= conv_entry(pc, o, specs, n_specs, &cl->m[i], sub);
		if (!strcmp(inner, "source")) {
			const struct match *m = &cl->m[i];

			if ((m->f[F_PR][0].n || m->f[F_PR][1].n || m->f[F_NS][0].n ||
			     m->f[F_NS][1].n) &&
			    (m->f[F_SA][0].n || m->f[F_SA][1].n))
				addmsg(pc, AUTHZ_MSG_ERROR,
				       "%s: cannot set serviceAccounts with namespaces or principals", sub);
		}
	}
	return l7;
}

static bool conv_when(struct pctx *pc, const json_t *c, struct clause *cl, const char *path)
{
	const json_t *key, *vals, *nvals;
	const char *k, *ks;
	const json_t *v;
	char sub[320];
	bool l7 = false;

	cl->m = ar_calloc(pc->ar, 1, sizeof(*cl->m));
	if (!cl->m)
		return false;
	cl->n = 1;
	if (!json_is_object(c)) {
		addmsg(pc, AUTHZ_MSG_ERROR, "%s: must be an object, found %s", path, jtype(c));
		return false;
	}
	json_object_foreach((json_t *)c, k, v)
		if (strcmp(k, "key") && strcmp(k, "values") && strcmp(k, "notValues"))
			addmsg(pc, AUTHZ_MSG_ERROR, "%s: unknown field \"%s\"", path, k);
	key = json_object_get(c, "key");
	vals = json_object_get(c, "values");
	nvals = json_object_get(c, "notValues");
	ks = json_string_value(key);
	if (!ks || !*ks) {
		addmsg(pc, AUTHZ_MSG_ERROR, "%s.key: must be a non-empty string", path);
		return false;
	}
	if (!json_array_size(vals) && !json_array_size(nvals) &&
	    (!vals || json_is_array(vals) || json_is_null(vals)) &&
	    (!nvals || json_is_array(nvals) || json_is_null(nvals)))
		addmsg(pc, AUTHZ_MSG_ERROR, "%s: at least one of values or notValues must be set for key %s",
		       path, ks);
	for (size_t i = 0; i < sizeof(when_keys) / sizeof(when_keys[0]); i++) {
		if (strcmp(when_keys[i].key, ks))
			continue;
		pathf(sub, sizeof(sub), "%s.values", path);
		conv_list(pc, vals, when_keys[i].type, &cl->m[0].f[when_keys[i].field][0], sub);
		pathf(sub, sizeof(sub), "%s.notValues", path);
		conv_list(pc, nvals, when_keys[i].type, &cl->m[0].f[when_keys[i].field][1], sub);
		return false;
	}
	/* any other key is an HTTP attribute: checked for shape, then an empty match */
	pathf(sub, sizeof(sub), "%s.values", path);
	conv_list(pc, vals, T_L7, NULL, sub);
	pathf(sub, sizeof(sub), "%s.notValues", path);
	conv_list(pc, nvals, T_L7, NULL, sub);
	note_l7(pc, ks);
	l7 = true;
	return l7;
}

/* istiod handleRule. Returns false when the rule is dropped (ALLOW with L7). */
static bool conv_rule(struct pctx *pc, const json_t *r, struct rule *out, const char *path)
{
	const json_t *from, *to, *when, *v;
	const char *k;
	size_t n = 0, i;
	bool l7 = false;
	char sub[320];

	if (!json_is_object(r)) {
		addmsg(pc, AUTHZ_MSG_ERROR, "%s: must be an object, found %s", path, jtype(r));
		return false;
	}
	json_object_foreach((json_t *)r, k, v)
		if (strcmp(k, "from") && strcmp(k, "to") && strcmp(k, "when"))
			addmsg(pc, AUTHZ_MSG_ERROR, "%s: unknown field \"%s\"", path, k);
	from = json_object_get(r, "from");
	to = json_object_get(r, "to");
	when = json_object_get(r, "when");
	if (json_is_null(from))
		from = NULL;
	if (json_is_null(to))
		to = NULL;
	if (json_is_null(when))
		when = NULL;
	if (from && (!json_is_array(from) || !json_array_size(from))) {
		addmsg(pc, AUTHZ_MSG_ERROR, "%s.from: must be a non-empty list, found %s", path,
		       json_is_array(from) ? "an empty list" : jtype(from));
		from = NULL;
	}
	if (to && (!json_is_array(to) || !json_array_size(to))) {
		addmsg(pc, AUTHZ_MSG_ERROR, "%s.to: must be a non-empty list, found %s", path,
		       json_is_array(to) ? "an empty list" : jtype(to));
		to = NULL;
	}
	if (when && !json_is_array(when)) {
		addmsg(pc, AUTHZ_MSG_ERROR, "%s.when: must be a list, found %s", path, jtype(when));
		when = NULL;
	}
	out->c = ar_calloc(pc->ar, 2 + json_array_size(when), sizeof(*out->c));
	if (!out->c)
		return false;
	if (to) {
		pathf(sub, sizeof(sub), "%s.to", path);
		l7 |= conv_entries(pc, to, "operation", operation_fields,
				   sizeof(operation_fields) / sizeof(operation_fields[0]), &out->c[n++],
				   sub);
	}
	if (from) {
		pathf(sub, sizeof(sub), "%s.from", path);
		l7 |= conv_entries(pc, from, "source", source_fields,
				   sizeof(source_fields) / sizeof(source_fields[0]), &out->c[n++], sub);
	}
	json_array_foreach(when, i, v) {
		pathf(sub, sizeof(sub), "%s.when[%zu]", path, i);
		l7 |= conv_when(pc, v, &out->c[n++], sub);
	}
	out->n = n;
	if (pc->p->action == A_ALLOW && l7)
		return false; /* L7 rules never match in ALLOW (fail safe) */
	return true;
}

/* Istio hasEffectiveRules: can any rule fire at all? */
static bool has_effective_rules(const struct policy *p)
{
	for (size_t r = 0; r < p->n_rules; r++) {
		bool eff = true;

		for (size_t c = 0; c < p->rules[r].n && eff; c++) {
			const struct clause *cl = &p->rules[r].c[c];
			bool nonempty = false;

			for (size_t m = 0; m < cl->n; m++)
				nonempty |= !match_is_empty(&cl->m[m]);
			eff = nonempty;
		}
		if (eff)
			return true;
	}
	return false;
}

/* ---- objects ---- */

/* metadata.namespace/name/creationTimestamp; *spec (NULL when absent, which
 * reads as {}). Returns 0, or -EINVAL when the object is unusable. */
static int conv_meta(struct pctx *pc, const json_t *o, size_t idx, const char *kind,
		     const json_t **spec)
{
	struct policy *p = pc->p;
	const json_t *meta = json_object_get(o, "metadata");
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *name = json_string_value(json_object_get(meta, "name"));
	const char *ts = json_string_value(json_object_get(meta, "creationTimestamp"));
	char key[320];

	p->ns = ar_strdup(pc->ar, ns && *ns ? ns : "default");
	if (name && *name) {
		p->name = ar_strdup(pc->ar, name);
	} else {
		pathf(key, sizeof(key), "(unnamed %s #%zu)", kind, idx + 1);
		p->name = ar_strdup(pc->ar, key);
	}
	pathf(key, sizeof(key), "%s/%s", p->ns ? p->ns : "", p->name ? p->name : "");
	p->key = ar_strdup(pc->ar, key);
	p->created = ar_strdup(pc->ar, ts ? ts : "");
	if (!p->action_str) /* AuthorizationPolicy set its default (ALLOW) already */
		p->action_str = "";
	*spec = NULL;
	if (!p->ns || !p->name || !p->key || !p->created)
		return -EINVAL;
	if (!json_is_object(o)) {
		addmsg(pc, AUTHZ_MSG_ERROR, "%s #%zu: must be an object, found %s", kind, idx + 1,
		       jtype(o));
		return -EINVAL;
	}
	if (!json_is_object(meta)) {
		addmsg(pc, AUTHZ_MSG_ERROR, "metadata: must be an object");
		return -EINVAL;
	}
	if (!name || !*name)
		addmsg(pc, AUTHZ_MSG_ERROR, "metadata.name: must be a non-empty string");
	if (json_object_get(meta, "namespace") && !ns)
		addmsg(pc, AUTHZ_MSG_ERROR, "metadata.namespace: must be a string");

	const json_t *sp = json_object_get(o, "spec");

	if (!sp || json_is_null(sp))
		return 0;
	if (!json_is_object(sp)) {
		addmsg(pc, AUTHZ_MSG_ERROR, "spec: must be an object, found %s", jtype(sp));
		return -EINVAL;
	}
	*spec = sp;
	return 0;
}

/*
 * spec.selector. Returns 1 when a selector with labels was read, 0 when
 * there is none (absent or null), 2 when present but without labels, -1
 * when unreadable (error recorded).
 */
static int conv_selector(struct pctx *pc, const json_t *spec)
{
	struct policy *p = pc->p;
	const json_t *sel = json_object_get(spec, "selector"), *ml, *v;
	const char *k;
	size_t n = 0;
	int bad = 0;

	if (!sel || json_is_null(sel))
		return 0;
	if (!json_is_object(sel)) {
		addmsg(pc, AUTHZ_MSG_ERROR, "spec.selector: must be an object, found %s", jtype(sel));
		return -1;
	}
	json_object_foreach((json_t *)sel, k, v)
		if (strcmp(k, "matchLabels")) {
			addmsg(pc, AUTHZ_MSG_ERROR, "spec.selector: unknown field \"%s\"", k);
			bad = 1;
		}
	ml = json_object_get(sel, "matchLabels");
	if (ml && !json_is_null(ml) && !json_is_object(ml)) {
		addmsg(pc, AUTHZ_MSG_ERROR, "spec.selector.matchLabels: must be a map of strings, found %s",
		       jtype(ml));
		return -1;
	}
	if (bad)
		return -1;
	if (!json_object_size(ml))
		return 2;
	p->sel = ar_calloc(pc->ar, json_object_size(ml), sizeof(*p->sel));
	if (!p->sel)
		return -1;
	json_object_foreach((json_t *)ml, k, v) {
		if (!json_is_string(v)) {
			addmsg(pc, AUTHZ_MSG_ERROR,
			       "spec.selector.matchLabels.%s: must be a string, found %s (quote it)", k,
			       jtype(v));
			bad = 1;
			continue;
		}
		p->sel[n].key = ar_strdup(pc->ar, k);
		p->sel[n].value = ar_strdup(pc->ar, json_string_value(v));
		n++;
	}
	p->n_sel = n;
	return bad ? -1 : 1;
}

/* Go strconv.ParseBool. */
static int parse_bool(const char *s, bool *out)
{
	static const char *const t[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const f[] = { "0", "f", "F", "FALSE", "false", "False" };

	for (size_t i = 0; i < 6; i++) {
		if (!strcmp(s, t[i])) {
			*out = true;
			return 0;
		}
		if (!strcmp(s, f[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static bool has_target_ref(const json_t *spec)
{
	const json_t *tr = json_object_get(spec, "targetRef");
	const json_t *trs = json_object_get(spec, "targetRefs");

	return (tr && !json_is_null(tr)) || json_array_size(trs) ||
	       (trs && !json_is_null(trs) && !json_is_array(trs));
}

static void conv_authz(struct pctx *pc, const json_t *o, size_t idx)
{
	struct policy *p = pc->p;
	const json_t *spec, *act, *rules, *r, *v;
	const char *k, *dry;
	size_t i, n = 0;
	int sel;
	char path[64];

	p->kind = AUTHZ_KIND_AUTHORIZATION;
	p->state = AUTHZ_POLICY_ACTIVE;
	p->action = A_ALLOW;
	p->action_str = "ALLOW";
	if (conv_meta(pc, o, idx, "AuthorizationPolicy", &spec)) {
		p->scope = p->ns && !strcmp(p->ns, pc->root) ? SC_GLOBAL : SC_NS;
		return;
	}
	json_object_foreach((json_t *)spec, k, v)
		if (strcmp(k, "selector") && strcmp(k, "action") && strcmp(k, "rules") &&
		    strcmp(k, "provider") && strcmp(k, "targetRef") && strcmp(k, "targetRefs"))
			addmsg(pc, AUTHZ_MSG_ERROR, "spec: unknown field \"%s\"", k);

	sel = conv_selector(pc, spec);
	if (sel == 1)
		p->scope = SC_WL;
	else if (sel == 2)
		p->scope = SC_NONE;
	else
		p->scope = !strcmp(p->ns, pc->root) ? SC_GLOBAL : SC_NS;

	/* The three reasons istiod sends nothing to ztunnel, in its order. */
	dry = json_string_value(json_object_get(
		json_object_get(json_object_get(o, "metadata"), "annotations"), "istio.io/dry-run"));
	if (dry) {
		bool b = false;

		if (parse_bool(dry, &b)) {
			addmsg(pc, AUTHZ_MSG_WARNING,
			       "annotation istio.io/dry-run: cannot parse \"%s\" as a boolean; policy enforced",
			       dry);
		} else if (b) {
			p->state = AUTHZ_POLICY_IGNORED;
			addmsg(pc, AUTHZ_MSG_INFO,
			       "dry-run policies are not supported by the tunnel; policy ignored");
			return;
		}
	}
	if (has_target_ref(spec)) {
		p->state = AUTHZ_POLICY_IGNORED;
		addmsg(pc, AUTHZ_MSG_INFO,
		       "has targetRef/targetRefs: it is for a waypoint or gateway, not enforced by the tunnel");
		return;
	}
	act = json_object_get(spec, "action");
	if (act && !json_is_null(act)) {
		const char *a = json_string_value(act);

		if (!a) {
			addmsg(pc, AUTHZ_MSG_ERROR, "spec.action: must be a string, found %s", jtype(act));
			p->action_str = "?";
		} else if (!strcmp(a, "ALLOW") || !*a) {
			/* default */
		} else if (!strcmp(a, "DENY")) {
			p->action = A_DENY;
			p->action_str = "DENY";
		} else if (!strcmp(a, "AUDIT") || !strcmp(a, "CUSTOM")) {
			p->action_str = !strcmp(a, "AUDIT") ? "AUDIT" : "CUSTOM";
			p->state = AUTHZ_POLICY_IGNORED;
			addmsg(pc, AUTHZ_MSG_INFO,
			       "the tunnel does not support the %s action; policy ignored", a);
			return;
		} else {
			addmsg(pc, AUTHZ_MSG_ERROR,
			       "spec.action: unknown action \"%s\" (use ALLOW or DENY)", a);
			p->action_str = "?";
		}
	}
	if (json_object_get(spec, "provider"))
		addmsg(pc, AUTHZ_MSG_ERROR, "spec.provider: only allowed with action CUSTOM");

	rules = json_object_get(spec, "rules");
	if (rules && !json_is_null(rules) && !json_is_array(rules)) {
		addmsg(pc, AUTHZ_MSG_ERROR, "spec.rules: must be a list, found %s", jtype(rules));
		return;
	}
	if (json_array_size(rules)) {
		p->rules = ar_calloc(pc->ar, json_array_size(rules), sizeof(*p->rules));
		if (!p->rules)
			return;
	}
	json_array_foreach(rules, i, r) {
		pathf(path, sizeof(path), "spec.rules[%zu]", i);
		if (conv_rule(pc, r, &p->rules[n], path))
			n++;
	}
	p->n_rules = n;

	if (sel == 2)
		addmsg(pc, AUTHZ_MSG_WARNING,
		       "spec.selector has no matchLabels: Istio ambient attaches selector policies by labels, so this policy selects no workload");
	if (p->action == A_DENY && !json_array_size(rules))
		addmsg(pc, AUTHZ_MSG_WARNING,
		       "DENY policy without rules never matches; add an empty rule {} to deny everything");
	if (pc->n_l7) {
		char found[512] = "";
		size_t off = 0;

		/* istiod lists them sorted */
		for (size_t a = 0; a < pc->n_l7; a++)
			for (size_t b = a + 1; b < pc->n_l7; b++)
				if (strcmp(pc->l7[a], pc->l7[b]) > 0) {
					const char *t = pc->l7[a];

					pc->l7[a] = pc->l7[b];
					pc->l7[b] = t;
				}
		for (size_t a = 0; a < pc->n_l7 && off < sizeof(found); a++) {
			int w = snprintf(found + off, sizeof(found) - off, "%s%s", a ? ", " : "",
					 pc->l7[a]);
			if (w < 0)
				break;
			off += (size_t)w;
		}
		addmsg(pc, AUTHZ_MSG_WARNING,
		       "the tunnel does not enforce HTTP attributes (found: %s); use a waypoint for HTTP rules. %s",
		       found,
		       p->action == A_ALLOW ?
			       "Within an ALLOW policy, rules with HTTP attributes are omitted (never match): more restrictive than requested." :
		       has_effective_rules(p) ?
			       "The DENY policy is enforced without its HTTP attributes: more restrictive than requested." :
			       "Without its HTTP attributes this DENY policy has no enforceable rule and has no effect.");
	}
}

static int parse_mode(struct pctx *pc, const json_t *mtls, enum mtls *out, const char *path)
{
	const json_t *m, *v;
	const char *s, *k;

	*out = M_UNSET;
	if (!mtls || json_is_null(mtls))
		return 0;
	if (!json_is_object(mtls)) {
		addmsg(pc, AUTHZ_MSG_ERROR, "%s: must be an object, found %s", path, jtype(mtls));
		return -EINVAL;
	}
	json_object_foreach((json_t *)mtls, k, v)
		if (strcmp(k, "mode"))
			addmsg(pc, AUTHZ_MSG_ERROR, "%s: unknown field \"%s\"", path, k);
	m = json_object_get(mtls, "mode");
	if (!m || json_is_null(m))
		return 0;
	s = json_string_value(m);
	if (!s) {
		addmsg(pc, AUTHZ_MSG_ERROR, "%s.mode: must be a string, found %s", path, jtype(m));
		return -EINVAL;
	}
	if (!strcmp(s, "UNSET") || !*s)
		*out = M_UNSET;
	else if (!strcmp(s, "DISABLE"))
		*out = M_DISABLE;
	else if (!strcmp(s, "PERMISSIVE"))
		*out = M_PERMISSIVE;
	else if (!strcmp(s, "STRICT"))
		*out = M_STRICT;
	else {
		addmsg(pc, AUTHZ_MSG_ERROR,
		       "%s.mode: unknown mode \"%s\" (use STRICT, PERMISSIVE, DISABLE or UNSET)", path, s);
		return -EINVAL;
	}
	return 0;
}

static const char *mode_name(enum mtls m)
{
	switch (m) {
	case M_UNSET: return "UNSET";
	case M_DISABLE: return "DISABLE";
	case M_PERMISSIVE: return "PERMISSIVE";
	case M_STRICT: return "STRICT";
	}
	return "?";
}

static void conv_peerauthn(struct pctx *pc, const json_t *o, size_t idx)
{
	struct policy *p = pc->p;
	const json_t *spec, *plm, *v;
	const char *k;
	int sel;
	char path[128];
	bool is_root;

	p->kind = AUTHZ_KIND_PEER_AUTHENTICATION;
	p->state = AUTHZ_POLICY_ACTIVE;
	p->action = A_DENY;
	is_root = false;
	if (conv_meta(pc, o, idx, "PeerAuthentication", &spec)) {
		is_root = p->ns && !strcmp(p->ns, pc->root);
		p->scope = is_root ? SC_MESH : SC_NS;
		p->action_str = "?";
		return;
	}
	is_root = !strcmp(p->ns, pc->root);
	json_object_foreach((json_t *)spec, k, v)
		if (strcmp(k, "selector") && strcmp(k, "mtls") && strcmp(k, "portLevelMtls"))
			addmsg(pc, AUTHZ_MSG_ERROR, "spec: unknown field \"%s\"", k);
	sel = conv_selector(pc, spec);
	if (sel == 1)
		p->scope = is_root ? SC_NONE : SC_WL;
	else
		p->scope = is_root ? SC_MESH : SC_NS;
	if (sel == 1 && is_root && p->state != AUTHZ_POLICY_INVALID)
		/* istiod: a workload-level policy in the root namespace is never effective */
		p->state = AUTHZ_POLICY_IGNORED;

	parse_mode(pc, json_object_get(spec, "mtls"), &p->mode, "spec.mtls");
	p->action_str = mode_name(p->mode);
	if (p->mode == M_DISABLE)
		addmsg(pc, AUTHZ_MSG_WARNING,
		       "mode DISABLE acts as PERMISSIVE: the tunnel always uses mTLS between enrolled pods");

	plm = json_object_get(spec, "portLevelMtls");
	if (plm && !json_is_null(plm)) {
		size_t n = 0;

		if (!json_is_object(plm)) {
			addmsg(pc, AUTHZ_MSG_ERROR, "spec.portLevelMtls: must be a map, found %s",
			       jtype(plm));
		} else if (!json_object_size(plm)) {
			addmsg(pc, AUTHZ_MSG_ERROR,
			       "spec.portLevelMtls: if defined, must have at least one element");
		} else if (sel != 1) {
			addmsg(pc, AUTHZ_MSG_ERROR,
			       "spec.portLevelMtls: mesh/namespace peer authentication cannot have port level mTLS");
		} else if ((p->ports = ar_calloc(pc->ar, json_object_size(plm), sizeof(*p->ports)))) {
			json_object_foreach((json_t *)plm, k, v) {
				uint16_t port;

				pathf(path, sizeof(path), "spec.portLevelMtls.%.32s", k);
				if (parse_port(k, &port)) {
					addmsg(pc, AUTHZ_MSG_ERROR,
					       "spec.portLevelMtls: key \"%s\" is not a port 1..65535", k);
					continue;
				}
				if (parse_mode(pc, v, &p->ports[n].mode, path))
					continue;
				p->ports[n++].port = port;
			}
			p->n_ports = n;
			if (p->state == AUTHZ_POLICY_ACTIVE)
				addmsg(pc, AUTHZ_MSG_INFO,
				       "portLevelMtls is applied per destination port");
		}
	}
	if (sel == 1 && is_root && p->state == AUTHZ_POLICY_IGNORED)
		addmsg(pc, AUTHZ_MSG_INFO,
		       "a PeerAuthentication with a selector in the root namespace %s is not used (as in Istio)",
		       pc->root);
}

static int cmp_policy(const void *a, const void *b)
{
	const struct policy *x = a, *y = b;
	int c = strcmp(x->ns, y->ns);

	return c ? c : strcmp(x->name, y->name);
}

static int compile_list(struct authz_set *set, const json_t *arr, enum authz_policy_kind kind,
			struct policy **out, size_t *n_out)
{
	size_t n = json_array_size(arr), i;
	const json_t *o;

	*out = NULL;
	*n_out = 0;
	if (!n)
		return 0;
	*out = ar_calloc(&set->ar, n, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	json_array_foreach(arr, i, o) {
		struct pctx pc = { .ar = &set->ar, .p = &(*out)[i], .root = set->root };

		if (kind == AUTHZ_KIND_AUTHORIZATION)
			conv_authz(&pc, o, i);
		else
			conv_peerauthn(&pc, o, i);
		if (set->ar.nomem)
			return -ENOMEM;
		if ((*out)[i].state == AUTHZ_POLICY_INVALID)
			set->n_invalid++;
	}
	*n_out = n;
	qsort(*out, n, sizeof(**out), cmp_policy);
	return 0;
}

int authz_compile(const json_t *authorization_policies, const json_t *peer_authentications,
		  const char *root_namespace, struct authz_set **out)
{
	struct authz_set *set = NULL;
	int ret;

	*out = NULL;
	if ((authorization_policies && !json_is_array(authorization_policies)) ||
	    (peer_authentications && !json_is_array(peer_authentications)))
		return -EINVAL;
	set = calloc(1, sizeof(*set));
	if (!set)
		return -ENOMEM;
	set->root = ar_strdup(&set->ar, root_namespace && *root_namespace ?
						root_namespace : AUTHZ_DEFAULT_ROOT_NAMESPACE);
	if (!set->root) {
		ret = -ENOMEM;
		goto out;
	}
	ret = compile_list(set, authorization_policies, AUTHZ_KIND_AUTHORIZATION, &set->ap,
			   &set->n_ap);
	if (ret)
		goto out;
	ret = compile_list(set, peer_authentications, AUTHZ_KIND_PEER_AUTHENTICATION, &set->pa,
			   &set->n_pa);
	if (ret)
		goto out;
	*out = set;
	set = NULL;
out:
	authz_set_free(set);
	return ret;
}

void authz_set_free(struct authz_set *set)
{
	if (!set)
		return;
	ar_free(&set->ar);
	free(set);
}

size_t authz_set_count(const struct authz_set *set)
{
	return set ? set->n_ap + set->n_pa : 0;
}

size_t authz_set_invalid_count(const struct authz_set *set)
{
	return set ? set->n_invalid : 0;
}

/* ---- evaluation ---- */

struct ectx {
	const char *principal; /* identity without "spiffe://", NULL if none */
	size_t principal_len;
	const char *id_ns; /* namespace of the identity, "" if none */
	size_t id_ns_len;
	const char *id_sa; /* NULL if the identity is not spiffe://td/ns/N/sa/S */
	size_t id_sa_len;
	struct mesh_ip src, dst;
	uint16_t dport;
};

static bool labels_contain(const struct mesh_labels *l, const struct mesh_label *sel, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool found = false;

		for (size_t j = 0; j < l->n && !found; j++)
			found = l->items[j].key && l->items[j].value &&
				!strcmp(l->items[j].key, sel[i].key) &&
				!strcmp(l->items[j].value, sel[i].value);
		if (!found)
			return false;
	}
	return true;
}

static bool ap_selects(const struct authz_set *set, const struct policy *p,
		       const struct authz_workload *w)
{
	switch (p->scope) {
	case SC_GLOBAL:
	case SC_MESH:
		return true;
	case SC_NS:
		return !strcmp(p->ns, w->namespace);
	case SC_WL:
		return (!strcmp(p->ns, w->namespace) || !strcmp(p->ns, set->root)) &&
		       labels_contain(&w->labels, p->sel, p->n_sel);
	case SC_NONE:
		return false;
	}
	return false;
}

/* PeerAuthentication selection (istiod fetchPeerAuthentications): a
 * selector only selects in its own namespace. */
static bool pa_selects(const struct policy *p, const struct authz_workload *w)
{
	switch (p->scope) {
	case SC_MESH:
	case SC_GLOBAL:
		return true;
	case SC_NS:
		return !strcmp(p->ns, w->namespace);
	case SC_WL:
		return !strcmp(p->ns, w->namespace) && labels_contain(&w->labels, p->sel, p->n_sel);
	case SC_NONE:
		return false;
	}
	return false;
}

static bool sm_match(const struct strmatch *m, const char *s, size_t len)
{
	switch (m->kind) {
	case SM_EXACT: return len == m->len && !memcmp(s, m->s, len);
	case SM_PREFIX: return len >= m->len && !memcmp(s, m->s, m->len);
	case SM_SUFFIX: return len >= m->len && !memcmp(s + len - m->len, m->s, m->len);
	case SM_PRESENCE: return len > 0;
	}
	return false;
}

static bool cidr_contains(const struct cidr *c, const struct mesh_ip *ip)
{
	const uint8_t *a;
	unsigned full, rem;

	if (c->family != ip->family)
		return false;
	a = ip->family == AF_INET ? (const uint8_t *)&ip->addr.v4 : ip->addr.v6.s6_addr;
	full = c->bits / 8;
	rem = c->bits % 8;
	if (memcmp(a, c->addr, full))
		return false;
	if (rem) {
		uint8_t mask = (uint8_t)(0xffu << (8 - rem));

		if ((a[full] & mask) != (c->addr[full] & mask))
			return false;
	}
	return true;
}

static bool value_hit(enum field f, const struct flist *l, size_t i, const struct ectx *e)
{
	switch (f) {
	case F_NS:
		return sm_match(&l->u.s[i], e->id_ns, e->id_ns_len);
	case F_PR:
		/* an absent identity never matches (ztunnel matches_principal) */
		return e->principal && sm_match(&l->u.s[i], e->principal, e->principal_len);
	case F_SA:
		return e->id_sa && strlen(l->u.sa[i].ns) == e->id_ns_len &&
		       !memcmp(l->u.sa[i].ns, e->id_ns, e->id_ns_len) &&
		       strlen(l->u.sa[i].sa) == e->id_sa_len &&
		       !memcmp(l->u.sa[i].sa, e->id_sa, e->id_sa_len);
	case F_SIP:
		return cidr_contains(&l->u.c[i], &e->src);
	case F_DIP:
		return cidr_contains(&l->u.c[i], &e->dst);
	case F_DPORT:
		return l->u.port[i] == e->dport;
	case F_MAX:
		break;
	}
	return false;
}

static bool list_any(enum field f, const struct flist *l, const struct ectx *e)
{
	for (size_t i = 0; i < l->n; i++)
		if (value_hit(f, l, i, e))
			return true;
	return false;
}

static bool match_eval(const struct match *m, const struct ectx *e)
{
	for (int f = 0; f < F_MAX; f++) {
		if (m->f[f][0].n && !list_any((enum field)f, &m->f[f][0], e))
			return false;
		if (m->f[f][1].n && list_any((enum field)f, &m->f[f][1], e))
			return false;
	}
	return true;
}

static bool policy_matches(const struct policy *p, const struct ectx *e)
{
	for (size_t r = 0; r < p->n_rules; r++) {
		const struct rule *ru = &p->rules[r];
		bool rule_ok = true;

		for (size_t c = 0; c < ru->n && rule_ok; c++) {
			const struct clause *cl = &ru->c[c];
			bool ok = cl->n == 0;

			for (size_t m = 0; m < cl->n && !ok; m++)
				ok = !match_is_empty(&cl->m[m]) && match_eval(&cl->m[m], e);
			rule_ok = ok;
		}
		if (rule_ok)
			return true;
	}
	return false;
}

static const struct policy *oldest(const struct policy *cur, const struct policy *cand)
{
	/* policies are in key order, so strict "older" keeps the first on a tie */
	if (!cur || strcmp(cand->created, cur->created) < 0)
		return cand;
	return cur;
}

/* The effective PeerAuthentications for w (istiod convertedSelectorPeerAuthentications). */
static void pa_effective(const struct authz_set *set, const struct authz_workload *w,
			 const struct policy **mesh, const struct policy **ns,
			 const struct policy **wl)
{
	*mesh = *ns = *wl = NULL;
	for (size_t i = 0; i < set->n_pa; i++) {
		const struct policy *p = &set->pa[i];

		if (p->state != AUTHZ_POLICY_ACTIVE || !pa_selects(p, w))
			continue;
		if (p->scope == SC_MESH)
			*mesh = oldest(*mesh, p);
		else if (p->scope == SC_NS)
			*ns = oldest(*ns, p);
		else if (p->scope == SC_WL)
			*wl = oldest(*wl, p);
	}
}

/* Returns the policy that makes (w, port) STRICT, or NULL. */
static const struct policy *pa_strict(const struct authz_set *set, const struct authz_workload *w,
				      uint16_t port)
{
	const struct policy *mesh, *ns, *wl, *decider = NULL;
	bool strict = false;

	pa_effective(set, w, &mesh, &ns, &wl);
	if (mesh) {
		strict = mesh->mode == M_STRICT;
		decider = mesh;
	}
	if (ns && ns->mode != M_UNSET) {
		strict = ns->mode == M_STRICT;
		decider = ns;
	}
	if (wl) {
		if (wl->mode != M_UNSET) {
			strict = wl->mode == M_STRICT;
			decider = wl;
		}
		for (size_t i = 0; i < wl->n_ports; i++) {
			if (wl->ports[i].port != port || wl->ports[i].mode == M_UNSET)
				continue;
			strict = wl->ports[i].mode == M_STRICT;
			decider = wl;
		}
	}
	return strict ? decider : NULL;
}

static void canon_ip(const struct mesh_ip *in, struct mesh_ip *out)
{
	*out = *in;
	if (in->family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in->addr.v6)) {
		memset(out, 0, sizeof(*out));
		out->family = AF_INET;
		memcpy(&out->addr.v4, &in->addr.v6.s6_addr[12], 4);
	}
}

/* ztunnel Identity: spiffe://<td>/ns/<ns>/sa/<sa>, exactly five segments. */
static void parse_identity(const char *id, struct ectx *e)
{
	static const char pfx[] = "spiffe://";
	const char *seg[6];
	size_t len[6], n = 0;
	const char *s;

	e->principal = NULL;
	e->principal_len = 0;
	e->id_ns = "";
	e->id_ns_len = 0;
	e->id_sa = NULL;
	e->id_sa_len = 0;
	if (!id || !*id || strncmp(id, pfx, sizeof(pfx) - 1))
		return;
	s = id + sizeof(pfx) - 1;
	e->principal = s;
	e->principal_len = strlen(s);
	for (;;) {
		const char *sl = strchr(s, '/');
		size_t l = sl ? (size_t)(sl - s) : strlen(s);

		if (n == 6)
			return;
		seg[n] = s;
		len[n++] = l;
		if (!sl)
			break;
		s = sl + 1;
	}
	if (n != 5 || !len[0] || len[1] != 2 || memcmp(seg[1], "ns", 2) || !len[2] || len[3] != 2 ||
	    memcmp(seg[3], "sa", 2) || !len[4])
		return;
	e->id_ns = seg[2];
	e->id_ns_len = len[2];
	e->id_sa = seg[4];
	e->id_sa_len = len[4];
}

static int decide(struct authz_decision *out, bool allow, const char *policy, const char *fmt,
		  ...) __attribute__((format(printf, 4, 5)));

static int decide(struct authz_decision *out, bool allow, const char *policy, const char *fmt, ...)
{
	va_list ap;

	out->allow = allow;
	snprintf(out->policy, sizeof(out->policy), "%s", policy);
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
	return allow ? 0 : -EACCES;
}

int authz_evaluate(const struct authz_set *set, const struct authz_workload *dst,
		   const struct authz_conn *conn, struct authz_decision *out)
{
	struct authz_workload w;
	const struct policy *strict;
	struct ectx e;
	bool any = false, any_allow = false;
	size_t i;

	assert(dst && conn && out);
	memset(out, 0, sizeof(*out));
	w = *dst;
	if (!w.namespace)
		w.namespace = "";
	if (!set)
		return decide(out, true, AUTHZ_NO_POLICIES, "no policies apply");

	/* fail closed: a policy we cannot read might have denied this */
	for (i = 0; i < set->n_ap; i++)
		if (set->ap[i].state == AUTHZ_POLICY_INVALID && ap_selects(set, &set->ap[i], &w))
			return decide(out, false, set->ap[i].key, "policy %s is invalid: %s",
				      set->ap[i].key, set->ap[i].first_error ? set->ap[i].first_error : "?");
	for (i = 0; i < set->n_pa; i++)
		if (set->pa[i].state == AUTHZ_POLICY_INVALID && pa_selects(&set->pa[i], &w))
			return decide(out, false, set->pa[i].key, "policy %s is invalid: %s",
				      set->pa[i].key, set->pa[i].first_error ? set->pa[i].first_error : "?");

	parse_identity(conn->peer_identity, &e);
	canon_ip(&conn->src_ip, &e.src);
	canon_ip(&conn->dst_ip, &e.dst);
	e.dport = conn->dst_port;

	strict = pa_strict(set, &w, conn->dst_port);
	if (strict) {
		any = true;
		if (!conn->peer_identity || !*conn->peer_identity)
			return decide(out, false, strict->key,
				      "PeerAuthentication %s requires mTLS (STRICT) and the connection has no peer identity",
				      strict->key);
	}
	for (i = 0; i < set->n_ap; i++) {
		const struct policy *p = &set->ap[i];

		if (p->state != AUTHZ_POLICY_ACTIVE || p->action != A_DENY || !ap_selects(set, p, &w))
			continue;
		any = true;
		if (policy_matches(p, &e))
			return decide(out, false, p->key, "denied by DENY policy %s", p->key);
	}
	for (i = 0; i < set->n_ap; i++) {
		const struct policy *p = &set->ap[i];

		if (p->state != AUTHZ_POLICY_ACTIVE || p->action != A_ALLOW || !ap_selects(set, p, &w))
			continue;
		any_allow = true;
		if (policy_matches(p, &e))
			return decide(out, true, p->key, "allowed by ALLOW policy %s", p->key);
	}
	if (!any_allow)
		return any ? decide(out, true, AUTHZ_NO_ALLOW_POLICY,
				    "no DENY policy matched and no ALLOW policy applies") :
			     decide(out, true, AUTHZ_NO_POLICIES, "no policies apply");
	return decide(out, false, AUTHZ_NO_ALLOW_MATCHED,
		      "ALLOW policies apply to %s/%s but none matched", w.namespace,
		      w.name ? w.name : "");
}

/* ---- listing ---- */

static const char *scope_name(const struct policy *p)
{
	switch (p->scope) {
	case SC_GLOBAL: return "global";
	case SC_NS: return "namespace";
	case SC_WL: return "workload";
	case SC_MESH: return "mesh";
	case SC_NONE: return "none";
	}
	return "?";
}

static void emit(const struct policy *p, authz_policy_cb cb, void *ctx)
{
	struct authz_policy_info info = {
		.kind = p->kind,
		.namespace = p->ns,
		.name = p->name,
		.key = p->key,
		.scope = scope_name(p),
		.action = p->action_str,
		.state = p->state,
		.msgs = p->msgs,
		.n_msgs = p->n_msgs,
	};

	cb(&info, ctx);
}

void authz_policies_foreach(const struct authz_set *set, authz_policy_cb cb, void *ctx)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n_ap; i++)
		emit(&set->ap[i], cb, ctx);
	for (size_t i = 0; i < set->n_pa; i++)
		emit(&set->pa[i], cb, ctx);
}

void authz_policies_selecting(const struct authz_set *set, const struct authz_workload *w,
			      authz_policy_cb cb, void *ctx)
{
	const struct policy *eff[3];
	struct authz_workload ww;

	if (!set || !w)
		return;
	ww = *w;
	if (!ww.namespace)
		ww.namespace = "";
	for (size_t i = 0; i < set->n_ap; i++)
		if (set->ap[i].state != AUTHZ_POLICY_IGNORED && ap_selects(set, &set->ap[i], &ww))
			emit(&set->ap[i], cb, ctx);
	pa_effective(set, &ww, &eff[0], &eff[1], &eff[2]);
	for (size_t i = 0; i < 3; i++)
		if (eff[i])
			emit(eff[i], cb, ctx);
	for (size_t i = 0; i < set->n_pa; i++)
		if (set->pa[i].state == AUTHZ_POLICY_INVALID && pa_selects(&set->pa[i], &ww))
			emit(&set->pa[i], cb, ctx);
}

const char *authz_state_name(enum authz_policy_state s)
{
	switch (s) {
	case AUTHZ_POLICY_ACTIVE: return "active";
	case AUTHZ_POLICY_IGNORED: return "ignored";
	case AUTHZ_POLICY_INVALID: return "invalid";
	}
	return "?";
}

const char *authz_msg_level_name(enum authz_msg_level l)
{
	switch (l) {
	case AUTHZ_MSG_WARNING: return "warning";
	case AUTHZ_MSG_ERROR: return "error";
	case AUTHZ_MSG_INFO: return "info";
	}
	return "?";
}
