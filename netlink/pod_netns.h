/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Finding the network namespace of a running pod that warren-cni never
 * told the tunnel about (a pod that predates warren), as istio-cni does:
 * a process whose cgroup path (any hierarchy, cgroup v1 or v2) contains
 * the pod's UID, either spelling ("-" as the cgroupfs driver writes it,
 * "_" as the systemd driver does), whose netns holds one of the pod's IPs.
 * The IP check keeps a process of another pod, or a host-network one,
 * from being taken for it.
 *
 * Processes are tried in /proc order (ascending pids: the sandbox's pause
 * process, which lives as long as the pod, usually comes first). Each
 * netns is checked once. The scan reads every process's cgroup file: the
 * caller runs it only for pods it must enroll and has no netns for.
 * Not thread-safe in the sense of netlink/netns.h (it enters netns).
 */
#ifndef WARREN_POD_NETNS_H
#define WARREN_POD_NETNS_H

#include <stddef.h>

#include "model/mesh_types.h"

/* proc: the proc mount ("/proc"). On success returns an O_RDONLY|O_CLOEXEC
 * fd of the netns and writes "<proc>/<pid>/ns/net" into path (len bytes);
 * -ENOENT when no process matches, -EINVAL for a bad uid or no ips, else
 * -errno. */
int pod_netns_find(const char *proc, const char *uid, const struct mesh_ip *ips, size_t n_ips,
		   char *path, size_t len);

/* Is netns nsfd joined to netns peer_fd by a link (a veth whose other end
 * is in peer_fd, as a CNI plugin joins a pod to its node)? Asks nsfd
 * which id it gives peer_fd (RTM_GETNSID) and looks for a link of nsfd
 * with that IFLA_LINK_NETNSID. 1 yes, 0 no, -errno. */
int pod_netns_linked(int nsfd, int peer_fd);

/* The netns among dir's entries (a runtime's netns mounts, e.g.
 * /var/run/netns) that hold ips[0..n_ips) and are linked to peer_fd (the
 * node's netns): *matches counts them (each netns once). With exactly one,
 * returns its O_RDONLY|O_CLOEXEC fd and writes "<dir>/<entry>" into path;
 * -ENOENT with none, -EEXIST with several (ambiguous: nothing returned),
 * -EINVAL with no ips, else -errno. */
int pod_netns_find_dir(const char *dir, int peer_fd, const struct mesh_ip *ips, size_t n_ips,
		       char *path, size_t len, unsigned *matches);

#endif
