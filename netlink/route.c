/* SPDX-License-Identifier: Apache-2.0 */
/*
 * In-pod policy routing over rtnetlink (contract in route.h). Checks dump
 * and filter on our side: without NETLINK_GET_STRICT_CHK the kernel
 * ignores most dump filters anyway.
 */
#include "netlink/route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>

#include "conf/warren.h"
#include "netlink/netns.h"

static bool route_family_ok(int family)
{
	return family == AF_INET || family == AF_INET6;
}

/* A zeroed, acked request header at the start of buf (ROUTE_MSG_BUFSZ bytes). */
static struct nlmsghdr *route_put_request(void *buf, uint16_t type, uint16_t flags, uint32_t seq)
{
	struct nlmsghdr *nlh;

	memset(buf, 0, ROUTE_MSG_BUFSZ);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = seq;
	return nlh;
}

int route_build_rule(void *buf, size_t buflen, uint16_t type, int family, uint32_t seq)
{
	/* the fwmark rule is one rule spec among others */
	static const struct route_rule fwmark_rule = {
		.priority = RULE_PRIORITY_INPOD, .table = ROUTE_TABLE_INPOD,
		.fwmark = MARK_CONN, .fwmask = MARK_MASK,
	};

	return route_build_rule_spec(buf, buflen, type, family, &fwmark_rule, seq);
}

int route_build_local(void *buf, size_t buflen, uint16_t type, int family, uint32_t seq)
{
	struct nlmsghdr *nlh;
	struct rtmsg *rtm;

	if (!route_family_ok(family) || (type != RTM_NEWROUTE && type != RTM_DELROUTE))
		return -EINVAL;
	if (buflen < ROUTE_MSG_BUFSZ)
		return -ENOSPC;
	nlh = route_put_request(buf, type, type == RTM_NEWROUTE ? NLM_F_CREATE | NLM_F_REPLACE : 0, seq);
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (uint8_t)family;
	rtm->rtm_dst_len = 0;
	rtm->rtm_table = ROUTE_TABLE_INPOD < 256 ? ROUTE_TABLE_INPOD : RT_TABLE_UNSPEC;
	rtm->rtm_type = RTN_LOCAL;
	if (type == RTM_NEWROUTE) {
		rtm->rtm_protocol = RTPROT_BOOT;
		rtm->rtm_scope = RT_SCOPE_HOST;
	} else {
		/* Like `ip route del`: match any protocol and scope. */
		rtm->rtm_protocol = 0;
		rtm->rtm_scope = RT_SCOPE_NOWHERE;
	}
	mnl_attr_put_u32(nlh, RTA_TABLE, ROUTE_TABLE_INPOD);
	mnl_attr_put_u32(nlh, RTA_OIF, ROUTE_LO_IFINDEX);
	return (int)nlh->nlmsg_len;
}

static const char *route_fam_name(int family)
{
	return family == AF_INET6 ? "IPv6" : "IPv4";
}

static int route_talk(struct nl_sock *s, bool rule, uint16_t type, int family, const char *what,
		char *err, size_t errlen)
{
	char buf[ROUTE_MSG_BUFSZ], kerr[320];
	int len, ret;

	len = rule ? route_build_rule(buf, sizeof(buf), type, family, nl_seq(s, 1))
		   : route_build_local(buf, sizeof(buf), type, family, nl_seq(s, 1));
	if (len < 0)
		return len;
	ret = nl_talk(s, buf, (size_t)len, 0, NULL, NULL, kerr, sizeof(kerr), NULL);
	if (ret < 0 && err && errlen)
		snprintf(err, errlen, "%s %s %s: %s", what, route_fam_name(family),
			 rule ? "ip rule fwmark 0x111/0xfff lookup 100"
			      : "route local default dev lo table 100",
			 kerr);
	return ret;
}

/* Already there (an add) or already gone (a delete) is success, with no error text. */
static int route_settled(int ret, bool del, char *err, size_t errlen)
{
	bool settled = del ? ret == -ENOENT || ret == -ESRCH || ret == -EAFNOSUPPORT : ret == -EEXIST;

	if (!settled)
		return ret;
	if (err && errlen)
		err[0] = '\0';
	return 0;
}

