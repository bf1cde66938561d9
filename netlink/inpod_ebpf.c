/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The eBPF capture mode (contract in inpod_ebpf.h): the skeleton of
 * bpf/capture.bpf.c, pinned per pod in bpffs, plus the pod's policy
 * routing through route.c.
 */
#include "netlink/inpod_ebpf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "bpf/capture.h"
#include "bpf/capture.skel.h"
#include "conf/errbuf.h"
#include "conf/log.h"
#include "conf/warren.h"
#include "netlink/ebpf_pool.h"
#include "netlink/netns.h"
#include "netlink/nl.h"
#include "netlink/route.h"

#define EBPF_BTF_PATH "/sys/kernel/btf/vmlinux"

static int ebpf_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	if (n && line[n - 1] == '\n')
		line[n - 1] = '\0';
	log_debug("libbpf: %s", line);
	return 0;
}

static int ebpf_path(char *buf, size_t len, const char *dir, const char *key, const char *leaf)
{
	int n;

	/* CNI container IDs are [a-zA-Z0-9][a-zA-Z0-9_.-]*; the plugin
	 * validated it, the tunnel got it from the plugin. */
	if (key && (!*key || strchr(key, '/') || !strcmp(key, ".") || !strcmp(key, "..")))
		return -EINVAL;
	if (!key)
		n = snprintf(buf, len, "%s/warren", dir);
	else if (!leaf)
		n = snprintf(buf, len, "%s/warren/%s", dir, key);
	else
		n = snprintf(buf, len, "%s/warren/%s/%s", dir, key, leaf);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int ebpf_addrs_parse(const char *const *cidrs, size_t n, struct ebpf_pod_addrs *a, char *err,
		     size_t errlen)
{
	memset(a, 0, sizeof(*a));
	for (size_t i = 0; i < n; i++) {
		char ip[INET6_ADDRSTRLEN + 1];
		const char *slash = strchr(cidrs[i], '/');
		size_t len = slash ? (size_t)(slash - cidrs[i]) : strlen(cidrs[i]);
		unsigned char buf[16];

		if (len >= sizeof(ip))
			goto bad;
		memcpy(ip, cidrs[i], len);
		ip[len] = '\0';
		if (inet_pton(AF_INET, ip, buf) == 1) {
			if (a->n4 == CAPTURE_MAX_ADDRS)
				goto big;
			memcpy(&a->ip4[a->n4++], buf, 4);
		} else if (inet_pton(AF_INET6, ip, buf) == 1) {
			if (a->n6 == CAPTURE_MAX_ADDRS)
				goto big;
			memcpy(a->ip6[a->n6++], buf, 16);
		} else {
			goto bad;
		}
		continue;
bad:
		errbuf_set(err, errlen, "\"%.64s\" is not an IP address or CIDR", cidrs[i]);
		return -EINVAL;
big:
		errbuf_set(err, errlen, "more than %d addresses of one family", CAPTURE_MAX_ADDRS);
		return -E2BIG;
	}
	return 0;
}

int ebpf_capture_supported(const char *dir, char *err, size_t errlen)
{
	struct statfs fs;

	if (access(EBPF_BTF_PATH, R_OK) < 0) {
		errbuf_set(err, errlen,
			   "the kernel has no BTF (%s: %s); the eBPF capture mode needs a kernel built with CONFIG_DEBUG_INFO_BTF, or use redirect \"nftables\"",
			   EBPF_BTF_PATH, strerror(errno));
		return -ENOTSUP;
	}
	if (statfs(dir, &fs) < 0 || fs.f_type != BPF_FS_MAGIC) {
		errbuf_set(err, errlen,
			   "no bpffs mounted at %s (the plugin's bpfDir); mount it (mount -t bpf bpf %s) before enrolling pods with redirect \"ebpf\"",
			   dir, dir);
		return -ENOTSUP;
	}
	return 0;
}

static const void *ebpf_routing_src(int family, const struct ebpf_pod_addrs *a)
{
	if (family == AF_INET)
		return a->n4 ? (const void *)&a->ip4[0] : NULL;
	return a->n6 ? (const void *)a->ip6[0] : NULL;
}

/* The local route and the rules of each family in one netlink exchange:
 * 0, or the first error (the caller then goes one message at a time). */
static int ebpf_routing_batch(struct nl_sock *rt, const struct ebpf_pod_addrs *a, int v6)
{
	static const int fams[] = { AF_INET, AF_INET6 };
	char buf[2 * (1 + ROUTE_EBPF_RULES) * ROUTE_MSG_BUFSZ];
	struct route_rule rules[ROUTE_EBPF_RULES];
	size_t len = 0;
	int n;

	for (size_t f = 0; f < (v6 ? 2u : 1u); f++) {
		size_t nr = route_ebpf_rules(fams[f], rules);

		n = route_build_local_src(buf + len, sizeof(buf) - len, fams[f], ebpf_routing_src(fams[f], a),
					  nl_seq(rt, 1));
		if (n < 0)
			return n;
		len += (size_t)n;
		for (size_t i = 0; i < nr; i++) {
			n = route_build_rule_spec(buf + len, sizeof(buf) - len, RTM_NEWRULE, fams[f], &rules[i],
						  nl_seq(rt, 1));
			if (n < 0)
				return n;
			len += (size_t)n;
		}
	}
	return nl_talk(rt, buf, len, 0, NULL, NULL, NULL, 0, NULL);
}

static int ebpf_routing(int netns_fd, const struct ebpf_pod_addrs *a, bool add, char *err,
			size_t errlen)
{
	static const int fams[] = { AF_INET, AF_INET6 };
	struct nl_sock rt = { 0 };
	struct route_rule rules[ROUTE_EBPF_RULES];
	int ret, first = 0, v6, saved = -1;
	char e[384];

	/* One visit to the pod's netns for the socket and both sysctls. */
	ret = netns_enter(netns_fd, &saved);
	if (ret < 0) {
		errbuf_set(err, errlen, "cannot enter the pod netns: %s", strerror(-ret));
		return ret;
	}
	ret = nl_open(&rt, NETLINK_ROUTE, -1);
	if (ret < 0) {
		netns_leave(&saved);
		errbuf_set(err, errlen, "cannot open a route netlink socket in the pod netns: %s",
			   strerror(-ret));
		return ret;
	}
	v6 = add ? route_ipv6_enabled(-1) : 1;
	ret = route_accept_local(-1, add);
	netns_leave(&saved);
	if (ret < 0 && add) {
		errbuf_set(err, errlen, "cannot set net.ipv4.conf.all.accept_local in the pod netns: %s",
			   strerror(-ret));
		goto out;
	}
	if (ret < 0)
		log_debug("cannot reset net.ipv4.conf.all.accept_local in the pod netns");
	/* The common case, nothing there yet: every message in one
	 * exchange. Any error (a rule already there is one: the rules are
	 * exclusive) falls back to one message at a time below, which
	 * tolerates what is already in place and names what failed. */
	if (add && ebpf_routing_batch(&rt, a, v6) == 0) {
		ret = 0;
		goto out;
	}
	for (size_t f = 0; f < (v6 ? 2u : 1u); f++) {
		size_t n = route_ebpf_rules(fams[f], rules);

		if (add) {
			ret = route_local_add_src(&rt, fams[f], ebpf_routing_src(fams[f], a), err, errlen);
			for (size_t i = 0; ret == 0 && i < n; i++)
				ret = route_spec_add(&rt, fams[f], &rules[i], NULL, err, errlen);
			if (ret < 0)
				goto out;
			continue;
		}
		/* Remove: keep going, report the first error. */
		for (size_t i = 0; i < n; i++) {
			ret = route_spec_del(&rt, fams[f], &rules[i], e, sizeof(e));
			errbuf_keep_first(&first, ret, err, errlen, e);
		}
		ret = route_local_del(&rt, fams[f], e, sizeof(e));
		errbuf_keep_first(&first, ret, err, errlen, e);
	}
	ret = first;
out:
	nl_close(&rt);
	return ret;
}

static int ebpf_unpin(const char *dir, const char *key, char *err, size_t errlen)
{
	/* link and lis: the pod's layout; prog and pod: what a claimed spare
	 * brings until the ADD drops them (an ADD that died in between) */
	static const char *const leaves[] = { "link", EBPF_POOL_LIS, EBPF_POOL_PROG, EBPF_POOL_POD };
	char path[256], pod[256];
	int fd, ret = 0;

	if (ebpf_path(path, sizeof(path), dir, key, "link") < 0 || ebpf_path(pod, sizeof(pod), dir, key, NULL) < 0) {
		errbuf_set(err, errlen, "container ID \"%.64s\" cannot name a bpffs directory", key);
		return -EINVAL;
	}
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		/* Detach now, not when the last reference goes: a process
		 * holding the link (bpftool) must not keep the capture. */
		if (bpf_link_detach(fd) < 0 && errno != EINVAL && errno != ENOLINK)
			log_warn("detaching the eBPF link of %s: %s", key, strerror(errno));
		close(fd);
	}
	for (size_t i = 0; i < ARRAY_SIZE(leaves); i++) {
		ebpf_path(path, sizeof(path), dir, key, leaves[i]);
		if (unlink(path) < 0 && errno != ENOENT && !ret) {
			ret = -errno;
			errbuf_set(err, errlen, "cannot unpin %s: %s", path, strerror(errno));
		}
	}
	if (rmdir(pod) < 0 && errno != ENOENT && !ret) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot remove %s: %s", pod, strerror(errno));
	}
	return ret;
}

