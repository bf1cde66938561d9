/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CNI DEL: best effort and idempotent. Removes warren's in-pod redirection
 * when the netns still exists and tells warren-tunnel to forget the pod.
 * Missing things (no prevResult, empty or vanished CNI_NETNS, a pod never
 * added, a tunnel that is down) are logged, never returned: a failing DEL
 * stops the runtime from tearing down the plugins before us in the chain.
 */
#include "plugin/plugin.h"

#include "conf/log.h"
#include "netlink/inpod.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static void cmd_del_remove_redirect(const struct plugin_ctx *ctx)
{
	char ierr[512] = "";
	int nsfd = -1, cause = 0, r;

	if (!ctx->netns || !*ctx->netns) {
		log_debug("container %s: no CNI_NETNS, nothing to remove in the pod", ctx->container_id);
	} else if (plugin_open_netns(ctx, &nsfd, &cause, NULL) < 0) {
		if (cause == -ENOENT)
			log_debug("container %s: netns %s is gone, nothing to remove in it", ctx->container_id, ctx->netns);
		else
			log_warn("container %s: not touching netns %s: %s", ctx->container_id, ctx->netns,
				 strerror(-cause));
		/* The pinned eBPF objects live in bpffs, not in the netns. */
		nsfd = -1;
	}
	r = plugin_capture_remove(ctx, nsfd, ierr, sizeof(ierr));
	if (r < 0)
		log_error("container %s: removing redirection in %s failed: %s", ctx->container_id, ctx->netns, ierr);
	if (nsfd >= 0)
		close(nsfd);
}

static void cmd_del_tell_tunnel(const struct plugin_ctx *ctx)
{
	struct cni_error err = { 0 };
	json_t *req, *resp = NULL, *known;

	req = json_pack("{s:s, s:s, s:s}", "op", "del", "containerId", ctx->container_id, "ifname", ctx->ifname);
	if (!req || (ctx->args.pod_uid && json_object_set_new(req, "uid", json_string(ctx->args.pod_uid)) < 0)) {
		log_error("container %s: out of memory building the del request", ctx->container_id);
		goto out;
	}
	if (plugin_tunnel_call(ctx, req, -1, &resp, &err) < 0) {
		log_warn("container %s: could not tell warren-tunnel: %s; %s", ctx->container_id, err.msg, err.details);
		goto out;
	}
	known = json_object_get(resp, "known");
	log_info("container %s: warren-tunnel %s", ctx->container_id,
		 json_is_true(known) ? "forgot the pod" : "did not know the pod");
out:
	json_decref(req);
	json_decref(resp);
}

int cmd_del(struct plugin_ctx *ctx, json_t **result, struct cni_error *err)
{
	*result = NULL;
	cmd_del_remove_redirect(ctx);
	/* ADD never contacted the tunnel for these; neither does DEL, so a
	 * node without a tunnel tears down kube-system pods quietly. With
	 * unparseable CNI_ARGS we cannot tell, so we ask. */
	if (!ctx->args_ok || plugin_pod_is_candidate(ctx))
		cmd_del_tell_tunnel(ctx);
	return 0;
}
