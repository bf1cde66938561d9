/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of tunnel/metrics.c and tunnel/accesslog.c without a loop or
 * sockets: a struct tunnel with a mesh model built from JSON, one pod and
 * hand-made connections; checks the Istio labels, the counters, the
 * exposition text, and the access-log line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tunnel/accesslog.h"
#include "tunnel/loop.h"
#include "tunnel/metrics.h"
#include "tunnel/pods.h"
#include "tunnel/proxy.h"
#include "tunnel/relay.h"
#include "tunnel/tunnel.h"

#include "tests/unit/t.h"
#include "tests/unit/tunnel_fixture.h"

static const char mesh_json[] =
	"[{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"obs\"}},"
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"client-7d9\",\"namespace\":\"obs\",\"uid\":\"u1\","
	" \"labels\":{\"app\":\"sleep\",\"version\":\"v1\"}},"
	" \"spec\":{\"serviceAccountName\":\"sleep\",\"nodeName\":\"n1\"},"
	" \"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.0.1\"}},"
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"server-0\",\"namespace\":\"obs\",\"uid\":\"u2\","
	" \"labels\":{\"app.kubernetes.io/name\":\"echo\"}},"
	" \"spec\":{\"nodeName\":\"n1\"},\"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.0.2\"}},"
	"{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"echo\",\"namespace\":\"obs\"},"
	" \"spec\":{\"clusterIP\":\"10.96.0.9\",\"selector\":{\"app.kubernetes.io/name\":\"echo\"},"
	" \"ports\":[{\"port\":80,\"targetPort\":8080}]}}]";

struct fixture {
	struct tunnel_conf conf;
	struct tunnel t;
	struct pod pod;
	char alog_path[64];
};

static int setup(struct fixture *f)
{
	json_t *objs = json_loads(mesh_json, 0, NULL);
	struct mesh *m = NULL;
	char err[256];
	int fd, ret;

	memset(f, 0, sizeof(*f));
	f->conf.node = (char *)"n1";
	f->conf.cluster_id = (char *)"Kubernetes";
	f->t = (struct tunnel){ .magic = TUNNEL_MAGIC, .conf = &f->conf, .handoff_fd = -1,
				.snap_mu = PTHREAD_MUTEX_INITIALIZER };
	ret = mesh_build(objs, "test", &m, err, sizeof(err));
	json_decref(objs);
	if (ret < 0) {
		printf("# mesh_build: %s\n", err);
		return ret;
	}
	m->generation = 1;
	ret = tunnel_snap_publish(&f->t, m, NULL);
	if (ret < 0)
		return ret;
	if (metrics_new(&f->t.metrics) < 0)
		return -ENOMEM;
	strcpy(f->alog_path, "/tmp/warren-alog.XXXXXX");
	fd = mkstemp(f->alog_path);
	if (fd < 0)
		return -errno;
	close(fd);
	ret = accesslog_open(f->alog_path, &f->t.alog, err, sizeof(err));
	if (ret < 0)
		return ret;
	f->pod = (struct pod){ .magic = POD_MAGIC, .t = &f->t, .uid = (char *)"u1",
			       .namespace = (char *)"obs", .name = (char *)"client-7d9" };
	f->t.pods = &f->pod;
	f->t.n_pods = 1;
	return 0;
}

static void teardown(struct fixture *f)
{
	accesslog_close(f->t.alog);
	metrics_free(f->t.metrics);
	tunnel_snap_stop(&f->t);
	unlink(f->alog_path);
}

static void conn_init(struct conn *c, struct pod *p, enum conn_dir dir, const char *src,
		      const char *dst, uint16_t dport)
{
	*c = (struct conn){ .magic = CONN_MAGIC, .pod = p, .dir = dir, .start_ms = loop_now_ms(),
			    .app_fd = -1, .up_fd = -1 };
	tfix_addr(&c->src, src, 40000);
	tfix_addr(&c->dst, dst, dport);
	/* resolved as a plaintext tunnel's proxy.c does: metrics read the route */
	route_begin(&c->route, p->t, p);
	if (dir == CONN_OUTBOUND) {
		char why[200];

		route_outbound(&c->route, p->t, p, &c->dst, false, why, sizeof(why));
	} else {
		route_inbound(&c->route, p->t, p, &c->src, &c->dst);
	}
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = calloc(1, 65536);

	if (f && s)
		s[fread(s, 1, 65535, f)] = '\0';
	if (f)
		fclose(f);
	return s;
}

