/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Network namespace handles. Switching is scoped and fail-hard: every
 * helper that enters a netns restores the caller's netns before returning,
 * and aborts the process if that restore fails (we never continue in the
 * wrong namespace). Sockets keep the netns they were created in, so the
 * usual pattern is netns_socket(): enter, socket(), restore.
 * Not thread-safe against other threads' setns on the same thread (setns
 * is per-thread, so each thread is independent).
 */
#ifndef WARREN_NETNS_H
#define WARREN_NETNS_H

#include <stdint.h>
#include <sys/types.h>

/* Open a netns by path (/var/run/netns/x, /proc/PID/ns/net). Returns an
 * O_RDONLY|O_CLOEXEC fd or -errno (-ENOENT when gone). -EINVAL when the
 * path is not a network namespace. */
int netns_open(const char *path);

/* Is fd a network namespace? 0 yes, -EINVAL no, -errno on error. */
int netns_check_fd(int fd);

/* Identity of a netns (device and inode of the nsfs file). */
int netns_identity(int fd, uint64_t *dev, uint64_t *ino);

/* Create a socket inside the netns fd. Returns the socket fd or -errno.
 * netns_fd < 0 means "current netns". */
int netns_socket(int netns_fd, int domain, int type, int protocol);

/* Up to n sockets inside the netns fd with one setns round trip (a caller
 * keeping spares avoids two setns per connection). Fills fds[0..ret-1];
 * returns how many were made (>= 1) or -errno when none could be. */
int netns_sockets(int netns_fd, int domain, int type, int protocol, int *fds, unsigned n);

/* Scoped switch for work that needs more than socket(): saves the current
 * netns into *saved and enters target. Returns 0 or -errno (nothing
 * changed on error). netns_leave() restores and closes *saved; it aborts
 * if the restore fails. */
int netns_enter(int target_fd, int *saved);
void netns_leave(int *saved);

/* Write val to a per-netns sysctl (path under /proc/sys/net) inside
 * target's netns. 0 or -errno. */
int netns_sysctl_write(int target_fd, const char *path, const char *val);

#endif
