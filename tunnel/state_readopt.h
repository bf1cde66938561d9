/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Re-adoption of the pods whose state records could not be read at start
 * (state_readopt.c says how a pod is found and verified). Main thread.
 */
#ifndef WARREN_TUNNEL_STATE_READOPT_H
#define WARREN_TUNNEL_STATE_READOPT_H

struct tunnel;

/* The pods of the records set aside at start that still wait: each looked
 * for in its netns and adopted when found and verified, else left failed
 * closed; the outcome goes into its GET /state_records entry. Nothing
 * before adoption is done or while draining; without a model they wait
 * for one. */
void state_readopt_bad(struct tunnel *t);

#endif
