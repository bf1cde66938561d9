/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pod records for surviving our own restart: one JSON file per pod,
 * <stateDir>/pods/<uid>.json, written atomically (tmp + fsync + rename +
 * fsync of the directory) so a crash leaves either the old or the new
 * record, never a torn one.
 *
 * Adoption after a restart (state_adopt_start) re-creates the listeners of
 * every recorded pod whose netns still exists, is the same netns (dev/ino),
 * and still carries our in-pod rules; anything else is dropped with a log
 * line saying why (e.g. the pod was deleted while we were down). The
 * listeners of an adopted pod open only once the tunnel can serve
 * (tunnel_serving: in Kubernetes mode the model comes after the lists):
 * in a rollout our predecessor's listeners share the pod's SO_REUSEPORT
 * groups (and its eBPF listener map slot), and a listener of ours opened
 * earlier would take a share of the new connections only to reset them;
 * state_listen_adopted() opens them when the model is in. Likewise a pod
 * whose identity has no certificate yet (warren-ca unreachable) waits for
 * it: our listeners would refuse its HBONE while the predecessor's serve.
 * Without a predecessor, nobody listening refuses as surely. A record
 * that cannot be read or parsed (truncated by a full disk, damaged by
 * hand; state_record_parse() in tunnel/state_record.h says which field)
 * is not deleted: it is renamed <uid>.json.bad-<unix time>, counted in
 * warren_state_records_bad_total and listed by GET /state_records (and
 * under `warrenctl pods`), and its pod is looked for in its netns once the
 * good records are adopted and a model is loaded (state_readopt.c): found
 * and verified, it is adopted and gets a new record; otherwise it stays
 * captured with nobody listening (refused) until it is re-created. A pod
 * whose listeners fail is kept and retried every 5 s. The record files are
 * listed once at the start and adopted adoptBatch (default 16) per loop
 * iteration (a 0 ms timer; the loop serves ready fds between timers), so
 * the admin, readiness and metrics servers answer throughout: readiness is
 * 503 "adopting N/M pods" until the last record is done, like ztunnel
 * before its first snapshot is processed.
 *
 * Handoff requests during adoption: "status" (ready=false) and "query" are
 * answered at once; "add", "del", "check" and "gc" are queued (held) and
 * answered in order when adoption is complete. Not refused: the plugin
 * maps an ok=false answer to CNI error 100 (warren-tunnel refused), which
 * fails the ADD outright and rolls back its in-pod rules; only a tunnel
 * that does not answer maps to 11 (try again later). Held, an ADD succeeds
 * as soon as adoption is done; if adoption outlasts the plugin's timeoutMs
 * the plugin reports 11 and hangs up, and its held request is dropped
 * unprocessed. Holding is also what keeps a pod from being handed over
 * twice: an add or del never races the adoption of the same record.
 */
#include "tunnel/keeper.h"
#include "tunnel/state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf/handoff.h"
#include "conf/log.h"
#include "netlink/inpod.h"
#include "netlink/inpod_ebpf.h"
#include "netlink/netns.h"
#include "tunnel/handoff_server.h"
#include "tunnel/harden.h"
#include "tunnel/host_probe.h"
#include "tunnel/inpod_listen.h"
#include "tunnel/loop.h"
#include "tunnel/metrics.h"
#include "tunnel/mtls.h"
#include "tunnel/pods.h"
#include "tunnel/state_readopt.h"
#include "tunnel/state_record.h"
#include "tunnel/tunnel.h"

