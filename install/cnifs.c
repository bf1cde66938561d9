/* SPDX-License-Identifier: Apache-2.0 */
/* warren-install's files (contract in install/cnifs.h). */
#include "install/cnifs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/errbuf.h"
#include "install/chain.h"

#define CNIFS_MAX (1u << 20)      /* a configuration file */
#define CNIFS_BIN_MAX (64u << 20) /* the plugin binary (a sanitizer build is several MiB) */

int cnifs_pick(const char *dir, const char *want, char *name, size_t namelen, char *err,
	       size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char *best = NULL, wrapped[NAME_MAX + 1] = "";
	bool found_wrapped = false;
	enum chain_kind kind;
	int ret = -ENOENT;

	if (!d) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot open the CNI configuration directory %s: %s", dir,
			   strerror(-ret));
		return ret;
	}
	if (want && chain_kind_of(want, &kind) == 0 && kind == CHAIN_CONF)
		chain_list_name(want, wrapped, sizeof(wrapped));
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || chain_kind_of(de->d_name, &kind))
			continue;
		if (want) {
			if (!strcmp(de->d_name, want)) {
				free(best);
				best = strdup(de->d_name);
				break;
			}
			found_wrapped = found_wrapped || !strcmp(de->d_name, wrapped);
			continue;
		}
		if (!best || strcmp(de->d_name, best) < 0) {
			free(best);
			best = strdup(de->d_name);
			if (!best)
				break;
		}
	}
	closedir(d);
	if (!best && found_wrapped)
		best = strdup(wrapped);
	if (best) {
		if (strlen(best) >= namelen) {
			ret = -ENAMETOOLONG;
			errbuf_set(err, errlen, "%s/%s: name too long", dir, best);
		} else {
			strcpy(name, best);
			ret = 0;
		}
		free(best);
		return ret;
	}
	errbuf_set(err, errlen, want ? "no %s in %s yet" : "%s%s: no *.conf, *.conflist or *.json yet",
		   want ? want : "", dir);
	return -ENOENT;
}

/* Reads fd (at most max bytes) into a NUL-terminated buffer. */
static int cnifs_slurp(int fd, size_t max, char **buf, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *b = malloc(cap + 1);

	if (!b)
		return -ENOMEM;
	for (;;) {
		ssize_t r;

		if (n == cap) {
			char *nb;

			if (cap >= max) {
				free(b);
				return -EFBIG;
			}
			cap *= 2;
			nb = realloc(b, cap + 1);
			if (!nb) {
				free(b);
				return -ENOMEM;
			}
			b = nb;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			free(b);
			return -e;
		}
		if (!r)
			break;
		n += (size_t)r;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

int cnifs_read(const char *dir, const char *name, char **buf, size_t *len, struct stat *st,
	       char *err, size_t errlen)
{
	char path[PATH_MAX];
	int fd, ret;

	*buf = NULL;
	*len = 0;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot open %s: %s", path, strerror(-ret));
		return ret;
	}
	ret = fstat(fd, st) ? -errno : cnifs_slurp(fd, CNIFS_MAX, buf, len);
	close(fd);
	if (ret)
		errbuf_set(err, errlen, "cannot read %s: %s", path,
			   ret == -EFBIG ? "larger than 1 MiB" : strerror(-ret));
	return ret;
}

static int cnifs_write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

int cnifs_write(const char *dir, const char *name, const void *buf, size_t len, mode_t mode,
		uid_t uid, gid_t gid, char *err, size_t errlen)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	const char *what = "create a temporary file in";
	int fd, ret;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.warren-XXXXXX", dir, name);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto fail;
	}
	what = "write";
	ret = cnifs_write_all(fd, buf, len);
	if (!ret && fchmod(fd, mode & 07777))
		ret = -errno;
	/* keeping the owner may be refused without CAP_CHOWN: then it is the
	 * writer's (root's), which runtimes accept */
	if (!ret && (uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) && errno != EPERM)
		ret = -errno;
	if (!ret && fsync(fd))
		ret = -errno;
	if (close(fd) && !ret)
		ret = -errno;
	if (!ret) {
		what = "rename into place";
		if (rename(tmp, path))
			ret = -errno;
	}
	if (ret)
		unlink(tmp);
	else
		return 0;
fail:
	errbuf_set(err, errlen, "cannot %s %s: %s", what, fd < 0 ? dir : path, strerror(-ret));
	return ret;
}

