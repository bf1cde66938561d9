/* SPDX-License-Identifier: Apache-2.0 */
/*
 * warren-install: putting warren-cni into the node's CNI chain and taking
 * it out again. install/main.c runs the loop (install, watch, uninstall),
 * install/cnifs.h does the files, and this module
 *
 * chain_*  does the edit of one network configuration, on bytes (pure: no I/O,
 *          no logging). A .conflist gets warren-cni's entry appended to its
 *          "plugins" (after every other plugin, so prevResult carries the
 *          pod's addresses); a single .conf is wrapped first into
 *          {"cniVersion", "name", "plugins": [the .conf without those two]},
 *          and the caller writes it under the .conflist name and removes the
 *          .conf (a runtime reads the lexically first file, and NAME.conf
 *          sorts before NAME.conflist). Inserting where warren-cni already
 *          sits with the same settings changes nothing (CHAIN_SAME), so the
 *          installer's own writes never trigger another write.
 *
 * Errors: every function returns 0 (or the positive status named) or
 * -errno, with a message in err naming the file and what was wrong. Bad
 * input is never written: an unparsable configuration is left untouched.
 * Not thread-safe; warren-install is one thread.
 */
#ifndef WARREN_INSTALL_CHAIN_H
#define WARREN_INSTALL_CHAIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CHAIN_PLUGIN_TYPE "warren-cni"

/* warren-cni's settings in the chain (docs/configuration.md, warren-cni). */
struct chain_settings {
	const char *tunnel_socket;      /* required */
	const char *const *exclude_ns;  /* n_exclude names */
	size_t n_exclude;
	const char *log_file;           /* NULL: not set */
	const char *log_level;          /* NULL: not set */
};

/* The plugin entry for s: {"type": "warren-cni", ...}. NULL on ENOMEM. */
json_t *chain_entry(const struct chain_settings *s);

enum chain_kind { CHAIN_CONF, CHAIN_CONFLIST };
/* By the file name: .conflist, or .conf / .json. -EINVAL otherwise. */
int chain_kind_of(const char *name, enum chain_kind *kind);

enum { CHAIN_CHANGED = 0, CHAIN_SAME = 1 };

/* in/len: the file's bytes, of kind. CHAIN_CHANGED with *out (malloc'd,
 * '\n'-terminated, *outlen bytes) the new .conflist; CHAIN_SAME (out NULL)
 * when warren-cni is already the last plugin with exactly entry's keys.
 * An existing warren-cni entry elsewhere or with other settings is
 * replaced. *had (may be NULL): warren-cni was in the chain before. */
int chain_insert(const char *in, size_t len, enum chain_kind kind, const json_t *entry,
		 char **out, size_t *outlen, bool *had, char *err, size_t errlen);

/* in/len: a .conflist. CHAIN_CHANGED with *out: the same without any
 * warren-cni entry; CHAIN_SAME (out NULL) when it holds none. */
int chain_remove(const char *in, size_t len, char **out, size_t *outlen, char *err,
		 size_t errlen);

/* Does in/len parse and hold a warren-cni entry? */
bool chain_has(const char *in, size_t len);

/* NAME.conf / NAME.json -> NAME.conflist into out. -ENAMETOOLONG. */
int chain_list_name(const char *name, char *out, size_t outlen);

#endif
