/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node's host table for kubelet probes (netlink/nft_host.h), kept in
 * step with the pod registry. The main thread owns all of it.
 *
 * pod_new() and pod_free() mark the table stale; host_probe_flush() syncs
 * it at the points where the registry has settled: after each handoff
 * request (before an add is acknowledged, so the first probe of a new pod
 * already leaves from the probe address) and when adoption is done. A
 * shutdown frees every pod but never flushes, so the table outlives the
 * tunnel: while it restarts, probes still reach the apps directly and the
 * kubelet does not restart healthy pods. hostProbeSnat: false deletes it.
 *
 * The kernel's round trips run while the workers run (they read none of
 * this), like the state records' writes. A failed sync is logged (once per distinct
 * error) and retried at the next change, and on a timer (backing off to
 * HOST_RETRY_MAX_MS) until one succeeds: the table left by a previous
 * start may match more than this one would (another uid, the uid alone),
 * and must not outlive a transient failure when no pod comes or goes. It
 * never fails an add: without the rule a probe is captured like any
 * plaintext client, which is safe, and only refused under STRICT mTLS.
 */
#include "tunnel/host_probe.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/netlink.h>
#include <mntent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/log.h"
#include "conf/objcheck.h"
#include "conf/warren.h"
#include "netlink/nft_host.h"
#include "netlink/nl.h"
#include "tunnel/loop.h"
#include "tunnel/pods.h"
#include "tunnel/tunnel.h"

/* How often an unknown kubelet UID is looked for again. */
#define KUBELET_RESCAN_MS 10000
/* A failed sync is retried after 1 s, then twice as late, up to this. */
#define HOST_RETRY_MIN_MS 1000
#define HOST_RETRY_MAX_MS 30000

struct host_probe {
	struct nl_sock nl;
	bool open;
	long long uid;          /* -1: not known */
	char uid_from[96];      /* "config", "kubelet (pid 123)" */
	uint64_t cgroup_id;     /* the kubelet's cgroup v2; 0: matched by uid alone */
	uint32_t cgroup_level;
	char cgroup[256];       /* its path, or why the uid alone is used */
	uint64_t last_scan_ms;
	bool scan_logged;
	bool synced;            /* the last sync or add succeeded */
	long long synced_uid;   /* the rule's uid at the last good sync */
	uint64_t synced_cgroup; /* and cgroup */
	uint64_t syncs, failures;
	char last_error[512];   /* of the last sync; "" after a good one */
	struct loop_timer *retry; /* armed while the last sync failed */
	uint64_t retry_ms;        /* its next delay */
};

/* Reads up to len-1 bytes of dir/pid/name into buf (NUL-terminated).
 * Returns the byte count or -1. */
static ssize_t host_probe_read_proc(int dirfd, const char *pid, const char *name, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", pid, name);
	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

static bool host_probe_cmdline_mentions(const char *buf, ssize_t n, const char *word)
{
	/* NUL-separated arguments: search each */
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
		if (strstr(buf + i, word))
			return true;
	return false;
}

int kubelet_uid_find(const char *proc, long long *uid, long *pid, char *err, size_t errlen)
{
	char comm[64], buf[4096];
	struct dirent *de;
	int ret = -ENOENT;
	DIR *d;

	d = opendir(proc);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		const char *line;
		long long u;
		ssize_t n;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		n = host_probe_read_proc(dirfd(d), de->d_name, "comm", comm, sizeof(comm));
		if (n <= 0)
			continue;
		comm[strcspn(comm, "\n")] = '\0';
		if (!strcmp(comm, "kubelet")) {
			/* comm is settable by anyone; the kubelet's command line
			 * names it too (Istio's check) */
			n = host_probe_read_proc(dirfd(d), de->d_name, "cmdline", buf, sizeof(buf));
			if (n <= 0 || !host_probe_cmdline_mentions(buf, n, "kubelet"))
				continue;
		} else if (strcmp(comm, "kubelite") && strcmp(comm, "k3s")) {
			continue;
		}
		if (host_probe_read_proc(dirfd(d), de->d_name, "status", buf, sizeof(buf)) <= 0)
			continue;
		line = strstr(buf, "\nUid:");
		if (!line || sscanf(line + 5, "%lld", &u) != 1 || u < 0)
			continue;
		if (ret == 0 && u != *uid) {
			/* Any user can start a process that looks like this, and its
			 * TCP would then pass as probes: with two owners, trust none. */
			snprintf(err, errlen, "processes that look like the kubelet run as uid %lld (pid %ld) and uid %lld (pid %s)",
				 *uid, *pid, u, de->d_name);
			ret = -EEXIST;
			break;
		}
		if (ret == 0)
			continue;
		*uid = u;
		*pid = strtol(de->d_name, NULL, 10);
		ret = 0;
	}
	closedir(d);
	return ret;
}

