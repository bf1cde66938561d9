/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Thin libmnl helpers shared by nft.c and route.c: a netlink socket opened
 * (optionally) inside a netns, with NETLINK_EXT_ACK and NETLINK_CAP_ACK on,
 * and one request/reply exchange that turns kernel errors into -errno plus
 * the kernel's extended-ack text. A struct nl_sock is owned by its opener
 * and freed by nl_close(); it is not thread-safe.
 */
#ifndef WARREN_NL_H
#define WARREN_NL_H

#include <stddef.h>
#include <stdint.h>

#include <libmnl/libmnl.h>

struct nl_sock {
	struct mnl_socket *mnl;
	uint32_t portid;
	uint32_t seq; /* next sequence number; nl_seq() hands them out */
};

/* Open a NETLINK_<bus> socket inside netns_fd (< 0: current netns), bound
 * to an automatic port id, with extended acks enabled. 0 or -errno; on
 * error *s is left closed (nl_close() is still safe). */
int nl_open(struct nl_sock *s, int bus, int netns_fd);

/* Close; NULL-tolerant and idempotent. */
void nl_close(struct nl_sock *s);

/* Reserve n consecutive sequence numbers; returns the first. */
uint32_t nl_seq(struct nl_sock *s, uint32_t n);

/* Flags for nl_talk(). */
enum {
	/* The request is a dump: read until NLMSG_DONE. Otherwise the
	 * replies (acks/errors) are queued synchronously while the kernel
	 * handles our sendmsg(), so everything queued is read without
	 * blocking and then the exchange is over. */
	NL_TALK_DUMP = 1u << 0,
};

/* Send len bytes of buf (one message, or a whole batch) and process every
 * reply. Data messages go to cb(nlh, data) (cb may be NULL); its
 * MNL_CB_ERROR aborts with -errno (errno set by cb, -EIO if not).
 * Kernel errors: returns the first error as -errno, and writes
 * "<strerror>" or "<strerror> (kernel: <ext-ack message>)" into err (may be
 * NULL). *err_seq (may be NULL) receives the sequence number of the
 * message that failed. Returns 0 on success. */
int nl_talk(struct nl_sock *s, const void *buf, size_t len, unsigned flags, mnl_cb_t cb,
	    void *data, char *err, size_t errlen, uint32_t *err_seq);

/* Parse an NLMSG_ERROR message: returns its error (0 for an ack, or
 * -errno) and copies NLMSGERR_ATTR_MSG into msg (may be NULL; "" if none).
 * Returns -EBADMSG if the message is malformed. */
int nl_parse_error(const struct nlmsghdr *nlh, char *msg, size_t msglen);

#endif