static int route_spec_talk(struct nl_sock *s, uint16_t type, int family, const struct route_rule *r,
		     const char *what, char *err, size_t errlen);

/* r: a rule spec; NULL: the fwmark rule (route_build_rule). */
static int route_rule_talk(struct nl_sock *s, uint16_t type, int family, const struct route_rule *r,
			   const char *what, char *err, size_t errlen)
{
	return r ? route_spec_talk(s, type, family, r, what, err, errlen)
		 : route_talk(s, true, type, family, what, err, errlen);
}

static int route_rule_add_one(struct nl_sock *s, int family, const struct route_rule *r, bool *added,
			      char *err, size_t errlen)
{
	int ret = route_rule_talk(s, RTM_NEWRULE, family, r, "adding", err, errlen);

	if (added)
		*added = ret == 0;
	return route_settled(ret, false, err, errlen);
}

static int route_rule_del_all(struct nl_sock *s, int family, const struct route_rule *r, char *err,
			      size_t errlen)
{
	int ret = 0;

	/* Bounded: someone may have added duplicates (without EXCL). */
	for (int i = 0; i < 16; i++) {
		ret = route_rule_talk(s, RTM_DELRULE, family, r, "deleting", err, errlen);
		if (ret < 0)
			break;
	}
	return route_settled(ret, true, err, errlen);
}

int route_rule_add(struct nl_sock *s, int family, bool *added, char *err, size_t errlen)
{
	return route_rule_add_one(s, family, NULL, added, err, errlen);
}

int route_rule_del(struct nl_sock *s, int family, char *err, size_t errlen)
{
	return route_rule_del_all(s, family, NULL, err, errlen);
}

int route_local_add(struct nl_sock *s, int family, char *err, size_t errlen)
{
	return route_talk(s, false, RTM_NEWROUTE, family, "adding", err, errlen);
}

int route_local_del(struct nl_sock *s, int family, char *err, size_t errlen)
{
	int ret = route_talk(s, false, RTM_DELROUTE, family, "deleting", err, errlen);

	return route_settled(ret, true, err, errlen);
}

struct attr_tb {
	const struct nlattr *tb[FRA_MAX > RTA_MAX ? FRA_MAX + 1 : RTA_MAX + 1];
	int max;
};

static int route_attr_cb(const struct nlattr *attr, void *data)
{
	struct attr_tb *t = data;
	int type = mnl_attr_get_type(attr);

	if (type > t->max)
		return MNL_CB_OK; /* newer kernel attribute: skip */
	if (mnl_attr_get_payload_len(attr) == sizeof(uint32_t))
		t->tb[type] = attr;
	return MNL_CB_OK;
}

static uint32_t route_tb_u32(const struct attr_tb *t, int type, uint32_t dflt)
{
	return t->tb[type] ? mnl_attr_get_u32(t->tb[type]) : dflt;
}

struct found {
	int family;
	bool hit;
};

static int route_rule_cb(const struct nlmsghdr *nlh, void *data)
{
	struct found *f = data;
	const struct fib_rule_hdr *frh;
	struct attr_tb t = { .max = FRA_MAX };

	if (nlh->nlmsg_type != RTM_NEWRULE || nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*frh)))
		return MNL_CB_OK;
	frh = mnl_nlmsg_get_payload(nlh);
	if (frh->family != f->family || frh->action != FR_ACT_TO_TBL)
		return MNL_CB_OK;
	if (mnl_attr_parse(nlh, sizeof(*frh), route_attr_cb, &t) < 0)
		return MNL_CB_OK;
	if (route_tb_u32(&t, FRA_FWMARK, 0) == MARK_CONN && route_tb_u32(&t, FRA_FWMASK, 0) == MARK_MASK &&
	    route_tb_u32(&t, FRA_PRIORITY, 0) == RULE_PRIORITY_INPOD &&
	    route_tb_u32(&t, FRA_TABLE, frh->table) == ROUTE_TABLE_INPOD)
		f->hit = true;
	return MNL_CB_OK;
}

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
	struct found *f = data;
	const struct rtmsg *rtm;
	struct attr_tb t = { .max = RTA_MAX };

	if (nlh->nlmsg_type != RTM_NEWROUTE || nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*rtm)))
		return MNL_CB_OK;
	rtm = mnl_nlmsg_get_payload(nlh);
	if (rtm->rtm_family != f->family || rtm->rtm_dst_len != 0 || rtm->rtm_type != RTN_LOCAL)
		return MNL_CB_OK;
	if (mnl_attr_parse(nlh, sizeof(*rtm), route_attr_cb, &t) < 0)
		return MNL_CB_OK;
	if (route_tb_u32(&t, RTA_TABLE, rtm->rtm_table) == ROUTE_TABLE_INPOD &&
	    route_tb_u32(&t, RTA_OIF, 0) == ROUTE_LO_IFINDEX)
		f->hit = true;
	return MNL_CB_OK;
}

