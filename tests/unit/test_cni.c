/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of conf/cni.c: stdin configuration (defaults, every key,
 * wrong types, versions, malformed JSON), CNI_ARGS, result conversion for
 * every supported cniVersion from a bridge + host-local prevResult, GC
 * attachments and the error JSON shape.
 */
#include "conf/cni.h"
#include "conf/warren.h"
#include "tests/unit/t.h"

#include <stdlib.h>

static struct cni_conf *parse(const char *s, struct cni_error *err)
{
	struct cni_conf *c = NULL;

	memset(err, 0, sizeof(*err));
	if (cni_conf_parse(s, strlen(s), &c, err) < 0)
		return NULL;
	return c;
}

static void test_defaults(void)
{
	struct cni_error err;
	struct cni_conf *c = parse("{\"cniVersion\":\"1.0.0\",\"name\":\"k8s-pod-network\",\"type\":\"warren-cni\"}", &err);

	T_ASSERT(c);
	T_ASSERT_STR(c->cni_version, "1.0.0");
	T_ASSERT_STR(c->name, "k8s-pod-network");
	T_ASSERT_STR(c->type, "warren-cni");
	T_ASSERT_STR(c->tunnel_socket, DEFAULT_TUNNEL_SOCKET);
	T_ASSERT_INT(c->n_exclude_namespaces, 1);
	T_ASSERT_STR(c->exclude_namespaces[0], "kube-system");
	T_ASSERT_INT(c->redirect, CNI_REDIRECT_NFTABLES);
	T_ASSERT_INT(c->timeout_ms, 5000);
	T_ASSERT(!c->log_file && !c->log_level && !c->prev_result);
	T_ASSERT(cni_conf_excluded(c, "kube-system"));
	T_ASSERT(!cni_conf_excluded(c, "default"));
	T_ASSERT(!cni_conf_excluded(c, NULL));
	cni_conf_free(c);
}

static void test_every_key(void)
{
	struct cni_error err;
	struct cni_conf *c = parse(
		"{\"args\":{\"cni\":{\"x\":1}},\"capabilities\":{\"portMappings\":true},\"cniVersion\":\"1.1.0\","
		"\"excludeNamespaces\":[\"a\",\"b\",\"\"],\"logFile\":\"/tmp/w.log\",\"logLevel\":\"debug\","
		"\"name\":\"net\",\"prevResult\":{\"cniVersion\":\"1.1.0\",\"ips\":[]},\"redirect\":\"nftables\","
		"\"runtimeConfig\":{\"portMappings\":[]},\"somethingElse\":[1,2],\"timeoutMs\":250,"
		"\"tunnelSocket\":\"/run/t.sock\",\"type\":\"warren-cni\"}",
		&err);

	T_ASSERT(c);
	T_ASSERT_STR(c->cni_version, "1.1.0");
	T_ASSERT_STR(c->tunnel_socket, "/run/t.sock");
	T_ASSERT_INT(c->n_exclude_namespaces, 3);
	T_ASSERT_STR(c->exclude_namespaces[1], "b");
	T_ASSERT_STR(c->exclude_namespaces[2], "");
	T_ASSERT(!cni_conf_excluded(c, "kube-system"));
	T_ASSERT(cni_conf_excluded(c, "a"));
	T_ASSERT_STR(c->log_file, "/tmp/w.log");
	T_ASSERT_STR(c->log_level, "debug");
	T_ASSERT_INT(c->timeout_ms, 250);
	T_ASSERT(json_is_object(c->prev_result));
	T_ASSERT(json_is_array(json_object_get(c->prev_result, "ips")));
	cni_conf_free(c);

	/* empty excludeNamespaces disables the default; null keeps defaults */
	c = parse("{\"cniVersion\":\"0.3.1\",\"name\":\"n\",\"excludeNamespaces\":[],\"prevResult\":null,"
		  "\"tunnelSocket\":null}", &err);
	T_ASSERT(c);
	T_ASSERT_INT(c->n_exclude_namespaces, 0);
	T_ASSERT(!cni_conf_excluded(c, "kube-system"));
	T_ASSERT(!c->prev_result);
	T_ASSERT_STR(c->tunnel_socket, DEFAULT_TUNNEL_SOCKET);
	cni_conf_free(c);
}

