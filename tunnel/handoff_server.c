/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tunnel side of the plugin handoff (protocol in conf/handoff.h).
 * Clients must be root (SO_PEERCRED uid 0). Each connection carries one
 * request and gets one response; requests are handled synchronously on
 * the loop (an add creates three sockets and writes one small file), and
 * the "add" answer is sent only after the listeners exist and the state
 * record is on disk, so the plugin's ADD returns only when the pod is
 * captured-and-served. A client that sends nothing is dropped after 5 s.
 *
 * While the pods recorded before a restart are being adopted (state.c),
 * "status" (ready=false, "adopting N/M pods") and "query" are answered at
 * once; "add", "del", "check" and "gc" are held, request and fd kept, and
 * answered in arrival order once adoption is complete
 * (handoff_server_resume), so a request never races the adoption of the
 * same pod. A held client that hangs up (the plugin's timeoutMs ran out:
 * it reports CNI error 11, try again later) is dropped unprocessed.
 *
 * A pod's identity (its service account) and enrollment come from its
 * Pod object, so "add", and a "query" the namespace alone would enroll,
 * wait until the mesh model knows the pod: parked (t->model_wait) and
 * answered at the next model that has it, or after MODEL_WAIT_MS with
 * "retry": true, which the plugin reports as CNI error 11 (try again
 * later), so the runtime retries the ADD. In Kubernetes the Pod object
 * exists before the kubelet calls CNI, so this only bridges the model's
 * lag; re-issuing the identity later instead would leave a window in
 * which the pod runs as sa/default and its peers refuse it.
 */
#include "tunnel/handoff_server.h"
#include "tunnel/keeper.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/handoff.h"
#include "conf/inpod_mode.h"
#include "conf/log.h"
#include "conf/warren.h"
#include "netlink/netns.h"
#include "tunnel/host_probe.h"
#include "tunnel/inpod_listen.h"
#include "tunnel/kube_enroll.h"
#include "tunnel/loop.h"
#include "tunnel/metrics.h"
#include "tunnel/mtls.h"
#include "tunnel/pods.h"
#include "tunnel/state.h"
#include "tunnel/state_record.h"
#include "tunnel/tunnel.h"
#include "tunnel/workers.h"

#define CLIENT_TIMEOUT_MS 5000
/* Below the plugin's default timeoutMs (5000), so it reads why. */
#define MODEL_WAIT_MS 3000
#define CLIENT_MAGIC 0x434c4e54u
#define ACCEPT_PAUSE_MS 100
#define ACCEPT_WARN_EVERY_MS 10000

struct hclient {
	unsigned magic;
	struct tunnel *t;
	int fd;
	struct loop_timer *timer;
	long refused_uid; /* >= 0: not root; answer the request with an error */
	/* Held until adoption is complete (t->held FIFO), or waiting for the
	 * model to know the pod (t->model_wait): */
	bool held, waiting;
	bool wait_armed; /* its MODEL_WAIT_MS deadline runs (c->timer) */
	json_t *req;
	int pfd;
	struct hclient *next;
};

static void handoff_server_unhold(struct hclient *c)
{
	struct tunnel *t = c->t;
	struct hclient **pp, *prev = NULL;

	for (pp = &t->held; *pp; prev = *pp, pp = &(*pp)->next) {
		if (*pp != c)
			continue;
		*pp = c->next;
		if (t->held_tail == c)
			t->held_tail = prev;
		break;
	}
	c->next = NULL;
	c->held = false;
}

