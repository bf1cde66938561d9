/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of tunnel/route.c: a struct tunnel with a mesh model built
 * from JSON and hand-made pods; each case resolves one connection and
 * checks the whole record (kind, target, HBONE address and :authority,
 * expected identity, the model's pod and Service, the empty waypoint).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/pods.h"
#include "tunnel/proxy.h"
#include "tunnel/tunnel.h"

#include "tests/unit/t.h"
#include "tests/unit/tunnel_fixture.h"

static const char route_mesh_json[] =
	"[{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"shop\","
	" \"labels\":{\"istio.io/dataplane-mode\":\"ambient\"}}},"
	"{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"plain\"}},"
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"client\",\"namespace\":\"shop\",\"uid\":\"u1\"},"
	" \"spec\":{\"serviceAccountName\":\"sleep\",\"nodeName\":\"n1\"},"
	" \"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.0.1\"}},"
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"echo-0\",\"namespace\":\"shop\",\"uid\":\"u2\","
	" \"labels\":{\"app\":\"echo\"}},"
	" \"spec\":{\"serviceAccountName\":\"echo\",\"nodeName\":\"n2\"},"
	" \"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.0.2\"}},"
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web\",\"namespace\":\"plain\",\"uid\":\"u3\"},"
	" \"spec\":{\"nodeName\":\"n2\"},\"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.0.5\"}},"
	"{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"echo\",\"namespace\":\"shop\"},"
	" \"spec\":{\"clusterIP\":\"10.96.0.9\",\"selector\":{\"app\":\"echo\"},"
	" \"ports\":[{\"port\":80,\"targetPort\":8080}]}}]";

struct route_fixture {
	struct tunnel_conf conf;
	struct tunnel t;
	struct pod client, echo;
};

static int route_setup(struct route_fixture *f)
{
	int ret;

	memset(f, 0, sizeof(*f));
	f->conf.node = (char *)"n1";
	f->conf.trust_domain = (char *)"cluster.local";
	ret = tfix_tunnel(&f->t, &f->conf, route_mesh_json);
	if (ret < 0)
		return ret;
	f->client = (struct pod){ .magic = POD_MAGIC, .t = &f->t, .uid = (char *)"u1",
				  .namespace = (char *)"shop", .name = (char *)"client",
				  .service_account = (char *)"sleep" };
	f->echo = (struct pod){ .magic = POD_MAGIC, .t = &f->t, .uid = (char *)"u2",
				.namespace = (char *)"shop", .name = (char *)"echo-0",
				.service_account = (char *)"echo" };
	f->t.pods = &f->client;
	f->t.n_pods = 1;
	return 0;
}

static const char *route_ss(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	return sockaddr_str(ss, buf, len);
}

static void test_vip_to_hbone(void)
{
	struct route_fixture f;
	struct sockaddr_storage dst;
	struct route r;
	char why[300], buf[64];

	T_ASSERT_INT(route_setup(&f), 0);
	tfix_addr(&dst, "10.96.0.9", 80);
	route_begin(&r, &f.t, &f.client);
	T_ASSERT_INT(route_outbound(&r, &f.t, &f.client, &dst, true, why, sizeof(why)), ROUTE_HBONE);
	T_ASSERT(r.local && !strcmp(r.local->name, "client"));
	T_ASSERT(r.peer && !strcmp(r.peer->name, "echo-0"));
	T_ASSERT(r.svc && !strcmp(r.svc->name, "echo") && r.via_vip);
	T_ASSERT(r.svc_port && r.svc_port->port == 80);
	T_ASSERT_STR(route_ss(&r.target, buf, sizeof(buf)), "10.1.0.2:8080");
	T_ASSERT_STR(route_ss(&r.hbone_addr, buf, sizeof(buf)), "10.1.0.2:15008");
	T_ASSERT_STR(r.authority, "10.1.0.2:8080");
	T_ASSERT_STR(r.peer_id, "spiffe://cluster.local/ns/shop/sa/echo");
	T_ASSERT_STR(route_service_host(&r, buf, sizeof(buf)), "echo.shop.svc.cluster.local");
	T_ASSERT(r.waypoint.addr.ss_family == 0 && !r.waypoint.identity && !r.waypoint.authority);
	route_clear(&r);
	tunnel_snap_stop(&f.t);
}

static void test_refused(void)
{
	struct route_fixture f;
	struct sockaddr_storage dst;
	struct route r;
	char why[300];

	T_ASSERT_INT(route_setup(&f), 0);
	tfix_addr(&dst, "10.96.0.9", 81);
	route_begin(&r, &f.t, &f.client);
	T_ASSERT_INT(route_outbound(&r, &f.t, &f.client, &dst, true, why, sizeof(why)), ROUTE_REFUSE);
	T_ASSERT_STR(why, "Service shop/echo has no TCP port 81");
	T_ASSERT(!r.peer_id);
	route_clear(&r);
	tunnel_snap_stop(&f.t);
}

static void test_outside_mesh_and_plaintext_mode(void)
{
	struct route_fixture f;
	struct sockaddr_storage dst;
	struct route r;
	char why[300], buf[64];

	T_ASSERT_INT(route_setup(&f), 0);
	/* a pod the mesh does not enroll: plain TCP to it, the labels name it */
	tfix_addr(&dst, "10.1.0.5", 80);
	route_begin(&r, &f.t, &f.client);
	T_ASSERT_INT(route_outbound(&r, &f.t, &f.client, &dst, true, why, sizeof(why)), ROUTE_PLAIN);
	T_ASSERT(r.peer && !strcmp(r.peer->name, "web") && !r.svc && !r.peer_id);
	T_ASSERT_STR(route_ss(&r.target, buf, sizeof(buf)), "10.1.0.5:80");
	route_clear(&r);
	/* mtls: disabled: the VIP is left to the kernel, the Service still named */
	tfix_addr(&dst, "10.96.0.9", 80);
	route_begin(&r, &f.t, &f.client);
	T_ASSERT_INT(route_outbound(&r, &f.t, &f.client, &dst, false, why, sizeof(why)), ROUTE_PLAIN);
	T_ASSERT(r.svc && r.via_vip && !r.peer && !r.peer_id);
	T_ASSERT_STR(route_ss(&r.target, buf, sizeof(buf)), "10.96.0.9:80");
	route_clear(&r);
	/* a pod IP in plaintext mode: the pod and the Service whose targetPort it is */
	tfix_addr(&dst, "10.1.0.2", 8080);
	route_begin(&r, &f.t, &f.client);
	T_ASSERT_INT(route_outbound(&r, &f.t, &f.client, &dst, false, why, sizeof(why)), ROUTE_PLAIN);
	T_ASSERT(r.peer && !strcmp(r.peer->name, "echo-0") && r.svc && !r.via_vip);
	route_clear(&r);
	tunnel_snap_stop(&f.t);
}

static void test_inbound_and_rebind(void)
{
	struct route_fixture f;
	struct sockaddr_storage src, dst;
	struct route r;

	T_ASSERT_INT(route_setup(&f), 0);
	tfix_addr(&src, "10.1.0.1", 40000);
	tfix_addr(&dst, "10.1.0.2", 8080);
	route_begin(&r, &f.t, &f.echo);
	route_inbound(&r, &f.t, &f.echo, &src, &dst);
	T_ASSERT(r.inbound && r.kind == ROUTE_PLAIN);
	T_ASSERT(r.local && !strcmp(r.local->name, "echo-0"));
	T_ASSERT(r.peer && !strcmp(r.peer->name, "client"));
	T_ASSERT(r.svc && !strcmp(r.svc->name, "echo"));
	/* a new model (no worker holds the old one: it is freed at once):
	 * rebind points into it */
	T_ASSERT_INT(tfix_publish(&f.t, route_mesh_json, 2), 0);
	T_ASSERT(!f.t.snap_retired);
	route_rebind(&r, &f.t, &f.echo, &src, &dst);
	T_ASSERT(r.generation == 2);
	T_ASSERT(r.local == mesh_find_pod_by_uid(tunnel_model(&f.t), "u2"));
	T_ASSERT(r.peer && !strcmp(r.peer->name, "client"));
	route_clear(&r);
	tunnel_snap_stop(&f.t);
}

T_MAIN(T_CASE(test_vip_to_hbone), T_CASE(test_refused), T_CASE(test_outside_mesh_and_plaintext_mode),
       T_CASE(test_inbound_and_rebind))
