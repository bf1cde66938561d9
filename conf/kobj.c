/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kubernetes objects from text (contract in conf/kobj.h).
 *
 * JSON goes through jansson; YAML through libyaml's event API, building the
 * JSON tree with an explicit stack so that nesting is bounded (KOBJ_MAX_DEPTH)
 * and nothing recurses on attacker-controlled depth. Input larger than
 * KOBJ_MAX_BYTES is refused before parsing. YAML aliases are rejected (they
 * are the "billion laughs" vector and Kubernetes manifests do not need them).
 * Duplicate mapping keys are rejected in both syntaxes: a silently dropped
 * key in a policy file would change behaviour.
 *
 * On success *out is a new array owned by the caller; on failure *out is
 * NULL and err holds "origin:line:column: problem" (line/column when known).
 */
#include "conf/kobj.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define KOBJ_MAX_BYTES (16u << 20)
#define KOBJ_MAX_DEPTH 64

static const char *kobj_origin_or_default(const char *origin)
{
	return origin && *origin ? origin : "<input>";
}

static void __attribute__((format(printf, 5, 6)))
kobj_kerr(char *err, size_t errlen, const char *origin, const size_t *linecol, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || !errlen)
		return;
	if (linecol)
		n = snprintf(err, errlen, "%s:%zu:%zu: ", kobj_origin_or_default(origin), linecol[0],
			     linecol[1]);
	else
		n = snprintf(err, errlen, "%s: ", kobj_origin_or_default(origin));
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

/* ---- scalar typing (Kubernetes reads YAML with the JSON-compatible core
 * schema: yes/no/on/off stay strings) ---- */