static void handoff_server_accept_resume(struct tunnel *t);
static void handoff_server_unwait(struct hclient *c)
{
	struct hclient **pp;

	for (pp = &c->t->model_wait; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	c->next = NULL;
	c->waiting = false;
}

static void handoff_server_client_free(struct hclient *c)
{
	if (!c)
		return;
	if (c->held)
		handoff_server_unhold(c);
	if (c->waiting)
		handoff_server_unwait(c);
	if (c->timer)
		loop_timer_cancel(c->t->loop, c->timer);
	loop_del(c->t->loop, c->fd);
	close(c->fd);
	if (c->pfd >= 0)
		close(c->pfd);
	if (c->t->handoff_pause)
		handoff_server_accept_resume(c->t); /* fds freed */
	json_decref(c->req);
	c->magic = 0;
	free(c);
}

static void handoff_server_reply(int fd, json_t *resp)
{
	int ret;

	if (!resp)
		resp = json_pack("{s:b,s:s}", "ok", 0, "error", "out of memory in warren-tunnel");
	if (!resp)
		return;
	ret = handoff_send(fd, resp, -1);
	if (ret < 0)
		log_warn("cannot answer a handoff client: %s", strerror(-ret));
	json_decref(resp);
}

static const char *handoff_server_handoff_str_field(json_t *req, const char *key)
{
	const char *s = json_string_value(json_object_get(req, key));

	return s && *s ? s : NULL;
}

static bool handoff_server_pod_known(const struct tunnel *t, const char *uid, const char *ns, const char *name)
{
	return tunnel_model(t) && ((uid && mesh_find_pod_by_uid(tunnel_model(t), uid)) ||
			   mesh_find_pod(tunnel_model(t), ns, name));
}

/* Must this request wait for the model (see the top)? */
static bool handoff_server_needs_model(const struct tunnel *t, const char *op, json_t *req)
{
	const char *uid = handoff_server_handoff_str_field(req, "uid"), *ns = handoff_server_handoff_str_field(req, "namespace");
	const char *name = handoff_server_handoff_str_field(req, "name");

	if (!ns || !name)
		return false; /* answered with what is missing */
	if (!tunnel_model(t))
		return true;
	if (handoff_server_pod_known(t, uid, ns, name))
		return false;
	if (!strcmp(op, "add"))
		return true;
	/* query: an unknown pod the namespace would not enroll passes through */
	return mesh_pod_enrolled(tunnel_model(t), ns, name, NULL);
}

static json_t *handoff_server_not_known(const struct tunnel *t, const char *op, const char *ns, const char *name)
{
	if (!tunnel_model(t))
		return handoff_retry("%s for pod %s/%s: no mesh model has loaded yet (waited %d ms; see the warren-tunnel log); try again later",
				     op, ns, name, MODEL_WAIT_MS);
	return handoff_retry("%s for pod %s/%s: the pod is not in the mesh model yet (its Pod object decides its identity and enrollment; waited %d ms); try again later",
			     op, ns, name, MODEL_WAIT_MS);
}

static json_t *handoff_server_op_query(struct tunnel *t, json_t *req, bool *wait)
{
	const char *ns = handoff_server_handoff_str_field(req, "namespace"), *name = handoff_server_handoff_str_field(req, "name"), *reason = "";
	struct inpod_mode mode;
	json_t *resp;
	bool enroll;

	if (!ns || !name)
		return handoff_error("query needs non-empty \"namespace\" and \"name\"");
	if (handoff_server_needs_model(t, "query", req)) {
		if (*wait)
			return NULL;
		return handoff_server_not_known(t, "query", ns, name);
	}
	*wait = false;
	kube_enroll_remember(t, req);
	enroll = mesh_pod_enrolled(tunnel_model(t), ns, name, &reason);
	inpod_mode_init(&mode);
	if (enroll) {
		const struct mesh_pod *mp = mesh_find_pod(tunnel_model(t), ns, name);
		const char *bad = NULL, *ifs = NULL;
		char err[256];

		mode.capture_inbound = !mp || mesh_pod_capture_inbound(mp, &bad);
		if (bad)
			log_warn("pod %s/%s: annotation " ANNOTATION_BYPASS_INBOUND_CAPTURE "=\"%s\" is not true or false; ignored, inbound traffic is captured",
				 ns, name, bad);
		if (mp)
			ifs = mesh_label(&mp->annotations, ANNOTATION_REROUTE_VIRTUAL_INTERFACES);
		/* A pod whose rules cannot be programmed as asked must not start
		 * half-captured: ADD fails, as Istio's does on the same value. */
		if (ifs && inpod_mode_parse_reroute(&mode, ifs, err, sizeof(err)) < 0)
			return handoff_error("pod %s/%s: annotation " ANNOTATION_REROUTE_VIRTUAL_INTERFACES "=\"%.128s\": %s; fix the annotation (a comma-separated list of interface names)",
					     ns, name, ifs, err);
	}
	resp = json_pack("{s:b,s:b,s:s}", "ok", 1, "enroll", enroll, "reason", reason ? reason : "");
	if (resp && handoff_mode_put(resp, &mode) < 0) {
		json_decref(resp);
		resp = NULL;
	}
	return resp;
}

static void handoff_server_drop_pod(struct tunnel *t, struct pod *p, const char *why)
{
	log_info("removing pod %s/%s (uid %s, container %s/%s): %s", p->namespace, p->name, p->uid,
		 p->container_id, p->ifname, why);
	state_remove(t, p->uid);
	pod_free(p);
}

static json_t *handoff_server_op_add(struct tunnel *t, json_t *req, int *fdp, bool *wait)
{
	const char *uid = handoff_server_handoff_str_field(req, "uid"), *ns = handoff_server_handoff_str_field(req, "namespace");
	const char *name = handoff_server_handoff_str_field(req, "name"), *cid = handoff_server_handoff_str_field(req, "containerId");
	const char *ifname = handoff_server_handoff_str_field(req, "ifname"), *netns = handoff_server_handoff_str_field(req, "netns");
	const char *sa = "default";
	json_t *ips = json_object_get(req, "ips");
	struct inpod_mode mode;
	uint64_t dev, ino;
	struct pod *p, *old;
	char err[768];
	int ret;

	if (!uid || !ns || !name || !cid || !ifname || !netns)
		return handoff_error("add needs non-empty \"uid\", \"namespace\", \"name\", \"containerId\", \"ifname\" and \"netns\"");
	if (!state_uid_valid(uid))
		return handoff_error("add: invalid pod uid \"%s\" (letters, digits, '-', '_', '.' only)", uid);
	if (ips && !json_is_array(ips))
		return handoff_error("add: \"ips\" must be an array of strings");
	if (handoff_mode_get(req, &mode, err, sizeof(err)) < 0)
		return handoff_error("add: %s", err);
	/* The ADD may have taken a spare program: the keeper tops the pool
	 * up on its own time, once this ADD is answered. */
	if (mode.redirect == INPOD_REDIRECT_EBPF)
		keeper_nudge_after_reply(t, mode.bpf_dir);
	if (*fdp < 0)
		return handoff_error("add for pod %s/%s carries no netns file descriptor; the plugin must pass exactly one (SCM_RIGHTS)",
				     ns, name);
	ret = netns_check_fd(*fdp);
	if (ret < 0)
		return handoff_error("add for pod %s/%s: the passed file descriptor is not a network namespace (%s)",
				     ns, name, strerror(-ret));
	ret = netns_identity(*fdp, &dev, &ino);
	if (ret < 0)
		return handoff_error("add for pod %s/%s: cannot stat the passed netns: %s", ns, name,
				     strerror(-ret));
	if (handoff_server_needs_model(t, "add", req)) {
		if (*wait)
			return NULL;
		return handoff_server_not_known(t, "add", ns, name);
	}
	*wait = false;
	old = pod_find_uid(t, uid);
	if (old && old->netns_dev == dev && old->netns_ino == ino) {
		if (!inpod_mode_equal(&old->mode, &mode)) {
			/* The plugin re-applied the rules another way (its
			 * shards' workers read the mode). */
			workers_isolate(t);
			old->mode = mode;
			workers_release(t);
			if (state_write(t, old, err, sizeof(err)) < 0)
				return handoff_error("add for pod %s/%s failed: %s", ns, name, err);
		}
		if (!old->listening && pod_listen(old, err, sizeof(err)) < 0)
			return handoff_error("%s", err);
		if (pod_publish(old, err, sizeof(err)) < 0)
			return handoff_error("%s", err);
		log_debug("add for pod %s/%s (uid %s): already enrolled with the same netns", ns, name, uid);
		return handoff_ok();
	}
	if (old)
		handoff_server_drop_pod(t, old, "re-added with a different netns (sandbox re-created)");
	old = pod_find_cid(t, cid, ifname);
	if (old)
		handoff_server_drop_pod(t, old, "re-added under another uid");
	if (tunnel_model(t)) {
		const struct mesh_pod *mp = mesh_find_pod_by_uid(tunnel_model(t), uid);

		if (!mp)
			mp = mesh_find_pod(tunnel_model(t), ns, name);
		if (mp && mp->service_account && *mp->service_account)
			sa = mp->service_account;
	}
	p = pod_new(t, uid, cid, ifname, ns, name, sa, netns, *fdp, ips);
	if (!p)
		return handoff_error("add for pod %s/%s: out of memory in warren-tunnel", ns, name);
	*fdp = -1;
	p->netns_dev = dev;
	p->netns_ino = ino;
	p->mode = mode;
	/* The record first: until pod_listen() no connection reaches this
	 * pod. */
	if (state_write(t, p, err, sizeof(err)) < 0 || pod_listen(p, err, sizeof(err)) < 0) {
		pod_free(p);
		state_remove(t, uid);
		log_error("add for pod %s/%s (uid %s) failed: %s", ns, name, uid, err);
		return handoff_error("add for pod %s/%s failed: %s", ns, name, err);
	}
	mtls_pod_added(p); /* a failure is logged; its HBONE is refused */
	log_info("enrolled pod %s/%s (uid %s, sa %s, container %s/%s, netns %s, %s capture%s%s)", ns, name, uid, sa,
		 cid, ifname, netns, inpod_redirect_name(mode.redirect), mode.capture_inbound ? "" : ", outbound capture only",
		 mode.n_reroute ? ", virtual interfaces rerouted" : "");
	return handoff_ok();
}

static struct pod *handoff_server_find_req_pod(struct tunnel *t, json_t *req)
{
	const char *cid = handoff_server_handoff_str_field(req, "containerId"), *ifname = handoff_server_handoff_str_field(req, "ifname");
	const char *uid = handoff_server_handoff_str_field(req, "uid");
	struct pod *p = NULL;

	if (cid && ifname)
		p = pod_find_cid(t, cid, ifname);
	if (!p && uid)
		p = pod_find_uid(t, uid);
	return p;
}

static json_t *handoff_server_op_del(struct tunnel *t, json_t *req)
{
	struct pod *p;

	if (!(handoff_server_handoff_str_field(req, "containerId") && handoff_server_handoff_str_field(req, "ifname")) && !handoff_server_handoff_str_field(req, "uid"))
		return handoff_error("del needs \"containerId\" and \"ifname\" (or \"uid\")");
	kube_enroll_forget(t, req);
	p = handoff_server_find_req_pod(t, req);
	if (p)
		handoff_server_drop_pod(t, p, "deleted by the plugin");
	return json_pack("{s:b,s:b}", "ok", 1, "known", p != NULL);
}

static json_t *handoff_server_op_check(struct tunnel *t, json_t *req)
{
	struct pod *p;
	json_t *resp;

	if (!(handoff_server_handoff_str_field(req, "containerId") && handoff_server_handoff_str_field(req, "ifname")) && !handoff_server_handoff_str_field(req, "uid"))
		return handoff_error("check needs \"containerId\" and \"ifname\" (or \"uid\")");
	p = handoff_server_find_req_pod(t, req);
	if (p && !p->listening)
		return handoff_error("pod %s/%s is known but has no listeners (see the warren-tunnel log)",
				     p->namespace, p->name);
	resp = json_pack("{s:b,s:b}", "ok", 1, "known", p != NULL);
	if (resp && p && handoff_mode_put(resp, &p->mode) < 0) {
		json_decref(resp);
		resp = NULL;
	}
	return resp;
}

static json_t *handoff_server_op_status(struct tunnel *t)
{
	const char *reason;
	bool ready = tunnel_ready(t, &reason);

	return json_pack("{s:b,s:b,s:s}", "ok", 1, "ready", ready, "reason", reason);
}

static json_t *handoff_server_op_gc(struct tunnel *t, json_t *req)
{
	json_t *valid = json_object_get(req, "valid"), *v;
	struct pod *p, *next;
	size_t i, removed = 0;

	if (!json_is_array(valid))
		return handoff_error("gc needs \"valid\": [{\"containerId\", \"ifname\"}, ...]");
	json_array_foreach(valid, i, v) {
		if (!json_is_string(json_object_get(v, "containerId")) ||
		    !json_is_string(json_object_get(v, "ifname")))
			return handoff_error("gc: entry %zu of \"valid\" needs string \"containerId\" and \"ifname\"", i);
	}
	for (p = t->pods; p; p = next) {
		bool keep = false;

		next = p->next;
		json_array_foreach(valid, i, v) {
			if (!strcmp(json_string_value(json_object_get(v, "containerId")), p->container_id) &&
			    !strcmp(json_string_value(json_object_get(v, "ifname")), p->ifname)) {
				keep = true;
				break;
			}
		}
		if (!keep) {
			handoff_server_drop_pod(t, p, "not in the runtime's valid attachments (gc)");
			removed++;
		}
	}
	return json_pack("{s:b,s:I}", "ok", 1, "removed", (json_int_t)removed);
}

/* *wait in: the request may wait for the model; out: it must (NULL). */
static json_t *handoff_server_dispatch_op(struct hclient *c, json_t *req, const char *op, int *pfd, bool *wait)
{
	struct tunnel *t = c->t;
	bool may_wait = *wait;

	*wait = false;
	if (c->refused_uid >= 0)
		return handoff_error("permission denied: only root (uid 0) may use the warren-tunnel handoff socket, you are uid %ld",
				     c->refused_uid);
	if (!op)
		return handoff_error("request has no \"op\"");
	if (t->draining && strcmp(op, "status"))
		return handoff_error("warren-tunnel is stopping (draining after SIGTERM); try again: its successor serves this socket once started");
	if (strcmp(op, "add") && *pfd >= 0)
		return handoff_error("\"%s\" must not carry a file descriptor (only \"add\" does)", op);
	*wait = may_wait;
	if (!strcmp(op, "query"))
		return handoff_server_op_query(t, req, wait);
	if (!strcmp(op, "add"))
		return handoff_server_op_add(t, req, pfd, wait);
	*wait = false;
	if (!strcmp(op, "del"))
		return handoff_server_op_del(t, req);
	if (!strcmp(op, "check"))
		return handoff_server_op_check(t, req);
	if (!strcmp(op, "status"))
		return handoff_server_op_status(t);
	if (!strcmp(op, "gc"))
		return handoff_server_op_gc(t, req);
	return handoff_error("unknown op \"%s\" (query, add, del, check, status, gc)", op);
}

static json_t *handoff_server_dispatch(struct hclient *c, json_t *req, const char *op, int *pfd, bool *wait)
{
	json_t *resp = handoff_server_dispatch_op(c, req, op, pfd, wait);

	if (*wait)
		return NULL;
	/* Before the answer: once the plugin returns, the kubelet may probe. */
	host_probe_flush(c->t);
	return resp;
}

json_t *handoff_server_local(struct tunnel *t, json_t *req, int *pfd)
{
	struct hclient c = { .magic = CLIENT_MAGIC, .t = t, .fd = -1, .refused_uid = -1 };
	bool wait = false; /* the caller acts on the model in use: no waiting */

	json_t *resp = handoff_server_dispatch(&c, req, json_string_value(json_object_get(req, "op")), pfd, &wait);

	keeper_flush(t);
	return resp;
}

/* Requests that change or inspect the pod registry wait for adoption; a
 * request that will be refused anyway is answered at once. */
static bool handoff_server_must_hold(const struct hclient *c, const char *op, int pfd)
{
	if (c->t->adopted || c->refused_uid >= 0 || !op)
		return false;
	if (!strcmp(op, "add"))
		return true;
	return pfd < 0 && (!strcmp(op, "del") || !strcmp(op, "check") || !strcmp(op, "gc"));
}

/* Answers (when resp), then frees c with its request and fd. */
static void handoff_server_finish(struct hclient *c, const char *op, json_t *resp)
{
	if (resp) {
		if (!json_is_true(json_object_get(resp, "ok")))
			log_warn("handoff %s refused: %s", op ? op : "?",
				 json_string_value(json_object_get(resp, "error")));
		metrics_plugin_request(c->t, op, json_is_true(json_object_get(resp, "ok")));
		handoff_server_reply(c->fd, resp);
	}
	keeper_flush(c->t);
	handoff_server_client_free(c);
}

static void handoff_server_model_wait_timeout(struct loop *l, void *ctx);

/* Parks c (its request and fd with it) until the model knows its pod. */
static void handoff_server_model_wait(struct hclient *c, json_t *req, int pfd, const char *op)
{
	struct tunnel *t = c->t;

	c->req = req;
	c->pfd = pfd;
	c->waiting = true;
	if (!c->wait_armed) { /* parked again after a model change: same deadline */
		if (c->timer) /* the no-request timer */
			loop_timer_cancel(t->loop, c->timer);
		c->timer = loop_timer_add(t->loop, MODEL_WAIT_MS, handoff_server_model_wait_timeout, c);
		c->wait_armed = true;
		log_info("handoff %s for pod %s/%s waits (at most %d ms) for the mesh model to know the pod",
			 op, json_string_value(json_object_get(req, "namespace")),
			 json_string_value(json_object_get(req, "name")), MODEL_WAIT_MS);
	}
	if (loop_mod(t->loop, c->fd, EPOLLRDHUP) < 0)
		log_debug("cannot watch a waiting handoff client for hang-up; its request will still be answered");
	c->next = t->model_wait;
	t->model_wait = c;
}

/* Answers req (owned, with pfd) or parks it; c is answered and freed, or
 * parked. */
static void handoff_server_serve(struct hclient *c, json_t *req, const char *op, int pfd, bool may_wait)
{
	bool wait = may_wait;
	json_t *resp = handoff_server_dispatch(c, req, op, &pfd, &wait);

	if (wait) {
		handoff_server_model_wait(c, req, pfd, op);
		return;
	}
	if (pfd >= 0)
		close(pfd);
	handoff_server_finish(c, op, resp);
	json_decref(req);
}

static void handoff_server_model_wait_timeout(struct loop *l, void *ctx)
{
	struct hclient *c = ctx;
	json_t *req;
	int pfd;

	CHECK_OBJ(c, CLIENT_MAGIC);
	c->timer = NULL;
	handoff_server_unwait(c);
	req = c->req;
	pfd = c->pfd;
	c->req = NULL;
	c->pfd = -1;
	handoff_server_serve(c, req, json_string_value(json_object_get(req, "op")), pfd, false);
}

void handoff_server_model_changed(struct tunnel *t)
{
	struct hclient *list = t->model_wait, *c, *next;

	/* Detach the list first: handoff_server_serve() may park a client again. */
	t->model_wait = NULL;
	for (c = list; c; c = next) {
		json_t *req = c->req;
		int pfd = c->pfd;

		next = c->next;
		c->next = NULL;
		c->waiting = false;
		c->req = NULL;
		c->pfd = -1;
		handoff_server_serve(c, req, json_string_value(json_object_get(req, "op")), pfd, true);
	}
}

static void handoff_server_hold(struct hclient *c, json_t *req, int pfd, const char *op)
{
	struct tunnel *t = c->t;

	c->req = req;
	c->pfd = pfd;
	c->held = true;
	if (c->timer) {
		loop_timer_cancel(t->loop, c->timer);
		c->timer = NULL;
	}
	/* From now on any event means the client hung up (or broke the
	 * one-request protocol): handoff_server_client_cb drops it. */
	if (loop_mod(t->loop, c->fd, EPOLLRDHUP) < 0)
		log_debug("cannot watch a held handoff client for hang-up; its request will still be answered");
	if (t->held_tail)
		t->held_tail->next = c;
	else
		t->held = c;
	t->held_tail = c;
	log_info("handoff %s held until adoption of the recorded pods is complete (%s)", op,
		 state_adopt_progress(t));
}

static void handoff_server_client_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct hclient *c = ctx;
	json_t *req = NULL, *resp = NULL;
	const char *op = NULL;
	char err[256] = "";
	int pfd = -1, ret;

	CHECK_OBJ(c, CLIENT_MAGIC);
	if (c->held || c->waiting) {
		log_warn("handoff client went away while its %s was held for %s; dropped unprocessed",
			 json_string_value(json_object_get(c->req, "op")),
			 c->held ? "adoption" : "the mesh model");
		handoff_server_client_free(c);
		return;
	}
	ret = handoff_recv(fd, &req, &pfd, err, sizeof(err));
	if (ret == -EAGAIN || ret == -EWOULDBLOCK)
		return;
	if (ret == -ECONNRESET)
		goto out;
	if (ret < 0) {
		log_warn("bad handoff request: %s", err);
		resp = handoff_error("bad request: %s", err);
		goto out;
	}
	op = json_string_value(json_object_get(req, "op"));
	if (handoff_server_must_hold(c, op, pfd)) {
		handoff_server_hold(c, req, pfd, op);
		return;
	}
	handoff_server_serve(c, req, op, pfd, true);
	return;
out:
	if (pfd >= 0)
		close(pfd);
	handoff_server_finish(c, op, resp);
	json_decref(req);
}