/* Whether pid's parent is ppid (the kubelet's short-lived helpers share
 * its cgroup). */
static bool host_probe_child_of(int dirfd, const char *pid, long ppid)
{
	char buf[4096];
	const char *line;
	long pp;

	if (host_probe_read_proc(dirfd, pid, "status", buf, sizeof(buf)) <= 0)
		return false;
	line = strstr(buf, "\nPPid:");
	return line && sscanf(line + 6, "%ld", &pp) == 1 && pp == ppid;
}

int kubelet_cgroup_find(const char *proc, const char *cgroot, long pid, char *path,
			size_t pathlen, uint64_t *id, uint32_t *level, char *err, size_t errlen)
{
	char pidstr[24], buf[4096], dir[PATH_MAX + 16];
	const char *line;
	struct stat st;
	int dfd, ret = 0;
	size_t n;
	FILE *f;

	dfd = open(proc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	snprintf(pidstr, sizeof(pidstr), "%ld", pid);
	/* cgroup v2 is the "0::" line; v1 hierarchies have other numbers */
	if (host_probe_read_proc(dfd, pidstr, "cgroup", buf + 1, sizeof(buf) - 1) <= 0) {
		snprintf(err, errlen, "cannot read %s/%ld/cgroup", proc, pid);
		ret = -ENOENT;
		goto out;
	}
	buf[0] = '\n';
	line = strstr(buf, "\n0::");
	if (!line || line[4] != '/') {
		snprintf(err, errlen, "process %ld has no cgroup v2", pid);
		ret = -ENOENT;
		goto out;
	}
	line += 4;
	n = strcspn(line, "\n");
	if (n >= pathlen || n >= PATH_MAX) {
		snprintf(err, errlen, "process %ld's cgroup path is too long", pid);
		ret = -ENAMETOOLONG;
		goto out;
	}
	memcpy(path, line, n);
	path[n] = '\0';
	if (!strcmp(path, "/")) {
		snprintf(err, errlen, "the kubelet (pid %ld) is in the root cgroup, with every other process", pid);
		ret = -EEXIST;
		goto out;
	}
	*level = 0;
	for (const char *c = path; *c; c++)
		*level += *c == '/' && c[1] && c[1] != '/';
	snprintf(dir, sizeof(dir), "%s%s", cgroot, path);
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "cgroup %s of the kubelet (pid %ld) not found under %s", path, pid, cgroot);
		ret = -ENOENT;
		goto out;
	}
	*id = (uint64_t)st.st_ino; /* the kernel's cgroup id, as nft takes it */
	snprintf(dir, sizeof(dir), "%s%s/cgroup.procs", cgroot, path);
	f = fopen(dir, "re");
	if (!f) {
		snprintf(err, errlen, "cannot read %s: %s", dir, strerror(errno));
		ret = -errno;
		goto out;
	}
	/* Any other process there could make connections that pass as probes. */
	while (ret == 0 && fgets(buf, sizeof(buf), f)) {
		long other = strtol(buf, NULL, 10);

		buf[strcspn(buf, "\n")] = '\0';
		if (other == pid || host_probe_child_of(dfd, buf, pid))
			continue;
		snprintf(err, errlen, "the kubelet's cgroup %s (pid %ld) also holds pid %ld", path, pid, other);
		ret = -EEXIST;
	}
	fclose(f);
out:
	close(dfd);
	return ret;
}

/* Where cgroup v2 is mounted as the kubelet (pid) sees it, reached
 * through its /proc/PID/root: the tunnel's own mounts may not have it
 * (a container, or `ip netns exec`, which mounts a fresh /sys). On a
 * hybrid node it is /sys/fs/cgroup/unified. 0 or -ENOENT. */
static int host_probe_cgroup2_root(long pid, char *buf, size_t len)
{
	struct mntent *m;
	char path[64];
	int ret = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/mounts", pid);
	f = setmntent(path, "re");
	if (!f)
		return -ENOENT;
	while ((m = getmntent(f)))
		if (!strcmp(m->mnt_type, "cgroup2")) {
			snprintf(buf, len, "/proc/%ld/root%s", pid, strcmp(m->mnt_dir, "/") ? m->mnt_dir : "");
			ret = 0;
			break;
		}
	endmntent(f);
	return ret;
}

