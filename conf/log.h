/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging shared by every binary. Lines go to stderr and, when configured,
 * to a log file (appended, one line per call). Never log key material.
 * Not thread-safe to reconfigure; wlog() itself is safe to call from any
 * thread (one write(2) per line).
 */
#ifndef WARREN_LOG_H
#define WARREN_LOG_H

#include <stdbool.h>

enum wlog_level { WLOG_ERROR = 0, WLOG_WARN, WLOG_INFO, WLOG_DEBUG };

/* prog: short name printed on each line. file may be NULL (stderr only).
 * Returns 0 or -errno when the file cannot be opened (stderr still works). */
int wlog_init(const char *prog, const char *file, enum wlog_level level);
void wlog_set_level(enum wlog_level level);
enum wlog_level wlog_get_level(void);
/* Also write to stderr? Default true. */
void wlog_set_stderr(bool on);
/* "error" | "warn" | "info" | "debug" -> 0, or -EINVAL. */
int wlog_parse_level(const char *s, enum wlog_level *out);
const char *wlog_level_name(enum wlog_level level);
void wlog_close(void);

void wlog(enum wlog_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The level test comes before the arguments are evaluated: a hot path's
 * debug line (addresses formatted per connection) then costs one compare.
 * Relaxed atomic: the admin API changes it while worker threads log. */
extern enum wlog_level wlog_level_current;
#define WLOG_AT(level, ...)                                                      \
	do {                                                                     \
		if ((int)(level) <=                                              \
		    (int)__atomic_load_n(&wlog_level_current, __ATOMIC_RELAXED)) \
			wlog((level), __VA_ARGS__);                              \
	} while (0)
#define log_error(...) WLOG_AT(WLOG_ERROR, __VA_ARGS__)
#define log_warn(...)  WLOG_AT(WLOG_WARN, __VA_ARGS__)
#define log_info(...)  WLOG_AT(WLOG_INFO, __VA_ARGS__)
#define log_debug(...) WLOG_AT(WLOG_DEBUG, __VA_ARGS__)

#endif