static void test_wrong_types(void)
{
	static const struct {
		const char *json, *key;
		int code;
	} cases[] = {
		{ "\"cniVersion\":100", "cniVersion", 7 },
		{ "\"name\":5", "name", 7 },
		{ "\"name\":\"\"", "name", 7 },
		{ "\"type\":[]", "type", 7 },
		{ "\"tunnelSocket\":1", "tunnelSocket", 7 },
		{ "\"tunnelSocket\":\"\"", "tunnelSocket", 7 },
		{ "\"excludeNamespaces\":\"kube-system\"", "excludeNamespaces", 7 },
		{ "\"excludeNamespaces\":[\"a\",1]", "excludeNamespaces", 7 },
		{ "\"redirect\":true", "redirect", 7 },
		{ "\"redirect\":\"iptables\"", "redirect", 7 },
		{ "\"logFile\":{}", "logFile", 7 },
		{ "\"logLevel\":3", "logLevel", 7 },
		{ "\"logLevel\":\"chatty\"", "logLevel", 7 },
		{ "\"timeoutMs\":\"5000\"", "timeoutMs", 7 },
		{ "\"timeoutMs\":1.5", "timeoutMs", 7 },
		{ "\"timeoutMs\":0", "timeoutMs", 7 },
		{ "\"timeoutMs\":-3", "timeoutMs", 7 },
		{ "\"timeoutMs\":99999999999", "timeoutMs", 7 },
		{ "\"prevResult\":[]", "prevResult", 7 },
		{ "\"prevResult\":\"x\"", "prevResult", 7 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char buf[512];
		struct cni_error err;
		struct cni_conf *c;

		/* the case's key comes last so it overrides the defaults */
		snprintf(buf, sizeof(buf), "{\"cniVersion\":\"1.0.0\",\"name\":\"n\",%s}", cases[i].json);
		c = parse(buf, &err);
		if (c)
			printf("# case %zu (%s) parsed\n", i, cases[i].json);
		T_ASSERT(!c);
		if (err.code != cases[i].code)
			printf("# case %zu (%s): code %d\n", i, cases[i].json, err.code);
		T_ASSERT_INT(err.code, cases[i].code);
		T_ASSERT(strstr(err.details, cases[i].key) || strstr(err.msg, cases[i].key));
	}
}

static void test_expected_type_named(void)
{
	struct cni_error err;

	T_ASSERT(!parse("{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"timeoutMs\":\"x\"}", &err));
	T_ASSERT(strstr(err.details, "integer"));
	T_ASSERT(!parse("{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"excludeNamespaces\":{}}", &err));
	T_ASSERT(strstr(err.details, "array of strings"));
	T_ASSERT(!parse("{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"tunnelSocket\":3}", &err));
	T_ASSERT(strstr(err.details, "string"));
	{
		struct cni_conf *c = parse("{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"redirect\":\"ebpf\"}", &err);

		T_ASSERT(c);
		T_ASSERT_INT(c->redirect, CNI_REDIRECT_EBPF);
		cni_conf_free(c);
	}
}

static void test_versions(void)
{
	static const char *const bad[] = { "0.1.0", "0.2.0", "1.0", "1.2.0", "2.0.0", "1.0.0 ", "" };
	struct cni_error err;
	struct cni_conf *c;
	char buf[256];

	for (size_t i = 0; i < cni_n_supported_versions; i++) {
		snprintf(buf, sizeof(buf), "{\"cniVersion\":\"%s\",\"name\":\"n\"}", cni_supported_versions[i]);
		c = parse(buf, &err);
		T_ASSERT(c);
		T_ASSERT_STR(c->cni_version, cni_supported_versions[i]);
		cni_conf_free(c);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		snprintf(buf, sizeof(buf), "{\"cniVersion\":\"%s\",\"name\":\"n\"}", bad[i]);
		T_ASSERT(!parse(buf, &err));
		T_ASSERT_INT(err.code, 1);
		T_ASSERT_STR(err.msg, "incompatible CNI versions");
		T_ASSERT(strstr(err.details, "\"0.3.0\", \"0.3.1\", \"0.4.0\", \"1.0.0\", \"1.1.0\""));
	}
	T_ASSERT(!parse("{\"name\":\"n\"}", &err));
	T_ASSERT_INT(err.code, 1);
	T_ASSERT(cni_version_cmp("0.4.0", "0.3.1") > 0);
	T_ASSERT(cni_version_cmp("0.3.1", "0.4.0") < 0);
	T_ASSERT(cni_version_cmp("1.0.0", "1.0.0") == 0);
	T_ASSERT(cni_version_cmp("1.10.0", "1.9.0") > 0);
	T_ASSERT(cni_version_cmp("1.0", "1.0.0") == 0);
}

static void test_malformed(void)
{
	static const char *const bad[] = { "", "{", "{\"cniVersion\":\"1.0.0\",}", "[]", "\"x\"", "null",
					   "{\"cniVersion\":\"1.0.0\"} trailing", "\xff\xfe" };
	struct cni_error err;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		T_ASSERT(!parse(bad[i], &err));
		T_ASSERT_INT(err.code, 6);
		T_ASSERT(err.details[0]);
	}
	T_ASSERT(!parse("{\"cniVersion\":\"1.0.0\"}", &err));
	T_ASSERT_INT(err.code, 7);
	T_ASSERT(strstr(err.details, "name"));
}

