/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the plugin <-> tunnel handoff codec (conf/handoff.c):
 * real SOCK_SEQPACKET sockets, real SCM_RIGHTS. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/handoff.h"
#include "tests/unit/t.h"

static void test_roundtrip_with_fd(void)
{
	int sv[2], fd = -1, got_fd = -1;
	json_t *msg, *out = NULL;
	struct stat a, b;
	char err[256];

	T_ASSERT(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	T_ASSERT(fd >= 0);
	msg = json_pack("{s:s,s:s}", "op", "add", "uid", "u-1");
	T_ASSERT_INT(handoff_send(sv[0], msg, fd), 0);
	json_decref(msg);
	T_ASSERT_INT(handoff_recv(sv[1], &out, &got_fd, err, sizeof(err)), 0);
	T_ASSERT_STR(json_string_value(json_object_get(out, "op")), "add");
	T_ASSERT_INT(json_integer_value(json_object_get(out, "v")), HANDOFF_VERSION);
	T_ASSERT(got_fd >= 0);
	T_ASSERT(fstat(fd, &a) == 0 && fstat(got_fd, &b) == 0);
	T_ASSERT(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	json_decref(out);
	close(got_fd);
	close(fd);
	close(sv[0]);
	close(sv[1]);
}

static void test_rejects_bad_version_and_json(void)
{
	int sv[2];
	json_t *out = NULL;
	char err[256];

	T_ASSERT(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	T_ASSERT(send(sv[0], "{\"v\":2,\"op\":\"add\"}", 18, 0) == 18);
	T_ASSERT_INT(handoff_recv(sv[1], &out, NULL, err, sizeof(err)), -EPROTO);
	T_ASSERT(out == NULL);
	T_ASSERT(strstr(err, "version") != NULL);
	T_ASSERT(send(sv[0], "not json", 8, 0) == 8);
	T_ASSERT_INT(handoff_recv(sv[1], &out, NULL, err, sizeof(err)), -EPROTO);
	T_ASSERT(strstr(err, "JSON") != NULL);
	T_ASSERT(send(sv[0], "[1,2]", 5, 0) == 5);
	T_ASSERT_INT(handoff_recv(sv[1], &out, NULL, err, sizeof(err)), -EPROTO);
	close(sv[0]);
	T_ASSERT_INT(handoff_recv(sv[1], &out, NULL, err, sizeof(err)), -ECONNRESET);
	close(sv[1]);
}

static void test_rejects_two_fds(void)
{
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = { 0 };
	struct iovec iov = { .iov_base = (void *)"{\"v\":1}", .iov_len = 7 };
	struct cmsghdr *cm;
	int sv[2], fds[2], got = 7;
	json_t *out = NULL;
	char err[256];

	T_ASSERT(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	fds[0] = open("/dev/null", O_RDONLY);
	fds[1] = open("/dev/null", O_RDONLY);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	T_ASSERT(sendmsg(sv[0], &mh, 0) == 7);
	T_ASSERT_INT(handoff_recv(sv[1], &out, &got, err, sizeof(err)), -EPROTO);
	T_ASSERT_INT(got, -1);
	T_ASSERT(strstr(err, "file descriptors") != NULL);
	close(fds[0]);
	close(fds[1]);
	close(sv[0]);
	close(sv[1]);
}

static void test_too_large(void)
{
	int sv[2];
	char *big = malloc(HANDOFF_MAX_MSG + 16);
	json_t *msg;

	T_ASSERT(big);
	memset(big, 'a', HANDOFF_MAX_MSG + 15);
	big[HANDOFF_MAX_MSG + 15] = '\0';
	T_ASSERT(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	msg = json_pack("{s:s}", "op", big);
	T_ASSERT_INT(handoff_send(sv[0], msg, -1), -EMSGSIZE);
	json_decref(msg);
	free(big);
	close(sv[0]);
	close(sv[1]);
}

struct server_arg {
	int lfd;
	int answer; /* 0 = never answer */
};

static void *serve_one(void *p)
{
	struct server_arg *a = p;
	int c;
	json_t *req = NULL, *resp;
	char err[128];

	fcntl(a->lfd, F_SETFL, 0);
	c = accept(a->lfd, NULL, NULL);
	if (c < 0)
		return NULL;
	if (handoff_recv(c, &req, NULL, err, sizeof(err)) == 0 && a->answer) {
		resp = handoff_ok();
		json_object_set(resp, "echo", json_object_get(req, "op"));
		handoff_send(c, resp, -1);
		json_decref(resp);
	} else if (!a->answer) {
		char b;
		/* hold the connection until the client gives up */
		while (read(c, &b, 1) > 0)
			;
	}
	json_decref(req);
	close(c);
	return NULL;
}

static void test_call_listen(void)
{
	char dir[] = "/tmp/warren-handoff-XXXXXX", path[128], err[256];
	struct server_arg a;
	pthread_t th;
	json_t *req, *resp = NULL;
	struct stat st;

	T_ASSERT(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sub/tunnel.sock", dir);
	a.lfd = handoff_listen(path);
	T_ASSERT(a.lfd >= 0);
	T_ASSERT(stat(path, &st) == 0);
	T_ASSERT_INT(st.st_mode & 0777, 0600);
	a.answer = 1;
	T_ASSERT(pthread_create(&th, NULL, serve_one, &a) == 0);
	req = json_pack("{s:s}", "op", "status");
	T_ASSERT_INT(handoff_call(path, 2000, req, -1, &resp, err, sizeof(err)), 0);
	pthread_join(th, NULL);
	T_ASSERT(json_is_true(json_object_get(resp, "ok")));
	T_ASSERT_STR(json_string_value(json_object_get(resp, "echo")), "status");
	json_decref(resp);

	/* a tunnel that never answers: bounded by the timeout */
	a.answer = 0;
	T_ASSERT(pthread_create(&th, NULL, serve_one, &a) == 0);
	T_ASSERT_INT(handoff_call(path, 200, req, -1, &resp, err, sizeof(err)), -ETIMEDOUT);
	T_ASSERT(strstr(err, "did not answer") != NULL);
	pthread_join(th, NULL);

	close(a.lfd);
	unlink(path);
	/* nobody listening */
	T_ASSERT(handoff_call(path, 200, req, -1, &resp, err, sizeof(err)) < 0);
	T_ASSERT(strstr(err, "is warren-tunnel running") != NULL);
	json_decref(req);
	snprintf(path, sizeof(path), "%s/sub", dir);
	rmdir(path);
	rmdir(dir);
}

/* The capture mode on the wire: put then get gives it back; absent means
 * everything captured (an older peer); bad shapes are named. */
static void test_mode_fields(void)
{
	static const char *const bad[][2] = {
		{ "{\"captureInbound\": \"no\"}", "\"captureInbound\" must be true or false" },
		{ "{\"rerouteInterfaces\": \"tap0\"}", "\"rerouteInterfaces\" must be an array of interface names" },
		{ "{\"rerouteInterfaces\": [\"tap0\", 7]}", "\"rerouteInterfaces\" item 1 is not a string" },
		{ "{\"rerouteInterfaces\": [\"a b\"]}", "\"rerouteInterfaces\": \"a b\" is not a network interface name (1-15 characters, no '/', ':' or spaces)" },
		{ "{\"redirect\": \"iptables\"}", "\"redirect\" must be \"nftables\" or \"ebpf\"" },
		{ "{\"redirect\": \"ebpf\"}", "\"bpfDir\" must be an absolute path shorter than 96 bytes with redirect \"ebpf\"" },
		{ "{\"redirect\": \"ebpf\", \"bpfDir\": \"/sys/fs/bpf/../x\"}", "\"bpfDir\" must be an absolute path shorter than 96 bytes with redirect \"ebpf\"" },
	};
	struct inpod_mode in, out;
	json_t *o = json_object();
	char err[256];

	inpod_mode_init(&in);
	in.capture_inbound = false;
	T_ASSERT_INT(inpod_mode_parse_reroute(&in, "tap0,vnet1", err, sizeof(err)), 0);
	T_ASSERT_INT(handoff_mode_put(o, &in), 0);
	T_ASSERT_INT(handoff_mode_get(o, &out, err, sizeof(err)), 0);
	T_ASSERT(inpod_mode_equal(&in, &out));
	out.capture_inbound = true;
	T_ASSERT(!inpod_mode_equal(&in, &out));
	json_decref(o);
	o = json_object();
	T_ASSERT_INT(handoff_mode_get(o, &out, err, sizeof(err)), 0);
	T_ASSERT(out.capture_inbound && out.n_reroute == 0);
	T_ASSERT_INT(out.redirect, INPOD_REDIRECT_NFTABLES);
	json_decref(o);
	/* the eBPF mode and its bpffs travel with the mode */
	inpod_mode_init(&in);
	in.redirect = INPOD_REDIRECT_EBPF;
	snprintf(in.bpf_dir, sizeof(in.bpf_dir), "/sys/fs/bpf");
	o = json_object();
	T_ASSERT_INT(handoff_mode_put(o, &in), 0);
	T_ASSERT_STR(json_string_value(json_object_get(o, "redirect")), "ebpf");
	T_ASSERT_INT(handoff_mode_get(o, &out, err, sizeof(err)), 0);
	T_ASSERT(inpod_mode_equal(&in, &out));
	T_ASSERT_STR(out.bpf_dir, "/sys/fs/bpf");
	json_decref(o);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = json_loads(bad[i][0], 0, NULL);
		T_ASSERT(o);
		err[0] = '\0';
		T_ASSERT_INT(handoff_mode_get(o, &out, err, sizeof(err)), -EPROTO);
		T_ASSERT_STR(err, bad[i][1]);
		json_decref(o);
	}
}

T_MAIN(T_CASE(test_roundtrip_with_fd), T_CASE(test_mode_fields), T_CASE(test_rejects_bad_version_and_json),
       T_CASE(test_rejects_two_fds), T_CASE(test_too_large), T_CASE(test_call_listen))
