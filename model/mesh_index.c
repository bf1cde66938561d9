/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mesh model's hash indexes (contract: mesh_index.h). Open addressing
 * with linear probing; each table is at most half full, so a probe always
 * ends on an empty slot. Slots hold element index + 1 (0: empty). The
 * Service/pod relation is kept as two compressed lists (offsets + items),
 * built from the pods sorted by namespace.
 */
#include "model/mesh_index.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct table {
	uint32_t *slot;
	size_t mask;
};

/* items[off[i]] .. items[off[i + 1] - 1] belong to element i. */
struct lists {
	uint32_t *off, *items;
};

struct mesh_index {
	struct table pod_ip, svc_vip, pod_uid, pod_name, ns_name;
	struct lists svc_pods, pod_svcs;
	uint8_t *ip_conflict;   /* per pod_ip slot: the IP's best pods tie */
	/* per pod_ip slot: the IP it holds. A pod with two IPs has two slots, and
	 * a slot answers only for its own IP (not for another IP of its pod). */
	struct mesh_ip *ip_key;
	size_t n_conflicts;
	struct mesh_ip first_conflict;
};

struct pod_key {
	const char *ns, *name;
};

typedef bool (*match_fn)(const struct mesh *m, size_t elem, const void *key);

static uint64_t mesh_index_fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

#define FNV_BASIS 1469598103934665603ull

static uint64_t mesh_index_hash_ip(const struct mesh_ip *ip)
{
	uint64_t h = mesh_index_fnv(FNV_BASIS, &ip->family, sizeof(ip->family));

	return ip->family == AF_INET ? mesh_index_fnv(h, &ip->addr.v4, sizeof(ip->addr.v4))
				     : mesh_index_fnv(h, &ip->addr.v6, sizeof(ip->addr.v6));
}

/* a and b hashed as "a\0b" (b may be NULL). */
static uint64_t mesh_index_hash_strs(const char *a, const char *b)
{
	uint64_t h = mesh_index_fnv(FNV_BASIS, a, strlen(a) + 1);

	return b ? mesh_index_fnv(h, b, strlen(b)) : h;
}

static bool mesh_index_service_has_vip(const struct mesh *m, size_t e, const void *key)
{
	return mesh_ip_in(m->services[e].vips, m->services[e].n_vips, key);
}

static bool mesh_index_pod_has_uid(const struct mesh *m, size_t e, const void *key)
{
	return !strcmp(m->pods[e].uid, key);
}

static bool mesh_index_pod_has_name(const struct mesh *m, size_t e, const void *key)
{
	const struct pod_key *k = key;

	return !strcmp(m->pods[e].name, k->name) && !strcmp(m->pods[e].namespace, k->ns);
}

static bool mesh_index_namespace_has_name(const struct mesh *m, size_t e, const void *key)
{
	return !strcmp(m->namespaces[e].name, key);
}

static int mesh_index_table_init(struct table *t, size_t n)
{
	size_t cap = 8;

	while (cap < 2 * n)
		cap <<= 1;
	t->slot = calloc(cap, sizeof(*t->slot));
	if (!t->slot)
		return -ENOMEM;
	t->mask = cap - 1;
	return 0;
}

/* Adds elem under key unless an element with that key is there already. */
static void mesh_index_table_put(struct table *t, uint64_t h, const struct mesh *m, match_fn match,
		      const void *key, size_t elem)
{
	for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
		if (!t->slot[i]) {
			t->slot[i] = (uint32_t)elem + 1;
			return;
		}
		if (match(m, t->slot[i] - 1, key))
			return;
	}
}

static ssize_t mesh_index_table_get(const struct table *t, uint64_t h, const struct mesh *m, match_fn match,
			 const void *key)
{
	for (size_t i = h & t->mask; t->slot[i]; i = (i + 1) & t->mask)
		if (match(m, t->slot[i] - 1, key))
			return (ssize_t)t->slot[i] - 1;
	return -1;
}

