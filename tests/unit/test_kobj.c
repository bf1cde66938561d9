/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of conf/kobj.c: YAML documents and scalar typing, JSON, List
 * flattening, error positions, size and depth limits, file loading.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/kobj.h"
#include "tests/unit/t.h"

static char err[512];

static json_t *load(const char *text)
{
	json_t *out = NULL;

	err[0] = '\0';
	if (kobj_load_text(text, strlen(text), "t.yaml", &out, err, sizeof(err)))
		return NULL;
	return out;
}

static void test_yaml_multidoc(void)
{
	json_t *a = load("---\n"
			 "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n"
			 "---\n"
			 "# only a comment\n"
			 "---\n"
			 "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n"
			 "...\n"
			 "---\n");

	T_ASSERT(a);
	T_ASSERT_INT(json_array_size(a), 2);
	T_ASSERT_STR(json_string_value(json_object_get(json_object_get(json_array_get(a, 0), "metadata"), "name")), "a");
	T_ASSERT_STR(json_string_value(json_object_get(json_object_get(json_array_get(a, 1), "metadata"), "name")), "b");
	json_decref(a);

	a = load("");
	T_ASSERT(a);
	T_ASSERT_INT(json_array_size(a), 0);
	json_decref(a);
}

static void test_yaml_typing(void)
{
	json_t *a = load("kind: X\n"
			 "t1: true\nt2: True\nt3: TRUE\nf1: false\nf2: FALSE\n"
			 "yes: yes\non: on\n"
			 "n1: null\nn2: ~\nn3:\n"
			 "i1: 42\ni2: -7\ni3: +3\n"
			 "big: 99999999999999999999\n"
			 "r1: 1.5\nr2: 1e3\nr3: .5\n"
			 "s1: hello\ns2: '42'\ns3: \"true\"\ns4: 1.2.3\ns5: 0x1F\n"
			 "s6: |\n  line\n"
			 "s7: !!str 12\n"
			 "s8: .inf\n"
			 "n4: ''\n"
			 "80: key\n");
	json_t *o;

	T_ASSERT(a);
	o = json_array_get(a, 0);
	T_ASSERT(json_is_true(json_object_get(o, "t1")));
	T_ASSERT(json_is_true(json_object_get(o, "t2")));
	T_ASSERT(json_is_true(json_object_get(o, "t3")));
	T_ASSERT(json_is_false(json_object_get(o, "f1")));
	T_ASSERT(json_is_false(json_object_get(o, "f2")));
	T_ASSERT_STR(json_string_value(json_object_get(o, "yes")), "yes");
	T_ASSERT_STR(json_string_value(json_object_get(o, "on")), "on");
	T_ASSERT(json_is_null(json_object_get(o, "n1")));
	T_ASSERT(json_is_null(json_object_get(o, "n2")));
	T_ASSERT(json_is_null(json_object_get(o, "n3")));
	T_ASSERT(json_is_integer(json_object_get(o, "i1")));
	T_ASSERT_INT(json_integer_value(json_object_get(o, "i1")), 42);
	T_ASSERT_INT(json_integer_value(json_object_get(o, "i2")), -7);
	T_ASSERT_INT(json_integer_value(json_object_get(o, "i3")), 3);
	T_ASSERT(json_is_real(json_object_get(o, "big")));
	T_ASSERT(json_is_real(json_object_get(o, "r1")));
	T_ASSERT(json_real_value(json_object_get(o, "r1")) == 1.5);
	T_ASSERT(json_real_value(json_object_get(o, "r2")) == 1000.0);
	T_ASSERT(json_real_value(json_object_get(o, "r3")) == 0.5);
	T_ASSERT_STR(json_string_value(json_object_get(o, "s1")), "hello");
	T_ASSERT_STR(json_string_value(json_object_get(o, "s2")), "42");
	T_ASSERT_STR(json_string_value(json_object_get(o, "s3")), "true");
	T_ASSERT_STR(json_string_value(json_object_get(o, "s4")), "1.2.3");
	T_ASSERT_STR(json_string_value(json_object_get(o, "s5")), "0x1F");
	T_ASSERT_STR(json_string_value(json_object_get(o, "s6")), "line\n");
	T_ASSERT_STR(json_string_value(json_object_get(o, "s7")), "12");
	T_ASSERT_STR(json_string_value(json_object_get(o, "s8")), ".inf");
	T_ASSERT_STR(json_string_value(json_object_get(o, "n4")), "");
	T_ASSERT_STR(json_string_value(json_object_get(o, "80")), "key");
	json_decref(a);
}