static bool handoff_server_peer_gone(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLRDHUP };

	return poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

void handoff_server_resume(struct tunnel *t)
{
	struct hclient *c;

	while ((c = t->held)) {
		const char *op = json_string_value(json_object_get(c->req, "op"));
		json_t *req = c->req;
		int pfd = c->pfd;

		handoff_server_unhold(c);
		if (handoff_server_peer_gone(c->fd)) {
			log_warn("handoff client went away while its %s was held for adoption; dropped unprocessed",
				 op);
			handoff_server_finish(c, op, NULL);
			continue;
		}
		c->req = NULL;
		c->pfd = -1;
		handoff_server_serve(c, req, op, pfd, true);
	}
}

static void handoff_server_client_timeout(struct loop *l, void *ctx)
{
	struct hclient *c = ctx;

	CHECK_OBJ(c, CLIENT_MAGIC);
	c->timer = NULL;
	log_warn("handoff client sent no request within %d ms; closing it", CLIENT_TIMEOUT_MS);
	handoff_server_client_free(c);
}

static void handoff_server_accept_resume(struct tunnel *t)
{
	if (t->handoff_pause) {
		loop_timer_cancel(t->loop, t->handoff_pause);
		t->handoff_pause = NULL;
	}
	if (t->handoff_fd >= 0)
		loop_mod(t->loop, t->handoff_fd, EPOLLIN);
}