static void test_escape(void)
{
	char buf[64];

	T_ASSERT_STR(metrics_escape("a\"b\\c\nd", buf, sizeof(buf)), "a\\\"b\\\\c\\nd");
	T_ASSERT_STR(metrics_escape("abcdef", buf, 4), "abc");
	T_ASSERT_STR(metrics_escape("ab\"", buf, 4), "ab"); /* no half escape */
}

static void test_time(void)
{
	char buf[40];

	T_ASSERT_STR(accesslog_time(1767323045678LL, buf, sizeof(buf)), "2026-01-02T03:04:05.678Z");
}

static void test_outbound(void)
{
	struct fixture f;
	struct conn c;
	struct relay_stats st = { .a_to_b = 100, .b_to_a = 3000, .reason = "closed" };
	char *text = NULL, *log = NULL;
	json_t *j = NULL;

	T_ASSERT_INT(setup(&f), 0);
	conn_init(&c, &f.pod, CONN_OUTBOUND, "10.1.0.1", "10.1.0.2", 8080);
	metrics_conn_open(&c);
	metrics_conn_close(&c, &st, NULL);
	T_ASSERT(!c.obs);
	text = metrics_render(&f.t);
	log = slurp(f.alog_path);
	if (!text || !log)
		goto out;
#define SERIES "{reporter=\"source\",source_workload=\"sleep\",source_canonical_service=\"sleep\"," \
	"source_canonical_revision=\"v1\",source_workload_namespace=\"obs\",source_principal=\"unknown\"," \
	"source_app=\"sleep\",source_version=\"v1\",source_cluster=\"Kubernetes\"," \
	"destination_service=\"echo.obs.svc.cluster.local\",destination_service_namespace=\"obs\"," \
	"destination_service_name=\"echo\",destination_workload=\"echo\"," \
	"destination_canonical_service=\"echo\",destination_canonical_revision=\"latest\"," \
	"destination_workload_namespace=\"obs\",destination_principal=\"unknown\"," \
	"destination_app=\"echo\",destination_version=\"unknown\",destination_cluster=\"Kubernetes\"," \
	"request_protocol=\"tcp\",response_flags=\"-\",connection_security_policy=\"none\"}"
	if (!strstr(text, "istio_tcp_connections_opened_total" SERIES " 1\n"))
		printf("# got:\n%s", text);
	T_ASSERT(strstr(text, "# TYPE istio_tcp_connections_opened_total counter\n"));
	T_ASSERT(strstr(text, "istio_tcp_connections_opened_total" SERIES " 1\n"));
	T_ASSERT(strstr(text, "istio_tcp_connections_closed_total" SERIES " 1\n"));
	T_ASSERT(strstr(text, "istio_tcp_received_bytes_total" SERIES " 100\n"));
	T_ASSERT(strstr(text, "istio_tcp_sent_bytes_total" SERIES " 3000\n"));
	T_ASSERT(strstr(text, "\nwarren_enrolled_pods 1\n"));
	T_ASSERT(strstr(text, "\nwarren_connections_active{direction=\"outbound\"} 0\n"));
	j = json_loads(log, 0, NULL);
	T_ASSERT(j);
	T_ASSERT_STR(json_string_value(json_object_get(j, "direction")), "outbound");
	T_ASSERT_STR(json_string_value(json_object_get(j, "src.addr")), "10.1.0.1:40000");
	T_ASSERT_STR(json_string_value(json_object_get(j, "src.workload")), "sleep");
	T_ASSERT_STR(json_string_value(json_object_get(j, "dst.workload")), "echo");
	T_ASSERT_STR(json_string_value(json_object_get(j, "dst.service")), "echo.obs.svc.cluster.local");
	T_ASSERT(json_is_null(json_object_get(j, "src.identity")));
	T_ASSERT_INT(json_integer_value(json_object_get(j, "bytes_sent")), 100);
	T_ASSERT_INT(json_integer_value(json_object_get(j, "bytes_received")), 3000);
	T_ASSERT_STR(json_string_value(json_object_get(json_object_get(j, "policy"), "decision")), "none");
	T_ASSERT_STR(json_string_value(json_object_get(j, "reason")), "closed");
out:
	json_decref(j);
	free(text);
	free(log);
	teardown(&f);
	T_ASSERT(text && log);
}

