/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kubernetes mode's pure parts (contract in conf/kube.h). A kubeconfig is
 * YAML read through kobj; relative paths in it are relative to its own
 * directory, as kubectl reads them. The *-data fields are base64 (decoded
 * with OpenSSL's EVP_DecodeBlock).
 */
#include "conf/kube.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "conf/errbuf.h"
#include "conf/kobj.h"

#define KUBE_TOKEN_MAX (64 * 1024)

void kube_creds_free(struct kube_creds *c)
{
	if (!c)
		return;
	free(c->server);
	free(c->ca_file);
	free(c->ca_pem);
	free(c->token);
	free(c->token_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->cert_pem);
	free(c->key_pem);
	free(c->namespace);
	free(c->origin);
	memset(c, 0, sizeof(*c));
}

static int kc_read_small(const char *path, size_t max, char **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	*out = NULL;
	if (!f) {
		int e = errno;

		errbuf_set(err, errlen, "cannot open %s: %s", path, strerror(e));
		return -e;
	}
	buf = malloc(max + 1);
	if (!buf) {
		fclose(f);
		errbuf_set(err, errlen, "out of memory");
		return -ENOMEM;
	}
	n = fread(buf, 1, max + 1, f);
	if (ferror(f) || n > max) {
		int e = ferror(f) ? EIO : EFBIG;

		fclose(f);
		free(buf);
		errbuf_set(err, errlen, "cannot read %s: %s", path,
			   e == EFBIG ? "larger than expected" : strerror(e));
		return -e;
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	return 0;
}

int kube_token_read(const char *path, char **out, char *err, size_t errlen)
{
	char *s, *b, *e;
	int ret = kc_read_small(path, KUBE_TOKEN_MAX, &s, err, errlen);

	if (ret)
		return ret;
	for (b = s; *b == ' ' || *b == '\n' || *b == '\r' || *b == '\t'; b++)
		;
	e = b + strlen(b);
	while (e > b && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\r' || e[-1] == '\t'))
		*--e = '\0';
	if (!*b || strpbrk(b, "\r\n")) {
		free(s);
		errbuf_set(err, errlen, "%s: not a bearer token (empty or several lines)", path);
		return -EINVAL;
	}
	memmove(s, b, strlen(b) + 1);
	*out = s;
	return 0;
}

/* The entry of list (clusters/contexts/users) named name, its `field`. */
static json_t *kc_named(json_t *root, const char *list, const char *name, const char *field)
{
	json_t *a = json_object_get(root, list), *e;
	size_t i;

	json_array_foreach(a, i, e) {
		const char *n = json_string_value(json_object_get(e, "name"));

		if (n && !strcmp(n, name))
			return json_object_get(e, field);
	}
	return NULL;
}

static const char *kc_kube_str_field(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s && *s ? s : NULL;
}

static int kc_set_path(char **dst, const char *dir, const char *p)
{
	if (p[0] == '/' || !dir)
		*dst = strdup(p);
	else if (asprintf(dst, "%s/%s", dir, p) < 0)
		*dst = NULL;
	return *dst ? 0 : -ENOMEM;
}

static int kc_b64_field(json_t *o, const char *key, char **dst, const char *path, char *err,
		     size_t errlen)
{
	const char *s = kc_kube_str_field(o, key);
	size_t n, pad = 0;
	unsigned char *buf;
	int len;

	if (!s)
		return 0;
	n = strlen(s);
	if (n % 4 || n > 16 * 1024 * 1024)
		goto bad;
	buf = malloc(n / 4 * 3 + 1);
	if (!buf) {
		errbuf_set(err, errlen, "out of memory");
		return -ENOMEM;
	}
	len = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n);
	if (len < 0) {
		free(buf);
		goto bad;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes */
	while (pad < 2 && n > pad && s[n - 1 - pad] == '=')
		pad++;
	len -= (int)pad;
	buf[len] = '\0';
	*dst = (char *)buf;
	return 0;
bad:
	errbuf_set(err, errlen, "%s: %s: not valid base64", path, key);
	return -EINVAL;
}

int kube_config_load(const char *path, struct kube_creds *out, char *err, size_t errlen)
{
	json_t *docs = NULL, *root, *ctx, *cluster, *user;
	const char *cur, *cname, *uname, *s;
	char *copy = NULL, *dir;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = kobj_load_file(path, &docs, err, errlen);
	if (ret)
		return ret;
	ret = -EINVAL;
	root = json_array_get(docs, 0);
	if (json_array_size(docs) != 1 || !json_is_object(root)) {
		errbuf_set(err, errlen, "%s: expected one kubeconfig mapping", path);
		goto out;
	}
	cur = kc_kube_str_field(root, "current-context");
	if (!cur) {
		errbuf_set(err, errlen, "%s: current-context: not set", path);
		goto out;
	}
	ctx = kc_named(root, "contexts", cur, "context");
	if (!json_is_object(ctx)) {
		errbuf_set(err, errlen, "%s: contexts: no context named \"%s\" (current-context)",
			   path, cur);
		goto out;
	}
	cname = kc_kube_str_field(ctx, "cluster");
	uname = kc_kube_str_field(ctx, "user");
	cluster = cname ? kc_named(root, "clusters", cname, "cluster") : NULL;
	if (!json_is_object(cluster)) {
		errbuf_set(err, errlen, "%s: clusters: no cluster named \"%s\" (context %s)", path,
			   cname ? cname : "", cur);
		goto out;
	}
	user = uname ? kc_named(root, "users", uname, "user") : NULL;
	if (uname && !json_is_object(user)) {
		errbuf_set(err, errlen, "%s: users: no user named \"%s\" (context %s)", path, uname,
			   cur);
		goto out;
	}
	if (user && (json_object_get(user, "exec") || json_object_get(user, "auth-provider"))) {
		errbuf_set(err, errlen,
			   "%s: users[%s]: exec and auth-provider plugins are not supported; use a token, tokenFile or client certificate",
			   path, uname);
		goto out;
	}
	s = kc_kube_str_field(cluster, "server");
	if (!s || strncmp(s, "https://", 8)) {
		errbuf_set(err, errlen, "%s: clusters[%s].server: %s", path, cname,
			   s ? "must be an https:// URL" : "missing");
		goto out;
	}
	copy = strdup(path);
	out->server = strdup(s);
	if (asprintf(&out->origin, "kubeconfig %s", path) < 0)
		out->origin = NULL;
	if (!copy || !out->server || !out->origin)
		goto oom;
	dir = dirname(copy);
	while (strlen(out->server) > 8 && out->server[strlen(out->server) - 1] == '/')
		out->server[strlen(out->server) - 1] = '\0';
	out->insecure = json_is_true(json_object_get(cluster, "insecure-skip-tls-verify"));
	if ((s = kc_kube_str_field(cluster, "certificate-authority")) && kc_set_path(&out->ca_file, dir, s))
		goto oom;
	ret = kc_b64_field(cluster, "certificate-authority-data", &out->ca_pem, path, err, errlen);
	if (ret)
		goto out;
	if ((s = kc_kube_str_field(ctx, "namespace")) && !(out->namespace = strdup(s)))
		goto oom;
	if (user) {
		if ((s = kc_kube_str_field(user, "token")) && !(out->token = strdup(s)))
			goto oom;
		if ((s = kc_kube_str_field(user, "tokenFile")) && kc_set_path(&out->token_file, dir, s))
			goto oom;
		if ((s = kc_kube_str_field(user, "client-certificate")) && kc_set_path(&out->cert_file, dir, s))
			goto oom;
		if ((s = kc_kube_str_field(user, "client-key")) && kc_set_path(&out->key_file, dir, s))
			goto oom;
		ret = kc_b64_field(user, "client-certificate-data", &out->cert_pem, path, err, errlen);
		if (!ret)
			ret = kc_b64_field(user, "client-key-data", &out->key_pem, path, err, errlen);
		if (ret)
			goto out;
		if (!!(out->cert_file || out->cert_pem) != !!(out->key_file || out->key_pem)) {
			errbuf_set(err, errlen, "%s: users[%s]: a client certificate needs its key and a key its certificate",
				   path, uname);
			ret = -EINVAL;
			goto out;
		}
	}
	ret = 0;
	goto out;
oom:
	errbuf_set(err, errlen, "out of memory");
	ret = -ENOMEM;
out:
	free(copy);
	json_decref(docs);
	if (ret)
		kube_creds_free(out);
	return ret;
}

int kube_config_incluster(const char *sa_dir, struct kube_creds *out, char *err, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	char *tok = NULL, *ns = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!sa_dir)
		sa_dir = KUBE_SA_DIR;
	if (!host || !*host || !port || !*port) {
		errbuf_set(err, errlen,
			   "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set (or set kubeconfig)");
		return -EINVAL;
	}
	if (strspn(port, "0123456789") != strlen(port) || strlen(port) > 5) {
		errbuf_set(err, errlen, "in-cluster: KUBERNETES_SERVICE_PORT \"%s\" is not a port", port);
		return -EINVAL;
	}
	if (asprintf(&out->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
		     port) < 0 ||
	    asprintf(&out->token_file, "%s/token", sa_dir) < 0 ||
	    asprintf(&out->ca_file, "%s/ca.crt", sa_dir) < 0 ||
	    !(out->origin = strdup("in-cluster"))) {
		ret = -ENOMEM;
		errbuf_set(err, errlen, "out of memory");
		goto out;
	}
	/* present now, or the first request fails with a less helpful error */
	ret = kube_token_read(out->token_file, &tok, err, errlen);
	if (ret)
		goto out;
	if (access(out->ca_file, R_OK)) {
		ret = -errno;
		errbuf_set(err, errlen, "in-cluster: %s: %s", out->ca_file, strerror(-ret));
		goto out;
	}
	{
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/namespace", sa_dir);
		if (kube_token_read(p, &ns, NULL, 0) == 0)
			out->namespace = ns;
	}
	ret = 0;
out:
	free(tok);
	if (ret)
		kube_creds_free(out);
	return ret;
}

static const char *const kc_ev_names[] = {
	[KEV_ADDED] = "ADDED", [KEV_MODIFIED] = "MODIFIED", [KEV_DELETED] = "DELETED",
	[KEV_BOOKMARK] = "BOOKMARK", [KEV_ERROR] = "ERROR",
};

const char *kube_event_type_name(enum kube_ev_type t)
{
	return (unsigned)t < sizeof(kc_ev_names) / sizeof(kc_ev_names[0]) ? kc_ev_names[t] : "?";
}

int kube_event_parse(const char *line, size_t len, struct kube_event *ev, char *err,
		     size_t errlen)
{
	json_error_t je;
	json_t *root, *obj;
	const char *type;
	unsigned i;

	memset(ev, 0, sizeof(*ev));
	root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		errbuf_set(err, errlen, "watch event is not JSON: %s (column %d)", je.text,
			   je.column);
		return -EINVAL;
	}
	type = json_string_value(json_object_get(root, "type"));
	obj = json_object_get(root, "object");
	if (!type || !json_is_object(obj)) {
		errbuf_set(err, errlen, "watch event: %s missing or of the wrong type",
			   type ? "object" : "type");
		json_decref(root);
		return -EINVAL;
	}
	for (i = 0; i < sizeof(kc_ev_names) / sizeof(kc_ev_names[0]); i++)
		if (!strcmp(type, kc_ev_names[i]))
			break;
	if (i == sizeof(kc_ev_names) / sizeof(kc_ev_names[0])) {
		errbuf_set(err, errlen, "watch event: unknown type \"%.32s\"", type);
		json_decref(root);
		return -EINVAL;
	}
	ev->type = (enum kube_ev_type)i;
	ev->object = json_incref(obj);
	json_decref(root);
	if (ev->type == KEV_ERROR) {
		json_t *code = json_object_get(obj, "code");

		ev->code = json_is_integer(code) ? (int)json_integer_value(code) : 0;
	} else {
		ev->rv = kube_obj_rv(obj);
	}
	return 0;
}

uint64_t kube_backoff_ms(unsigned attempt, uint64_t base, uint64_t max, uint32_t rnd)
{
	uint64_t d = base ? base : 1;

	while (attempt-- && d < max)
		d *= 2;
	if (d > max)
		d = max;
	return d - d / 2 + (d / 2 ? (uint64_t)rnd % (d / 2 + 1) : 0);
}

uint64_t kube_rebuild_delay(uint64_t now, uint64_t last, uint64_t window)
{
	if (!last || now < last || now - last >= window)
		return 0;
	return last + window - now;
}

int kube_obj_key(const json_t *obj, char *buf, size_t len)
{
	const json_t *md = json_object_get(obj, "metadata");
	const char *name = json_string_value(json_object_get(md, "name"));
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	int n;

	if (!name || !*name)
		return -EINVAL;
	n = ns && *ns ? snprintf(buf, len, "%s/%s", ns, name) : snprintf(buf, len, "%s", name);
	return n < 0 || (size_t)n >= len ? -EINVAL : 0;
}

const char *kube_obj_rv(const json_t *obj)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"),
						 "resourceVersion"));
}

