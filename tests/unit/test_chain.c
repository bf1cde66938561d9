/* SPDX-License-Identifier: Apache-2.0 */
/* warren-install's conflist edit (install/chain.h) and its files
 * (install/cnifs.h) in a temporary directory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "install/chain.h"
#include "install/cnifs.h"
#include "tests/unit/t.h"

static const char *const excl[] = { "kube-system", "istio-system" };
static const struct chain_settings settings = {
	.tunnel_socket = "/var/run/warren/tunnel.sock", .exclude_ns = excl, .n_exclude = 2,
};

/* a conflist as a network's agent writes it (its own formatting) */
static const char conflist[] =
	"{\"cniVersion\":\"1.0.0\",\"name\":\"k8s-pod-network\",\"plugins\":[\n"
	"  {\"type\":\"bridge\",\"bridge\":\"cni0\",\"ipam\":{\"type\":\"host-local\",\"subnet\":\"10.244.1.0/24\"}},\n"
	"  {\"type\":\"portmap\",\"capabilities\":{\"portMappings\":true}}]}\n";
static const char conf[] =
	"{ \"cniVersion\": \"0.4.0\", \"name\": \"kindnet\", \"type\": \"ptp\",\n"
	"  \"ipam\": { \"type\": \"host-local\", \"subnet\": \"10.244.0.0/24\" } }\n";

static json_t *entry(void)
{
	return chain_entry(&settings);
}

static json_t *plugins_of(const char *s)
{
	json_t *root = json_loads(s, 0, NULL);
	json_t *p = json_incref(json_object_get(root, "plugins"));

	json_decref(root);
	return p;
}

static void test_insert_appends_last(void)
{
	json_t *e = entry(), *p;
	char *out = NULL, err[256];
	size_t len;
	bool had = true;

	T_ASSERT_INT(chain_insert(conflist, strlen(conflist), CHAIN_CONFLIST, e, &out, &len, &had, err,
				  sizeof(err)), CHAIN_CHANGED);
	T_ASSERT(!had);
	T_ASSERT_INT(len, strlen(out));
	T_ASSERT(out[len - 1] == '\n');
	p = plugins_of(out);
	T_ASSERT_INT(json_array_size(p), 3);
	T_ASSERT_STR(json_string_value(json_object_get(json_array_get(p, 0), "type")), "bridge");
	T_ASSERT_STR(json_string_value(json_object_get(json_array_get(p, 1), "type")), "portmap");
	T_ASSERT(json_equal(json_array_get(p, 2), e));
	T_ASSERT_STR(json_string_value(json_array_get(json_object_get(json_array_get(p, 2),
								       "excludeNamespaces"), 1)),
		     "istio-system");
	json_decref(p);
	free(out);
	json_decref(e);
}

static void test_insert_idempotent(void)
{
	json_t *e = entry();
	char *once = NULL, *twice = (char *)1, err[256];
	size_t n1, n2;
	bool had = false;

	T_ASSERT_INT(chain_insert(conflist, strlen(conflist), CHAIN_CONFLIST, e, &once, &n1, NULL, err,
				  sizeof(err)), CHAIN_CHANGED);
	T_ASSERT_INT(chain_insert(once, n1, CHAIN_CONFLIST, e, &twice, &n2, &had, err, sizeof(err)),
		     CHAIN_SAME);
	T_ASSERT(twice == NULL);
	T_ASSERT(had);
	T_ASSERT(chain_has(once, n1));
	T_ASSERT(!chain_has(conflist, strlen(conflist)));
	free(once);
	json_decref(e);
}

