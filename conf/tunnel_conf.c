/* SPDX-License-Identifier: Apache-2.0 */
/*
 * warren-tunnel configuration file (contract in conf/tunnel_conf.h).
 *
 * The file goes through kobj (YAML or JSON) and must hold exactly one
 * mapping. Keys are matched exactly (camelCase, as documented); an unknown
 * key is an error, with a "did you mean" when only the case differs. A key
 * set to null (YAML "key:" with no value) keeps its default. On success
 * every string of *out is malloc'd (tunnel_conf_free frees them); on
 * failure *out is left zeroed and err says which key was wrong and why.
 */
#include "conf/tunnel_conf.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf/errbuf.h"
#include "conf/kobj.h"
#include "conf/warren.h"

enum key_type { KT_STRING, KT_INT, KT_LEVEL, KT_BOOL, KT_MTLS };

struct conf_key {
	const char *name;
	enum key_type type;
	size_t off;
	const char *dflt; /* strings only; NULL: unset */
	long long min, max; /* integers only */
};

#define SKEY(n, f, d) { n, KT_STRING, offsetof(struct tunnel_conf, f), d, 0, 0 }
#define IKEY(n, f, lo, hi) { n, KT_INT, offsetof(struct tunnel_conf, f), NULL, lo, hi }
#define MESH_RELOAD_MS_MAX 3600000

static const struct conf_key tunnel_conf_keys[] = {
	SKEY("node", node, NULL),
	SKEY("pluginSocket", plugin_socket, DEFAULT_TUNNEL_SOCKET),
	SKEY("stateDir", state_dir, DEFAULT_STATE_DIR),
	SKEY("meshPath", mesh_path, NULL),
	SKEY("meshSource", mesh_source, "file"),
	SKEY("kubeconfig", kubeconfig, NULL),
	SKEY("adminAddress", admin_address, NULL),
	SKEY("adminSocket", admin_socket, DEFAULT_ADMIN_SOCKET),
	SKEY("metricsAddress", metrics_address, "0.0.0.0:15020"),
	SKEY("readinessAddress", readiness_address, "0.0.0.0:15021"),
	SKEY("logFile", log_file, NULL),
	SKEY("trustDomain", trust_domain, "cluster.local"),
	SKEY("accessLog", access_log, "stdout"),
	SKEY("clusterId", cluster_id, "Kubernetes"),
	SKEY("caDir", ca_dir, NULL),
	SKEY("caAddress", ca_address, NULL),
	SKEY("caProtocol", ca_protocol, "warren"),
	SKEY("caTokenFile", ca_token_file, "/var/run/secrets/warren-ca/token"),
	SKEY("trustBundle", trust_bundle, NULL),
	{ "mtls", KT_MTLS, offsetof(struct tunnel_conf, mtls_disabled), NULL, 0, 0 },
	SKEY("rootNamespace", root_namespace, "istio-system"),
	{ "logLevel", KT_LEVEL, offsetof(struct tunnel_conf, log_level), NULL, 0, 0 },
	IKEY("meshReloadMs", mesh_reload_ms, 1, MESH_RELOAD_MS_MAX),
	/* the CA's limits (tunnel/ca.h CA_MIN/MAX_LIFETIME_S) */
	IKEY("certLifetimeSeconds", cert_lifetime_s, 60, 90LL * 24 * 3600),
	IKEY("poolMaxStreams", pool_max_streams, 1, 10000),
	IKEY("poolIdleTimeoutMs", pool_idle_timeout_ms, 1, 24LL * 3600 * 1000),
	IKEY("hbonePingIntervalMs", hbone_ping_interval_ms, 0, 3600000),
	{ "keepCapabilities", KT_BOOL, offsetof(struct tunnel_conf, keep_capabilities), NULL, 0, 0 },
	IKEY("adoptBatch", adopt_batch, 1, 4096),
	IKEY("workerThreads", worker_threads, 1, 64),
	{ "hostProbeSnat", KT_BOOL, offsetof(struct tunnel_conf, host_probe_snat), NULL, 0, 0 },
	IKEY("kubeletUid", kubelet_uid, 0, 2147483647),
	IKEY("drainSeconds", drain_seconds, 0, 3600),
	IKEY("hboneHandshakeTimeoutMs", hbone_handshake_timeout_ms, 500, 60000),
	IKEY("hboneMaxPendingHandshakes", hbone_max_pending, 1, 65536),
	IKEY("hboneMaxPendingPerSource", hbone_max_pending_source, 1, 65536),
};

static const struct conf_key *tunnel_conf_find_key(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(tunnel_conf_keys); i++)
		if (!strcmp(tunnel_conf_keys[i].name, name))
			return &tunnel_conf_keys[i];
	return NULL;
}

