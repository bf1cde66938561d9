/* SPDX-License-Identifier: Apache-2.0 */
/* The mesh model's pure functions (contract in mesh_types.h). */
#include "model/mesh_types.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *mesh_label(const struct mesh_labels *l, const char *key)
{
	if (!l || !key)
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->items[i].key, key))
			return l->items[i].value;
	return NULL;
}

bool mesh_selector_matches(const struct mesh_labels *selector, const struct mesh_labels *labels)
{
	if (!selector || !selector->n)
		return false;
	for (size_t i = 0; i < selector->n; i++) {
		const char *v = mesh_label(labels, selector->items[i].key);

		if (!v || strcmp(v, selector->items[i].value))
			return false;
	}
	return true;
}

/* ---- addresses ---- */

bool mesh_ip_in(const struct mesh_ip *ips, size_t n, const struct mesh_ip *ip)
{
	for (size_t i = 0; i < n; i++)
		if (mesh_ip_equal(&ips[i], ip))
			return true;
	return false;
}

int mesh_ip_parse(const char *s, struct mesh_ip *ip)
{
	memset(ip, 0, sizeof(*ip));
	if (!s)
		return -EINVAL;
	if (inet_pton(AF_INET, s, &ip->addr.v4) == 1) {
		ip->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, &ip->addr.v6) == 1) {
		ip->family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

bool mesh_ip_equal(const struct mesh_ip *a, const struct mesh_ip *b)
{
	if (a->family != b->family)
		return false;
	if (a->family == AF_INET)
		return a->addr.v4.s_addr == b->addr.v4.s_addr;
	if (a->family == AF_INET6)
		return !memcmp(&a->addr.v6, &b->addr.v6, sizeof(a->addr.v6));
	return false;
}

const char *mesh_ip_str(const struct mesh_ip *ip, char *buf, size_t len)
{
	if (!len)
		return buf;
	if (!ip || (ip->family != AF_INET && ip->family != AF_INET6) ||
	    !inet_ntop(ip->family, &ip->addr, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}
