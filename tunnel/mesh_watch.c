/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keeps the published model (snap.h) current with meshPath. inotify watches the directory that
 * holds the file (or the directory itself in directory mode), so an
 * editor's or kubectl's atomic rename-over is seen; events are coalesced
 * for a few ms and then the whole model is reloaded. When inotify cannot
 * be used (or the watched directory goes away) we poll a stat signature
 * every meshReloadMs instead. While no model has ever loaded we also retry
 * on that interval.
 *
 * A failed load never replaces a good model: the loader's message is
 * logged, t->mesh_reload_errors counts it, and the last good model (and its
 * generation) stays in use.
 *
 * Only complete writes are loaded. In file mode inotify reloads on
 * IN_CLOSE_WRITE or IN_MOVED_TO of the file (a writer closing it, or a
 * rename into place), never on a truncation or a write in progress;
 * polling loads a change only once the file's signature has stayed the
 * same for one interval; and an empty file is an error (mesh.h). A file
 * cut short can still parse, so a new model never drops a pod this tunnel
 * holds: mesh_load_path_keeping() keeps what the previous model said about
 * it, logged and counted (warren_mesh_pods_kept).
 */
#include "tunnel/mesh_watch.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/log.h"
#include "tunnel/handoff_server.h"
#include "tunnel/loop.h"
#include "tunnel/mtls.h"
#include "tunnel/pods.h"
#include "tunnel/state.h"
#include "tunnel/tunnel.h"

#define DEBOUNCE_MS 30

struct mesh_watch {
	int ifd;
	bool dir_mode;
	bool symlink;
	char *dir;   /* watched directory */
	char *base;  /* file name in dir (file mode) */
	uint64_t sig;
	uint64_t pending; /* polling: a changed signature seen once, not loaded yet */
	struct loop_timer *debounce, *poll;
};

static uint64_t mesh_watch_mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h;
}

static uint64_t mesh_watch_stat_sig(uint64_t h, const struct stat *st)
{
	h = mesh_watch_mix(h, (uint64_t)st->st_ino);
	h = mesh_watch_mix(h, (uint64_t)st->st_size);
	h = mesh_watch_mix(h, (uint64_t)st->st_mtim.tv_sec);
	return mesh_watch_mix(h, (uint64_t)st->st_mtim.tv_nsec);
}

/* A cheap fingerprint of meshPath: changes when any file changes. */
static uint64_t mesh_watch_path_sig(const char *path)
{
	struct stat st;
	uint64_t h = 1469598103934665603ull;
	struct dirent *de;
	DIR *d;

	if (stat(path, &st) < 0)
		return mesh_watch_mix(h, (uint64_t)errno);
	h = mesh_watch_stat_sig(h, &st);
	if (!S_ISDIR(st.st_mode))
		return h;
	d = opendir(path);
	if (!d)
		return mesh_watch_mix(h, (uint64_t)errno);
	while ((de = readdir(d))) {
		char p[PATH_MAX];

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		if (stat(p, &st) == 0)
			h = mesh_watch_stat_sig(h, &st);
		for (const char *c = de->d_name; *c; c++)
			h = mesh_watch_mix(h, (uint64_t)(unsigned char)*c);
	}
	closedir(d);
	return h;
}

/*
 * Reading the files and compiling the policies build private structures
 * while the workers run; the result is published as a snapshot (snap.h),
 * which each worker takes at its next loop iteration. Nothing here waits
 * for a worker, nor a worker for this.
 */
/* Main thread, which alone changes t->pods. */
bool mesh_watch_held_pod(void *ctx, const struct mesh_pod *mp)
{
	const struct mesh_watch_keep *k = ctx;

	for (const struct pod *p = k->t->pods; p; p = p->next)
		if ((*mp->uid && !strcmp(p->uid, mp->uid)) ||
		    (!strcmp(p->namespace, mp->namespace) && !strcmp(p->name, mp->name)))
			return true;
	return false;
}

void mesh_watch_log_kept(void *ctx, const struct mesh_pod *mp)
{
	const struct mesh_watch_keep *k = ctx;

	log_warn("pod %s/%s is enrolled on this node but missing from %s; keeping what mesh generation %llu said about it (its identity, addresses and enrollment) until it is deleted or %s lists it again",
		 mp->namespace, mp->name, k->origin, (unsigned long long)tunnel_generation(k->t),
		 k->origin);
}