static int state_mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int state_pods_dir(const struct tunnel *t, char *buf, size_t len)
{
	if ((size_t)snprintf(buf, len, "%s/pods", t->conf->state_dir) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int state_write(struct tunnel *t, const struct pod *p, char *err, size_t errlen)
{
	char dir[4096], tmp[4200], path[4200];
	json_t *rec = NULL;
	char *text = NULL;
	int fd = -1, dfd = -1, ret;
	size_t len, off = 0;

	ret = state_pods_dir(t, dir, sizeof(dir));
	if (ret < 0)
		goto out;
	snprintf(tmp, sizeof(tmp), "%s/.%s.json.tmp", dir, p->uid);
	snprintf(path, sizeof(path), "%s/%s.json", dir, p->uid);
	rec = pod_to_json(p);
	text = rec ? json_dumps(rec, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	if (!text) {
		ret = -ENOMEM;
		goto out;
	}
	len = strlen(text);
	/* The file work (two fsyncs: milliseconds on a real disk) touches
	 * only our copy; the worker threads' data path runs meanwhile. */
	ret = state_mkdir_p(dir, 0700);
	if (ret < 0)
		goto out;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		ret = -errno;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		ret = -errno;
		goto out;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		fsync(dfd);
	ret = 0;
out:
	if (ret < 0) {
		snprintf(err, errlen, "cannot write the state record of pod %s/%s in %s: %s; check stateDir",
			 p->namespace, p->name, dir, strerror(-ret));
		if (fd >= 0)
			unlink(tmp);
	}
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	free(text);
	json_decref(rec);
	return ret;
}

int state_remove(struct tunnel *t, const char *uid)
{
	char dir[4096], path[4200];
	int ret;

	ret = state_pods_dir(t, dir, sizeof(dir));
	if (ret < 0)
		return ret;
	snprintf(path, sizeof(path), "%s/%s.json", dir, uid);
	ret = unlink(path) < 0 && errno != ENOENT ? -errno : 0;
	if (ret < 0)
		log_warn("cannot remove state record %s: %s", path, strerror(-ret));
	return ret;
}

/* state_adopt_one() could not adopt the pod, but the record must stay. */
#define ADOPT_KEEP 1

/* The record file's bytes into buf (up to STATE_RECORD_MAX + 1, so that a
 * larger file is refused by the parser). Bytes read, or -errno. */
static ssize_t state_record_read(const char *path, char *buf, size_t cap)
{
	size_t off = 0;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (off < cap) {
		ssize_t n = read(fd, buf + off, cap - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = errno;
			close(fd);
			return -err;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	return (ssize_t)off;
}

/* Adopt one record. Returns 0 when adopted, ADOPT_KEEP when it could not
 * be adopted but may still be valid, -EBADMSG when the record itself is
 * bad (to be set aside), or -errno (record to drop); why is filled for the
 * last three. */
static int state_adopt_one(struct tunnel *t, const char *path, char *why, size_t whylen)
{
	static char buf[STATE_RECORD_MAX + 1]; /* main thread only */
	const char *uid, *cid, *ifname, *ns, *name, *sa, *netns, *gate;
	struct state_record rec;
	uint64_t cur_dev, cur_ino;
	struct pod *p;
	char lerr[512];
	int fd = -1, ret;
	ssize_t len;

	len = state_record_read(path, buf, sizeof(buf));
	if (len < 0) {
		snprintf(why, whylen, "unreadable record: %s", strerror((int)-len));
		return -EBADMSG;
	}
	ret = state_record_parse(buf, (size_t)len, &rec, why, whylen);
	if (ret < 0)
		return ret;
	uid = rec.uid;
	cid = rec.container_id;
	ifname = rec.ifname;
	ns = rec.namespace;
	name = rec.name;
	sa = rec.service_account;
	netns = rec.netns;
	if (pod_find_uid(t, uid)) {
		snprintf(why, whylen, "duplicate uid");
		ret = -EINVAL;
		goto out;
	}
	fd = netns_open(netns);
	if (fd < 0 && fd != -EACCES && fd != -EPERM) {
		ret = fd;
		if (ret == -ENOENT)
			snprintf(why, whylen, "its netns %s is gone: the pod was deleted while we were down", netns);
		else
			snprintf(why, whylen, "its netns %s cannot be used: %s", netns, strerror(-ret));
		goto out;
	}
	if (fd < 0) {
		/* The pod still exists (EACCES on /proc/PID/ns/net):
		 * keep its record so a later start can adopt it, rather than
		 * forgetting an enrolled pod because of our own privileges. */
		snprintf(why, whylen, "cannot open its netns %s (%s)", netns, strerror(-fd));
		ret = ADOPT_KEEP;
		goto out;
	}
	ret = netns_identity(fd, &cur_dev, &cur_ino);
	if (ret < 0) {
		snprintf(why, whylen, "cannot stat netns %s: %s", netns, strerror(-ret));
		goto out;
	}
	if (cur_dev != rec.netns_dev || cur_ino != rec.netns_ino) {
		ret = -ESTALE;
		snprintf(why, whylen, "netns %s is a different namespace now (the pod sandbox was re-created)",
			 netns);
		goto out;
	}
	ret = rec.mode.redirect == INPOD_REDIRECT_EBPF ? ebpf_capture_present(fd, rec.mode.bpf_dir, cid) : inpod_present(fd);
	if (ret == 0) {
		ret = -ENOENT;
		snprintf(why, whylen, "our in-pod %s capture is gone from netns %s (the pod was removed while we were down)",
			 inpod_redirect_name(rec.mode.redirect), netns);
		goto out;
	}
	if (ret < 0)
		log_warn("cannot tell whether the in-pod rules of pod %s/%s are present (%s); adopting it anyway",
			 ns, name, strerror(-ret));
	p = pod_new(t, uid, cid, ifname, ns, name, sa, netns, fd, rec.ips);
	if (!p) {
		ret = -ENOMEM;
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	fd = -1;
	p->netns_dev = cur_dev;
	p->netns_ino = cur_ino;
	p->mode = rec.mode;
	if (p->mode.redirect == INPOD_REDIRECT_EBPF)
		keeper_nudge(t, p->mode.bpf_dir); /* the pool of its bpfDir, kept from now on */
	mtls_pod_added(p); /* a failure is logged; its HBONE is refused */
	if (!tunnel_serving(t, &gate))
		log_info("re-adopted pod %s/%s (uid %s, netns %s); its listeners wait until we can serve (%s)",
			 ns, name, uid, netns, gate);
	else if (mtls_pod_cert_pending(p))
		log_warn("re-adopted pod %s/%s (uid %s, netns %s); its listeners wait for its certificate",
			 ns, name, uid, netns);
	else if (pod_listen(p, lerr, sizeof(lerr)) < 0)
		log_error("adopted pod %s/%s (uid %s) but %s; will retry", ns, name, uid, lerr);
	else
		log_info("re-adopted pod %s/%s (uid %s, netns %s)", ns, name, uid, netns);
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	state_record_clear(&rec);
	return ret;
}

static void state_retry_listen(struct loop *l, void *ctx)
{
	struct tunnel *t = ctx;
	bool missing = false;
	char err[512];

	CHECK_OBJ(t, TUNNEL_MAGIC);
	t->retry_timer = NULL;
	if (t->draining || !tunnel_serving(t, NULL))
		return; /* state_listen_adopted() starts again once we serve */
	for (struct pod *p = t->pods; p; p = p->next) {
		if (p->listening || mtls_pod_cert_pending(p))
			continue; /* the latter: once renew_cb() has its certificate */
		if (pod_listen(p, err, sizeof(err)) < 0) {
			log_warn("retrying listeners: %s", err);
			missing = true;
		} else {
			log_info("listeners of pod %s/%s are up", p->namespace, p->name);
		}
	}
	if (missing)
		t->retry_timer = loop_timer_add(t->loop, 5000, state_retry_listen, t);
}

void state_listen_adopted(struct tunnel *t)
{
	size_t n = 0;

	state_readopt_bad(t); /* those that waited for a model */
	if (t->draining || !tunnel_serving(t, NULL))
		return;
	for (const struct pod *p = t->pods; p; p = p->next)
		n += !p->listening && !mtls_pod_cert_pending(p);
	if (!n || t->retry_timer)
		return;
	log_info("serving now: opening the listeners of %zu adopted pod(s)", n);
	state_retry_listen(t->loop, t);
}

#define ADOPTION_MAGIC 0x41444f50u
/* Records per loop iteration (adoptBatch, default 16): a batch of 16 takes
 * a few ms (netns checks, three sockets per pod), short enough that probes
 * and the handoff socket wait no longer than that. */

/* The records found when adoption started, worked through in batches. */
struct adoption {
	unsigned magic;
	struct tunnel *t;
	char dir[4096];
	char **names;             /* "<uid>.json", owned */
	size_t n, next;
	size_t adopted, dropped, kept;
	struct loop_timer *timer; /* the next batch; NULL while one runs */
	char reason[96];          /* readiness reason, kept current */
};

static void adoption_free(struct adoption *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++)
		free(a->names[i]);
	free(a->names);
	a->magic = 0;
	free(a);
}

/* Lists the record files (and removes the leftovers of interrupted
 * writes). A directory that cannot be read leaves the list empty. */
static int adoption_scan(struct adoption *a)
{
	char path[4400];
	struct dirent *de;
	size_t cap = 0;
	DIR *d;
	int ret = 0;

	d = opendir(a->dir);
	if (!d) {
		if (errno != ENOENT)
			log_error("cannot read state directory %s: %s; no pods re-adopted", a->dir,
				  strerror(errno));
		return 0;
	}
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);

		if (de->d_name[0] == '.') {
			if (n > 9 && !strcmp(de->d_name + n - 9, ".json.tmp")) {
				snprintf(path, sizeof(path), "%s/%s", a->dir, de->d_name);
				unlink(path); /* a write interrupted by a crash */
			}
			continue;
		}
		if (n < 6 || strcmp(de->d_name + n - 5, ".json"))
			continue;
		if (a->n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **nn = realloc(a->names, ncap * sizeof(*nn));

			if (!nn) {
				ret = -ENOMEM;
				goto out;
			}
			a->names = nn;
			cap = ncap;
		}
		a->names[a->n] = strdup(de->d_name);
		if (!a->names[a->n]) {
			ret = -ENOMEM;
			goto out;
		}
		a->n++;
	}
out:
	closedir(d);
	return ret;
}

static void adoption_progress(struct adoption *a)
{
	snprintf(a->reason, sizeof(a->reason), "adopting %zu/%zu pods", a->next, a->n);
}

static void adoption_finish(struct tunnel *t)
{
	struct adoption *a = t->adoption;
	bool missing = false;

	CHECK_OBJ(a, ADOPTION_MAGIC);
	log_info("adoption done: %zu pod(s) re-adopted, %zu record(s) dropped, %zu kept but not adopted",
		 a->adopted, a->dropped, a->kept);
	t->adopted = true;
	/* Records set aside: their pods from their netns, the good ones held
	 * (a netns they hold is no candidate), and before cap_sys_ptrace goes. */
	state_readopt_bad(t);
	for (struct pod *p = t->pods; p; p = p->next)
		missing |= !p->listening && !mtls_pod_cert_pending(p);
	if (missing && !t->retry_timer && tunnel_serving(t, NULL))
		t->retry_timer = loop_timer_add(t->loop, 5000, state_retry_listen, t);
	adoption_free(a);
	t->adoption = NULL;
	host_probe_flush(t);
	harden_after_startup(t); /* the last step that needed cap_sys_ptrace is done */
	/* Only now: a held add must see the adopted pod, never race it. */
	handoff_server_resume(t);
}

/* A record that cannot be read: moved aside (not deleted), counted and
 * listed for `warrenctl pods`. */
static void state_record_set_aside(struct tunnel *t, const char *dir, const char *name, const char *why)
{
	char path[4400], bad[4500], uid[256];
	size_t n = strlen(name) - 5; /* ".json" */
	json_t *o;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(bad, sizeof(bad), "%s.bad-%lld", path, (long long)time(NULL));
	snprintf(uid, sizeof(uid), "%.*s", (int)(n < sizeof(uid) ? n : sizeof(uid) - 1), name);
	metrics_state_record_bad(t);
	if (rename(path, bad) < 0) {
		log_error("state record %s: %s; cannot move it aside (%s): left in place", path, why,
			  strerror(errno));
		snprintf(bad, sizeof(bad), "%s", path);
	} else {
		log_error("state record %s: %s; moved aside to %s. Its pod (uid %s) is looked for in its netns",
			  path, why, bad, uid);
	}
	if (!t->bad_records)
		t->bad_records = json_array();
	o = json_pack("{s:s,s:s,s:s,s:b,s:s}", "uid", uid, "record", bad, "reason", why, "pending", 1,
		      "readopt", "after the records that could be read");
	if (t->bad_records && o)
		json_array_append(t->bad_records, o);
	json_decref(o);
}

json_t *state_bad_records_json(const struct tunnel *t)
{
	return t->bad_records ? json_deep_copy(t->bad_records) : json_array();
}

/* Adopts up to adoptBatch records; true when the list is done. */
static bool adoption_batch(struct adoption *a)
{
	char path[4400], why[512];
	size_t end = a->next + (size_t)a->t->conf->adopt_batch;
	int r;

	if (end > a->n || end < a->next)
		end = a->n;
	for (; a->next < end; a->next++) {
		snprintf(path, sizeof(path), "%s/%s", a->dir, a->names[a->next]);
		r = state_adopt_one(a->t, path, why, sizeof(why));
		if (r == -EBADMSG) {
			state_record_set_aside(a->t, a->dir, a->names[a->next], why);
			a->dropped++;
		} else if (r < 0) {
			log_warn("dropping state record %s: %s", path, why);
			unlink(path);
			a->dropped++;
		} else if (r == ADOPT_KEEP) {
			log_error("not adopting pod of state record %s: %s; the record is kept", path, why);
			a->kept++;
		} else {
			a->adopted++;
		}
	}
	adoption_progress(a);
	return a->next >= a->n;
}

static void adoption_step(struct loop *l, void *ctx)
{
	struct adoption *a = ctx;
	struct tunnel *t;

	CHECK_OBJ(a, ADOPTION_MAGIC);
	t = a->t;
	a->timer = NULL;
	if (adoption_batch(a)) {
		adoption_finish(t);
		return;
	}
	/* 0 ms: the loop serves every ready fd (readiness probes, handoff
	 * status) before the next batch. */
	a->timer = loop_timer_add(l, 0, adoption_step, a);
	if (!a->timer) {
		log_warn("cannot schedule the next adoption batch (out of memory); adopting the rest now");
		while (!adoption_batch(a))
			;
		adoption_finish(t);
	}
}

int state_adopt_start(struct tunnel *t)
{
	struct adoption *a;
	int ret;

	assert(!t->adoption && !t->adopted);
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	*a = (struct adoption){ .magic = ADOPTION_MAGIC, .t = t };
	ret = state_pods_dir(t, a->dir, sizeof(a->dir));
	if (ret == 0)
		ret = adoption_scan(a);
	if (ret < 0) {
		log_error("cannot list the pod records in %s: %s", a->dir, strerror(-ret));
		adoption_free(a);
		return ret;
	}
	t->adoption = a;
	adoption_progress(a);
	log_info("adopting %zu pod record(s) from %s, %d per loop iteration", a->n, a->dir,
		 t->conf->adopt_batch);
	a->timer = loop_timer_add(t->loop, 0, adoption_step, a);
	if (!a->timer) {
		t->adoption = NULL;
		adoption_free(a);
		return -ENOMEM;
	}
	return 0;
}

void state_adopt_stop(struct tunnel *t)
{
	struct adoption *a = t->adoption;

	json_decref(t->bad_records);
	t->bad_records = NULL;
	if (!a)
		return;
	if (a->timer)
		loop_timer_cancel(t->loop, a->timer);
	log_info("stopping with adoption unfinished (%zu/%zu records); the rest are kept for the next start",
		 a->next, a->n);
	adoption_free(a);
	t->adoption = NULL;
}

const char *state_adopt_progress(const struct tunnel *t)
{
	return t->adoption ? t->adoption->reason : "adoption not started";
}