static void tunnel_conf_unknown_key(const char *path, const char *name, char *err, size_t errlen)
{
	for (size_t i = 0; i < ARRAY_SIZE(tunnel_conf_keys); i++) {
		if (!strcasecmp(tunnel_conf_keys[i].name, name)) {
			snprintf(err, errlen, "%s: unknown key \"%s\" (did you mean \"%s\"?)", path,
				 name, tunnel_conf_keys[i].name);
			return;
		}
	}
	snprintf(err, errlen,
		 "%s: unknown key \"%s\"; known keys: node, pluginSocket, stateDir, meshPath, "
		 "meshSource, kubeconfig, adminAddress, adminSocket, metricsAddress, readinessAddress, logLevel, logFile, "
		 "trustDomain, meshReloadMs, accessLog, clusterId, caDir, caAddress, caProtocol, caTokenFile, "
		 "trustBundle, mtls, certLifetimeSeconds, "
		 "rootNamespace, poolMaxStreams, poolIdleTimeoutMs, hbonePingIntervalMs, "
		 "keepCapabilities, adoptBatch, workerThreads, hostProbeSnat, kubeletUid, drainSeconds, "
		 "hboneHandshakeTimeoutMs, hboneMaxPendingHandshakes, hboneMaxPendingPerSource",
		 path, name);
}

static int tunnel_conf_set_key(const char *path, const struct conf_key *k, json_t *v, struct tunnel_conf *c,
		   char *err, size_t errlen)
{
	char **sp = (char **)((char *)c + k->off);

	if (json_is_null(v))
		return 0; /* "key:" with no value: keep the default */
	switch (k->type) {
	case KT_STRING:
		if (!json_is_string(v)) {
			snprintf(err, errlen, "%s: %s: expected a string, got %s", path, k->name,
				 errbuf_json_type(v));
			return -EINVAL;
		}
		if (!*json_string_value(v)) {
			snprintf(err, errlen, "%s: %s: must not be empty (remove the key for the default)",
				 path, k->name);
			return -EINVAL;
		}
		free(*sp);
		*sp = strdup(json_string_value(v));
		if (!*sp) {
			snprintf(err, errlen, "%s: out of memory", path);
			return -ENOMEM;
		}
		return 0;
	case KT_INT: {
		json_int_t n;

		if (!json_is_integer(v)) {
			snprintf(err, errlen, "%s: %s: expected an integer, got %s", path, k->name,
				 errbuf_json_type(v));
			return -EINVAL;
		}
		n = json_integer_value(v);
		if (n < k->min || n > k->max) {
			snprintf(err, errlen, "%s: %s: %lld is out of range (%lld-%lld)", path, k->name,
				 (long long)n, k->min, k->max);
			return -EINVAL;
		}
		*(int *)((char *)c + k->off) = (int)n;
		return 0;
	}
	case KT_LEVEL:
		if (!json_is_string(v)) {
			snprintf(err, errlen, "%s: %s: expected a string (error|warn|info|debug), got %s",
				 path, k->name, errbuf_json_type(v));
			return -EINVAL;
		}
		if (wlog_parse_level(json_string_value(v),
				     (enum wlog_level *)((char *)c + k->off))) {
			snprintf(err, errlen, "%s: %s: \"%s\" is not one of error, warn, info, debug",
				 path, k->name, json_string_value(v));
			return -EINVAL;
		}
		return 0;
	case KT_BOOL:
		if (!json_is_boolean(v)) {
			snprintf(err, errlen, "%s: %s: expected true or false, got %s", path, k->name,
				 errbuf_json_type(v));
			return -EINVAL;
		}
		*(bool *)((char *)c + k->off) = json_is_true(v);
		return 0;
	case KT_MTLS:
		if (!json_is_string(v) || (strcmp(json_string_value(v), "enabled") &&
					   strcmp(json_string_value(v), "disabled"))) {
			snprintf(err, errlen, "%s: %s: expected \"enabled\" or \"disabled\"", path,
				 k->name);
			return -EINVAL;
		}
		*(bool *)((char *)c + k->off) = !strcmp(json_string_value(v), "disabled");
		return 0;
	}
	return -EINVAL;
}

static int tunnel_conf_apply_defaults(const char *path, struct tunnel_conf *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < ARRAY_SIZE(tunnel_conf_keys); i++) {
		char **sp = (char **)((char *)c + tunnel_conf_keys[i].off);

		if (tunnel_conf_keys[i].type != KT_STRING || *sp || !tunnel_conf_keys[i].dflt)
			continue;
		*sp = strdup(tunnel_conf_keys[i].dflt);
		if (!*sp)
			goto oom;
	}
	/* in a DaemonSet the node's name comes from the downward API: with
	 * hostNetwork the hostname is the machine's, which may differ */
	if (!c->node && getenv("NODE_NAME") && *getenv("NODE_NAME")) {
		c->node = strdup(getenv("NODE_NAME"));
		if (!c->node)
			goto oom;
	}
	if (!c->node) {
		char host[HOST_NAME_MAX + 1] = "";

		if (gethostname(host, sizeof(host)) || !host[0]) {
			snprintf(err, errlen, "%s: node: not set and the hostname is unknown; set node",
				 path);
			return -EINVAL;
		}
		host[HOST_NAME_MAX] = '\0';
		c->node = strdup(host);
		if (!c->node)
			goto oom;
	}
	if (c->mtls_disabled && (c->ca_dir || c->ca_address)) {
		snprintf(err, errlen, "%s: mtls: \"disabled\" contradicts caDir or caAddress; remove one of them",
			 path);
		return -EINVAL;
	}
	return 0;
