/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helper: `podnetnsctl PROC UID IP...` runs the /proc scan of
 * netlink/pod_netns.h and prints the netns path it found (exit 0), or the
 * error (stderr, exit 1).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "model/mesh_types.h"
#include "netlink/pod_netns.h"

int main(int argc, char **argv)
{
	struct mesh_ip ips[8];
	char path[300];
	int n = 0, fd;

	if (argc < 4 || argc - 3 > 8) {
		fprintf(stderr, "usage: podnetnsctl PROC UID IP... (up to 8)\n");
		return 2;
	}
	for (int i = 3; i < argc; i++) {
		if (mesh_ip_parse(argv[i], &ips[n++])) {
			fprintf(stderr, "%s: not an IP\n", argv[i]);
			return 2;
		}
	}
	fd = pod_netns_find(argv[1], argv[2], ips, (size_t)n, path, sizeof(path));
	if (fd < 0) {
		fprintf(stderr, "%s\n", strerror(-fd));
		return 1;
	}
	close(fd);
	printf("%s\n", path);
	return 0;
}