/* The pod IP table keeps, per IP, the pod that best holds it
 * (rank: mesh_pod_ip_rank); a tie at the top marks the slot a conflict. */
static void mesh_index_ip_put(struct mesh_index *x, const struct mesh *m, mesh_index_rank_fn rank,
		   const struct mesh_ip *ip, size_t elem)
{
	struct table *t = &x->pod_ip;

	for (size_t i = mesh_index_hash_ip(ip) & t->mask;; i = (i + 1) & t->mask) {
		int have, want;

		if (!t->slot[i]) {
			t->slot[i] = (uint32_t)elem + 1;
			x->ip_key[i] = *ip;
			return;
		}
		if (!mesh_ip_equal(&x->ip_key[i], ip))
			continue;
		have = rank(m, &m->pods[t->slot[i] - 1]);
		want = rank(m, &m->pods[elem]);
		if (want > have) {
			t->slot[i] = (uint32_t)elem + 1;
			x->ip_conflict[i] = 0;
		} else if (want == have) {
			x->ip_conflict[i] = 1;
		}
		return;
	}
}

static int mesh_index_cmp_pod_ns(const void *a, const void *b, void *ctx)
{
	const struct mesh *m = ctx;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	int c = strcmp(m->pods[x].namespace, m->pods[y].namespace);

	return c ? c : (x > y) - (x < y);
}

