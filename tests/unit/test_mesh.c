/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of model/mesh.c: decoding a realistic mesh file, lookups,
 * selectors, enrollment decisions, shape errors, directory mode.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/kobj.h"
#include "model/mesh.h"
#include "model/mesh_index.h"
#include "tests/unit/t.h"

static char err[512];

static const char mesh_yaml[] =
	"apiVersion: v1\n"
	"kind: Namespace\n"
	"metadata:\n"
	"  name: demo\n"
	"  labels:\n"
	"    istio.io/dataplane-mode: ambient\n"
	"---\n"
	"apiVersion: v1\n"
	"kind: Namespace\n"
	"metadata: {name: plain}\n"
	"---\n"
	"apiVersion: v1\n"
	"kind: Pod\n"
	"metadata:\n"
	"  name: client\n"
	"  namespace: demo\n"
	"  uid: 1111-aaaa\n"
	"  labels: {app: client, version: v1}\n"
	"spec:\n"
	"  serviceAccountName: client\n"
	"  nodeName: node-a\n"
	"  containers: [{name: c, image: curl}]\n"
	"status:\n"
	"  phase: Running\n"
	"  podIP: 10.244.0.5\n"
	"  podIPs: [{ip: 10.244.0.5}, {ip: 'fd00:10:244::5'}]\n"
	"  conditions: [{type: Ready, status: 'True'}]\n"
	"---\n"
	"apiVersion: v1\n"
	"kind: Pod\n"
	"metadata:\n"
	"  name: server-0\n"
	"  namespace: demo\n"
	"  uid: 2222-bbbb\n"
	"  labels: {app: server}\n"
	"spec:\n"
	"  serviceAccount: server\n"
	"status:\n"
	"  podIP: 10.244.0.6\n"
	"  conditions: [{type: Ready, status: 'False'}]\n"
	"---\n"
	"apiVersion: v1\n"
	"kind: Pod\n"
	"metadata:\n"
	"  name: opted-out\n"
	"  namespace: demo\n"
	"  labels: {istio.io/dataplane-mode: none}\n"
	"status: {phase: Pending}\n"
	"---\n"
	"apiVersion: v1\n"
	"kind: Pod\n"
	"metadata:\n"
	"  name: hostnet\n"
	"  namespace: demo\n"
	"spec: {hostNetwork: true}\n"
	"status: {podIP: 192.168.1.10}\n"
	"---\n"
	"apiVersion: v1\n"
	"kind: Pod\n"
	"metadata:\n"
	"  name: solo\n"
	"  namespace: plain\n"
	"  labels: {istio.io/dataplane-mode: ambient}\n"
	"---\n"
	"apiVersion: v1\n"
	"kind: Pod\n"
	"metadata: {name: lonely}\n"
	"---\n"
	"apiVersion: v1\n"
	"kind: Service\n"
	"metadata:\n"
	"  name: server\n"
	"  namespace: demo\n"
	"  labels: {istio.io/use-waypoint: wp}\n"
	"spec:\n"
	"  selector: {app: server}\n"
	"  clusterIP: 10.96.0.10\n"
	"  clusterIPs: [10.96.0.10, 'fd00:96::10']\n"
	"  ports:\n"
	"  - {name: http, port: 80, targetPort: 8080}\n"
	"  - {name: grpc, port: 9090, protocol: TCP, targetPort: grpc-port}\n"
	"  - {port: 53, protocol: UDP}\n"
	"---\n"
	"apiVersion: v1\n"
	"kind: Service\n"
	"metadata: {name: headless, namespace: demo}\n"
	"spec: {clusterIP: None, selector: {app: server}}\n"
	"---\n"
	"apiVersion: security.istio.io/v1\n"
	"kind: AuthorizationPolicy\n"
	"metadata: {name: allow-client, namespace: demo}\n"
	"spec:\n"
	"  selector: {matchLabels: {app: server}}\n"
	"  action: ALLOW\n"
	"  rules:\n"
	"  - from: [{source: {principals: [cluster.local/ns/demo/sa/client]}}]\n"
	"---\n"
	"apiVersion: security.istio.io/v1beta1\n"
	"kind: PeerAuthentication\n"
	"metadata: {name: strict}\n"
	"spec: {mtls: {mode: STRICT}}\n"
	"---\n"
	"apiVersion: apps/v1\n"
	"kind: Deployment\n"
	"metadata: {name: ignored, namespace: demo}\n"
	"spec: {replicas: 3}\n"
	"---\n"
	"apiVersion: example.com/v1\n"
	"kind: Pod\n"
	"metadata: {}\n";

static struct mesh *build_text(const char *text, size_t len)
{
	json_t *objs = NULL;
	struct mesh *m = NULL;

	err[0] = '\0';
	if (kobj_load_text(text, len, "mesh.yaml", &objs, err, sizeof(err)))
		return NULL;
	if (mesh_build(objs, "mesh.yaml", &m, err, sizeof(err)))
		m = NULL;
	json_decref(objs);
	return m;
}

static struct mesh *build(const char *text)
{
	return build_text(text, strlen(text));
}

static struct mesh_ip ip(const char *s)
{
	struct mesh_ip a;

	if (mesh_ip_parse(s, &a))
		abort();
	return a;
}

