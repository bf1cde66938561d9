/* SPDX-License-Identifier: Apache-2.0 */
/*
 * warren-install's files (the edit itself is install/chain.h): which
 * configuration is the primary one, reading it, atomic writes (a temporary
 * file in the same directory, fsync, rename: a runtime never reads half a
 * file) that keep the mode and owner of the file replaced, copying the
 * plugin binary, and the installer's record of what it changed. The record
 * lives in a state directory on the node, so that an uninstall, even by a
 * later installer version, restores the configuration byte for byte:
 *   STATE/orig     the file's bytes just before warren-cni went in
 *   STATE/ours     the bytes warren-install wrote
 *   STATE/record   {"origName", "origMode", "name"} (JSON), written last:
 *                  the commit point
 * Uninstall restores orig under origName when the file still holds exactly
 * ours; when another agent has changed it since (keeping warren-cni), only
 * the entry is removed, as JSON.
 *
 * Every function returns 0 or -errno with a message in err naming the
 * file. Not thread-safe; warren-install is one thread.
 */
#ifndef WARREN_INSTALL_CNIFS_H
#define WARREN_INSTALL_CNIFS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* The primary configuration in dir: want (a file name) when given, else
 * the lexically first *.conf, *.conflist or *.json (hidden files skipped),
 * as runtimes choose it. A wanted .conf that warren-install has wrapped is
 * found under its .conflist name. -ENOENT when there is none yet. */
int cnifs_pick(const char *dir, const char *want, char *name, size_t namelen, char *err,
	       size_t errlen);

/* Reads dir/name (at most 1 MiB) into *buf (malloc'd, NUL-terminated) and
 * its stat into *st. */
int cnifs_read(const char *dir, const char *name, char **buf, size_t *len, struct stat *st,
	       char *err, size_t errlen);

/* Writes buf as dir/name atomically, with mode and owner (uid/gid -1:
 * leave as created). */
int cnifs_write(const char *dir, const char *name, const void *buf, size_t len, mode_t mode,
		uid_t uid, gid_t gid, char *err, size_t errlen);

/* Copies the file src to dir/name atomically, mode 0755. */
int cnifs_copy(const char *src, const char *dir, const char *name, char *err, size_t errlen);

/* Do dir/name and src hold the same bytes? (false when either is missing) */
bool cnifs_same(const char *src, const char *dir, const char *name);

struct cnifs_record {
	char orig_name[256];  /* the file as it was before install */
	mode_t orig_mode;
	char name[256];       /* the file warren-install wrote (.conflist) */
	char *orig;           /* its bytes before install (malloc'd) */
	size_t orig_len;
	char *ours;           /* the bytes warren-install wrote (malloc'd) */
	size_t ours_len;
};

/* Saves / loads / deletes the record in state_dir (created if missing).
 * load: -ENOENT when there is none. */
int cnifs_record_save(const char *state_dir, const struct cnifs_record *r, char *err,
		      size_t errlen);
int cnifs_record_load(const char *state_dir, struct cnifs_record *r, char *err, size_t errlen);
int cnifs_record_drop(const char *state_dir, char *err, size_t errlen);
void cnifs_record_free(struct cnifs_record *r);

#endif
