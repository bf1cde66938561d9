/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The API server's JSON pruned before it is parsed (see kube_prune.h).
 *
 * One pass over the text, writing what is kept over it (the output never
 * gets ahead of the input: every separator written replaces one read).
 * Objects named by a schema are walked member by member (recursion bounded
 * by the schema's depth, a few levels); every other value is checked by an
 * iterative scanner with the rules jansson applies, then copied or left
 * out.
 */
#include "conf/kube_prune.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* jansson's JSON_PARSER_MAX_DEPTH: deeper text is refused whole. */
#define KP_MAX_DEPTH 2048

/* What to do with a value: a schema node applies to an object (fields) or
 * to an array (elem, applied to each element); a value of another type is
 * kept as sent, so that the model builder judges it as it would have. */
struct kp_node;
struct kp_field {
	const char *key;
	const struct kp_node *sub; /* &kp_all: kept as sent; &kp_drop: cut */
};
struct kp_node {
	const struct kp_field *fields; /* an object's members named */
	bool keep_others;              /* the members not named: kept (else cut) */
	const struct kp_node *elem;    /* an array's elements */
};

static const struct kp_node kp_all, kp_drop;

#define KP_OBJ(name, others, ...)                                                          \
	static const struct kp_field name##_f[] = { __VA_ARGS__, { NULL, NULL } };        \
	static const struct kp_node name = { name##_f, others, NULL }
#define KP_ARR(name, e) static const struct kp_node name = { NULL, false, &e }

/* A pod: what kube_obj_compact() keeps (model/mesh.c decode_pod reads), and
 * the members of the Status an ERROR event carries in place of an object. */
KP_OBJ(kp_pod_meta, false, { "name", &kp_all }, { "namespace", &kp_all }, { "uid", &kp_all },
       { "resourceVersion", &kp_all }, { "labels", &kp_all }, { "annotations", &kp_all });
KP_OBJ(kp_pod_ctr, false, { "restartPolicy", &kp_all }, { "ports", &kp_all });
KP_ARR(kp_pod_ctrs, kp_pod_ctr);
KP_OBJ(kp_pod_spec, false, { "serviceAccount", &kp_all }, { "serviceAccountName", &kp_all },
       { "nodeName", &kp_all }, { "hostNetwork", &kp_all }, { "containers", &kp_pod_ctrs },
       { "initContainers", &kp_pod_ctrs });
KP_OBJ(kp_pod_cond, false, { "type", &kp_all }, { "status", &kp_all });
KP_ARR(kp_pod_conds, kp_pod_cond);
KP_OBJ(kp_pod_status, false, { "phase", &kp_all }, { "podIP", &kp_all }, { "podIPs", &kp_all },
       { "conditions", &kp_pod_conds });
KP_OBJ(kp_pod, false, { "apiVersion", &kp_all }, { "kind", &kp_all }, { "metadata", &kp_pod_meta },
       { "spec", &kp_pod_spec }, { "status", &kp_pod_status }, { "code", &kp_all },
       { "message", &kp_all }, { "reason", &kp_all }, { "details", &kp_all });
/* Any other object: all but metadata.managedFields (most of its JSON). */
KP_OBJ(kp_obj_meta, true, { "managedFields", &kp_drop });
KP_OBJ(kp_obj, true, { "metadata", &kp_obj_meta });
KP_ARR(kp_pod_items, kp_pod);
KP_ARR(kp_obj_items, kp_obj);
KP_OBJ(kp_pod_list, true, { "items", &kp_pod_items });
KP_OBJ(kp_obj_list, true, { "items", &kp_obj_items });
KP_OBJ(kp_pod_event, true, { "object", &kp_pod });
KP_OBJ(kp_obj_event, true, { "object", &kp_obj });

struct kp {
	char *s;
	size_t n, i, o; /* input read up to i, output written up to o <= i */
};

static bool kp_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void kp_skip_ws(struct kp *p)
{
	while (p->i < p->n && kp_ws(p->s[p->i]))
		p->i++;
}

static int kp_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The 4 hex digits at s[i]; -1 if they are not. */
static long kp_u4(const struct kp *p, size_t i)
{
	long v = 0;

	if (i + 4 > p->n)
		return -1;
	for (size_t k = 0; k < 4; k++) {
		int h = kp_hex(p->s[i + k]);

		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* One UTF-8 sequence at s[i] (its first byte >= 0x80), as jansson accepts
 * it: its length, or 0. */
static size_t kp_utf8(const struct kp *p, size_t i)
{
	unsigned char c = (unsigned char)p->s[i];
	size_t len;
	uint32_t v;

	if (c >= 0xc2 && c <= 0xdf)
		len = 2, v = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, v = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, v = c & 0x07;
	else
		return 0;
	if (i + len > p->n)
		return 0;
	for (size_t k = 1; k < len; k++) {
		unsigned char d = (unsigned char)p->s[i + k];

		if ((d & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (d & 0x3f);
	}
	if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff) || (len == 3 && v < 0x800) ||
	    (len == 4 && v < 0x10000))
		return 0;
	return len;
}

/* The string at s[i] ('"'): p->i past its closing quote. 0 or -1. */
static int kp_string(struct kp *p)
{
	const char *s = p->s;
	size_t i = p->i + 1, n = p->n;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"') {
			p->i = i + 1;
			return 0;
		}
		if (c < 0x20)
			break;
		if (c >= 0x80) {
			size_t l = kp_utf8(p, i);

			if (!l)
				break;
			i += l;
			continue;
		}
		if (c != '\\') {
			i++;
			continue;
		}
		if (i + 1 >= n)
			break;
		c = (unsigned char)s[i + 1];
		if (c == 'u') {
			long u = kp_u4(p, i + 2), lo;

			if (u <= 0 || (u >= 0xdc00 && u <= 0xdfff))
				break; /* \u0000 (jansson's default), a lone low surrogate */
			i += 6;
			if (u >= 0xd800 && u <= 0xdbff) {
				if (i + 1 >= n || s[i] != '\\' || s[i + 1] != 'u')
					break;
				lo = kp_u4(p, i + 2);
				if (lo < 0xdc00 || lo > 0xdfff)
					break;
				i += 6;
			}
			continue;
		}
		if (!strchr("\"\\/bfnrt", c) || !c)
			break;
		i += 2;
	}
	p->i = i;
	return -1;
}

/* Is the key string s[ks..ke) (quotes included, checked) want? Escapes
 * decoded: "spe\u0063" is "spec". */
static bool kp_key_is(const struct kp *p, size_t ks, size_t ke, const char *want)
{
	const char *s = p->s;
	size_t i = ks + 1, end = ke - 1;

	if (!memchr(s + i, '\\', end - i))
		return end - i == strlen(want) && !memcmp(s + i, want, end - i);
	while (i < end) {
		char c = s[i];

		if (c == '\\') {
			char e = s[i + 1];

			i += 2;
			if (e == 'u') {
				long u = kp_u4(p, i);

				if (u >= 0x80)
					return false; /* the keys wanted are ASCII */
				c = (char)u;
				i += 4;
			} else {
				c = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r'
				  : e == 't' ? '\t' : e;
			}
		} else {
			i++;
		}
		if (!*want || *want++ != c)
			return false;
	}
	return !*want;
}

/* The number at s[i]: RFC 8259's grammar, and within jansson's range (an
 * integer in int64, a real that does not overflow). 0 or -1. */
static int kp_number(struct kp *p)
{
	char *s = p->s;
	size_t i = p->i, n = p->n, start = i, digits;
	bool real = false;
	int ret = 0;

	if (i < n && s[i] == '-')
		i++;
	if (i >= n || s[i] < '0' || s[i] > '9')
		goto bad;
	if (s[i] == '0') {
		i++;
	} else {
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	digits = i - start;
	if (i < n && s[i] == '.') {
		real = true;
		if (++i >= n || s[i] < '0' || s[i] > '9')
			goto bad;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		real = true;
		digits = SIZE_MAX; /* may overflow: ask strtod */
		if (++i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= n || s[i] < '0' || s[i] > '9')
			goto bad;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	/* a value ends before the text does (a container closes it) */
	if (i >= n)
		goto bad;
	if (real ? digits > 300 : digits >= 19) {
		char saved = s[i];

		s[i] = '\0';
		errno = 0;
		if (real) {
			double d = strtod(s + start, NULL);

			ret = errno == ERANGE && (d > 1.0 || d < -1.0) ? -1 : 0;
		} else {
			(void)strtoll(s + start, NULL, 10);
			ret = errno == ERANGE ? -1 : 0;
		}
		s[i] = saved;
	}
	p->i = i;
	return ret;
bad:
	p->i = i;
	return -1;
}

static int kp_literal(struct kp *p)
{
	static const char *const lits[] = { "true", "false", "null" };

	for (size_t k = 0; k < 3; k++) {
		size_t l = strlen(lits[k]);

		if (p->n - p->i > l && !memcmp(p->s + p->i, lits[k], l)) {
			p->i += l;
			return 0;
		}
	}
	return -1;
}

static int kp_scalar(struct kp *p)
{
	char c = p->s[p->i];
	int ret;

	if (c == '"')
		return kp_string(p);
	ret = c == '-' || (c >= '0' && c <= '9') ? kp_number(p) : kp_literal(p);
	/* jansson skips one NUL byte after a number or a literal (the byte its
	 * lexer puts back is read as "none"): so do we */
	if (!ret && p->i < p->n && !p->s[p->i])
		p->i++;
	return ret;
}

/* A member's key and its ':' at s[i]: [*ks, *ke) the key, p->i at the
 * value. 0 or -1. */
static int kp_key(struct kp *p, size_t *ks, size_t *ke)
{
	if (p->i >= p->n || p->s[p->i] != '"')
		return -1;
	*ks = p->i;
	if (kp_string(p))
		return -1;
	*ke = p->i;
	kp_skip_ws(p);
	if (p->i >= p->n || p->s[p->i] != ':')
		return -1;
	p->i++;
	kp_skip_ws(p);
	return 0;
}

/* The value at s[i] (depth: the containers around it), checked: p->i past
 * it. Iterative: a stack of one bit per open container (1: object). */
static int kp_scan(struct kp *p, size_t depth)
{
	uint64_t stack[KP_MAX_DEPTH / 64] = { 0 };
	size_t d = 0, ks, ke;

	for (;;) {
		char c;

		if (p->i >= p->n)
			return -1;
		c = p->s[p->i];
		/* jansson counts every value, a scalar too */
		if (depth + d + 1 > KP_MAX_DEPTH)
			return -1;
		if (c == '{' || c == '[') {
			if (c == '{')
				stack[d / 64] |= 1ull << (d % 64);
			else
				stack[d / 64] &= ~(1ull << (d % 64));
			d++;
			p->i++;
			kp_skip_ws(p);
			if (p->i < p->n && p->s[p->i] == (c == '{' ? '}' : ']')) {
				p->i++;
				d--;
			} else {
				if (c == '{' && kp_key(p, &ks, &ke))
					return -1;
				continue; /* the first member's or element's value */
			}
		} else if (kp_scalar(p)) {
			return -1;
		}
		/* a value ended: what follows it in its container */
		for (;;) {
			bool obj;

			if (!d)
				return 0;
			obj = stack[(d - 1) / 64] >> ((d - 1) % 64) & 1;
			kp_skip_ws(p);
			if (p->i >= p->n)
				return -1;
			c = p->s[p->i];
			if (c == (obj ? '}' : ']')) {
				p->i++;
				d--;
				continue;
			}
			if (c != ',')
				return -1;
			p->i++;
			kp_skip_ws(p);
			if (obj && kp_key(p, &ks, &ke))
				return -1;
			break;
		}
	}
}

static void kp_put(struct kp *p, char c)
{
	p->s[p->o++] = c;
}

/* The value at s[i] written at o as node says. 0 or -1. */
static int kp_value(struct kp *p, const struct kp_node *node, size_t depth)
{
	size_t start = p->i, ks, ke;
	bool first = true, obj;
	char c = p->i < p->n ? p->s[p->i] : '\0';

	obj = c == '{' && node->fields;
	if (node == &kp_all || !(obj || (c == '[' && node->elem))) {
		if (kp_scan(p, depth))
			return -1;
		memmove(p->s + p->o, p->s + start, p->i - start);
		p->o += p->i - start;
		return 0;
	}
	if (depth + 1 > KP_MAX_DEPTH)
		return -1;
	p->i++;
	kp_put(p, c);
	kp_skip_ws(p);
	if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']'))
		goto close;
	for (;;) {
		const struct kp_node *sub = node->elem;

		if (obj) {
			const struct kp_field *f;

			if (kp_key(p, &ks, &ke))
				return -1;
			sub = node->keep_others ? &kp_all : &kp_drop;
			for (f = node->fields; f->key; f++)
				if (kp_key_is(p, ks, ke, f->key)) {
					sub = f->sub;
					break;
				}
		}
		if (sub == &kp_drop) {
			if (kp_scan(p, depth + 1))
				return -1;
		} else {
			if (!first)
				kp_put(p, ',');
			first = false;
			if (obj) {
				memmove(p->s + p->o, p->s + ks, ke - ks);
				p->o += ke - ks;
				kp_put(p, ':');
			}
			if (kp_value(p, sub, depth + 1))
				return -1;
		}
		kp_skip_ws(p);
		if (p->i >= p->n)
			return -1;
		if (p->s[p->i] == (obj ? '}' : ']'))
			break;
		if (p->s[p->i] != ',')
			return -1;
		p->i++;
		kp_skip_ws(p);
	}
close:
	p->i++;
	kp_put(p, obj ? '}' : ']');
	return 0;
}

int kube_json_prune(char *s, size_t n, enum kube_prune_what what, bool pod, size_t *len,
		    size_t *bad)
{
	struct kp p = { s, n, 0, 0 };
	const struct kp_node *root = what == KUBE_PRUNE_LIST ? (pod ? &kp_pod_list : &kp_obj_list)
							   : (pod ? &kp_pod_event : &kp_obj_event);

	*len = n;
	kp_skip_ws(&p);
	if (p.i >= n || s[p.i] != '{')
		return 0; /* no object: nothing to cut, jansson judges it */
	p.o = p.i;
	if (kp_value(&p, root, 0)) {
		*bad = p.i;
		return -1;
	}
	memmove(s + p.o, s + p.i, n - p.i); /* what follows, for jansson to judge */
	*len = p.o + n - p.i;
	return 0;
}
