/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The eBPF capture mode (docs/ebpf.md): per enrolled pod, the sk_lookup
 * program of bpf/capture.bpf.c (libbpf skeleton, CO-RE) attached to the
 * pod's netns through a bpf_link, plus two ip rules and a local route in
 * the pod (netlink/route.h, route_ebpf_rules).
 *
 * bpffs layout under the bpffs mount dir (the plugin's bpfDir, by default
 * /sys/fs/bpf), one directory per pod sandbox, named by its CNI container
 * ID (always present and unique per sandbox, unlike the pod UID):
 *   DIR/warren/<containerId>/link  the netns link (keeps the program
 *        attached after the plugin exits, across tunnel restarts)
 *   DIR/warren/<containerId>/lis   the SOCKMAP the tunnel fills with its
 *        15001 / 15006 listeners (keys in bpf/capture.h)
 * (and, between a spare's claim and the end of its ADD, the spare's prog
 * and pod: DEL and rollback remove them too).
 *
 * All functions return 0 or -errno with err naming what is wrong. Not
 * thread-safe with each other for the same pod; no global state.
 */
#ifndef WARREN_INPOD_EBPF_H
#define WARREN_INPOD_EBPF_H

#include <stddef.h>
#include <stdint.h>


/* The pod's own addresses (prevResult), network byte order. */
struct ebpf_pod_addrs {
	size_t n4, n6;
	uint32_t ip4[4];
	unsigned char ip6[4][16];
};

/* Parse CIDR strings ("10.0.0.2/24", "fd00::2/64") into a: 0, or -EINVAL
 * naming the bad one, or -E2BIG beyond 4 per family. */
int ebpf_addrs_parse(const char *const *cidrs, size_t n, struct ebpf_pod_addrs *a, char *err,
		     size_t errlen);

/* Does the kernel have what the mode needs (BTF, a bpffs mounted at dir)? 0 or -ENOTSUP
 * naming the missing piece. */
int ebpf_capture_supported(const char *dir, char *err, size_t errlen);

/* Attach a program to the pod in netns_fd and pin it, then program the
 * rules and route. The program is a spare from the pool (ebpf_pool.h)
 * when one of this build's object is there, else loaded here (the
 * debug log says which). All-or-nothing: on failure everything of this pod
 * is removed. A re-apply keeps an intact attachment (and the listeners
 * the tunnel put in its map). key: the container ID. */
int ebpf_capture_apply(int netns_fd, const char *dir, const char *key, const struct ebpf_pod_addrs *a, char *err,
		       size_t errlen);

/* Detach and unpin everything of the pod, and remove the rules and route
 * when netns_fd >= 0. Idempotent; keeps going after an error and reports
 * the first. */
int ebpf_capture_remove(int netns_fd, const char *dir, const char *key, char *err, size_t errlen);

/* Everything in place: the pinned link attached to this very netns with
 * program CAPTURE_PROG_NAME, the listener map pinned, the rules and the
 * route. -ENOENT with err naming the first missing piece. */
int ebpf_capture_check(int netns_fd, const char *dir, const char *key, char *err, size_t errlen);

/* Is the pod's link pinned and attached to netns_fd? 1, 0, -errno. For
 * the tunnel's re-adoption. */
int ebpf_capture_present(int netns_fd, const char *dir, const char *key);

/* The tunnel: put its listeners into the pod's map (replacing what a
 * previous tunnel left). */
int ebpf_capture_publish(const char *dir, const char *key, int fd_outbound, int fd_inbound, char *err,
			 size_t errlen);

#endif
