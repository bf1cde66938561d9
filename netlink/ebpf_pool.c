/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pool of spare eBPF capture programs (contract in ebpf_pool.h): the
 * keeper's side (load, pin, top up, remove) and the ADD's claim.
 */
#include "netlink/ebpf_pool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/capture.h"
#include "bpf/capture.hash.h"
#include "bpf/capture.skel.h"
#include "conf/errbuf.h"
#include "conf/log.h"

#define EBPF_POOL_DIR "_pool"
/* Names in a hash directory: spares are numbers; these, being made or
 * removed (bpffs refuses dots in names). */
#define EBPF_POOL_NEW "new-"
#define EBPF_POOL_DROP "drop-"

const char *ebpf_pool_hash(void)
{
	return CAPTURE_OBJ_HASH;
}

/* DIR/warren/_pool, then each non-NULL component. */
static int ebpf_pool_path(char *buf, size_t len, const char *dir, const char *a, const char *b)
{
	int n = snprintf(buf, len, "%s/warren/" EBPF_POOL_DIR "%s%s%s%s", dir, a ? "/" : "", a ? a : "",
			 b ? "/" : "", b ? b : "");

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int ebpf_pool_claim(const char *dir, const char *key)
{
	char from[256], to[256];
	int n;

	n = snprintf(to, sizeof(to), "%s/warren/%s", dir, key);
	if (n < 0 || (size_t)n >= sizeof(to))
		return -ENAMETOOLONG;
	/* Every ADD tries the same names in the same order: a lost race is
	 * ENOENT and the next name. No readdir, no lock: a few renames. */
	for (unsigned i = 0; i < EBPF_POOL_SIZE; i++) {
		char idx[12];

		snprintf(idx, sizeof(idx), "%u", i);
		if (ebpf_pool_path(from, sizeof(from), dir, CAPTURE_OBJ_HASH, idx) < 0)
			return -ENAMETOOLONG;
		if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
			return 1;
		if (errno != ENOENT)
			return -errno;
	}
	return 0;
}

/* Unpin everything in the directory path (pins only: a spare holds no
 * directory), then remove it. */
static int ebpf_pool_rmspare(const char *path)
{
	struct dirent *e;
	int ret = 0;
	DIR *d = opendir(path);

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT && !ret)
			ret = -errno;
	}
	closedir(d);
	if (rmdir(path) < 0 && errno != ENOENT && !ret)
		ret = -errno;
	return ret;
}

/* Empty the hash directory path: every spare out by rename first (an ADD
 * racing for it gets all of it or ENOENT), then what a keeper left
 * half-made (only when the caller holds the directory's lock: no keeper is
 * making one), then the directory itself unless keep. */
static int ebpf_pool_drain(const char *path, bool locked, bool keep_dir)
{
	char from[300], to[320];
	struct dirent *e;
	int ret = 0, r;
	DIR *d = opendir(path);

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		const char *nm = e->d_name;

		if (!strcmp(nm, ".") || !strcmp(nm, ".."))
			continue;
		snprintf(from, sizeof(from), "%s/%s", path, nm);
		if (nm[0] >= '0' && nm[0] <= '9') {
			snprintf(to, sizeof(to), "%s/" EBPF_POOL_DROP "%d-%s", path, (int)getpid(), nm);
			if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0) {
				if (errno != ENOENT && !ret)
					ret = -errno;
				continue;
			}
			r = ebpf_pool_rmspare(to);
		} else if (locked || !strncmp(nm, EBPF_POOL_DROP, strlen(EBPF_POOL_DROP))) {
			r = ebpf_pool_rmspare(from);
		} else {
			continue;
		}
		if (r < 0 && !ret)
			ret = r;
	}
	closedir(d);
	if (!keep_dir && rmdir(path) < 0 && errno != ENOENT && errno != ENOTEMPTY && !ret)
		ret = -errno;
	return ret;
}

/* Spare n, made in a temporary directory and renamed into place whole. */
static int ebpf_pool_make(const char *hashdir, unsigned n, char *err, size_t errlen)
{
	struct capture_bpf *skel;
	char tmp[288], final[288], pin[300];
	int ret;

	snprintf(tmp, sizeof(tmp), "%s/" EBPF_POOL_NEW "%u", hashdir, n);
	snprintf(final, sizeof(final), "%s/%u", hashdir, n);
	if (mkdir(tmp, 0700) < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return ret;
	}
	skel = capture_bpf__open_and_load();
	if (!skel) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot load the eBPF program " CAPTURE_PROG_NAME ": %s", strerror(errno));
		goto out;
	}
	snprintf(pin, sizeof(pin), "%s/" EBPF_POOL_PROG, tmp);
	ret = bpf_program__pin(skel->progs.warren_capture, pin);
	if (ret == 0) {
		snprintf(pin, sizeof(pin), "%s/" EBPF_POOL_POD, tmp);
		ret = bpf_map__pin(skel->maps.warren_pod, pin);
	}
	if (ret == 0) {
		snprintf(pin, sizeof(pin), "%s/" EBPF_POOL_LIS, tmp);
		ret = bpf_map__pin(skel->maps.warren_lis, pin);
	}
	if (ret < 0) {
		errbuf_set(err, errlen, "cannot pin %s: %s", pin, strerror(-ret));
		goto out;
	}
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE) < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (ret < 0)
		ebpf_pool_rmspare(tmp);
	capture_bpf__destroy(skel); /* the pins keep the spare */
	return ret;
}

