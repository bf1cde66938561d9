/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handoffctl: a test client for the plugin <-> tunnel handoff socket.
 *   handoffctl SOCKET query NS NAME UID [CONTAINERID NETNS_PATH [IP...]]
 *        (with a container id: where the pod lives, as warren-cni's ADD sends)
 *   handoffctl SOCKET add UID NS NAME CONTAINERID NETNS_PATH [IP...]
 *        (opens NETNS_PATH and passes its fd; NETNS_PATH "-" passes none,
 *         any other file is passed as is so refusals can be tested)
 *   handoffctl SOCKET del CONTAINERID IFNAME
 *   handoffctl SOCKET check CONTAINERID IFNAME
 *   handoffctl SOCKET status
 *   handoffctl SOCKET gc [CONTAINERID:IFNAME ...]
 * Prints the JSON response on stdout; exit 0 when it says ok, 1 when not
 * (or on a transport error, printed on stderr), 2 on bad usage.
 * The interface name for add is "eth0" unless HANDOFFCTL_IFNAME is set;
 * HANDOFFCTL_CAPTURE_INBOUND (a JSON value, e.g. false) is sent as add's
 * "captureInbound".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/handoff.h"

static int usage(void)
{
	fprintf(stderr,
		"usage: handoffctl SOCKET query NS NAME UID [CONTAINERID NETNS_PATH [IP...]]\n"
		"       handoffctl SOCKET add UID NS NAME CONTAINERID NETNS_PATH|- [IP...]\n"
		"       handoffctl SOCKET del|check CONTAINERID IFNAME\n"
		"       handoffctl SOCKET status\n"
		"       handoffctl SOCKET gc [CONTAINERID:IFNAME ...]\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *sock, *op, *ifname = getenv("HANDOFFCTL_IFNAME");
	json_t *req = NULL, *resp = NULL;
	char err[512] = "";
	int fd = -1, ret, rc = 1;

	if (argc < 3)
		return usage();
	sock = argv[1];
	op = argv[2];
	if (!ifname)
		ifname = "eth0";
	if (!strcmp(op, "query") && (argc == 6 || argc >= 8)) {
		req = json_pack("{s:s,s:s,s:s,s:s}", "op", "query", "namespace", argv[3], "name", argv[4],
				"uid", argv[5]);
		if (req && argc >= 8) {
			json_t *ips = json_array();

			for (int i = 8; ips && i < argc; i++)
				json_array_append_new(ips, json_string(argv[i]));
			json_object_set_new(req, "containerId", json_string(argv[6]));
			json_object_set_new(req, "netns", json_string(argv[7]));
			json_object_set_new(req, "ifname", json_string(ifname));
			json_object_set_new(req, "ips", ips ? ips : json_array());
		}
	} else if (!strcmp(op, "add") && argc >= 8) {
		json_t *ips = json_array();

		for (int i = 8; i < argc; i++)
			json_array_append_new(ips, json_string(argv[i]));
		const char *capture = getenv("HANDOFFCTL_CAPTURE_INBOUND");

		req = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "op", "add", "uid", argv[3],
				"namespace", argv[4], "name", argv[5], "containerId", argv[6],
				"ifname", ifname, "netns", argv[7], "ips", ips);
		if (req && capture)
			json_object_set_new(req, "captureInbound",
					    json_loads(capture, JSON_DECODE_ANY, NULL));
		if (strcmp(argv[7], "-")) {
			fd = open(argv[7], O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				fprintf(stderr, "handoffctl: cannot open %s: %s\n", argv[7], strerror(errno));
				goto out;
			}
		}
	} else if ((!strcmp(op, "del") || !strcmp(op, "check")) && argc == 5) {
		req = json_pack("{s:s,s:s,s:s}", "op", op, "containerId", argv[3], "ifname", argv[4]);
	} else if (!strcmp(op, "status") && argc == 3) {
		req = json_pack("{s:s}", "op", "status");
	} else if (!strcmp(op, "gc")) {
		json_t *valid = json_array();

		for (int i = 3; i < argc; i++) {
			char *colon = strrchr(argv[i], ':');

			if (!colon) {
				json_decref(valid);
				return usage();
			}
			*colon = '\0';
			json_array_append_new(valid, json_pack("{s:s,s:s}", "containerId", argv[i],
							       "ifname", colon + 1));
		}
		req = json_pack("{s:s,s:o}", "op", "gc", "valid", valid);
	} else {
		return usage();
	}
	if (!req) {
		fprintf(stderr, "handoffctl: out of memory\n");
		goto out;
	}
	ret = handoff_call(sock, 10000, req, fd, &resp, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "handoffctl: %s\n", err[0] ? err : strerror(-ret));
		goto out;
	}
	json_dumpf(resp, stdout, JSON_COMPACT | JSON_SORT_KEYS);
	putchar('\n');
	rc = json_is_true(json_object_get(resp, "ok")) ? 0 : 1;
out:
	if (fd >= 0)
		close(fd);
	json_decref(req);
	json_decref(resp);
	return rc;
}
