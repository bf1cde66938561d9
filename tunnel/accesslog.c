/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The connection access log (contract in tunnel/accesslog.h). The line is
 * made by jansson (correct JSON escaping of anything a peer controls, e.g.
 * names from the mesh file) from one template object whose values are
 * replaced per line, and dumped at the end of the log's pending buffer.
 * Per line, with its write to /dev/null, on the development machine: 8.2
 * us when each line built its own object and dump, 5.0 us with the
 * template. Worker threads share one log: a mutex guards the template and
 * the buffer, held from the format through the write, so lines never
 * interleave.
 *
 * Batching: a line made inside a loop callback waits in the buffer, and
 * the first line of a batch arms a 0 ms timer on that loop, which writes
 * the whole buffer at the end of the loop's round (before it waits
 * again): one write(2) per round instead of one per connection. A line
 * that does not fit writes the buffer first; a line made outside any loop
 * (shutdown, tests) writes at once, after what waits.
 */
#include "tunnel/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/log.h"
#include "tunnel/loop.h"

/* A line is at most this long. Its names are Kubernetes names (at most
 * 253 bytes each, nothing to escape), so real lines stay far below; a
 * longer one is dropped with a warning. */
#define ACCESSLOG_LINE_MAX 8192
/* Lines waiting for the end of a loop round: a bound, not a target (a
 * round of 64 events closes at most a few dozen connections). */
#define ACCESSLOG_PENDING_MAX (4 * ACCESSLOG_LINE_MAX)

struct accesslog {
	pthread_mutex_t mu;
	int fd;
	bool own_fd;
	bool warned;
	char *path;
	/* The line as a JSON object with every key in its order, values
	 * replaced per line: no object built and no string allocated per
	 * connection but the values. policy is borrowed from line. */
	json_t *line, *policy;
	bool flush_armed;    /* a loop's 0 ms timer will write pending */
	size_t npending;     /* bytes of whole lines in pending */
	char pending[ACCESSLOG_PENDING_MAX];
	char buf[ACCESSLOG_LINE_MAX];
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
	pthread_mutex_init(&al->mu, NULL);
	al->line = json_pack("{s:n,s:s,s:s,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,"
			     "s:n,s:n,s:{s:n,s:n},s:n}",
			     "time", "scope", "access", "message", "connection closed", "start_time",
			     "duration_ms", "direction", "src.addr", "src.workload", "src.namespace",
			     "src.identity", "dst.addr", "dst.workload", "dst.namespace", "dst.identity",
			     "dst.service", "bytes_sent", "bytes_received", "policy", "decision",
			     "policy", "reason");
	al->policy = json_object_get(al->line, "policy");
	if (!al->policy) {
		json_decref(al->line);
		free(al);
		return -ENOMEM;
	}
	al->fd = STDOUT_FILENO;
	if (spec && strcmp(spec, "stdout")) {
		al->fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (al->fd < 0) {
			int ret = -errno;

			snprintf(err, errlen, "cannot open accessLog %s: %s (use stdout, off, or a writable path)",
				 spec, strerror(errno));
			json_decref(al->line);
			free(al);
			return ret;
		}
		al->own_fd = true;
		al->path = strdup(spec);
	}
	*out = al;
	return 0;
}

static void accesslog_flush_locked(struct accesslog *al);

void accesslog_close(struct accesslog *al)
{
	if (!al)
		return;
	/* A flush timer still armed belongs to a stopped loop, freed with it
	 * without firing (loop_free). */
	accesslog_flush_locked(al);
	if (al->own_fd)
		close(al->fd);
	json_decref(al->line);
	free(al->path);
	pthread_mutex_destroy(&al->mu);
	free(al);
}

/* Replaces a value of the template (a key it already has, so the order
 * stays). Empty or unset is null, as is a string jansson refuses
 * (not UTF-8): the field says "unknown" rather than the line going. */
static int accesslog_set_str(json_t *o, const char *key, const char *s)
{
	json_t *v = s && *s ? json_string(s) : NULL;

	return json_object_set_new_nocheck(o, key, v ? v : json_null());
}

