/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of conf/kube.c: kubeconfig contexts, relative paths, base64
 * data, refused exec plugins, in-cluster files and environment, token
 * reading, watch event lines (410 in the stream), backoff bounds and
 * jitter, store keys, and list items (no kind) going through the model
 * builder once trimmed; what a relist keeps of an object: what the model
 * never reads cut from the text (refused exactly when jansson refuses it,
 * the same compact pod and model after), pods compacted to the fields the builder reads
 * (the same model as the whole pod), events that change nothing, and the
 * builder's per-object check agreeing with mesh_build().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/kube.h"
#include "conf/kube_prune.h"
#include "model/mesh.h"
#include "tunnel/kube_watch.h"
#include "tests/unit/t.h"

static char dir[] = "/tmp/warren-kube.XXXXXX";
static char err[512];

static const char *put(const char *name, const char *text)
{
	static char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	if (!f)
		return NULL;
	fputs(text, f);
	fclose(f);
	return p;
}

/* Contexts and clusters; the tests add the users. */
#define KC_HEAD                                                                     \
	"apiVersion: v1\nkind: Config\ncurrent-context: b\n"                        \
	"contexts:\n"                                                               \
	"- name: a\n  context: {cluster: one, user: tok}\n"                         \
	"- name: b\n  context: {cluster: two, user: cert, namespace: shop}\n"       \
	"clusters:\n"                                                               \
	"- name: one\n  cluster: {server: 'https://10.0.0.1:6443'}\n"               \
	"- name: two\n  cluster:\n    server: https://127.0.0.1:6443/\n"            \
	"    certificate-authority: pki/ca.crt\n"                                   \
	"    certificate-authority-data: aGVsbG8=\n"
static const char kc_head[] = KC_HEAD;

static void test_kubeconfig(void)
{
	struct kube_creds c;
	char want[600];
	const char *p;

	p = put("kc.yaml", KC_HEAD
			   "users:\n"
			   "- name: tok\n  user: {token: abc}\n"
			   "- name: cert\n  user:\n    client-certificate: /etc/c.pem\n"
			   "    client-key-data: a2V5IQ==\n    tokenFile: tok\n");
	T_ASSERT(p);
	T_ASSERT_INT(kube_config_load(p, &c, err, sizeof(err)), 0);
	T_ASSERT_STR(c.server, "https://127.0.0.1:6443");
	snprintf(want, sizeof(want), "%s/pki/ca.crt", dir);
	T_ASSERT_STR(c.ca_file, want);
	T_ASSERT_STR(c.ca_pem, "hello");
	T_ASSERT_STR(c.cert_file, "/etc/c.pem");
	T_ASSERT_STR(c.key_pem, "key!");
	snprintf(want, sizeof(want), "%s/tok", dir);
	T_ASSERT_STR(c.token_file, want);
	T_ASSERT(!c.token);
	T_ASSERT_STR(c.namespace, "shop");
	T_ASSERT(!c.insecure);
	kube_creds_free(&c);
	T_ASSERT(!c.server);
}

static void test_kubeconfig_errors(void)
{
	static const struct {
		const char *tail, *msg;
	} cases[] = {
		{ "users:\n- name: cert\n  user: {exec: {command: aws}}\n",
		  "exec and auth-provider plugins are not supported" },
		{ "users:\n- name: other\n  user: {token: x}\n", "no user named \"cert\"" },
		{ "users:\n- name: cert\n  user: {client-certificate: /c}\n",
		  "a client certificate needs its key" },
		{ "users:\n- name: cert\n  user: {client-key-data: 'a=b'}\n", "client-key-data: not valid base64" },
	};
	struct kube_creds c;
	char text[2048];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "%s%s", kc_head, cases[i].tail);
		T_ASSERT_INT(kube_config_load(put("bad.yaml", text), &c, err, sizeof(err)), -EINVAL);
		if (!strstr(err, cases[i].msg))
			printf("#   case %zu: %s\n", i, err);
		T_ASSERT(strstr(err, cases[i].msg));
		T_ASSERT(!c.server); /* nothing half-filled */
	}
	T_ASSERT_INT(kube_config_load(put("bad.yaml", "current-context: x\n"), &c, err, sizeof(err)),
		     -EINVAL);
	T_ASSERT(strstr(err, "no context named \"x\""));
	T_ASSERT_INT(kube_config_load(put("bad.yaml", "kind: Config\n"), &c, err, sizeof(err)), -EINVAL);
	T_ASSERT(strstr(err, "current-context: not set"));
	T_ASSERT_INT(kube_config_load(put("bad.yaml",
					  "current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n"
					  "clusters: [{name: c, cluster: {server: 'http://x'}}]\n"),
				      &c, err, sizeof(err)),
		     -EINVAL);
	T_ASSERT(strstr(err, "must be an https:// URL"));
	T_ASSERT_INT(kube_config_load("/nonexistent/kc", &c, err, sizeof(err)), -ENOENT);
}