/* our entry with other settings, or not last: replaced, exactly one left */
static void test_insert_replaces_stale_entry(void)
{
	const char stale[] = "{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":["
			     "{\"type\":\"bridge\"},{\"type\":\"warren-cni\",\"tunnelSocket\":\"/old\"},"
			     "{\"type\":\"portmap\"}]}";
	json_t *e = entry(), *p;
	char *out = NULL, err[256];
	size_t len;
	bool had = false;

	T_ASSERT_INT(chain_insert(stale, strlen(stale), CHAIN_CONFLIST, e, &out, &len, &had, err,
				  sizeof(err)), CHAIN_CHANGED);
	T_ASSERT(had);
	p = plugins_of(out);
	T_ASSERT_INT(json_array_size(p), 3);
	T_ASSERT_STR(json_string_value(json_object_get(json_array_get(p, 1), "type")), "portmap");
	T_ASSERT(json_equal(json_array_get(p, 2), e));
	json_decref(p);
	free(out);
	json_decref(e);
}

static void test_wrap_conf(void)
{
	json_t *e = entry(), *root, *p0;
	char *out = NULL, err[256], name[64];
	size_t len;

	T_ASSERT_INT(chain_insert(conf, strlen(conf), CHAIN_CONF, e, &out, &len, NULL, err, sizeof(err)),
		     CHAIN_CHANGED);
	root = json_loads(out, 0, NULL);
	T_ASSERT(root);
	T_ASSERT_STR(json_string_value(json_object_get(root, "cniVersion")), "0.4.0");
	T_ASSERT_STR(json_string_value(json_object_get(root, "name")), "kindnet");
	p0 = json_array_get(json_object_get(root, "plugins"), 0);
	T_ASSERT_STR(json_string_value(json_object_get(p0, "type")), "ptp");
	T_ASSERT(!json_object_get(p0, "name") && !json_object_get(p0, "cniVersion"));
	T_ASSERT(json_object_get(p0, "ipam"));
	T_ASSERT(json_equal(json_array_get(json_object_get(root, "plugins"), 1), e));
	T_ASSERT_INT(chain_list_name("10-kindnet.conf", name, sizeof(name)), 0);
	T_ASSERT_STR(name, "10-kindnet.conflist");
	T_ASSERT_INT(chain_list_name("99-x.json", name, sizeof(name)), 0);
	T_ASSERT_STR(name, "99-x.conflist");
	json_decref(root);
	free(out);
	json_decref(e);
}

static void test_remove(void)
{
	json_t *e = entry(), *a, *b;
	char *ins = NULL, *rem = NULL, err[256];
	size_t n1, n2;

	T_ASSERT_INT(chain_insert(conflist, strlen(conflist), CHAIN_CONFLIST, e, &ins, &n1, NULL, err,
				  sizeof(err)), CHAIN_CHANGED);
	T_ASSERT_INT(chain_remove(ins, n1, &rem, &n2, err, sizeof(err)), CHAIN_CHANGED);
	a = json_loads(conflist, 0, NULL);
	b = json_loads(rem, 0, NULL);
	T_ASSERT(a && b && json_equal(a, b));
	json_decref(a);
	json_decref(b);
	free(rem);
	T_ASSERT_INT(chain_remove(conflist, strlen(conflist), &rem, &n2, err, sizeof(err)), CHAIN_SAME);
	T_ASSERT(rem == NULL);
	free(ins);
	json_decref(e);
}

static void test_unparsable_rejected(void)
{
	const char *bad[] = {
		"{\"cniVersion\":\"1.0.0\",\"plugins\":[{\"type\":\"bridge\"}",  /* truncated */
		"[1,2]",
		"{\"name\":\"n\",\"plugins\":{}}",
		"{\"name\":\"n\",\"plugins\":[{\"bridge\":\"cni0\"}]}",
		"{\"name\":\"n\",\"plugins\":[]}",
		"{\"name\":\"n\",\"plugins\":[{\"type\":\"warren-cni\"}]}",
		"{\"plugins\":[{\"type\":\"a\"}],\"plugins\":[{\"type\":\"b\"}]}",
	};
	json_t *e = entry();
	char *out = (char *)1, err[256];
	size_t len = 1;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		T_ASSERT_INT(chain_insert(bad[i], strlen(bad[i]), CHAIN_CONFLIST, e, &out, &len, NULL, err,
					  sizeof(err)), -EINVAL);
		T_ASSERT(out == NULL && len == 0 && err[0]);
	}
	T_ASSERT_INT(chain_insert("{\"name\":\"x\"}", 12, CHAIN_CONF, e, &out, &len, NULL, err,
				  sizeof(err)), -EINVAL);
	T_ASSERT(strstr(err, "type"));
	json_decref(e);
}

/* The files: insert, record, then restore gives the same bytes and mode. */
static char tmpdir[] = "/tmp/warren-test-chain.XXXXXX";