static void test_inbound_failure_and_unknown(void)
{
	struct fixture f;
	struct conn c;
	char *text = NULL, *log = NULL, *nl;
	json_t *j = NULL;

	T_ASSERT_INT(setup(&f), 0);
	/* the local pod is the destination; the source is not in the model */
	conn_init(&c, &f.pod, CONN_INBOUND, "192.168.7.7", "10.1.0.1", 9999);
	metrics_conn_policy(&c, false, "obs/deny-all");
	metrics_conn_open(&c);
	metrics_conn_close(&c, NULL, "upstream connect failed: Connection refused");
	text = metrics_render(&f.t);
	log = slurp(f.alog_path);
	if (!text || !log)
		goto out;
	T_ASSERT(strstr(text, "istio_tcp_connections_opened_total{reporter=\"destination\",source_workload=\"unknown\","));
	T_ASSERT(strstr(text, "destination_workload=\"sleep\""));
	T_ASSERT(strstr(text, "response_flags=\"CONNECT\",connection_security_policy=\"none\"} 1\n"));
	T_ASSERT(strstr(text, "warren_policy_denials_total{policy=\"obs/deny-all\"} 1\n"));
	nl = strchr(log, '\n');
	T_ASSERT(nl && !nl[1]); /* one line */
	j = json_loads(log, 0, NULL);
	T_ASSERT(j);
	T_ASSERT(json_is_null(json_object_get(j, "src.workload")));
	T_ASSERT_STR(json_string_value(json_object_get(j, "dst.workload")), "sleep");
	T_ASSERT_STR(json_string_value(json_object_get(j, "reason")),
		     "upstream connect failed: Connection refused");
	T_ASSERT_STR(json_string_value(json_object_get(json_object_get(j, "policy"), "decision")), "deny");
	T_ASSERT_STR(json_string_value(json_object_get(json_object_get(j, "policy"), "policy")), "obs/deny-all");
out:
	json_decref(j);
	free(text);
	free(log);
	teardown(&f);
	T_ASSERT(text && log);
}

static void test_internals(void)
{
	struct fixture f;
	char *text;

	T_ASSERT_INT(setup(&f), 0);
	metrics_plugin_request(&f.t, "add", true);
	metrics_plugin_request(&f.t, "add", true);
	metrics_plugin_request(&f.t, "bogus", false);
	metrics_handshake(&f.t, false, "bad certificate");
	metrics_pool_set(&f.t, 2, 7);
	metrics_cert_expiry(&f.t, "spiffe://cluster.local/ns/obs/sa/\"x\"", 1800000000);
	metrics_cert_expiry(&f.t, "spiffe://cluster.local/ns/obs/sa/y", 1800000001);
	metrics_cert_forget(&f.t, "spiffe://cluster.local/ns/obs/sa/y");
	metrics_handshake(NULL, true, NULL); /* no-op */
	text = metrics_render(&f.t);
	teardown(&f);
	T_ASSERT(text);
	T_ASSERT(strstr(text, "warren_plugin_requests_total{op=\"add\",result=\"ok\"} 2\n"));
	T_ASSERT(strstr(text, "warren_plugin_requests_total{op=\"other\",result=\"error\"} 1\n"));
	T_ASSERT(strstr(text, "warren_handshakes_total{result=\"error\",reason=\"bad certificate\"} 1\n"));
	T_ASSERT(strstr(text, "\nwarren_pool_connections 2\n"));
	T_ASSERT(strstr(text, "\nwarren_pool_streams 7\n"));
	T_ASSERT(strstr(text, "warren_certificate_expiry_seconds{identity=\"spiffe://cluster.local/ns/obs/sa/\\\"x\\\"\"} 1800000000\n"));
	T_ASSERT(!strstr(text, "sa/y"));
	T_ASSERT(strstr(text, "\nwarren_mesh_generation 1\n"));
	free(text);
}