static void test_decode(void)
{
	struct mesh *m = build(mesh_yaml);
	const struct mesh_pod *p;
	const struct mesh_service *s;
	char buf[64];

	if (!m)
		printf("# %s\n", err);
	T_ASSERT(m);
	T_ASSERT_INT(m->n_namespaces, 2);
	T_ASSERT_INT(m->n_pods, 6);
	T_ASSERT_INT(m->n_services, 2);
	T_ASSERT_INT(json_array_size(m->authorization_policies), 1);
	T_ASSERT_INT(json_array_size(m->peer_authentications), 1);

	p = mesh_find_pod(m, "demo", "client");
	T_ASSERT(p);
	T_ASSERT_STR(p->uid, "1111-aaaa");
	T_ASSERT_STR(p->service_account, "client");
	T_ASSERT_STR(p->node, "node-a");
	T_ASSERT(p->ready);
	T_ASSERT(!p->host_network);
	T_ASSERT_INT(p->n_ips, 2);
	T_ASSERT_STR(mesh_ip_str(&p->ips[0], buf, sizeof(buf)), "10.244.0.5");
	T_ASSERT_STR(mesh_ip_str(&p->ips[1], buf, sizeof(buf)), "fd00:10:244::5");
	T_ASSERT_STR(mesh_label(&p->labels, "version"), "v1");
	T_ASSERT(!mesh_label(&p->labels, "Version"));

	p = mesh_find_pod(m, "demo", "server-0");
	T_ASSERT(p);
	T_ASSERT_STR(p->service_account, "server"); /* deprecated spec.serviceAccount */
	T_ASSERT(!p->ready);                       /* Ready=False */
	T_ASSERT_INT(p->n_ips, 1);
	T_ASSERT_STR(p->node, "");

	p = mesh_find_pod(m, "demo", "opted-out");
	T_ASSERT(p && !p->ready && p->n_ips == 0); /* Pending */
	T_ASSERT_STR(p->uid, "");
	p = mesh_find_pod(m, "default", "lonely");
	T_ASSERT(p);
	T_ASSERT_STR(p->service_account, "default");
	T_ASSERT(p->ready); /* no status at all: hand-written file */
	T_ASSERT(mesh_find_pod(m, "demo", "hostnet")->host_network);

	s = mesh_find_service_by_vip(m, &(struct mesh_ip){ 0 });
	T_ASSERT(!s);
	struct mesh_ip v6 = ip("fd00:96::10");
	s = mesh_find_service_by_vip(m, &v6);
	T_ASSERT(s);
	T_ASSERT_STR(s->name, "server");
	T_ASSERT_STR(s->namespace, "demo");
	T_ASSERT_INT(s->n_vips, 2); /* clusterIP repeated in clusterIPs: once */
	T_ASSERT_STR(mesh_label(&s->labels, "istio.io/use-waypoint"), "wp");
	T_ASSERT_INT(s->n_ports, 3);
	T_ASSERT_STR(s->ports[0].name, "http");
	T_ASSERT_STR(s->ports[0].protocol, "TCP");
	T_ASSERT_INT(s->ports[0].port, 80);
	T_ASSERT_INT(s->ports[0].target_port, 8080);
	T_ASSERT(!s->ports[0].target_port_name);
	T_ASSERT_INT(s->ports[1].target_port, 0);
	T_ASSERT_STR(s->ports[1].target_port_name, "grpc-port");
	T_ASSERT_STR(s->ports[2].name, "");
	T_ASSERT_STR(s->ports[2].protocol, "UDP");
	T_ASSERT_INT(s->ports[2].target_port, 53);

	/* headless: no VIP */
	T_ASSERT_INT(m->services[1].n_vips, 0);

	/* policies are raw, namespace defaulted */
	json_t *pa = json_array_get(m->peer_authentications, 0);
	T_ASSERT_STR(json_string_value(json_object_get(json_object_get(pa, "metadata"), "namespace")),
		     "default");
	json_t *ap = json_array_get(m->authorization_policies, 0);
	T_ASSERT_STR(json_string_value(json_object_get(json_object_get(ap, "spec"), "action")), "ALLOW");
	mesh_free(m);
	mesh_free(NULL);
}

static void test_lookups(void)
{
	struct mesh *m = build(mesh_yaml);
	struct mesh_ip a;

	T_ASSERT(m);
	T_ASSERT(mesh_find_namespace(m, "demo"));
	T_ASSERT(!mesh_find_namespace(m, "Demo"));
	T_ASSERT(!mesh_find_namespace(m, "kube-system"));
	T_ASSERT_STR(mesh_find_pod_by_uid(m, "2222-bbbb")->name, "server-0");
	T_ASSERT(!mesh_find_pod_by_uid(m, ""));
	T_ASSERT(!mesh_find_pod_by_uid(m, "nope"));
	T_ASSERT(!mesh_find_pod(m, "plain", "client"));

	a = ip("10.244.0.6");
	T_ASSERT_STR(mesh_find_pod_by_ip(m, &a)->name, "server-0");
	a = ip("fd00:10:244::5");
	T_ASSERT_STR(mesh_find_pod_by_ip(m, &a)->name, "client");
	a = ip("192.168.1.10"); /* host-network pods never identify a workload */
	T_ASSERT(!mesh_find_pod_by_ip(m, &a));
	a = ip("10.96.0.10");
	T_ASSERT(!mesh_find_pod_by_ip(m, &a));
	T_ASSERT_STR(mesh_find_service_by_vip(m, &a)->name, "server");
	a = ip("10.96.0.11");
	T_ASSERT(!mesh_find_service_by_vip(m, &a));

	T_ASSERT(!mesh_find_pod(NULL, "demo", "client"));
	T_ASSERT(!mesh_find_namespace(NULL, "demo"));
	mesh_free(m);
}

static void test_ip(void)
{
	struct mesh_ip a, b;
	char buf[64];

	T_ASSERT_INT(mesh_ip_parse("10.1.2.3", &a), 0);
	T_ASSERT_INT(a.family, AF_INET);
	T_ASSERT_INT(mesh_ip_parse("fd00::1", &b), 0);
	T_ASSERT_INT(b.family, AF_INET6);
	T_ASSERT(!mesh_ip_equal(&a, &b));
	T_ASSERT_INT(mesh_ip_parse("FD00:0::1", &a), 0);
	T_ASSERT(mesh_ip_equal(&a, &b));
	T_ASSERT_STR(mesh_ip_str(&a, buf, sizeof(buf)), "fd00::1");
	T_ASSERT_INT(mesh_ip_parse("10.1.2", &a), -EINVAL);
	T_ASSERT_INT(mesh_ip_parse("10.1.2.3/24", &a), -EINVAL);
	T_ASSERT_INT(mesh_ip_parse("", &a), -EINVAL);
	T_ASSERT_INT(mesh_ip_parse(NULL, &a), -EINVAL);
}

static void test_selector(void)
{
	struct mesh_label sl[] = { { "app", "server" }, { "tier", "web" } };
	struct mesh_label pl[] = { { "tier", "web" }, { "app", "server" }, { "x", "y" } };
	struct mesh_label ql[] = { { "app", "server" } };
	struct mesh_label rl[] = { { "app", "Server" }, { "tier", "web" } };
	struct mesh_labels sel = { sl, 2 }, p = { pl, 3 }, q = { ql, 1 }, r = { rl, 2 };
	struct mesh_labels empty = { NULL, 0 };

	T_ASSERT(mesh_selector_matches(&sel, &p));
	T_ASSERT(!mesh_selector_matches(&sel, &q)); /* missing tier */
	T_ASSERT(!mesh_selector_matches(&sel, &r)); /* exact match only */
	T_ASSERT(!mesh_selector_matches(&empty, &p));
	T_ASSERT(!mesh_selector_matches(&sel, &empty));

	/* against the model: the server Service selects server-0 only */
	struct mesh *m = build(mesh_yaml);
	size_t hits = 0;

	T_ASSERT(m);
	const struct mesh_service *s = &m->services[0];
	for (size_t i = 0; i < m->n_pods; i++)
		if (!strcmp(m->pods[i].namespace, s->namespace) &&
		    mesh_selector_matches(&s->selector, &m->pods[i].labels)) {
			hits++;
			T_ASSERT_STR(m->pods[i].name, "server-0");
		}
	mesh_free(m);
	T_ASSERT_INT(hits, 1);
}

