/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the handoff codec (conf/handoff.c), the tunnel's
 * side of the plugin socket: the input is one datagram as a client could
 * send it on the SOCK_SEQPACKET socket, with the pod's netns fd attached
 * when its first byte is odd. handoff_recv() must either refuse it with a
 * reason and no fd, or return a JSON object; a decoded message goes back
 * through handoff_send() and handoff_recv() unchanged (round trip), and
 * its capture mode is parsed (handoff_mode_get). Aborts on a broken
 * invariant; memory errors are caught by ASan/UBSan.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/handoff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Sends buf as one datagram, with fd attached when >= 0. */
static int send_raw(int sock, const uint8_t *buf, size_t len, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct inpod_mode mode;
	json_t *msg = NULL, *again = NULL;
	int sp[2], fd = -1, fd2 = -1, pass = -1, ret;
	char err[512];

	if (size > HANDOFF_MAX_MSG + 16)
		return 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp))
		return 0;
	if (size && (data[0] & 1))
		pass = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (send_raw(sp[0], data, size, pass) < 0)
		goto out;
	err[0] = '\0';
	ret = handoff_recv(sp[1], &msg, &fd, err, sizeof(err));
	if (ret < 0) {
		if (msg || fd >= 0 || !err[0]) /* refused: nothing handed out, a reason given */
			abort();
		goto out;
	}
	if (!json_is_object(msg))
		abort();
	if (handoff_mode_get(msg, &mode, err, sizeof(err)) < 0 && !err[0])
		abort();
	/* what was decoded encodes and decodes to the same object */
	if (handoff_send(sp[0], msg, fd) == 0) {
		if (handoff_recv(sp[1], &again, &fd2, err, sizeof(err)) < 0 || !json_equal(msg, again))
			abort();
	}
out:
	json_decref(msg);
	json_decref(again);
	if (fd >= 0)
		close(fd);
	if (fd2 >= 0)
		close(fd2);
	if (pass >= 0)
		close(pass);
	close(sp[0]);
	close(sp[1]);
	return 0;
}