static void test_accesslog_off(void)
{
	struct accesslog *al = (void *)1;
	char err[128];

	T_ASSERT_INT(accesslog_open("off", &al, err, sizeof(err)), 0);
	T_ASSERT(!al);
	accesslog_write(NULL, &(struct accesslog_entry){ 0 }); /* no-op */
	T_ASSERT(accesslog_open("/nonexistent/dir/a.log", &al, err, sizeof(err)) < 0);
	T_ASSERT(strstr(err, "cannot open accessLog /nonexistent/dir/a.log"));
}

/* One log, consecutive lines: each line's fields are its own (nothing
 * left over from the line before), in ztunnel's order, and text a peer
 * controls is escaped. */
static void test_accesslog_lines(void)
{
	static const char *const keys[] = {
		"time", "scope", "message", "start_time", "duration_ms", "direction", "src.addr",
		"src.workload", "src.namespace", "src.identity", "dst.addr", "dst.workload",
		"dst.namespace", "dst.identity", "dst.service", "bytes_sent", "bytes_received",
		"policy", "reason",
	};
	char path[] = "/tmp/warren-alog-lines.XXXXXX", err[256], *log = NULL, *nl;
	json_t *j1 = NULL, *j2 = NULL;
	struct accesslog *al = NULL;
	const char *key;
	json_t *v;
	size_t i = 0;
	int fd = mkstemp(path);

	T_ASSERT(fd >= 0);
	close(fd);
	T_ASSERT_INT(accesslog_open(path, &al, err, sizeof(err)), 0);
	accesslog_write(al, &(struct accesslog_entry){
		.start_unix_ms = 1700000000123, .duration_ms = 7, .direction = "outbound",
		.src_addr = "10.0.0.1:1234", .src_workload = "we\"ird\nname\u00e9",
		.src_namespace = "a", .src_identity = "spiffe://cluster.local/ns/a/sa/s",
		.dst_addr = "10.0.0.2:80", .dst_workload = "b", .dst_namespace = "b",
		.dst_service = "b.b.svc.cluster.local", .bytes_sent = 5, .bytes_received = 6,
		.policy_decision = "allow", .policy_name = "a/allow", .reason = "closed" });
	accesslog_write(al, &(struct accesslog_entry){ .direction = "inbound" });
	accesslog_close(al);
	log = slurp(path);
	unlink(path);
	T_ASSERT(log);
	nl = strchr(log, '\n');
	T_ASSERT(nl && strchr(nl + 1, '\n') && !strchr(nl + 1, '\n')[1]); /* two lines */
	*nl = 0;
	j1 = json_loads(log, 0, NULL);
	j2 = json_loads(nl + 1, 0, NULL);
	if (!j1 || !j2)
		goto out;
	json_object_foreach(j1, key, v) {
		T_ASSERT(i < sizeof(keys) / sizeof(keys[0]));
		T_ASSERT_STR(key, keys[i]);
		i++;
	}
	T_ASSERT(i == sizeof(keys) / sizeof(keys[0]));
	T_ASSERT_STR(json_string_value(json_object_get(j1, "src.workload")), "we\"ird\nname\u00e9");
	T_ASSERT_STR(json_string_value(json_object_get(j1, "start_time")), "2023-11-14T22:13:20.123Z");
	T_ASSERT(json_integer_value(json_object_get(j1, "bytes_received")) == 6);
	T_ASSERT_STR(json_string_value(json_object_get(json_object_get(j1, "policy"), "policy")), "a/allow");
	T_ASSERT_STR(json_string_value(json_object_get(j2, "direction")), "inbound");
	T_ASSERT(json_is_null(json_object_get(j2, "src.workload")));
	T_ASSERT(json_is_null(json_object_get(j2, "dst.service")));
	T_ASSERT(json_integer_value(json_object_get(j2, "bytes_received")) == 0);
	T_ASSERT_STR(json_string_value(json_object_get(json_object_get(j2, "policy"), "decision")), "none");
	T_ASSERT(json_is_null(json_object_get(json_object_get(j2, "policy"), "policy")));
	T_ASSERT_STR(json_string_value(json_object_get(j2, "reason")), "closed");
out:
	json_decref(j1);
	json_decref(j2);
	free(log);
	T_ASSERT(j1 && j2);
}

