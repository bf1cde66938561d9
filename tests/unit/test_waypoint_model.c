/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the waypoint model (model/waypoint.c, Gateway decoding in
 * model/mesh.c): attachment labels in Istio's order, waypoint-for, ready
 * pods, the failure states, no-bypass identities, Gateway shape errors.
 */
#include <string.h>
#include <sys/socket.h>

#include "conf/kobj.h"
#include "model/mesh.h"
#include "model/waypoint.h"
#include "tests/unit/mesh_fixture.h"
#include "tests/unit/t.h"


#define GW(ns, name, extra_labels)                                                   \
	"---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"            \
	"metadata: {name: " name ", namespace: " ns ", labels: {" extra_labels "}}\n" \
	"spec:\n  gatewayClassName: istio-waypoint\n"                               \
	"  listeners: [{name: mesh, port: 15008, protocol: HBONE}]\n"
#define POD(ns, name, labels, ready, ip)                                             \
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: " name ", namespace: " ns \
	", labels: {" labels "}}\nspec: {serviceAccountName: " name "}\n"            \
	"status: {phase: Running, podIP: " ip ", conditions: [{type: Ready, status: '" ready "'}]}\n"
#define SVC(ns, name, labels, sel)                                                   \
	"---\napiVersion: v1\nkind: Service\nmetadata: {name: " name ", namespace: " ns \
	", labels: {" labels "}}\nspec: {clusterIP: 10.96.0.1, selector: {" sel "}, ports: [{port: 80}]}\n"

static const char yaml[] =
	"apiVersion: v1\nkind: Namespace\n"
	"metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint}}\n"
	"---\napiVersion: v1\nkind: Namespace\n"
	"metadata: {name: plain, labels: {istio.io/dataplane-mode: ambient}}\n"
	GW("shop", "waypoint", "")
	GW("shop", "wl-waypoint", "istio.io/waypoint-for: workload")
	GW("shop", "all-waypoint", "istio.io/waypoint-for: all")
	GW("shop", "cold", "istio.io/waypoint-for: all")
	GW("infra", "shared", "")
	"---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
	"metadata: {name: ingress, namespace: shop}\nspec: {gatewayClassName: istio}\n"
	POD("shop", "waypoint-0", "gateway.networking.k8s.io/gateway-name: waypoint", "True", "10.1.0.2")
	POD("shop", "waypoint-1", "gateway.networking.k8s.io/gateway-name: waypoint", "False", "10.1.0.3")
	POD("shop", "wl-waypoint-0", "gateway.networking.k8s.io/gateway-name: wl-waypoint", "True", "10.1.0.4")
	POD("shop", "all-waypoint-0", "gateway.networking.k8s.io/gateway-name: all-waypoint", "True", "10.1.0.5")
	POD("shop", "cold-0", "gateway.networking.k8s.io/gateway-name: cold", "False", "10.1.0.6")
	POD("infra", "shared-0", "gateway.networking.k8s.io/gateway-name: shared", "True", "10.1.0.7")
	POD("shop", "cart-0", "app: cart", "True", "10.1.1.1")
	POD("shop", "pay-0", "app: pay, istio.io/use-waypoint: wl-waypoint", "True", "10.1.1.2")
	POD("shop", "own-0", "app: own, istio.io/use-waypoint: none", "True", "10.1.1.3")
	POD("shop", "svcwp-0", "app: svcwp, istio.io/use-waypoint: waypoint", "True", "10.1.1.4")
	POD("plain", "web-0", "app: web", "True", "10.1.2.1")
	SVC("shop", "cart", "", "app: cart")
	SVC("shop", "own", "istio.io/use-waypoint: none", "app: own")
	SVC("shop", "pay", "istio.io/use-waypoint: wl-waypoint", "app: pay")
	SVC("shop", "ghost", "istio.io/use-waypoint: nowhere", "app: cart")
	SVC("shop", "coldsvc", "istio.io/use-waypoint: cold", "app: cart")
	SVC("shop", "notwp", "istio.io/use-waypoint: ingress", "app: cart")
	SVC("shop", "waypoint", "", "gateway.networking.k8s.io/gateway-name: waypoint")
	SVC("plain", "web", "istio.io/use-waypoint: shared, istio.io/use-waypoint-namespace: infra", "app: web")
	SVC("plain", "web2", "", "app: web");

static const struct mesh_service *svc(const struct mesh *m, const char *ns, const char *name)
{
	for (size_t i = 0; i < m->n_services; i++)
		if (!strcmp(m->services[i].namespace, ns) && !strcmp(m->services[i].name, name))
			return &m->services[i];
	return NULL;
}

