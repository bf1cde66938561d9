/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the policy engine's waypoint mode (authz_compile_waypoint,
 * authz_evaluate_request): targetRefs scoping, HTTP attributes (methods,
 * paths, hosts, request.headers) and their not-forms, principals and
 * namespaces, DENY before ALLOW, AUDIT, invalid policies failing closed,
 * and that a tunnel's set still drops HTTP attributes.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "conf/kobj.h"
#include "model/authz.h"
#include "tests/unit/mesh_fixture.h"
#include "tests/unit/t.h"

static json_t *objs(const char *yaml)
{
	json_t *o = NULL;
	char err[256];

	if (kobj_load_text(yaml, strlen(yaml), "p.yaml", &o, err, sizeof(err)))
		fprintf(stdout, "# %s\n", err);
	return o;
}


static const char policies[] =
	"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
	"metadata: {name: deny-admin, namespace: shop}\n"
	"spec:\n  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]\n"
	"  action: DENY\n  rules: [{to: [{operation: {paths: ['/admin*']}}]}]\n"
	"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
	"metadata: {name: allow-web, namespace: shop}\n"
	"spec:\n  targetRefs: [{kind: Service, group: '', name: web}]\n"
	"  rules:\n"
	"  - from: [{source: {principals: [cluster.local/ns/shop/sa/cli]}}]\n"
	"    to: [{operation: {methods: [GET, HEAD], notPaths: ['*.secret']}}]\n"
	"  - to: [{operation: {methods: [POST], hosts: ['web.shop*']}}]\n"
	"    when: [{key: 'request.headers[X-Token]', values: [letmein]}]\n"
	"  - from: [{source: {namespaces: [ops]}}]\n"
	"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
	"metadata: {name: audit-all, namespace: shop}\n"
	"spec: {targetRefs: [{kind: Gateway, name: waypoint}], action: AUDIT, rules: [{}]}\n"
	"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
	"metadata: {name: selector, namespace: shop}\n"
	"spec: {selector: {matchLabels: {app: web}}, action: DENY, rules: [{}]}\n"
	"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
	"metadata: {name: other-gw, namespace: shop}\n"
	"spec: {targetRefs: [{kind: Gateway, name: other}], action: DENY, rules: [{}]}\n";

