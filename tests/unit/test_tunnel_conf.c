/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of conf/tunnel_conf.c: defaults, YAML and JSON, unknown keys,
 * wrong types, the required meshPath, the keepCapabilities boolean.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/tunnel_conf.h"
#include "conf/warren.h"
#include "tests/unit/t.h"

static char path[256];
static char err[512];

/* Writes text to a fresh temporary directory, loads it, removes both. path
 * keeps the name for the error messages. */
static int load_text(const char *text, struct tunnel_conf *c)
{
	char dir[] = "/tmp/warren-tconf.XXXXXX";
	FILE *f;
	int ret;

	if (!mkdtemp(dir))
		return -errno;
	snprintf(path, sizeof(path), "%s/tunnel.yaml", dir);
	f = fopen(path, "w");
	if (!f) {
		ret = -errno;
		rmdir(dir);
		return ret;
	}
	fputs(text, f);
	fclose(f);
	ret = tunnel_conf_load(path, c, err, sizeof(err));
	unlink(path);
	rmdir(dir);
	return ret;
}

static void test_defaults(void)
{
	struct tunnel_conf c;
	char host[HOST_NAME_MAX + 1] = "";

	unsetenv("NODE_NAME");
	T_ASSERT_INT(load_text("meshPath: /etc/warren/mesh.yaml\n", &c), 0);
	gethostname(host, sizeof(host));
	T_ASSERT_STR(c.node, host);
	T_ASSERT_STR(c.plugin_socket, DEFAULT_TUNNEL_SOCKET);
	T_ASSERT_STR(c.state_dir, DEFAULT_STATE_DIR);
	T_ASSERT_STR(c.mesh_path, "/etc/warren/mesh.yaml");
	T_ASSERT(!c.admin_address); /* TCP admin: none unless configured */
	T_ASSERT_STR(c.admin_socket, "/var/run/warren/admin.sock");
	T_ASSERT_STR(c.metrics_address, "0.0.0.0:15020");
	T_ASSERT_STR(c.readiness_address, "0.0.0.0:15021");
	T_ASSERT(!c.log_file);
	T_ASSERT_STR(c.trust_domain, "cluster.local");
	T_ASSERT_INT(c.log_level, WLOG_INFO);
	T_ASSERT_INT(c.mesh_reload_ms, 1000);
	T_ASSERT_STR(c.access_log, "stdout");
	T_ASSERT_STR(c.cluster_id, "Kubernetes");
	T_ASSERT(!c.ca_dir); /* plaintext mode */
	T_ASSERT_INT(c.cert_lifetime_s, 86400);
	T_ASSERT_STR(c.root_namespace, "istio-system");
	T_ASSERT_INT(c.pool_max_streams, 100);
	T_ASSERT_INT(c.pool_idle_timeout_ms, 300000);
	T_ASSERT_INT(c.hbone_ping_interval_ms, 10000);
	T_ASSERT(c.keep_capabilities); /* drop to the data path's set by default */
	tunnel_conf_free(&c);
	tunnel_conf_free(&c); /* idempotent */
}