static void test_peek_version(void)
{
	char *v = cni_peek_version("{\"cniVersion\":\"0.4.0\"}", 22);

	T_ASSERT_STR(v, "0.4.0");
	free(v);
	T_ASSERT(!cni_peek_version("", 0));
	T_ASSERT(!cni_peek_version("{", 1));
	T_ASSERT(!cni_peek_version("{\"cniVersion\":1}", 16));
	T_ASSERT(!cni_peek_version("{\"cniVersion\":\"\"}", 17));
}

static void test_args(void)
{
	struct cni_args a;
	struct cni_error err = { 0 };

	T_ASSERT_INT(cni_args_parse("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-7d4b9c-x2x;"
				    "K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=3f1c-11ee;Extra=a=b",
				    &a, &err), 0);
	T_ASSERT_STR(a.pod_namespace, "default");
	T_ASSERT_STR(a.pod_name, "web-7d4b9c-x2x");
	T_ASSERT_STR(a.pod_infra_container_id, "abc123");
	T_ASSERT_STR(a.pod_uid, "3f1c-11ee");
	cni_args_release(&a);

	T_ASSERT_INT(cni_args_parse(NULL, &a, &err), 0);
	T_ASSERT(!a.pod_namespace && !a.pod_name && !a.pod_uid && !a.pod_infra_container_id);
	T_ASSERT_INT(cni_args_parse("", &a, &err), 0);
	T_ASSERT(!a.pod_name);
	/* podman: only the name; trailing ';' and empty values tolerated */
	T_ASSERT_INT(cni_args_parse("IgnoreUnknown=1;K8S_POD_NAME=ctr;K8S_POD_NAMESPACE=;", &a, &err), 0);
	T_ASSERT_STR(a.pod_name, "ctr");
	T_ASSERT(!a.pod_namespace);
	cni_args_release(&a);
	/* last one wins; a prefix of a known key is not that key */
	T_ASSERT_INT(cni_args_parse("K8S_POD_NAME=a;K8S_POD_NAME=b;K8S_POD=c;K8S_POD_NAMEX=d", &a, &err), 0);
	T_ASSERT_STR(a.pod_name, "b");
	cni_args_release(&a);

	T_ASSERT_INT(cni_args_parse("K8S_POD_NAME=a;garbage", &a, &err), -1);
	T_ASSERT_INT(err.code, 4);
	T_ASSERT(strstr(err.msg, "CNI_ARGS"));
	T_ASSERT(!a.pod_name);
	T_ASSERT_INT(cni_args_parse("=x", &a, &err), -1);
	T_ASSERT_INT(err.code, 4);
	T_ASSERT(strstr(err.details, "CNI_ARGS"));
	cni_args_release(&a);
	cni_args_release(NULL);
}

