/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The /proc scan for a pod's netns (contract in netlink/pod_netns.h).
 */
#include "netlink/pod_netns.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/net_namespace.h>
#include <linux/rtnetlink.h>

#include "netlink/netns.h"
#include "netlink/nl.h"
#include "netlink/route.h"

#define PN_UID_MAX   64
#define PN_SEEN_MAX  256 /* netns already checked, per scan */
#define PN_CGROUP_MAX 8192

/* Is every character of a UID one Kubernetes writes (hex digits and "-")? */
static bool pn_uid_ok(const char *uid)
{
	size_t n = strlen(uid);

	if (n < 8 || n >= PN_UID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)uid[i]) && uid[i] != '-')
			return false;
	return true;
}

/* Does /proc/PID/cgroup name the UID (either spelling) in a path? */
static bool pn_cgroup_has(int pfd, const char *pid, const char *uid, const char *uid_)
{
	char file[300], buf[PN_CGROUP_MAX];
	ssize_t n;
	int fd;

	snprintf(file, sizeof(file), "%s/cgroup", pid);
	fd = openat(pfd, file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, uid) || strstr(buf, uid_);
}

static int pn_holds_ip(int nsfd, const struct mesh_ip *ips, size_t n_ips)
{
	struct nl_sock s = { 0 };
	int ret;

	ret = nl_open(&s, NETLINK_ROUTE, nsfd);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n_ips; i++) {
		ret = route_addr_check(&s, ips[i].family, &ips[i].addr);
		if (ret != 0)
			break;
	}
	nl_close(&s);
	return ret;
}

int pod_netns_find(const char *proc, const char *uid, const struct mesh_ip *ips, size_t n_ips,
		   char *path, size_t len)
{
	char uid_[PN_UID_MAX], nspath[300];
	uint64_t seen[PN_SEEN_MAX];
	size_t n_seen = 0;
	struct dirent *de;
	int ret = -ENOENT, pfd;
	DIR *d;

	if (!uid || !pn_uid_ok(uid) || !ips || !n_ips)
		return -EINVAL;
	snprintf(uid_, sizeof(uid_), "%s", uid);
	for (char *c = uid_; *c; c++)
		if (*c == '-')
			*c = '_';
	d = opendir(proc);
	if (!d)
		return -errno;
	pfd = dirfd(d);
	while ((de = readdir(d))) {
		uint64_t dev, ino;
		bool dup = false;
		int nsfd, r;

		if (!isdigit((unsigned char)de->d_name[0]) || !pn_cgroup_has(pfd, de->d_name, uid, uid_))
			continue;
		snprintf(nspath, sizeof(nspath), "%s/ns/net", de->d_name);
		nsfd = openat(pfd, nspath, O_RDONLY | O_CLOEXEC);
		if (nsfd < 0)
			continue; /* gone meanwhile, or a kernel thread */
		if (netns_check_fd(nsfd) < 0 || netns_identity(nsfd, &dev, &ino) < 0) {
			close(nsfd);
			continue;
		}
		for (size_t i = 0; i < n_seen; i++)
			dup |= seen[i] == ino;
		if (dup) {
			close(nsfd);
			continue;
		}
		if (n_seen < PN_SEEN_MAX)
			seen[n_seen++] = ino;
		r = pn_holds_ip(nsfd, ips, n_ips);
		if (r == 1) {
			if ((size_t)snprintf(path, len, "%s/%s", proc, nspath) >= len) {
				close(nsfd);
				ret = -ENAMETOOLONG;
				break;
			}
			ret = nsfd;
			break;
		}
		close(nsfd);
	}
	closedir(d);
	return ret;
}

struct pn_nsid {
	int32_t nsid;
	bool linked;
};

static int pn_nsid_cb(const struct nlmsghdr *nlh, void *data)
{
	struct pn_nsid *w = data;
	struct nlattr *a;

	if (nlh->nlmsg_type != RTM_NEWNSID)
		return MNL_CB_OK;
	mnl_attr_for_each(a, nlh, sizeof(struct rtgenmsg))
		if (mnl_attr_get_type(a) == NETNSA_NSID && mnl_attr_get_payload_len(a) >= 4)
			w->nsid = (int32_t)mnl_attr_get_u32(a);
	return MNL_CB_OK;
}

