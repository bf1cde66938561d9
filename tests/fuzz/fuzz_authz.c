/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for model/authz.c: arbitrary bytes -> json_loadb -> a
 * list of AuthorizationPolicy / PeerAuthentication objects (split on
 * "kind"; a lone object is used as both) -> authz_compile -> authz_evaluate,
 * then authz_compile_waypoint -> authz_evaluate_request
 * over a few fixed workloads and connections, plus both listing calls.
 * Checks that a decision is always complete and that nothing leaks or
 * reads out of bounds (ASan/UBSan). Seeds: tests/fuzz/corpus/fuzz_authz/.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/authz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void touch(const struct authz_policy_info *info, void *ctx)
{
	size_t *sum = ctx;

	*sum += strlen(info->key) + strlen(info->namespace) + strlen(info->name) +
		strlen(info->scope) + strlen(info->action);
	for (size_t i = 0; i < info->n_msgs; i++)
		*sum += strlen(info->msgs[i].text);
}

static void ip(struct mesh_ip *out, const char *s)
{
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, s, &out->addr.v4) == 1)
		out->family = AF_INET;
	else if (inet_pton(AF_INET6, s, &out->addr.v6) == 1)
		out->family = AF_INET6;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct mesh_label l1[] = { { "app", "web" }, { "version", "v1" } };
	static const struct mesh_label l2[] = { { "app", "db" } };
	const struct authz_workload ws[] = {
		{ "app", "web", { (struct mesh_label *)l1, 2 } },
		{ "istio-system", "gw", { (struct mesh_label *)l2, 1 } },
		{ "other", "db", { NULL, 0 } },
	};
	static const struct {
		const char *src, *dst;
		uint16_t port;
		const char *id;
	} cs[] = {
		{ "10.0.0.1", "10.0.1.5", 8080, "spiffe://cluster.local/ns/client/sa/sleep" },
		{ "10.0.0.1", "10.0.1.5", 80, NULL },
		{ "fd00::1", "fd00::2", 9090, "spiffe://cluster.local/ns/app/sa/default" },
		{ "::ffff:192.168.1.1", "10.0.1.5", 443, "spiffe://td/x" },
	};
	json_t *root, *aps = NULL, *pas = NULL, *o;
	struct authz_set *set = NULL;
	size_t i, sum = 0;

	root = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
	if (!root)
		return 0;
	aps = json_array();
	pas = json_array();
	if (!aps || !pas)
		goto out;
	if (json_is_array(root)) {
		json_array_foreach(root, i, o) {
			const char *kind = json_string_value(json_object_get(o, "kind"));

			json_array_append(kind && !strcmp(kind, "PeerAuthentication") ? pas : aps, o);
		}
	} else {
		json_array_append(aps, root);
		json_array_append(pas, root);
	}
	if (authz_compile(aps, pas, size % 2 ? "app" : NULL, &set))
		goto out;
	if (authz_set_invalid_count(set) > authz_set_count(set))
		abort();
	for (size_t w = 0; w < sizeof(ws) / sizeof(ws[0]); w++) {
		for (size_t c = 0; c < sizeof(cs) / sizeof(cs[0]); c++) {
			struct authz_conn conn = { .src_port = 1234, .dst_port = cs[c].port,
						   .peer_identity = cs[c].id };
			struct authz_decision d;
			int ret;

			ip(&conn.src_ip, cs[c].src);
			ip(&conn.dst_ip, cs[c].dst);
			ret = authz_evaluate(set, &ws[w], &conn, &d);
			if ((ret == 0) != d.allow || !d.policy[0] || !d.reason[0])
				abort();
			if (ret && ret != -EACCES)
				abort();
		}
		authz_policies_selecting(set, &ws[w], touch, &sum);
	}
	authz_policies_foreach(set, touch, &sum);
	authz_set_free(set);
	set = NULL;
	/* the same objects as a waypoint's set, against a few requests */
	if (authz_compile_waypoint(aps, NULL, "app", "waypoint", &set))
		goto out;
	for (size_t c = 0; c < sizeof(cs) / sizeof(cs[0]); c++) {
		static const char *const methods[] = { "GET", "POST" }, *const paths[] = { "/", "/admin/x" };
		struct authz_request rq = { .conn = { .dst_port = cs[c].port, .peer_identity = cs[c].id },
					    .svc_namespace = "app", .svc_name = c % 2 ? "web" : NULL,
					    .method = methods[c % 2], .host = "web.app", .path = paths[c % 2] };
		struct authz_decision d;
		int ret = authz_evaluate_request(set, &rq, &d);

		if ((ret == 0) != d.allow || !d.policy[0] || !d.reason[0] || (ret && ret != -EACCES))
			abort();
	}
	authz_policies_foreach(set, touch, &sum);
out:
	authz_set_free(set);
	json_decref(aps);
	json_decref(pas);
	json_decref(root);
	return 0;
}