static void handoff_server_accept_pause_done(struct loop *l, void *ctx)
{
	struct tunnel *t = ctx;

	CHECK_OBJ(t, TUNNEL_MAGIC);
	t->handoff_pause = NULL;
	handoff_server_accept_resume(t);
}

/* EMFILE & co: the client stays queued and the socket readable; stop
 * polling it until a timer or a client's close (handoff_server_client_free) frees fds. */
static void handoff_server_accept_pause(struct tunnel *t, int err)
{
	uint64_t now = loop_now_ms();

	metrics_accept_paused(t, "handoff");
	if (!t->handoff_warned_ms || now - t->handoff_warned_ms >= ACCEPT_WARN_EVERY_MS) {
		t->handoff_warned_ms = now;
		log_warn("handoff accept failed: %s; pausing accepts for %d ms", strerror(err),
			 ACCEPT_PAUSE_MS);
	}
	if (t->handoff_pause || loop_mod(t->loop, t->handoff_fd, 0) < 0)
		return;
	t->handoff_pause = loop_timer_add(t->loop, ACCEPT_PAUSE_MS, handoff_server_accept_pause_done, t);
	if (!t->handoff_pause)
		loop_mod(t->loop, t->handoff_fd, EPOLLIN);
}

static void handoff_server_accept_cb(struct loop *l, int lfd, uint32_t events, void *ctx)
{
	struct tunnel *t = ctx;

	CHECK_OBJ(t, TUNNEL_MAGIC);
	for (int i = 0; i < 16; i++) {
		struct ucred cred = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
		socklen_t len = sizeof(cred);
		struct hclient *c;
		int fd;

		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EINTR)
				handoff_server_accept_pause(t, errno);
			return;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		*c = (struct hclient){ .magic = CLIENT_MAGIC, .t = t, .fd = fd, .refused_uid = -1, .pfd = -1 };
		/* A non-root client still gets its request read and an error
		 * answer: closing with its request unread would reset the
		 * connection before it could read why. */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0) {
			log_warn("handoff client pid %d uid %d refused: only root may talk to warren-tunnel",
				 (int)cred.pid, (int)cred.uid);
			c->refused_uid = (long)cred.uid;
		}
		if (loop_add(t->loop, fd, EPOLLIN, handoff_server_client_cb, c) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->timer = loop_timer_add(t->loop, CLIENT_TIMEOUT_MS, handoff_server_client_timeout, c);
	}
}

int handoff_server_start(struct tunnel *t)
{
	int fd, ret;

	fd = handoff_listen(t->conf->plugin_socket);
	if (fd < 0) {
		log_error("cannot listen on the plugin socket %s: %s", t->conf->plugin_socket,
			  strerror(-fd));
		return fd;
	}
	ret = loop_add(t->loop, fd, EPOLLIN, handoff_server_accept_cb, t);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	t->handoff_fd = fd;
	log_info("handoff socket %s listening", t->conf->plugin_socket);
	return 0;
}

void handoff_server_stop(struct tunnel *t)
{
	while (t->held)
		handoff_server_client_free(t->held);
	if (t->handoff_pause) {
		loop_timer_cancel(t->loop, t->handoff_pause);
		t->handoff_pause = NULL;
	}
	while (t->model_wait)
		handoff_server_client_free(t->model_wait);
	if (t->handoff_fd < 0)
		return;
	loop_del(t->loop, t->handoff_fd);
	close(t->handoff_fd);
	t->handoff_fd = -1;
}