static void test_validate_env(void)
{
	struct cni_error err;

	T_ASSERT_INT(cni_validate_container_id("a1b2c3_d.e-f", &err), 0);
	T_ASSERT_INT(cni_validate_container_id("-abc", &err), -1);
	T_ASSERT_INT(err.code, 4);
	T_ASSERT_INT(cni_validate_container_id("ab c", &err), -1);
	T_ASSERT_INT(cni_validate_container_id("", &err), -1);
	T_ASSERT(strstr(err.msg, "CNI_CONTAINERID"));
	T_ASSERT_INT(cni_validate_ifname("eth0", &err), 0);
	T_ASSERT_INT(cni_validate_ifname("0123456789abcdef", &err), -1);
	T_ASSERT_INT(cni_validate_ifname("..", &err), -1);
	T_ASSERT_INT(cni_validate_ifname("a/b", &err), -1);
	T_ASSERT_INT(cni_validate_ifname("a b", &err), -1);
	T_ASSERT_INT(err.code, 4);
	T_ASSERT(strstr(err.details, "CNI_IFNAME"));
}

/* What Debian's bridge + host-local print for a dual-stack pod, plus
 * 1.1-only fields and an unknown key a newer plugin might add. */
static const char bridge_result[] =
	"{\"cniVersion\":\"1.1.0\","
	"\"interfaces\":[{\"name\":\"cni0\",\"mac\":\"2a:1b:3c:4d:5e:6f\"},"
	"{\"name\":\"veth1a2b3c4d\",\"mac\":\"9e:8d:7c:6b:5a:49\",\"mtu\":1500},"
	"{\"name\":\"eth0\",\"mac\":\"02:42:0a:f4:00:05\",\"sandbox\":\"/var/run/netns/cni-1234\","
	"\"mtu\":1500,\"socketPath\":\"/run/x.sock\",\"pciID\":\"0000:00:01.0\"}],"
	"\"ips\":[{\"interface\":2,\"address\":\"10.244.0.5/24\",\"gateway\":\"10.244.0.1\"},"
	"{\"interface\":2,\"address\":\"fd00:10:244::5/64\",\"gateway\":\"fd00:10:244::1\"}],"
	"\"routes\":[{\"dst\":\"0.0.0.0/0\",\"gw\":\"10.244.0.1\",\"mtu\":1400,\"table\":100},"
	"{\"dst\":\"::/0\"}],"
	"\"dns\":{},"
	"\"x-extra\":{\"kept\":true}}";

static void test_convert_all_versions(void)
{
	json_t *prev = json_loads(bridge_result, 0, NULL);

	T_ASSERT(prev);
	for (size_t i = 0; i < cni_n_supported_versions; i++) {
		const char *v = cni_supported_versions[i];
		bool has_ipver = cni_version_cmp(v, "1.0.0") < 0, has11 = !strcmp(v, "1.1.0");
		struct cni_error err = { 0 };
		json_t *out = cni_result_convert(prev, v, &err), *ips, *ifs, *rts;

		T_ASSERT(out);
		T_ASSERT_STR(json_string_value(json_object_get(out, "cniVersion")), v);
		T_ASSERT_STR(json_object_iter_key(json_object_iter(out)), "cniVersion");
		ips = json_object_get(out, "ips");
		ifs = json_object_get(out, "interfaces");
		rts = json_object_get(out, "routes");
		T_ASSERT_INT(json_array_size(ips), 2);
		T_ASSERT_INT(json_array_size(ifs), 3);
		T_ASSERT_INT(json_array_size(rts), 2);
		if (has_ipver) {
			T_ASSERT_STR(json_string_value(json_object_get(json_array_get(ips, 0), "version")), "4");
			T_ASSERT_STR(json_string_value(json_object_get(json_array_get(ips, 1), "version")), "6");
		} else {
			T_ASSERT(!json_object_get(json_array_get(ips, 0), "version"));
			T_ASSERT(!json_object_get(json_array_get(ips, 1), "version"));
		}
		T_ASSERT_STR(json_string_value(json_object_get(json_array_get(ips, 1), "address")), "fd00:10:244::5/64");
		T_ASSERT_INT(json_integer_value(json_object_get(json_array_get(ips, 0), "interface")), 2);
		T_ASSERT_STR(json_string_value(json_object_get(json_array_get(ifs, 2), "sandbox")),
			     "/var/run/netns/cni-1234");
		T_ASSERT_INT(!!json_object_get(json_array_get(ifs, 2), "mtu"), has11);
		T_ASSERT_INT(!!json_object_get(json_array_get(ifs, 2), "socketPath"), has11);
		T_ASSERT_INT(!!json_object_get(json_array_get(ifs, 2), "pciID"), has11);
		T_ASSERT_INT(!!json_object_get(json_array_get(ifs, 1), "mtu"), has11);
		T_ASSERT_INT(!!json_object_get(json_array_get(rts, 0), "mtu"), has11);
		T_ASSERT_INT(!!json_object_get(json_array_get(rts, 0), "table"), has11);
		T_ASSERT_STR(json_string_value(json_object_get(json_array_get(rts, 0), "gw")), "10.244.0.1");
		T_ASSERT(json_is_object(json_object_get(out, "dns")));
		T_ASSERT_INT(json_object_size(json_object_get(out, "dns")), 0);
		T_ASSERT(json_is_true(json_object_get(json_object_get(out, "x-extra"), "kept")));
		T_ASSERT_INT(json_object_size(out), 6);
		/* converting again to the same version is a no-op */
		{
			json_t *again = cni_result_convert(out, v, &err);

			T_ASSERT(again);
			T_ASSERT(json_equal(again, out));
			json_decref(again);
		}
		json_decref(out);
	}
	/* the input is never modified */
	{
		json_t *orig = json_loads(bridge_result, 0, NULL);

		T_ASSERT(json_equal(orig, prev));
		json_decref(orig);
	}
	json_decref(prev);
}