static void test_incluster(void)
{
	struct kube_creds c;
	char sa[600], *tok = NULL;

	snprintf(sa, sizeof(sa), "%s/sa", dir);
	T_ASSERT(mkdir(sa, 0700) == 0);
	unsetenv("KUBERNETES_SERVICE_HOST");
	T_ASSERT_INT(kube_config_incluster(sa, &c, err, sizeof(err)), -EINVAL);
	T_ASSERT(strstr(err, "KUBERNETES_SERVICE_HOST"));
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	/* no token file yet */
	T_ASSERT_INT(kube_config_incluster(sa, &c, err, sizeof(err)), -ENOENT);
	T_ASSERT(put("sa/token", "  eyJtoken\n"));
	T_ASSERT_INT(kube_config_incluster(sa, &c, err, sizeof(err)), -ENOENT); /* no ca.crt */
	T_ASSERT(strstr(err, "ca.crt"));
	T_ASSERT(put("sa/ca.crt", "-----BEGIN CERTIFICATE-----\n"));
	T_ASSERT(put("sa/namespace", "warren-system"));
	T_ASSERT_INT(kube_config_incluster(sa, &c, err, sizeof(err)), 0);
	T_ASSERT_STR(c.server, "https://[fd00::1]:443");
	T_ASSERT_STR(c.namespace, "warren-system");
	T_ASSERT(!c.token); /* read per request from token_file */
	T_ASSERT(strstr(c.token_file, "/sa/token"));
	T_ASSERT_INT(kube_token_read(c.token_file, &tok, err, sizeof(err)), 0);
	T_ASSERT_STR(tok, "eyJtoken");
	free(tok);
	kube_creds_free(&c);
	T_ASSERT(put("sa/token", "a\nb\n"));
	T_ASSERT_INT(kube_token_read(put("sa/token", "a\nb\n"), &tok, err, sizeof(err)), -EINVAL);
	T_ASSERT_INT(kube_token_read(put("sa/token", "\n \n"), &tok, err, sizeof(err)), -EINVAL);
	setenv("KUBERNETES_SERVICE_PORT", "44x", 1);
	T_ASSERT_INT(kube_config_incluster(sa, &c, err, sizeof(err)), -EINVAL);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

static void test_events(void)
{
	struct kube_event ev;
	const char *l;

	l = "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\",\"namespace\":\"n\",\"resourceVersion\":\"42\"}}}";
	T_ASSERT_INT(kube_event_parse(l, strlen(l), &ev, err, sizeof(err)), 0);
	T_ASSERT_INT(ev.type, KEV_ADDED);
	T_ASSERT_STR(ev.rv, "42");
	T_ASSERT_INT(ev.code, 0);
	json_decref(ev.object);

	l = "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"resourceVersion\":\"99\"}}}";
	T_ASSERT_INT(kube_event_parse(l, strlen(l), &ev, err, sizeof(err)), 0);
	T_ASSERT_INT(ev.type, KEV_BOOKMARK);
	T_ASSERT_STR(ev.rv, "99");
	json_decref(ev.object);

	/* the apiserver's way of saying 410 inside a 200 stream */
	l = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
	    "\"message\":\"too old resource version: 5 (80)\",\"reason\":\"Expired\",\"code\":410}}";
	T_ASSERT_INT(kube_event_parse(l, strlen(l), &ev, err, sizeof(err)), 0);
	T_ASSERT_INT(ev.type, KEV_ERROR);
	T_ASSERT_INT(ev.code, 410);
	T_ASSERT(!ev.rv);
	json_decref(ev.object);

	l = "{\"type\":\"DELETED\",\"object\":{}}";
	T_ASSERT_INT(kube_event_parse(l, strlen(l), &ev, err, sizeof(err)), 0);
	T_ASSERT_INT(ev.type, KEV_DELETED);
	T_ASSERT(!ev.rv);
	json_decref(ev.object);

	l = "{\"type\":\"ADDED\",\"obj";
	T_ASSERT_INT(kube_event_parse(l, strlen(l), &ev, err, sizeof(err)), -EINVAL);
	T_ASSERT(strstr(err, "not JSON"));
	l = "{\"type\":\"RENAMED\",\"object\":{}}";
	T_ASSERT_INT(kube_event_parse(l, strlen(l), &ev, err, sizeof(err)), -EINVAL);
	T_ASSERT(strstr(err, "unknown type \"RENAMED\""));
	l = "{\"type\":\"ADDED\",\"object\":[]}";
	T_ASSERT_INT(kube_event_parse(l, strlen(l), &ev, err, sizeof(err)), -EINVAL);
	l = "{\"type\":\"ADDED\",\"type\":\"DELETED\",\"object\":{}}";
	T_ASSERT_INT(kube_event_parse(l, strlen(l), &ev, err, sizeof(err)), -EINVAL);
	T_ASSERT_STR(kube_event_type_name(KEV_BOOKMARK), "BOOKMARK");
}

static void test_backoff(void)
{
	uint64_t lo, hi;

	/* attempt 0: in [base/2, base] */
	T_ASSERT_INT(kube_backoff_ms(0, 250, 30000, 0), 125);
	T_ASSERT_INT(kube_backoff_ms(0, 250, 30000, 125), 250);
	T_ASSERT_INT(kube_backoff_ms(0, 250, 30000, 126), 125);
	/* doubles, then stays under max */
	T_ASSERT_INT(kube_backoff_ms(3, 250, 30000, 0), 1000);
	for (unsigned a = 0; a < 40; a++) {
		for (uint32_t r = 0; r < 100000; r += 777) {
			uint64_t d = kube_backoff_ms(a, 250, 30000, r * 2654435761u);

			T_ASSERT(d >= 125 && d <= 30000);
		}
	}
	T_ASSERT_INT(kube_backoff_ms(100, 250, 30000, 0), 15000);
	/* jitter spreads: two random values rarely coincide over a range */
	lo = kube_backoff_ms(10, 250, 30000, 1);
	hi = kube_backoff_ms(10, 250, 30000, 14000);
	T_ASSERT(lo != hi);
	T_ASSERT_INT(kube_backoff_ms(0, 0, 10, 5), 1);
}

/* Coalescing: a change after a quiet spell is built at once, a burst at
 * most once per window, a simulated stream never more often. */
static void test_rebuild_delay(void)
{
	uint64_t last = 0, due = 0, builds = 0, now;
	bool armed = false;

	T_ASSERT_INT(kube_rebuild_delay(1000, 0, 50), 0);
	T_ASSERT_INT(kube_rebuild_delay(1000, 900, 50), 0);
	T_ASSERT_INT(kube_rebuild_delay(1000, 950, 50), 0);
	T_ASSERT_INT(kube_rebuild_delay(1000, 980, 50), 30);
	T_ASSERT_INT(kube_rebuild_delay(1000, 1000, 50), 50);
	T_ASSERT_INT(kube_rebuild_delay(1000, 2000, 50), 0); /* a clock that went back */
	/* an event every 3 ms for 3 s, as kw_changed and kw_rebuild_cb use it */
	for (now = 1; now <= 3000; now++) {
		if (armed && now >= due) {
			T_ASSERT(!last || now - last >= 50);
			last = now;
			builds++;
			armed = false;
		}
		if (now % 3 == 0 && !armed) {
			due = now + kube_rebuild_delay(now, last, 50);
			armed = true;
		}
	}
	T_ASSERT(builds >= 3000 / 51 && builds <= 3000 / 50 + 1);
}

static void test_store_objects(void)
{
	json_t *o = json_loads("{\"metadata\":{\"name\":\"web-1\",\"namespace\":\"shop\","
			       "\"managedFields\":[{\"manager\":\"kubectl\"}],\"labels\":{\"app\":\"web\"}},"
			       "\"spec\":{\"nodeName\":\"n1\"},\"status\":{\"podIP\":\"10.1.0.5\"}}",
			       0, NULL);
	json_t *arr;
	struct mesh *m = NULL;
	char key[64];

	T_ASSERT(o);
	T_ASSERT_INT(kube_obj_key(o, key, sizeof(key)), 0);
	T_ASSERT_STR(key, "shop/web-1");
	T_ASSERT_INT(kube_obj_key(o, key, 5), -EINVAL);
	/* a list's items carry no kind: the builder would refuse them */
	arr = json_pack("[O]", o);
	T_ASSERT_INT(mesh_build(arr, "api", &m, err, sizeof(err)), -EINVAL);
	kube_obj_trim(o, "v1", "Pod");
	T_ASSERT(!json_object_get(json_object_get(o, "metadata"), "managedFields"));
	T_ASSERT_INT(mesh_build(arr, "api", &m, err, sizeof(err)), 0);
	T_ASSERT_INT(m->n_pods, 1);
	T_ASSERT_STR(m->pods[0].name, "web-1");
	mesh_free(m);
	/* kind already set is kept */
	kube_obj_trim(o, "v2", "Other");
	T_ASSERT_STR(json_string_value(json_object_get(o, "kind")), "Pod");
	json_decref(arr);
	json_decref(o);
	o = json_loads("{\"metadata\":{\"name\":\"shop\"}}", 0, NULL);
	T_ASSERT_INT(kube_obj_key(o, key, sizeof(key)), 0);
	T_ASSERT_STR(key, "shop");
	T_ASSERT(!kube_obj_rv(o));
	json_decref(o);
}

/* The Kubernetes source watches what the model reads: the Gateway API's
 * kinds (waypoints, their routes) as optional CRDs like Istio's, v1 then
 * v1beta1; and their list items (no kind) build once trimmed. */
static void test_watched_kinds(void)
{
	static const struct {
		const char *kind, *plural, *prefix0;
		bool optional;
	} want[] = {
		{ "Pod", "pods", "/api/v1", false },
		{ "AuthorizationPolicy", "authorizationpolicies", "/apis/security.istio.io/v1", true },
		{ "Gateway", "gateways", "/apis/gateway.networking.k8s.io/v1", true },
		{ "HTTPRoute", "httproutes", "/apis/gateway.networking.k8s.io/v1", true },
	};
	const char *plural;
	const char *const *prefix;
	bool optional;
	json_t *gw, *rt, *arr;
	struct mesh *m = NULL;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		T_ASSERT(kube_watch_resource(want[i].kind, &plural, &prefix, &optional));
		T_ASSERT_STR(plural, want[i].plural);
		T_ASSERT_STR(prefix[0], want[i].prefix0);
		T_ASSERT_INT(optional, want[i].optional);
	}
	T_ASSERT(kube_watch_resource("HTTPRoute", &plural, &prefix, &optional));
	T_ASSERT_STR(prefix[1], "/apis/gateway.networking.k8s.io/v1beta1");
	T_ASSERT(!kube_watch_resource("GRPCRoute", &plural, &prefix, &optional));

	gw = json_loads("{\"metadata\":{\"name\":\"waypoint\",\"namespace\":\"shop\"},"
			"\"spec\":{\"gatewayClassName\":\"istio-waypoint\",\"listeners\":"
			"[{\"name\":\"mesh\",\"port\":15008,\"protocol\":\"HBONE\"}]},\"status\":{}}", 0, NULL);
	rt = json_loads("{\"metadata\":{\"name\":\"r\",\"namespace\":\"shop\"},\"spec\":{\"parentRefs\":"
			"[{\"group\":\"\",\"kind\":\"Service\",\"name\":\"web\"}],\"rules\":[{\"matches\":"
			"[{\"path\":{\"type\":\"PathPrefix\",\"value\":\"/\"}}],\"backendRefs\":[{\"group\":\"\","
			"\"kind\":\"Service\",\"name\":\"web\",\"port\":80,\"weight\":1}]}]},\"status\":{}}",
			0, NULL);
	T_ASSERT(gw && rt);
	kube_obj_trim(gw, "gateway.networking.k8s.io/v1", "Gateway");
	kube_obj_trim(rt, "gateway.networking.k8s.io/v1", "HTTPRoute");
	T_ASSERT_INT(mesh_check_object(rt, "api", err, sizeof(err)), 0);
	arr = json_pack("[o, o]", gw, rt);
	T_ASSERT_INT(mesh_build(arr, "api", &m, err, sizeof(err)), 0);
	T_ASSERT_INT(m->n_gateways, 1);
	T_ASSERT(m->gateways[0].waypoint);
	T_ASSERT_INT(m->n_httproutes, 1);
	mesh_free(m);
	json_decref(arr);
}