void kube_obj_trim(json_t *obj, const char *api_version, const char *kind)
{
	json_object_del(json_object_get(obj, "metadata"), "managedFields");
	if (api_version && !json_is_string(json_object_get(obj, "apiVersion")))
		json_object_set_new(obj, "apiVersion", json_string(api_version));
	if (kind && !json_is_string(json_object_get(obj, "kind")))
		json_object_set_new(obj, "kind", json_string(kind));
}

/* ---- compact objects ---- */

/* Copies into dst (by reference) the keys of src named in keep. 0 or -1. */
static int kc_pick(json_t *dst, json_t *src, const char *const *keep)
{
	for (; *keep; keep++) {
		json_t *v = json_object_get(src, *keep);

		if (v && json_object_set(dst, *keep, v))
			return -1;
	}
	return 0;
}

/* src's value of key, reduced to keep when it is a mapping (anything else,
 * as sent, so that the builder rejects it as it would have). */
static int kc_sub(json_t *dst, json_t *src, const char *key, const char *const *keep)
{
	json_t *v = json_object_get(src, key), *o;

	if (!v)
		return 0;
	if (!json_is_object(v))
		return json_object_set(dst, key, v);
	o = json_object();
	if (!o || kc_pick(o, v, keep)) {
		json_decref(o);
		return -1;
	}
	return json_object_set_new(dst, key, o);
}