static void test_all_keys_yaml(void)
{
	struct tunnel_conf c;

	T_ASSERT_INT(load_text("# tunnel for node-a\n"
			       "node: node-a\n"
			       "pluginSocket: /run/w/t.sock\n"
			       "stateDir: /tmp/state\n"
			       "meshPath: /tmp/mesh\n"
			       "adminAddress: 127.0.0.1:16000\n"
			       "adminSocket: /run/w/admin.sock\n"
			       "metricsAddress: 127.0.0.1:16020\n"
			       "readinessAddress: 127.0.0.1:16021\n"
			       "logLevel: debug\n"
			       "logFile: /tmp/t.log\n"
			       "trustDomain: example.org\n"
			       "meshReloadMs: 250\n"
			       "adminSocket:\n", &c),
		     -EINVAL); /* duplicate key */
	T_ASSERT(strstr(err, "duplicate key \"adminSocket\""));
	T_ASSERT(!c.node); /* zeroed on failure */

	T_ASSERT_INT(load_text("node: node-a\n"
			       "pluginSocket: /run/w/t.sock\n"
			       "stateDir: /tmp/state\n"
			       "meshPath: /tmp/mesh\n"
			       "adminAddress: 127.0.0.1:16000\n"
			       "adminSocket: /run/w/admin.sock\n"
			       "metricsAddress: 127.0.0.1:16020\n"
			       "readinessAddress: 127.0.0.1:16021\n"
			       "logLevel: debug\n"
			       "logFile: /tmp/t.log\n"
			       "trustDomain: example.org\n"
			       "meshReloadMs: 250\n"
			       "accessLog: /var/log/warren/access.log\n"
			       "clusterId: east\n", &c),
		     0);
	T_ASSERT_STR(c.node, "node-a");
	T_ASSERT_STR(c.plugin_socket, "/run/w/t.sock");
	T_ASSERT_STR(c.state_dir, "/tmp/state");
	T_ASSERT_STR(c.mesh_path, "/tmp/mesh");
	T_ASSERT_STR(c.admin_address, "127.0.0.1:16000");
	T_ASSERT_STR(c.admin_socket, "/run/w/admin.sock");
	T_ASSERT_STR(c.metrics_address, "127.0.0.1:16020");
	T_ASSERT_STR(c.readiness_address, "127.0.0.1:16021");
	T_ASSERT_INT(c.log_level, WLOG_DEBUG);
	T_ASSERT_STR(c.log_file, "/tmp/t.log");
	T_ASSERT_STR(c.trust_domain, "example.org");
	T_ASSERT_INT(c.mesh_reload_ms, 250);
	T_ASSERT_STR(c.access_log, "/var/log/warren/access.log");
	T_ASSERT_STR(c.cluster_id, "east");
	tunnel_conf_free(&c);
}