static const char full_pod[] =
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web-1\",\"namespace\":\"shop\","
	"\"uid\":\"u-1\",\"resourceVersion\":\"9\",\"generation\":1,\"creationTimestamp\":\"2026-01-01T00:00:00Z\","
	"\"labels\":{\"app\":\"web\",\"istio.io/dataplane-mode\":\"ambient\"},"
	"\"annotations\":{\"ambient.istio.io/bypass-inbound-capture\":\"true\"},"
	"\"ownerReferences\":[{\"kind\":\"ReplicaSet\",\"name\":\"web\"}]},"
	"\"spec\":{\"nodeName\":\"n1\",\"serviceAccountName\":\"web-sa\",\"serviceAccount\":\"old\","
	"\"hostNetwork\":false,\"dnsPolicy\":\"ClusterFirst\",\"tolerations\":[{\"key\":\"k\"}],"
	"\"containers\":[{\"name\":\"app\",\"image\":\"i\",\"ports\":[{\"name\":\"http\",\"containerPort\":8080},"
	"{\"containerPort\":9090,\"protocol\":\"UDP\"}],\"resources\":{}}],"
	"\"initContainers\":[{\"name\":\"side\",\"restartPolicy\":\"Always\",\"ports\":[{\"name\":\"m\",\"containerPort\":15000}]},"
	"{\"name\":\"init\",\"ports\":[{\"name\":\"x\",\"containerPort\":1}]}]},"
	"\"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.0.5\",\"podIPs\":[{\"ip\":\"10.1.0.5\"},{\"ip\":\"fd00::5\"}],"
	"\"qosClass\":\"BestEffort\",\"hostIP\":\"192.0.2.1\","
	"\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\",\"lastProbeTime\":null},"
	"{\"type\":\"PodScheduled\",\"status\":\"True\"}],\"containerStatuses\":[{\"name\":\"app\",\"ready\":false}]}}";

