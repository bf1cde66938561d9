/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of HTTPRoute (model/httproute.c): decoding and its errors,
 * path/header/query/method matching, the Gateway API's precedence between
 * rules, attachment to a Service port, weighted backend choice.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "conf/kobj.h"
#include "model/httproute.h"
#include "model/mesh.h"
#include "tests/unit/mesh_fixture.h"
#include "tests/unit/t.h"


#define SVC(name, ip)                                                                      \
	"---\napiVersion: v1\nkind: Service\nmetadata: {name: " name ", namespace: shop}\n" \
	"spec: {clusterIP: " ip ", selector: {app: " name "}, ports: [{name: http, port: 80}, {name: http-alt, port: 8080}]}\n"
#define ROUTE(name, rest)                                                                   \
	"---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"                   \
	"metadata: {name: " name ", namespace: shop}\nspec:\n" rest

static const char yaml[] =
	SVC("web", "10.96.0.1") SVC("v1", "10.96.0.2") SVC("v2", "10.96.0.3") SVC("other", "10.96.0.4")
	ROUTE("b-main",
	      "  parentRefs: [{group: '', kind: Service, name: web, port: 80}]\n"
	      "  hostnames: [web.shop.svc.cluster.local]\n"
	      "  rules:\n"
	      "  - matches: [{path: {type: PathPrefix, value: /split/}}]\n"
	      "    backendRefs: [{name: v1, port: 80, weight: 90}, {name: v2, port: 80, weight: 10}]\n"
	      "  - matches:\n"
	      "    - {path: {type: PathPrefix, value: /split}, headers: [{name: X-Version, value: v2}]}\n"
	      "    - {path: {type: RegularExpression, value: '/re/[0-9]+'}}\n"
	      "    - {path: {type: Exact, value: /q}, queryParams: [{name: tier, value: gold}]}\n"
	      "    - {path: {value: /m}, method: POST}\n"
	      "    backendRefs: [{name: v2, port: 80}]\n"
	      "  - matches: [{path: {type: Exact, value: /exact}}]\n"
	      "    backendRefs: [{name: v1, port: 80}]\n"
	      "  - matches: [{path: {type: Exact, value: /none}}]\n"
	      "    backendRefs: [{name: v1, port: 80, weight: 0}]\n")
	ROUTE("a-tie",
	      "  parentRefs: [{group: '', kind: Service, name: web}]\n"
	      "  rules: [{matches: [{path: {type: Exact, value: /exact}}], backendRefs: [{name: other, port: 80}]}]\n")
	ROUTE("ingress",
	      "  parentRefs: [{name: some-gateway}]\n"
	      "  rules: [{backendRefs: [{name: other, port: 80}]}]\n");


/* The backend Service name chosen for (method, target, headers), "404"
 * when no rule matches, "500" when its rule has no weight. */
static const char *route(const struct mesh *m, uint16_t port, const char *method, const char *target,
			 const char *const *kv, uint32_t rnd)
{
	const struct mesh_service *web = &m->services[0];
	struct hdrs h = { kv };
	const char *q = strchr(target, '?');
	struct mesh_route_req rq = {
		.method = method, .path = target, .path_len = q ? (size_t)(q - target) : strlen(target),
		.query = q ? q + 1 : NULL, .query_len = q ? strlen(q + 1) : 0, .header = hdr, .ctx = &h,
	};
	const struct mesh_route_rule *r = mesh_route_select(m, web, port, &rq, NULL);
	const struct mesh_route_backend *b;

	if (!r)
		return "404";
	b = mesh_route_pick(r, rnd);
	return b ? b->service : "500";
}

static void test_decode(void)
{
	struct mesh *m = mf_build(yaml);

	printf("# %s\n", mf_err);
	T_ASSERT(m);
	T_ASSERT_INT(m->n_httproutes, 3);
	T_ASSERT_INT(m->httproutes[0].n_parents, 1);
	T_ASSERT_INT(m->httproutes[0].parents[0].port, 80);
	T_ASSERT_INT(m->httproutes[0].n_rules, 4);
	T_ASSERT_INT(m->httproutes[0].rules[0].weight_sum, 100);
	T_ASSERT_INT(m->httproutes[0].rules[1].n_matches, 4);
	T_ASSERT_INT(m->httproutes[0].rules[1].backends[0].weight, 1);
	T_ASSERT_INT(m->httproutes[2].n_parents, 0); /* a Gateway's route */
	T_ASSERT(mesh_service_routed(m, &m->services[0], 80));
	T_ASSERT(mesh_service_routed(m, &m->services[0], 8080)); /* a-tie: every port */
	T_ASSERT(!mesh_service_routed(m, &m->services[3], 80));
	mesh_free(m);
}