static int ebpf_pool_mkdirs(const char *dir, const char *hash, char *err, size_t errlen)
{
	char path[256];
	int n;

	n = snprintf(path, sizeof(path), "%s/warren", dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		goto fail;
	if (ebpf_pool_path(path, sizeof(path), dir, NULL, NULL) < 0)
		return -ENAMETOOLONG;
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		goto fail;
	if (!hash)
		return 0;
	if (ebpf_pool_path(path, sizeof(path), dir, hash, NULL) < 0)
		return -ENAMETOOLONG;
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		goto fail;
	return 0;
fail:
	n = -errno;
	errbuf_set(err, errlen, "cannot create the bpffs directory %s: %s", path, strerror(errno));
	return n;
}

int ebpf_pool_hold(const char *dir, char *err, size_t errlen)
{
	char path[256];
	struct stat a, b;
	int fd, ret;

	if (ebpf_pool_path(path, sizeof(path), dir, NULL, NULL) < 0) {
		errbuf_set(err, errlen, "bpfDir %.64s is too long", dir);
		return -ENAMETOOLONG;
	}
	/* A stopping keeper may remove the directory between our open and
	 * our lock: then lock the new one. */
	for (int tries = 0; tries < 8; tries++) {
		ret = ebpf_pool_mkdirs(dir, NULL, err, errlen);
		if (ret < 0)
			return ret;
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_SH) == 0 && fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev)
			return fd;
		close(fd);
	}
	errbuf_set(err, errlen, "cannot lock %s (it keeps being removed)", path);
	return -EAGAIN;
}

int ebpf_pool_fill(const char *dir, char *err, size_t errlen)
{
	char pool[256], hashdir[256], path[512];
	struct dirent *e;
	struct stat st;
	int fd, ret, made = 0;
	DIR *d;

	errbuf_set(err, errlen, "%s", "");
	if (ebpf_pool_path(pool, sizeof(pool), dir, NULL, NULL) < 0 ||
	    ebpf_pool_path(hashdir, sizeof(hashdir), dir, CAPTURE_OBJ_HASH, NULL) < 0) {
		errbuf_set(err, errlen, "bpfDir %.64s is too long", dir);
		return -ENAMETOOLONG;
	}
	ret = ebpf_pool_mkdirs(dir, CAPTURE_OBJ_HASH, err, errlen);
	if (ret < 0)
		return ret;
	fd = open(hashdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot lock %s: %s", hashdir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return ret;
	}
	/* Spares of other objects: only a plugin of another build could use
	 * them. One whose keeper is topping it up right now is left alone. */
	d = opendir(pool);
	while (d && (e = readdir(d))) {
		int ofd;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, CAPTURE_OBJ_HASH))
			continue;
		snprintf(path, sizeof(path), "%s/%s", pool, e->d_name);
		ofd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (ofd < 0)
			continue;
		if (flock(ofd, LOCK_EX | LOCK_NB) == 0) {
			log_info("ebpf pool: removing the spares of another BPF object (%s)", e->d_name);
			ebpf_pool_drain(path, true, false);
		}
		close(ofd);
	}
	if (d)
		closedir(d);
	/* What a keeper that died while making a spare left. */
	d = opendir(hashdir);
	while (d && (e = readdir(d))) {
		if (!strncmp(e->d_name, EBPF_POOL_NEW, strlen(EBPF_POOL_NEW)) ||
		    !strncmp(e->d_name, EBPF_POOL_DROP, strlen(EBPF_POOL_DROP))) {
			snprintf(path, sizeof(path), "%s/%s", hashdir, e->d_name);
			ebpf_pool_rmspare(path);
		}
	}
	if (d)
		closedir(d);
	for (unsigned i = 0; i < EBPF_POOL_SIZE; i++) {
		snprintf(path, sizeof(path), "%s/%u", hashdir, i);
		if (stat(path, &st) == 0)
			continue;
		ret = ebpf_pool_make(hashdir, i, err, errlen);
		if (ret < 0)
			break;
		made++;
	}
	flock(fd, LOCK_UN);
	close(fd);
	return ret < 0 ? ret : made;
}

int ebpf_pool_release(const char *dir, int hold_fd, char *err, size_t errlen)
{
	char pool[256], path[512];
	struct dirent *e;
	int ret = 0, r;
	DIR *d;

	errbuf_set(err, errlen, "%s", "");
	/* Every live keeper holds the pool shared: exclusive means none is
	 * left but us. (A failed conversion drops our shared lock: we are
	 * stopping anyway.) */
	if (flock(hold_fd, LOCK_EX | LOCK_NB) < 0) {
		close(hold_fd);
		return 0;
	}
	ebpf_pool_path(pool, sizeof(pool), dir, NULL, NULL);
	d = opendir(pool);
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", pool, e->d_name);
		r = ebpf_pool_drain(path, true, false);
		if (r < 0 && !ret) {
			ret = r;
			errbuf_set(err, errlen, "cannot remove %s: %s", path, strerror(-r));
		}
	}
	if (d)
		closedir(d);
	if (rmdir(pool) < 0 && errno != ENOENT && !ret) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot remove %s: %s", pool, strerror(errno));
	}
	close(hold_fd);
	return ret < 0 ? ret : 1;
}