static void test_enrollment(void)
{
	struct mesh *m = build(mesh_yaml);
	const char *why = NULL;

	T_ASSERT(m);
	/* namespace label */
	T_ASSERT(mesh_pod_enrolled(m, "demo", "client", &why));
	T_ASSERT_STR(why, "namespace demo has istio.io/dataplane-mode=ambient");
	/* pod opt-out wins over the namespace */
	T_ASSERT(!mesh_pod_enrolled(m, "demo", "opted-out", &why));
	T_ASSERT_STR(why, "pod has istio.io/dataplane-mode=none");
	/* host network: never */
	T_ASSERT(!mesh_pod_enrolled(m, "demo", "hostnet", &why));
	T_ASSERT(strstr(why, "host network"));
	/* pod label in a namespace without the label */
	T_ASSERT(mesh_pod_enrolled(m, "plain", "solo", &why));
	T_ASSERT_STR(why, "pod has istio.io/dataplane-mode=ambient");
	/* pod absent from the model: judged by its namespace */
	T_ASSERT(mesh_pod_enrolled(m, "demo", "new-pod", &why));
	T_ASSERT(strstr(why, "namespace demo has") && strstr(why, "pod not in the mesh model"));
	T_ASSERT(!mesh_pod_enrolled(m, "plain", "new-pod", &why));
	T_ASSERT(strstr(why, "namespace plain does not have istio.io/dataplane-mode=ambient"));
	/* namespace absent too */
	T_ASSERT(!mesh_pod_enrolled(m, "default", "lonely", &why));
	T_ASSERT_STR(why, "namespace default is not in the mesh model");
	T_ASSERT(!mesh_pod_enrolled(m, "nowhere", "x", &why));
	T_ASSERT(!mesh_pod_enrolled(NULL, "demo", "client", &why));
	T_ASSERT(strstr(why, "no mesh model"));
	T_ASSERT(mesh_pod_enrolled(m, "demo", "client", NULL));
	mesh_free(m);
}

/* Pod annotations: a sidecar-injected pod is never enrolled, and
 * bypass-inbound-capture takes Go's ParseBool spellings; anything else is
 * ignored (inbound captured) and reported to the caller. */
static void test_pod_annotations(void)
{
	static const struct {
		const char *value;
		bool capture;
		bool bad;
	} cases[] = {
		{ "true", false, false },  { "True", false, false }, { "TRUE", false, false },
		{ "t", false, false },	   { "1", false, false },    { "false", true, false },
		{ "F", true, false },	   { "0", true, false },     { "yes", true, true },
		{ "", true, true },	   { "true ", true, true },
	};
	struct mesh *m = build("apiVersion: v1\nkind: Namespace\nmetadata: {name: ing, labels: {istio.io/dataplane-mode: ambient}}\n---\n"
			       "apiVersion: v1\nkind: Pod\nmetadata: {name: gw, namespace: ing, annotations: {ambient.istio.io/bypass-inbound-capture: 'true'}}\n---\n"
			       "apiVersion: v1\nkind: Pod\nmetadata: {name: app, namespace: ing}\n---\n"
			       "apiVersion: v1\nkind: Pod\nmetadata: {name: side, namespace: ing, annotations: {sidecar.istio.io/status: '{}'}}\n---\n"
			       "apiVersion: v1\nkind: Pod\nmetadata: {name: side-in, namespace: ing, labels: {istio.io/dataplane-mode: ambient}, annotations: {sidecar.istio.io/status: '{}'}}\n");
	const char *why = NULL, *bad = "x";
	struct mesh_pod p = { 0 };
	struct mesh_label a;

	T_ASSERT(m);
	T_ASSERT(mesh_pod_enrolled(m, "ing", "gw", &why));
	T_ASSERT(!mesh_pod_capture_inbound(mesh_find_pod(m, "ing", "gw"), &bad));
	T_ASSERT(!bad);
	T_ASSERT(mesh_pod_capture_inbound(mesh_find_pod(m, "ing", "app"), &bad));
	T_ASSERT(!bad);
	/* a sidecar wins over both the namespace and the pod label */
	T_ASSERT(!mesh_pod_enrolled(m, "ing", "side", &why));
	T_ASSERT_STR(why, "pod has a sidecar (annotation sidecar.istio.io/status)");
	T_ASSERT(!mesh_pod_enrolled(m, "ing", "side-in", &why));
	mesh_free(m);

	a.key = "ambient.istio.io/bypass-inbound-capture";
	p.annotations.items = &a;
	p.annotations.n = 1;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		a.value = cases[i].value;
		if (mesh_pod_capture_inbound(&p, &bad) != cases[i].capture || (bad != NULL) != cases[i].bad) {
			printf("# value \"%s\" misread\n", cases[i].value);
			T_ASSERT(false);
		}
		T_ASSERT(!bad || bad == a.value);
	}
	/* annotation values are strings, as in Kubernetes */
	m = build("apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {ambient.istio.io/bypass-inbound-capture: true}}\n");
	T_ASSERT(!m);
	T_ASSERT_STR(err, "mesh.yaml: object 1 (Pod default/p): metadata.annotations: value of \"ambient.istio.io/bypass-inbound-capture\" must be a string, got a boolean (quote it)");
}

struct bad {
	const char *yaml;
	const char *msg;
};

