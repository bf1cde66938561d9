/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CNI configuration, CNI_ARGS, result conversion and error JSON; contract
 * in conf/cni.h. No I/O here: everything works on memory so it can be
 * fuzzed (tests/fuzz/fuzz_cni.c).
 */
#include "conf/cni.h"

#include "conf/inpod_mode.h"
#include "conf/log.h"
#include "conf/warren.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

const char *const cni_supported_versions[] = { "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0" };
const size_t cni_n_supported_versions = ARRAY_SIZE(cni_supported_versions);

int cni_error_set(struct cni_error *err, int code, const char *msg, const char *details_fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	err->code = code;
	snprintf(err->msg, sizeof(err->msg), "%s", msg ? msg : "");
	err->details[0] = '\0';
	if (details_fmt) {
		va_start(ap, details_fmt);
		vsnprintf(err->details, sizeof(err->details), details_fmt, ap);
		va_end(ap);
	}
	return -1;
}

char *cni_error_json(const char *version, const struct cni_error *err)
{
	json_t *o;
	char *s = NULL, *line = NULL;
	size_t n;

	o = json_pack("{s:s, s:i, s:s, s:s}", "cniVersion", version ? version : CNI_VERSION_LATEST,
		      "code", err->code, "msg", err->msg, "details", err->details);
	if (!o)
		return NULL;
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		return NULL;
	n = strlen(s);
	line = malloc(n + 2);
	if (line) {
		memcpy(line, s, n);
		line[n] = '\n';
		line[n + 1] = '\0';
	}
	free(s);
	return line;
}

bool cni_version_supported(const char *v)
{
	for (size_t i = 0; v && i < cni_n_supported_versions; i++)
		if (!strcmp(v, cni_supported_versions[i]))
			return true;
	return false;
}