/* The first position in by_ns (pods sorted by namespace) of namespace ns. */
static size_t mesh_index_ns_lower_bound(const struct mesh *m, const uint32_t *by_ns, const char *ns)
{
	size_t lo = 0, hi = m->n_pods;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(m->pods[by_ns[mid]].namespace, ns) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Calls fn(s, p) for every pod p that Service s selects, s in model order,
 * p in model order within s. */
static void mesh_index_for_each_selection(const struct mesh *m, const uint32_t *by_ns,
			       void (*fn)(struct mesh_index *x, size_t s, uint32_t p),
			       struct mesh_index *x)
{
	for (size_t s = 0; s < m->n_services; s++) {
		const struct mesh_service *svc = &m->services[s];

		if (!svc->selector.n)
			continue; /* an empty selector picks nothing */
		for (size_t i = mesh_index_ns_lower_bound(m, by_ns, svc->namespace);
		     i < m->n_pods && !strcmp(m->pods[by_ns[i]].namespace, svc->namespace); i++)
			if (mesh_selector_matches(&svc->selector, &m->pods[by_ns[i]].labels))
				fn(x, s, by_ns[i]);
	}
}

static void mesh_index_count_selection(struct mesh_index *x, size_t s, uint32_t p)
{
	x->svc_pods.off[s + 1]++;
	x->pod_svcs.off[p + 1]++;
}

static void mesh_index_fill_selection(struct mesh_index *x, size_t s, uint32_t p)
{
	/* off[i] is used as the fill cursor of element i, then restored */
	x->svc_pods.items[x->svc_pods.off[s]++] = p;
	x->pod_svcs.items[x->pod_svcs.off[p]++] = (uint32_t)s;
}

static void mesh_index_lists_free(struct lists *l)
{
	free(l->off);
	free(l->items);
}

static int mesh_index_lists_alloc(struct lists *l, size_t n_elems)
{
	l->off = calloc(n_elems + 1, sizeof(*l->off));
	return l->off ? 0 : -ENOMEM;
}

/* Counts in off[1..n] become offsets; items allocated for them. */
static int mesh_index_lists_prefix(struct lists *l, size_t n_elems)
{
	for (size_t i = 0; i < n_elems; i++)
		l->off[i + 1] += l->off[i];
	l->items = malloc((l->off[n_elems] ? l->off[n_elems] : 1) * sizeof(*l->items));
	return l->items ? 0 : -ENOMEM;
}

/* After filling, off[i] is where element i + 1 starts: shift back. */
static void mesh_index_lists_restore(struct lists *l, size_t n_elems)
{
	memmove(l->off + 1, l->off, n_elems * sizeof(*l->off));
	l->off[0] = 0;
}

static int mesh_index_build_selection(struct mesh_index *x, const struct mesh *m)
{
	uint32_t *by_ns = malloc((m->n_pods ? m->n_pods : 1) * sizeof(*by_ns));
	int ret = -ENOMEM;

	if (!by_ns || mesh_index_lists_alloc(&x->svc_pods, m->n_services) || mesh_index_lists_alloc(&x->pod_svcs, m->n_pods))
		goto out;
	for (size_t i = 0; i < m->n_pods; i++)
		by_ns[i] = (uint32_t)i;
	qsort_r(by_ns, m->n_pods, sizeof(*by_ns), mesh_index_cmp_pod_ns, (void *)m);
	mesh_index_for_each_selection(m, by_ns, mesh_index_count_selection, x);
	if (mesh_index_lists_prefix(&x->svc_pods, m->n_services) || mesh_index_lists_prefix(&x->pod_svcs, m->n_pods))
		goto out;
	mesh_index_for_each_selection(m, by_ns, mesh_index_fill_selection, x);
	mesh_index_lists_restore(&x->svc_pods, m->n_services);
	mesh_index_lists_restore(&x->pod_svcs, m->n_pods);
	ret = 0;
out:
	free(by_ns);
	return ret;
}

void mesh_index_free(struct mesh_index *x)
{
	if (!x)
		return;
	free(x->pod_ip.slot);
	free(x->ip_conflict);
	free(x->ip_key);
	free(x->svc_vip.slot);
	free(x->pod_uid.slot);
	free(x->pod_name.slot);
	free(x->ns_name.slot);
	mesh_index_lists_free(&x->svc_pods);
	mesh_index_lists_free(&x->pod_svcs);
	free(x);
}

struct mesh_index *mesh_index_build(const struct mesh *m, mesh_index_rank_fn rank)
{
	struct mesh_index *x = calloc(1, sizeof(*x));
	size_t n_ips = 0, n_vips = 0;

	if (!x || m->n_pods >= UINT32_MAX || m->n_services >= UINT32_MAX)
		goto fail;
	for (size_t i = 0; i < m->n_pods; i++)
		n_ips += m->pods[i].n_ips;
	for (size_t i = 0; i < m->n_services; i++)
		n_vips += m->services[i].n_vips;
	if (mesh_index_table_init(&x->pod_ip, n_ips) || mesh_index_table_init(&x->svc_vip, n_vips) ||
	    mesh_index_table_init(&x->pod_uid, m->n_pods) || mesh_index_table_init(&x->pod_name, m->n_pods) ||
	    mesh_index_table_init(&x->ns_name, m->n_namespaces) || mesh_index_build_selection(x, m))
		goto fail;
	x->ip_conflict = calloc(x->pod_ip.mask + 1, 1);
	x->ip_key = calloc(x->pod_ip.mask + 1, sizeof(*x->ip_key));
	if (!x->ip_conflict || !x->ip_key)
		goto fail;
	for (size_t i = 0; i < m->n_pods; i++) {
		const struct mesh_pod *p = &m->pods[i];
		struct pod_key k = { p->namespace, p->name };

		for (size_t j = 0; !p->host_network && !p->finished && j < p->n_ips; j++)
			mesh_index_ip_put(x, m, rank, &p->ips[j], i);
		if (*p->uid)
			mesh_index_table_put(&x->pod_uid, mesh_index_hash_strs(p->uid, NULL), m, mesh_index_pod_has_uid, p->uid, i);
		mesh_index_table_put(&x->pod_name, mesh_index_hash_strs(p->namespace, p->name), m, mesh_index_pod_has_name, &k, i);
	}
	for (size_t i = 0; i < m->n_services; i++)
		for (size_t j = 0; j < m->services[i].n_vips; j++)
			mesh_index_table_put(&x->svc_vip, mesh_index_hash_ip(&m->services[i].vips[j]), m, mesh_index_service_has_vip,
				  &m->services[i].vips[j], i);
	for (size_t i = 0; i < m->n_namespaces; i++)
		mesh_index_table_put(&x->ns_name, mesh_index_hash_strs(m->namespaces[i].name, NULL), m, mesh_index_namespace_has_name,
			  m->namespaces[i].name, i);
	/* Count the conflicted IPs once each (marked 2 once counted), in model order. */
	for (size_t i = 0; i < m->n_pods; i++) {
		const struct mesh_pod *p = &m->pods[i];

		for (size_t j = 0; !p->host_network && !p->finished && j < p->n_ips; j++) {
			const struct table *t = &x->pod_ip;

			for (size_t k = mesh_index_hash_ip(&p->ips[j]) & t->mask; t->slot[k]; k = (k + 1) & t->mask) {
				if (!mesh_ip_equal(&x->ip_key[k], &p->ips[j]))
					continue;
				if (x->ip_conflict[k] == 1) {
					x->ip_conflict[k] = 2;
					if (!x->n_conflicts++)
						x->first_conflict = p->ips[j];
				}
				break;
			}
		}
	}
	return x;
fail:
	mesh_index_free(x);
	return NULL;
}

ssize_t mesh_index_pod_by_ip(const struct mesh_index *x, const struct mesh *m, const struct mesh_ip *ip)
{
	const struct table *t = &x->pod_ip;

	(void)m;
	for (size_t i = mesh_index_hash_ip(ip) & t->mask; t->slot[i]; i = (i + 1) & t->mask)
		if (mesh_ip_equal(&x->ip_key[i], ip))
			return x->ip_conflict[i] ? -2 : (ssize_t)t->slot[i] - 1;
	return -1;
}

size_t mesh_index_ip_conflicts(const struct mesh_index *x, struct mesh_ip *first)
{
	if (x->n_conflicts && first)
		*first = x->first_conflict;
	return x->n_conflicts;
}

ssize_t mesh_index_service_by_vip(const struct mesh_index *x, const struct mesh *m,
				  const struct mesh_ip *ip)
{
	return mesh_index_table_get(&x->svc_vip, mesh_index_hash_ip(ip), m, mesh_index_service_has_vip, ip);
}

ssize_t mesh_index_pod_by_uid(const struct mesh_index *x, const struct mesh *m, const char *uid)
{
	return mesh_index_table_get(&x->pod_uid, mesh_index_hash_strs(uid, NULL), m, mesh_index_pod_has_uid, uid);
}

ssize_t mesh_index_pod_by_name(const struct mesh_index *x, const struct mesh *m, const char *ns,
			       const char *name)
{
	struct pod_key k = { ns, name };

	return mesh_index_table_get(&x->pod_name, mesh_index_hash_strs(ns, name), m, mesh_index_pod_has_name, &k);
}

ssize_t mesh_index_namespace(const struct mesh_index *x, const struct mesh *m, const char *name)
{
	return mesh_index_table_get(&x->ns_name, mesh_index_hash_strs(name, NULL), m, mesh_index_namespace_has_name, name);
}

const uint32_t *mesh_index_service_pods(const struct mesh_index *x, size_t svc, size_t *n)
{
	*n = x->svc_pods.off[svc + 1] - x->svc_pods.off[svc];
	return x->svc_pods.items + x->svc_pods.off[svc];
}

const uint32_t *mesh_index_pod_services(const struct mesh_index *x, size_t pod, size_t *n)
{
	*n = x->pod_svcs.off[pod + 1] - x->pod_svcs.off[pod];
	return x->pod_svcs.items + x->pod_svcs.off[pod];
}