/* A dump of type for family through cb(data); *hit (set by cb) or -errno. */
static int route_dump_hit(struct nl_sock *s, uint16_t type, int family, mnl_cb_t cb, void *data,
		    const bool *hit)
{
	char buf[ROUTE_MSG_BUFSZ] = { 0 };
	struct nlmsghdr *nlh;
	struct rtgenmsg *g;
	int ret;

	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = nl_seq(s, 1);
	/* rtmsg and fib_rule_hdr both start with the family byte; send the
	 * full rtmsg size so strict-checking kernels accept it. */
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(struct rtmsg));
	g->rtgen_family = (unsigned char)family;
	ret = nl_talk(s, buf, nlh->nlmsg_len, NL_TALK_DUMP, cb, data, NULL, 0, NULL);
	if (ret == -EAFNOSUPPORT)
		return 0;
	return ret < 0 ? ret : *hit;
}

static int route_dump(struct nl_sock *s, uint16_t type, int family, mnl_cb_t cb)
{
	struct found f = { family, false };

	return route_dump_hit(s, type, family, cb, &f, &f.hit);
}

int route_rule_check(struct nl_sock *s, int family)
{
	return route_dump(s, RTM_GETRULE, family, route_rule_cb);
}

int route_local_check(struct nl_sock *s, int family)
{
	return route_dump(s, RTM_GETROUTE, family, route_cb);
}

struct addr_want {
	int family;
	const void *addr;
	bool hit;
};

static int route_addr_attr_cb(const struct nlattr *attr, void *data)
{
	struct addr_want *w = data;
	size_t len = w->family == AF_INET ? 4 : 16;
	int type = mnl_attr_get_type(attr);

	if ((type == IFA_ADDRESS || type == IFA_LOCAL) && mnl_attr_get_payload_len(attr) == len &&
	    !memcmp(mnl_attr_get_payload(attr), w->addr, len))
		w->hit = true;
	return MNL_CB_OK;
}

static int route_addr_cb(const struct nlmsghdr *nlh, void *data)
{
	struct addr_want *w = data;
	const struct ifaddrmsg *ifa;

	if (nlh->nlmsg_type != RTM_NEWADDR || nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*ifa)))
		return MNL_CB_OK;
	ifa = mnl_nlmsg_get_payload(nlh);
	if (ifa->ifa_family == w->family)
		mnl_attr_parse(nlh, sizeof(*ifa), route_addr_attr_cb, w);
	return MNL_CB_OK;
}

int route_addr_check(struct nl_sock *s, int family, const void *addr)
{
	char buf[ROUTE_MSG_BUFSZ] = { 0 };
	struct addr_want w = { family, addr, false };
	struct nlmsghdr *nlh;
	struct ifaddrmsg *ifa;
	int ret;

	if (!route_family_ok(family))
		return -EINVAL;
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETADDR;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = nl_seq(s, 1);
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (unsigned char)family;
	ret = nl_talk(s, buf, nlh->nlmsg_len, NL_TALK_DUMP, route_addr_cb, &w, NULL, 0, NULL);
	if (ret == -EAFNOSUPPORT)
		return 0;
	return ret < 0 ? ret : w.hit;
}

int route_ipv6_enabled(int netns_fd)
{
	int saved = -1, fd, ret;
	char c = 0;

	if (netns_fd >= 0) {
		ret = netns_enter(netns_fd, &saved);
		if (ret < 0)
			return ret;
	}
	fd = open("/proc/sys/net/ipv6/conf/lo/disable_ipv6", O_RDONLY | O_CLOEXEC);
	/* No file: no IPv6 in this kernel or netns. */
	ret = fd >= 0 && read(fd, &c, 1) == 1 && c == '0';
	if (fd >= 0)
		close(fd);
	netns_leave(&saved);
	return ret;
}

