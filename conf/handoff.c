/* SPDX-License-Identifier: Apache-2.0 */
#include "conf/handoff.h"

#include "conf/errbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int handoff_send(int sock, json_t *msg, int pass_fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = { 0 };
	struct iovec iov;
	char *text;
	size_t len;
	ssize_t n;
	int ret = 0;

	if (json_object_set_new(msg, "v", json_integer(HANDOFF_VERSION)) < 0)
		return -ENOMEM;
	text = json_dumps(msg, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	if (len > HANDOFF_MAX_MSG) {
		ret = -EMSGSIZE;
		goto out;
	}
	iov.iov_base = text;
	iov.iov_len = len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (pass_fd >= 0) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		ret = -errno;
	else if ((size_t)n != len)
		ret = -EIO;
out:
	free(text);
	return ret;
}

int handoff_recv(int sock, json_t **out, int *out_fd, char *err, size_t errlen)
{
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = { 0 };
	struct iovec iov;
	json_error_t jerr;
	char *buf;
	json_t *msg = NULL, *v;
	int fds[4], nfds = 0, ret = 0;
	ssize_t n;

	*out = NULL;
	if (out_fd)
		*out_fd = -1;
	buf = malloc(HANDOFF_MAX_MSG + 1);
	if (!buf)
		return -ENOMEM;
	iov.iov_base = buf;
	iov.iov_len = HANDOFF_MAX_MSG + 1;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "receive failed: %s", strerror(errno));
		goto out;
	}
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; CMSG_LEN((i + 1) * sizeof(int)) <= cm->cmsg_len && nfds < 4; i++)
			memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
	}
	if (n == 0) {
		ret = -ECONNRESET;
		errbuf_set(err, errlen, "peer closed the connection");
		goto out;
	}
	if ((size_t)n > HANDOFF_MAX_MSG || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		ret = -EPROTO;
		errbuf_set(err, errlen, "message truncated (limit %d bytes)", HANDOFF_MAX_MSG);
		goto out;
	}
	if (nfds > 1) {
		ret = -EPROTO;
		errbuf_set(err, errlen, "message carries %d file descriptors, at most one is allowed", nfds);
		goto out;
	}
	msg = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
	if (!msg || !json_is_object(msg)) {
		ret = -EPROTO;
		errbuf_set(err, errlen, "message is not a JSON object: %s", msg ? "wrong type" : jerr.text);
		goto out;
	}
	v = json_object_get(msg, "v");
	if (!json_is_integer(v) || json_integer_value(v) != HANDOFF_VERSION) {
		ret = -EPROTO;
		errbuf_set(err, errlen, "unsupported handoff version (want %d); plugin and tunnel must be upgraded together",
			HANDOFF_VERSION);
		goto out;
	}
	*out = msg;
	msg = NULL;
	if (nfds == 1) {
		if (out_fd) {
			*out_fd = fds[0];
			nfds = 0;
		}
	}
out:
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	json_decref(msg);
	free(buf);
	return ret;
}

static long handoff_ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

int handoff_call(const char *path, int timeout_ms, json_t *req, int pass_fd,
		 json_t **resp, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timespec deadline;
	struct pollfd pfd;
	int sock = -1, ret;

	*resp = NULL;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errbuf_set(err, errlen, "tunnel socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sun.sun_path, path);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "socket: %s", strerror(errno));
		goto out;
	}
	if (connect(sock, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot reach warren-tunnel at %s: %s; is warren-tunnel running on this node?",
			path, strerror(errno));
		goto out;
	}
	ret = handoff_send(sock, req, pass_fd);
	if (ret < 0) {
		errbuf_set(err, errlen, "sending to warren-tunnel at %s failed: %s", path, strerror(-ret));
		goto out;
	}
	pfd.fd = sock;
	pfd.events = POLLIN;
	for (;;) {
		long left = handoff_ms_left(&deadline);
		int n;

		if (left <= 0) {
			ret = -ETIMEDOUT;
			errbuf_set(err, errlen, "warren-tunnel at %s did not answer within %d ms", path, timeout_ms);
			goto out;
		}
		n = poll(&pfd, 1, (int)left);
		if (n > 0)
			break;
		if (n < 0 && errno != EINTR) {
			ret = -errno;
			errbuf_set(err, errlen, "poll: %s", strerror(errno));
			goto out;
		}
	}
	ret = handoff_recv(sock, resp, NULL, err, errlen);
out:
	if (sock >= 0)
		close(sock);
	return ret;
}