/* The pod's addresses into the program's map warren_pod. */
static int ebpf_pod_addrs_put(int map_fd, const struct ebpf_pod_addrs *a, char *err, size_t errlen)
{
	const uint32_t one = 1;

	for (size_t i = 0; i < a->n4 + a->n6; i++) {
		struct capture_addr k = { .family = i < a->n4 ? AF_INET : AF_INET6 };

		if (i < a->n4)
			memcpy(k.addr, &a->ip4[i], 4);
		else
			memcpy(k.addr, a->ip6[i - a->n4], 16);
		if (bpf_map_update_elem(map_fd, &k, &one, BPF_ANY) < 0) {
			int e = errno;

			errbuf_set(err, errlen, "cannot write the pod's addresses into the eBPF map warren_pod: %s",
				   strerror(e));
			return -e;
		}
	}
	return 0;
}

static int ebpf_load_attach(int netns_fd, const char *dir, const char *key, const struct ebpf_pod_addrs *a, char *err,
			    size_t errlen)
{
	struct capture_bpf *skel = NULL;
	struct bpf_link *link = NULL;
	char path[256];
	int ret;

	libbpf_set_print(ebpf_libbpf_print);
	if ((ebpf_path(path, sizeof(path), dir, NULL, NULL) == 0 && mkdir(path, 0700) < 0 && errno != EEXIST) ||
	    (ebpf_path(path, sizeof(path), dir, key, NULL) == 0 && mkdir(path, 0700) < 0 && errno != EEXIST)) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot create the bpffs directory %s: %s", path, strerror(errno));
		return ret;
	}
	skel = capture_bpf__open();
	if (!skel) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot open the eBPF capture program: %s", strerror(errno));
		goto out;
	}
	ret = capture_bpf__load(skel);
	if (ret < 0) {
		errbuf_set(err, errlen,
			   "the kernel refused the eBPF program " CAPTURE_PROG_NAME " (sk_lookup, needs Linux 5.17 or later with BPF and CAP_BPF/CAP_NET_ADMIN): %s",
			   strerror(-ret));
		goto out;
	}
	/* Before the attach: the program never runs without them. */
	ret = ebpf_pod_addrs_put(bpf_map__fd(skel->maps.warren_pod), a, err, errlen);
	if (ret < 0)
		goto out;
	ebpf_path(path, sizeof(path), dir, key, "lis");
	ret = bpf_map__pin(skel->maps.warren_lis, path);
	if (ret < 0) {
		errbuf_set(err, errlen, "cannot pin the listener map at %s: %s", path, strerror(-ret));
		goto out;
	}
	link = bpf_program__attach_netns(skel->progs.warren_capture, netns_fd);
	if (!link) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot attach the eBPF program " CAPTURE_PROG_NAME " to the pod netns: %s",
			   strerror(errno));
		goto out;
	}
	ebpf_path(path, sizeof(path), dir, key, "link");
	ret = bpf_link__pin(link, path);
	if (ret < 0) {
		errbuf_set(err, errlen, "cannot pin the eBPF link at %s: %s", path, strerror(-ret));
		goto out;
	}
	/* Pinned: closing our fd below leaves the program attached. */
	bpf_link__disconnect(link);
	ret = 0;
