/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin API (admin.c: its routes are listed there), on the main
 * loop.
 */
#ifndef WARREN_TUNNEL_ADMIN_H
#define WARREN_TUNNEL_ADMIN_H

struct tunnel;

int admin_start(struct tunnel *t);
void admin_stop(struct tunnel *t);

#endif