static int accesslog_set_int(json_t *o, const char *key, uint64_t n)
{
	return json_object_set_new_nocheck(o, key, json_integer((json_int_t)n));
}

/* The line for e into al->buf, '\n'-terminated; its length, or 0 when it
 * could not be made (ENOMEM, or longer than the buffer). */
static size_t accesslog_format(struct accesslog *al, const struct accesslog_entry *e)
{
	json_t *o = al->line;
	char now[40], start[40];
	struct timespec ts;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	accesslog_time((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, now, sizeof(now));
	accesslog_time(e->start_unix_ms, start, sizeof(start));
	if (accesslog_set_str(o, "time", now) || accesslog_set_str(o, "start_time", start) ||
	    accesslog_set_int(o, "duration_ms", e->duration_ms) ||
	    accesslog_set_str(o, "direction", e->direction ? e->direction : "?") ||
	    accesslog_set_str(o, "src.addr", e->src_addr) || accesslog_set_str(o, "src.workload", e->src_workload) ||
	    accesslog_set_str(o, "src.namespace", e->src_namespace) ||
	    accesslog_set_str(o, "src.identity", e->src_identity) || accesslog_set_str(o, "dst.addr", e->dst_addr) ||
	    accesslog_set_str(o, "dst.workload", e->dst_workload) ||
	    accesslog_set_str(o, "dst.namespace", e->dst_namespace) ||
	    accesslog_set_str(o, "dst.identity", e->dst_identity) ||
	    accesslog_set_str(o, "dst.service", e->dst_service) || accesslog_set_int(o, "bytes_sent", e->bytes_sent) ||
	    accesslog_set_int(o, "bytes_received", e->bytes_received) ||
	    accesslog_set_str(al->policy, "decision", e->policy_decision ? e->policy_decision : "none") ||
	    accesslog_set_str(al->policy, "policy", e->policy_name) ||
	    accesslog_set_str(o, "reason", e->reason ? e->reason : "closed"))
		return 0;
	n = json_dumpb(o, al->buf, sizeof(al->buf) - 1, JSON_COMPACT);
	if (!n || n > sizeof(al->buf) - 1)
		return 0;
	al->buf[n] = '\n';
	return n + 1;
}

/* Writes what is pending; al->mu held (or no other thread left). */
static void accesslog_flush_locked(struct accesslog *al)
{
	size_t off = 0;

	while (off < al->npending) {
		ssize_t n = write(al->fd, al->pending + off, al->npending - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (!al->warned)
				log_warn("cannot write the access log to %s: %s; dropping lines until it works again",
					 al->path ? al->path : "stdout", n < 0 ? strerror(errno) : "short write");
			al->warned = true;
			al->npending = 0;
			return;
		}
		off += (size_t)n;
	}
	if (al->npending)
		al->warned = false;
	al->npending = 0;
}

static void accesslog_flush_timer(struct loop *l, void *ctx)
{
	struct accesslog *al = ctx;

	pthread_mutex_lock(&al->mu);
	al->flush_armed = false;
	accesslog_flush_locked(al);
	pthread_mutex_unlock(&al->mu);
}

void accesslog_write(struct accesslog *al, const struct accesslog_entry *e)
{
	struct loop *l = loop_current();
	size_t len;

	if (!al)
		return;
	pthread_mutex_lock(&al->mu);
	len = accesslog_format(al, e);
	if (!len) {
		if (!al->warned)
			log_warn("cannot format an access log line (out of memory, or longer than %zu bytes); dropping it",
				 sizeof(al->buf) - 1);
		al->warned = true;
		goto out;
	}
	if (al->npending + len > sizeof(al->pending))
		accesslog_flush_locked(al);
	memcpy(al->pending + al->npending, al->buf, len);
	al->npending += len;
	if (l && !al->flush_armed)
		al->flush_armed = loop_timer_add(l, 0, accesslog_flush_timer, al) != NULL;
	if (!l || !al->flush_armed)
		accesslog_flush_locked(al); /* no loop (or no timer): at once */
out:
	pthread_mutex_unlock(&al->mu);
}
