/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the warren-cni commands: talking to warren-tunnel with
 * CNI error mapping, and opening the pod's netns safely. Contract in
 * plugin/plugin.h.
 */
#include "plugin/plugin.h"

#include "bpf/capture.h"
#include "conf/errbuf.h"
#include "conf/handoff.h"
#include "conf/log.h"
#include "conf/warren.h"
#include "netlink/inpod_ebpf.h"
#include "netlink/netns.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *plugin_pod_name(const struct plugin_ctx *ctx, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", ctx->args.pod_namespace ? ctx->args.pod_namespace : "?",
		 ctx->args.pod_name ? ctx->args.pod_name : "?");
	return buf;
}

bool plugin_pod_is_candidate(const struct plugin_ctx *ctx)
{
	if (!ctx->args.pod_namespace || !ctx->args.pod_name) {
		log_info("container %s: not a Kubernetes pod (no K8S_POD_NAMESPACE/K8S_POD_NAME in CNI_ARGS), passing through",
			 ctx->container_id ? ctx->container_id : "?");
		return false;
	}
	if (cni_conf_excluded(ctx->conf, ctx->args.pod_namespace)) {
		log_info("pod %s/%s: namespace is in excludeNamespaces, passing through",
			 ctx->args.pod_namespace, ctx->args.pod_name);
		return false;
	}
	return true;
}

int plugin_tunnel_call(const struct plugin_ctx *ctx, json_t *req, int pass_fd, json_t **resp,
		       struct cni_error *err)
{
	const char *path = ctx->conf->tunnel_socket;
	const char *op = json_string_value(json_object_get(req, "op"));
	json_t *r = NULL, *ok, *e;
	char herr[512] = "";
	int ret;

	*resp = NULL;
	op = op ? op : "?";
	ret = handoff_call(path, ctx->conf->timeout_ms, req, pass_fd, &r, herr, sizeof(herr));
	if (ret == -EPROTO) {
		return cni_error_set(err, CNI_ERR_TUNNEL_PROTOCOL, "unexpected answer from warren-tunnel",
				     "warren-tunnel at %s sent a malformed answer to \"%s\": %s; warren-cni and warren-tunnel must be the same version",
				     path, op, herr);
	}
	if (ret == -ETIMEDOUT) {
		return cni_error_set(err, CNI_ERR_TRY_AGAIN_LATER, "warren-tunnel did not answer in time",
				     "warren-tunnel at %s did not answer \"%s\" within %d ms (timeoutMs); check that it runs and is healthy (its logs, /healthz/ready on port 15021), then try again later",
				     path, op, ctx->conf->timeout_ms);
	}
	if (ret < 0) {
		char msg[sizeof(err->msg)];

		log_debug("tunnel %s: %s: %s", path, op, herr);
		snprintf(msg, sizeof(msg), "warren-tunnel is not reachable at %s", path);
		return cni_error_set(err, CNI_ERR_TRY_AGAIN_LATER, msg,
				     "warren-tunnel is not reachable at %s (%s); check that warren-tunnel runs on this node and that tunnelSocket in the CNI config points at its socket, then try again later",
				     path, strerror(-ret));
	}
	ok = json_object_get(r, "ok");
	if (!json_is_boolean(ok)) {
		json_decref(r);
		return cni_error_set(err, CNI_ERR_TUNNEL_PROTOCOL, "unexpected answer from warren-tunnel",
				     "warren-tunnel at %s answered \"%s\" without a boolean \"ok\"; warren-cni and warren-tunnel must be the same version",
				     path, op);
	}
	if (!json_is_true(ok) && json_is_true(json_object_get(r, "retry"))) {
		e = json_object_get(r, "error");
		cni_error_set(err, CNI_ERR_TRY_AGAIN_LATER, "warren-tunnel asks to try again later",
			      "warren-tunnel cannot serve \"%s\" yet: %s", op,
			      json_is_string(e) ? json_string_value(e) : "(no reason given)");
		json_decref(r);
		return -1;
	}
	if (!json_is_true(ok)) {
		e = json_object_get(r, "error");
		cni_error_set(err, CNI_ERR_TUNNEL_REFUSED, "warren-tunnel refused the request",
			      "warren-tunnel refused \"%s\": %s", op,
			      json_is_string(e) ? json_string_value(e) : "(no reason given)");
		json_decref(r);
		return -1;
	}
	*resp = r;
	return 0;
}

int plugin_answer_mode(const struct plugin_ctx *ctx, json_t *resp, const char *op,
		       struct inpod_mode *mode, struct cni_error *err)
{
	char why[256];

