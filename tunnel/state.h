/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pod state records in stateDir (state.c; the record format is
 * state_record.h) and the adoption of the recorded pods at start. Main
 * thread.
 */
#ifndef WARREN_TUNNEL_STATE_H
#define WARREN_TUNNEL_STATE_H

#include <stddef.h>

#include <jansson.h>

struct tunnel;
struct pod;

/* Writes p's record atomically. Releases the main loop's guard while it
 * writes the file: call it only while no worker can reach p (before
 * pod_listen). 0, or -errno with err filled. */
int state_write(struct tunnel *t, const struct pod *p, char *err, size_t errlen);
/* Removes uid's record (the workers run meanwhile). 0 or -errno
 * (logged). */
int state_remove(struct tunnel *t, const char *uid);
/* Lists the pods recorded in stateDir and re-adopts them on the loop, a
 * batch per iteration, so readiness and the handoff socket answer
 * meanwhile; when done sets t->adopted and calls handoff_server_resume().
 * 0 or -ENOMEM (nothing started). */
int state_adopt_start(struct tunnel *t);
/* Shutdown: drop an unfinished adoption (the records stay on disk) and
 * the list of records set aside. */
void state_adopt_stop(struct tunnel *t);
/* The records that could not be read at start, each moved aside to
 * <uid>.json.bad-<unix time> in the same directory (kept for a human, never
 * deleted): [{uid, record, reason}], a new reference (NULL on ENOMEM). */
json_t *state_bad_records_json(const struct tunnel *t);
/* Opens the listeners of the adopted pods that wait for the tunnel to
 * serve or for their certificate (state.c says why they wait); nothing
 * while it cannot serve, or drains. Main thread; called when a model is
 * installed and after certificate renewals. */
void state_listen_adopted(struct tunnel *t);
/* "adopting N/M pods" while adopting; valid until the next loop callback. */
const char *state_adopt_progress(const struct tunnel *t);
/* state_uid_valid(): tunnel/state_record.h. */

#endif