static void same_pod(const struct mesh_pod *x, const struct mesh_pod *y)
{
	T_ASSERT_STR(x->name, y->name);
	T_ASSERT_STR(x->namespace, y->namespace);
	T_ASSERT_STR(x->uid, y->uid);
	T_ASSERT_STR(x->service_account, y->service_account);
	T_ASSERT_STR(x->node, y->node);
	T_ASSERT_INT(x->host_network, y->host_network);
	T_ASSERT_INT(x->ready, y->ready);
	T_ASSERT_INT(x->running, y->running);
	T_ASSERT_INT(x->finished, y->finished);
	T_ASSERT_INT(x->labels.n, y->labels.n);
	T_ASSERT_INT(x->annotations.n, y->annotations.n);
	T_ASSERT_INT(x->n_ips, y->n_ips);
	T_ASSERT(!memcmp(x->ips, y->ips, x->n_ips * sizeof(*x->ips)));
	T_ASSERT_INT(x->n_ports, y->n_ports);
	for (size_t i = 0; i < x->n_ports; i++) {
		T_ASSERT_INT(x->ports[i].port, y->ports[i].port);
		T_ASSERT_STR(x->ports[i].name, y->ports[i].name);
		T_ASSERT_STR(x->ports[i].protocol, y->ports[i].protocol);
	}
}