static void test_match(void)
{
	struct mesh *m = mf_build(yaml);
	static const char *const v2[] = { "x-version", "v2", NULL };
	static const char *const v3[] = { "x-version", "v3", NULL };

	T_ASSERT(m);
	/* PathPrefix by elements; the trailing '/' of /split/ is ignored */
	T_ASSERT_STR(route(m, 80, "GET", "/split", NULL, 0), "v1");
	T_ASSERT_STR(route(m, 80, "GET", "/split/a/b", NULL, 0), "v1");
	T_ASSERT_STR(route(m, 80, "GET", "/splitx", NULL, 0), "404");
	T_ASSERT_STR(route(m, 80, "GET", "/", NULL, 0), "404");
	/* a header match is more specific than the same prefix alone */
	T_ASSERT_STR(route(m, 80, "GET", "/split/x", v2, 0), "v2");
	T_ASSERT_STR(route(m, 80, "GET", "/split/x", v3, 0), "v1");
	/* regex: whole path only */
	T_ASSERT_STR(route(m, 80, "GET", "/re/123", NULL, 0), "v2");
	T_ASSERT_STR(route(m, 80, "GET", "/re/123/x", NULL, 0), "404");
	T_ASSERT_STR(route(m, 80, "GET", "/x/re/123", NULL, 0), "404");
	T_ASSERT_STR(route(m, 80, "GET", "/re/", NULL, 0), "404");
	/* query: exact, the first of that name */
	T_ASSERT_STR(route(m, 80, "GET", "/q?tier=gold", NULL, 0), "v2");
	T_ASSERT_STR(route(m, 80, "GET", "/q?a=1&tier=gold&b", NULL, 0), "v2");
	T_ASSERT_STR(route(m, 80, "GET", "/q?tier=golden", NULL, 0), "404");
	T_ASSERT_STR(route(m, 80, "GET", "/q?tier=silver&tier=gold", NULL, 0), "404");
	T_ASSERT_STR(route(m, 80, "GET", "/q", NULL, 0), "404");
	/* method */
	T_ASSERT_STR(route(m, 80, "POST", "/m/1", NULL, 0), "v2");
	T_ASSERT_STR(route(m, 80, "GET", "/m/1", NULL, 0), "404");
	/* exact; a tie between routes goes to the first by name (a-tie) */
	T_ASSERT_STR(route(m, 80, "GET", "/exact", NULL, 0), "other");
	T_ASSERT_STR(route(m, 8080, "GET", "/exact", NULL, 0), "other");
	T_ASSERT_STR(route(m, 80, "GET", "/exact/", NULL, 0), "404");
	/* port 8080: b-main is attached to port 80 only */
	T_ASSERT_STR(route(m, 8080, "GET", "/split", NULL, 0), "404");
	/* weight 0 everywhere: no backend */
	T_ASSERT_STR(route(m, 80, "GET", "/none", NULL, 0), "500");
	mesh_free(m);
}

static void test_weights(void)
{
	struct mesh *m = mf_build(yaml);
	const struct mesh_route_rule *r;
	size_t n2 = 0;

	T_ASSERT(m);
	r = &m->httproutes[0].rules[0];
	/* rnd spans [0, 2^32): the first 90% goes to v1, the rest to v2 */
	T_ASSERT_STR(mesh_route_pick(r, 0)->service, "v1");
	T_ASSERT_STR(mesh_route_pick(r, (uint32_t)(0.899 * 4294967296.0))->service, "v1");
	T_ASSERT_STR(mesh_route_pick(r, (uint32_t)(0.901 * 4294967296.0))->service, "v2");
	T_ASSERT_STR(mesh_route_pick(r, UINT32_MAX)->service, "v2");
	for (uint64_t x = 0; x < 4294967296ull; x += 65536)
		n2 += !strcmp(mesh_route_pick(r, (uint32_t)x)->service, "v2");
	T_ASSERT_INT(n2, 6553); /* k * 100 >= 90 * 65536: k >= 58983 */
	mesh_free(m);
}

