/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helper: `inpodctl apply|remove|check|present NETNS_PATH [outbound]
 * [reroute=IF,...]`. Runs the matching inpod_* call on the netns at
 * NETNS_PATH (apply and check in the shape of struct inpod_mode: "outbound"
 * leaves inbound capture out, "reroute=" lists virtual interfaces), prints the
 * error text on failure (stderr) and exits 0 on success, 1 on failure.
 * `present` prints "yes" (exit 0) or "no" (exit 1).
 *
 * The eBPF mode: `inpodctl apply|remove|check|present NETNS_PATH
 * ebpf=BPFDIR,KEY[,CIDR...]` runs the ebpf_capture_* call instead (KEY: the
 * container ID naming the pins, CIDRs: the pod's addresses), and
 * `inpodctl serve NETNS_PATH ebpf=BPFDIR,KEY` stands in for the tunnel: it
 * opens [::]:15001 (transparent) and [::]:15006 in the netns, puts them
 * into the pod's map and answers each connection with "hello-<port>
 * orig=<local address>" (the original destination, as the tunnel reads it)
 * until killed.
 *
 * `inpodctl pool BPFDIR` tops up BPFDIR's pool of spare programs as the
 * tunnel's keeper does (netlink/ebpf_pool.h) and prints how many it made.
 * With INPODCTL_TIME=1 in the environment, apply prints the microseconds
 * its inpod_apply / ebpf_capture_apply call took (stdout: "apply_us N"),
 * for measuring the capture step alone, one process per apply as the
 * plugin runs it (docs/performance.md).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "netlink/ebpf_pool.h"
#include "netlink/inpod.h"
#include "netlink/inpod_ebpf.h"
#include "netlink/netns.h"

struct inpodctl_ebpf {
	char dir[256], key[128];
	const char *cidrs[8];
	size_t n;
	char buf[512];
};

/* "BPFDIR,KEY[,CIDR...]" */
static int inpodctl_ebpf_parse(struct inpodctl_ebpf *e, const char *arg)
{
	char *tok, *save = NULL;
	int i = 0;

	snprintf(e->buf, sizeof(e->buf), "%s", arg);
	for (tok = strtok_r(e->buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save), i++) {
		if (i == 0)
			snprintf(e->dir, sizeof(e->dir), "%s", tok);
		else if (i == 1)
			snprintf(e->key, sizeof(e->key), "%s", tok);
		else if (e->n < 8)
			e->cidrs[e->n++] = tok;
		else
			return -1;
	}
	return i >= 2 ? 0 : -1;
}

static int inpodctl_listen(int nsfd, int port, bool transparent)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
	int fd = netns_socket(nsfd, AF_INET6, SOCK_STREAM, 0), one = 1, zero = 0, mark = 0x539;

	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0 || /* replies: main table */
	    (transparent && setsockopt(fd, IPPROTO_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0) ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		perror("inpodctl: listen");
		close(fd);
		return -1;
	}
	return fd;
}

/* The tunnel's part, for tests: listeners in the map, each connection
 * answered with its port and its local address. */
static int inpodctl_serve(int nsfd, const struct inpodctl_ebpf *e)
{
	struct pollfd p[2];
	int ports[2] = { 15001, 15006 };
	char err[256];

	p[0].fd = inpodctl_listen(nsfd, ports[0], true);
	p[1].fd = inpodctl_listen(nsfd, ports[1], false);
	if (p[0].fd < 0 || p[1].fd < 0)
		return -1;
	if (ebpf_capture_publish(e->dir, e->key, p[0].fd, p[1].fd, err, sizeof(err)) < 0) {
		fprintf(stderr, "inpodctl: serve: %s\n", err);
		return -1;
	}
	printf("serving\n");
	fflush(stdout);
	p[0].events = p[1].events = POLLIN;
	for (;;) {
		if (poll(p, 2, -1) < 0)
			return -1;
		for (int i = 0; i < 2; i++) {
			struct sockaddr_in6 l;
			socklen_t len = sizeof(l);
			char ip[INET6_ADDRSTRLEN], line[128], *v4;
			int c, n;

			if (!(p[i].revents & POLLIN))
				continue;
			c = accept(p[i].fd, NULL, NULL);
			if (c < 0)
				continue;
			if (getsockname(c, (struct sockaddr *)&l, &len) == 0 &&
			    inet_ntop(AF_INET6, &l.sin6_addr, ip, sizeof(ip))) {
				v4 = strncmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.') ? ip + 7 : NULL;
				n = v4 ? snprintf(line, sizeof(line), "hello-%d orig=%s:%u\n", ports[i], v4, ntohs(l.sin6_port))
				       : snprintf(line, sizeof(line), "hello-%d orig=[%s]:%u\n", ports[i], ip,
						  ntohs(l.sin6_port));
				if (write(c, line, (size_t)n) < 0)
					perror("inpodctl: write");
			}
			close(c);
		}
	}
}