/* mesh_build() of [a] and of [b]: both fail with the same message, or
 * both give the same pods */
static void same_model(json_t *a, json_t *b)
{
	char e1[512] = "", e2[512] = "", e3[512] = "";
	struct mesh *m1 = NULL, *m2 = NULL;
	json_t *x = json_pack("[O]", a), *y = json_pack("[O]", b);
	int r1 = mesh_build(x, "api", &m1, e1, sizeof(e1));
	int r2 = mesh_build(y, "api", &m2, e2, sizeof(e2));

	T_ASSERT_INT(r1, r2);
	T_ASSERT_STR(e1, e2);
	/* the per-object check says what the builder says */
	T_ASSERT_INT(mesh_check_object(b, "api", e3, sizeof(e3)), r2);
	T_ASSERT_STR(e3, e2);
	if (!r1) {
		T_ASSERT_INT(m1->n_pods, m2->n_pods);
		for (size_t i = 0; i < m1->n_pods; i++)
			same_pod(&m1->pods[i], &m2->pods[i]);
	}
	mesh_free(m1);
	mesh_free(m2);
	json_decref(x);
	json_decref(y);
}

/* prune(in) gives want (NULL: refused), and jansson agrees: it reads in
 * exactly when prune accepts it */
static void prune_case(const char *in, enum kube_prune_what what, bool pod, const char *want)
{
	char buf[8192];
	size_t n = strlen(in), len, bad = 0;
	json_t *j = json_loads(in, 0, NULL);
	int ret;

	snprintf(buf, sizeof(buf), "%s", in);
	ret = kube_json_prune(buf, n, what, pod, &len, &bad);
	if (ret != (want ? 0 : -1))
		printf("#   the case: %s\n", in);
	T_ASSERT_INT(ret, want ? 0 : -1);
	T_ASSERT_INT(!!j, !!want);
	json_decref(j);
	if (want) {
		buf[len] = '\0';
		T_ASSERT_STR(buf, want);
	} else {
		T_ASSERT(bad <= n);
	}
}