/* The kubelet's cgroup, to match its sockets more narrowly than by uid.
 * pid <= 0: look for a kubelet process running as hp->uid. */
static void host_probe_resolve_cgroup(struct host_probe *hp, long pid)
{
	char err[512] = "", root[320], path[256];
	long long uid = -1;
	uint32_t level = 0;
	uint64_t id = 0;
	int ret;

	hp->cgroup_id = 0;
	if (pid <= 0) {
		ret = kubelet_uid_find("/proc", &uid, &pid, err, sizeof(err));
		if (ret < 0 || uid != hp->uid) {
			pid = 0;
			snprintf(err, sizeof(err), "no kubelet process of uid %lld found", hp->uid);
		}
	}
	if (pid > 0) {
		ret = host_probe_cgroup2_root(pid, root, sizeof(root));
		if (ret < 0)
			snprintf(err, sizeof(err), "cgroup v2 is not mounted where the kubelet (pid %ld) runs", pid);
		else
			ret = kubelet_cgroup_find("/proc", root, pid, path, sizeof(path), &id, &level, err,
						  sizeof(err));
		if (ret == 0) {
			hp->cgroup_id = id;
			hp->cgroup_level = level;
			snprintf(hp->cgroup, sizeof(hp->cgroup), "%s", path);
			log_info("host probe SNAT: only the sockets of uid %lld in the kubelet's cgroup %s (level %u, id %llu) leave from " PROBE_SNAT_IPV4,
				 hp->uid, path, level, (unsigned long long)id);
			return;
		}
	}
	snprintf(hp->cgroup, sizeof(hp->cgroup), "%s", err);
	if (hp->uid == 0)
		log_error("host probe SNAT: WARNING: the kubelet is matched by uid 0 alone (%s): every root process on the node and every host-network pod running as root reaches enrolled pods as " PROBE_SNAT_IPV4 ", past capture, STRICT mTLS and policy. Run the kubelet in a cgroup of its own (a systemd service is one) and restart the tunnel",
			  err);
	else
		log_warn("host probe SNAT: the kubelet is matched by uid %lld alone (%s): every process of that uid reaches enrolled pods as " PROBE_SNAT_IPV4 ". Run the kubelet in a cgroup of its own",
			 hp->uid, err);
}

static void host_probe_resolve_uid(struct host_probe *hp, const struct tunnel_conf *c)
{
	char err[256] = "";
	long pid = 0;
	int ret;

	if (hp->uid >= 0)
		return;
	if (c->kubelet_uid >= 0) {
		hp->uid = c->kubelet_uid;
		snprintf(hp->uid_from, sizeof(hp->uid_from), "config (kubeletUid)");
		host_probe_resolve_cgroup(hp, 0);
		return;
	}
	if (hp->last_scan_ms && loop_now_ms() - hp->last_scan_ms < KUBELET_RESCAN_MS)
		return;
	hp->last_scan_ms = loop_now_ms();
	ret = kubelet_uid_find("/proc", &hp->uid, &pid, err, sizeof(err));
	if (ret == 0) {
		snprintf(hp->uid_from, sizeof(hp->uid_from), "kubelet process (pid %ld)", pid);
		log_info("host probe SNAT: the kubelet runs as uid %lld (pid %ld)", hp->uid, pid);
		host_probe_resolve_cgroup(hp, pid);
		return;
	}
	hp->uid = -1;
	if (hp->scan_logged)
		return;
	hp->scan_logged = true;
	if (ret == -EEXIST)
		log_error("host probe SNAT: %s; kubelet probes are captured like any plaintext client. Set kubeletUid to the kubelet's",
			  err);
	else
		log_warn("host probe SNAT: no kubelet, kubelite or k3s process found (%s); kubelet probes to enrolled pods are captured like any plaintext client until one appears. Set kubeletUid if the kubelet runs under another name",
			 ret == -ENOENT ? "none in /proc" : strerror(-ret));
}