static void test_convert_lenient(void)
{
	struct cni_error err = { 0 };
	/* 0.4.0 result without cniVersion, with a stray version and junk */
	json_t *prev = json_loads("{\"ips\":[{\"version\":\"4\",\"address\":\"10.1.2.3/16\"},"
				  "{\"address\":\"not-an-ip\"},{\"version\":\"6\"},7],"
				  "\"interfaces\":\"weird\",\"dns\":{\"nameservers\":[\"10.96.0.10\"]}}",
				  0, NULL);
	json_t *out;

	T_ASSERT(prev);
	out = cni_result_convert(prev, "1.0.0", &err);
	T_ASSERT(out);
	T_ASSERT_STR(json_string_value(json_object_get(out, "cniVersion")), "1.0.0");
	T_ASSERT(!json_object_get(json_array_get(json_object_get(out, "ips"), 0), "version"));
	T_ASSERT_STR(json_string_value(json_object_get(out, "interfaces")), "weird");
	json_decref(out);

	out = cni_result_convert(prev, "0.3.1", &err);
	T_ASSERT(out);
	T_ASSERT_STR(json_string_value(json_object_get(json_array_get(json_object_get(out, "ips"), 0), "version")), "4");
	T_ASSERT(!json_object_get(json_array_get(json_object_get(out, "ips"), 1), "version"));
	/* no address to synthesise from: keep what was there */
	T_ASSERT_STR(json_string_value(json_object_get(json_array_get(json_object_get(out, "ips"), 2), "version")), "6");
	T_ASSERT_INT(json_integer_value(json_array_get(json_object_get(out, "ips"), 3)), 7);
	T_ASSERT_STR(json_string_value(json_array_get(json_object_get(json_object_get(out, "dns"), "nameservers"), 0)),
		     "10.96.0.10");
	json_decref(out);

	{
		json_t *ips = cni_result_ips(prev);

		T_ASSERT_INT(json_array_size(ips), 2);
		T_ASSERT_STR(json_string_value(json_array_get(ips, 0)), "10.1.2.3/16");
		json_decref(ips);
		ips = cni_result_ips(NULL);
		T_ASSERT(json_is_array(ips) && json_array_size(ips) == 0);
		json_decref(ips);
	}
	json_decref(prev);

	/* no prevResult: istio-cni prints just the version */
	out = cni_result_convert(NULL, "0.4.0", &err);
	T_ASSERT(out);
	T_ASSERT_INT(json_object_size(out), 1);
	T_ASSERT_STR(json_string_value(json_object_get(out, "cniVersion")), "0.4.0");
	json_decref(out);

	prev = json_array();
	T_ASSERT(!cni_result_convert(prev, "1.0.0", &err));
	T_ASSERT_INT(err.code, 7);
	json_decref(prev);
}