out:
	bpf_link__destroy(link);
	capture_bpf__destroy(skel);
	return ret;
}

/* A spare from the pool (netlink/ebpf_pool.h), with thin calls only (no
 * object opened, so no verifier run and no feature probe): claimed into
 * the pod's directory, its address map filled, attached and the link
 * pinned, then the spare's pins that the pod's layout does not keep
 * dropped. 1 attached, 0 no spare, -errno (the caller removes what is
 * there: a claimed spare is never put back). */
static int ebpf_attach_spare(int netns_fd, const char *dir, const char *key, const struct ebpf_pod_addrs *a,
			     char *err, size_t errlen)
{
	char prog_pin[256], pod_pin[256], link_pin[256];
	int prog = -1, pod = -1, link = -1, ret;

	ret = ebpf_pool_claim(dir, key);
	if (ret <= 0) {
		if (ret < 0)
			errbuf_set(err, errlen, "cannot claim a spare eBPF program: %s", strerror(-ret));
		return ret;
	}
	ebpf_path(prog_pin, sizeof(prog_pin), dir, key, EBPF_POOL_PROG);
	ebpf_path(pod_pin, sizeof(pod_pin), dir, key, EBPF_POOL_POD);
	ebpf_path(link_pin, sizeof(link_pin), dir, key, "link");
	prog = bpf_obj_get(prog_pin);
	pod = prog < 0 ? -1 : bpf_obj_get(pod_pin);
	if (pod < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot open the claimed spare's %s: %s", prog < 0 ? prog_pin : pod_pin,
			   strerror(errno));
		goto out;
	}
	/* Before the attach: the program never runs without them. */
	ret = ebpf_pod_addrs_put(pod, a, err, errlen);
	if (ret < 0)
		goto out;
	link = bpf_link_create(prog, netns_fd, BPF_SK_LOOKUP, NULL);
	if (link < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot attach the eBPF program " CAPTURE_PROG_NAME " to the pod netns: %s",
			   strerror(errno));
		goto out;
	}
	if (bpf_obj_pin(link, link_pin) < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot pin the eBPF link at %s: %s", link_pin, strerror(errno));
		goto out;
	}
	/* The link holds the program, the program its maps. */
	if (unlink(prog_pin) < 0 || unlink(pod_pin) < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot unpin the spare's %s or %s: %s", prog_pin, pod_pin, strerror(errno));
		goto out;
	}
	ret = 1;