static void test_json(void)
{
	json_t *a = load("  \n{\"kind\": \"Namespace\", \"apiVersion\": \"v1\", \"n\": 3, \"s\": \"3\"}");

	T_ASSERT(a);
	T_ASSERT_INT(json_array_size(a), 1);
	T_ASSERT(json_is_integer(json_object_get(json_array_get(a, 0), "n")));
	T_ASSERT(json_is_string(json_object_get(json_array_get(a, 0), "s")));
	json_decref(a);

	a = load("[{\"kind\": \"A\"}, {\"kind\": \"B\"}]");
	T_ASSERT(a);
	T_ASSERT_INT(json_array_size(a), 2);
	T_ASSERT_STR(json_string_value(json_object_get(json_array_get(a, 1), "kind")), "B");
	json_decref(a);

	a = load("[]");
	T_ASSERT(a);
	T_ASSERT_INT(json_array_size(a), 0);
	json_decref(a);

	T_ASSERT(!load("[1, 2]"));
	T_ASSERT(strstr(err, "t.yaml: ") && strstr(err, "not an object"));
	T_ASSERT(!load("{\"a\": 1, \"a\": 2}"));
	T_ASSERT(strstr(err, "duplicate"));
}

static void test_list_flatten(void)
{
	json_t *a = load("apiVersion: v1\nkind: List\nitems:\n"
			 "- {apiVersion: v1, kind: Namespace, metadata: {name: x}}\n"
			 "- {apiVersion: v1, kind: Pod, metadata: {name: y}}\n"
			 "---\n"
			 "apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: z}\n"
			 "---\n"
			 "kind: Service\n");

	T_ASSERT(a);
	T_ASSERT_INT(json_array_size(a), 4);
	T_ASSERT_STR(json_string_value(json_object_get(json_array_get(a, 0), "kind")), "Namespace");
	T_ASSERT_STR(json_string_value(json_object_get(json_array_get(a, 1), "kind")), "Pod");
	/* typed list items inherit kind and apiVersion */
	T_ASSERT_STR(json_string_value(json_object_get(json_array_get(a, 2), "kind")), "Pod");
	T_ASSERT_STR(json_string_value(json_object_get(json_array_get(a, 2), "apiVersion")), "v1");
	T_ASSERT_STR(json_string_value(json_object_get(json_array_get(a, 3), "kind")), "Service");
	json_decref(a);

	a = load("{\"kind\": \"List\", \"items\": [{\"kind\": \"Pod\"}]}");
	T_ASSERT(a);
	T_ASSERT_INT(json_array_size(a), 1);
	json_decref(a);

	T_ASSERT(!load("kind: List\nitems: [1]\n"));
	T_ASSERT(strstr(err, "not an object"));
}

static void test_errors_have_positions(void)
{
	T_ASSERT(!load("kind: Pod\nmetadata:\n  name: a\n  labels: x: y\n"));
	T_ASSERT(strstr(err, "t.yaml:4:"));
	T_ASSERT(strstr(err, "mapping values are not allowed"));

	T_ASSERT(!load("a: 1\nb: [1, 2\n"));
	T_ASSERT(!strncmp(err, "t.yaml:", 7));

	T_ASSERT(!load("a: 1\na: 2\n"));
	T_ASSERT_STR(err, "t.yaml:2:4: duplicate key \"a\"");

	T_ASSERT(!load("a: &x 1\nb: *x\n"));
	T_ASSERT(strstr(err, "t.yaml:2:4:") && strstr(err, "aliases"));

	T_ASSERT(!load("just a string\n"));
	T_ASSERT(strstr(err, "not a scalar"));

	T_ASSERT(!load("? [a]\n: b\n"));
	T_ASSERT(strstr(err, "mapping keys"));

	T_ASSERT(!load("{\n  \"a\": 1,\n  \"b\": }\n"));
	T_ASSERT(!strncmp(err, "t.yaml:3:", 9));

	T_ASSERT(!load("a: \"x\\0y\"\n"));
	T_ASSERT(strstr(err, "NUL"));

	/* no origin */
	json_t *o = NULL;
	T_ASSERT(kobj_load_text("a: b: c", 7, NULL, &o, err, sizeof(err)) == -EINVAL);
	T_ASSERT(!o);
	T_ASSERT(!strncmp(err, "<input>:1:", 10));
}

