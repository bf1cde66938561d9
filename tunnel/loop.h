/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tunnel's reactor: one epoll instance, an fd-indexed table of
 * callbacks, and one-shot timers. Single-threaded: every callback runs on
 * the thread that called loop_run(). A callback may add, modify or delete
 * any registration (its own included) and close fds; events already
 * collected for an fd deleted in the same round are dropped.
 * Ownership: the loop never closes fds it did not create; callers
 * loop_del() before close(). Timers are owned by the loop until they fire
 * or are cancelled (the handle is invalid after either).
 */
#ifndef WARREN_LOOP_H
#define WARREN_LOOP_H

#include <stdint.h>

struct loop;
struct loop_timer;

typedef void (*loop_fd_cb)(struct loop *l, int fd, uint32_t events, void *ctx);
typedef void (*loop_timer_cb)(struct loop *l, void *ctx);

struct loop *loop_new(void);
void loop_free(struct loop *l);

/* events: EPOLLIN/EPOLLOUT/... (level-triggered unless EPOLLET given).
 * 0 or -errno (-EEXIST when fd is already registered). */
int loop_add(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *ctx);
int loop_mod(struct loop *l, int fd, uint32_t events);
int loop_del(struct loop *l, int fd);

/* One-shot timer after ms milliseconds. NULL on allocation failure. */
struct loop_timer *loop_timer_add(struct loop *l, uint64_t ms, loop_timer_cb cb, void *ctx);
void loop_timer_cancel(struct loop *l, struct loop_timer *t);

/* Monotonic milliseconds. */
uint64_t loop_now_ms(void);

/* Run until loop_stop(). Returns 0, or -errno on an epoll failure. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

#endif
