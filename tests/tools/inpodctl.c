/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helper: `inpodctl apply|remove|check|present NETNS_PATH [outbound]`.
 * Runs the matching inpod_* call on the netns at NETNS_PATH ("outbound":
 * apply or check the rule set without inbound capture), prints the
 * error text on failure (stderr) and exits 0 on success, 1 on failure.
 * `present` prints "yes" (exit 0) or "no" (exit 1).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "netlink/inpod.h"
#include "netlink/netns.h"

int main(int argc, char **argv)
{
	char err[512] = "";
	const char *cmd;
	bool capture_inbound;
	int fd, ret;

	if (argc != 3 && !(argc == 4 && !strcmp(argv[3], "outbound"))) {
		fprintf(stderr, "usage: %s apply|remove|check|present NETNS_PATH [outbound]\n", argv[0]);
		return 1;
	}
	capture_inbound = argc == 3;
	cmd = argv[1];
	fd = netns_open(argv[2]);
	if (fd < 0) {
		fprintf(stderr, "inpodctl: cannot open network namespace %s: %s\n", argv[2],
			strerror(-fd));
		return 1;
	}
	if (!strcmp(cmd, "apply")) {
		ret = inpod_apply(fd, capture_inbound, err, sizeof(err));
	} else if (!strcmp(cmd, "remove")) {
		ret = inpod_remove(fd, err, sizeof(err));
	} else if (!strcmp(cmd, "check")) {
		ret = inpod_check(fd, capture_inbound, err, sizeof(err));
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
	return 0;
}
