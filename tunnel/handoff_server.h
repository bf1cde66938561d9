/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The plugin's socket (handoff_server.c, protocol in conf/handoff.h):
 * query, add, del, check, status and gc, held during adoption and while a
 * pod's model is missing. Main thread.
 */
#ifndef WARREN_TUNNEL_HANDOFF_SERVER_H
#define WARREN_TUNNEL_HANDOFF_SERVER_H

#include <jansson.h>

struct tunnel;

int handoff_server_start(struct tunnel *t);
/* Frees the held requests too (unanswered: their clients see EOF). */
void handoff_server_stop(struct tunnel *t);
/* Adoption is complete: answer the requests held meanwhile, in order. */
void handoff_server_resume(struct tunnel *t);
/* A new model is in use: answer the requests that waited for it. */
void handoff_server_model_changed(struct tunnel *t);
/* A request of the tunnel's own (kube_enroll.c), through the plugin's code
 * path: answered at once (main loop, after adoption). *pfd as for "add". */
json_t *handoff_server_local(struct tunnel *t, json_t *req, int *pfd);

#endif