static bool kobj_is_decimal_int(const char *s, size_t len)
{
	size_t i = 0;

	if (i < len && (s[i] == '-' || s[i] == '+'))
		i++;
	if (i == len)
		return false;
	for (; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool kobj_is_float(const char *s, size_t len)
{
	size_t i = 0, digits = 0;

	if (i < len && (s[i] == '-' || s[i] == '+'))
		i++;
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++, digits++;
	if (i < len && s[i] == '.') {
		i++;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++, digits++;
	}
	if (!digits)
		return false;
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		size_t ed = 0;

		i++;
		if (i < len && (s[i] == '-' || s[i] == '+'))
			i++;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++, ed++;
		if (!ed)
			return false;
	}
	return i == len;
}

static bool kobj_eq_any(const char *s, size_t len, const char *const *words)
{
	for (; *words; words++)
		if (strlen(*words) == len && !memcmp(s, *words, len))
			return true;
	return false;
}

/* Returns a new JSON value for a plain scalar, or NULL on allocation failure
 * or invalid UTF-8. */
static json_t *kobj_plain_scalar(const char *s, size_t len)
{
	static const char *const trues[] = { "true", "True", "TRUE", NULL };
	static const char *const falses[] = { "false", "False", "FALSE", NULL };
	static const char *const nulls[] = { "null", "Null", "NULL", "~", NULL };

	if (len == 0 || kobj_eq_any(s, len, nulls))
		return json_null();
	if (kobj_eq_any(s, len, trues))
		return json_true();
	if (kobj_eq_any(s, len, falses))
		return json_false();
	if (len < 64 && (kobj_is_decimal_int(s, len) || kobj_is_float(s, len))) {
		char buf[64];
		char *end;

		memcpy(buf, s, len);
		buf[len] = '\0';
		if (kobj_is_decimal_int(s, len)) {
			long long v;

			errno = 0;
			v = strtoll(buf, &end, 10);
			if (!errno && *end == '\0')
				return json_integer(v);
			/* too large for int64: read it as a number like YAML does */
		}
		errno = 0;
		double d = strtod(buf, &end);
		if (*end == '\0' && isfinite(d))
			return json_real(d);
	}
	return json_stringn(s, len);
}

/* ---- JSON ---- */

/* Walks the text once to bound the nesting before jansson recurses into it,
 * and to report where the limit was crossed. */
static int kobj_json_check_depth(const char *text, size_t len, const char *origin, char *err,
			    size_t errlen)
{
	size_t line = 1, col = 0;
	int depth = 0;
	bool in_str = false, esc = false;

	for (size_t i = 0; i < len; i++) {
		char c = text[i];

		if (c == '\n') {
			line++;
			col = 0;
		} else {
			col++;
		}
		if (in_str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				in_str = false;
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			if (++depth > KOBJ_MAX_DEPTH) {
				size_t lc[2] = { line, col };

				kobj_kerr(err, errlen, origin, lc, "nesting deeper than %d levels",
				     KOBJ_MAX_DEPTH);
				return -EINVAL;
			}
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return 0;
}

static int kobj_load_json(const char *text, size_t len, const char *origin, json_t **docs,
		     char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;
	int ret;

	ret = kobj_json_check_depth(text, len, origin, err, errlen);
	if (ret)
		return ret;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		size_t lc[2] = { jerr.line > 0 ? (size_t)jerr.line : 0,
				 jerr.column > 0 ? (size_t)jerr.column : 0 };

		kobj_kerr(err, errlen, origin, jerr.line > 0 ? lc : NULL, "%s", jerr.text);
		return -EINVAL;
	}
	if (json_is_object(root)) {
		json_t *a = json_array();

		if (!a || json_array_append_new(a, root)) {
			json_decref(a);
			kobj_kerr(err, errlen, origin, NULL, "out of memory");
			return -ENOMEM;
		}
		*docs = a;
		return 0;
	}
	if (!json_is_array(root)) {
		json_decref(root);
		kobj_kerr(err, errlen, origin, NULL,
		     "top level must be an object or an array of objects");
		return -EINVAL;
	}
	*docs = root;
	return 0;
}

/* ---- YAML ---- */

struct yframe {
	json_t *node; /* borrowed: owned by its parent or by the document root */
	char *key;    /* mapping only: key waiting for its value */
	size_t keylen;
};

struct ybuild {
	struct yframe stack[KOBJ_MAX_DEPTH];
	int depth;
	json_t *root;
	const char *origin;
	char *err;
	size_t errlen;
};

static void kobj_mark_lc(const yaml_mark_t *m, size_t lc[2])
{
	lc[0] = m->line + 1;
	lc[1] = m->column + 1;
}

static void kobj_ybuild_reset(struct ybuild *b)
{
	for (int i = 0; i < b->depth; i++)
		free(b->stack[i].key);
	b->depth = 0;
	json_decref(b->root);
	b->root = NULL;
}

/* Attaches v (stolen) where the parser currently is. */
static int kobj_ybuild_add(struct ybuild *b, json_t *v, const yaml_mark_t *mark)
{
	size_t lc[2];
	struct yframe *f;

	kobj_mark_lc(mark, lc);
	if (!v) {
		kobj_kerr(b->err, b->errlen, b->origin, lc, "invalid string (bad UTF-8) or out of memory");
		return -EINVAL;
	}
	if (b->depth == 0) {
		b->root = v;
		return 0;
	}
	f = &b->stack[b->depth - 1];
	if (json_is_array(f->node)) {
		if (json_array_append_new(f->node, v)) {
			kobj_kerr(b->err, b->errlen, b->origin, lc, "out of memory");
			return -ENOMEM;
		}
		return 0;
	}
	if (!f->key) {
		json_decref(v);
		kobj_kerr(b->err, b->errlen, b->origin, lc,
		     "mapping keys must be plain strings, not mappings or sequences");
		return -EINVAL;
	}
	if (json_object_getn(f->node, f->key, f->keylen)) {
		json_decref(v);
		kobj_kerr(b->err, b->errlen, b->origin, lc, "duplicate key \"%.*s\"", (int)f->keylen,
		     f->key);
		return -EINVAL;
	}
	if (json_object_setn_new(f->node, f->key, f->keylen, v)) {
		kobj_kerr(b->err, b->errlen, b->origin, lc, "out of memory");
		return -ENOMEM;
	}
	free(f->key);
	f->key = NULL;
	return 0;
}

static int kobj_ybuild_push(struct ybuild *b, json_t *v, const yaml_mark_t *mark)
{
	size_t lc[2];
	int ret;

	kobj_mark_lc(mark, lc);
	if (b->depth >= KOBJ_MAX_DEPTH) {
		json_decref(v);
		kobj_kerr(b->err, b->errlen, b->origin, lc, "nesting deeper than %d levels",
		     KOBJ_MAX_DEPTH);
		return -EINVAL;
	}
	ret = kobj_ybuild_add(b, v, mark);
	if (ret)
		return ret;
	b->stack[b->depth].node = v;
	b->stack[b->depth].key = NULL;
	b->depth++;
	return 0;
}

static int kobj_ybuild_scalar(struct ybuild *b, const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;
	struct yframe *f = b->depth ? &b->stack[b->depth - 1] : NULL;
	size_t lc[2];
	json_t *v;

	kobj_mark_lc(&ev->start_mark, lc);
	if (memchr(s, '\0', len)) {
		kobj_kerr(b->err, b->errlen, b->origin, lc, "strings must not contain NUL characters");
		return -EINVAL;
	}
	if (f && json_is_object(f->node) && !f->key) {
		/* keys are always strings in Kubernetes objects */
		f->key = strndup(s, len);
		f->keylen = len;
		if (!f->key) {
			kobj_kerr(b->err, b->errlen, b->origin, lc, "out of memory");
			return -ENOMEM;
		}
		return 0;
	}
	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
	    (tag && !strcmp(tag, YAML_STR_TAG)))
		v = json_stringn(s, len);
	else
		v = kobj_plain_scalar(s, len);
	return kobj_ybuild_add(b, v, &ev->start_mark);
}

/* Hands a finished document to docs (objects and sequences of them). */
static int kobj_ybuild_document(struct ybuild *b, json_t *docs, const yaml_mark_t *mark)
{
	json_t *root = b->root;
	size_t lc[2];
	int ret = 0;

	b->root = NULL;
	kobj_mark_lc(mark, lc);
	if (!root || json_is_null(root))
		goto out; /* empty document */
	if (json_is_object(root)) {
		if (json_array_append(docs, root))
			ret = -ENOMEM;
	} else if (json_is_array(root)) {
		if (json_array_extend(docs, root))
			ret = -ENOMEM;
	} else {
		kobj_kerr(b->err, b->errlen, b->origin, lc,
		     "a document must be a mapping (a Kubernetes object), not a scalar");
		ret = -EINVAL;
		goto out;
	}
	if (ret)
		kobj_kerr(b->err, b->errlen, b->origin, lc, "out of memory");
out:
	json_decref(root);
	return ret;
}

static int kobj_load_yaml(const char *text, size_t len, const char *origin, json_t **out,
		     char *err, size_t errlen)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct ybuild b = { .origin = origin, .err = err, .errlen = errlen };
	json_t *docs = json_array();
	bool done = false;
	size_t lc[2];
	int ret = 0;

	if (!docs || !yaml_parser_initialize(&parser)) {
		json_decref(docs);
		kobj_kerr(err, errlen, origin, NULL, "out of memory");
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (!done && !ret) {
		if (!yaml_parser_parse(&parser, &ev)) {
			kobj_mark_lc(&parser.problem_mark, lc);
			if (parser.context)
				kobj_kerr(err, errlen, origin, lc, "%s (%s)",
				     parser.problem ? parser.problem : "syntax error",
				     parser.context);
			else
				kobj_kerr(err, errlen, origin, lc, "%s",
				     parser.problem ? parser.problem : "syntax error");
			ret = -EINVAL;
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			kobj_ybuild_reset(&b);
			break;
		case YAML_DOCUMENT_END_EVENT:
			ret = kobj_ybuild_document(&b, docs, &ev.start_mark);
			break;
		case YAML_ALIAS_EVENT:
			kobj_mark_lc(&ev.start_mark, lc);
			kobj_kerr(err, errlen, origin, lc,
			     "YAML aliases (*%s) are not supported; write the value out",
			     ev.data.alias.anchor ? (const char *)ev.data.alias.anchor : "");
			ret = -EINVAL;
			break;
		case YAML_SCALAR_EVENT:
			ret = kobj_ybuild_scalar(&b, &ev);
			break;
		case YAML_MAPPING_START_EVENT:
			ret = kobj_ybuild_push(&b, json_object(), &ev.start_mark);
			break;
		case YAML_SEQUENCE_START_EVENT:
			ret = kobj_ybuild_push(&b, json_array(), &ev.start_mark);
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			/* libyaml guarantees balanced events */
			if (b.depth > 0) {
				b.depth--;
				free(b.stack[b.depth].key);
				b.stack[b.depth].key = NULL;
			}
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	kobj_ybuild_reset(&b);
	yaml_parser_delete(&parser);
	if (ret) {
		json_decref(docs);
		return ret;
	}
	*out = docs;
	return 0;
}

/* ---- lists ---- */

static bool kobj_is_list_object(json_t *o, const char **item_kind, size_t *item_kind_len)
{
	const char *kind = json_string_value(json_object_get(o, "kind"));
	size_t n;

	if (!kind || !json_is_array(json_object_get(o, "items")))
		return false;
	n = strlen(kind);
	if (n < 4 || strcmp(kind + n - 4, "List"))
		return false;
	*item_kind = kind;
	*item_kind_len = n - 4;
	return true;
}

/* Flattens top-level lists into objects. Items of a typed list (PodList)
 * without their own kind get it from the list, as the API server omits it. */
static int kobj_flatten(json_t *docs, const char *origin, json_t **out, char *err, size_t errlen)
{
	json_t *res = json_array();
	json_t *o;
	size_t i;
	int ret = 0;

	if (!res) {
		kobj_kerr(err, errlen, origin, NULL, "out of memory");
		return -ENOMEM;
	}
	json_array_foreach(docs, i, o) {
		const char *ik;
		size_t ikl;

		if (!json_is_object(o)) {
			kobj_kerr(err, errlen, origin, NULL, "item %zu of the top-level array is not an object",
			     i);
			ret = -EINVAL;
			goto out;
		}
		if (!kobj_is_list_object(o, &ik, &ikl)) {
			if (json_array_append(res, o))
				goto oom;
			continue;
		}
		json_t *items = json_object_get(o, "items"), *it;
		json_t *api = json_object_get(o, "apiVersion");
		size_t j;

		json_array_foreach(items, j, it) {
			if (!json_is_object(it)) {
				kobj_kerr(err, errlen, origin, NULL, "%.*sList item %zu is not an object",
				     (int)ikl, ik, j);
				ret = -EINVAL;
				goto out;
			}
			if (ikl && !json_object_get(it, "kind") &&
			    json_object_set_new(it, "kind", json_stringn(ik, ikl)))
				goto oom;
			if (ikl && json_is_string(api) && !json_object_get(it, "apiVersion") &&
			    json_object_set(it, "apiVersion", api))
				goto oom;
			if (json_array_append(res, it))
				goto oom;
		}
	}
	*out = res;
	return 0;
oom:
	kobj_kerr(err, errlen, origin, NULL, "out of memory");
	ret = -ENOMEM;
out:
	json_decref(res);
	return ret;
}

int kobj_load_text(const char *text, size_t len, const char *origin, json_t **out, char *err,
		   size_t errlen)
{
	json_t *docs = NULL;
	size_t i = 0, start;
	int ret;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (len > KOBJ_MAX_BYTES) {
		kobj_kerr(err, errlen, origin, NULL, "input is %zu bytes, more than the limit of %u",
		     len, KOBJ_MAX_BYTES);
		return -EINVAL;
	}
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		i = 3; /* UTF-8 BOM: jansson does not take it */
	start = i;
	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
		i++;
	if (i < len && (text[i] == '{' || text[i] == '['))
		ret = kobj_load_json(text + start, len - start, origin, &docs, err, errlen);
	else
		ret = kobj_load_yaml(text, len, origin, &docs, err, errlen);
	if (ret)
		return ret;
	ret = kobj_flatten(docs, origin, out, err, errlen);
	json_decref(docs);
	return ret;
}

int kobj_load_file(const char *path, json_t **out, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, ret;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		kobj_kerr(err, errlen, path, NULL, "cannot open: %s", strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st)) {
		ret = -errno;
		kobj_kerr(err, errlen, path, NULL, "cannot stat: %s", strerror(-ret));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		kobj_kerr(err, errlen, path, NULL, "not a regular file");
		ret = -EINVAL;
		goto out;
	}
	if ((unsigned long long)st.st_size > KOBJ_MAX_BYTES) {
		kobj_kerr(err, errlen, path, NULL, "file is %lld bytes, more than the limit of %u",
		     (long long)st.st_size, KOBJ_MAX_BYTES);
		ret = -EFBIG;
		goto out;
	}
	/* +1: read past the size seen by fstat to notice a file that grew */
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		ret = -ENOMEM;
		kobj_kerr(err, errlen, path, NULL, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			kobj_kerr(err, errlen, path, NULL, "cannot read: %s", strerror(-ret));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > (size_t)st.st_size) {
			kobj_kerr(err, errlen, path, NULL, "file changed while being read; retry");
			ret = -EAGAIN;
			goto out;
		}
	}
	ret = kobj_load_text(buf, got, path, out, err, errlen);
out:
	free(buf);
	close(fd);
	return ret;
}