static void test_table(void)
{
	static const char *const tok[] = { "x-token", "letmein", NULL };
	static const char *const badtok[] = { "x-token", "nope", NULL };
	static const struct {
		const char *name, *svc, *peer, *method, *host, *path;
		const char *const *h;
		bool allow;
		const char *policy;
	} cases[] = {
		{ "GET / by cli", "web", "spiffe://cluster.local/ns/shop/sa/cli", "GET", "web", "/", NULL, true, "shop/allow-web" },
		{ "DELETE by cli", "web", "spiffe://cluster.local/ns/shop/sa/cli", "DELETE", "web", "/", NULL, false, "(no allow policy matched)" },
		{ "GET /admin denied first", "web", "spiffe://cluster.local/ns/ops/sa/x", "GET", "web", "/admin/x", NULL, false, "shop/deny-admin" },
		{ "GET a secret: notPaths", "web", "spiffe://cluster.local/ns/shop/sa/cli", "GET", "web", "/k.secret", NULL, false, "(no allow policy matched)" },
		{ "GET by another principal", "web", "spiffe://cluster.local/ns/shop/sa/evil", "GET", "web", "/", NULL, false, "(no allow policy matched)" },
		{ "POST with the token header", "web", "spiffe://cluster.local/ns/shop/sa/evil", "POST", "WEB.shop.svc", "/", tok, true, "shop/allow-web" },
		{ "POST with a wrong token", "web", "spiffe://cluster.local/ns/shop/sa/evil", "POST", "web.shop", "/", badtok, false, "(no allow policy matched)" },
		{ "POST without the header", "web", "spiffe://cluster.local/ns/shop/sa/evil", "POST", "web.shop", "/", NULL, false, "(no allow policy matched)" },
		{ "POST token, wrong host", "web", "spiffe://cluster.local/ns/shop/sa/evil", "POST", "api", "/", tok, false, "(no allow policy matched)" },
		{ "namespace ops anything", "web", "spiffe://cluster.local/ns/ops/sa/x", "PATCH", "web", "/x", NULL, true, "shop/allow-web" },
		{ "Service api: no ALLOW there", "api", "spiffe://cluster.local/ns/shop/sa/evil", "PUT", "api", "/", NULL, true, "(no allow policies)" },
		{ "Service api /admin: gateway DENY", "api", NULL, "GET", "api", "/admin", NULL, false, "shop/deny-admin" },
	};
	json_t *o = objs(policies);
	struct authz_set *set = NULL;

	T_ASSERT(o);
	T_ASSERT_INT(authz_compile_waypoint(o, NULL, "shop", "waypoint", &set), 0);
	T_ASSERT_INT(authz_set_invalid_count(set), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hdrs h = { cases[i].h };
		struct authz_request rq = {
			.conn = { .peer_identity = cases[i].peer, .dst_port = 80 },
			.svc_namespace = "shop", .svc_name = cases[i].svc, .method = cases[i].method,
			.host = cases[i].host, .path = cases[i].path, .header = hdr, .header_ctx = &h,
		};
		struct authz_decision d;
		int r = authz_evaluate_request(set, &rq, &d);

		printf("# %-32s -> %s by %s (%s) audit=%s\n", cases[i].name, d.allow ? "allow" : "deny",
		       d.policy, d.reason, d.audit);
		T_ASSERT_INT(r, cases[i].allow ? 0 : -EACCES);
		T_ASSERT_STR(d.policy, cases[i].policy);
		T_ASSERT_STR(d.audit, "shop/audit-all");
	}
	authz_set_free(set);
	json_decref(o);
}

/* An invalid targeted policy denies everything through the waypoint. */
static void test_invalid_fails_closed(void)
{
	json_t *o = objs("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
			 "metadata: {name: bad, namespace: shop}\n"
			 "spec: {targetRefs: [{kind: Service, name: web}], rules: [{to: [{operation: {methods: [1]}}]}]}\n"
			 "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
			 "metadata: {name: bad-kind, namespace: shop}\n"
			 "spec: {targetRefs: [{kind: Deployment, name: web}], action: DENY, rules: [{}]}\n");
	struct authz_set *set = NULL;
	struct authz_request rq = { .svc_namespace = "shop", .svc_name = "api", .method = "GET",
				    .host = "api", .path = "/" };
	struct authz_decision d;

	T_ASSERT(o);
	T_ASSERT_INT(authz_compile_waypoint(o, NULL, "shop", "waypoint", &set), 0);
	T_ASSERT_INT(authz_set_invalid_count(set), 2);
	T_ASSERT_INT(authz_evaluate_request(set, &rq, &d), -EACCES);
	printf("# %s\n", d.reason);
	T_ASSERT(strstr(d.reason, "is invalid"));
	authz_set_free(set);
	json_decref(o);
}

/* The same objects in a tunnel's set: targeted policies are ignored. */
static void test_tunnel_set_unchanged(void)
{
	json_t *o = objs(policies);
	struct authz_set *set = NULL;
	struct authz_workload w = { .namespace = "shop", .name = "web-0" };
	struct authz_conn c = { .peer_identity = "spiffe://cluster.local/ns/shop/sa/cli" };
	struct authz_decision d;

	T_ASSERT(o);
	T_ASSERT_INT(authz_compile(o, NULL, NULL, &set), 0);
	T_ASSERT_INT(authz_evaluate(set, &w, &c, &d), 0); /* selector DENY does not select web-0 (no labels) */
	T_ASSERT_STR(d.policy, "(no policies)");
	authz_set_free(set);
	json_decref(o);
}

T_MAIN(T_CASE(test_table), T_CASE(test_invalid_fails_closed), T_CASE(test_tunnel_set_unchanged))