static void test_decode_gateways(void)
{
	struct mesh *m = mf_build(yaml);
	const struct mesh_gateway *g;

	T_ASSERT(m);
	T_ASSERT_INT(m->n_gateways, 6);
	g = mesh_find_gateway(m, "shop", "waypoint");
	T_ASSERT(g && g->waypoint);
	T_ASSERT_INT(g->waypoint_for, MESH_WAYPOINT_FOR_SERVICE);
	T_ASSERT_INT(g->hbone_port, 15008);
	T_ASSERT_INT(g->n_pods, 2);
	T_ASSERT_INT(mesh_find_gateway(m, "shop", "wl-waypoint")->waypoint_for, MESH_WAYPOINT_FOR_WORKLOAD);
	T_ASSERT_INT(mesh_find_gateway(m, "shop", "all-waypoint")->waypoint_for, MESH_WAYPOINT_FOR_ALL);
	g = mesh_find_gateway(m, "shop", "ingress");
	T_ASSERT(g && !g->waypoint);
	T_ASSERT(!mesh_find_gateway(m, "plain", "waypoint"));
	mesh_free(m);
}

static void test_ready_pods(void)
{
	struct mesh *m = mf_build(yaml);
	const struct mesh_pod *p;
	size_t pos = 0;

	T_ASSERT(m);
	p = mesh_gateway_next_ready_pod(mesh_find_gateway(m, "shop", "waypoint"), AF_INET, &pos);
	T_ASSERT(p && !strcmp(p->name, "waypoint-0"));
	T_ASSERT(!mesh_gateway_next_ready_pod(mesh_find_gateway(m, "shop", "waypoint"), AF_INET, &pos));
	pos = 0;
	T_ASSERT(!mesh_gateway_next_ready_pod(mesh_find_gateway(m, "shop", "waypoint"), AF_INET6, &pos));
	mesh_free(m);
}

/* Waypoint pods are never captured, even in an ambient namespace. */
static void test_waypoint_pods_not_enrolled(void)
{
	struct mesh *m = mf_build(yaml);
	const char *why;

	T_ASSERT(m);
	T_ASSERT(!mesh_pod_enrolled(m, "shop", "waypoint-0", &why));
	T_ASSERT(strstr(why, "waypoint"));
	T_ASSERT(!mesh_pod_enrolled(m, "infra", "shared-0", &why));
	T_ASSERT(mesh_pod_enrolled(m, "shop", "cart-0", &why));
	mesh_free(m);
}

static void test_service_binding(void)
{
	static const struct {
		const char *ns, *name;
		enum mesh_wp_state state;
		const char *wns, *wname;
	} cases[] = {
		{ "shop", "cart", MESH_WP_BOUND, "shop", "waypoint" },      /* namespace label */
		{ "shop", "own", MESH_WP_NONE, NULL, NULL },                /* own none beats namespace */
		{ "shop", "pay", MESH_WP_NONE, NULL, NULL },                /* workload-only waypoint */
		{ "shop", "ghost", MESH_WP_MISSING, "shop", "nowhere" },    /* no such Gateway */
		{ "shop", "coldsvc", MESH_WP_NOT_READY, "shop", "cold" },   /* no ready pod */
		{ "shop", "notwp", MESH_WP_MISSING, "shop", "ingress" },    /* other class */
		{ "shop", "waypoint", MESH_WP_NONE, NULL, NULL },           /* the waypoint's own Service */
		{ "plain", "web", MESH_WP_BOUND, "infra", "shared" },       /* use-waypoint-namespace */
		{ "plain", "web2", MESH_WP_NONE, NULL, NULL },              /* no label anywhere */
	};
	struct mesh *m = mf_build(yaml);
	struct mesh_wp_binding b;

	T_ASSERT(m);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct mesh_service *s = svc(m, cases[i].ns, cases[i].name);

		T_ASSERT(s);
		mesh_service_waypoint(m, s, &b);
		printf("# %s/%s: %s (%s)\n", cases[i].ns, cases[i].name, mesh_wp_state_name(b.state), b.reason);
		T_ASSERT_INT(b.state, cases[i].state);
		if (cases[i].wname) {
			T_ASSERT_STR(b.ns, cases[i].wns);
			T_ASSERT_STR(b.name, cases[i].wname);
		}
	}
	mesh_free(m);
}

