/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Re-adopting the pod of a state record that could not be read (state.c
 * moved it aside): without the record, the pod's netns is found again and
 * checked before anything listens in it.
 *
 * The model says who the pod is (by the uid in the record's file name):
 * its namespace, name, service account, node and IPs; it must be enrolled
 * and on this node. Its netns is looked for where a runtime keeps pods'
 * netns (STATE_NETNS_DIR) and, for a uid Kubernetes writes, in /proc (a
 * process in the pod's cgroup, as kube_enroll.c's scan). A candidate must
 * hold the pod's IP and, in the directory, be joined to our own netns by a
 * link (the pod's veth: another node's pod with the same IP is not ours);
 * exactly one netns may answer, held by no other pod, and it must carry
 * our nftables capture as a plugin programs it (inpod_check, with or
 * without inbound capture). Then it is adopted as after a restart: a good
 * record is written, the pod gets its certificate and listeners (once the
 * tunnel serves), and its traffic flows again over mTLS. The container id
 * is unknown ("readopted:<uid>"): the runtime's DEL finds the pod by uid.
 *
 * Anything else (no model yet: tried again when one loads; not in the
 * model; several or no candidate; no capture of ours, or an eBPF capture,
 * whose pins only the record names) leaves the pod as it is, failed
 * closed: captured, nobody listening, so its connections are refused. The
 * outcome is kept with the record's entry (GET /state_records, `warrenctl
 * pods`) and counted in warren_state_records_readopt_total. Main thread.
 */
#include "tunnel/state_readopt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conf/log.h"
#include "netlink/inpod.h"
#include "netlink/netns.h"
#include "netlink/pod_netns.h"
#include "tunnel/inpod_listen.h"
#include "tunnel/metrics.h"
#include "tunnel/mtls.h"
#include "tunnel/pods.h"
#include "tunnel/state.h"
#include "tunnel/tunnel.h"

#define STATE_NETNS_DIR "/var/run/netns"
#define READOPT_CID     "readopted:"

/* The capture the plugin would have programmed: with inbound capture or
 * without (no interface rerouted). 0 with *mode, or -errno with why. */
static int readopt_mode(int fd, struct inpod_mode *mode, char *why, size_t whylen)
{
	char err[256];
	int ret = inpod_present(fd);

	if (ret <= 0) {
		snprintf(why, whylen, ret == 0 ? "its netns carries no nftables capture of ours (an eBPF capture is named only by its record)"
					       : "cannot read its netns's nftables: %s", strerror(-ret));
		return ret == 0 ? -ENOENT : ret;
	}
	for (int inbound = 1; inbound >= 0; inbound--) {
		inpod_mode_init(mode);
		mode->capture_inbound = inbound;
		if (inpod_check(fd, mode, err, sizeof(err)) == 0)
			return 0;
	}
	snprintf(why, whylen, "the capture in its netns is not one the plugin programs: %s", err);
	return -EINVAL;
}

/* The pod's netns: exactly one candidate. fd or -errno with why. */
static int readopt_find(const struct mesh_pod *mp, char *path, size_t len, char *why,
			size_t whylen)
{
	char ppath[300];
	unsigned matches = 0;
	uint64_t dev, ino, pdev, pino;
	int self, fd, pfd;

	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0) {
		fd = -errno;
		snprintf(why, whylen, "cannot open our own netns: %s", strerror(-fd));
		return fd;
	}
	fd = pod_netns_find_dir(STATE_NETNS_DIR, self, mp->ips, mp->n_ips, path, len, &matches);
	close(self);
	if (fd == -EEXIST) {
		snprintf(why, whylen, "ambiguous: %u netns in %s hold its IP and are linked to this node",
			 matches, STATE_NETNS_DIR);
		return fd;
	}
	pfd = pod_netns_find("/proc", mp->uid, mp->ips, mp->n_ips, ppath, sizeof(ppath));
	if (fd < 0 && pfd < 0) {
		snprintf(why, whylen, "no netns holds its IP: none in %s linked to this node, no process of it in /proc",
			 STATE_NETNS_DIR);
		return -ENOENT;
	}
	if (fd >= 0 && pfd >= 0) {
		if (netns_identity(fd, &dev, &ino) < 0 || netns_identity(pfd, &pdev, &pino) < 0 ||
		    dev != pdev || ino != pino) {
			snprintf(why, whylen, "ambiguous: %.200s and %.200s (its process) are different netns", path, ppath);
			close(fd);
			close(pfd);
			return -EEXIST;
		}
		close(pfd);
		return fd;
	}
	if (fd < 0)
		snprintf(path, len, "%s", ppath);
	return fd >= 0 ? fd : pfd;
}

/* 0 adopted; -EAGAIN try again with a model; else -errno. why filled. */
static int readopt_one(struct tunnel *t, const char *uid, char *why, size_t whylen)
{
	const struct mesh_pod *mp;
	const char *r = NULL;
	struct inpod_mode mode;
	char path[300], cid[160], ip[64], err[512];
	uint64_t dev, ino;
	json_t *ips = NULL;
	struct pod *p;
	int fd, ret;

	if (!tunnel_model(t)) {
		snprintf(why, whylen, "waiting for the mesh model");
		return -EAGAIN;
	}
	mp = mesh_find_pod_by_uid(tunnel_model(t), uid);
	if (!mp)
		r = "no pod of that uid in the mesh model";
	else if (mp->host_network || mp->finished || !mp->n_ips)
		r = "the model's pod has no IP of its own (host network, finished, or none yet)";
	else if (t->conf->node && mp->node[0] && strcmp(mp->node, t->conf->node))
		r = "the model puts the pod on another node";
	else if (!mesh_pod_enrolled(tunnel_model(t), mp->namespace, mp->name, NULL))
		r = "the model does not enroll the pod";
	else if (pod_find_uid(t, uid))
		r = "a pod of that uid is held already";
	if (r) {
		snprintf(why, whylen, "%s", r);
		return -ENOENT;
	}
	fd = readopt_find(mp, path, sizeof(path), why, whylen);
	if (fd < 0)
		return fd;
	ret = netns_identity(fd, &dev, &ino);
	for (const struct pod *q = t->pods; !ret && q; q = q->next)
		if (q->netns_dev == dev && q->netns_ino == ino) {
			snprintf(why, whylen, "its netns %.200s is pod %.100s/%.100s's", path, q->namespace, q->name);
			ret = -EEXIST;
		}
	if (!ret)
		ret = readopt_mode(fd, &mode, why, whylen);
	ips = ret ? NULL : json_array();
	for (size_t i = 0; ips && i < mp->n_ips; i++)
		json_array_append_new(ips, json_string(mesh_ip_str(&mp->ips[i], ip, sizeof(ip))));
	if (!ret && !ips) {
		snprintf(why, whylen, "out of memory");
		ret = -ENOMEM;
	}
	if (ret) {
		close(fd);
		return ret;
	}
	snprintf(cid, sizeof(cid), READOPT_CID "%s", uid);
	p = pod_new(t, uid, cid, "eth0", mp->namespace, mp->name, mp->service_account, path, fd, ips);
	json_decref(ips);
	if (!p) {
		close(fd);
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	p->netns_dev = dev;
	p->netns_ino = ino;
	p->mode = mode;
	if (state_write(t, p, err, sizeof(err)) < 0) {
		snprintf(why, whylen, "found in %.200s, but writing its record failed: %.200s", path, err);
		pod_free(p);
		return -EIO;
	}
	mtls_pod_added(p); /* a failure is logged; its HBONE is refused */
	snprintf(why, whylen, "re-adopted from netns %.300s", path);
	if (tunnel_serving(t, NULL) && !t->draining && !mtls_pod_cert_pending(p) &&
	    pod_listen(p, err, sizeof(err)) < 0)
		log_error("re-adopted pod %s/%s but %s; will retry", p->namespace, p->name, err);
	return 0;
}

void state_readopt_bad(struct tunnel *t)
{
	json_t *o;
	size_t i;

	if (!t->bad_records || !t->adopted || t->draining)
		return;
	json_array_foreach(t->bad_records, i, o) {
		const char *uid = json_string_value(json_object_get(o, "uid"));
		char why[512];
		int ret;

		if (!uid || !json_is_true(json_object_get(o, "pending")))
			continue;
		ret = readopt_one(t, uid, why, sizeof(why));
		json_object_set_new(o, "readopt", json_string(why));
		if (ret == -EAGAIN)
			continue;
		json_object_set_new(o, "pending", json_false());
		json_object_set_new(o, "adopted", json_boolean(ret == 0));
		metrics_state_record_readopt(t, ret == 0);
		if (ret == 0)
			log_info("state record %s: pod of uid %s %s; its record is written anew", json_string_value(json_object_get(o, "record")), uid, why);
		else
			log_error("state record %s: pod of uid %s not re-adopted: %s; if it still runs, it stays captured and its connections are refused until it is re-created",
				  json_string_value(json_object_get(o, "record")), uid, why);
	}
}