	if (handoff_mode_get(resp, mode, why, sizeof(why)) < 0) {
		cni_error_set(err, CNI_ERR_TUNNEL_PROTOCOL, "unexpected answer from warren-tunnel",
			      "warren-tunnel answered \"%s\" for pod %s/%s with %s; warren-cni and warren-tunnel must be the same version",
			      op, ctx->args.pod_namespace, ctx->args.pod_name, why);
		return -1;
	}
	return 0;
}

int plugin_query_enrolled(const struct plugin_ctx *ctx, struct inpod_mode *mode, struct cni_error *err)
{
	const struct cni_args *a = &ctx->args;
	json_t *req, *resp = NULL, *enroll, *reason;
	struct inpod_mode m;
	int ret = -1;

	req = json_pack("{s:s, s:s, s:s}", "op", "query", "namespace", a->pod_namespace, "name", a->pod_name);
	/* Where the pod lives, enrolled or not: in Kubernetes mode the tunnel
	 * remembers it, to enroll the pod if its labels change later. */
	if (req && ctx->netns && ctx->container_id && ctx->ifname &&
	    (json_object_set_new(req, "netns", json_string(ctx->netns)) < 0 ||
	     json_object_set_new(req, "containerId", json_string(ctx->container_id)) < 0 ||
	     json_object_set_new(req, "ifname", json_string(ctx->ifname)) < 0 ||
	     (ctx->conf && ctx->conf->prev_result &&
	      json_object_set_new(req, "ips", cni_result_ips(ctx->conf->prev_result)) < 0))) {
		json_decref(req);
		req = NULL;
	}
	if (!req || (a->pod_uid && json_object_set_new(req, "uid", json_string(a->pod_uid)) < 0)) {
		cni_error_set(err, CNI_ERR_INTERNAL, "out of memory", "building the query request failed");
		goto out;
	}
	if (plugin_tunnel_call(ctx, req, -1, &resp, err) < 0)
		goto out;
	enroll = json_object_get(resp, "enroll");
	if (!json_is_boolean(enroll)) {
		cni_error_set(err, CNI_ERR_TUNNEL_PROTOCOL, "unexpected answer from warren-tunnel",
			      "warren-tunnel answered \"query\" for pod %s/%s without a boolean \"enroll\"; warren-cni and warren-tunnel must be the same version",
			      a->pod_namespace, a->pod_name);
		goto out;
	}
	reason = json_object_get(resp, "reason");
	if (plugin_answer_mode(ctx, resp, "query", &m, err) < 0)
		goto out;
	if (mode)
		*mode = m;
	log_info("pod %s/%s: %s (%s)%s%s", a->pod_namespace, a->pod_name,
		 json_is_true(enroll) ? "enrolled" : "not enrolled",
		 json_is_string(reason) ? json_string_value(reason) : "no reason given",
		 json_is_true(enroll) && !m.capture_inbound ? "; inbound capture bypassed (" ANNOTATION_BYPASS_INBOUND_CAPTURE ")" : "",
		 json_is_true(enroll) && m.n_reroute ? "; virtual interfaces rerouted as outbound (" ANNOTATION_REROUTE_VIRTUAL_INTERFACES ")" : "");
	ret = json_is_true(enroll) ? 1 : 0;
out:
	json_decref(req);
	json_decref(resp);
	return ret;
}


int plugin_open_netns(const struct plugin_ctx *ctx, int *out, int *errno_out, struct cni_error *err)
{
	uint64_t dev, ino, self_dev, self_ino;
	int fd = -1, self = -1, ret;

	*out = -1;
	if (errno_out)
		*errno_out = 0;
	if (!ctx->netns || !*ctx->netns) {
		ret = -ENOENT;
		cni_error_set(err, CNI_ERR_INVALID_ENV, "required env variables [CNI_NETNS] missing",
			      "set CNI_NETNS to the path of the pod's network namespace");
		goto out;
	}
	fd = netns_open(ctx->netns);
	if (fd < 0) {
		ret = fd;
		if (ret == -ENOENT)
			cni_error_set(err, CNI_ERR_INVALID_ENV, "CNI_NETNS does not exist",
				      "CNI_NETNS \"%s\" does not exist; the pod's network namespace must be created before the plugin runs",
				      ctx->netns);
		else if (ret == -EINVAL)
			cni_error_set(err, CNI_ERR_INVALID_ENV, "CNI_NETNS is not a network namespace",
				      "CNI_NETNS \"%s\" is not a network namespace (expected e.g. /var/run/netns/NAME or /proc/PID/ns/net)",
				      ctx->netns);
		else
			cni_error_set(err, CNI_ERR_INVALID_ENV, "cannot open CNI_NETNS",
				      "cannot open CNI_NETNS \"%s\": %s", ctx->netns, strerror(-ret));
		goto out;
	}
	self = netns_open("/proc/self/ns/net");
	if (self < 0) {
		ret = self;
		cni_error_set(err, CNI_ERR_IO, "cannot open the plugin's own network namespace",
			      "open /proc/self/ns/net: %s", strerror(-ret));
		goto out;
	}
	ret = netns_identity(fd, &dev, &ino);
	if (ret == 0)
		ret = netns_identity(self, &self_dev, &self_ino);
	if (ret < 0) {
		cni_error_set(err, CNI_ERR_IO, "cannot identify CNI_NETNS", "fstat of CNI_NETNS \"%s\": %s",
			      ctx->netns, strerror(-ret));
		goto out;
	}
	if (dev == self_dev && ino == self_ino) {
		ret = -EINVAL;
		cni_error_set(err, CNI_ERR_INVALID_ENV, "CNI_NETNS is the plugin's own network namespace",
			      "CNI_NETNS \"%s\" is the host network namespace the plugin runs in; warren only redirects traffic of pods with their own network namespace",
			      ctx->netns);
		goto out;
	}
	*out = fd;
	fd = -1;
	ret = 0;
out:
	if (errno_out)
		*errno_out = ret;
	if (fd >= 0)
		close(fd);
	if (self >= 0)
		close(self);
	return ret < 0 ? -1 : 0;
}

