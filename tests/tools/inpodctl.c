/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helper: `inpodctl apply|remove|check|present NETNS_PATH [outbound]
 * [reroute=IF,...]`. Runs the matching inpod_* call on the netns at
 * NETNS_PATH (apply and check in the shape of struct inpod_mode: "outbound"
 * leaves inbound capture out, "reroute=" lists virtual interfaces), prints the
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
	struct inpod_mode mode;
	const char *cmd;
	int fd, ret;

	if (argc < 3)
		goto usage;
	inpod_mode_init(&mode);
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "outbound"))
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
	if (!strcmp(cmd, "apply")) {
		ret = inpod_apply(fd, &mode, err, sizeof(err));
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
	return 0;
usage:
	fprintf(stderr, "usage: %s apply|remove|check|present NETNS_PATH [outbound] [reroute=IF,...]%s%s\n",
		argv[0], *err ? ": " : "", err);
	return 1;
}
