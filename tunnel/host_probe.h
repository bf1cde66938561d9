/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node's table for kubelet probes (host_probe.c): the kubelet's UID
 * and cgroup, and the nftables table that makes its probes leave from the
 * probe address. Main thread; the finders are pure (any thread).
 */
#ifndef WARREN_TUNNEL_HOST_PROBE_H
#define WARREN_TUNNEL_HOST_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct tunnel;

/* Opens the netfilter socket and finds the kubelet's UID; with
 * hostProbeSnat: false deletes the table instead. Problems are logged and
 * leave probes captured: 0, or -ENOMEM. */
int host_probe_start(struct tunnel *t);
void host_probe_stop(struct tunnel *t);
/* Sync the table with the pods when t->host_probe_stale (after adoption). */
void host_probe_flush(struct tunnel *t);
json_t *host_probe_json(const struct tunnel *t);
/* The UID of a kubelet, kubelite or k3s process under proc (a procfs
 * path), Istio's way: 0 with *uid and *pid, -ENOENT, -EEXIST when such
 * processes run under different UIDs (err says which), or -errno. */
int kubelet_uid_find(const char *proc, long long *uid, long *pid, char *err, size_t errlen);
/* The cgroup v2 of process pid (its "0::" line under proc) as a path, its
 * id (the inode of cgroot+path) and depth. 0; -EEXIST when the cgroup is
 * the root or holds a process that is neither pid nor its child (err says
 * which), so that the kubelet's uid alone must do; -ENOENT; -errno. */
int kubelet_cgroup_find(const char *proc, const char *cgroot, long pid, char *path,
			size_t pathlen, uint64_t *id, uint32_t *level, char *err, size_t errlen);

#endif
