/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CNI VERSION, STATUS and GC. VERSION answers without any configuration;
 * STATUS and GC are thin requests to warren-tunnel.
 */
#include "plugin/plugin.h"

#include "conf/log.h"

#include <string.h>

int cmd_version(struct plugin_ctx *ctx, json_t **result, struct cni_error *err)
{
	json_t *v = cni_supported_versions_json();

	*result = v ? json_pack("{s:s, s:o}", "cniVersion",
				ctx->stdin_version ? ctx->stdin_version : CNI_VERSION_LATEST,
				"supportedVersions", v)
		    : NULL;
	if (!*result)
		return cni_error_set(err, CNI_ERR_INTERNAL, "out of memory", "building the VERSION answer failed");
	return 0;
}

int cmd_status(struct plugin_ctx *ctx, json_t **result, struct cni_error *err)
{
	json_t *req, *resp = NULL;
	int ret = -1;

	*result = NULL;
	req = json_pack("{s:s}", "op", "status");
	if (!req)
		return cni_error_set(err, CNI_ERR_INTERNAL, "out of memory", "building the status request failed");
	if (plugin_tunnel_call(ctx, req, -1, &resp, err) < 0) {
		/* STATUS reports every failure as "not available" (50). */
		char details[sizeof(err->details)];

		if (!err)
			goto out;
		snprintf(details, sizeof(details), "%s", err->details);
		cni_error_set(err, CNI_ERR_NOT_AVAILABLE, "warren-cni cannot add pods: warren-tunnel is not available",
			      "%s", details);
		goto out;
	}
	if (!json_is_true(json_object_get(resp, "ready"))) {
		cni_error_set(err, CNI_ERR_NOT_AVAILABLE, "warren-cni cannot add pods: warren-tunnel is not ready",
			      "warren-tunnel at %s is running but not ready yet (see its logs and /healthz/ready on port 15021); pods will be added once it is",
			      ctx->conf->tunnel_socket);
		goto out;
	}
	ret = 0;
out:
	json_decref(req);
	json_decref(resp);
	return ret;
}

int cmd_gc(struct plugin_ctx *ctx, json_t **result, struct cni_error *err)
{
	json_t *valid = NULL, *req = NULL, *resp = NULL, *removed;
	int ret = -1;

	*result = NULL;
	if (cni_conf_gc_valid(ctx->conf, &valid, err) < 0)
		goto out;
	req = json_pack("{s:s, s:O}", "op", "gc", "valid", valid);
	if (!req) {
		cni_error_set(err, CNI_ERR_INTERNAL, "out of memory", "building the gc request failed");
		goto out;
	}
	if (plugin_tunnel_call(ctx, req, -1, &resp, err) < 0)
		goto out;
	removed = json_object_get(resp, "removed");
	log_info("gc: %zu valid attachments, warren-tunnel removed %lld stale pods", json_array_size(valid),
		 json_is_integer(removed) ? (long long)json_integer_value(removed) : -1LL);
	ret = 0;
out:
	json_decref(valid);
	json_decref(req);
	json_decref(resp);
	return ret;
}