out:
	if (link >= 0)
		close(link); /* pinned, or never attached once closed */
	if (pod >= 0)
		close(pod);
	if (prog >= 0)
		close(prog);
	return ret;
}

int ebpf_capture_apply(int netns_fd, const char *dir, const char *key, const struct ebpf_pod_addrs *a, char *err,
		       size_t errlen)
{
	char path[256], ignore[256];
	int ret;

	errbuf_set(err, errlen, "%s", "");
	if (!a->n4 && !a->n6) {
		errbuf_set(err, errlen, "the eBPF capture mode needs the pod's addresses, and prevResult lists none");
		return -EINVAL;
	}
	ret = ebpf_capture_supported(dir, err, errlen);
	if (ret < 0)
		return ret;
	if (ebpf_path(path, sizeof(path), dir, key, "lis") < 0) {
		errbuf_set(err, errlen, "container ID \"%.64s\" cannot name a bpffs directory", key);
		return -EINVAL;
	}
	/* Intact from a previous ADD: keep it, with the tunnel's listeners. */
	ret = ebpf_capture_present(netns_fd, dir, key);
	if (ret != 1 || access(path, F_OK) < 0) {
		ebpf_unpin(dir, key, ignore, sizeof(ignore));
		ret = ebpf_attach_spare(netns_fd, dir, key, a, err, errlen);
		if (ret < 0) {
			log_debug("eBPF capture of %s: the spare program failed (%s); removed, loading one", key, err);
			ebpf_unpin(dir, key, ignore, sizeof(ignore));
		} else if (ret == 0) {
			log_debug("eBPF capture of %s: no spare program of object %s in the pool; loading one", key,
				  ebpf_pool_hash());
		} else {
			log_debug("eBPF capture of %s: attached a spare program from the pool", key);
		}
		if (ret != 1) {
			ret = ebpf_load_attach(netns_fd, dir, key, a, err, errlen);
			if (ret < 0)
				goto out;
		}
	}
	ret = ebpf_routing(netns_fd, a, true, err, errlen);
out:
	if (ret < 0 && ebpf_capture_remove(netns_fd, dir, key, ignore, sizeof(ignore)) < 0)
		log_warn("rollback: %s", ignore);
	return ret;
}