static int pn_link_cb(const struct nlmsghdr *nlh, void *data)
{
	struct pn_nsid *w = data;
	struct nlattr *a;

	if (nlh->nlmsg_type != RTM_NEWLINK)
		return MNL_CB_OK;
	mnl_attr_for_each(a, nlh, sizeof(struct ifinfomsg))
		if (mnl_attr_get_type(a) == IFLA_LINK_NETNSID && mnl_attr_get_payload_len(a) >= 4 &&
		    (int32_t)mnl_attr_get_u32(a) == w->nsid)
			w->linked = true;
	return MNL_CB_OK;
}

int pod_netns_linked(int nsfd, int peer_fd)
{
	char buf[256] = { 0 };
	struct pn_nsid w = { .nsid = -1 };
	struct nl_sock s = { 0 };
	struct nlmsghdr *nlh;
	struct rtgenmsg *g;
	struct ifinfomsg *ifi;
	int ret;

	ret = nl_open(&s, NETLINK_ROUTE, nsfd);
	if (ret < 0)
		return ret;
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETNSID;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = nl_seq(&s, 1);
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->rtgen_family = AF_UNSPEC;
	mnl_attr_put_u32(nlh, NETNSA_FD, (uint32_t)peer_fd);
	ret = nl_talk(&s, buf, nlh->nlmsg_len, 0, pn_nsid_cb, &w, NULL, 0, NULL);
	if (ret < 0 || w.nsid < 0) /* no id: nothing of nsfd points to peer_fd */
		goto out;
	memset(buf, 0, sizeof(buf));
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = nl_seq(&s, 1);
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ret = nl_talk(&s, buf, nlh->nlmsg_len, NL_TALK_DUMP, pn_link_cb, &w, NULL, 0, NULL);
out:
	nl_close(&s);
	return ret < 0 ? ret : w.linked;
}

int pod_netns_find_dir(const char *dir, int peer_fd, const struct mesh_ip *ips, size_t n_ips,
		       char *path, size_t len, unsigned *matches)
{
	uint64_t seen[PN_SEEN_MAX], found_ino = 0;
	size_t n_seen = 0;
	struct dirent *de;
	int found = -1, dfd;
	DIR *d;

	*matches = 0;
	if (!ips || !n_ips)
		return -EINVAL;
	d = opendir(dir);
	if (!d)
		return -errno;
	dfd = dirfd(d);
	while ((de = readdir(d))) {
		uint64_t dev, ino;
		bool dup = false;
		int nsfd;

		if (de->d_name[0] == '.')
			continue;
		nsfd = openat(dfd, de->d_name, O_RDONLY | O_CLOEXEC);
		if (nsfd < 0)
			continue;
		if (netns_check_fd(nsfd) < 0 || netns_identity(nsfd, &dev, &ino) < 0) {
			close(nsfd);
			continue;
		}
		for (size_t i = 0; i < n_seen; i++)
			dup |= seen[i] == ino;
		if (dup || (found >= 0 && ino == found_ino)) {
			close(nsfd);
			continue;
		}
		if (n_seen < PN_SEEN_MAX)
			seen[n_seen++] = ino;
		if (pn_holds_ip(nsfd, ips, n_ips) != 1 || pod_netns_linked(nsfd, peer_fd) != 1) {
			close(nsfd);
			continue;
		}
		(*matches)++;
		if (found >= 0) { /* a second one: keep counting, return none */
			close(nsfd);
			continue;
		}
		if ((size_t)snprintf(path, len, "%s/%s", dir, de->d_name) >= len) {
			close(nsfd);
			(*matches)--;
			continue;
		}
		found = nsfd;
		found_ino = ino;
	}
	closedir(d);
	if (*matches > 1) {
		if (found >= 0)
			close(found);
		return -EEXIST;
	}
	return found >= 0 ? found : -ENOENT;
}