/* An array of mappings each reduced to keep; items of another type and a
 * value that is no array are kept as sent. */
static int kc_list(json_t *dst, json_t *src, const char *key, const char *const *keep)
{
	json_t *v = json_object_get(src, key), *a, *e;
	size_t i;

	if (!v)
		return 0;
	if (!json_is_array(v))
		return json_object_set(dst, key, v);
	a = json_array();
	if (!a)
		return -1;
	json_array_foreach(v, i, e) {
		json_t *o = e;

		if (json_is_object(e)) {
			o = json_object();
			if (!o || kc_pick(o, e, keep)) {
				json_decref(o);
				json_decref(a);
				return -1;
			}
			if (json_array_append_new(a, o)) {
				json_decref(a);
				return -1;
			}
		} else if (json_array_append(a, o)) {
			json_decref(a);
			return -1;
		}
	}
	return json_object_set_new(dst, key, a);
}

/* conf/kube_prune.c's pod schema keeps the same fields from the text: a
 * field added here goes there too (fuzz_kube_prune compares the two). */
static const char *const kc_top[] = { "apiVersion", "kind", NULL };
static const char *const kc_meta[] = { "name", "namespace", "uid", "resourceVersion", "labels",
					"annotations", NULL };
static const char *const kc_spec[] = { "serviceAccount", "serviceAccountName", "nodeName",
					"hostNetwork", NULL };
