/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of conf/kube.c: kubeconfig contexts, relative paths, base64
 * data, refused exec plugins, in-cluster files and environment, token
 * reading, watch event lines (410 in the stream), backoff bounds and
 * jitter, store keys, and list items (no kind) going through the model
 * builder once trimmed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/kube.h"
#include "model/mesh.h"
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
       T_CASE(test_incluster), T_CASE(test_events), T_CASE(test_backoff),
       T_CASE(test_store_objects), T_CASE(test_cleanup))