/* objects nested d deep in a cut member */
static char *deep(size_t d)
{
	char *s = malloc(2 * d + 64);
	size_t o = (size_t)sprintf(s, "{\"items\":[{\"metadata\":{\"managedFields\":");

	for (size_t i = 0; i < d; i++)
		s[o++] = '[';
	for (size_t i = 0; i < d; i++)
		s[o++] = ']';
	strcpy(s + o, "}}]}");
	return s;
}

static void test_prune_syntax(void)
{
	static const char *const refused[] = {
		"[}", "[1,]", "{\"a\":1,}", "01", "-", "1.", "1e", ".5", "tru", "nul", "truex",
		"\"\\x\"", "\"\\u12\"", "\"\\u0000\"", "\"\\udc00\"", "\"\\ud800\"", "\"\\ud800\\u0041\"",
		"\"a\x01\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf5\x80\x80\x80\"", "\"\xe2\x82\"",
		"1e999", "-1e999", "9223372036854775808", "-9223372036854775809",
		"123456789012345678901234567890", "{\"a\" 1}", "{1:2}", "[1 2]", "\"abc",
	};
	static const char *const kept[] = {
		"[]", "{}", "[1,-0,0.5e-3,2E+2,true,false,null]", "\"\\\" ] } \\\\\"",
		"\"\\ud83d\\ude00 \xe2\x82\xac \xf0\x9f\x98\x80 \\/\\b\\f\\n\\r\\t\"", "1e-999",
		"9223372036854775807", "-9223372036854775808", "{\"k:{\\\"x\\\":\\\"]}\\\"}\":{}}",
		" [ { \"a\" : [ ] } ] ",
	};
	char in[512], *d;
	size_t len, bad;

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		snprintf(in, sizeof(in), "{\"items\":[{\"metadata\":{\"name\":\"a\",\"managedFields\":%s}}]}",
			 refused[i]);
		prune_case(in, KUBE_PRUNE_LIST, false, NULL);
		snprintf(in, sizeof(in), "{\"object\":{\"spec\":{\"volumes\":%s}}}", refused[i]);
		prune_case(in, KUBE_PRUNE_EVENT, true, NULL);
	}
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
		snprintf(in, sizeof(in), "{\"items\":[{\"metadata\":{\"name\":\"a\",\"managedFields\":%s}}]}",
			 kept[i]);
		prune_case(in, KUBE_PRUNE_LIST, false, "{\"items\":[{\"metadata\":{\"name\":\"a\"}}]}");
		snprintf(in, sizeof(in), "{\"items\":[{\"metadata\":{\"name\":\"a\",\"labels\":{\"x\":%s}}}]}",
			 kept[i]);
		prune_case(in, KUBE_PRUNE_LIST, false, in);
	}
	/* jansson's depth limit (2048 containers) holds in what is cut */
	d = deep(2044);
	prune_case(d, KUBE_PRUNE_LIST, false, "{\"items\":[{\"metadata\":{}}]}");
	free(d);
	d = deep(2045);
	prune_case(d, KUBE_PRUNE_LIST, false, NULL);
	free(d);
	/* no object: left for jansson to judge; what follows the value too */
	prune_case("[1]", KUBE_PRUNE_LIST, true, "[1]");
	strcpy(in, "{\"items\" : [] } x");
	T_ASSERT_INT(kube_json_prune(in, strlen(in), KUBE_PRUNE_LIST, true, &len, &bad), 0);
	in[len] = '\0';
	T_ASSERT_STR(in, "{\"items\":[]} x");
	T_ASSERT_INT(kube_json_prune(in, 0, KUBE_PRUNE_LIST, true, &len, &bad), 0);
	T_ASSERT_INT(len, 0);
}