static void test_bad_objects(void)
{
	static const struct bad cases[] = {
		{ "apiVersion: v1\nkind: Pod\nmetadata: {namespace: demo}\n",
		  "mesh.yaml: object 1 (Pod): metadata.name: missing or empty" },
		{ "apiVersion: v1\nkind: Namespace\nspec: {}\n",
		  "mesh.yaml: object 1 (Namespace): metadata: missing; every object needs metadata.name" },
		{ "kind: Namespace\nmetadata: {name: a}\n",
		  "mesh.yaml: object 1: apiVersion missing or not a string; every object needs apiVersion and kind" },
		{ "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
		  "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a}\nstatus: {podIP: 10.0.0.300}\n",
		  "mesh.yaml: object 2 (Pod a/p): status.podIP: \"10.0.0.300\" is not an IPv4 or IPv6 address" },
		{ "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nstatus: {podIPs: [{ip: x}]}\n",
		  "mesh.yaml: object 1 (Pod default/p): status.podIPs[].ip: \"x\" is not an IPv4 or IPv6 address" },
		{ "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {version: 1}}\n",
		  "mesh.yaml: object 1 (Pod default/p): metadata.labels: value of \"version\" must be a string, got an integer (quote it)" },
		{ "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {hostNetwork: 'yes'}\n",
		  "mesh.yaml: object 1 (Pod default/p): spec.hostNetwork: expected true or false, got a string" },
		{ "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{ports: [{name: http}]}]}\n",
		  "mesh.yaml: object 1 (Pod default/p): spec.containers[].ports[].containerPort: missing in item 0" },
		{ "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {initContainers: [{ports: [{containerPort: 0}]}]}\n",
		  "mesh.yaml: object 1 (Pod default/p): spec.initContainers[].ports[].containerPort: item 0: 0 is not a port (1-65535)" },
		{ "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{ports: {http: 80}}]}\n",
		  "mesh.yaml: object 1 (Pod default/p): spec.containers[].ports: expected a list, got a mapping" },
		{ "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{ports: [{name: 8, containerPort: 80}]}]}\n",
		  "mesh.yaml: object 1 (Pod default/p): spec.containers[].ports[].name: expected a string, got an integer" },
		{ "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\nendpoints: []\n",
		  "mesh.yaml: object 1 (EndpointSlice default/e): addressType: missing (IPv4, IPv6 or FQDN)" },
		{ "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\naddressType: IPv4\nendpoints: [{addresses: ['fd00::1']}]\n",
		  "mesh.yaml: object 1 (EndpointSlice default/e): endpoints[].addresses: item 0: \"fd00::1\" is not an IPv4 address" },
		{ "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\naddressType: IPv4\nendpoints: [{addresses: []}]\n",
		  "mesh.yaml: object 1 (EndpointSlice default/e): endpoints[].addresses: item 0: needs at least one address, a string" },
		{ "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\naddressType: IPv4\nendpoints: [{addresses: [10.0.0.1], conditions: {ready: 'yes'}}]\n",
		  "mesh.yaml: object 1 (EndpointSlice default/e): endpoints[].conditions.ready: item 0: expected true or false, got a string" },
		{ "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\naddressType: IPv4\nports: [{port: 0}]\n",
		  "mesh.yaml: object 1 (EndpointSlice default/e): ports[].port: item 0: 0 is not a port (1-65535)" },
		{ "apiVersion: v1\nkind: Pod\nmetadata: {name: 7}\n",
		  "mesh.yaml: object 1 (Pod): metadata.name: expected a string, got an integer" },
		{ "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: d}\nspec: {ports: [{port: 70000}]}\n",
		  "mesh.yaml: object 1 (Service d/s): spec.ports[].port: item 0: 70000 is not a port (1-65535)" },
		{ "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: d}\nspec: {ports: [{port: 80, targetPort: 0}]}\n",
		  "mesh.yaml: object 1 (Service d/s): spec.ports[].targetPort: item 0: 0 is not a port (1-65535)" },
		{ "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: d}\nspec: {ports: [{name: x}]}\n",
		  "mesh.yaml: object 1 (Service d/s): spec.ports[].port: missing in item 0" },
		{ "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: d}\nspec: {clusterIP: 10.96.0.1.2}\n",
		  "mesh.yaml: object 1 (Service d/s): spec.clusterIP: \"10.96.0.1.2\" is not an IPv4 or IPv6 address" },
		{ "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {selector: [app]}\n",
		  "mesh.yaml: object 1 (Service default/s): spec.selector: expected a mapping, got a list" },
		{ "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {namespace: x}\n",
		  "mesh.yaml: object 1 (AuthorizationPolicy): metadata.name: missing or empty" },
		{ "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\n",
		  "mesh.yaml: object 2: duplicate Pod default/p (first defined in mesh.yaml, object 1)" },
		{ "apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n",
		  "mesh.yaml: object 2: duplicate Namespace n (first defined in mesh.yaml, object 1)" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mesh *m = build(cases[i].yaml);

		if (m)
			printf("# case %zu unexpectedly loaded\n", i);
		mesh_free(m);
		T_ASSERT(!m);
		T_ASSERT_STR(err, cases[i].msg);
	}
	/* a same-named Pod in two namespaces is not a duplicate */
	struct mesh *m = build("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n---\n"
			       "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: b}\n");
	T_ASSERT(m);
	mesh_free(m);
}

static void test_build_copies_input(void)
{
	json_t *objs = json_pack("[{s:s, s:s, s:{s:s}}]", "apiVersion", "v1", "kind", "Namespace",
				 "metadata", "name", "orig");
	struct mesh *m = NULL;

	T_ASSERT(objs);
	T_ASSERT_INT(mesh_build(objs, NULL, &m, err, sizeof(err)), 0);
	json_object_set_new(json_object_get(json_array_get(objs, 0), "metadata"), "name",
			    json_string("changed"));
	json_decref(objs);
	T_ASSERT(mesh_find_namespace(m, "orig"));
	mesh_free(m);

	m = (struct mesh *)1;
	T_ASSERT_INT(mesh_build(json_object_get(NULL, "x"), "o", &m, err, sizeof(err)), -EINVAL);
	T_ASSERT(!m);
}

static int write_file(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

static void rm_files(const char *dir)
{
	static const char *const names[] = { "10-ns.yaml", "20-pods.json", ".hidden.yaml",
					     "notes.txt", "sub", "30-bad.yml" };
	char path[256];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
		rmdir(path);
	}
	rmdir(dir);
}

static void test_directory(void)
{
	char dir[] = "/tmp/warren-mesh.XXXXXX", path[256];
	struct mesh *m = NULL;
	int ret;

	T_ASSERT(mkdtemp(dir));
	ret = write_file(dir, "10-ns.yaml",
			 "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n"
			 "  labels: {istio.io/dataplane-mode: ambient}\n");
	ret |= write_file(dir, "20-pods.json",
			  "{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": ["
			  "{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"a\", \"namespace\": \"demo\"}},"
			  "{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"b\", \"namespace\": \"demo\"}}]}");
	/* skipped: hidden, other suffix, directory */
	ret |= write_file(dir, ".hidden.yaml", "not: [valid");
	ret |= write_file(dir, "notes.txt", "not: [valid");
	snprintf(path, sizeof(path), "%s/sub", dir);
	ret |= mkdir(path, 0700);
	if (ret) {
		rm_files(dir);
		T_ASSERT(!"cannot write test files");
	}
	ret = mesh_load_path(dir, &m, err, sizeof(err));
	if (ret)
		printf("# %s\n", err);
	if (!ret) {
		ret = m->n_namespaces == 1 && m->n_pods == 2 && !strcmp(m->pods[0].name, "a") &&
			      mesh_pod_enrolled(m, "demo", "b", NULL) ? 0 : -1;
		mesh_free(m);
	}
	/* a single file */
	snprintf(path, sizeof(path), "%s/10-ns.yaml", dir);
	if (!ret && !(ret = mesh_load_path(path, &m, err, sizeof(err)))) {
		ret = m->n_namespaces == 1 && m->n_pods == 0 ? 0 : -1;
		mesh_free(m);
	}
	int first = ret;

	/* a broken third file fails the whole load, naming it */
	write_file(dir, "30-bad.yml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [x]\n");
	int bad = mesh_load_path(dir, &m, err, sizeof(err));
	char want[300];

	snprintf(want, sizeof(want), "%s/30-bad.yml: object 1 (Pod): metadata.name: expected a string, got a list", dir);
	/* duplicate across files names both */
	write_file(dir, "30-bad.yml", "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: demo}\n");
	char err2[512];
	int dup = mesh_load_path(dir, &m, err2, sizeof(err2));

	rm_files(dir);
	T_ASSERT_INT(first, 0);
	T_ASSERT_INT(bad, -EINVAL);
	T_ASSERT_STR(err, want);
	T_ASSERT_INT(dup, -EINVAL);
	T_ASSERT(strstr(err2, "30-bad.yml: object 1: duplicate Pod demo/a (first defined in "));
	T_ASSERT(strstr(err2, "20-pods.json, object 1)"));

	T_ASSERT_INT(mesh_load_path(dir, &m, err, sizeof(err)), -ENOENT);
	T_ASSERT(strstr(err, dir));
}

static void test_example_file(void)
{
	struct mesh *m = NULL;
	const char *why;
	int ret = mesh_load_path("hack/examples/mesh.yaml", &m, err, sizeof(err));

	if (ret == -ENOENT) {
		printf("# run from the source tree\n");
		ret = mesh_load_path("../hack/examples/mesh.yaml", &m, err, sizeof(err));
	}
	if (ret)
		printf("# %s\n", err);
	T_ASSERT_INT(ret, 0);
	T_ASSERT(mesh_pod_enrolled(m, "demo", "client", &why));
	T_ASSERT(mesh_pod_enrolled(m, "demo", "server", &why));
	T_ASSERT(!mesh_pod_enrolled(m, "demo", "opted-out", &why));
	T_ASSERT(!mesh_pod_enrolled(m, "plain", "x", &why));
	T_ASSERT_STR(mesh_find_pod(m, "demo", "server")->service_account, "server");
	struct mesh_ip vip = ip("10.96.0.10");
	const struct mesh_service *s = mesh_find_service_by_vip(m, &vip);
	T_ASSERT(s && s->n_ports == 1 && s->ports[0].port == 80 && s->ports[0].target_port == 8080);
	T_ASSERT(mesh_selector_matches(&s->selector, &mesh_find_pod(m, "demo", "server")->labels));
	mesh_free(m);
}

static void test_large_model(void)
{
	/* 20000 pods: build and lookups stay fast (duplicate check is sorted) */
	size_t n = 20000, cap = n * 120 + 64, len = 0;
	char *s = malloc(cap);
	struct mesh *m;

	T_ASSERT(s);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len,
					"---\napiVersion: v1\nkind: Pod\nmetadata: {name: p%zu, namespace: n%zu}\n"
					"status: {podIP: 10.%zu.%zu.1}\n",
					i, i % 7, (i >> 8) & 255, i & 255);
	m = build_text(s, len);
	free(s);
	T_ASSERT(m);
	T_ASSERT_INT(m->n_pods, n);
	struct mesh_ip a = ip("10.78.31.1"); /* i = 78*256+31 = 19999 */
	T_ASSERT_STR(mesh_find_pod_by_ip(m, &a)->name, "p19999");
	mesh_free(m);
}

/*
 * The hash indexes against the scans they replace: a generated model with
 * the awkward cases (two pods on one IP, host-network pods, pods without
 * uid, dual-stack pods, Services with two VIPs, overlapping and empty
 * selectors, the same names in several namespaces) is asked every question
 * twice, with its index and with it set aside (the lookups then scan), and
 * every answer must be the same element.
 */
static const void *idx_answer(struct mesh *m, bool indexed, int q, size_t i, char *a1, char *a2)
{
	struct mesh_index *saved = m->index;
	const void *r = NULL;
	struct mesh_ip a;

	m->index = indexed ? saved : NULL;
	switch (q) {
	case 0:
		snprintf(a1, 64, "10.1.%zu.%zu", i / 256, i % 256);
		a = ip(a1);
		r = mesh_find_pod_by_ip(m, &a);
		break;
	case 1:
		snprintf(a1, 64, "fd00::%zx", i);
		a = ip(a1);
		r = mesh_find_pod_by_ip(m, &a);
		break;
	case 2:
		snprintf(a1, 64, "10.96.%zu.%zu", i / 256, i % 256);
		a = ip(a1);
		r = mesh_find_service_by_vip(m, &a);
		break;
	case 3:
		snprintf(a1, 64, "uid-%zu", i);
		r = mesh_find_pod_by_uid(m, a1);
		break;
	case 4:
		snprintf(a1, 64, "n%zu", i % 9);
		snprintf(a2, 64, "p%zu", i / 3);
		r = mesh_find_pod(m, a1, a2);
		break;
	case 5:
		snprintf(a1, 64, "n%zu", i);
		r = mesh_find_namespace(m, a1);
		break;
	}
	m->index = saved;
	return r;
}

static void test_index_matches_scan(void)
{
	size_t np = 600, ns = 120, cap = (np + ns) * 400, len = 0;
	char *s = malloc(cap), a1[64], a2[64];
	struct mesh *m;
	struct mesh_index *x;
	size_t pairs = 0;

	T_ASSERT(s);
	for (size_t i = 0; i < 8; i++)
		len += (size_t)snprintf(s + len, cap - len,
					"---\napiVersion: v1\nkind: Namespace\nmetadata: {name: n%zu}\n", i);
	for (size_t i = 0; i < np; i++) {
		/* shares its IPv4 with pod i - 1 (a conflict, or not when one of
		 * them is host-network or finished) */
		size_t at = i % 50 == 7 ? i - 1 : i;
		char uid[32] = "", v6[32] = "";

		if (i % 4)
			snprintf(uid, sizeof(uid), ", uid: uid-%zu", i);
		if (!(i % 2)) /* pods 0 and 2 share theirs: a conflict */
			snprintf(v6, sizeof(v6), ", {ip: 'fd00::%zx'}", i == 2 ? (size_t)0 : i);
		len += (size_t)snprintf(s + len, cap - len,
			"---\napiVersion: v1\nkind: Pod\nmetadata: {name: p%zu, namespace: n%zu%s, labels: {app: a%zu, tier: t%zu}}\n"
			"spec: {hostNetwork: %s}\nstatus: {phase: %s, podIPs: [{ip: 10.1.%zu.%zu}%s]}\n",
			i / 3, i % 9, uid, i % 5, i % 3, i % 11 == 3 ? "true" : "false",
			i % 13 == 5 ? "Succeeded" : "Running", at / 256, at % 256, v6);
	}
	for (size_t i = 0; i < ns; i++) {
		char sel[32] = ""; /* every 7th: an empty selector, which picks nothing */

		if (i % 7)
			snprintf(sel, sizeof(sel), "app: a%zu", i % 5);
		len += (size_t)snprintf(s + len, cap - len,
			"---\napiVersion: v1\nkind: Service\nmetadata: {name: s%zu, namespace: n%zu}\n"
			"spec: {clusterIPs: [10.96.%zu.%zu%s], selector: {%s}, ports: [{port: 80}]}\n",
			i, i % 9, i / 256, i % 256, i % 3 ? "" : ", 10.96.200.1", sel);
	}
	m = build_text(s, len);
	free(s);
	if (!m)
		printf("# %s\n", err);
	T_ASSERT(m);
	x = m->index;
	T_ASSERT(x);
	for (int q = 0; q < 6; q++) {
		size_t found = 0;

		for (size_t i = 0; i < np + 10; i++) {
			const void *r = idx_answer(m, true, q, i, a1, a2);

			T_ASSERT(r == idx_answer(m, false, q, i, a1, a2));
			found += r != NULL;
		}
		T_ASSERT(found > 0); /* each kind of question has answers to compare */
	}
	for (size_t i = 0; i < m->n_services; i++) {
		size_t pi = 0, ps = 0;
		const struct mesh_pod *a, *b;

		do {
			a = mesh_service_next_pod(m, &m->services[i], &pi);
			pairs += a != NULL;
			m->index = NULL;
			b = mesh_service_next_pod(m, &m->services[i], &ps);
			m->index = x;
			T_ASSERT(a == b);
		} while (a);
	}
	for (size_t i = 0; i < m->n_pods; i++) {
		size_t pi = 0, ps = 0;
		const struct mesh_service *a, *b;

		do {
			a = mesh_pod_next_service(m, &m->pods[i], &pi);
			m->index = NULL;
			b = mesh_pod_next_service(m, &m->pods[i], &ps);
			m->index = x;
			T_ASSERT(a == b);
		} while (a);
	}
	T_ASSERT(pairs > 0);
	mesh_free(m);
}

/* A dual-stack pod alone: each of its IPs finds it, neither is a conflict.
 * Its two IPs share a small table, so one's probe runs into the other's
 * slot for some addresses; that slot must not answer for (or tie with) the
 * pod's other IP. */
static void test_dual_stack_pod_index(void)
{
	char text[512];
	size_t checked = 0;

	for (int i = 1; i < 256; i++) {
		struct mesh *m;
		struct mesh_ip ip;
		char v4[32], v6[32];

		snprintf(v4, sizeof(v4), "10.0.%d.%d", i / 7, i);
		snprintf(v6, sizeof(v6), "fd15::%x", i * 31);
		snprintf(text, sizeof(text),
			 "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: n, uid: u1}\n"
			 "spec: {serviceAccountName: s}\n"
			 "status: {phase: Running, podIPs: [{ip: '%s'}, {ip: '%s'}]}\n", v4, v6);
		m = build(text);
		T_ASSERT(m && m->index && m->n_pods == 1);
		T_ASSERT(mesh_ip_conflicts(m, NULL) == 0);
		T_ASSERT(mesh_ip_parse(v4, &ip) == 0);
		T_ASSERT(mesh_find_pod_by_ip(m, &ip) == &m->pods[0] && !mesh_ip_conflict(m, &ip));
		T_ASSERT(mesh_ip_parse(v6, &ip) == 0);
		T_ASSERT(mesh_find_pod_by_ip(m, &ip) == &m->pods[0] && !mesh_ip_conflict(m, &ip));
		mesh_free(m);
		checked++;
	}
	T_ASSERT(checked == 255);
}

/* Named targetPorts resolve per pod through its container ports, as
 * Kubernetes' FindPort: containers first, then sidecar init containers;
 * name and protocol must both match; a pod without it serves nothing. */
static void test_named_target_port(void)
{
	static const char yaml[] =
		"apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: d}\n"
		"spec:\n  selector: {app: web}\n  clusterIP: 10.96.0.20\n  ports:\n"
		"  - {name: http, port: 80, targetPort: http}\n"
		"  - {name: dns, port: 53, protocol: UDP, targetPort: dns}\n"
		"  - {name: num, port: 81, targetPort: '9001'}\n"
		"  - {name: side, port: 82, targetPort: metrics}\n"
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: d, labels: {app: web}}\n"
		"spec:\n  containers:\n"
		"  - {name: app, ports: [{containerPort: 7000}, {name: http, containerPort: 8080},\n"
		"                        {name: dns, containerPort: 5353}]}\n"
		"  - {name: other, ports: [{name: http, containerPort: 9999}]}\n"
		"  initContainers:\n"
		"  - {name: sidecar, restartPolicy: Always, ports: [{name: metrics, containerPort: 9100}]}\n"
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: d, labels: {app: web}}\n"
		"spec:\n  containers:\n"
		"  - {name: app, ports: [{name: dns, containerPort: 53, protocol: UDP}]}\n"
		"  initContainers:\n"
		"  - {name: init, ports: [{name: http, containerPort: 8181}, {name: metrics, containerPort: 1}]}\n";
	struct mesh *m = build(yaml);
	const struct mesh_pod *a, *b;
	const struct mesh_service *s;

	if (!m)
		printf("# %s\n", err);
	T_ASSERT(m);
	a = mesh_find_pod(m, "d", "a");
	b = mesh_find_pod(m, "d", "b");
	s = &m->services[0];
	T_ASSERT(a && b && s->n_ports == 4);
	T_ASSERT_INT(a->n_ports, 4); /* the unnamed 7000 is not kept */
	T_ASSERT_INT(mesh_pod_target_port(a, &s->ports[0]), 8080); /* first container's wins */
	T_ASSERT_INT(mesh_pod_target_port(a, &s->ports[1]), 0);    /* dns is TCP on a */
	T_ASSERT_INT(mesh_pod_target_port(a, &s->ports[2]), 9001);
	T_ASSERT_INT(mesh_pod_target_port(a, &s->ports[3]), 9100); /* sidecar init container */
	T_ASSERT_INT(mesh_pod_target_port(b, &s->ports[0]), 0);    /* only an init container has it */
	T_ASSERT_INT(mesh_pod_target_port(b, &s->ports[1]), 53);
	T_ASSERT_INT(mesh_pod_target_port(b, &s->ports[2]), 9001);
	T_ASSERT_INT(mesh_pod_target_port(b, &s->ports[3]), 0);
	mesh_free(m);
}