static void test_files_record_restores_bytes(void)
{
	char name[64], err[512], state[128], *buf = NULL, *out = NULL, *back = NULL;
	struct cnifs_record rec = { 0 }, got;
	json_t *e = entry();
	size_t len, outlen, blen;
	struct stat st;

	T_ASSERT(mkdtemp(tmpdir));
	snprintf(state, sizeof(state), "%s/state", tmpdir);
	T_ASSERT_INT(cnifs_pick(tmpdir, NULL, name, sizeof(name), err, sizeof(err)), -ENOENT);
	T_ASSERT_INT(cnifs_write(tmpdir, "20-b.conflist", conflist, strlen(conflist), 0640, (uid_t)-1,
				 (gid_t)-1, err, sizeof(err)), 0);
	T_ASSERT_INT(cnifs_write(tmpdir, "10-a.conf", conf, strlen(conf), 0600, (uid_t)-1, (gid_t)-1,
				 err, sizeof(err)), 0);
	T_ASSERT_INT(cnifs_write(tmpdir, ".hidden.conf", conf, strlen(conf), 0600, (uid_t)-1, (gid_t)-1,
				 err, sizeof(err)), 0);
	T_ASSERT_INT(cnifs_pick(tmpdir, NULL, name, sizeof(name), err, sizeof(err)), 0);
	T_ASSERT_STR(name, "10-a.conf");
	T_ASSERT_INT(cnifs_pick(tmpdir, "20-b.conflist", name, sizeof(name), err, sizeof(err)), 0);
	T_ASSERT_STR(name, "20-b.conflist");
	T_ASSERT_INT(cnifs_pick(tmpdir, "30-c.conf", name, sizeof(name), err, sizeof(err)), -ENOENT);

	T_ASSERT_INT(cnifs_read(tmpdir, "20-b.conflist", &buf, &len, &st, err, sizeof(err)), 0);
	T_ASSERT_INT(st.st_mode & 0777, 0640);
	T_ASSERT_INT(chain_insert(buf, len, CHAIN_CONFLIST, e, &out, &outlen, NULL, err, sizeof(err)),
		     CHAIN_CHANGED);
	snprintf(rec.orig_name, sizeof(rec.orig_name), "20-b.conflist");
	snprintf(rec.name, sizeof(rec.name), "20-b.conflist");
	rec.orig_mode = st.st_mode;
	rec.orig = buf;
	rec.orig_len = len;
	rec.ours = out;
	rec.ours_len = outlen;
	T_ASSERT_INT(cnifs_record_save(state, &rec, err, sizeof(err)), 0);
	T_ASSERT_INT(cnifs_write(tmpdir, "20-b.conflist", out, outlen, st.st_mode, st.st_uid, st.st_gid,
				 err, sizeof(err)), 0);
	T_ASSERT_INT(cnifs_record_load(state, &got, err, sizeof(err)), 0);
	T_ASSERT_STR(got.orig_name, "20-b.conflist");
	T_ASSERT_INT(got.orig_mode, 0640);
	T_ASSERT(got.ours_len == outlen && !memcmp(got.ours, out, outlen));
	/* restore */
	T_ASSERT_INT(cnifs_write(tmpdir, got.orig_name, got.orig, got.orig_len, got.orig_mode, (uid_t)-1,
				 (gid_t)-1, err, sizeof(err)), 0);
	T_ASSERT_INT(cnifs_read(tmpdir, "20-b.conflist", &back, &blen, &st, err, sizeof(err)), 0);
	T_ASSERT(blen == strlen(conflist) && !memcmp(back, conflist, blen));
	T_ASSERT_INT(st.st_mode & 0777, 0640);
	T_ASSERT_INT(cnifs_record_drop(state, err, sizeof(err)), 0);
	T_ASSERT_INT(cnifs_record_load(state, &rec, err, sizeof(err)), -ENOENT);
	cnifs_record_free(&got);
	free(back);
	free(buf);
	free(out);
	json_decref(e);
}

static void test_files_readonly_dir_is_named(void)
{
	char err[512] = "";
	int ret;

	/* as root a mode-0500 directory is still writable: use a file as
	 * the "directory" for a failure every user gets */
	ret = cnifs_write("/proc/self", "x.conflist", "{}", 2, 0644, (uid_t)-1, (gid_t)-1, err,
			  sizeof(err));
	T_ASSERT(ret < 0);
	T_ASSERT(strstr(err, "/proc/self"));
}

static void cleanup(void)
{
	char cmd[128];

	if (strcmp(tmpdir, "/tmp/warren-test-chain.XXXXXX")) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
		if (system(cmd)) {
		}
	}
}

int main(void)
{
	static const struct t_case cases[] = {
		T_CASE(test_insert_appends_last),
		T_CASE(test_insert_idempotent),
		T_CASE(test_insert_replaces_stale_entry),
		T_CASE(test_wrap_conf),
		T_CASE(test_remove),
		T_CASE(test_unparsable_rejected),
		T_CASE(test_files_record_restores_bytes),
		T_CASE(test_files_readonly_dir_is_named),
	};
	int ret = t_run(cases, sizeof(cases) / sizeof(cases[0]));

	cleanup();
	return ret;
}