oom:
	snprintf(err, errlen, "%s: out of memory", path);
	return -ENOMEM;
}

int tunnel_conf_load(const char *path, struct tunnel_conf *out, char *err, size_t errlen)
{
	json_t *objs = NULL, *o, *v;
	const char *name;
	int ret;

	memset(out, 0, sizeof(*out));
	out->log_level = WLOG_INFO;
	out->mesh_reload_ms = 1000;
	out->cert_lifetime_s = 86400;
	out->pool_max_streams = 100;
	out->pool_idle_timeout_ms = 300000;
	out->hbone_ping_interval_ms = 10000;
	out->keep_capabilities = true;
	out->adopt_batch = 16;
	out->worker_threads = 2;
	out->host_probe_snat = true;
	out->kubelet_uid = -1;
	out->drain_seconds = 25;
	out->hbone_handshake_timeout_ms = 5000;
	out->hbone_max_pending = 128;
	out->hbone_max_pending_source = 16;
	if (err && errlen)
		err[0] = '\0';
	ret = kobj_load_file(path, &objs, err, errlen);
	if (ret)
		goto out;
	if (json_array_size(objs) != 1) {
		snprintf(err, errlen, "%s: expected exactly one mapping of settings, found %zu documents",
			 path, json_array_size(objs));
		ret = -EINVAL;
		goto out;
	}
	o = json_array_get(objs, 0);
	json_object_foreach(o, name, v) {
		const struct conf_key *k = tunnel_conf_find_key(name);

		if (!k) {
			tunnel_conf_unknown_key(path, name, err, errlen);
			ret = -EINVAL;
			goto out;
		}
		ret = tunnel_conf_set_key(path, k, v, out, err, errlen);
		if (ret)
			goto out;
	}
	if (out->mesh_source && strcmp(out->mesh_source, "file") &&
	    strcmp(out->mesh_source, "kubernetes")) {
		snprintf(err, errlen, "%s: meshSource: \"%s\" is not one of file, kubernetes", path,
			 out->mesh_source);
		ret = -EINVAL;
		goto out;
	}
	out->kube = out->mesh_source && !strcmp(out->mesh_source, "kubernetes");
	if (!out->mesh_path && !out->kube) {
		snprintf(err, errlen, "%s: meshPath: required (a file or directory of Kubernetes objects), "
			 "or set meshSource: kubernetes", path);
		ret = -EINVAL;
		goto out;
	}
	if (out->mesh_path && out->kube) {
		snprintf(err, errlen, "%s: meshPath: not used with meshSource: kubernetes (remove one)",
			 path);
		ret = -EINVAL;
		goto out;
	}
	if (out->kubeconfig && !out->kube) {
		snprintf(err, errlen, "%s: kubeconfig: only used with meshSource: kubernetes", path);
		ret = -EINVAL;
		goto out;
	}
	if (out->ca_dir && out->ca_address) {
		snprintf(err, errlen, "%s: caDir and caAddress: one certificate source only (caDir is "
			 "the development-only local CA; caAddress is warren-ca)", path);
		ret = -EINVAL;
		goto out;
	}
	if (!out->ca_address != !out->trust_bundle) {
		snprintf(err, errlen, "%s: %s", path, out->ca_address
			 ? "caAddress needs trustBundle (the roots file, from the ConfigMap)"
			 : "trustBundle: only used with caAddress");
		ret = -EINVAL;
		goto out;
	}
	if (out->ca_address && strncmp(out->ca_address, "https://", 8)) {
		snprintf(err, errlen, "%s: caAddress: \"%s\" is not an https:// URL", path,
			 out->ca_address);
		ret = -EINVAL;
		goto out;
	}
	ret = tunnel_conf_apply_defaults(path, out, err, errlen);
	if (!ret && strcmp(out->ca_protocol, "warren") && strcmp(out->ca_protocol, "istio")) {
		snprintf(err, errlen, "%s: caProtocol: \"%s\" is not \"warren\" (warren-ca) or \"istio\" "
			 "(Istio's IstioCertificateService)", path, out->ca_protocol);
		ret = -EINVAL;
	}
out:
	json_decref(objs);
	if (ret)
		tunnel_conf_free(out);
	return ret;
}

void tunnel_conf_free(struct tunnel_conf *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(tunnel_conf_keys); i++)
		if (tunnel_conf_keys[i].type == KT_STRING)
			free(*(char **)((char *)c + tunnel_conf_keys[i].off));
	memset(c, 0, sizeof(*c));
}
