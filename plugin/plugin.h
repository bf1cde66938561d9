/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared prototypes of warren-cni's commands (plugin/cmd_*.c) and their
 * helpers (plugin/common.c). plugin/main.c reads stdin and the CNI_*
 * environment, parses them into a struct plugin_ctx, dispatches on
 * CNI_COMMAND and prints either the result or the error JSON.
 *
 * A command returns 0 with *result set to the JSON to print (a new
 * reference, or NULL to print nothing), or -1 with err filled. Commands
 * never write to stdout themselves.
 */
#ifndef WARREN_PLUGIN_H
#define WARREN_PLUGIN_H

#include "conf/cni.h"
#include "netlink/inpod.h"

#include <jansson.h>

struct plugin_ctx {
	const struct cni_conf *conf; /* NULL for VERSION */
	const char *stdin_version;   /* VERSION: the input cniVersion or NULL */
	/* CNI_* environment, borrowed from environ; NULL when unset */
	const char *container_id;
	const char *netns;
	const char *ifname;
	const char *cni_args;
	struct cni_args args;        /* parsed CNI_ARGS (owned by main) */
	bool args_ok;                /* CNI_ARGS parsed (DEL tolerates a bad one) */
};

typedef int (*plugin_cmd_fn)(struct plugin_ctx *ctx, json_t **result, struct cni_error *err);

int cmd_add(struct plugin_ctx *ctx, json_t **result, struct cni_error *err);
int cmd_del(struct plugin_ctx *ctx, json_t **result, struct cni_error *err);
int cmd_check(struct plugin_ctx *ctx, json_t **result, struct cni_error *err);
int cmd_version(struct plugin_ctx *ctx, json_t **result, struct cni_error *err);
int cmd_status(struct plugin_ctx *ctx, json_t **result, struct cni_error *err);
int cmd_gc(struct plugin_ctx *ctx, json_t **result, struct cni_error *err);

/* One request/response with warren-tunnel at conf->tunnel_socket (req is
 * borrowed; it gets "v" added). 0 and *resp (owned) when the tunnel
 * answered ok=true. Otherwise -1 and err: 11 not reachable, no answer in
 * time, or an answer with "retry": true; 101 malformed answer, 100 the
 * tunnel answered ok=false (its error text in details). */
int plugin_tunnel_call(const struct plugin_ctx *ctx, json_t *req, int pass_fd, json_t **resp,
		       struct cni_error *err);

/* Ask warren-tunnel ("query") whether the mesh enrolls the pod, and log its
 * answer and reason: 1 yes, 0 no, or -1 with err (as plugin_tunnel_call,
 * or 101 when the answer has no boolean "enroll" or a bad mode). *mode
 * (may be NULL) gets how an enrolled pod is captured (its annotations). */
int plugin_query_enrolled(const struct plugin_ctx *ctx, struct inpod_mode *mode, struct cni_error *err);
/* The capture mode in a tunnel's answer to op: 0, or -1 with err (101). */
int plugin_answer_mode(const struct plugin_ctx *ctx, json_t *resp, const char *op,
		       struct inpod_mode *mode, struct cni_error *err);

/* Open CNI_NETNS. 0 and *fd, or -1 with err code 4 naming CNI_NETNS when
 * it does not exist, is not a network namespace, or is the plugin's own
 * network namespace (we must never program the host); *errno_out (may be
 * NULL) gets the -errno cause. */
int plugin_open_netns(const struct plugin_ctx *ctx, int *fd, int *errno_out, struct cni_error *err);

/* The pod's capture, in mode->redirect's way (netlink/inpod.h or
 * netlink/inpod_ebpf.h), and the other way's leftovers removed first (a
 * node switched modes). -errno with ierr. */
int plugin_capture_apply(const struct plugin_ctx *ctx, int nsfd, const struct inpod_mode *mode,
			 char *ierr, size_t ierrlen);
/* Remove the capture of either kind (DEL does not know the mode); nsfd
 * may be -1 (netns gone: only the pinned eBPF objects are removed). */
int plugin_capture_remove(const struct plugin_ctx *ctx, int nsfd, char *ierr, size_t ierrlen);
int plugin_capture_check(const struct plugin_ctx *ctx, int nsfd, const struct inpod_mode *mode,
			 char *ierr, size_t ierrlen);

/* "ns/name" of the pod for messages, into buf. */
const char *plugin_pod_name(const struct plugin_ctx *ctx, char *buf, size_t len);

/* Is this a Kubernetes pod that the config does not exclude? Logs why not. */
bool plugin_pod_is_candidate(const struct plugin_ctx *ctx);

#endif
