/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tunnel as the Kubernetes source's host (contract in
 * tunnel/kube_tunnel.h).
 */
#include "tunnel/kube_tunnel.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf/log.h"
#include "model/mesh.h"
#include "tunnel/kube_annotate.h"
#include "tunnel/kube_enroll.h"
#include "tunnel/kube_watch.h"
#include "tunnel/loop.h"
#include "tunnel/mesh_watch.h"
#include "tunnel/tunnel.h"

#define KT_ORIGIN "the API server"
/* the pod change's annotation waits as long as a rebuild window */
#define KT_ANNOTATE_MS 50
/* Enrollment and annotations are reconciled after each rebuild and pod
 * change; this catches what no event announces (re-adoption finishing after
 * the first rebuild, a PATCH lost with its connection). */
#define KT_RESYNC_MS 10000

struct kube_tunnel {
	struct tunnel *t;
	struct kube_annotate ann;  /* the status annotation (kube_annotate.c) */
	struct loop_timer *resync; /* kt_resync_cb: the backstop of both reconciles */
};

static struct kube_tunnel *kt_of(const struct tunnel *t)
{
	return t->kw ? kube_watch_host_ctx(t->kw) : NULL;
}

static int kt_rebuild(void *ctx, json_t *all)
{
	struct kube_tunnel *kt = ctx;
	struct tunnel *t = kt->t;
	struct mesh_watch_keep keep = { t, KT_ORIGIN };
	struct mesh *m = NULL;
	char err[512] = "";
	size_t kept = 0;
	int ret;

	/* the store is the main thread's alone; the workers never wait for
	 * the build (the model is published as a snapshot, snap.h) */
	ret = mesh_build_shared(all, KT_ORIGIN, tunnel_model(t), mesh_watch_held_pod, mesh_watch_log_kept,
				&keep, &kept, &m, err, sizeof(err));
	if (ret < 0) {
		mesh_watch_failed(t, KT_ORIGIN, err[0] ? err : strerror(-ret), "retried on the next change");
		return ret;
	}
	mesh_watch_install(t, m, KT_ORIGIN, kept);
	kube_enroll_reconcile(t);
	kube_annotate_soon(&kt->ann, 0);
	return 0;
}

static void kt_done(void *ctx, void *priv, CURLcode res)
{
	(void)ctx;
	kube_annotate_done(priv, res);
}

static void kt_resync_cb(struct loop *l, void *ctx)
{
	struct kube_tunnel *kt = ctx;

	kt->resync = loop_timer_add(l, KT_RESYNC_MS, kt_resync_cb, kt);
	kube_enroll_reconcile(kt->t);
	kube_annotate_soon(&kt->ann, 0);
}

int kube_tunnel_start(struct tunnel *t)
{
	struct kube_tunnel *kt = calloc(1, sizeof(*kt));
	struct kube_watch_host h = {
		.loop = t->loop,
		.kubeconfig = t->conf->kubeconfig,
		.account = "the tunnel's account",
		.rebuild = kt_rebuild,
		.done = kt_done,
		.ctx = kt,
	};
	int ret;

	if (!kt)
		return -ENOMEM;
	kt->t = t;
	kt->ann.t = t;
	ret = kube_watch_new(&h, &t->kw);
	if (!t->kw)
		free(kt);
	else
		kt->ann.kw = t->kw;
	if (ret < 0)
		return ret;
	/* after t->kw is set (it says Kubernetes mode); the first answers
	 * come from the loop, after this */
	kube_enroll_load(t);
	kt->resync = loop_timer_add(t->loop, KT_RESYNC_MS, kt_resync_cb, kt);
	return 0;
}

void kube_tunnel_stop(struct tunnel *t)
{
	struct kube_tunnel *kt = kt_of(t);

	if (!kt)
		return;
	kube_enroll_stop(t);
	kube_annotate_stop(&kt->ann);
	if (kt->resync)
		loop_timer_cancel(t->loop, kt->resync);
	kube_watch_free(t->kw);
	t->kw = NULL;
	free(kt);
}

json_t *kube_tunnel_json(const struct tunnel *t)
{
	const struct kube_tunnel *kt = kt_of(t);
	json_t *o;

	if (!kt)
		return json_null();
	o = kube_watch_state(t->kw);
	if (o) {
		json_object_set_new(o, "statusPatches", json_integer((json_int_t)kt->ann.ok));
		json_object_set_new(o, "statusPatchErrors", json_integer((json_int_t)kt->ann.failed));
	}
	return o ? o : json_null();
}

void kube_tunnel_metrics(const struct tunnel *t, FILE *f)
{
	if (t->kw)
		kube_watch_write_metrics(t->kw, f);
}

bool kube_tunnel_synced(const struct tunnel *t, const char **reason)
{
	return !t->kw || kube_watch_listed(t->kw, reason);
}

void kube_tunnel_pods_changed(struct tunnel *t)
{
	struct kube_tunnel *kt = kt_of(t);

	if (kt)
		kube_annotate_soon(&kt->ann, KT_ANNOTATE_MS);
}