int ebpf_capture_remove(int netns_fd, const char *dir, const char *key, char *err, size_t errlen)
{
	char e[384];
	int ret, first = 0;

	errbuf_set(err, errlen, "%s", "");
	if (netns_fd >= 0) {
		first = ebpf_routing(netns_fd, NULL, false, e, sizeof(e));
		if (first < 0)
			errbuf_set(err, errlen, "%s", e);
	}
	ret = ebpf_unpin(dir, key, e, sizeof(e));
	errbuf_keep_first(&first, ret, err, errlen, e);
	return first;
}

/* The pinned link's state: 1 attached to netns_fd's netns, 0 otherwise
 * (reason in err), -errno. */
static int ebpf_link_state(int netns_fd, const char *dir, const char *key, char *err, size_t errlen)
{
	struct bpf_link_info info;
	struct bpf_prog_info pinfo;
	uint32_t len = sizeof(info);
	uint64_t dev, ino;
	char path[256];
	int fd, pfd, ret;

	if (ebpf_path(path, sizeof(path), dir, key, "link") < 0)
		return -EINVAL;
	fd = bpf_obj_get(path);
	if (fd < 0) {
		ret = -errno;
		if (ret != -ENOENT)
			return ret;
		errbuf_set(err, errlen, "eBPF program " CAPTURE_PROG_NAME " (sk_lookup) is not attached: its link %s is not pinned",
			   path);
		return 0;
	}
	memset(&info, 0, sizeof(info));
	ret = bpf_obj_get_info_by_fd(fd, &info, &len);
	close(fd);
	if (ret < 0)
		return -errno;
	ret = netns_identity(netns_fd, &dev, &ino);
	if (ret < 0)
		return ret;
	if (info.type != BPF_LINK_TYPE_NETNS || info.netns.attach_type != BPF_SK_LOOKUP ||
	    info.netns.netns_ino != ino) {
		errbuf_set(err, errlen, "eBPF program " CAPTURE_PROG_NAME " (sk_lookup) is detached from the pod netns (link %s %s)",
			   path, info.netns.netns_ino ? "belongs to another netns" : "is defunct");
		return 0;
	}
	pfd = bpf_prog_get_fd_by_id(info.prog_id);
	if (pfd < 0)
		return -errno;
	memset(&pinfo, 0, sizeof(pinfo));
	len = sizeof(pinfo);
	ret = bpf_obj_get_info_by_fd(pfd, &pinfo, &len);
	close(pfd);
	if (ret < 0)
		return -errno;
	if (strcmp(pinfo.name, CAPTURE_PROG_NAME)) {
		errbuf_set(err, errlen, "eBPF program " CAPTURE_PROG_NAME " is not attached: link %s runs program \"%.16s\"",
			   path, pinfo.name);
		return 0;
	}
	return 1;
}