/* One IP, several pods: a finished pod never holds it; a running, enrolled
 * pod beats the others; a tie at the top is a conflict (refuse, never
 * guess), with the index and the scan agreeing. */
static const char ip_pods_yaml[] =
	"apiVersion: v1\nkind: Namespace\nmetadata: {name: mesh, labels: {istio.io/dataplane-mode: ambient}}\n"
	"---\napiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n"
	/* 10.0.0.1: an old finished pod (first in model order), then the live one */
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: job, namespace: plain}\n"
	"status: {phase: Succeeded, podIP: 10.0.0.1}\n"
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: mesh}\n"
	"status: {phase: Running, podIP: 10.0.0.1}\n"
	/* 10.0.0.2: only a failed pod */
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: dead, namespace: mesh}\n"
	"status: {phase: Failed, podIP: 10.0.0.2}\n"
	/* 10.0.0.3: pending and enrolled vs running and not: running wins */
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: pend, namespace: mesh}\n"
	"status: {phase: Pending, podIP: 10.0.0.3}\n"
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: run, namespace: plain}\n"
	"status: {phase: Running, podIP: 10.0.0.3}\n"
	/* 10.0.0.4: running, not enrolled vs running, enrolled: enrolled wins */
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: other, namespace: plain}\n"
	"status: {phase: Running, podIP: 10.0.0.4}\n"
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: app, namespace: mesh}\n"
	"status: {phase: Running, podIP: 10.0.0.4}\n"
	/* 10.0.0.5: two running, enrolled pods: a true conflict */
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: mesh}\n"
	"status: {phase: Running, podIP: 10.0.0.5}\n"
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: mesh}\n"
	"status: {phase: Running, podIP: 10.0.0.5}\n"
	/* 10.0.0.6: a live pod beats one kept from an earlier model */
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: old, namespace: mesh, annotations: {warren.io/kept-from-generation: '3'}}\n"
	"status: {phase: Running, podIP: 10.0.0.6}\n"
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: new, namespace: mesh}\n"
	"status: {phase: Running, podIP: 10.0.0.6}\n";