int main(int argc, char **argv)
{
	char err[512] = "";
	struct inpod_mode mode;
	struct inpodctl_ebpf eb = { .n = 0 };
	struct ebpf_pod_addrs addrs;
	bool ebpf = false;
	const char *cmd;
	int fd, ret;

	struct timespec t0, t1;

	if (argc == 3 && !strcmp(argv[1], "pool")) {
		ret = ebpf_pool_fill(argv[2], err, sizeof(err));
		if (ret < 0) {
			fprintf(stderr, "inpodctl: pool: %s\n", err);
			return 1;
		}
		printf("%d\n", ret);
		return 0;
	}
	if (argc < 3)
		goto usage;
	inpod_mode_init(&mode);
	for (int i = 3; i < argc; i++) {
		if (!strncmp(argv[i], "ebpf=", 5) && inpodctl_ebpf_parse(&eb, argv[i] + 5) == 0)
			ebpf = true;
		else if (!strcmp(argv[i], "outbound"))
			mode.capture_inbound = false;
		else if (!strncmp(argv[i], "reroute=", 8) &&
			 inpod_mode_parse_reroute(&mode, argv[i] + 8, err, sizeof(err)) == 0)
			;
		else
			goto usage;
	}
	cmd = argv[1];
	fd = netns_open(argv[2]);
	if (fd < 0) {
		fprintf(stderr, "inpodctl: cannot open network namespace %s: %s\n", argv[2],
			strerror(-fd));
		return 1;
	}
	if (ebpf && !strcmp(cmd, "serve")) {
		ret = inpodctl_serve(fd, &eb);
		close(fd);
		return 1;
	} else if (ebpf && !strcmp(cmd, "apply")) {
		ret = ebpf_addrs_parse(eb.cidrs, eb.n, &addrs, err, sizeof(err));
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (ret == 0)
			ret = ebpf_capture_apply(fd, eb.dir, eb.key, &addrs, err, sizeof(err));
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} else if (ebpf && !strcmp(cmd, "remove")) {
		ret = ebpf_capture_remove(fd, eb.dir, eb.key, err, sizeof(err));
	} else if (ebpf && !strcmp(cmd, "check")) {
		ret = ebpf_capture_check(fd, eb.dir, eb.key, err, sizeof(err));
	} else if (ebpf && !strcmp(cmd, "present")) {
		ret = ebpf_capture_present(fd, eb.dir, eb.key);
		close(fd);
		if (ret < 0) {
			fprintf(stderr, "inpodctl: present: %s\n", strerror(-ret));
			return 1;
		}
		printf("%s\n", ret ? "yes" : "no");
		return ret ? 0 : 1;
	} else if (!strcmp(cmd, "apply")) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		ret = inpod_apply(fd, &mode, err, sizeof(err));
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} else if (!strcmp(cmd, "remove")) {
		ret = inpod_remove(fd, err, sizeof(err));
	} else if (!strcmp(cmd, "check")) {
		ret = inpod_check(fd, &mode, err, sizeof(err));
	} else if (!strcmp(cmd, "present")) {
		ret = inpod_present(fd);
		close(fd);
		if (ret < 0) {
			fprintf(stderr, "inpodctl: present: %s\n", strerror(-ret));
			return 1;
		}
		printf("%s\n", ret ? "yes" : "no");
		return ret ? 0 : 1;
	} else {
		fprintf(stderr, "inpodctl: unknown command %s\n", cmd);
		close(fd);
		return 1;
	}
	close(fd);
	if (ret < 0) {
		fprintf(stderr, "inpodctl: %s: %s\n", cmd, *err ? err : strerror(-ret));
		return 1;
	}
	if (!strcmp(cmd, "apply") && getenv("INPODCTL_TIME"))
		printf("apply_us %ld\n", (long)((t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000));
	return 0;
usage:
	fprintf(stderr,
		"usage: %s apply|remove|check|present NETNS_PATH [outbound] [reroute=IF,...] | [ebpf=BPFDIR,KEY[,CIDR...]]\n"
		"       %s serve NETNS_PATH ebpf=BPFDIR,KEY\n"
		"       %s pool BPFDIR%s%s\n",
		argv[0], argv[0], argv[0], *err ? ": " : "", err);
	return 1;
}