static void test_observe_keys(void)
{
	struct tunnel_conf c;

	T_ASSERT_INT(load_text("meshPath: /m\naccessLog: off\nmetricsAddress: off\n", &c), 0);
	T_ASSERT_STR(c.access_log, "off");
	T_ASSERT_STR(c.metrics_address, "off");
	T_ASSERT_STR(c.cluster_id, "Kubernetes");
	tunnel_conf_free(&c);
	T_ASSERT_INT(load_text("meshPath: /m\naccessLog: 1\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "accessLog: expected a string, got an integer"));
	T_ASSERT_INT(load_text("meshPath: /m\naccesslog: off\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "did you mean \"accessLog\"?"));
	T_ASSERT_INT(load_text("meshPath: /m\nclusterId: ''\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "clusterId: must not be empty"));
	T_ASSERT_INT(load_text("meshPath: /m\nbogus: 1\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "accessLog, clusterId"));
}

static void test_mtls_keys(void)
{
	struct tunnel_conf c;

	T_ASSERT_INT(load_text("meshPath: /m\ncaDir: /etc/warren/ca\ncertLifetimeSeconds: 60\n"
			       "rootNamespace: mesh-root\npoolMaxStreams: 7\npoolIdleTimeoutMs: 1500\n"
			       "hbonePingIntervalMs: 0\n", &c), 0);
	T_ASSERT_STR(c.ca_dir, "/etc/warren/ca");
	T_ASSERT_INT(c.cert_lifetime_s, 60);
	T_ASSERT_STR(c.root_namespace, "mesh-root");
	T_ASSERT_INT(c.pool_max_streams, 7);
	T_ASSERT_INT(c.pool_idle_timeout_ms, 1500);
	T_ASSERT_INT(c.hbone_ping_interval_ms, 0);
	tunnel_conf_free(&c);
	T_ASSERT_INT(load_text("meshPath: /m\ncertLifetimeSeconds: 59\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "certLifetimeSeconds: 59 is out of range (60-7776000)"));
	T_ASSERT_INT(load_text("meshPath: /m\npoolMaxStreams: 0\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "poolMaxStreams: 0 is out of range (1-10000)"));
	T_ASSERT_INT(load_text("meshPath: /m\ncaDir: 3\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "caDir: expected a string, got an integer"));
	T_ASSERT_INT(load_text("meshPath: /m\ncadir: /x\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "did you mean \"caDir\"?"));
	T_ASSERT_INT(load_text("meshPath: /m\nbogus: 1\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "caDir, caAddress, caProtocol, caTokenFile, trustBundle, mtls, certLifetimeSeconds, "
			     "rootNamespace, poolMaxStreams, poolIdleTimeoutMs, hbonePingIntervalMs"));
}

static void test_ca_client_keys(void)
{
	struct tunnel_conf c;

	T_ASSERT_INT(load_text("meshPath: /m\ncaAddress: https://warren-ca.warren-system.svc:15012\n"
			       "trustBundle: /etc/warren/bundle/roots.pem\n", &c), 0);
	T_ASSERT_STR(c.ca_address, "https://warren-ca.warren-system.svc:15012");
	T_ASSERT_STR(c.trust_bundle, "/etc/warren/bundle/roots.pem");
	T_ASSERT_STR(c.ca_token_file, "/var/run/secrets/warren-ca/token");
	T_ASSERT_STR(c.ca_protocol, "warren");
	tunnel_conf_free(&c);
	T_ASSERT_INT(load_text("meshPath: /m\ncaAddress: https://istiod.istio-system.svc:15012\n"
			       "caProtocol: istio\ntrustBundle: /b\n", &c), 0);
	T_ASSERT_STR(c.ca_protocol, "istio");
	tunnel_conf_free(&c);
	T_ASSERT_INT(load_text("meshPath: /m\ncaAddress: https://ca:1\ncaProtocol: grpc\ntrustBundle: /b\n",
			       &c), -EINVAL);
	T_ASSERT(strstr(err, "caProtocol: \"grpc\" is not"));
	T_ASSERT_INT(load_text("meshPath: /m\ncaAddress: https://ca:1\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "caAddress needs trustBundle"));
	T_ASSERT_INT(load_text("meshPath: /m\ntrustBundle: /b\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "trustBundle: only used with caAddress"));
	T_ASSERT_INT(load_text("meshPath: /m\ncaAddress: http://ca:1\ntrustBundle: /b\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "not an https:// URL"));
	T_ASSERT_INT(load_text("meshPath: /m\ncaAddress: https://ca:1\ntrustBundle: /b\ncaDir: /d\n", &c),
		     -EINVAL);
	T_ASSERT(strstr(err, "one certificate source only"));
}

/* Plaintext between enrolled pods is an explicit choice: mtls: disabled,
 * and never beside a caDir. */
static void test_mtls_disabled(void)
{
	struct tunnel_conf c;

	T_ASSERT_INT(load_text("meshPath: /m\n", &c), 0);
	T_ASSERT(!c.mtls_disabled);
	tunnel_conf_free(&c);
	T_ASSERT_INT(load_text("meshPath: /m\nmtls: disabled\n", &c), 0);
	T_ASSERT(c.mtls_disabled);
	tunnel_conf_free(&c);
	T_ASSERT_INT(load_text("meshPath: /m\nmtls: enabled\ncaDir: /ca\n", &c), 0);
	T_ASSERT(!c.mtls_disabled);
	tunnel_conf_free(&c);
	T_ASSERT_INT(load_text("meshPath: /m\nmtls: off\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "mtls: expected \"enabled\" or \"disabled\""));
	T_ASSERT_INT(load_text("meshPath: /m\nmtls: false\n", &c), -EINVAL);
	T_ASSERT_INT(load_text("meshPath: /m\nmtls: disabled\ncaDir: /ca\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "mtls: \"disabled\" contradicts caDir"));
}

static void test_keep_capabilities(void)
{
	struct tunnel_conf c;

	T_ASSERT_INT(load_text("meshPath: /m\nkeepCapabilities: false\n", &c), 0);
	T_ASSERT(!c.keep_capabilities);
	tunnel_conf_free(&c);
	T_ASSERT_INT(load_text("meshPath: /m\nkeepCapabilities: true\n", &c), 0);
	T_ASSERT(c.keep_capabilities);
	tunnel_conf_free(&c);
	T_ASSERT_INT(load_text("meshPath: /m\nkeepCapabilities:\n", &c), 0);
	T_ASSERT(c.keep_capabilities); /* null keeps the default */
	tunnel_conf_free(&c);
	T_ASSERT_INT(load_text("{\"meshPath\": \"/m\", \"keepCapabilities\": false}", &c), 0);
	T_ASSERT(!c.keep_capabilities);
	tunnel_conf_free(&c);
	T_ASSERT_INT(load_text("meshPath: /m\nkeepCapabilities: 'no'\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "keepCapabilities: expected true or false, got a string"));
	T_ASSERT_INT(load_text("meshPath: /m\nkeepCapabilities: 0\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "keepCapabilities: expected true or false, got an integer"));
	T_ASSERT_INT(load_text("meshPath: /m\nkeepcapabilities: false\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "did you mean \"keepCapabilities\"?"));
	T_ASSERT_INT(load_text("meshPath: /m\nbogus: 1\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "hbonePingIntervalMs, keepCapabilities"));
}

/* An int key: "meshPath: /m" plus "KEY: VALUE" (no key line when value is
 * NULL) loads, and the int at offset off of the result reads want. */
static void int_key_reads(const char *key, size_t off, const char *value, int want)
{
	struct tunnel_conf c;
	char text[128];

	snprintf(text, sizeof(text), "meshPath: /m\n%s%s%s\n", value ? key : "", value ? ": " : "",
		 value ? value : "");
	T_ASSERT_INT(load_text(text, &c), 0);
	T_ASSERT_INT(*(const int *)((const char *)&c + off), want);
	tunnel_conf_free(&c);
}

/* "KEY: VALUE" is refused, with an error that contains msg. */
static void int_key_refused(const char *key, const char *value, const char *msg)
{
	struct tunnel_conf c;
	char text[128];

	snprintf(text, sizeof(text), "meshPath: /m\n%s: %s\n", key, value);
	T_ASSERT_INT(load_text(text, &c), -EINVAL);
	T_ASSERT(strstr(err, msg));
}

static void test_adopt_batch(void)
{
	const size_t off = offsetof(struct tunnel_conf, adopt_batch);

	int_key_reads("adoptBatch", off, NULL, 16);
	int_key_reads("adoptBatch", off, "1", 1);
	int_key_refused("adoptBatch", "0", "adoptBatch");
	int_key_refused("adoptBatch", "many", "adoptBatch");
}

static void test_worker_threads(void)
{
	const size_t off = offsetof(struct tunnel_conf, worker_threads);

	int_key_reads("workerThreads", off, NULL, 2);
	int_key_reads("workerThreads", off, "1", 1);
	int_key_reads("workerThreads", off, "64", 64);
	int_key_refused("workerThreads", "0", "workerThreads: 0 is out of range (1-64)");
	int_key_refused("workerThreads", "65", "workerThreads: 65 is out of range (1-64)");
	int_key_refused("workerthreads", "3", "did you mean \"workerThreads\"?");
	int_key_refused("bogus", "1", "hbonePingIntervalMs, keepCapabilities");
}

static void test_host_probe_keys(void)
{
	const size_t off = offsetof(struct tunnel_conf, kubelet_uid);
	struct tunnel_conf c;

	T_ASSERT_INT(load_text("meshPath: /m\n", &c), 0);
	T_ASSERT(c.host_probe_snat);
	tunnel_conf_free(&c);
	T_ASSERT_INT(load_text("meshPath: /m\nhostProbeSnat: false\n", &c), 0);
	T_ASSERT(!c.host_probe_snat);
	tunnel_conf_free(&c);
	T_ASSERT_INT(load_text("meshPath: /m\nhostProbeSnat: 'off'\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "hostProbeSnat: expected true or false, got a string"));
	int_key_reads("kubeletUid", off, NULL, -1); /* unset: found at start */
	int_key_reads("kubeletUid", off, "0", 0);
	int_key_reads("kubeletUid", off, "4321", 4321);
	int_key_refused("kubeletUid", "-1", "kubeletUid: -1 is out of range (0-2147483647)");
	int_key_refused("kubeletUid", "kubelet", "kubeletUid: expected an integer, got a string");
	int_key_refused("kubeletUID", "0", "did you mean \"kubeletUid\"?");
}

static void test_hbone_pending(void)
{
	int_key_reads("hboneHandshakeTimeoutMs", offsetof(struct tunnel_conf, hbone_handshake_timeout_ms),
		      NULL, 5000);
	int_key_refused("hboneHandshakeTimeoutMs", "100",
			"hboneHandshakeTimeoutMs: 100 is out of range (500-60000)");
	int_key_reads("hboneMaxPendingHandshakes", offsetof(struct tunnel_conf, hbone_max_pending),
		      NULL, 128);
	int_key_reads("hboneMaxPendingPerSource", offsetof(struct tunnel_conf, hbone_max_pending_source),
		      "4", 4);
	int_key_refused("hboneMaxPendingPerSource", "0", "hboneMaxPendingPerSource: 0 is out of range (1-65536)");
}

static void test_drain_seconds(void)
{
	const size_t off = offsetof(struct tunnel_conf, drain_seconds);

	int_key_reads("drainSeconds", off, NULL, 25); /* ztunnel's: a 30 s grace period less 5 */
	int_key_reads("drainSeconds", off, "0", 0);
	int_key_reads("drainSeconds", off, "3600", 3600);
	int_key_refused("drainSeconds", "-1", "drainSeconds: -1 is out of range (0-3600)");
	int_key_refused("drainSeconds", "3601", "drainSeconds: 3601 is out of range (0-3600)");
}

static void test_json(void)
{
	struct tunnel_conf c;

	T_ASSERT_INT(load_text("{\"meshPath\": \"/m\", \"logLevel\": \"warn\", \"adminSocket\": null}", &c), 0);
	T_ASSERT_STR(c.mesh_path, "/m");
	T_ASSERT_INT(c.log_level, WLOG_WARN);
	T_ASSERT_STR(c.admin_socket, DEFAULT_ADMIN_SOCKET); /* null: the default */
	tunnel_conf_free(&c);
}

struct bad {
	const char *text;
	const char *msg; /* after "<path>: " */
};

static void test_errors(void)
{
	static const struct bad cases[] = {
		{ "node: a\n", "meshPath: required (a file or directory of Kubernetes objects)" },
		{ "meshPath: /m\nmeshpath: /n\n", "unknown key \"meshpath\" (did you mean \"meshPath\"?)" },
		{ "meshPath: /m\nfoo: 1\n", "unknown key \"foo\"; known keys: " },
		{ "meshPath: 42\n", "meshPath: expected a string, got an integer" },
		{ "meshPath: /m\nmeshReloadMs: fast\n", "meshReloadMs: expected an integer, got a string" },
		{ "meshPath: /m\nmeshReloadMs: '100'\n", "meshReloadMs: expected an integer, got a string" },
		{ "meshPath: /m\nmeshReloadMs: 0\n", "meshReloadMs: 0 is out of range (1-3600000)" },
		{ "meshPath: /m\nlogLevel: loud\n", "logLevel: \"loud\" is not one of error, warn, info, debug" },
		{ "meshPath: /m\nlogLevel: 3\n", "logLevel: expected a string (error|warn|info|debug), got an integer" },
		{ "meshPath: /m\nnode: [a]\n", "node: expected a string, got a list" },
		{ "meshPath: ''\n", "meshPath: must not be empty (remove the key for the default)" },
		{ "meshPath: /m\n---\nnode: x\n", "expected exactly one mapping of settings, found 2 documents" },
		{ "", "expected exactly one mapping of settings, found 0 documents" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tunnel_conf c;
		char want[512];

		T_ASSERT_INT(load_text(cases[i].text, &c), -EINVAL);
		snprintf(want, sizeof(want), "%s: %s", path, cases[i].msg);
		if (strncmp(err, want, strlen(want)))
			printf("# case %zu: got \"%s\"\n", i, err);
		T_ASSERT(!strncmp(err, want, strlen(want)));
	}

	/* syntax errors carry the position */
	struct tunnel_conf c;
	T_ASSERT_INT(load_text("meshPath: /m\nnode: a: b\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "tunnel.yaml:2:"));
	T_ASSERT_INT(tunnel_conf_load("/nonexistent/warren.yaml", &c, err, sizeof(err)), -ENOENT);
	T_ASSERT(strstr(err, "/nonexistent/warren.yaml"));
}

static void test_mesh_source(void)
{
	struct tunnel_conf c;

	T_ASSERT_INT(load_text("meshPath: /m\n", &c), 0);
	T_ASSERT_STR(c.mesh_source, "file");
	T_ASSERT(!c.kube);
	tunnel_conf_free(&c);
	T_ASSERT_INT(load_text("meshSource: kubernetes\n", &c), 0);
	T_ASSERT(c.kube);
	T_ASSERT(!c.mesh_path);
	T_ASSERT(!c.kubeconfig);
	tunnel_conf_free(&c);
	T_ASSERT_INT(load_text("meshSource: kubernetes\nkubeconfig: /etc/k.yaml\n", &c), 0);
	T_ASSERT_STR(c.kubeconfig, "/etc/k.yaml");
	tunnel_conf_free(&c);
	T_ASSERT_INT(load_text("meshSource: etcd\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "meshSource: \"etcd\" is not one of file, kubernetes"));
	T_ASSERT_INT(load_text("meshSource: kubernetes\nmeshPath: /m\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "meshPath: not used with meshSource: kubernetes"));
	T_ASSERT_INT(load_text("meshPath: /m\nkubeconfig: /k\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "kubeconfig: only used with meshSource: kubernetes"));
	T_ASSERT_INT(load_text("node: x\n", &c), -EINVAL);
	T_ASSERT(strstr(err, "or set meshSource: kubernetes"));
}

/* a DaemonSet passes spec.nodeName as NODE_NAME; the key still wins */
static void test_node_name_env(void)
{
	struct tunnel_conf c;

	setenv("NODE_NAME", "node-from-env", 1);
	T_ASSERT_INT(load_text("meshPath: /m\n", &c), 0);
	T_ASSERT_STR(c.node, "node-from-env");
	tunnel_conf_free(&c);
	T_ASSERT_INT(load_text("meshPath: /m\nnode: node-a\n", &c), 0);
	T_ASSERT_STR(c.node, "node-a");
	tunnel_conf_free(&c);
	unsetenv("NODE_NAME");
}

T_MAIN(T_CASE(test_defaults), T_CASE(test_node_name_env), T_CASE(test_all_keys_yaml), T_CASE(test_json), T_CASE(test_errors),
       T_CASE(test_observe_keys), T_CASE(test_mtls_keys), T_CASE(test_ca_client_keys), T_CASE(test_mtls_disabled),
       T_CASE(test_keep_capabilities),
       T_CASE(test_adopt_batch), T_CASE(test_worker_threads), T_CASE(test_host_probe_keys),
       T_CASE(test_drain_seconds), T_CASE(test_mesh_source), T_CASE(test_hbone_pending))