/* Connections share a label set only when their labels are the same:
 * two from the same pod and route count on one series; pods the model
 * does not know get their own names even at the same address (a pod
 * freed and another made in its place), and a proven identity makes
 * another series. */
static void test_label_sets_shared(void)
{
	struct fixture f;
	struct conn a, b;
	struct pod ghost;
	struct relay_stats st = { .a_to_b = 1, .b_to_a = 2, .reason = "closed" };
	char *text = NULL, *log = NULL;

	T_ASSERT_INT(setup(&f), 0);
	conn_init(&a, &f.pod, CONN_OUTBOUND, "10.1.0.1", "10.1.0.2", 8080);
	conn_init(&b, &f.pod, CONN_OUTBOUND, "10.1.0.1", "10.1.0.2", 8080);
	metrics_conn_open(&a);
	metrics_conn_open(&b);
	metrics_conn_close(&a, &st, NULL);
	metrics_conn_close(&b, &st, NULL);
	ghost = (struct pod){ .magic = POD_MAGIC, .t = &f.t, .uid = (char *)"u9",
			      .namespace = (char *)"obs", .name = (char *)"ghost-1" };
	conn_init(&a, &ghost, CONN_OUTBOUND, "10.1.0.9", "10.1.0.2", 8080);
	metrics_conn_open(&a);
	metrics_conn_close(&a, &st, NULL);
	ghost.name = (char *)"ghost-2";
	conn_init(&a, &ghost, CONN_OUTBOUND, "10.1.0.9", "10.1.0.2", 8080);
	metrics_conn_open(&a);
	metrics_conn_close(&a, &st, NULL);
	conn_init(&a, &f.pod, CONN_OUTBOUND, "10.1.0.1", "10.1.0.2", 8080);
	metrics_conn_identity(&a, "spiffe://cluster.local/ns/obs/sa/sleep", NULL);
	metrics_conn_open(&a);
	metrics_conn_close(&a, &st, NULL);
	text = metrics_render(&f.t);
	log = slurp(f.alog_path);
	if (!text || !log)
		goto out;
	T_ASSERT(strstr(text, "istio_tcp_connections_opened_total" SERIES " 2\n"));
	T_ASSERT(strstr(text, "istio_tcp_connections_closed_total" SERIES " 2\n"));
	T_ASSERT(strstr(text, "istio_tcp_sent_bytes_total" SERIES " 4\n"));
	T_ASSERT(strstr(text, "source_workload=\"ghost-1\""));
	T_ASSERT(strstr(text, "source_workload=\"ghost-2\""));
	T_ASSERT(strstr(text, "source_principal=\"spiffe://cluster.local/ns/obs/sa/sleep\""));
	T_ASSERT(strstr(log, "\"src.workload\":\"ghost-1\""));
	T_ASSERT(strstr(log, "\"src.workload\":\"ghost-2\""));
out:
	free(text);
	free(log);
	teardown(&f);
	T_ASSERT(text && log);
}

/* The access log takes the label set's rendered names only while they
 * are the connection's: an identity proven after the set was taken (at
 * open) still shows, and the next connection of the set shows none. */
static void test_accesslog_identity_after_open(void)
{
	struct fixture f;
	struct conn a, b;
	struct relay_stats st = { .a_to_b = 1, .b_to_a = 2, .reason = "closed" };
	char *log = NULL, *l2;

	T_ASSERT_INT(setup(&f), 0);
	conn_init(&a, &f.pod, CONN_OUTBOUND, "10.1.0.1", "10.1.0.2", 8080);
	conn_init(&b, &f.pod, CONN_OUTBOUND, "10.1.0.1", "10.1.0.2", 8080);
	metrics_conn_open(&a);
	metrics_conn_open(&b);
	metrics_conn_identity(&a, "spiffe://cluster.local/ns/obs/sa/late", NULL);
	metrics_conn_close(&a, &st, NULL);
	metrics_conn_close(&b, &st, NULL);
	log = slurp(f.alog_path);
	l2 = log ? strchr(log, '\n') : NULL;
	if (l2)
		*l2++ = 0;
	T_ASSERT(log && l2);
	T_ASSERT(strstr(log, "\"src.identity\":\"spiffe://cluster.local/ns/obs/sa/late\""));
	T_ASSERT(strstr(log, "\"src.workload\":\"sleep\""));
	T_ASSERT(strstr(l2, "\"src.identity\":null"));
	T_ASSERT(strstr(l2, "\"src.workload\":\"sleep\""));
	free(log);
	teardown(&f);
}

