/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The status annotation ambient.istio.io/redirection (kube_annotate.c), as
 * istio-cni sets it: "enabled" on every pod this tunnel has enrolled,
 * removed from every pod of this node that carries it and is not enrolled
 * here. Driven by kube_watch.c, whose curl multi handle carries the PATCH
 * requests; everything runs on the tunnel's main thread.
 *
 * struct kube_annotate lives inside struct kube_watch (kw and t set by
 * kube_watch_start); kube_annotate_stop() ends the requests in flight.
 */
#ifndef WARREN_KUBE_ANNOTATE_H
#define WARREN_KUBE_ANNOTATE_H

#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "tunnel/kube_watch.h"

struct kube_watch;
struct kpatch;
struct loop_timer;
struct tunnel;

struct kube_annotate {
	struct kube_watch *kw;
	struct tunnel *t;
	struct kpatch *patches;   /* PATCHes in flight */
	struct loop_timer *timer; /* a comparison with the model armed */
	uint64_t ok, failed;
};

/* Compare the annotations with the model in ms (no-op when armed). */
void kube_annotate_soon(struct kube_annotate *ka, uint64_t ms);
/* A PATCH finished (its easy handle's CURLOPT_PRIVATE is the kpatch). */
void kube_annotate_done(struct kpatch *kp, CURLcode res);
void kube_annotate_stop(struct kube_annotate *ka);

#endif