static void test_gc_valid(void)
{
	struct cni_error err;
	struct cni_conf *c;
	json_t *v;

	c = parse("{\"cniVersion\":\"1.1.0\",\"name\":\"n\",\"cni.dev/valid-attachments\":"
		  "[{\"containerID\":\"c1\",\"ifname\":\"eth0\"},{\"containerID\":\"c2\",\"ifname\":\"net1\"}]}", &err);
	T_ASSERT(c);
	T_ASSERT_INT(cni_conf_gc_valid(c, &v, &err), 0);
	T_ASSERT_INT(json_array_size(v), 2);
	T_ASSERT_STR(json_string_value(json_object_get(json_array_get(v, 1), "containerId")), "c2");
	T_ASSERT_STR(json_string_value(json_object_get(json_array_get(v, 1), "ifname")), "net1");
	json_decref(v);
	cni_conf_free(c);

	c = parse("{\"cniVersion\":\"1.1.0\",\"name\":\"n\",\"cni.dev/attachments\":[]}", &err);
	T_ASSERT(c);
	T_ASSERT_INT(cni_conf_gc_valid(c, &v, &err), 0);
	T_ASSERT_INT(json_array_size(v), 0);
	json_decref(v);
	cni_conf_free(c);

	c = parse("{\"cniVersion\":\"1.1.0\",\"name\":\"n\"}", &err);
	T_ASSERT(c);
	T_ASSERT_INT(cni_conf_gc_valid(c, &v, &err), -1);
	T_ASSERT(!v);
	T_ASSERT_INT(err.code, 7);
	cni_conf_free(c);

	c = parse("{\"cniVersion\":\"1.1.0\",\"name\":\"n\",\"cni.dev/valid-attachments\":[{\"containerID\":1}]}", &err);
	T_ASSERT(c);
	T_ASSERT_INT(cni_conf_gc_valid(c, &v, &err), -1);
	T_ASSERT_INT(err.code, 7);
	T_ASSERT(strstr(err.details, "cni.dev/valid-attachments"));
	cni_conf_free(c);
}

static void test_error_json(void)
{
	struct cni_error err;
	char *s;
	json_t *o;

	T_ASSERT_INT(cni_error_set(&err, 11, "warren-tunnel is not reachable", "at %s: %s", "/x.sock", "ENOENT"), -1);
	s = cni_error_json("0.4.0", &err);
	T_ASSERT(s);
	T_ASSERT(s[strlen(s) - 1] == '\n');
	o = json_loads(s, 0, NULL);
	free(s);
	T_ASSERT(o);
	T_ASSERT_INT(json_object_size(o), 4);
	T_ASSERT_STR(json_string_value(json_object_get(o, "cniVersion")), "0.4.0");
	T_ASSERT_INT(json_integer_value(json_object_get(o, "code")), 11);
	T_ASSERT_STR(json_string_value(json_object_get(o, "msg")), "warren-tunnel is not reachable");
	T_ASSERT_STR(json_string_value(json_object_get(o, "details")), "at /x.sock: ENOENT");
	json_decref(o);

	/* quoting survives, and no version means the latest */
	cni_error_set(&err, 7, "bad \"key\"\n", NULL);
	s = cni_error_json(NULL, &err);
	o = json_loads(s, 0, NULL);
	free(s);
	T_ASSERT(o);
	T_ASSERT_STR(json_string_value(json_object_get(o, "cniVersion")), CNI_VERSION_LATEST);
	T_ASSERT_STR(json_string_value(json_object_get(o, "msg")), "bad \"key\"\n");
	T_ASSERT(json_is_string(json_object_get(o, "details")));
	json_decref(o);
}

static void test_supported_json(void)
{
	json_t *a = cni_supported_versions_json();

	T_ASSERT_INT(json_array_size(a), 5);
	T_ASSERT_STR(json_string_value(json_array_get(a, 0)), "0.3.0");
	T_ASSERT_STR(json_string_value(json_array_get(a, 4)), "1.1.0");
	json_decref(a);
	T_ASSERT(cni_version_supported("0.4.0"));
	T_ASSERT(!cni_version_supported("0.4"));
	T_ASSERT(!cni_version_supported(NULL));
}

T_MAIN(T_CASE(test_defaults), T_CASE(test_every_key), T_CASE(test_wrong_types), T_CASE(test_expected_type_named),
       T_CASE(test_versions), T_CASE(test_malformed), T_CASE(test_peek_version), T_CASE(test_args),
       T_CASE(test_validate_env), T_CASE(test_convert_all_versions), T_CASE(test_convert_lenient),
       T_CASE(test_gc_valid), T_CASE(test_error_json), T_CASE(test_supported_json))