/* Metrics off, access log on: each connection's labels are its own (no
 * names rendered for a set no other connection takes), the line the same. */
static void test_accesslog_without_metrics(void)
{
	struct fixture f;
	struct conn a;
	struct relay_stats st = { .a_to_b = 1, .b_to_a = 2, .reason = "closed" };
	char *log = NULL;

	T_ASSERT_INT(setup(&f), 0);
	metrics_free(f.t.metrics);
	f.t.metrics = NULL;
	conn_init(&a, &f.pod, CONN_OUTBOUND, "10.1.0.1", "10.1.0.2", 8080);
	metrics_conn_open(&a);
	metrics_conn_close(&a, &st, NULL);
	log = slurp(f.alog_path);
	teardown(&f);
	T_ASSERT(log);
	T_ASSERT(strstr(log, "\"direction\":\"outbound\",\"src.addr\":\"10.1.0.1:"));
	T_ASSERT(strstr(log, "\"src.workload\":\"sleep\",\"src.namespace\":\"obs\",\"src.identity\":null,"
			     "\"dst.addr\":\"10.1.0.2:8080\",\"dst.workload\":\"echo\""));
	T_ASSERT(strstr(log, "\"bytes_sent\":1,\"bytes_received\":2,"));
	free(log);
}

struct batch_ctx {
	struct accesslog *al;
	const char *path;
	bool in_loop, empty_in_round;
};

static void batch_stop(struct loop *l, void *ctx)
{
	loop_stop(l);
}

static void batch_write(struct loop *l, void *ctx)
{
	struct batch_ctx *b = ctx;
	char *log;

	b->in_loop = loop_current() == l;
	accesslog_write(b->al, &(struct accesslog_entry){ .direction = "inbound" });
	log = slurp(b->path);
	b->empty_in_round = log && !*log;
	free(log);
	/* added after the flush timer: runs after it, in the next round */
	loop_timer_add(l, 0, batch_stop, NULL);
}

/* Inside a loop a line waits for the end of the round, then goes out;
 * outside any loop it goes out at once. */
static void test_accesslog_batched(void)
{
	char path[] = "/tmp/warren-alog-batch.XXXXXX", err[256], *log = NULL, *log2 = NULL;
	struct batch_ctx b = { .path = path };
	struct loop *l = loop_new();
	int fd = mkstemp(path);

	T_ASSERT(fd >= 0 && l);
	close(fd);
	T_ASSERT_INT(accesslog_open(path, &b.al, err, sizeof(err)), 0);
	T_ASSERT(loop_timer_add(l, 0, batch_write, &b));
	T_ASSERT_INT(loop_run(l), 0);
	T_ASSERT(!loop_current());
	log = slurp(path);
	accesslog_write(b.al, &(struct accesslog_entry){ .direction = "outbound" });
	log2 = slurp(path);
	accesslog_close(b.al);
	loop_free(l);
	unlink(path);
	T_ASSERT(b.in_loop);
	T_ASSERT(b.empty_in_round);
	T_ASSERT(log && strstr(log, "\"direction\":\"inbound\"") && !strstr(log, "outbound"));
	T_ASSERT(log2 && strstr(log2, "\"direction\":\"outbound\""));
	free(log);
	free(log2);
}

T_MAIN(T_CASE(test_escape), T_CASE(test_time), T_CASE(test_outbound),
       T_CASE(test_inbound_failure_and_unknown), T_CASE(test_internals), T_CASE(test_accesslog_off),
       T_CASE(test_accesslog_lines), T_CASE(test_label_sets_shared),
       T_CASE(test_accesslog_batched), T_CASE(test_accesslog_identity_after_open),
       T_CASE(test_accesslog_without_metrics))