static void test_pod_by_ip_phases(void)
{
	struct mesh *m = build(ip_pods_yaml);
	struct mesh_index *x;
	static const char *const want[] = { "web", NULL, "run", "app", NULL, "new" };
	struct mesh_ip first;

	T_ASSERT(m);
	x = m->index;
	T_ASSERT(x);
	for (int pass = 0; pass < 2; pass++) { /* indexed, then scanning */
		m->index = pass ? NULL : x;
		for (size_t i = 0; i < 6; i++) {
			char a[32];
			struct mesh_ip q;
			const struct mesh_pod *p;

			snprintf(a, sizeof(a), "10.0.0.%zu", i + 1);
			q = ip(a);
			p = mesh_find_pod_by_ip(m, &q);
			printf("# %s %s: %s\n", pass ? "scan" : "index", a, p ? p->name : "(none)");
			if (want[i])
				T_ASSERT(p && !strcmp(p->name, want[i]));
			else
				T_ASSERT(!p);
			T_ASSERT_INT(mesh_ip_conflict(m, &q), i == 4);
		}
	}
	m->index = x;
	T_ASSERT_INT(mesh_ip_conflicts(m, &first), 1);
	T_ASSERT(mesh_ip_equal(&first, &(struct mesh_ip){ 0 }) == false);
	T_ASSERT(mesh_ip_equal(&first, &(struct mesh_ip){ .family = AF_INET, .addr.v4.s_addr = 0 }) == false);
	{
		struct mesh_ip five = ip("10.0.0.5");

		T_ASSERT(mesh_ip_equal(&first, &five));
	}
	mesh_free(m);
}