int cnifs_copy(const char *src, const char *dir, const char *name, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	int fd = open(src, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot open %s: %s", src, strerror(-ret));
		return ret;
	}
	ret = cnifs_slurp(fd, CNIFS_BIN_MAX, &buf, &len);
	close(fd);
	if (ret) {
		errbuf_set(err, errlen, "cannot read %s: %s", src, strerror(-ret));
		return ret;
	}
	ret = cnifs_write(dir, name, buf, len, 0755, (uid_t)-1, (gid_t)-1, err, errlen);
	free(buf);
	return ret;
}

bool cnifs_same(const char *src, const char *dir, const char *name)
{
	char *a = NULL, *b = NULL, path[PATH_MAX];
	size_t alen = 0, blen = 0;
	int fa, fb;
	bool same = false;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fa = open(src, O_RDONLY | O_CLOEXEC);
	fb = open(path, O_RDONLY | O_CLOEXEC);
	if (fa >= 0 && fb >= 0 && !cnifs_slurp(fa, CNIFS_BIN_MAX, &a, &alen) && !cnifs_slurp(fb, CNIFS_BIN_MAX, &b, &blen))
		same = alen == blen && !memcmp(a, b, alen);
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	free(a);
	free(b);
	return same;
}

int cnifs_record_save(const char *state_dir, const struct cnifs_record *r, char *err,
		      size_t errlen)
{
	json_t *rec;
	char *s;
	int ret;

	if (mkdir(state_dir, 0700) && errno != EEXIST) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot create the state directory %s: %s", state_dir,
			   strerror(-ret));
		return ret;
	}
	rec = json_pack("{s:s, s:i, s:s}", "origName", r->orig_name, "origMode", (int)(r->orig_mode & 07777),
			"name", r->name);
	s = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
	json_decref(rec);
	if (!s) {
		errbuf_set(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ret = cnifs_write(state_dir, "orig", r->orig, r->orig_len, 0600, (uid_t)-1, (gid_t)-1, err, errlen);
	if (!ret)
		ret = cnifs_write(state_dir, "ours", r->ours, r->ours_len, 0600, (uid_t)-1, (gid_t)-1,
				  err, errlen);
	if (!ret)
		ret = cnifs_write(state_dir, "record", s, strlen(s), 0600, (uid_t)-1, (gid_t)-1, err,
				  errlen);
	free(s);
	return ret;
}

static int cnifs_copy_name(char *dst, size_t len, const json_t *v)
{
	const char *s = json_string_value(v);

	if (!s || !*s || strchr(s, '/') || strlen(s) >= len)
		return -EINVAL;
	strcpy(dst, s);
	return 0;
}

int cnifs_record_load(const char *state_dir, struct cnifs_record *r, char *err, size_t errlen)
{
	struct stat st;
	json_error_t je;
	json_t *rec = NULL;
	char *s = NULL;
	size_t len;
	int ret;

	memset(r, 0, sizeof(*r));
	ret = cnifs_read(state_dir, "record", &s, &len, &st, err, errlen);
	if (ret)
		return ret;
	rec = json_loadb(s, len, 0, &je);
	if (!rec || cnifs_copy_name(r->orig_name, sizeof(r->orig_name), json_object_get(rec, "origName")) ||
	    cnifs_copy_name(r->name, sizeof(r->name), json_object_get(rec, "name")) ||
	    !json_is_integer(json_object_get(rec, "origMode"))) {
		errbuf_set(err, errlen, "%s/record: not a record of warren-install (origName, origMode, name)",
			   state_dir);
		ret = -EINVAL;
		goto out;
	}
	r->orig_mode = (mode_t)json_integer_value(json_object_get(rec, "origMode")) & 07777;
	ret = cnifs_read(state_dir, "orig", &r->orig, &r->orig_len, &st, err, errlen);
	if (!ret)
		ret = cnifs_read(state_dir, "ours", &r->ours, &r->ours_len, &st, err, errlen);
out:
	json_decref(rec);
	free(s);
	if (ret)
		cnifs_record_free(r);
	return ret;
}

int cnifs_record_drop(const char *state_dir, char *err, size_t errlen)
{
	const char *names[] = { "record", "ours", "orig" };
	char path[PATH_MAX];

	/* the record first: without it the others mean nothing */
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", state_dir, names[i]);
		if (unlink(path) && errno != ENOENT) {
			int ret = -errno;

			errbuf_set(err, errlen, "cannot remove %s: %s", path, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

void cnifs_record_free(struct cnifs_record *r)
{
	free(r->orig);
	free(r->ours);
	r->orig = r->ours = NULL;
}
