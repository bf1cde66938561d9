/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pool of spare eBPF capture programs (docs/ebpf.md, "The pool of
 * pre-loaded programs"): instances of bpf/capture.bpf.c loaded and pinned
 * ahead of time by the tunnel's keeper process, so that an ADD takes one
 * instead of loading its own (the verifier, the JIT and libbpf's
 * per-process feature probes off the ADD's path). A spare is pinned, never
 * attached: it captures nothing.
 *
 * bpffs layout under the plugin's bpfDir (DIR):
 *   DIR/warren/_pool/                the pool; keepers hold a shared flock
 *        on it while they live (the last one to stop removes the pool)
 *   DIR/warren/_pool/<hash>/         spares of one BPF object, <hash> the
 *        first 16 hex digits of the SHA-256 of its bytes (a plugin built
 *        from another object never takes them); a keeper holds an
 *        exclusive flock on it while it tops it up
 *   DIR/warren/_pool/<hash>/<n>/{prog,pod,lis}   spare n (0 to
 *        EBPF_POOL_SIZE - 1): the program, its map warren_pod (empty) and
 *        its SOCKMAP warren_lis (empty)
 * "_pool" cannot be a pod's directory: a CNI container ID starts with a
 * letter or digit.
 *
 * A spare changes hands by rename(2) of its directory (atomic on bpffs):
 * an ADD claims spare n by renaming it to DIR/warren/<containerId>, and a
 * keeper removing one renames it out of the pool first; whoever loses
 * the race gets ENOENT. A spare is made in a temporary directory and
 * renamed into place complete, so a claimed spare is always whole.
 *
 * All functions return 0 (or a count) or -errno, with err naming what is
 * wrong where they take one.
 */
#ifndef WARREN_EBPF_POOL_H
#define WARREN_EBPF_POOL_H

#include <stddef.h>

/* Spares kept per bpfDir: an ADD burst larger than this falls back to
 * loading inline while the keeper refills (docs/ebpf.md says why 4). */
#define EBPF_POOL_SIZE 4

/* A spare's pins (and, with "lis", the pod's layout after a claim). */
#define EBPF_POOL_PROG "prog"
#define EBPF_POOL_POD  "pod"
#define EBPF_POOL_LIS  "lis"

/* This build's object hash (the <hash> directory's name). */
const char *ebpf_pool_hash(void);

/* ADD: move a spare of this build's object to DIR/warren/<key> (which must
 * not exist). 1 claimed, 0 none left (or no pool), -errno. */
int ebpf_pool_claim(const char *dir, const char *key);

/* Keeper: take the shared life-time lock on DIR/warren/_pool (created if
 * needed): the fd, to keep open until ebpf_pool_release. */
int ebpf_pool_hold(const char *dir, char *err, size_t errlen);

/* Keeper: top DIR's pool up to EBPF_POOL_SIZE spares of this build's
 * object, removing spares of other objects and what a crashed keeper left
 * half-made. The number of spares made, or -errno. */
int ebpf_pool_fill(const char *dir, char *err, size_t errlen);

/* Keeper, stopping: close the life-time lock; if no other keeper holds
 * DIR's pool, remove the pool (every spare, then the directory). 1 removed,
 * 0 left to another keeper, -errno. */
int ebpf_pool_release(const char *dir, int hold_fd, char *err, size_t errlen);

#endif