static void mesh_watch_reload(struct tunnel *t)
{
	struct mesh_watch_keep k = { t, t->conf->mesh_path };
	struct mesh *m = NULL;
	char err[512] = "";
	size_t kept = 0;
	int ret;

	t->mw->sig = t->mw->pending = mesh_watch_path_sig(t->conf->mesh_path);
	ret = mesh_load_path_keeping(t->conf->mesh_path, tunnel_model(t), mesh_watch_held_pod,
				     mesh_watch_log_kept, &k, &kept, &m, err, sizeof(err));
	if (ret < 0) {
		mesh_watch_failed(t, t->conf->mesh_path, err[0] ? err : strerror(-ret),
				  "fix the file, it is re-read on change");
		return;
	}
	mesh_watch_install(t, m, t->conf->mesh_path, kept);
}

void mesh_watch_failed(struct tunnel *t, const char *origin, const char *err, const char *hint)
{
	t->mesh_reload_errors++;
	snprintf(t->mesh_error, sizeof(t->mesh_error), "%s", err);
	if (tunnel_model(t))
		log_error("cannot reload the mesh model from %s: %s; keeping generation %llu (%s)",
			  origin, t->mesh_error, (unsigned long long)tunnel_generation(t), hint);
	else
		log_error("cannot load the mesh model from %s: %s; not ready until it loads (retrying)",
			  origin, t->mesh_error);
}

void mesh_watch_install(struct tunnel *t, struct mesh *m, const char *origin, size_t kept)
{
	struct authz_set *set = NULL;
	struct mesh_ip first;
	size_t conflicts;

	m->generation = tunnel_generation(t) + 1;
	if (mtls_policies_compile(t, m, &set) < 0)
		set = NULL; /* logged; the previous set stays */
	conflicts = mesh_ip_conflicts(m, &first);
	if (conflicts) {
		char a[INET6_ADDRSTRLEN];

		log_warn("mesh generation %llu: %zu IP address%s claimed by several live pods alike (e.g. %s); connections to %s are refused until one pod holds it",
			 (unsigned long long)m->generation, conflicts, conflicts > 1 ? "es are" : " is",
			 mesh_ip_str(&first, a, sizeof(a)), conflicts > 1 ? "them" : "it");
	}
	log_info("mesh model generation %llu loaded from %s: %zu namespaces, %zu pods, %zu services",
		 (unsigned long long)m->generation, origin, m->n_namespaces, m->n_pods,
		 m->n_services);
	/* The workers re-point and re-check their open connections when they
	 * take it; the previous model is freed once none uses it. */
	if (tunnel_snap_publish(t, m, set) < 0) {
		mesh_watch_failed(t, origin, "out of memory publishing the model",
				  "retried on the next change");
		return;
	}
	t->mesh_pods_kept = kept;
	t->mesh_error[0] = '\0';
	handoff_server_model_changed(t); /* plugin requests waiting for their pod */
	state_listen_adopted(t); /* adopted pods waiting for a model */
}

static void mesh_watch_poll_cb(struct loop *l, void *ctx);

static void mesh_watch_arm_poll(struct tunnel *t)
{
	struct mesh_watch *mw = t->mw;
	int ms = t->conf->mesh_reload_ms > 0 ? t->conf->mesh_reload_ms : 1000;

	if (mw->poll)
		return;
	if (mw->ifd >= 0 && tunnel_model(t))
		return; /* inotify covers changes; no retry needed */
	mw->poll = loop_timer_add(t->loop, (uint64_t)ms, mesh_watch_poll_cb, t);
}

static void mesh_watch_poll_cb(struct loop *l, void *ctx)
{
	struct tunnel *t = ctx;
	struct mesh_watch *mw;

	CHECK_OBJ(t, TUNNEL_MAGIC);
	mw = t->mw;
	mw->poll = NULL;
	/* Without a model, retry even if nothing changed: the loader may
	 * have failed on something outside the file (a transient read). A
	 * change is loaded once it has held still for one interval: a file
	 * being written keeps changing. */
	if (!tunnel_model(t)) {
		mesh_watch_reload(t);
	} else {
		uint64_t sig = mesh_watch_path_sig(t->conf->mesh_path);

		if (sig != mw->sig && sig == mw->pending)
			mesh_watch_reload(t);
		else
			mw->pending = sig;
	}
	mesh_watch_arm_poll(t);
}

