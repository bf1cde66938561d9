/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client connection pool (its entry points and dial backoff are in
 * hbone.h, "pool"): connections keyed by source identity, destination and
 * expected server identities, reused while they have a stream slot.
 *
 * Internal hooks a pooled connection (c->pool set) calls on its loop's
 * thread: hbone_pool_conn_opened() when its handshake completed (forgets
 * the destination's failed dials), hbone_pool_conn_gone() once, as it is
 * destroyed (a dial that never opened counts as failed; unlinks it).
 */
#ifndef WARREN_HBONE_POOL_H
#define WARREN_HBONE_POOL_H

struct hbone_conn;

void hbone_pool_conn_opened(struct hbone_conn *c);
void hbone_pool_conn_gone(struct hbone_conn *c);

#endif