static void test_pod_binding(void)
{
	struct mesh *m = mf_build(yaml);
	struct mesh_wp_binding b;

	T_ASSERT(m);
	mesh_pod_waypoint(m, mesh_find_pod(m, "shop", "pay-0"), &b);
	T_ASSERT_INT(b.state, MESH_WP_BOUND);
	T_ASSERT_STR(b.name, "wl-waypoint");
	/* the namespace's waypoint serves Services only */
	mesh_pod_waypoint(m, mesh_find_pod(m, "shop", "cart-0"), &b);
	T_ASSERT_INT(b.state, MESH_WP_NONE);
	/* a pod naming a service waypoint is not bound either */
	mesh_pod_waypoint(m, mesh_find_pod(m, "shop", "svcwp-0"), &b);
	T_ASSERT_INT(b.state, MESH_WP_NONE);
	mesh_pod_waypoint(m, mesh_find_pod(m, "shop", "waypoint-0"), &b);
	T_ASSERT_INT(b.state, MESH_WP_NONE);
	mesh_free(m);
}

/* No bypass: a workload behind a waypoint admits the waypoint's identity. */
static void test_requires_waypoint(void)
{
	struct mesh *m = mf_build(yaml);
	struct mesh_wp_binding b;

	T_ASSERT(m);
	/* cart-0 is selected by Service cart (bound to shop/waypoint) */
	T_ASSERT(mesh_pod_requires_waypoint(m, mesh_find_pod(m, "shop", "cart-0"), &b));
	T_ASSERT_STR(b.name, "waypoint");
	T_ASSERT(mesh_waypoint_identity(&b, "shop", "waypoint"));   /* the Gateway's name */
	T_ASSERT(mesh_waypoint_identity(&b, "shop", "waypoint-1")); /* a pod's service account */
	T_ASSERT(!mesh_waypoint_identity(&b, "shop", "cart-0"));
	T_ASSERT(!mesh_waypoint_identity(&b, "other", "waypoint"));
	T_ASSERT(!mesh_waypoint_identity(&b, NULL, NULL));
	T_ASSERT(mesh_pod_requires_waypoint(m, mesh_find_pod(m, "shop", "pay-0"), &b));
	T_ASSERT_STR(b.name, "wl-waypoint");
	T_ASSERT(!mesh_pod_requires_waypoint(m, mesh_find_pod(m, "shop", "own-0"), &b));
	T_ASSERT(mesh_pod_requires_waypoint(m, mesh_find_pod(m, "plain", "web-0"), &b));
	T_ASSERT_STR(b.ns, "infra");
	mesh_free(m);

	/* the escape hatch */
	m = mf_build(GW("a", "wp", "")
		  "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a, labels: {app: p},"
		  " annotations: {warren.io/waypoint-allow-direct: 'true'}}\nstatus: {podIP: 10.0.0.1}\n"
		  SVC("a", "s", "istio.io/use-waypoint: wp", "app: p"));
	T_ASSERT(m);
	T_ASSERT(!mesh_pod_requires_waypoint(m, mesh_find_pod(m, "a", "p"), &b));
	mesh_free(m);
}

static void test_bad_gateways(void)
{
	static const struct {
		const char *yaml, *want;
	} cases[] = {
		{ "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: w}\n"
		  "spec: {gatewayClassName: istio-waypoint}\n",
		  "a waypoint needs a listener with port 15008 and protocol HBONE" },
		{ "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: w}\n"
		  "spec: {gatewayClassName: istio-waypoint, listeners: [{name: m, port: 15009, protocol: HBONE}]}\n",
		  "an HBONE listener must be on port 15008, not 15009" },
		{ "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: w}\n"
		  "spec: {gatewayClassName: istio-waypoint, listeners: [{name: m, port: 15008, protocl: HBONE}]}\n",
		  "unknown key \"protocl\"" },
		{ "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
		  "metadata: {name: w, labels: {istio.io/waypoint-for: services}}\n"
		  "spec: {gatewayClassName: istio-waypoint, listeners: [{name: m, port: 15008, protocol: HBONE}]}\n",
		  "istio.io/waypoint-for is \"services\"" },
		{ "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: w}\nspec: {}\n",
		  "spec.gatewayClassName: missing or empty" },
		{ "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: w}\n"
		  "spec: {gatewayClassName: istio-waypoint, listeners: [{name: m, port: '15008', protocol: HBONE}]}\n",
		  "port must be a number" },
		{ GW("a", "w", "") GW("a", "w", ""), "duplicate Gateway a/w" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mesh *m = mf_build(cases[i].yaml);

		printf("# %s\n", mf_err);
		T_ASSERT(!m);
		T_ASSERT(strstr(mf_err, cases[i].want));
	}
}

T_MAIN(T_CASE(test_decode_gateways), T_CASE(test_ready_pods), T_CASE(test_waypoint_pods_not_enrolled),
       T_CASE(test_service_binding), T_CASE(test_pod_binding), T_CASE(test_requires_waypoint),
       T_CASE(test_bad_gateways))
