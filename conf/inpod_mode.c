/* SPDX-License-Identifier: Apache-2.0 */
/* A pod's capture mode (contract in inpod_mode.h). */
#include "conf/inpod_mode.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "conf/errbuf.h"
#include "conf/warren.h"

void inpod_mode_init(struct inpod_mode *m)
{
	memset(m, 0, sizeof(*m));
	m->capture_inbound = true;
}

const char *inpod_redirect_name(enum inpod_redirect r)
{
	return r == INPOD_REDIRECT_EBPF ? "ebpf" : "nftables";
}

int inpod_mode_supported(const struct inpod_mode *mode, char *err, size_t errlen)
{
	if (mode->redirect != INPOD_REDIRECT_EBPF)
		return 0;
	/* The sk_lookup program tells outbound from inbound by the interface
	 * a SYN arrives on (lo or not): an uncaptured inbound connection's
	 * replies, or a virtual interface's outbound SYN, would be taken for
	 * the other direction. docs/ebpf.md. */
	if (!mode->capture_inbound) {
		errbuf_set(err, errlen, "annotation " ANNOTATION_BYPASS_INBOUND_CAPTURE
			   " is not supported with redirect \"ebpf\"; use redirect \"nftables\" for this pod's node or remove the annotation");
		return -EOPNOTSUPP;
	}
	if (mode->n_reroute) {
		errbuf_set(err, errlen, "annotation " ANNOTATION_REROUTE_VIRTUAL_INTERFACES
			   " is not supported with redirect \"ebpf\"; use redirect \"nftables\" for this pod's node or remove the annotation");
		return -EOPNOTSUPP;
	}
	return 0;
}

bool inpod_mode_equal(const struct inpod_mode *a, const struct inpod_mode *b)
{
	if (a->redirect != b->redirect || strcmp(a->bpf_dir, b->bpf_dir) || a->capture_inbound != b->capture_inbound || a->n_reroute != b->n_reroute)
		return false;
	for (size_t i = 0; i < a->n_reroute; i++)
		if (strcmp(a->reroute[i], b->reroute[i]))
			return false;
	return true;
}

/* The kernel's dev_valid_name(). */
static bool inpod_mode_ifname_valid(const char *name)
{
	if (!*name || strlen(name) >= INPOD_IFNAMSIZ || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (const char *c = name; *c; c++)
		if (*c == '/' || *c == ':' || isspace((unsigned char)*c))
			return false;
	return true;
}

int inpod_mode_add_reroute(struct inpod_mode *m, const char *ifname, char *err, size_t errlen)
{
	if (!inpod_mode_ifname_valid(ifname)) {
		errbuf_set(err, errlen,
			   "\"%.64s\" is not a network interface name (1-15 characters, no '/', ':' or spaces)",
			   ifname);
		return -EINVAL;
	}
	if (!strcmp(ifname, "lo")) {
		/* The tunnel's own connections to the app cross lo: they would
		 * loop back into 15001. */
		errbuf_set(err, errlen, "lo cannot be rerouted: the pod's own loopback traffic, the tunnel's included, would loop into port %d",
			   PORT_OUTBOUND);
		return -EINVAL;
	}
	for (size_t i = 0; i < m->n_reroute; i++) {
		if (!strcmp(m->reroute[i], ifname)) {
			errbuf_set(err, errlen, "interface %s is listed twice", ifname);
			return -EINVAL;
		}
	}
	if (m->n_reroute == INPOD_MAX_REROUTE) {
		errbuf_set(err, errlen, "more than %d interfaces", INPOD_MAX_REROUTE);
		return -EINVAL;
	}
	snprintf(m->reroute[m->n_reroute++], INPOD_IFNAMSIZ, "%s", ifname);
	return 0;
}

int inpod_mode_parse_reroute(struct inpod_mode *m, const char *csv, char *err, size_t errlen)
{
	struct inpod_mode tmp = *m;
	const char *p = csv;

	tmp.n_reroute = 0;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char name[64];
		int ret;

		while (len && isspace((unsigned char)*p)) {
			p++;
			len--;
		}
		while (len && isspace((unsigned char)p[len - 1]))
			len--;
		if (len >= sizeof(name)) {
			errbuf_set(err, errlen, "\"%.32s...\" is not a network interface name", p);
			return -EINVAL;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		if (len && (ret = inpod_mode_add_reroute(&tmp, name, err, errlen)) < 0)
			return ret;
		p += (end ? (size_t)(end - p) + 1 : strlen(p));
	}
	*m = tmp;
	return 0;
}
