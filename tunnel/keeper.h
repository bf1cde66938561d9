/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The keeper of the pool of spare eBPF capture programs
 * (netlink/ebpf_pool.h, docs/ebpf.md): a small process forked at start-up,
 * before the tunnel has threads or drops privileges. It keeps only
 * CAP_BPF and CAP_NET_ADMIN (loading the program and creating its SOCKMAP)
 * under its own seccomp allow-list, reads nothing but the tunnel's
 * messages (a bpfDir each), and pays libbpf's feature probes once. The
 * tunnel itself never loads a BPF program: its allow-list still refuses
 * BPF_PROG_LOAD.
 *
 * The tunnel tells it each bpfDir it sees an eBPF-mode pod in (an ADD's
 * handoff, a re-adopted record); the keeper tops that directory's pool up,
 * on its own time (nice 10), never on an ADD's path. When the tunnel goes
 * (its end of the socket closes: a stop, a crash), the keeper removes
 * every pool it kept that no other keeper holds, and exits.
 *
 * Main thread only.
 */
#ifndef WARREN_KEEPER_H
#define WARREN_KEEPER_H

#include <stdbool.h>

struct tunnel;

/* Fork the keeper (the process must still be single-threaded). keep_caps:
 * drop to the keeper's capabilities and install its filter (the tunnel's
 * keepCapabilities). The tunnel's end in t->keeper_fd. 0 or -errno
 * (logged; the tunnel runs on, its ADDs load their programs themselves). */
int keeper_start(struct tunnel *t, bool keep_caps);

/* Ask the keeper to top up bpf_dir's pool. Never blocks: a message the
 * keeper has no room for is dropped (the next one tops up as much). */
void keeper_nudge(struct tunnel *t, const char *bpf_dir);

/* The same once the handoff request being served is answered
 * (keeper_flush): the keeper's loading then does not compete with the
 * rest of that ADD for the CPU. */
void keeper_nudge_after_reply(struct tunnel *t, const char *bpf_dir);
void keeper_flush(struct tunnel *t);

/* Tell the keeper to stop and wait (at most 2 s) for it to remove the
 * pools, so that nothing of them outlives the tunnel's container. */
void keeper_stop(struct tunnel *t);

#endif