int host_probe_start(struct tunnel *t)
{
	struct host_probe *hp;
	char err[768];
	int ret;

	hp = calloc(1, sizeof(*hp));
	if (!hp)
		return -ENOMEM;
	hp->uid = -1;
	t->hp = hp;
	ret = nl_open(&hp->nl, NETLINK_NETFILTER, -1);
	if (ret < 0) {
		snprintf(hp->last_error, sizeof(hp->last_error), "cannot open a netfilter netlink socket: %s",
			 strerror(-ret));
		log_error("host probe SNAT: %s; kubelet probes to enrolled pods will be captured", hp->last_error);
		return 0;
	}
	hp->open = true;
	if (!t->conf->host_probe_snat) {
		if (nft_host_delete(&hp->nl, err, sizeof(err)) < 0)
			log_error("host probe SNAT is off (hostProbeSnat: false) but %s", err);
		else
			log_info("host probe SNAT is off (hostProbeSnat: false): table inet " NFT_HOST_TABLE " removed");
		return 0;
	}
	host_probe_resolve_uid(hp, t->conf);
	t->host_probe_stale = true; /* the first sync comes when adoption is done */
	return 0;
}

void host_probe_stop(struct tunnel *t)
{
	if (!t->hp)
		return;
	if (t->hp->retry)
		loop_timer_cancel(t->loop, t->hp->retry);
	nl_close(&t->hp->nl);
	free(t->hp);
	t->hp = NULL;
}