/* A 0-byte mesh file is a truncation, never an empty model. */
static void test_empty_file(void)
{
	char dir[] = "/tmp/warren-mesh.XXXXXX", path[256];
	struct mesh *m = NULL;

	T_ASSERT(mkdtemp(dir));
	T_ASSERT_INT(write_file(dir, "10-ns.yaml", ""), 0);
	snprintf(path, sizeof(path), "%s/10-ns.yaml", dir);
	T_ASSERT_INT(mesh_load_path(path, &m, err, sizeof(err)), -ENODATA);
	T_ASSERT(!m);
	T_ASSERT(strstr(err, "10-ns.yaml: the file is empty"));
	/* in a directory too */
	T_ASSERT_INT(mesh_load_path(dir, &m, err, sizeof(err)), -ENODATA);
	T_ASSERT(strstr(err, "the file is empty"));
	/* a file with only a comment is a (written) file without objects */
	T_ASSERT_INT(write_file(dir, "10-ns.yaml", "# nothing\n"), 0);
	T_ASSERT_INT(mesh_load_path(path, &m, err, sizeof(err)), 0);
	mesh_free(m);
	rm_files(dir);
}

static bool keep_names_k(void *ctx, const struct mesh_pod *p)
{
	(void)ctx;
	return p->name[0] == 'k';
}

static void count_kept(void *ctx, const struct mesh_pod *p)
{
	(void)p;
	(*(int *)ctx)++;
}

/* The pods a tunnel holds survive a model that lacks them: copied from the
 * previous model with their namespace, annotated, and ranked below a live
 * pod with their IP. */
static void test_keep_pods(void)
{
	char dir[] = "/tmp/warren-mesh.XXXXXX", path[256];
	struct mesh *prev = NULL, *m = NULL;
	const struct mesh_pod *p;
	size_t n = 0;
	int calls = 0;

	T_ASSERT(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/10-ns.yaml", dir);
	T_ASSERT_INT(write_file(dir, "10-ns.yaml",
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: mesh, labels: {istio.io/dataplane-mode: ambient}}\n"
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: k1, namespace: mesh, uid: u1}\n"
		"spec: {serviceAccountName: sa1}\nstatus: {phase: Running, podIP: 10.0.0.1}\n"
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: k2, namespace: mesh}\n"
		"status: {phase: Running, podIP: 10.0.0.2}\n"
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: x, namespace: mesh}\n"
		"status: {phase: Running, podIP: 10.0.0.3}\n"), 0);
	T_ASSERT_INT(mesh_load_path(path, &prev, err, sizeof(err)), 0);
	prev->generation = 7;
	/* cut short: the namespace and k1 are gone, k2 stays, x goes, and a new
	 * pod now has k1's IP */
	T_ASSERT_INT(write_file(dir, "10-ns.yaml",
		"apiVersion: v1\nkind: Pod\nmetadata: {name: k2, namespace: mesh}\n"
		"status: {phase: Running, podIP: 10.0.0.2}\n"
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: y, namespace: mesh}\n"
		"status: {phase: Running, podIP: 10.0.0.1}\n"), 0);
	T_ASSERT_INT(mesh_load_path_keeping(path, prev, keep_names_k, count_kept, &calls, &n, &m, err,
					    sizeof(err)), 0);
	T_ASSERT_INT(n, 1);
	T_ASSERT_INT(calls, 1);
	p = mesh_find_pod(m, "mesh", "k1");
	T_ASSERT(p && p->kept && !strcmp(p->service_account, "sa1") && !strcmp(p->uid, "u1"));
	T_ASSERT_STR(mesh_label(&p->annotations, MESH_ANNOTATION_KEPT), "7");
	T_ASSERT(mesh_pod_enrolled(m, "mesh", "k1", NULL)); /* its namespace came along */
	T_ASSERT(!mesh_find_pod(m, "mesh", "x"));           /* not selected: dropped */
	p = mesh_find_pod(m, "mesh", "k2");
	T_ASSERT(p && !p->kept);
	{
		struct mesh_ip a = ip("10.0.0.1");

		p = mesh_find_pod_by_ip(m, &a);
		T_ASSERT(p && !strcmp(p->name, "y")); /* the live pod wins */
	}
	mesh_free(m);
	m = NULL;
	/* without a previous model nothing is kept */
	T_ASSERT_INT(mesh_load_path_keeping(path, NULL, keep_names_k, NULL, NULL, &n, &m, err,
					    sizeof(err)), 0);
	T_ASSERT_INT(n, 0);
	T_ASSERT(!mesh_find_pod(m, "mesh", "k1"));
	mesh_free(m);
	mesh_free(prev);
	rm_files(dir);
}

/* The Kubernetes source's rebuild keeps them too: a model built from the
 * API server's objects (mesh_build) never drops a pod the tunnel holds, and
 * the input array is left alone. */