static const char *const kc_ctr[] = { "restartPolicy", "ports", NULL };
static const char *const kc_status[] = { "phase", "podIP", "podIPs", NULL };
static const char *const kc_cond[] = { "type", "status", NULL };

/* The pod's fields the model reads (model/mesh.c decode_pod), each as sent. */
static json_t *kc_pod(json_t *pod)
{
	json_t *o = json_object(), *spec = json_object_get(pod, "spec");
	json_t *st = json_object_get(pod, "status"), *s = NULL, *x = NULL;

	if (!o || kc_pick(o, pod, kc_top) || kc_sub(o, pod, "metadata", kc_meta))
		goto fail;
	if (json_is_object(spec)) {
		s = json_object();
		if (!s || kc_pick(s, spec, kc_spec) || kc_list(s, spec, "containers", kc_ctr) ||
		    kc_list(s, spec, "initContainers", kc_ctr) || json_object_set_new(o, "spec", s))
			goto fail_s;
	} else if (spec && json_object_set(o, "spec", spec)) {
		goto fail;
	}
	if (json_is_object(st)) {
		x = json_object();
		if (!x || kc_pick(x, st, kc_status) || kc_list(x, st, "conditions", kc_cond) ||
		    json_object_set_new(o, "status", x))
			goto fail_x;
	} else if (st && json_object_set(o, "status", st)) {
		goto fail;
	}
	return o;
fail_s:
	json_decref(s);
	goto fail;
fail_x:
	json_decref(x);
fail:
	json_decref(o);
	return NULL;
}

