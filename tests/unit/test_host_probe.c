/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kubelet_uid_find() (tunnel/host_probe.c) on a made-up procfs: the
 * kubelet is found by its comm and command line, as Istio finds it; a
 * process that only calls itself kubelet is not. kubelet_cgroup_find() on
 * a made-up procfs and cgroup v2 tree: a cgroup of its own (and of its
 * children) is used; the root cgroup or one shared with another process
 * is not.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tunnel/host_probe.h"

#include "tests/unit/t.h"

static char root[64];
static char err[256];

static void put(const char *pid, const char *name, const void *data, size_t len)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, pid);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", root, pid, name);
	f = fopen(path, "w");
	if (f) {
		fwrite(data, 1, len, f);
		fclose(f);
	}
}

/* A process: comm, its NUL-separated command line (cmdlen bytes), real uid. */
static void proc(const char *pid, const char *comm, const char *cmdline, size_t cmdlen, int uid)
{
	char status[256], c[64];

	snprintf(c, sizeof(c), "%s\n", comm);
	put(pid, "comm", c, strlen(c));
	put(pid, "cmdline", cmdline, cmdlen);
	snprintf(status, sizeof(status), "Name:\t%s\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t%s\nPid:\t%s\nUid:\t%d\t%d\t%d\t%d\nGid:\t0\t0\t0\t0\n",
		 comm, pid, pid, uid, uid + 1, uid + 2, uid + 3);
	put(pid, "status", status, strlen(status));
}