/* The eBPF capture mode's rules (route.h). */
size_t route_ebpf_rules(int family, struct route_rule out[ROUTE_EBPF_RULES])
{
	memset(out, 0, ROUTE_EBPF_RULES * sizeof(*out));
	out[0] = (struct route_rule){ .priority = RULE_PRIORITY_INPOD - 2, .table = RT_TABLE_MAIN,
				      .fwmark = MARK_TUNNEL, .fwmask = MARK_MASK,
				      .text = "fwmark 0x539/0xfff lookup main" };
	out[1] = (struct route_rule){ .priority = RULE_PRIORITY_INPOD - 1, .table = RT_TABLE_MAIN,
				      .ip_proto = IPPROTO_TCP };
	if (family == AF_INET) {
		out[1].dst_len = 32;
		inet_pton(AF_INET, PROBE_SNAT_IPV4, out[1].dst);
		out[1].text = "to " PROBE_SNAT_IPV4 "/32 ipproto tcp lookup main";
	} else {
		out[1].dst_len = 128;
		inet_pton(AF_INET6, PROBE_SNAT_IPV6, out[1].dst);
		out[1].text = "to " PROBE_SNAT_IPV6 "/128 ipproto tcp lookup main";
	}
	out[2] = (struct route_rule){ .priority = RULE_PRIORITY_INPOD, .table = ROUTE_TABLE_INPOD,
				      .ip_proto = IPPROTO_TCP, .text = "ipproto tcp lookup 100" };
	return ROUTE_EBPF_RULES;
}

int route_build_rule_spec(void *buf, size_t buflen, uint16_t type, int family,
			  const struct route_rule *r, uint32_t seq)
{
	struct nlmsghdr *nlh;
	struct fib_rule_hdr *frh;

	if (!route_family_ok(family) || (type != RTM_NEWRULE && type != RTM_DELRULE))
		return -EINVAL;
	if (buflen < ROUTE_MSG_BUFSZ)
		return -ENOSPC;
	nlh = route_put_request(buf, type, type == RTM_NEWRULE ? NLM_F_CREATE | NLM_F_EXCL : 0, seq);
	frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
	frh->family = (uint8_t)family;
	frh->table = r->table < 256 ? (uint8_t)r->table : RT_TABLE_UNSPEC;
	frh->action = FR_ACT_TO_TBL;
	frh->flags = r->invert ? FIB_RULE_INVERT : 0;
	frh->dst_len = r->dst_len;
	mnl_attr_put_u32(nlh, FRA_PRIORITY, r->priority);
	if (r->fwmask) {
		mnl_attr_put_u32(nlh, FRA_FWMARK, r->fwmark);
		mnl_attr_put_u32(nlh, FRA_FWMASK, r->fwmask);
	}
	if (r->ip_proto)
		mnl_attr_put_u8(nlh, FRA_IP_PROTO, r->ip_proto);
	if (r->dst_len)
		mnl_attr_put(nlh, FRA_DST, family == AF_INET ? 4 : 16, r->dst);
	mnl_attr_put_u32(nlh, FRA_TABLE, r->table);
	return (int)nlh->nlmsg_len;
}

static int route_spec_talk(struct nl_sock *s, uint16_t type, int family, const struct route_rule *r,
		     const char *what, char *err, size_t errlen)
{
	char buf[ROUTE_MSG_BUFSZ], kerr[320];
	int len, ret;

	len = route_build_rule_spec(buf, sizeof(buf), type, family, r, nl_seq(s, 1));
	if (len < 0)
		return len;
	ret = nl_talk(s, buf, (size_t)len, 0, NULL, NULL, kerr, sizeof(kerr), NULL);
	if (ret < 0 && err && errlen)
		snprintf(err, errlen, "%s %s ip rule \"%s pref %u\": %s", what, route_fam_name(family), r->text,
			 r->priority, kerr);
	return ret;
}

int route_spec_add(struct nl_sock *s, int family, const struct route_rule *r, bool *added,
		   char *err, size_t errlen)
{
	return route_rule_add_one(s, family, r, added, err, errlen);
}

