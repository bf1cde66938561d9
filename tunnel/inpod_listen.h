/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A pod's in-pod listeners (inpod_listen.c): made in the pod's netns, one
 * set per worker shard, paused when fds run out. Main thread, except
 * where a function says otherwise; pod_listen and pod_unlisten isolate the
 * workers (workers.h) only while they change the shards' registrations.
 */
#ifndef WARREN_TUNNEL_INPOD_LISTEN_H
#define WARREN_TUNNEL_INPOD_LISTEN_H

#include <stddef.h>

struct pod;
struct pod_listener;

/* Create the three listeners of every shard of primary p inside the pod
 * netns (all or none), then pod_publish(). 0 or -errno with err. */
int pod_listen(struct pod *p, char *err, size_t errlen);
/* An eBPF-captured pod: put its listening 15001/15006 into the pod's
 * pinned listener map (again: a re-ADD may have re-created the map). 0
 * for other pods. 0 or -errno with err. */
int pod_publish(struct pod *p, char *err, size_t errlen);
void pod_unlisten(struct pod *p);
/* accept4() failed with err (EMFILE, ENFILE, ENOBUFS, ENOMEM or another
 * lasting error): the connection stays queued and the listener readable,
 * so stop polling it (no spin) until a timer, or a connection of its shard
 * closing (pod_listen_resume), tries again. Logs at most every 10 s over
 * all listeners and counts warren_accept_paused_total. Worker thread. */
void pod_listen_pause(struct pod_listener *pl, int err);
/* Shard p freed fds: resume its paused listeners now. */
void pod_listen_resume(struct pod *p);

#endif