static void fresh_root(void)
{
	char cmd[128];

	if (root[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
		if (system(cmd) != 0)
			fprintf(stderr, "# cannot remove %s\n", root);
	}
	snprintf(root, sizeof(root), "/tmp/warren-proc.XXXXXX");
	if (!mkdtemp(root))
		root[0] = '\0';
}

static void test_finds_kubelet(void)
{
	static const char real[] = "/usr/bin/kubelet\0--config=/var/lib/kubelet/config.yaml";
	static const char spoof[] = "/usr/bin/sleep\0" "600";
	long long uid = -1;
	long pid = 0;

	fresh_root();
	T_ASSERT(root[0]);
	proc("1", "systemd", "/sbin/init", 11, 0);
	proc("200", "kubelet", spoof, sizeof(spoof), 7); /* named so, but is not */
	proc("300", "kubelet", real, sizeof(real), 1234);
	put("self", "comm", "kubelet\n", 8); /* not a pid */
	T_ASSERT_INT(kubelet_uid_find(root, &uid, &pid, err, sizeof(err)), 0);
	T_ASSERT_INT(uid, 1234); /* the first (real) uid of the status line */
	T_ASSERT_INT(pid, 300);
}

static void test_kubelite_and_k3s(void)
{
	long long uid = -1;
	long pid = 0;

	fresh_root();
	proc("42", "kubelite", "/snap/microk8s/kubelite", 24, 0);
	T_ASSERT_INT(kubelet_uid_find(root, &uid, &pid, err, sizeof(err)), 0);
	T_ASSERT_INT(uid, 0);
	T_ASSERT_INT(pid, 42);
	fresh_root();
	proc("43", "k3s", "k3s server", 11, 55); /* no command-line check for k3s */
	T_ASSERT_INT(kubelet_uid_find(root, &uid, &pid, err, sizeof(err)), 0);
	T_ASSERT_INT(uid, 55);
	T_ASSERT_INT(pid, 43);
}

static void test_not_found(void)
{
	long long uid = -1;
	long pid = 0;

	fresh_root();
	proc("1", "systemd", "/sbin/init", 11, 0);
	proc("2", "kubelet-x", "/usr/bin/kubelet-x", 19, 3);    /* comm must be exact */
	put("3", "comm", "kubelet\n", 8);                       /* no status */
	put("3", "cmdline", "kubelet", 8);
	proc("4", "kubelet", "/usr/bin/sleep\0" "600", 19, 7); /* comm alone is not enough */
	T_ASSERT_INT(kubelet_uid_find(root, &uid, &pid, err, sizeof(err)), -ENOENT);
	T_ASSERT_INT(kubelet_uid_find("/nonexistent/proc", &uid, &pid, err, sizeof(err)), -ENOENT);
}

static void test_two_owners(void)
{
	static const char real[] = "/usr/bin/kubelet\0--v=2";
	long long uid = -1;
	long pid = 0;

	fresh_root();
	proc("300", "kubelet", real, sizeof(real), 0);
	proc("301", "kubelet", real, sizeof(real), 0); /* a second one, same uid: fine */
	T_ASSERT_INT(kubelet_uid_find(root, &uid, &pid, err, sizeof(err)), 0);
	T_ASSERT_INT(uid, 0);
	proc("900", "k3s", "k3s", 4, 1000); /* someone else's look-alike */
	T_ASSERT_INT(kubelet_uid_find(root, &uid, &pid, err, sizeof(err)), -EEXIST);
	T_ASSERT(strstr(err, "uid 1000 (pid 900)"));
	T_ASSERT(strstr(err, "uid 0 (pid 30"));
	fresh_root(); /* the last test: removes the tree, and leaves an empty dir */
	rmdir(root);
}

static void put_str(const char *pid, const char *name, const char *text)
{
	put(pid, name, text, strlen(text));
}

static void test_cgroup(void)
{
	static const char real[] = "/usr/bin/kubelet";
	char cg[128], path[400], dir[300];
	uint32_t level = 0;
	uint64_t id = 0;
	struct stat st;
	FILE *f;

	fresh_root();
	snprintf(cg, sizeof(cg), "%s/cg", root);
	snprintf(dir, sizeof(dir), "%s/cg/system.slice/kubelet.service", root);
	T_ASSERT_INT(system(strcat(strcpy(path, "mkdir -p "), dir)), 0);
	T_ASSERT_INT(stat(dir, &st), 0);
	proc("300", "kubelet", real, sizeof(real), 0);
	put_str("300", "cgroup", "1:name=systemd:/system.slice/kubelet.service\n0::/system.slice/kubelet.service\n");
	proc("301", "mount", "mount", 6, 0); /* a helper the kubelet started */
	put_str("301", "status", "Name:\tmount\nPPid:\t300\n");
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "w");
	T_ASSERT(f);
	fputs("300\n301\n", f);
	fclose(f);
	T_ASSERT_INT(kubelet_cgroup_find(root, cg, 300, path, sizeof(path), &id, &level, err, sizeof(err)), 0);
	T_ASSERT_STR(path, "/system.slice/kubelet.service");
	T_ASSERT_INT(level, 2);
	T_ASSERT(id == (uint64_t)st.st_ino);
	/* another process in it: its connections would pass as probes */
	proc("302", "sh", "sh", 3, 0);
	put_str("302", "status", "Name:\tsh\nPPid:\t1\n");
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "a");
	T_ASSERT(f);
	fputs("302\n", f);
	fclose(f);
	T_ASSERT_INT(kubelet_cgroup_find(root, cg, 300, path, sizeof(path), &id, &level, err, sizeof(err)), -EEXIST);
	T_ASSERT(strstr(err, "also holds pid 302"));
	/* the root cgroup holds everything */
	put_str("300", "cgroup", "0::/\n");
	T_ASSERT_INT(kubelet_cgroup_find(root, cg, 300, path, sizeof(path), &id, &level, err, sizeof(err)), -EEXIST);
	T_ASSERT(strstr(err, "root cgroup"));
	/* cgroup v1 only, or a cgroup that is not there */
	put_str("300", "cgroup", "4:memory:/kubelet\n");
	T_ASSERT_INT(kubelet_cgroup_find(root, cg, 300, path, sizeof(path), &id, &level, err, sizeof(err)), -ENOENT);
	put_str("300", "cgroup", "0::/gone\n");
	T_ASSERT_INT(kubelet_cgroup_find(root, cg, 300, path, sizeof(path), &id, &level, err, sizeof(err)), -ENOENT);
}

T_MAIN(T_CASE(test_finds_kubelet), T_CASE(test_kubelite_and_k3s), T_CASE(test_not_found),
       T_CASE(test_cgroup), T_CASE(test_two_owners))
