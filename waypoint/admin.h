/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The waypoint's admin API (admin.c), on a Unix socket (mode 0600) that
 * warrenctl reads (`warrenctl --socket PATH waypoint [routes|policies]`).
 * Read-only, JSON:
 *
 *   GET /waypoint           the Gateway, our identity, readiness, and the
 *                           model's source (waypoint/source.h: generation,
 *                           errors, refused objects, Kubernetes state)
 *   GET /waypoint/routes    the HTTPRoutes of the model in use: parents
 *                           (Service:port) and their rules' matches and
 *                           backends, each parent's state (served here,
 *                           refused)
 *   GET /waypoint/policies  the AuthorizationPolicies compiled for this
 *                           waypoint: action, state, messages
 *
 * Ownership: the admin keeps pointers to w and src (both outlive it).
 * Single-threaded (w->loop).
 */
#ifndef WARREN_WAYPOINT_ADMIN_H
#define WARREN_WAYPOINT_ADMIN_H

struct wp;
struct wp_source;
struct wp_admin;

/* 0 or -errno (logged). */
int wp_admin_start(struct wp *w, struct wp_source *src, const char *path, struct wp_admin **out);
void wp_admin_free(struct wp_admin *a);

#endif
