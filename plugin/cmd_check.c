/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CNI CHECK: strict, unlike DEL. For an enrolled pod, warren-tunnel must
 * know the pod and the in-pod redirection must be complete, in the shape
 * the pod was enrolled with (struct inpod_mode: outbound only when it
 * bypasses inbound capture, plus its rerouted virtual interfaces).
 * Pods that are not Kubernetes pods, are excluded, or are not enrolled
 * pass (we own nothing of theirs).
 */
#include "plugin/plugin.h"

#include "conf/log.h"
#include "netlink/inpod.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* Does warren-tunnel know the attachment ("check")? 1 yes, 0 no, -1 error.
 * *mode gets how the pod was enrolled (its record, not the model's current
 * annotations: the rules were programmed from that). */
static int cmd_check_tunnel_knows(const struct plugin_ctx *ctx, struct inpod_mode *mode, struct cni_error *err)
{
	const struct cni_args *a = &ctx->args;
	json_t *req, *resp = NULL, *known;
	int ret = -1;

	req = json_pack("{s:s, s:s, s:s}", "op", "check", "containerId", ctx->container_id, "ifname", ctx->ifname);
	if (!req || (a->pod_uid && json_object_set_new(req, "uid", json_string(a->pod_uid)) < 0)) {
		cni_error_set(err, CNI_ERR_INTERNAL, "out of memory", "building the check request failed");
		goto out;
	}
	if (plugin_tunnel_call(ctx, req, -1, &resp, err) < 0)
		goto out;
	known = json_object_get(resp, "known");
	if (!json_is_boolean(known)) {
		cni_error_set(err, CNI_ERR_TUNNEL_PROTOCOL, "unexpected answer from warren-tunnel",
			      "warren-tunnel answered \"check\" without a boolean \"known\"; warren-cni and warren-tunnel must be the same version");
		goto out;
	}
	if (plugin_answer_mode(ctx, resp, "check", mode, err) < 0)
		goto out;
	ret = json_is_true(known) ? 1 : 0;
out:
	json_decref(req);
	json_decref(resp);
	return ret;
}

int cmd_check(struct plugin_ctx *ctx, json_t **result, struct cni_error *err)
{
	char ierr[512] = "", pod[300];
	int nsfd = -1, ret = -1, r;
	struct inpod_mode mode;

	*result = NULL;
	if (cni_version_cmp(ctx->conf->cni_version, "0.4.0") < 0)
		return cni_error_set(err, CNI_ERR_INCOMPATIBLE_VERSION, "config version does not allow CHECK",
				     "CHECK needs cniVersion 0.4.0 or later, config is \"%s\"", ctx->conf->cni_version);
	if (!ctx->conf->prev_result)
		return cni_error_set(err, CNI_ERR_INVALID_CONFIG, "required prevResult missing",
				     "CHECK needs the prevResult of the ADD; warren-cni must be chained after the primary CNI plugin");
	if (!plugin_pod_is_candidate(ctx))
		return 0;
	plugin_pod_name(ctx, pod, sizeof(pod));
	r = plugin_query_enrolled(ctx, NULL, err);
	if (r < 0)
		goto out;
	if (r == 0) {
		log_info("pod %s: not enrolled, nothing to check", pod);
		ret = 0;
		goto out;
	}
	/* The tunnel's record first: it says which rule set to expect. */
	r = cmd_check_tunnel_knows(ctx, &mode, err);
	if (r < 0)
		goto out;
	if (r == 0) {
		cni_error_set(err, CNI_ERR_CHECK_UNKNOWN, "warren-tunnel does not know the pod",
			      "pod %s (container %s, %s) is enrolled but warren-tunnel has no record of it; its traffic is not relayed. Delete the pod to have it set up again",
			      pod, ctx->container_id, ctx->ifname);
		goto out;
	}
	if (plugin_open_netns(ctx, &nsfd, NULL, err) < 0)
		goto out;
	r = plugin_capture_check(ctx, nsfd, &mode, ierr, sizeof(ierr));
	if (r < 0) {
		cni_error_set(err, CNI_ERR_CHECK_REDIRECT, "traffic redirection in the pod is incomplete",
			      "pod %s (CNI_NETNS %s): %s (%s); delete the pod to have it set up again", pod, ctx->netns,
			      ierr, strerror(-r));
		goto out;
	}
	ret = 0;
out:
	if (nsfd >= 0)
		close(nsfd);
	return ret;
}