static int common_capture_addrs(const struct plugin_ctx *ctx, struct ebpf_pod_addrs *a, char *ierr,
			 size_t ierrlen)
{
	json_t *ips = cni_result_ips(ctx->conf->prev_result), *v;
	const char *cidrs[2 * CAPTURE_MAX_ADDRS + 1];
	size_t i, n = 0;
	int ret;

	if (!ips) {
		errbuf_set(ierr, ierrlen, "out of memory");
		return -ENOMEM;
	}
	json_array_foreach(ips, i, v) {
		if (n == ARRAY_SIZE(cidrs))
			break;
		cidrs[n++] = json_string_value(v);
	}
	ret = ebpf_addrs_parse(cidrs, n, a, ierr, ierrlen);
	json_decref(ips);
	return ret;
}

int plugin_capture_apply(const struct plugin_ctx *ctx, int nsfd, const struct inpod_mode *mode,
			 char *ierr, size_t ierrlen)
{
	struct ebpf_pod_addrs a;
	char path[300];
	int ret;

	/* A draining tunnel's queued connections move to its successor's
	 * listeners (SO_REUSEPORT migration). Set here, on the node, because
	 * a tunnel in a container cannot write /proc/sys; best effort. */
	ret = netns_sysctl_write(nsfd, "/proc/sys/net/ipv4/tcp_migrate_req", "1");
	if (ret < 0)
		log_warn("cannot set net.ipv4.tcp_migrate_req in the pod: %s", strerror(-ret));

	if (mode->redirect == INPOD_REDIRECT_NFTABLES) {
		/* Cheap when the node never used eBPF: no directory. */
		snprintf(path, sizeof(path), "%s/warren/%s", ctx->conf->bpf_dir, ctx->container_id);
		if (access(path, F_OK) == 0 &&
		    (ret = ebpf_capture_remove(nsfd, ctx->conf->bpf_dir, ctx->container_id, ierr, ierrlen)) < 0)
			return ret;
		return inpod_apply(nsfd, mode, ierr, ierrlen);
	}
	ret = inpod_mode_supported(mode, ierr, ierrlen);
	if (ret < 0)
		return ret;
	ret = common_capture_addrs(ctx, &a, ierr, ierrlen);
	if (ret < 0)
		return ret;
	ret = inpod_present(nsfd);
	if (ret > 0 && (ret = inpod_remove(nsfd, ierr, ierrlen)) < 0)
		return ret;
	return ebpf_capture_apply(nsfd, mode->bpf_dir, ctx->container_id, &a, ierr, ierrlen);
}

int plugin_capture_remove(const struct plugin_ctx *ctx, int nsfd, char *ierr, size_t ierrlen)
{
	char e[512];
	int r1 = 0, r2;

	if (nsfd >= 0)
		r1 = inpod_remove(nsfd, ierr, ierrlen);
	r2 = ebpf_capture_remove(nsfd, ctx->conf->bpf_dir, ctx->container_id, e, sizeof(e));
	if (r2 < 0 && r1 == 0) {
		errbuf_set(ierr, ierrlen, "%s", e);
		return r2;
	}
	return r1;
}

int plugin_capture_check(const struct plugin_ctx *ctx, int nsfd, const struct inpod_mode *mode,
			 char *ierr, size_t ierrlen)
{
	if (mode->redirect == INPOD_REDIRECT_EBPF)
		return ebpf_capture_check(nsfd, mode->bpf_dir, ctx->container_id, ierr, ierrlen);
	return inpod_check(nsfd, mode, ierr, ierrlen);
}
