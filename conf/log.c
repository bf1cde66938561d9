/* SPDX-License-Identifier: Apache-2.0 */
#include "conf/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "warren";
static int log_fd = -1;
enum wlog_level wlog_level_current = WLOG_INFO;
static bool log_stderr = true;

static const char *const log_level_names[] = { "error", "warn", "info", "debug" };

int wlog_init(const char *prog, const char *file, enum wlog_level level)
{
	log_prog = prog;
	wlog_level_current = level;
	wlog_close();
	if (!file || !*file)
		return 0;
	log_fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	return log_fd < 0 ? -errno : 0;
}

void wlog_close(void)
{
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
}

void wlog_set_level(enum wlog_level level)
{
	__atomic_store_n(&wlog_level_current, level, __ATOMIC_RELAXED);
}

enum wlog_level wlog_get_level(void)
{
	return __atomic_load_n(&wlog_level_current, __ATOMIC_RELAXED);
}
void wlog_set_stderr(bool on) { log_stderr = on; }

int wlog_parse_level(const char *s, enum wlog_level *out)
{
	for (unsigned i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
		if (s && !strcasecmp(s, log_level_names[i])) {
			*out = (enum wlog_level)i;
			return 0;
		}
	}
	if (s && !strcasecmp(s, "warning")) {
		*out = WLOG_WARN;
		return 0;
	}
	return -EINVAL;
}

const char *wlog_level_name(enum wlog_level level)
{
	return (unsigned)level < 4 ? log_level_names[level] : "?";
}

void wlog(enum wlog_level level, const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n, m;

	if (level > __atomic_load_n(&wlog_level_current, __ATOMIC_RELAXED))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s[%d]: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000, log_level_names[level], log_prog, (int)getpid());
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (log_stderr && write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
	if (log_fd >= 0 && write(log_fd, line, (size_t)n) < 0) {
		/* same */
	}
}
