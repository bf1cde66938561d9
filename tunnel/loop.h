/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tunnel's reactor: one epoll instance, an fd-indexed table of
 * callbacks, and one-shot timers. Every callback runs on the thread that
 * called loop_run(); another thread may touch the loop only while holding
 * its guard (loop_set_guard), which loop_run() holds except while it waits
 * (loop_stop() and loop_wake() need no guard). A callback may add, modify
 * or delete any registration (its own included) and close fds; events
 * already collected for an fd deleted in the same round are dropped.
 * Ownership: the loop never closes fds it did not create; callers
 * loop_del() before close(), or loop_forget() when they hold the only
 * reference to the file and close it at once (close() then takes it out
 * of the epoll set, one syscall fewer per socket). Timers are owned by
 * the loop until they fire or are cancelled (the handle is invalid after
 * either).
 */
#ifndef WARREN_LOOP_H
#define WARREN_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_timer;

typedef void (*loop_fd_cb)(struct loop *l, int fd, uint32_t events, void *ctx);
typedef void (*loop_timer_cb)(struct loop *l, void *ctx);
/* enter true: take the loop's lock; false: release it. */
typedef void (*loop_guard_cb)(void *ctx, bool enter);

struct loop *loop_new(void);
void loop_free(struct loop *l);

/* events: EPOLLIN/EPOLLOUT/... (level-triggered unless EPOLLET given).
 * 0 or -errno (-EEXIST when fd is already registered). */
int loop_add(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *ctx);
int loop_mod(struct loop *l, int fd, uint32_t events);
int loop_del(struct loop *l, int fd);
/* Registers fd, or gives a registered fd new events, callback and context
 * in one EPOLL_CTL_MOD (a handover between owners without DEL + ADD).
 * 0 or -errno; on failure the old registration stays. */
int loop_set(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *ctx);
/* Forgets fd's registration without telling the kernel: only right before
 * close() of an fd that has no duplicate (see above). No-op if unknown. */
void loop_forget(struct loop *l, int fd);

/* One-shot timer after ms milliseconds. NULL on allocation failure.
 * Armed from a thread other than the loop's, it wakes the loop. */
struct loop_timer *loop_timer_add(struct loop *l, uint64_t ms, loop_timer_cb cb, void *ctx);
void loop_timer_cancel(struct loop *l, struct loop_timer *t);

/* The loop whose loop_run() is on this thread's stack (its callbacks are
 * running), or NULL. */
struct loop *loop_current(void);

/* Monotonic milliseconds. */
uint64_t loop_now_ms(void);

/* Run until loop_stop(). Returns 0, or -errno on an epoll failure. */
int loop_run(struct loop *l);
/* Safe from any thread (no guard needed) and from a signal handler. A stop
 * that comes before loop_run() makes it return at once. */
void loop_stop(struct loop *l);
/* Make a waiting loop_run() go round (safe from any thread). */
void loop_wake(struct loop *l);
/* Called with enter true once epoll_wait() returns and false before it
 * waits again (and around loop_run() as a whole). Set before loop_run(). */
void loop_set_guard(struct loop *l, loop_guard_cb cb, void *ctx);

#endif