static int handoff_mkdir_parents(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *p;

	snprintf(dir, sizeof(dir), "%s", path);
	p = strrchr(dir, '/');
	if (!p || p == dir)
		return 0;
	*p = '\0';
	for (p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int handoff_listen(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int sock, ret;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	ret = handoff_mkdir_parents(path);
	if (ret < 0)
		return ret;
	sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (sock < 0)
		return -errno;
	unlink(path);
	/* umask-independent 0600: bind under a restrictive umask */
	mode_t old = umask(0177);
	ret = bind(sock, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (ret < 0 || listen(sock, 128) < 0) {
		ret = -errno;
		close(sock);
		return ret;
	}
	return sock;
}

json_t *handoff_ok(void)
{
	return json_pack("{s:b}", "ok", 1);
}

static __attribute__((format(printf, 2, 0))) json_t *handoff_failure(bool retry, const char *fmt,
									 va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (retry)
		return json_pack("{s:b,s:s,s:b}", "ok", 0, "error", msg, "retry", 1);
	return json_pack("{s:b,s:s}", "ok", 0, "error", msg);
}

json_t *handoff_error(const char *fmt, ...)
{
	va_list ap;
	json_t *j;

	va_start(ap, fmt);
	j = handoff_failure(false, fmt, ap);
	va_end(ap);
	return j;
}

json_t *handoff_retry(const char *fmt, ...)
{
	va_list ap;
	json_t *j;

	va_start(ap, fmt);
	j = handoff_failure(true, fmt, ap);
	va_end(ap);
	return j;
}

int handoff_mode_put(json_t *obj, const struct inpod_mode *mode)
{
	json_t *ifs = json_array();

	for (size_t i = 0; ifs && i < mode->n_reroute; i++)
		if (json_array_append_new(ifs, json_string(mode->reroute[i])) < 0) {
			json_decref(ifs);
			return -ENOMEM;
		}
	if (mode->redirect == INPOD_REDIRECT_EBPF &&
	    json_object_set_new(obj, "bpfDir", json_string(mode->bpf_dir)) < 0) {
		json_decref(ifs);
		return -ENOMEM;
	}
	if (!ifs || json_object_set_new(obj, "rerouteInterfaces", ifs) < 0 ||
	    json_object_set_new(obj, "redirect", json_string(inpod_redirect_name(mode->redirect))) < 0 ||
	    json_object_set_new(obj, "captureInbound", json_boolean(mode->capture_inbound)) < 0)
		return -ENOMEM;
	return 0;
}

int handoff_mode_get(json_t *obj, struct inpod_mode *mode, char *err, size_t errlen)
{
	json_t *capture = json_object_get(obj, "captureInbound");
	json_t *ifs = json_object_get(obj, "rerouteInterfaces"), *v;
	json_t *redirect = json_object_get(obj, "redirect");
	char why[160];
	size_t i;

	inpod_mode_init(mode);
	if (redirect && (!json_is_string(redirect) ||
			 (strcmp(json_string_value(redirect), "nftables") &&
			  strcmp(json_string_value(redirect), "ebpf")))) {
		errbuf_set(err, errlen, "\"redirect\" must be \"nftables\" or \"ebpf\"");
		return -EPROTO;
	}
	if (redirect && !strcmp(json_string_value(redirect), "ebpf")) {
		json_t *dir = json_object_get(obj, "bpfDir");
		const char *d = json_string_value(dir);

		if (!d || d[0] != '/' || strlen(d) >= sizeof(mode->bpf_dir) || strstr(d, "..")) {
			errbuf_set(err, errlen, "\"bpfDir\" must be an absolute path shorter than %zu bytes with redirect \"ebpf\"",
				   sizeof(mode->bpf_dir));
			return -EPROTO;
		}
		mode->redirect = INPOD_REDIRECT_EBPF;
		snprintf(mode->bpf_dir, sizeof(mode->bpf_dir), "%s", d);
	}
	if (capture && !json_is_boolean(capture)) {
		errbuf_set(err, errlen, "\"captureInbound\" must be true or false");
		return -EPROTO;
	}
	mode->capture_inbound = !json_is_false(capture);
	if (ifs && !json_is_array(ifs)) {
		errbuf_set(err, errlen, "\"rerouteInterfaces\" must be an array of interface names");
		return -EPROTO;
	}
	json_array_foreach(ifs, i, v) {
		if (!json_is_string(v)) {
			errbuf_set(err, errlen, "\"rerouteInterfaces\" item %zu is not a string", i);
			return -EPROTO;
		}
		if (inpod_mode_add_reroute(mode, json_string_value(v), why, sizeof(why)) < 0) {
			errbuf_set(err, errlen, "\"rerouteInterfaces\": %s", why);
			return -EPROTO;
		}
	}
	return 0;
}
