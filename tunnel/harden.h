/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the tunnel gives up once start-up is done (adoption finished):
 *
 * - CAP_SYS_PTRACE, which only re-adoption needs (opening another uid's
 *   /proc/PID/ns/net). Capabilities are per thread: each worker drops it
 *   when it starts (it never adopts), the main thread when adoption ends.
 * - Every syscall outside an allow-list, by a seccomp filter installed on
 *   every thread at once (SECCOMP_FILTER_FLAG_TSYNC). A refused syscall
 *   fails with EPERM (clone3 with ENOSYS, so that glibc falls back to
 *   clone, which is allowed for threads only) rather than killing the
 *   process: a syscall missing from the list (a new libc or OpenSSL
 *   release) then fails one operation, which is logged and fails closed,
 *   instead of taking down every pod's data path on the node. execve,
 *   ptrace, fork, mount, bpf, kexec and the rest are refused either way.
 *
 * keepCapabilities: false (debugging) skips both. Sanitizer builds allow
 * what LeakSanitizer's exit check needs (clone, ptrace, wait4).
 */
#ifndef WARREN_HARDEN_H
#define WARREN_HARDEN_H

#include <stddef.h>

struct tunnel;

/* Drops cap from the calling thread's effective and permitted sets.
 * 0 or -errno. */
int harden_drop_thread_cap(unsigned cap);
/* Installs the allow-list (no_new_privs first), on every thread when
 * all_threads. 0 or -errno with err. */
int harden_seccomp_install(int all_threads, char *err, size_t errlen);
/* The same filter from another process's lists (tunnel/keeper.c): the
 * syscall numbers allowed and the bpf(2) commands allowed. */
int harden_seccomp_install_list(const int *allowed, size_t n, const unsigned *bpf_cmds, size_t c, int all_threads,
				char *err, size_t errlen);
/* Adoption is done: the main thread drops CAP_SYS_PTRACE, then the filter
 * goes on every thread. Failures are logged (the tunnel keeps running: it
 * is only less hardened, and says so). */
void harden_after_startup(struct tunnel *t);

#endif