int ebpf_capture_present(int netns_fd, const char *dir, const char *key)
{
	char ignore[256];

	return ebpf_link_state(netns_fd, dir, key, ignore, sizeof(ignore));
}

int ebpf_capture_check(int netns_fd, const char *dir, const char *key, char *err, size_t errlen)
{
	static const int fams[] = { AF_INET, AF_INET6 };
	struct nl_sock rt = { 0 };
	struct route_rule rules[ROUTE_EBPF_RULES];
	char path[256];
	int ret, v6;

	errbuf_set(err, errlen, "%s", "");
	ret = ebpf_link_state(netns_fd, dir, key, err, errlen);
	if (ret < 0) {
		errbuf_set(err, errlen, "cannot inspect the eBPF link of the pod: %s", strerror(-ret));
		return ret;
	}
	if (ret == 0)
		return -ENOENT;
	ebpf_path(path, sizeof(path), dir, key, "lis");
	if (access(path, F_OK) < 0) {
		errbuf_set(err, errlen, "eBPF listener map %s is not pinned", path);
		return -ENOENT;
	}
	ret = nl_open(&rt, NETLINK_ROUTE, netns_fd);
	if (ret < 0) {
		errbuf_set(err, errlen, "cannot open a route netlink socket in the pod netns: %s",
			   strerror(-ret));
		return ret;
	}
	v6 = route_ipv6_enabled(netns_fd);
	for (size_t f = 0; f < (v6 > 0 ? 2u : 1u); f++) {
		size_t n = route_ebpf_rules(fams[f], rules);

		for (size_t i = 0; i < n; i++) {
			ret = route_spec_check(&rt, fams[f], &rules[i]);
			if (ret <= 0) {
				errbuf_set(err, errlen, "%s ip rule \"%s pref %u\" %s",
					   fams[f] == AF_INET ? "IPv4" : "IPv6", rules[i].text, rules[i].priority,
					   ret == 0 ? "missing" : strerror(-ret));
				ret = ret ? ret : -ENOENT;
				goto out;
			}
		}
		ret = route_local_check(&rt, fams[f]);
		if (ret <= 0) {
			errbuf_set(err, errlen, "%s route \"local default dev lo table %u\" %s",
				   fams[f] == AF_INET ? "IPv4" : "IPv6", ROUTE_TABLE_INPOD,
				   ret == 0 ? "missing" : strerror(-ret));
			ret = ret ? ret : -ENOENT;
			goto out;
		}
	}
	ret = 0;
out:
	nl_close(&rt);
	return ret;
}

int ebpf_capture_publish(const char *dir, const char *key, int fd_outbound, int fd_inbound, char *err, size_t errlen)
{
	const uint32_t keys[CAPTURE_N_KEYS] = { CAPTURE_KEY_OUTBOUND, CAPTURE_KEY_INBOUND };
	const uint64_t vals[CAPTURE_N_KEYS] = { (uint64_t)fd_outbound, (uint64_t)fd_inbound };
	char path[256];
	int fd, ret = 0;

	if (ebpf_path(path, sizeof(path), dir, key, "lis") < 0) {
		errbuf_set(err, errlen, "container ID \"%.64s\" cannot name a bpffs directory", key);
		return -EINVAL;
	}
	fd = bpf_obj_get(path);
	if (fd < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot open the pod's eBPF listener map %s: %s", path, strerror(errno));
		return ret;
	}
	for (int i = 0; i < CAPTURE_N_KEYS; i++) {
		if (bpf_map_update_elem(fd, &keys[i], &vals[i], BPF_ANY) < 0) {
			ret = -errno;
			errbuf_set(err, errlen, "cannot put listener %d into %s: %s", i, path, strerror(errno));
			break;
		}
	}
	close(fd);
	return ret;
}
