/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Draining on SIGTERM (drain.c says how). Main thread.
 */
#ifndef WARREN_TUNNEL_DRAIN_H
#define WARREN_TUNNEL_DRAIN_H

struct tunnel;

/* SIGTERM/SIGINT: start draining (drain.c says how), or stop the loop at
 * once when already draining or drainSeconds is 0. */
void tunnel_drain_start(struct tunnel *t, int signo);

#endif