static void test_build_keeping(void)
{
	struct mesh *prev = NULL, *m = NULL;
	const struct mesh_pod *p;
	json_t *objs, *now;
	size_t n = 0;
	int calls = 0;

	objs = json_loads("[{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"mesh\","
			  "\"labels\":{\"istio.io/dataplane-mode\":\"ambient\"}}},"
			  "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"k1\",\"namespace\":\"mesh\",\"uid\":\"u1\"},"
			  "\"spec\":{\"serviceAccountName\":\"sa1\"},\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.1\"}},"
			  "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"x\",\"namespace\":\"mesh\"},"
			  "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.3\"}}]", 0, NULL);
	T_ASSERT(objs);
	T_ASSERT_INT(mesh_build(objs, "api", &prev, err, sizeof(err)), 0);
	prev->generation = 3;
	now = json_loads("[{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"y\",\"namespace\":\"mesh\"},"
			 "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.9\"}}]", 0, NULL);
	T_ASSERT(now);
	T_ASSERT_INT(mesh_build_keeping(now, "api", prev, keep_names_k, count_kept, &calls, &n, &m,
					err, sizeof(err)), 0);
	T_ASSERT_INT(n, 1);
	T_ASSERT_INT(calls, 1);
	T_ASSERT_INT(json_array_size(now), 1); /* the caller's array is untouched */
	p = mesh_find_pod(m, "mesh", "k1");
	T_ASSERT(p && p->kept && !strcmp(p->service_account, "sa1"));
	T_ASSERT_STR(mesh_label(&p->annotations, MESH_ANNOTATION_KEPT), "3");
	T_ASSERT(mesh_pod_enrolled(m, "mesh", "k1", NULL));
	T_ASSERT(!mesh_find_pod(m, "mesh", "x"));
	T_ASSERT(mesh_find_pod(m, "mesh", "y"));
	mesh_free(m);
	mesh_free(prev);
	json_decref(objs);
	json_decref(now);
}

/* A Service without a selector takes its endpoints from the EndpointSlices
 * naming it (first address of each endpoint, unset readiness = ready,
 * ports matched by name and protocol); one with a selector keeps its pods
 * and ignores slices; FQDN slices and slices of no Service are left out. */
static void test_endpoint_slices(void)
{
	static const char yaml[] =
		"apiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: d}\n"
		"spec:\n  clusterIP: 10.96.0.30\n  ports: [{name: http, port: 80}, {name: grpc, port: 90}]\n"
		"---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
		"metadata: {name: ext-a, namespace: d, labels: {kubernetes.io/service-name: ext}}\n"
		"addressType: IPv4\n"
		"endpoints:\n"
		"- {addresses: [10.1.0.5, 10.1.0.99]}\n"
		"- {addresses: [192.0.2.7], conditions: {ready: true}}\n"
		"- {addresses: [192.0.2.8], conditions: {ready: false}}\n"
		"ports: [{name: http, port: 8080}, {name: grpc, protocol: UDP, port: 9090}]\n"
		"---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
		"metadata: {name: ext-b, namespace: d, labels: {kubernetes.io/service-name: ext}}\n"
		"addressType: IPv6\nendpoints: [{addresses: ['fd00::9']}]\nports: [{name: http, port: 8081}]\n"
		"---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
		"metadata: {name: ext-c, namespace: d, labels: {kubernetes.io/service-name: ext}}\n"
		"addressType: FQDN\nendpoints: [{addresses: [example.com]}]\nports: [{name: http, port: 80}]\n"
		"---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
		"metadata: {name: ext-x, namespace: other, labels: {kubernetes.io/service-name: ext}}\n"
		"addressType: IPv4\nendpoints: [{addresses: [192.0.2.66]}]\nports: [{name: http, port: 1}]\n"
		"---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
		"metadata: {name: web-1, namespace: d, labels: {kubernetes.io/service-name: web}}\n"
		"addressType: IPv4\nendpoints: [{addresses: [192.0.2.77]}]\nports: [{port: 1}]\n"
		"---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: d}\n"
		"spec: {selector: {app: web}, clusterIP: 10.96.0.31, ports: [{port: 80, targetPort: 8000}]}\n"
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: d, labels: {app: web}}\n"
		"status: {phase: Running, podIP: 10.1.0.5}\n";
	struct mesh *m = build(yaml);
	const struct mesh_service *ext, *web;
	struct mesh_ep e;
	size_t pos = 0;
	char a[INET6_ADDRSTRLEN];

	if (!m)
		printf("# %s\n", err);
	T_ASSERT(m);
	ext = &m->services[0];
	web = &m->services[1];
	T_ASSERT(ext && !strcmp(ext->name, "ext") && !strcmp(web->name, "web"));
	T_ASSERT_INT(ext->n_endpoints, 4); /* 3 IPv4 + 1 IPv6; FQDN and other namespace out */
	T_ASSERT_INT(web->n_endpoints, 0); /* a selector: its pods, not slices */

	T_ASSERT(mesh_service_next_endpoint(m, ext, &ext->ports[0], AF_INET, &pos, &e));
	T_ASSERT_STR(mesh_ip_str(&e.ip, a, sizeof(a)), "10.1.0.5");
	T_ASSERT(e.pod && !strcmp(e.pod->name, "a")); /* the address is a pod of the model */
	T_ASSERT_INT(e.port, 8080);
	T_ASSERT(mesh_service_next_endpoint(m, ext, &ext->ports[0], AF_INET, &pos, &e));
	T_ASSERT_STR(mesh_ip_str(&e.ip, a, sizeof(a)), "192.0.2.7");
	T_ASSERT(!e.pod);
	T_ASSERT_INT(e.port, 8080);
	T_ASSERT(!mesh_service_next_endpoint(m, ext, &ext->ports[0], AF_INET, &pos, &e)); /* .8 not ready */
	pos = 0;
	T_ASSERT(!mesh_service_next_endpoint(m, ext, &ext->ports[1], AF_INET, &pos, &e)); /* grpc is UDP there */
	pos = 0;
	T_ASSERT(mesh_service_next_endpoint(m, ext, &ext->ports[0], AF_INET6, &pos, &e));
	T_ASSERT_STR(mesh_ip_str(&e.ip, a, sizeof(a)), "fd00::9");
	T_ASSERT_INT(e.port, 8081);
	T_ASSERT(!mesh_service_next_endpoint(m, ext, &ext->ports[0], AF_INET6, &pos, &e));

	pos = 0;
	T_ASSERT(mesh_service_next_endpoint(m, web, &web->ports[0], AF_INET, &pos, &e));
	T_ASSERT(e.pod && !strcmp(e.pod->name, "a"));
	T_ASSERT_INT(e.port, 8000);
	T_ASSERT(!mesh_service_next_endpoint(m, web, &web->ports[0], AF_INET, &pos, &e));
	mesh_free(m);

	/* the same without indexes (a model scanned): same answers */
	m = build(yaml);
	T_ASSERT(m);
	mesh_index_free(m->index);
	m->index = NULL;
	pos = 0;
	T_ASSERT(mesh_service_next_endpoint(m, &m->services[1], &m->services[1].ports[0], AF_INET, &pos, &e));
	T_ASSERT_INT(e.port, 8000);
	mesh_free(m);
}

T_MAIN(T_CASE(test_decode), T_CASE(test_lookups), T_CASE(test_ip), T_CASE(test_selector),
       T_CASE(test_enrollment), T_CASE(test_pod_annotations), T_CASE(test_bad_objects), T_CASE(test_build_copies_input),
       T_CASE(test_directory), T_CASE(test_example_file), T_CASE(test_large_model),
       T_CASE(test_index_matches_scan), T_CASE(test_dual_stack_pod_index), T_CASE(test_named_target_port),
       T_CASE(test_pod_by_ip_phases), T_CASE(test_empty_file), T_CASE(test_keep_pods),
       T_CASE(test_build_keeping), T_CASE(test_endpoint_slices))