static char *nest(const char *open, const char *close, int depth, const char *pre)
{
	size_t lo = strlen(open), lc = strlen(close), lp = strlen(pre);
	char *s = malloc(lp + (size_t)depth * (lo + lc) + 8), *p = s;

	memcpy(p, pre, lp);
	p += lp;
	for (int i = 0; i < depth; i++, p += lo)
		memcpy(p, open, lo);
	*p++ = '1';
	for (int i = 0; i < depth; i++, p += lc)
		memcpy(p, close, lc);
	*p = '\0';
	return s;
}

static void test_depth_limit(void)
{
	char *s;
	json_t *a;

	/* a: [[...]] : 1 mapping + 63 sequences = 64 levels, allowed */
	s = nest("[", "]", 63, "a: ");
	a = load(s);
	free(s);
	T_ASSERT(a);
	json_decref(a);
	s = nest("[", "]", 64, "a: ");
	a = load(s);
	free(s);
	T_ASSERT(!a);
	T_ASSERT(strstr(err, "t.yaml:1:") && strstr(err, "nesting deeper than 64"));

	s = nest("[", "]", 64, "");
	a = load(s);
	free(s);
	T_ASSERT(a == NULL); /* array of arrays: within depth but not objects */
	T_ASSERT(strstr(err, "not an object"));
	s = nest("[", "]", 65, "");
	a = load(s);
	free(s);
	T_ASSERT(!a);
	T_ASSERT(strstr(err, "t.yaml:1:65: nesting deeper than 64"));

	s = nest("{\"a\":", "}", 64, "");
	a = load(s);
	free(s);
	T_ASSERT(a); /* 64 levels, innermost "a": 1 */
	json_decref(a);
	s = nest("{\"a\":", "}", 100000, "");
	a = load(s);
	free(s);
	T_ASSERT(!a);
	T_ASSERT(strstr(err, "nesting deeper"));

	s = nest("- ", "", 2000, "");
	a = load(s);
	free(s);
	T_ASSERT(!a);
	T_ASSERT(strstr(err, "nesting deeper"));
}

static void test_size_limit(void)
{
	size_t n = (16u << 20) + 1;
	char *s = malloc(n);
	json_t *a = NULL;

	T_ASSERT(s);
	memset(s, ' ', n);
	T_ASSERT(kobj_load_text(s, n, "big.yaml", &a, err, sizeof(err)) == -EINVAL);
	T_ASSERT(strstr(err, "big.yaml: ") && strstr(err, "limit"));
	/* exactly at the limit is accepted (blank document) */
	T_ASSERT(kobj_load_text(s, n - 1, "big.yaml", &a, err, sizeof(err)) == 0);
	T_ASSERT_INT(json_array_size(a), 0);
	json_decref(a);
	free(s);
}

static void test_load_file(void)
{
	char dir[] = "/tmp/warren-kobj.XXXXXX", path[64];
	json_t *a = NULL;
	FILE *f;

	T_ASSERT(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/x.yaml", dir);
	f = fopen(path, "w");
	T_ASSERT(f);
	fputs("\xef\xbb\xbfkind: A\n---\nkind: B\n", f);
	fclose(f);
	int ret = kobj_load_file(path, &a, err, sizeof(err));
	unlink(path);
	T_ASSERT_INT(ret, 0);
	T_ASSERT_INT(json_array_size(a), 2);
	json_decref(a);

	ret = kobj_load_file(path, &a, err, sizeof(err));
	T_ASSERT_INT(ret, -ENOENT);
	T_ASSERT(strstr(err, path) && strstr(err, "cannot open"));
	ret = kobj_load_file(dir, &a, err, sizeof(err));
	rmdir(dir);
	T_ASSERT_INT(ret, -EINVAL);
	T_ASSERT(strstr(err, "not a regular file"));
}

T_MAIN(T_CASE(test_yaml_multidoc), T_CASE(test_yaml_typing), T_CASE(test_json),
       T_CASE(test_list_flatten), T_CASE(test_errors_have_positions), T_CASE(test_depth_limit),
       T_CASE(test_size_limit), T_CASE(test_load_file))
