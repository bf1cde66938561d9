/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Network namespace handles (contract in netns.h). The saved netns is the
 * calling *thread's* (/proc/thread-self), because setns() is per thread
 * and /proc/self would name the thread-group leader's namespace.
 */
#include "netlink/netns.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/magic.h>
#include <linux/nsfs.h>

#include "conf/log.h"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

int netns_check_fd(int fd)
{
	struct statfs sfs;
	int type;

	if (fd < 0)
		return -EBADF;
	type = ioctl(fd, NS_GET_NSTYPE);
	if (type >= 0)
		return type == CLONE_NEWNET ? 0 : -EINVAL;
	if (errno != ENOTTY && errno != EINVAL)
		return -errno;
	/* Kernels before 4.11 lack NS_GET_NSTYPE: an nsfs file is the best
	 * we can tell; setns(CLONE_NEWNET) will still refuse other types. */
	if (fstatfs(fd, &sfs) < 0)
		return -errno;
	return sfs.f_type == NSFS_MAGIC ? 0 : -EINVAL;
}

int netns_open(const char *path)
{
	int fd, ret;

	if (!path || !*path)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = netns_check_fd(fd);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	return fd;
}

int netns_identity(int fd, uint64_t *dev, uint64_t *ino)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (dev)
		*dev = (uint64_t)st.st_dev;
	if (ino)
		*ino = (uint64_t)st.st_ino;
	return 0;
}

int netns_enter(int target_fd, int *saved)
{
	int cur;

	*saved = -1;
	cur = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (cur < 0)
		return -errno;
	if (setns(target_fd, CLONE_NEWNET) < 0) {
		int ret = -errno;

		close(cur);
		return ret;
	}
	*saved = cur;
	return 0;
}

void netns_leave(int *saved)
{
	if (!saved || *saved < 0)
		return;
	if (setns(*saved, CLONE_NEWNET) < 0) {
		/* Continuing would run the rest of the process against the
		 * pod's network: never acceptable. */
		log_error("cannot restore network namespace: %s; aborting", strerror(errno));
		abort();
	}
	close(*saved);
	*saved = -1;
}

int netns_sockets(int netns_fd, int domain, int type, int protocol, int *fds, unsigned n)
{
	int saved = -1, ret = 0;
	unsigned made = 0;

	assert(n > 0);
	if (netns_fd >= 0) {
		ret = netns_enter(netns_fd, &saved);
		if (ret < 0)
			return ret;
	}
	for (; made < n; made++) {
		fds[made] = socket(domain, type, protocol);
		if (fds[made] < 0) {
			ret = -errno;
			break;
		}
	}
	netns_leave(&saved);
	return made ? (int)made : ret;
}

int netns_socket(int netns_fd, int domain, int type, int protocol)
{
	int fd, ret = netns_sockets(netns_fd, domain, type, protocol, &fd, 1);

	return ret < 0 ? ret : fd;
}

int netns_sysctl_write(int target_fd, const char *path, const char *val)
{
	int saved = -1, fd, ret;
	size_t len = strlen(val);

	ret = netns_enter(target_fd, &saved);
	if (ret < 0)
		return ret;
	/* /proc/sys/net is the opener's netns: open it while inside */
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, len) != (ssize_t)len)
		ret = -errno;
	if (fd >= 0)
		close(fd);
	netns_leave(&saved);
	return ret;
}
