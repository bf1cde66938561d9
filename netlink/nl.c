/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libmnl glue (contract in nl.h). Replies are walked message by message
 * rather than with one mnl_cb_run() over the whole buffer, because
 * mnl_cb_run() stops at the first ack and a batch produces one ack per
 * message: later errors in the same datagram would be silently skipped.
 */
#include "netlink/nl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/netlink.h>

#include "netlink/netns.h"

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

int nl_open(struct nl_sock *s, int bus, int netns_fd)
{
	int fd = -1, one = 1, ret;

	s->mnl = NULL;
	s->portid = 0;
	s->seq = 0;
	fd = netns_socket(netns_fd, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, bus);
	if (fd < 0)
		return fd;
	s->mnl = mnl_socket_fdopen(fd);
	if (!s->mnl) {
		ret = -errno;
		close(fd);
		return ret ? ret : -ENOMEM;
	}
	if (mnl_socket_bind(s->mnl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		goto out;
	}
	/* Best effort: old kernels lack them and then we just lose the text
	 * (EXT_ACK) or get the request echoed in errors (CAP_ACK). */
	(void)mnl_socket_setsockopt(s->mnl, NETLINK_EXT_ACK, &one, sizeof(one));
	(void)mnl_socket_setsockopt(s->mnl, NETLINK_CAP_ACK, &one, sizeof(one));
	s->portid = mnl_socket_get_portid(s->mnl);
	/* Unique-enough start so replies to a previous user of the port id
	 * are never mistaken for ours. */
	s->seq = (uint32_t)getpid() << 8;
	return 0;
out:
	nl_close(s);
	return ret;
}

void nl_close(struct nl_sock *s)
{
	if (!s)
		return;
	if (s->mnl)
		mnl_socket_close(s->mnl);
	s->mnl = NULL;
}

uint32_t nl_seq(struct nl_sock *s, uint32_t n)
{
	uint32_t first = s->seq;

	s->seq += n;
	return first;
}

struct ext_ack {
	char *msg;
	size_t msglen;
};

static int nl_ext_ack_attr_cb(const struct nlattr *attr, void *data)
{
	struct ext_ack *ea = data;

	if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
	    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0 && ea->msg && ea->msglen)
		snprintf(ea->msg, ea->msglen, "%s", mnl_attr_get_str(attr));
	return MNL_CB_OK;
}

int nl_parse_error(const struct nlmsghdr *nlh, char *msg, size_t msglen)
{
	const struct nlmsgerr *e;
	struct ext_ack ea = { msg, msglen };
	size_t off;

	if (msg && msglen)
		msg[0] = '\0';
	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e)))
		return -EBADMSG;
	e = mnl_nlmsg_get_payload(nlh);
	if (e->error > 0 || e->error < -4095)
		return -EBADMSG;
	if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
		off = sizeof(*e);
		/* Uncapped errors echo the request before the TLVs. */
		if (!(nlh->nlmsg_flags & NLM_F_CAPPED) && e->error)
			off += e->msg.nlmsg_len - sizeof(struct nlmsghdr);
		if (mnl_nlmsg_size(off) <= nlh->nlmsg_len)
			(void)mnl_attr_parse(nlh, (unsigned)off, nl_ext_ack_attr_cb, &ea);
	}
	return e->error;
}

static void nl_set_err(char *err, size_t errlen, int ret, const char *kmsg)
{
	if (!err || !errlen)
		return;
	if (kmsg && *kmsg)
		snprintf(err, errlen, "%s (kernel: %s)", strerror(-ret), kmsg);
	else
		snprintf(err, errlen, "%s", strerror(-ret));
}

int nl_talk(struct nl_sock *s, const void *buf, size_t len, unsigned flags, mnl_cb_t cb,
	    void *data, char *err, size_t errlen, uint32_t *err_seq)
{
	/* Kernel dump skbs are at most 32 KiB (netlink_dump); twice that
	 * leaves room for any future growth without MSG_TRUNC. */
	const size_t rlen = 65536;
	char kmsg[256] = "", *rbuf = NULL;
	int first_err = 0, fd, done = 0;
	ssize_t n;

	if (err && errlen)
		err[0] = '\0';
	if (!s || !s->mnl)
		return -EBADF;
	if (mnl_socket_sendto(s->mnl, buf, len) < 0) {
		first_err = -errno;
		nl_set_err(err, errlen, first_err, NULL);
		return first_err;
	}
	rbuf = malloc(rlen);
	if (!rbuf) {
		first_err = -ENOMEM;
		nl_set_err(err, errlen, first_err, NULL);
		return first_err;
	}
	fd = mnl_socket_get_fd(s->mnl);
	while (!done) {
		struct sockaddr_nl from;
		struct iovec iov = { rbuf, rlen };
		struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof(from),
				     .msg_iov = &iov, .msg_iovlen = 1 };
		const struct nlmsghdr *nlh;
		int left;

		n = recvmsg(fd, &mh, (flags & NL_TALK_DUMP) ? 0 : MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN && !(flags & NL_TALK_DUMP))
				break;
			/* ENOBUFS means replies were dropped: we cannot
			 * know the outcome, so report it as a failure. */
			if (!first_err) {
				first_err = -errno;
				nl_set_err(err, errlen, first_err, NULL);
			}
			break;
		}
		if (mh.msg_flags & MSG_TRUNC) {
			/* Buffer sized for the largest netlink datagram:
			 * truncation is a bug, not a runtime condition. */
			if (!first_err) {
				first_err = -ENOSPC;
				nl_set_err(err, errlen, first_err, "reply truncated");
			}
			break;
		}
		if (from.nl_pid != 0)
			continue;
		nlh = (const struct nlmsghdr *)rbuf;
		left = (int)n;
		for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
			if (nlh->nlmsg_pid != s->portid && nlh->nlmsg_pid != 0)
				continue;
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				int e = nl_parse_error(nlh, kmsg, sizeof(kmsg));

				if (e && !first_err) {
					first_err = e;
					nl_set_err(err, errlen, e, kmsg);
					if (err_seq)
						*err_seq = nlh->nlmsg_seq;
				}
				/* An error ends a dump; an ack ends nothing
				 * by itself (a batch has one per message). */
				if (e && (flags & NL_TALK_DUMP))
					done = 1;
				continue;
			}
			if (nlh->nlmsg_type == NLMSG_DONE) {
				/* A dump may end with an error in DONE. */
				if (nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(int)) && !first_err) {
					const int *de = mnl_nlmsg_get_payload(nlh);

					if (*de < 0 && *de >= -4095) {
						first_err = *de;
						nl_set_err(err, errlen, first_err, NULL);
					}
				}
				done = 1;
				continue;
			}
			if (nlh->nlmsg_type < NLMSG_MIN_TYPE || !cb || first_err)
				continue;
			if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) {
				/* The dumped table changed under us; callers
				 * only ever look for our own objects, which a
				 * concurrent change to others does not hide,
				 * but be strict and let them retry. */
				first_err = -EINTR;
				nl_set_err(err, errlen, first_err, "netlink dump interrupted");
				continue;
			}
			errno = 0;
			if (cb(nlh, data) == MNL_CB_ERROR) {
				first_err = errno ? -errno : -EIO;
				nl_set_err(err, errlen, first_err, NULL);
			}
		}
	}
	free(rbuf);
	return first_err;
}