json_t *cni_supported_versions_json(void)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < cni_n_supported_versions; i++) {
		if (json_array_append_new(a, json_string(cni_supported_versions[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static void cni_versions_list(char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < cni_n_supported_versions && off < len; i++) {
		int n = snprintf(buf + off, len - off, "%s\"%s\"", i ? ", " : "", cni_supported_versions[i]);
		if (n < 0)
			break;
		off += (size_t)n;
	}
}

/* Parse one numeric component; stops at '.' or end. */
static unsigned long cni_version_part(const char **p)
{
	unsigned long v = 0;

	while (**p >= '0' && **p <= '9') {
		if (v < 1000000)
			v = v * 10 + (unsigned long)(**p - '0');
		(*p)++;
	}
	while (**p && **p != '.')
		(*p)++;
	if (**p == '.')
		(*p)++;
	return v;
}

int cni_version_cmp(const char *a, const char *b)
{
	const char *pa = a ? a : "", *pb = b ? b : "";

	for (int i = 0; i < 3; i++) {
		unsigned long x = cni_version_part(&pa), y = cni_version_part(&pb);

		if (x != y)
			return x < y ? -1 : 1;
	}
	return 0;
}

char *cni_peek_version(const char *buf, size_t len)
{
	json_t *root, *v;
	char *out = NULL;

	if (!buf || !len)
		return NULL;
	root = json_loadb(buf, len, 0, NULL);
	v = json_object_get(root, "cniVersion");
	if (json_is_string(v) && json_string_length(v) > 0 && !memchr(json_string_value(v), '\0',
									json_string_length(v)))
		out = strdup(json_string_value(v));
	json_decref(root);
	return out;
}

/* ---- configuration ---- */

void cni_conf_free(struct cni_conf *conf)
{
	if (!conf)
		return;
	free(conf->cni_version);
	free(conf->name);
	free(conf->type);
	json_decref(conf->prev_result);
	json_decref(conf->raw);
	free(conf->tunnel_socket);
	for (size_t i = 0; i < conf->n_exclude_namespaces; i++)
		free(conf->exclude_namespaces[i]);
	free(conf->exclude_namespaces);
	free(conf->log_file);
	free(conf->bpf_dir);
	free(conf->log_level);
	free(conf);
}

static int cni_wrong_type(struct cni_error *err, const char *key, const char *want)
{
	return cni_error_set(err, CNI_ERR_INVALID_CONFIG, "invalid network configuration",
			     "key \"%s\" must be %s; fix the warren-cni entry in the CNI conflist", key, want);
}

static int cni_nomem(struct cni_error *err)
{
	return cni_error_set(err, CNI_ERR_INTERNAL, "out of memory", "allocation failed while parsing the configuration");
}

/* Optional string key: absent or null keeps *dst. Empty strings are
 * rejected when !allow_empty. */
static int cni_get_string(json_t *root, const char *key, bool allow_empty, char **dst, struct cni_error *err)
{
	json_t *v = json_object_get(root, key);
	char *s;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || memchr(json_string_value(v), '\0', json_string_length(v)))
		return cni_wrong_type(err, key, allow_empty ? "a string" : "a non-empty string");
	if (!allow_empty && json_string_length(v) == 0)
		return cni_wrong_type(err, key, "a non-empty string");
	s = strdup(json_string_value(v));
	if (!s)
		return cni_nomem(err);
	free(*dst);
	*dst = s;
	return 0;
}

static int cni_parse_excludes(json_t *root, struct cni_conf *c, struct cni_error *err)
{
	json_t *v = json_object_get(root, "excludeNamespaces"), *e;
	size_t i, n;

	if (!v || json_is_null(v)) {
		c->exclude_namespaces = calloc(1, sizeof(char *));
		if (!c->exclude_namespaces)
			return cni_nomem(err);
		c->exclude_namespaces[0] = strdup("kube-system");
		if (!c->exclude_namespaces[0])
			return cni_nomem(err);
		c->n_exclude_namespaces = 1;
		return 0;
	}
	if (!json_is_array(v))
		return cni_wrong_type(err, "excludeNamespaces", "an array of strings");
	n = json_array_size(v);
	json_array_foreach(v, i, e) {
		if (!json_is_string(e) || memchr(json_string_value(e), '\0', json_string_length(e)))
			return cni_wrong_type(err, "excludeNamespaces", "an array of strings");
	}
	c->exclude_namespaces = calloc(n ? n : 1, sizeof(char *));
	if (!c->exclude_namespaces)
		return cni_nomem(err);
	json_array_foreach(v, i, e) {
		c->exclude_namespaces[i] = strdup(json_string_value(e));
		if (!c->exclude_namespaces[i])
			return cni_nomem(err);
		c->n_exclude_namespaces = i + 1;
	}
	return 0;
}

static int cni_parse_timeout(json_t *root, struct cni_conf *c, struct cni_error *err)
{
	json_t *v = json_object_get(root, "timeoutMs");
	json_int_t t;

	if (!v || json_is_null(v))
		return 0;
	/* Go runtimes re-serialise through float64, which prints whole
	 * numbers without a fraction, so a real here is a user mistake. */
	if (!json_is_integer(v))
		return cni_wrong_type(err, "timeoutMs", "an integer (milliseconds, > 0)");
	t = json_integer_value(v);
	if (t <= 0 || t > CNI_MAX_TIMEOUT_MS)
		return cni_error_set(err, CNI_ERR_INVALID_CONFIG, "invalid network configuration",
				     "key \"timeoutMs\" must be an integer between 1 and %d (milliseconds), got %lld",
				     CNI_MAX_TIMEOUT_MS, (long long)t);
	c->timeout_ms = (int)t;
	return 0;
}

static int cni_parse_version(json_t *root, struct cni_conf *c, struct cni_error *err)
{
	json_t *v = json_object_get(root, "cniVersion");
	char list[128];

	cni_versions_list(list, sizeof(list));
	if (v && !json_is_string(v))
		return cni_wrong_type(err, "cniVersion", "a string");
	if (!v || json_string_length(v) == 0)
		return cni_error_set(err, CNI_ERR_INCOMPATIBLE_VERSION, "incompatible CNI versions",
				     "config has no cniVersion (which means \"0.1.0\"), plugin supports [%s]", list);
	if (!cni_version_supported(json_string_value(v)))
		return cni_error_set(err, CNI_ERR_INCOMPATIBLE_VERSION, "incompatible CNI versions",
				     "config is \"%.64s\", plugin supports [%s]", json_string_value(v), list);
	c->cni_version = strdup(json_string_value(v));
	return c->cni_version ? 0 : cni_nomem(err);
}

static int cni_parse_redirect(json_t *root, struct cni_conf *c, struct cni_error *err)
{
	char *mode = NULL;
	int ret;

	ret = cni_get_string(root, "redirect", false, &mode, err);
	if (ret < 0 || !mode)
		return ret;
	if (!strcmp(mode, "nftables"))
		c->redirect = CNI_REDIRECT_NFTABLES;
	else if (!strcmp(mode, "ebpf"))
		c->redirect = CNI_REDIRECT_EBPF;
	else
		ret = cni_error_set(err, CNI_ERR_INVALID_CONFIG, "invalid network configuration",
				    "key \"redirect\" must be \"nftables\" or \"ebpf\", got \"%.64s\"", mode);
	free(mode);
	return ret;
}

int cni_conf_parse(const char *buf, size_t len, struct cni_conf **out, struct cni_error *err)
{
	struct cni_conf *c = NULL;
	json_error_t jerr;
	json_t *root, *prev;
	int ret = -1;

	*out = NULL;
	root = json_loadb(buf ? buf : "", len, 0, &jerr);
	if (!root) {
		cni_error_set(err, CNI_ERR_DECODE, "failed to decode the network configuration on stdin",
			      "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
		goto out;
	}
	if (!json_is_object(root)) {
		cni_error_set(err, CNI_ERR_DECODE, "failed to decode the network configuration on stdin",
			      "the configuration must be a JSON object");
		goto out;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		cni_nomem(err);
		goto out;
	}
	c->timeout_ms = CNI_DEFAULT_TIMEOUT_MS;
	c->redirect = CNI_REDIRECT_NFTABLES;
	c->tunnel_socket = strdup(DEFAULT_TUNNEL_SOCKET);
	c->bpf_dir = strdup(CNI_DEFAULT_BPF_DIR);
	if (!c->tunnel_socket || !c->bpf_dir) {
		cni_nomem(err);
		goto out;
	}
	if (cni_parse_version(root, c, err) < 0)
		goto out;
	if (cni_get_string(root, "name", false, &c->name, err) < 0 ||
	    cni_get_string(root, "type", true, &c->type, err) < 0 ||
	    cni_get_string(root, "tunnelSocket", false, &c->tunnel_socket, err) < 0 ||
	    cni_get_string(root, "logFile", true, &c->log_file, err) < 0 ||
	    cni_get_string(root, "bpfDir", false, &c->bpf_dir, err) < 0 ||
	    cni_get_string(root, "logLevel", true, &c->log_level, err) < 0 ||
	    cni_parse_excludes(root, c, err) < 0 || cni_parse_redirect(root, c, err) < 0 ||
	    cni_parse_timeout(root, c, err) < 0)
		goto out;
	if (!c->name) {
		cni_error_set(err, CNI_ERR_INVALID_CONFIG, "missing network name",
			      "key \"name\" (a non-empty string) is required in the network configuration");
		goto out;
	}
	if (c->bpf_dir[0] != '/' || strlen(c->bpf_dir) >= INPOD_BPF_DIR_MAX) {
		cni_error_set(err, CNI_ERR_INVALID_CONFIG, "invalid network configuration",
			      "key \"bpfDir\" must be an absolute path shorter than %d bytes (a bpffs mount), got \"%.64s\"",
			      INPOD_BPF_DIR_MAX, c->bpf_dir);
		goto out;
	}
	if (strlen(c->tunnel_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		cni_error_set(err, CNI_ERR_INVALID_CONFIG, "invalid network configuration",
			      "key \"tunnelSocket\" is longer than %zu bytes, the limit of a Unix socket path",
			      sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		goto out;
	}
	if (c->log_level && *c->log_level) {
		enum wlog_level lvl;

		if (wlog_parse_level(c->log_level, &lvl) < 0) {
			cni_error_set(err, CNI_ERR_INVALID_CONFIG, "invalid network configuration",
				      "key \"logLevel\" must be one of \"error\", \"warn\", \"info\", \"debug\", got \"%.32s\"",
				      c->log_level);
			goto out;
		}
	}
	prev = json_object_get(root, "prevResult");
	if (prev && !json_is_null(prev)) {
		if (!json_is_object(prev)) {
			cni_wrong_type(err, "prevResult", "an object");
			goto out;
		}
		c->prev_result = json_incref(prev);
	}
	c->raw = root;
	root = NULL;
	*out = c;
	c = NULL;
	ret = 0;
out:
	cni_conf_free(c);
	json_decref(root);
	return ret;
}

bool cni_conf_excluded(const struct cni_conf *conf, const char *ns)
{
	for (size_t i = 0; ns && i < conf->n_exclude_namespaces; i++)
		if (!strcmp(conf->exclude_namespaces[i], ns))
			return true;
	return false;
}

int cni_conf_gc_valid(const struct cni_conf *conf, json_t **out, struct cni_error *err)
{
	const char *key = "cni.dev/valid-attachments";
	json_t *list, *e, *res = NULL;
	size_t i;

	*out = NULL;
	list = json_object_get(conf->raw, key);
	if (!list) {
		key = "cni.dev/attachments";
		list = json_object_get(conf->raw, key);
	}
	if (!list)
		return cni_error_set(err, CNI_ERR_INVALID_CONFIG, "GC without a list of valid attachments",
				     "key \"cni.dev/valid-attachments\" is missing; refusing to GC since every pod would be forgotten");
	if (!json_is_array(list))
		return cni_wrong_type(err, key, "an array of {containerID, ifname} objects");
	res = json_array();
	if (!res)
		return cni_nomem(err);
	json_array_foreach(list, i, e) {
		json_t *id = json_object_get(e, "containerID"), *ifn = json_object_get(e, "ifname");

		if (!json_is_string(id) || !json_is_string(ifn)) {
			json_decref(res);
			return cni_wrong_type(err, key, "an array of {containerID, ifname} objects with string values");
		}
		if (json_array_append_new(res, json_pack("{s:O, s:O}", "containerId", id, "ifname", ifn)) < 0) {
			json_decref(res);
			return cni_nomem(err);
		}
	}
	*out = res;
	return 0;
}

/* ---- CNI_ARGS ---- */

void cni_args_release(struct cni_args *a)
{
	if (!a)
		return;
	free(a->pod_namespace);
	free(a->pod_name);
	free(a->pod_uid);
	free(a->pod_infra_container_id);
	memset(a, 0, sizeof(*a));
}

int cni_args_parse(const char *s, struct cni_args *out, struct cni_error *err)
{
	static const struct {
		const char *key;
		size_t off;
	} keys[] = {
		{ "K8S_POD_NAMESPACE", offsetof(struct cni_args, pod_namespace) },
		{ "K8S_POD_NAME", offsetof(struct cni_args, pod_name) },
		{ "K8S_POD_UID", offsetof(struct cni_args, pod_uid) },
		{ "K8S_POD_INFRA_CONTAINER_ID", offsetof(struct cni_args, pod_infra_container_id) },
	};
	const char *p = s ? s : "";
	size_t seg = 0;

	memset(out, 0, sizeof(*out));
	while (*p) {
		const char *end = strchrnul(p, ';'), *eq;
		size_t klen;

		seg++;
		eq = memchr(p, '=', (size_t)(end - p));
		if (end == p) {
			/* empty segment, e.g. a trailing ';' */
		} else if (!eq || eq == p) {
			cni_args_release(out);
			return cni_error_set(err, CNI_ERR_INVALID_ENV, "invalid CNI_ARGS",
					     "CNI_ARGS pair %zu (\"%.*s\") is not KEY=VALUE; CNI_ARGS must be K=V;K=V",
					     seg, (int)((end - p) > 64 ? 64 : (end - p)), p);
		} else {
			klen = (size_t)(eq - p);
			for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
				char **dst = (char **)((char *)out + keys[i].off);

				if (strlen(keys[i].key) != klen || memcmp(keys[i].key, p, klen))
					continue;
				free(*dst);
				*dst = strndup(eq + 1, (size_t)(end - eq - 1));
				if (!*dst) {
					cni_args_release(out);
					return cni_error_set(err, CNI_ERR_INTERNAL, "out of memory",
							     "allocation failed while parsing CNI_ARGS");
				}
			}
		}
		p = *end ? end + 1 : end;
	}
	/* An empty value means "not set" for every key we read. */
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		char **dst = (char **)((char *)out + keys[i].off);

		if (*dst && !**dst) {
			free(*dst);
			*dst = NULL;
		}
	}
	return 0;
}

int cni_validate_container_id(const char *id, struct cni_error *err)
{
	if (!id || !*id)
		return cni_error_set(err, CNI_ERR_INVALID_ENV, "required env variables [CNI_CONTAINERID] missing",
				     "set CNI_CONTAINERID to the container id");
	for (const char *p = id; *p; p++) {
		bool ok = isalnum((unsigned char)*p) || (p != id && (*p == '_' || *p == '.' || *p == '-'));

		if (!ok || (unsigned char)*p > 127)
			return cni_error_set(err, CNI_ERR_INVALID_ENV, "invalid characters in CNI_CONTAINERID",
					     "CNI_CONTAINERID \"%.80s\" must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", id);
	}
	return 0;
}

int cni_validate_ifname(const char *ifname, struct cni_error *err)
{
	if (!ifname || !*ifname)
		return cni_error_set(err, CNI_ERR_INVALID_ENV, "required env variables [CNI_IFNAME] missing",
				     "set CNI_IFNAME to the interface name inside the container");
	if (strlen(ifname) > 15)
		return cni_error_set(err, CNI_ERR_INVALID_ENV, "interface name is too long",
				     "CNI_IFNAME \"%.80s\" is longer than 15 characters", ifname);
	if (!strcmp(ifname, ".") || !strcmp(ifname, ".."))
		return cni_error_set(err, CNI_ERR_INVALID_ENV, "interface name is . or ..",
				     "CNI_IFNAME \"%s\" is not a valid interface name", ifname);
	for (const char *p = ifname; *p; p++)
		if (*p == '/' || *p == ':' || isspace((unsigned char)*p))
			return cni_error_set(err, CNI_ERR_INVALID_ENV, "interface name contains an invalid character",
					     "CNI_IFNAME \"%s\" must not contain '/', ':' or whitespace", ifname);
	return 0;
}

/* ---- results ---- */

/* "4" or "6" from "10.0.0.2/24" / "fd00::2/64", NULL when unparseable. */
static const char *cni_ip_version_of(const char *cidr)
{
	char buf[INET6_ADDRSTRLEN + 8];
	unsigned char addr[16];
	const char *slash = strchr(cidr, '/');
	size_t n = slash ? (size_t)(slash - cidr) : strlen(cidr);

	if (n >= sizeof(buf))
		return NULL;
	memcpy(buf, cidr, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, addr) == 1)
		return "4";
	if (inet_pton(AF_INET6, buf, addr) == 1)
		return "6";
	return NULL;
}

/* Copy of an array with `drop` keys removed from each object element and,
 * for ips, "version" set or removed for `version`. Non-object elements
 * are copied unchanged: leniency over rejecting a result we only relay. */
static json_t *cni_convert_list(json_t *list, const char *const *drop, size_t ndrop, const char *version, bool is_ips)
{
	json_t *out, *e;
	size_t i;

	out = json_array();
	if (!out)
		return NULL;
	json_array_foreach(list, i, e) {
		json_t *c = json_deep_copy(e);

		if (!c)
			goto fail;
		if (json_is_object(c)) {
			for (size_t k = 0; k < ndrop; k++)
				json_object_del(c, drop[k]);
			if (is_ips && cni_version_cmp(version, "1.0.0") >= 0) {
				json_object_del(c, "version");
			} else if (is_ips) {
				json_t *a = json_object_get(c, "address");
				const char *ver = json_is_string(a) ? cni_ip_version_of(json_string_value(a)) : NULL;

				if (ver && json_object_set_new(c, "version", json_string(ver)) < 0) {
					json_decref(c);
					goto fail;
				}
			}
		}
		if (json_array_append_new(out, c) < 0)
			goto fail;
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

json_t *cni_result_convert(const json_t *prev, const char *version, struct cni_error *err)
{
	static const char *const if11[] = { "mtu", "socketPath", "pciID" };
	static const char *const rt11[] = { "mtu", "advmss", "priority", "table", "scope" };
	bool below11 = cni_version_cmp(version, "1.1.0") < 0;
	json_t *out, *v;
	const char *key;

	if (prev && !json_is_object(prev)) {
		cni_wrong_type(err, "prevResult", "an object");
		return NULL;
	}
	/* cniVersion first, then prev's keys in their order. */
	out = json_pack("{s:s}", "cniVersion", version);
	if (!out)
		goto cni_nomem;
	json_object_foreach((json_t *)prev, key, v) {
		json_t *c;

		if (!strcmp(key, "cniVersion"))
			continue;
		if (!strcmp(key, "ips") && json_is_array(v))
			c = cni_convert_list(v, NULL, 0, version, true);
		else if (!strcmp(key, "interfaces") && json_is_array(v) && below11)
			c = cni_convert_list(v, if11, ARRAY_SIZE(if11), version, false);
		else if (!strcmp(key, "routes") && json_is_array(v) && below11)
			c = cni_convert_list(v, rt11, ARRAY_SIZE(rt11), version, false);
		else
			c = json_deep_copy(v);
		if (!c || json_object_set_new(out, key, c) < 0)
			goto cni_nomem;
	}
	return out;
cni_nomem:
	json_decref(out);
	cni_error_set(err, CNI_ERR_INTERNAL, "out of memory", "allocation failed while building the result");
	return NULL;
}

json_t *cni_result_ips(const json_t *prev)
{
	json_t *out = json_array(), *e;
	size_t i;

	if (!out)
		return NULL;
	json_array_foreach(json_object_get(prev, "ips"), i, e) {
		json_t *a = json_object_get(e, "address");

		if (!json_is_string(a))
			continue;
		if (json_array_append(out, a) < 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}