static void test_prune_objects(void)
{
	/* first, last, only member; whitespace; the key escaped; another parent */
	prune_case("{\"items\":[{\"metadata\":{\"managedFields\":[{}],\"name\":\"a\"}}]}", KUBE_PRUNE_LIST,
		   false, "{\"items\":[{\"metadata\":{\"name\":\"a\"}}]}");
	prune_case("{\"items\" : [ {\"metadata\" : { \"name\":\"a\" , \"managedFields\":[{}] } } ] }",
		   KUBE_PRUNE_LIST, false, "{\"items\":[{\"metadata\":{\"name\":\"a\"}}]}");
	prune_case("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"managed\\u0046ields\":null}}}",
		   KUBE_PRUNE_EVENT, false, "{\"type\":\"ADDED\",\"object\":{\"metadata\":{}}}");
	prune_case("{\"object\":{\"spec\":{\"managedFields\":[]},\"metadata\":{\"name\":\"\\\"managedFields\\\":\"}}}",
		   KUBE_PRUNE_EVENT, false,
		   "{\"object\":{\"spec\":{\"managedFields\":[]},\"metadata\":{\"name\":\"\\\"managedFields\\\":\"}}}");
	/* a pod: only what the builder reads; a value of another type as sent */
	prune_case("{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Pod\",\"spe\\u0063\":{\"dnsPolicy\":\"x\","
		   "\"containers\":[{\"name\":\"a\",\"env\":[],\"ports\":[{\"containerPort\":1}]},7],"
		   "\"volumes\":[{\"name\":\"v\"}],\"hostNetwork\":true},\"status\":[1]}}",
		   KUBE_PRUNE_EVENT, true,
		   "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Pod\",\"spe\\u0063\":{"
		   "\"containers\":[{\"ports\":[{\"containerPort\":1}]},7],\"hostNetwork\":true},\"status\":[1]}}");
	/* an ERROR event's Status keeps what is read of it */
	prune_case("{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
		   "\"status\":\"Failure\",\"message\":\"too old resource version\",\"reason\":\"Expired\","
		   "\"code\":410}}",
		   KUBE_PRUNE_EVENT, true,
		   "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
		   "\"status\":\"Failure\",\"message\":\"too old resource version\",\"reason\":\"Expired\","
		   "\"code\":410}}");
}

/* A list of full_pod, pruned: what kube_obj_compact() keeps is the same
 * (and so the model), the text much shorter. */
static void test_prune_pod(void)
{
	char *text = malloc(2 * sizeof(full_pod) + 128);
	json_t *a, *b, *ca, *cb, *ia, *ib;
	size_t n, len, bad, i;

	n = (size_t)sprintf(text, "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":"
			    "{\"resourceVersion\":\"7\",\"continue\":\"c\"},\"items\":[%s,%s]}",
			    full_pod, full_pod);
	a = json_loadb(text, n, 0, NULL);
	T_ASSERT(a);
	T_ASSERT_INT(kube_json_prune(text, n, KUBE_PRUNE_LIST, true, &len, &bad), 0);
	T_ASSERT(len < n * 3 / 4);
	b = json_loadb(text, len, 0, NULL);
	T_ASSERT(b);
	T_ASSERT(json_equal(json_object_get(a, "metadata"), json_object_get(b, "metadata")));
	T_ASSERT_INT(json_array_size(json_object_get(b, "items")), 2);
	json_array_foreach(json_object_get(a, "items"), i, ia) {
		ib = json_array_get(json_object_get(b, "items"), i);
		ca = kube_obj_compact(ia);
		cb = kube_obj_compact(ib);
		T_ASSERT(ca && cb);
		T_ASSERT(json_equal(ca, cb));
		T_ASSERT(json_object_get(json_object_get(ib, "spec"), "tolerations") == NULL);
		same_model(ia, ib);
		json_decref(ca);
		json_decref(cb);
	}
	json_decref(a);
	json_decref(b);
	free(text);
}

