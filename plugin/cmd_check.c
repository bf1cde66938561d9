/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CNI CHECK: strict, unlike DEL. For an enrolled pod, the in-pod
 * redirection must be complete and warren-tunnel must know the pod.
 * Pods that are not Kubernetes pods, are excluded, or are not enrolled
 * pass (we own nothing of theirs).
 */
#include "plugin/plugin.h"

#include "conf/log.h"
#include "netlink/inpod.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static int query(const struct plugin_ctx *ctx, const char *op, const char *want, json_t **val,
		 struct cni_error *err)
{
	const struct cni_args *a = &ctx->args;
	json_t *req, *resp = NULL, *v;
	int ret = -1;

	*val = NULL;
	if (!strcmp(op, "query"))
		req = json_pack("{s:s, s:s, s:s}", "op", op, "namespace", a->pod_namespace, "name", a->pod_name);
	else
		req = json_pack("{s:s, s:s, s:s}", "op", op, "containerId", ctx->container_id, "ifname", ctx->ifname);
	if (!req || (a->pod_uid && json_object_set_new(req, "uid", json_string(a->pod_uid)) < 0)) {
		cni_error_set(err, CNI_ERR_INTERNAL, "out of memory", "building the %s request failed", op);
		goto out;
	}
	if (plugin_tunnel_call(ctx, req, -1, &resp, err) < 0)
		goto out;
	v = json_object_get(resp, want);
	if (!json_is_boolean(v)) {
		cni_error_set(err, CNI_ERR_TUNNEL_PROTOCOL, "unexpected answer from warren-tunnel",
			      "warren-tunnel answered \"%s\" without a boolean \"%s\"; warren-cni and warren-tunnel must be the same version",
			      op, want);
		goto out;
	}
	*val = json_incref(v);
	ret = 0;
out:
	json_decref(req);
	json_decref(resp);
	return ret;
}

int cmd_check(struct plugin_ctx *ctx, json_t **result, struct cni_error *err)
{
	char ierr[512] = "", pod[300];
	json_t *v = NULL;
	int nsfd = -1, ret = -1, r;

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
	if (query(ctx, "query", "enroll", &v, err) < 0)
		goto out;
	if (!json_is_true(v)) {
		log_info("pod %s: not enrolled, nothing to check", pod);
		ret = 0;
		goto out;
	}
	if (plugin_open_netns(ctx, &nsfd, NULL, err) < 0)
		goto out;
	r = inpod_check(nsfd, ierr, sizeof(ierr));
	if (r < 0) {
		cni_error_set(err, CNI_ERR_CHECK_REDIRECT, "traffic redirection in the pod is incomplete",
			      "pod %s (CNI_NETNS %s): %s (%s); delete the pod to have it set up again", pod, ctx->netns,
			      ierr, strerror(-r));
		goto out;
	}
	json_decref(v);
	if (query(ctx, "check", "known", &v, err) < 0)
		goto out;
	if (!json_is_true(v)) {
		cni_error_set(err, CNI_ERR_CHECK_UNKNOWN, "warren-tunnel does not know the pod",
			      "pod %s (container %s, %s) is enrolled but warren-tunnel has no record of it; its traffic is not relayed. Delete the pod to have it set up again",
			      pod, ctx->container_id, ctx->ifname);
		goto out;
	}
	ret = 0;
out:
	json_decref(v);
	if (nsfd >= 0)
		close(nsfd);
	return ret;
}
