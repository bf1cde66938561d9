/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of tunnel/snap.c: the lifetime of the model and policy
 * snapshots. A snapshot a reader holds outlives its replacement; the last
 * reader letting go wakes the main loop, which frees it; a publish without
 * a policy set keeps the previous one; each thread reads its own.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "model/authz.h"
#include "t.h"
#include "tunnel/loop.h"
#include "tunnel/snap.h"
#include "tunnel/tunnel.h"
#include "tunnel_fixture.h"

static const char *snap_mesh_json =
	"[{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"shop\","
	" \"labels\":{\"istio.io/dataplane-mode\":\"ambient\"}}},"
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"echo-0\",\"namespace\":\"shop\","
	" \"uid\":\"u2\",\"labels\":{\"app\":\"echo\"}},\"spec\":{\"nodeName\":\"n1\"},"
	" \"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.0.2\"}}]";

static struct authz_set *empty_set(void)
{
	struct authz_set *set = NULL;
	json_t *a = json_array();

	if (authz_compile(a, a, NULL, &set) < 0)
		set = NULL;
	json_decref(a);
	return set;
}

/* No reader: the replaced snapshot is freed at once (ASan would see a
 * leak otherwise); a publish without a set keeps the published one. */
static void test_publish_replaces_and_keeps_policies(void)
{
	struct tunnel_conf conf = { .node = (char *)"n1" };
	struct tunnel t;
	struct authz_set *set;
	const struct authz_set *kept;

	T_ASSERT_INT(tfix_tunnel(&t, &conf, snap_mesh_json), 0);
	T_ASSERT_INT(tunnel_generation(&t), 1);
	T_ASSERT(!tunnel_policies(&t) && !tunnel_snap_here(&t)->policies_loaded);
	set = empty_set();
	T_ASSERT(set);
	/* a model with a set */
	{
		json_t *objs = json_loads(snap_mesh_json, 0, NULL);
		struct mesh *m = NULL;
		char err[256];

		T_ASSERT_INT(mesh_build(objs, "test", &m, err, sizeof(err)), 0);
		json_decref(objs);
		m->generation = 2;
		T_ASSERT_INT(tunnel_snap_publish(&t, m, set), 0);
	}
	T_ASSERT(tunnel_policies(&t) == set);
	T_ASSERT(tunnel_snap_here(&t)->policies_loaded);
	T_ASSERT(!t.snap_retired);
	/* a model whose policies did not compile: the set stays */
	kept = tunnel_policies(&t);
	T_ASSERT_INT(tfix_publish(&t, snap_mesh_json, 3), 0);
	T_ASSERT_INT(tunnel_generation(&t), 3);
	T_ASSERT(tunnel_policies(&t) == kept);
	T_ASSERT(tunnel_snap_here(&t)->policies_loaded);
	T_ASSERT(!t.snap_retired);
	tunnel_snap_stop(&t);
	T_ASSERT(!t.snap && !tunnel_model(&t) && tunnel_generation(&t) == 0);
}

struct reader {
	struct tunnel *t;
	const struct tunnel_snap *held;
	uint64_t seen_gen;        /* what tunnel_generation() said on the reader */
	const struct mesh_pod *pod; /* looked up in its snapshot */
};

static void *reader_take(void *arg)
{
	struct reader *r = arg;

	r->held = tunnel_snap_acquire(r->t);
	tunnel_snap_use(r->held);
	r->seen_gen = tunnel_generation(r->t);
	r->pod = mesh_find_pod_by_uid(tunnel_model(r->t), "u2");
	return NULL;
}

static void *reader_look(void *arg)
{
	struct reader *r = arg;

	/* this thread never called tunnel_snap_use: the published one */
	r->seen_gen = tunnel_generation(r->t);
	return NULL;
}

static void stop_cb(struct loop *l, void *ctx)
{
	(void)ctx;
	loop_stop(l);
}

/* A reader's snapshot outlives two publications; its model stays
 * readable; when it lets go, the main loop frees it. */
static void test_reader_keeps_its_snapshot(void)
{
	struct tunnel_conf conf = { .node = (char *)"n1" };
	struct reader r = { 0 }, other = { 0 };
	struct tunnel t;
	pthread_t th;

	T_ASSERT_INT(tfix_tunnel(&t, &conf, snap_mesh_json), 0);
	t.loop = loop_new();
	T_ASSERT(t.loop);
	T_ASSERT_INT(tunnel_snap_start(&t), 0);
	r.t = other.t = &t;
	T_ASSERT(pthread_create(&th, NULL, reader_take, &r) == 0);
	pthread_join(th, NULL);
	T_ASSERT(r.held && r.seen_gen == 1 && r.pod);
	T_ASSERT_INT(tfix_publish(&t, snap_mesh_json, 2), 0);
	T_ASSERT_INT(tfix_publish(&t, snap_mesh_json, 3), 0);
	/* generation 2 had no reader: gone; generation 1 is held */
	T_ASSERT(t.snap_retired == r.held && !t.snap_retired->retired_next);
	T_ASSERT_INT(atomic_load(&r.held->refs), 2);
	T_ASSERT_STR(r.pod->name, "echo-0"); /* still its model's */
	T_ASSERT_INT(tunnel_generation(&t), 3); /* this thread: the published one */
	T_ASSERT(pthread_create(&th, NULL, reader_look, &other) == 0);
	pthread_join(th, NULL);
	T_ASSERT_INT(other.seen_gen, 3);
	/* the reader lets go: the main loop's next round frees it */
	tunnel_snap_drop(&t, r.held);
	T_ASSERT(t.snap_retired); /* not on the reader's thread */
	T_ASSERT(loop_timer_add(t.loop, 0, stop_cb, NULL));
	T_ASSERT_INT(loop_run(t.loop), 0);
	T_ASSERT(!t.snap_retired);
	tunnel_snap_stop(&t);
	loop_free(t.loop);
}

T_MAIN(T_CASE(test_publish_replaces_and_keeps_policies), T_CASE(test_reader_keeps_its_snapshot))