static void test_timeouts(void)
{
	static const struct {
		const char *t;
		unsigned request, backend;
	} cases[] = {
		{ "{request: 10s}", 10000, 0 },
		{ "{request: 1m30s, backendRequest: 500ms}", 90000, 500 },
		{ "{request: 1h0m0s1ms}", 3600001, 0 },
		{ "{request: 0s, backendRequest: 2s}", 0, 2000 },
		{ "{backendRequest: 99999ms}", 0, 99999 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[1024];
		struct mesh *m;

		snprintf(text, sizeof(text), "%s" ROUTE("r", "  parentRefs: [{group: '', kind: Service, name: web}]\n"
							     "  rules: [{timeouts: %s, backendRefs: [{name: web, port: 80}]}]\n"),
			 SVC("web", "10.96.0.1"), cases[i].t);
		m = mf_build(text);
		printf("# %s %s\n", cases[i].t, mf_err);
		T_ASSERT(m);
		T_ASSERT_INT(m->httproutes[0].rules[0].timeout_ms, cases[i].request);
		T_ASSERT_INT(m->httproutes[0].rules[0].backend_timeout_ms, cases[i].backend);
		mesh_free(m);
	}
}

static void test_header_modifiers(void)
{
	static const char text[] =
		SVC("web", "10.96.0.1")
		ROUTE("r", "  parentRefs: [{group: '', kind: Service, name: web}]\n"
			   "  rules:\n  - backendRefs: [{name: web, port: 80}]\n"
			   "    filters:\n"
			   "    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Env, value: prod}],\n"
			   "       add: [{name: x-added, value: '1'}], remove: [x-drop]}}\n"
			   "    - {type: ResponseHeaderModifier, responseHeaderModifier: {remove: [server]}}\n");
	static const char head[] = "\r\nGET /a HTTP/1.1\r\nHost: web\r\nx-env: dev\r\nX-Drop: 1\r\nx-keep: k\r\n"
				   "X-ENV: dev2\r\nx-dropped: no\r\n\r\n";
	static const char want[] = "GET /a HTTP/1.1\r\nHost: web\r\nx-keep: k\r\nx-dropped: no\r\n"
				   "X-Env: prod\r\nx-added: 1\r\n\r\n";
	struct mesh *m = mf_build(text);
	char out[256];
	long n;

	printf("# %s\n", mf_err);
	T_ASSERT(m);
	n = mesh_route_rewrite_head(head, sizeof(head) - 1, &m->httproutes[0].rules[0].req_mod, out, sizeof(out));
	T_ASSERT_INT(n, (long)sizeof(want) - 1);
	T_ASSERT(!memcmp(out, want, sizeof(want) - 1));
	T_ASSERT_INT(mesh_route_rewrite_head(head, sizeof(head) - 1, &m->httproutes[0].rules[0].req_mod, out, 40),
		     -E2BIG);
	T_ASSERT(mesh_route_hdrmod_empty(&m->httproutes[0].rules[0].resp_mod) == false);
	n = mesh_route_rewrite_head("HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 0\r\n\r\n", 49,
				    &m->httproutes[0].rules[0].resp_mod, out, sizeof(out));
	T_ASSERT_INT(n, 38);
	T_ASSERT(!memcmp(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 38));
	mesh_free(m);
}

static void test_bad_routes(void)
{
	static const struct {
		const char *rest, *want;
	} cases[] = {
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{backendRefs: [{name: v1, port: 80}]}]\n  hostname: [x]\n",
		  "spec: unknown key \"hostname\"" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n", "spec.rules: missing or empty" },
		{ "  parentRefs: [{kind: Service, name: web}]\n  rules: [{backendRefs: [{name: v1, port: 80}]}]\n",
		  "kind Service of group \"gateway.networking.k8s.io\"; expected the core group" },
		{ "  rules: [{backendRefs: [{name: v1, port: 80}]}]\n", "spec.parentRefs: missing or empty" },
		{ "  parentRefs: [{group: '', kind: Service, name: web, namespace: other}]\n  rules: [{backendRefs: [{name: v1, port: 80}]}]\n",
		  "namespace other is not the route's (shop)" },
		{ "  parentRefs: [{kind: Service, group: apps, name: web}]\n  rules: [{backendRefs: [{name: v1, port: 80}]}]\n",
		  "kind Service of group \"apps\"" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{backendRefs: [{name: v1}]}]\n",
		  "port missing" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{backendRefs: [{name: v1, port: 80, weight: -1}]}]\n",
		  "weight must be a number" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{backendRefs: [{name: v1, port: 80, namespace: x}]}]\n",
		  "cross-namespace references are not supported" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{backendRefs: [{kind: Pod, name: v1, port: 80}]}]\n",
		  "only Services can be backends" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{matches: [{path: {type: Prefix, value: /}}], backendRefs: [{name: v1, port: 80}]}]\n",
		  "\"Prefix\"; expected Exact, PathPrefix or RegularExpression" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{matches: [{path: {value: x}}], backendRefs: [{name: v1, port: 80}]}]\n",
		  "a path starts with '/'" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{matches: [{path: {type: RegularExpression, value: '/a(['}}], backendRefs: [{name: v1, port: 80}]}]\n",
		  "bad regular expression \"/a([\"" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{matches: [{headers: [{type: RegularExpression, name: a, value: b}]}], backendRefs: [{name: v1, port: 80}]}]\n",
		  "type \"RegularExpression\" is not supported; only Exact" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{matches: [{headers: [{name: 'a b', value: b}]}], backendRefs: [{name: v1, port: 80}]}]\n",
		  "\"a b\" is not a header name" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{matches: [{queryParams: [{name: a}]}], backendRefs: [{name: v1, port: 80}]}]\n",
		  "a: value missing" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{matches: [{method: FETCH}], backendRefs: [{name: v1, port: 80}]}]\n",
		  "\"FETCH\" is not an HTTP method" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{matches: [{paht: {value: /}}], backendRefs: [{name: v1, port: 80}]}]\n",
		  "spec.rules[].matches[]: unknown key \"paht\"" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{timeouts: {request: 10}, backendRefs: [{name: v1, port: 80}]}]\n",
		  "expected a string" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{timeouts: {request: 1d}, backendRefs: [{name: v1, port: 80}]}]\n",
		  "request \"1d\" is not a duration" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{timeouts: {request: 123456s}, backendRefs: [{name: v1, port: 80}]}]\n",
		  "request \"123456s\" is not a duration" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{timeouts: {request: 1h1m1s1ms1s}, backendRefs: [{name: v1, port: 80}]}]\n",
		  "is not a duration" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{timeouts: {request: 25h}, backendRefs: [{name: v1, port: 80}]}]\n",
		  "at most 24h" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{timeouts: {request: 1s, backendRequest: 2s}, backendRefs: [{name: v1, port: 80}]}]\n",
		  "backendRequest is longer than request" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{timeouts: {requests: 1s}, backendRefs: [{name: v1, port: 80}]}]\n",
		  "spec.rules[].timeouts: unknown key \"requests\"" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{retry: {attempts: 2}, backendRefs: [{name: v1, port: 80}]}]\n",
		  "\"retry\" is not supported by warren yet" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{filters: [{type: URLRewrite, urlRewrite: {}}], backendRefs: [{name: v1, port: 80}]}]\n",
		  "\"URLRewrite\" is not supported by warren yet" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{filters: [{type: RequestHeaderModifier, requestHeaderModifier: {remove: [Content-Length]}}], backendRefs: [{name: v1, port: 80}]}]\n",
		  "Content-Length frames the message or the connection" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: transfer-encoding, value: chunked}]}}], backendRefs: [{name: v1, port: 80}]}]\n",
		  "transfer-encoding frames the message" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x, value: \"a\\r\\nb\"}]}}], backendRefs: [{name: v1, port: 80}]}]\n",
		  "x: the value has a control byte" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{filters: [{type: RequestHeaderModifier}], backendRefs: [{name: v1, port: 80}]}]\n",
		  "RequestHeaderModifier needs the mapping requestHeaderModifier" },
		{ "  parentRefs: [{group: '', kind: Service, name: web}]\n  rules: [{filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}, {type: RequestHeaderModifier, requestHeaderModifier: {}}], backendRefs: [{name: v1, port: 80}]}]\n",
		  "RequestHeaderModifier twice in a rule" },
		{ "  parentRefs: [{group: '', kind: Service, name: web, sectionName: http}]\n  rules: [{backendRefs: [{name: v1, port: 80}]}]\n",
		  "sectionName on a Service parent is not supported" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[2048];
		struct mesh *m;

		snprintf(text, sizeof(text), "%s" ROUTE("r", "%s"), SVC("web", "10.96.0.1"), cases[i].rest);
		m = mf_build(text);
		printf("# %s\n", mf_err);
		T_ASSERT(!m);
		T_ASSERT(strstr(mf_err, cases[i].want));
		T_ASSERT(strstr(mf_err, "(HTTPRoute shop/r)"));
	}
	{
		struct mesh *m = mf_build(SVC("web", "10.96.0.1") ROUTE("r", "  parentRefs: [{group: '', kind: Service, name: web}]\n"
									"  rules: [{backendRefs: [{name: v1, port: 80}]}]\n")
					       ROUTE("r", "  parentRefs: [{group: '', kind: Service, name: web}]\n"
							  "  rules: [{backendRefs: [{name: v1, port: 80}]}]\n"));
		T_ASSERT(!m);
		T_ASSERT(strstr(mf_err, "duplicate HTTPRoute shop/r"));
	}
}

T_MAIN(T_CASE(test_decode), T_CASE(test_match), T_CASE(test_weights), T_CASE(test_timeouts),
       T_CASE(test_header_modifiers), T_CASE(test_bad_routes))