static void mesh_watch_debounce_cb(struct loop *l, void *ctx)
{
	struct tunnel *t = ctx;

	CHECK_OBJ(t, TUNNEL_MAGIC);
	t->mw->debounce = NULL;
	mesh_watch_reload(t);
	mesh_watch_arm_poll(t);
}

static void mesh_watch_stop_inotify(struct tunnel *t, const char *why)
{
	struct mesh_watch *mw = t->mw;

	if (mw->ifd < 0)
		return;
	log_warn("no longer watching %s with inotify (%s); polling every %d ms", mw->dir, why,
		 t->conf->mesh_reload_ms);
	loop_del(t->loop, mw->ifd);
	close(mw->ifd);
	mw->ifd = -1;
	mesh_watch_arm_poll(t);
}

static void mesh_watch_inotify_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct tunnel *t = ctx;
	struct mesh_watch *mw;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool hit = false, gone = false;
	ssize_t n;

	CHECK_OBJ(t, TUNNEL_MAGIC);
	mw = t->mw;
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;

			if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_Q_OVERFLOW)) {
				if (ev->mask & IN_Q_OVERFLOW)
					hit = true;
				else
					gone = true;
			} else if (mw->dir_mode || mw->symlink || !ev->len ||
				   !strncmp(ev->name, "..", 2)) {
				hit = true;
			} else if (!strcmp(ev->name, mw->base)) {
				/* the file itself: only a finished write or a rename
				 * into place, never its creation or truncation */
				if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO))
					hit = true;
			}
			p += sizeof(*ev) + ev->len;
		}
	}
	if (gone) {
		mesh_watch_stop_inotify(t, "the watched directory went away");
		hit = true;
	}
	if (hit && !mw->debounce)
		mw->debounce = loop_timer_add(t->loop, DEBOUNCE_MS, mesh_watch_debounce_cb, t);
}

int mesh_watch_start(struct tunnel *t)
{
	struct mesh_watch *mw;
	struct stat st;
	char *copy = NULL;
	int ret = 0;

	mw = calloc(1, sizeof(*mw));
	if (!mw)
		return -ENOMEM;
	mw->ifd = -1;
	t->mw = mw;
	if (stat(t->conf->mesh_path, &st) == 0 && S_ISDIR(st.st_mode)) {
		mw->dir_mode = true;
		mw->dir = strdup(t->conf->mesh_path);
	} else {
		copy = strdup(t->conf->mesh_path);
		if (copy) {
			mw->base = strdup(basename(copy));
			strcpy(copy, t->conf->mesh_path);
			mw->dir = strdup(dirname(copy));
		}
		mw->symlink = lstat(t->conf->mesh_path, &st) == 0 && S_ISLNK(st.st_mode);
	}
	free(copy);
	if (!mw->dir || (!mw->dir_mode && !mw->base)) {
		ret = -ENOMEM;
		goto out;
	}
	mw->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (mw->ifd >= 0 &&
	    inotify_add_watch(mw->ifd, mw->dir,
			      IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
			      IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
		log_warn("cannot watch %s with inotify (%s); polling every %d ms", mw->dir,
			 strerror(errno), t->conf->mesh_reload_ms);
		close(mw->ifd);
		mw->ifd = -1;
	}
	if (mw->ifd >= 0 && loop_add(t->loop, mw->ifd, EPOLLIN, mesh_watch_inotify_cb, t) < 0) {
		close(mw->ifd);
		mw->ifd = -1;
	}
	mesh_watch_reload(t);
	mesh_watch_arm_poll(t);
out:
	return ret;
}

void mesh_watch_stop(struct tunnel *t)
{
	struct mesh_watch *mw = t->mw;

	if (!mw)
		return;
	if (mw->ifd >= 0) {
		loop_del(t->loop, mw->ifd);
		close(mw->ifd);
	}
	if (mw->debounce)
		loop_timer_cancel(t->loop, mw->debounce);
	if (mw->poll)
		loop_timer_cancel(t->loop, mw->poll);
	free(mw->dir);
	free(mw->base);
	free(mw);
	t->mw = NULL;
}
