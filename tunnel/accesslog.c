/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The connection access log (contract in tunnel/accesslog.h). The line is
 * built with jansson (correct JSON escaping of anything a peer controls,
 * e.g. names from the mesh file) and written in one write(2).
 */
#include "tunnel/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/log.h"

struct accesslog {
	int fd;
	bool own_fd;
	bool warned;
	char *path;
};

const char *accesslog_time(int64_t unix_ms, char *buf, size_t len)
{
	time_t s = (time_t)(unix_ms / 1000);
	struct tm tm;

	if (!gmtime_r(&s, &tm)) {
		snprintf(buf, len, "?");
		return buf;
	}
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(unix_ms % 1000));
	return buf;
}

int accesslog_open(const char *spec, struct accesslog **out, char *err, size_t errlen)
{
	struct accesslog *al;

	*out = NULL;
	if (spec && !strcmp(spec, "off"))
		return 0;
	al = calloc(1, sizeof(*al));
	if (!al)
		return -ENOMEM;
	al->fd = STDOUT_FILENO;
	if (spec && strcmp(spec, "stdout")) {
		al->fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (al->fd < 0) {
			int ret = -errno;

			snprintf(err, errlen, "cannot open accessLog %s: %s (use stdout, off, or a writable path)",
				 spec, strerror(errno));
			free(al);
			return ret;
		}
		al->own_fd = true;
		al->path = strdup(spec);
	}
	*out = al;
	return 0;
}

void accesslog_close(struct accesslog *al)
{
	if (!al)
		return;
	if (al->own_fd)
		close(al->fd);
	free(al->path);
	free(al);
}

static json_t *str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

char *accesslog_format(const struct accesslog_entry *e)
{
	char now[40], start[40], *s, *line = NULL;
	struct timespec ts;
	json_t *o;

	clock_gettime(CLOCK_REALTIME, &ts);
	accesslog_time((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, now, sizeof(now));
	accesslog_time(e->start_unix_ms, start, sizeof(start));
	/* json_pack "o" steals references, and str_or_null never fails in a
	 * way json_pack does not catch (NULL argument -> pack fails). */
	o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,"
		      "s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,"
		      "s:I,s:I,s:{s:s,s:o},s:s}",
		      "time", now, "scope", "access", "message", "connection closed",
		      "start_time", start, "duration_ms", (json_int_t)e->duration_ms,
		      "direction", e->direction ? e->direction : "?",
		      "src.addr", str_or_null(e->src_addr), "src.workload", str_or_null(e->src_workload),
		      "src.namespace", str_or_null(e->src_namespace),
		      "src.identity", str_or_null(e->src_identity),
		      "dst.addr", str_or_null(e->dst_addr), "dst.workload", str_or_null(e->dst_workload),
		      "dst.namespace", str_or_null(e->dst_namespace),
		      "dst.identity", str_or_null(e->dst_identity),
		      "dst.service", str_or_null(e->dst_service),
		      "bytes_sent", (json_int_t)e->bytes_sent,
		      "bytes_received", (json_int_t)e->bytes_received,
		      "policy", "decision", e->policy_decision ? e->policy_decision : "none",
		      "policy", str_or_null(e->policy_name),
		      "reason", e->reason ? e->reason : "closed");
	if (!o)
		return NULL;
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (s && asprintf(&line, "%s\n", s) < 0)
		line = NULL;
	free(s);
	return line;
}

void accesslog_write(struct accesslog *al, const struct accesslog_entry *e)
{
	char *line;
	size_t len, off = 0;

	if (!al)
		return;
	line = accesslog_format(e);
	if (!line)
		return;
	len = strlen(line);
	while (off < len) {
		ssize_t n = write(al->fd, line + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (!al->warned)
				log_warn("cannot write the access log to %s: %s; dropping lines until it works again",
					 al->path ? al->path : "stdout", n < 0 ? strerror(errno) : "short write");
			al->warned = true;
			goto out;
		}
		off += (size_t)n;
	}
	al->warned = false;
out:
	free(line);
}