/* Is every member of o (an object, else nothing to reduce) in keep, or in
 * more (may be NULL)? */
static bool kc_only(json_t *o, const char *const *keep, const char *const *more)
{
	const char *k;
	json_t *v;

	if (!json_is_object(o))
		return true;
	json_object_foreach(o, k, v) {
		const char *const *p;
		bool found = false;

		for (p = keep; *p && !found; p++)
			found = !strcmp(k, *p);
		for (p = more; p && *p && !found; p++)
			found = !strcmp(k, *p);
		if (!found)
			return false;
	}
	return true;
}

static bool kc_list_only(json_t *a, const char *const *keep)
{
	size_t i;
	json_t *e;

	json_array_foreach(a, i, e)
		if (!kc_only(e, keep, NULL))
			return false;
	return true;
}

static const char *const kc_top_more[] = { "metadata", "spec", "status", NULL };
static const char *const kc_spec_more[] = { "containers", "initContainers", NULL };
static const char *const kc_status_more[] = { "conditions", NULL };

/* Is pod already what kc_pod() would make of it (as a pod pruned from the
 * text is: conf/kube_prune.c)? Then it is kept as it is, not copied. */
static bool kc_pod_compact(json_t *pod)
{
	json_t *spec = json_object_get(pod, "spec"), *st = json_object_get(pod, "status");

	return kc_only(pod, kc_top, kc_top_more) &&
	       kc_only(json_object_get(pod, "metadata"), kc_meta, NULL) &&
	       kc_only(spec, kc_spec, kc_spec_more) &&
	       (!json_is_object(spec) ||
		(kc_list_only(json_object_get(spec, "containers"), kc_ctr) &&
		 kc_list_only(json_object_get(spec, "initContainers"), kc_ctr))) &&
	       kc_only(st, kc_status, kc_status_more) &&
	       (!json_is_object(st) || kc_list_only(json_object_get(st, "conditions"), kc_cond));
}

json_t *kube_obj_compact(json_t *obj)
{
	const char *kind = json_string_value(json_object_get(obj, "kind"));

	if (json_is_object(obj) && kind && !strcmp(kind, "Pod") && !kc_pod_compact(obj))
		return kc_pod(obj);
	return json_incref(obj);
}

bool kube_obj_same(json_t *a, json_t *b)
{
	json_t *ma = json_object_get(a, "metadata"), *mb = json_object_get(b, "metadata");
	const char *k;
	json_t *v;

	if (!json_is_object(a) || !json_is_object(b) || json_object_size(a) != json_object_size(b))
		return false;
	json_object_foreach(a, k, v)
		if (strcmp(k, "metadata") && !json_equal(v, json_object_get(b, k)))
			return false;
	if (!json_is_object(ma) || !json_is_object(mb))
		return json_equal(ma, mb);
	if (json_object_size(ma) - !!json_object_get(ma, "resourceVersion") !=
	    json_object_size(mb) - !!json_object_get(mb, "resourceVersion"))
		return false;
	json_object_foreach(ma, k, v)
		if (strcmp(k, "resourceVersion") && !json_equal(v, json_object_get(mb, k)))
			return false;
	return true;
}