/* The pod's address without the prefix length ("10.0.0.2/24"). */
static bool host_probe_parse_pod_ip(const char *s, struct nft_host_elem *e)
{
	char buf[INET6_ADDRSTRLEN + 8];
	size_t n = strcspn(s, "/");

	if (n >= sizeof(buf))
		return false;
	struct mesh_ip ip;

	if (n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (mesh_ip_parse(buf, &ip) < 0)
		return false;
	e->family = ip.family;
	memset(e->addr, 0, sizeof(e->addr));
	memcpy(e->addr, &ip.addr, ip.family == AF_INET ? sizeof(ip.addr.v4) : sizeof(ip.addr.v6));
	return true;
}

/* The addresses of the pods (only those not in the table yet, when
 * only_new) into *out (the caller frees it): 0 or -ENOMEM. */
static int host_probe_collect(struct tunnel *t, bool only_new, struct nft_host_elem **out, size_t *nout)
{
	struct nft_host_elem *elems = NULL;
	size_t n = 0, cap = 0;

	for (const struct pod *p = t->pods; p; p = p->next)
		if (!only_new || !p->in_host_table)
			cap += p->n_ips;
	if (cap && !(elems = calloc(cap, sizeof(*elems))))
		return -ENOMEM;
	for (const struct pod *p = t->pods; p; p = p->next) {
		if (only_new && p->in_host_table)
			continue;
		for (size_t i = 0; i < p->n_ips; i++) {
			struct nft_host_elem e = { .comment = p->uid };
			bool dup = false;

			if (!host_probe_parse_pod_ip(p->ips[i], &e)) {
				log_debug("host probe SNAT: pod %s/%s: address \"%s\" skipped (not an IP)",
					  p->namespace, p->name, p->ips[i]);
				continue;
			}
			/* Two records may briefly share an address (a pod re-created
			 * before the old record is dropped): one element serves both. */
			for (size_t k = 0; k < n && !dup; k++)
				dup = elems[k].family == e.family && !memcmp(elems[k].addr, e.addr, 16);
			if (!dup)
				elems[n++] = e;
		}
	}
	*out = elems;
	*nout = n;
	return 0;
}

static void host_probe_mark_all(struct tunnel *t)
{
	for (struct pod *p = t->pods; p; p = p->next)
		p->in_host_table = true;
}

/* New pods only, with the add batch: 0, or -errno with err. */
static int host_probe_add_new(struct tunnel *t, char *err, size_t errlen)
{
	struct nft_host_elem *elems;
	struct nft_host_spec spec;
	size_t n;
	int ret;

	ret = host_probe_collect(t, true, &elems, &n);
	if (ret < 0)
		return ret;
	spec = (struct nft_host_spec){ .kubelet_uid = -1, .elems = elems, .n = n };
	/* elems point into the pods, which only this thread frees */
	ret = n ? nft_host_add(&t->hp->nl, &spec, err, errlen) : 0;
	free(elems);
	return ret;
}

/* The whole table: 0, or -errno with err. */
static int host_probe_sync_all(struct tunnel *t, char *err, size_t errlen)
{
	struct nft_host_elem *elems;
	struct nft_host_spec spec;
	size_t n;
	int ret;

	ret = host_probe_collect(t, false, &elems, &n);
	if (ret < 0) {
		snprintf(err, errlen, "out of memory");
		return ret;
	}
	spec = (struct nft_host_spec){ .kubelet_uid = t->hp->uid,
				       .kubelet_cgroup = t->hp->cgroup_id,
				       .kubelet_cgroup_level = t->hp->cgroup_level,
				       .elems = elems,
				       .n = n };
	ret = nft_host_sync(&t->hp->nl, &spec, err, errlen);
	free(elems);
	return ret;
}

static void host_probe_retry_cb(struct loop *l, void *ctx)
{
	struct tunnel *t = ctx;

	(void)l;
	CHECK_OBJ(t, TUNNEL_MAGIC);
	t->hp->retry = NULL;
	/* draining: the pods may be going, and the table stays as it is */
	if (!t->draining)
		host_probe_flush(t);
}

void host_probe_flush(struct tunnel *t)
{
	struct host_probe *hp = t->hp;
	char err[768] = "";
	int ret = -1;

	if (!t->host_probe_stale || !hp || !hp->open || !t->conf->host_probe_snat || !t->adopted)
		return;
	t->host_probe_stale = false;
	host_probe_resolve_uid(hp, t->conf);
	hp->syncs++;
	/* Only new pods since a good sync with the same rule: add them. */
	if (!t->host_probe_full && hp->synced && hp->synced_uid == hp->uid &&
	    hp->synced_cgroup == hp->cgroup_id) {
		ret = host_probe_add_new(t, err, sizeof(err));
		if (ret < 0)
			log_debug("host probe SNAT: adding the new pods' addresses failed (%s); syncing the whole table",
				  err);
	}
	if (ret < 0)
		ret = host_probe_sync_all(t, err, sizeof(err));
	if (ret < 0) {
		hp->failures++;
		hp->synced = false;
		t->host_probe_stale = t->host_probe_full = true; /* retried at the next change */
		if (strcmp(err, hp->last_error))
			log_error("host probe SNAT: %s", err);
		snprintf(hp->last_error, sizeof(hp->last_error), "%s", err);
		if (!hp->retry) {
			hp->retry_ms = hp->retry_ms ? hp->retry_ms * 2 : HOST_RETRY_MIN_MS;
			if (hp->retry_ms > HOST_RETRY_MAX_MS)
				hp->retry_ms = HOST_RETRY_MAX_MS;
			hp->retry = loop_timer_add(t->loop, hp->retry_ms, host_probe_retry_cb, t);
		}
		return;
	}
	if (hp->retry) {
		loop_timer_cancel(t->loop, hp->retry);
		hp->retry = NULL;
	}
	hp->retry_ms = 0;
	host_probe_mark_all(t);
	t->host_probe_full = false;
	hp->synced = true;
	hp->synced_uid = hp->uid;
	hp->synced_cgroup = hp->cgroup_id;
	if (hp->last_error[0])
		log_info("host probe SNAT: table inet " NFT_HOST_TABLE " is in step again");
	hp->last_error[0] = '\0';
}

json_t *host_probe_json(const struct tunnel *t)
{
	const struct host_probe *hp = t->hp;
	size_t n_addrs = 0;

	if (!hp)
		return json_null();
	for (const struct pod *p = t->pods; p; p = p->next)
		n_addrs += p->in_host_table ? p->n_ips : 0;
	return json_pack("{s:b,s:s,s:o,s:o,s:o,s:o,s:I,s:I,s:I,s:o}", "enabled",
			 t->conf->host_probe_snat && hp->open, "table", "inet " NFT_HOST_TABLE,
			 "kubeletUid", hp->uid >= 0 ? json_integer(hp->uid) : json_null(),
			 "kubeletUidFrom", hp->uid >= 0 ? json_string(hp->uid_from) : json_null(),
			 /* the cgroup path, or null with the reason the uid alone is matched */
			 "kubeletCgroup",
			 hp->uid >= 0 && hp->cgroup_id ? json_string(hp->cgroup) : json_null(),
			 "uidOnlyReason",
			 hp->uid >= 0 && !hp->cgroup_id ? json_string(hp->cgroup) : json_null(),
			 "addresses", (json_int_t)n_addrs, "syncs", (json_int_t)hp->syncs,
			 "failures", (json_int_t)hp->failures,
			 "lastError", hp->last_error[0] ? json_string(hp->last_error) : json_null());
}