static void test_compact(void)
{
	/* a field of the wrong type stays for the builder to refuse */
	static const char *const bad[] = {
		"{\"spec\":{\"containers\":\"x\"}}", "{\"spec\":{\"containers\":[1]}}",
		"{\"spec\":{\"containers\":[{\"ports\":[{\"containerPort\":\"80\"}]}]}}",
		"{\"spec\":7}", "{\"status\":[]}", "{\"status\":{\"conditions\":[\"Ready\"]}}",
		"{\"status\":{\"podIPs\":[{\"ip\":\"nope\"}]}}", "{\"metadata\":{\"labels\":[]}}",
		"{\"spec\":{\"hostNetwork\":\"yes\"}}", "{\"status\":{\"phase\":1}}",
	};
	json_t *o = json_loads(full_pod, 0, NULL), *c;
	char *s;

	T_ASSERT(o);
	c = kube_obj_compact(o);
	T_ASSERT(c);
	T_ASSERT(!json_object_get(json_object_get(c, "spec"), "tolerations"));
	T_ASSERT(!json_object_get(json_object_get(c, "status"), "containerStatuses"));
	T_ASSERT(!json_object_get(json_object_get(c, "metadata"), "ownerReferences"));
	s = json_dumps(c, JSON_COMPACT);
	T_ASSERT(s && strlen(s) < strlen(full_pod));
	free(s);
	same_model(o, c);
	json_decref(c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *patch = json_loads(bad[i], 0, NULL), *p = json_deep_copy(o);

		T_ASSERT(patch && p);
		/* merge one level down, as a merge patch would */
		const char *k;
		json_t *v;

		json_object_foreach(patch, k, v) {
			if (json_is_object(v) && json_is_object(json_object_get(p, k)))
				json_object_update(json_object_get(p, k), v);
			else
				json_object_set(p, k, v);
		}
		c = kube_obj_compact(p);
		T_ASSERT(c);
		same_model(p, c);
		T_ASSERT(mesh_check_object(c, "api", err, sizeof(err)) < 0);
		json_decref(c);
		json_decref(p);
		json_decref(patch);
	}
	/* other kinds are kept whole */
	c = json_pack("{s:s,s:s,s:{s:s},s:{s:[]}}", "apiVersion", "v1", "kind", "Service", "metadata",
		      "name", "s", "spec", "ports");
	T_ASSERT(kube_obj_compact(c) == c);
	json_decref(c);
	json_decref(c);
	json_decref(o);
}

static void test_same(void)
{
	json_t *a = json_loads(full_pod, 0, NULL), *ca, *cb, *b;

	T_ASSERT(a);
	b = json_deep_copy(a);
	json_object_set_new(json_object_get(b, "metadata"), "resourceVersion", json_string("10"));
	/* a status heartbeat: only what the model does not read changes */
	json_object_set_new(json_object_get(b, "status"), "qosClass", json_string("Burstable"));
	ca = kube_obj_compact(a);
	cb = kube_obj_compact(b);
	T_ASSERT(kube_obj_same(ca, cb));
	T_ASSERT(!kube_obj_same(a, b));
	json_object_del(json_object_get(cb, "metadata"), "resourceVersion");
	T_ASSERT(kube_obj_same(ca, cb));
	json_object_set_new(json_object_get(json_object_get(cb, "metadata"), "labels"), "app",
			    json_string("api"));
	T_ASSERT(!kube_obj_same(ca, cb));
	T_ASSERT(!kube_obj_same(ca, NULL));
	json_decref(ca);
	json_decref(cb);
	json_decref(a);
	json_decref(b);
}

static void test_cleanup(void)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	T_ASSERT(system(cmd) == 0);
}

static void setup(void)
{
	T_ASSERT(mkdtemp(dir));
}

T_MAIN(T_CASE(setup), T_CASE(test_kubeconfig), T_CASE(test_kubeconfig_errors),
       T_CASE(test_incluster), T_CASE(test_events), T_CASE(test_backoff), T_CASE(test_rebuild_delay),
       T_CASE(test_store_objects), T_CASE(test_compact), T_CASE(test_prune_syntax),
       T_CASE(test_prune_objects), T_CASE(test_prune_pod),
       T_CASE(test_same), T_CASE(test_watched_kinds), T_CASE(test_cleanup))
