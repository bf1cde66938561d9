/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CNI ADD. Passes prevResult through (re-encoded for the config's
 * cniVersion) and, for an enrolled pod, programs the in-pod redirection and
 * hands the pod's netns to warren-tunnel. Succeeds only when the tunnel has
 * acknowledged the pod; on any failure after programming, the redirection
 * is removed again and ADD fails (fail closed: the runtime retries the
 * sandbox rather than starting a pod whose traffic goes nowhere).
 */
#include "plugin/plugin.h"

#include "conf/handoff.h"
#include "conf/log.h"
#include "netlink/inpod.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static int cmd_add_hand_off(const struct plugin_ctx *ctx, int nsfd, const struct inpod_mode *mode,
		    struct cni_error *err)
{
	const struct cni_args *a = &ctx->args;
	json_t *req, *ips, *resp = NULL;
	int ret = -1;

	ips = cni_result_ips(ctx->conf->prev_result);
	req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o*}", "op", "add", "namespace", a->pod_namespace,
			"name", a->pod_name, "containerId", ctx->container_id, "ifname", ctx->ifname,
			"netns", ctx->netns, "ips", ips);
	/* K8S_POD_UID is absent under some runtimes (podman, dockershim). */
	if (!ips || !req || handoff_mode_put(req, mode) < 0 ||
	    (a->pod_uid && json_object_set_new(req, "uid", json_string(a->pod_uid)) < 0)) {
		cni_error_set(err, CNI_ERR_INTERNAL, "out of memory", "building the add request failed");
		goto out;
	}
	if (plugin_tunnel_call(ctx, req, nsfd, &resp, err) < 0) {
		if (err && err->code == CNI_ERR_TUNNEL_REFUSED)
			snprintf(err->msg, sizeof(err->msg), "warren-tunnel refused pod %s/%s", a->pod_namespace,
				 a->pod_name);
		goto out;
	}
	ret = 0;
out:
	json_decref(req);
	json_decref(resp);
	return ret;
}

int cmd_add(struct plugin_ctx *ctx, json_t **result, struct cni_error *err)
{
	json_t *pass;
	char ierr[512] = "", rerr[512] = "";
	int nsfd = -1, ret = -1, r;
	bool applied = false;
	struct inpod_mode mode;

	*result = NULL;
	pass = cni_result_convert(ctx->conf->prev_result, ctx->conf->cni_version, err);
	if (!pass)
		goto out;
	if (!plugin_pod_is_candidate(ctx))
		goto done;
	r = plugin_query_enrolled(ctx, &mode, err);
	if (r < 0)
		goto out;
	if (r == 0)
		goto done;
	/* The annotations come from the tunnel, the mechanism from our config. */
	if (ctx->conf->redirect == CNI_REDIRECT_EBPF) {
		mode.redirect = INPOD_REDIRECT_EBPF;
		snprintf(mode.bpf_dir, sizeof(mode.bpf_dir), "%s", ctx->conf->bpf_dir);
	}
	if (inpod_mode_supported(&mode, ierr, sizeof(ierr)) < 0) {
		cni_error_set(err, CNI_ERR_REDIRECT, "pod options not supported by the eBPF capture mode",
			      "pod %s/%s: %s", ctx->args.pod_namespace, ctx->args.pod_name, ierr);
		goto out;
	}
	if (plugin_open_netns(ctx, &nsfd, NULL, err) < 0)
		goto out;
	r = plugin_capture_apply(ctx, nsfd, &mode, ierr, sizeof(ierr));
	/* Each mode's apply is all-or-nothing, but a previous ADD may have
	 * left rules: clean up below either way. */
	applied = true;
	if (r < 0) {
		cni_error_set(err, CNI_ERR_REDIRECT, "failed to program traffic redirection in the pod",
			      "programming %s capture in CNI_NETNS %s for pod %s/%s failed: %s (%s)",
			      inpod_redirect_name(mode.redirect), ctx->netns, ctx->args.pod_namespace,
			      ctx->args.pod_name, ierr, strerror(-r));
		goto out;
	}
	if (cmd_add_hand_off(ctx, nsfd, &mode, err) < 0)
		goto out;
	applied = false;
	log_info("pod %s/%s: %s redirection programmed (%s, %zu virtual interfaces rerouted) and handed to warren-tunnel",
		 ctx->args.pod_namespace, ctx->args.pod_name, inpod_redirect_name(mode.redirect),
		 mode.capture_inbound ? "outbound and inbound" : "outbound only", mode.n_reroute);
done:
	*result = pass;
	pass = NULL;
	ret = 0;
out:
	if (applied) {
		r = plugin_capture_remove(ctx, nsfd, rerr, sizeof(rerr));
		if (r < 0)
			log_error("pod %s/%s: removing redirection after a failed ADD failed: %s",
				  ctx->args.pod_namespace, ctx->args.pod_name, rerr);
	}
	if (nsfd >= 0)
		close(nsfd);
	json_decref(pass);
	return ret;
}
