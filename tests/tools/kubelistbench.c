/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tunnel's list path (tunnel/kube_watch.c) offline, phase by phase, on
 * list pages saved from an API server (tests/bench/kube.sh SAVE_LISTS=dir):
 * the text pruned, parsed by jansson, each item trimmed, compacted, checked
 * by the model builder and stored, the page freed, then the model built
 * from the store (mesh_build_shared) and everything freed. CPU ms per
 * phase, per round; the rounds alternate how much is cut before the parse:
 * "managed" (metadata.managedFields of every object, as before pods were
 * pruned) and "pod" (a pod's fields the model never reads too). Also
 * "parse-min": jansson alone on the pod pages already pruned (the floor of
 * the parse while every node reads every pod).
 *
 *   kubelistbench ROUNDS FILE...   (files named pods.* are the Pod list)
 *
 * KLB_ONLY=pod or managed: only that mode (to profile it alone).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/kube.h"
#include "conf/kube_prune.h"
#include "model/mesh.h"

struct page {
	char *text;
	size_t len;
	bool pod;
};

static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int read_page(const char *path, struct page *p)
{
	FILE *f = fopen(path, "rb");
	long n;

	if (!f)
		return -errno;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p->text = malloc((size_t)n + 1);
	if (!p->text || fread(p->text, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	p->len = (size_t)n;
	p->pod = strstr(path, "pods.") != NULL;
	return 0;
}

enum { PH_PRUNE, PH_PARSE, PH_STORE, PH_FREE_PAGE, PH_BUILD, PH_FREE_ALL, PH_N };
static const char *const ph_names[PH_N] = { "prune", "parse", "store", "free-page", "build",
					     "free-all" };

static int one_round(struct page *pages, size_t n, bool prune_pods, double *ph, size_t *bytes)
{
	json_t *store = json_object(), *all = json_array();
	struct mesh *m = NULL;
	char err[512], key[512];
	size_t kept = 0;
	double t;

	*bytes = 0;
	for (size_t k = 0; k < n; k++) {
		char *buf = malloc(pages[k].len + 1);
		const char *apiv;
		json_t *body, *it;
		size_t len, bad, i;

		memcpy(buf, pages[k].text, pages[k].len);
		t = cpu_ms();
		if (kube_json_prune(buf, pages[k].len, KUBE_PRUNE_LIST, prune_pods && pages[k].pod, &len,
				    &bad)) {
			fprintf(stderr, "page %zu: not JSON at byte %zu\n", k, bad);
			return -1;
		}
		ph[PH_PRUNE] += cpu_ms() - t;
		*bytes += len;
		t = cpu_ms();
		body = json_loadb(buf, len, 0, NULL);
		ph[PH_PARSE] += cpu_ms() - t;
		if (!body)
			return -1;
		t = cpu_ms();
		apiv = json_string_value(json_object_get(body, "apiVersion"));
		json_array_foreach(json_object_get(body, "items"), i, it) {
			json_t *keep;

			kube_obj_trim(it, apiv, pages[k].pod ? "Pod" : "Service");
			if (kube_obj_key(it, key, sizeof(key)))
				continue;
			keep = kube_obj_compact(it);
			if (!keep || mesh_check_object(keep, "bench", err, sizeof(err)) < 0) {
				json_decref(keep);
				continue;
			}
			json_object_set_new(store, key, keep);
		}
		ph[PH_STORE] += cpu_ms() - t;
		t = cpu_ms();
		json_decref(body);
		free(buf);
		ph[PH_FREE_PAGE] += cpu_ms() - t;
	}
	t = cpu_ms();
	{
		const char *k;
		json_t *o;

		json_object_foreach(store, k, o)
			json_array_append(all, o);
	}
	if (mesh_build_shared(all, "bench", NULL, NULL, NULL, NULL, &kept, &m, err, sizeof(err))) {
		fprintf(stderr, "build: %s\n", err);
		return -1;
	}
	ph[PH_BUILD] += cpu_ms() - t;
	t = cpu_ms();
	mesh_free(m);
	json_decref(all);
	json_decref(store);
	ph[PH_FREE_ALL] += cpu_ms() - t;
	return 0;
}

int main(int argc, char **argv)
{
	struct page *pages;
	int rounds;
	size_t n;

	if (argc < 3) {
		fprintf(stderr, "usage: kubelistbench ROUNDS FILE...\n");
		return 2;
	}
	rounds = atoi(argv[1]);
	n = (size_t)argc - 2;
	pages = calloc(n, sizeof(*pages));
	for (size_t k = 0; k < n; k++)
		if (read_page(argv[k + 2], &pages[k])) {
			fprintf(stderr, "%s: cannot read\n", argv[k + 2]);
			return 1;
		}
	for (int r = 0; r < rounds; r++) {
		for (int mode = 0; mode < 2; mode++) {
			const char *only = getenv("KLB_ONLY");
			double ph[PH_N] = { 0 }, total = 0;
			size_t bytes;

			if (only && strcmp(only, mode ? "pod" : "managed"))
				continue;
			if (one_round(pages, n, mode == 1, ph, &bytes))
				return 1;
			printf("round %d %-8s %8zu bytes parsed:", r, mode ? "pod" : "managed", bytes);
			for (int i = 0; i < PH_N; i++) {
				printf(" %s %.1f", ph_names[i], ph[i]);
				total += ph[i];
			}
			printf(" total %.1f ms\n", total);
		}
		{
			/* jansson alone on the pruned pod pages */
			double t, parse = 0;

			for (size_t k = 0; k < n; k++) {
				char *buf;
				size_t len, bad;
				json_t *b;

				if (!pages[k].pod)
					continue;
				buf = malloc(pages[k].len);
				memcpy(buf, pages[k].text, pages[k].len);
				kube_json_prune(buf, pages[k].len, KUBE_PRUNE_LIST, true, &len, &bad);
				t = cpu_ms();
				b = json_loadb(buf, len, 0, NULL);
				json_decref(b);
				parse += cpu_ms() - t;
				free(buf);
			}
			printf("round %d parse-min (jansson alone, pruned pod pages, free included) %.1f ms\n",
			       r, parse);
		}
	}
	return 0;
}