int route_spec_del(struct nl_sock *s, int family, const struct route_rule *r, char *err,
		   size_t errlen)
{
	return route_rule_del_all(s, family, r, err, errlen);
}

struct spec_found {
	int family;
	const struct route_rule *r;
	bool hit;
};

static int route_spec_cb(const struct nlmsghdr *nlh, void *data)
{
	struct spec_found *f = data;
	const struct route_rule *r = f->r;
	const struct fib_rule_hdr *frh;
	const struct nlattr *a;
	uint8_t proto = 0;
	struct attr_tb t = { .max = FRA_MAX };
	bool dst_ok = !r->dst_len;

	if (nlh->nlmsg_type != RTM_NEWRULE || nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*frh)))
		return MNL_CB_OK;
	frh = mnl_nlmsg_get_payload(nlh);
	if (frh->family != f->family || frh->action != FR_ACT_TO_TBL || frh->dst_len != r->dst_len ||
	    !!(frh->flags & FIB_RULE_INVERT) != r->invert)
		return MNL_CB_OK;
	if (mnl_attr_parse(nlh, sizeof(*frh), route_attr_cb, &t) < 0)
		return MNL_CB_OK;
	mnl_attr_for_each(a, nlh, sizeof(*frh)) {
		if (mnl_attr_get_type(a) == FRA_IP_PROTO && mnl_attr_get_payload_len(a) == 1)
			proto = mnl_attr_get_u8(a);
		if (r->dst_len && mnl_attr_get_type(a) == FRA_DST &&
		    mnl_attr_get_payload_len(a) == (f->family == AF_INET ? 4u : 16u))
			dst_ok = !memcmp(mnl_attr_get_payload(a), r->dst, mnl_attr_get_payload_len(a));
	}
	if (proto == r->ip_proto && dst_ok && route_tb_u32(&t, FRA_PRIORITY, 0) == r->priority &&
	    route_tb_u32(&t, FRA_TABLE, frh->table) == r->table &&
	    (!r->fwmask || (route_tb_u32(&t, FRA_FWMARK, 0) == r->fwmark && route_tb_u32(&t, FRA_FWMASK, 0) == r->fwmask)))
		f->hit = true;
	return MNL_CB_OK;
}

int route_spec_check(struct nl_sock *s, int family, const struct route_rule *r)
{
	struct spec_found f = { family, r, false };

	return route_dump_hit(s, RTM_GETRULE, family, route_spec_cb, &f, &f.hit);
}

int route_build_local_src(void *buf, size_t buflen, int family, const void *src, uint32_t seq)
{
	int len = route_build_local(buf, buflen, RTM_NEWROUTE, family, seq);

	if (len < 0 || !src)
		return len;
	mnl_attr_put((struct nlmsghdr *)buf, RTA_PREFSRC, family == AF_INET ? 4 : 16, src);
	return (int)((struct nlmsghdr *)buf)->nlmsg_len;
}

int route_local_add_src(struct nl_sock *s, int family, const void *src, char *err, size_t errlen)
{
	char buf[ROUTE_MSG_BUFSZ], kerr[320];
	int len, ret;

	len = route_build_local_src(buf, sizeof(buf), family, src, nl_seq(s, 1));
	if (len < 0)
		return len;
	ret = nl_talk(s, buf, (size_t)len, 0, NULL, NULL, kerr, sizeof(kerr), NULL);
	if (ret < 0 && err && errlen)
		snprintf(err, errlen, "adding %s route local default dev lo table %u%s: %s", route_fam_name(family),
			 ROUTE_TABLE_INPOD, src ? " src POD-IP" : "", kerr);
	return ret;
}

int route_accept_local(int netns_fd, bool on)
{
	int saved = -1, fd, ret;

	if (netns_fd >= 0) {
		ret = netns_enter(netns_fd, &saved);
		if (ret < 0)
			return ret;
	}
	fd = open("/proc/sys/net/ipv4/conf/all/accept_local", O_WRONLY | O_CLOEXEC);
	ret = fd < 0 ? -errno : 0;
	if (fd >= 0 && write(fd, on ? "1" : "0", 1) != 1)
		ret = -errno;
	if (fd >= 0)
		close(fd);
	netns_leave(&saved);
	return ret;
}
