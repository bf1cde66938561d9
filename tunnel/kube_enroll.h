/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Enrollment that follows labels in Kubernetes mode (kube_enroll.c): the
 * pods known from the plugin, enrolled or released as the model changes.
 * Main thread.
 */
#ifndef WARREN_TUNNEL_KUBE_ENROLL_H
#define WARREN_TUNNEL_KUBE_ENROLL_H

#include <jansson.h>

struct tunnel;

/* A "query" carrying netns/containerId/ifname: remember where the pod is. */
void kube_enroll_remember(struct tunnel *t, json_t *req);
/* A "del" from the plugin: the pod is gone. */
void kube_enroll_forget(struct tunnel *t, json_t *req);
/* After a model change: enroll the remembered pods the model now enrolls,
 * release the enrolled ones it no longer does. */
void kube_enroll_reconcile(struct tunnel *t);
/* At start: what the last run remembered (stateDir/kube-seen.json). */
void kube_enroll_load(struct tunnel *t);
void kube_enroll_stop(struct tunnel *t);

#endif
