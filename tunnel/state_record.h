/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One pod's state record (<stateDir>/pods/<uid>.json, written by
 * state_write() from pod_to_json()), parsed and checked from bytes: no
 * I/O, no netns, no tunnel. state.c reads the file and does the rest of
 * adoption (duplicate uid, netns identity, in-pod rules); a record this
 * refuses is set aside there, never adopted.
 *
 * Fields: uid, containerId, ifname, namespace, name, serviceAccount, netns
 * (strings), netnsDev, netnsIno (integers), ips (optional array of
 * strings), captureInbound and rerouteInterfaces (optional, as in the
 * handoff: conf/handoff.h). Unknown keys are ignored (a record written by
 * a newer tunnel).
 *
 * Thread-safe (no shared state). Ownership: *rec owns the parsed JSON; its
 * strings and ips point into it and live until state_record_clear().
 */
#ifndef WARREN_TUNNEL_STATE_RECORD_H
#define WARREN_TUNNEL_STATE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "conf/inpod_mode.h"

/* Larger than any record the tunnel writes (a few hundred bytes). */
#define STATE_RECORD_MAX (64 * 1024)

struct state_record {
	json_t *json; /* owned */
	const char *uid, *container_id, *ifname, *namespace, *name, *service_account, *netns;
	uint64_t netns_dev, netns_ino;
	json_t *ips; /* borrowed from json; NULL when the record has none */
	struct inpod_mode mode;
};

/* Parse and check len bytes (not NUL-terminated). 0 with *rec filled (free
 * it with state_record_clear), or -EBADMSG with *rec zeroed and err naming
 * the bad field (or the JSON error and its position). */
int state_record_parse(const void *buf, size_t len, struct state_record *rec, char *err,
		       size_t errlen);
/* Release what state_record_parse filled; a zeroed *rec is fine. */
void state_record_clear(struct state_record *rec);
/* Safe as a file name component: [A-Za-z0-9._-], 1 to 128 characters, not
 * starting with a dot. */
bool state_uid_valid(const char *uid);

#endif
