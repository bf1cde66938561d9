/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The connection access log (contract in tunnel/accesslog.h). jansson
 * escapes every string that needs it (anything a peer controls, e.g.
 * names from the mesh file); the line itself is put together here, key
 * by key in ztunnel's order, the way jansson's compact dump would write
 * it: the keys are constants, the numbers are written digit by digit, and
 * a string made only of printable ASCII without '"' or '\\' is copied
 * between quotes (what jansson writes for it). The names fixed per label
 * set are rendered by jansson once (accesslog_names) and copied per line.
 * Worker threads share one log: a mutex guards the buffers and the time
 * cache, held from the format through the write, so lines never
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
	/* The last two seconds rendered ("2026-01-02T03:04:05"): a line's
	 * time and start time fall in one or two seconds, rarely others. */
	struct {
		int64_t sec;
		char text[24];
	} tcache[2];
	unsigned tnext;      /* the tcache entry to replace next */
	bool flush_armed;    /* a loop's 0 ms timer will write pending */
	size_t npending;     /* bytes of whole lines in pending */
	char pending[ACCESSLOG_PENDING_MAX];
	char buf[ACCESSLOG_LINE_MAX];
};

/* Text rendered once per label set: the direction's value, then
 * "src.workload":...,"src.identity":... and "dst.workload":...,
 * "dst.service":... (keys and values), one after the other in text. */
struct accesslog_names {
	size_t dir_len, src_len, dst_len;
	char text[];
};

/* A line being made: what does not fit marks it full (the line is
 * dropped, never cut). */
struct accesslog_buf {
	char *p;
	size_t len, cap;
	bool full;
};

static void accesslog_put(struct accesslog_buf *b, const char *s, size_t n)
{
	if (b->full || n > b->cap - b->len) {
		b->full = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

#define accesslog_lit(b, s) accesslog_put((b), (s), sizeof(s) - 1)

/* s as jansson dumps it: null when unset or empty, and when jansson
 * refuses it (not UTF-8), so the field says "unknown" rather than the
 * line going. */
static void accesslog_put_json(struct accesslog_buf *b, const char *s)
{
	json_t *v = s && *s ? json_string(s) : NULL;
	size_t n;

	if (!v) {
		accesslog_lit(b, "null");
		return;
	}
	n = b->full ? 0 : json_dumpb(v, b->p + b->len, b->cap - b->len, JSON_ENCODE_ANY | JSON_COMPACT);
	json_decref(v);
	if (!n || n > b->cap - b->len)
		b->full = true;
	else
		b->len += n;
}

/* The same text, without jansson when there is nothing to escape or
 * check: printable ASCII but '"' and '\\' is written as it is. */
static void accesslog_put_str(struct accesslog_buf *b, const char *s)
{
	size_t n = 0;

	if (!s || !*s) {
		accesslog_lit(b, "null");
		return;
	}
	for (; s[n]; n++) {
		unsigned char ch = (unsigned char)s[n];

		if (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\') {
			accesslog_put_json(b, s);
			return;
		}
	}
	accesslog_lit(b, "\"");
	accesslog_put(b, s, n);
	accesslog_lit(b, "\"");
}

/* As jansson writes a json_int_t. */
static void accesslog_put_int(struct accesslog_buf *b, int64_t v)
{
	char t[24];
	size_t i = sizeof(t);
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;

	do {
		t[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		t[--i] = '-';
	accesslog_put(b, t + i, sizeof(t) - i);
}

/* accesslog_time(unix_ms) as a JSON string, the date and time of day
 * taken from the cache when that second was rendered lately. */
static void accesslog_put_time(struct accesslog *al, struct accesslog_buf *b, int64_t unix_ms)
{
	int64_t sec = unix_ms / 1000;
	unsigned ms = (unsigned)(unix_ms % 1000);
	char frac[6] = { '.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z', '"' };
	char text[40];
	unsigned i;

	if (unix_ms < 0) { /* not a time the tunnel makes; as accesslog_time has it */
		accesslog_put_str(b, accesslog_time(unix_ms, text, sizeof(text)));
		return;
	}
	for (i = 0; i < 2 && al->tcache[i].sec != sec; i++)
		;
	if (i == 2) {
		accesslog_time(sec * 1000, text, sizeof(text));
		if (strlen(text) != 24) { /* "?", or a year past 9999 */
			accesslog_put_str(b, accesslog_time(unix_ms, text, sizeof(text)));
			return;
		}
		i = al->tnext;
		al->tnext ^= 1;
		al->tcache[i].sec = sec;
		memcpy(al->tcache[i].text, text, 19);
		al->tcache[i].text[19] = 0;
	}
	accesslog_lit(b, "\"");
	accesslog_put(b, al->tcache[i].text, 19);
	accesslog_put(b, frac, sizeof(frac));
}

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

/* The names fixed per label set on one side (dst: 0 the source's, 1 the
 * destination's), keys and values. */
static void accesslog_put_side(struct accesslog_buf *b, const struct accesslog_entry *e, int dst)
{
	static const char *const keys[2][4] = {
		{ "\"src.workload\":", ",\"src.namespace\":", ",\"src.identity\":", NULL },
		{ "\"dst.workload\":", ",\"dst.namespace\":", ",\"dst.identity\":", ",\"dst.service\":" },
	};
	const char *const vals[2][4] = {
		{ e->src_workload, e->src_namespace, e->src_identity, NULL },
		{ e->dst_workload, e->dst_namespace, e->dst_identity, e->dst_service },
	};

	for (int i = 0; i < 4 && keys[dst][i]; i++) {
		accesslog_put(b, keys[dst][i], strlen(keys[dst][i]));
		accesslog_put_str(b, vals[dst][i]);
	}
}

struct accesslog_names *accesslog_names_new(const struct accesslog_entry *e)
{
	char *tmp = malloc(ACCESSLOG_LINE_MAX);
	struct accesslog_buf b = { .p = tmp, .cap = ACCESSLOG_LINE_MAX, .full = !tmp };
	struct accesslog_names *n = NULL;
	size_t dir_len, src_len;

	accesslog_put_str(&b, e->direction ? e->direction : "?");
	dir_len = b.len;
	accesslog_put_side(&b, e, 0);
	src_len = b.len - dir_len;
	accesslog_put_side(&b, e, 1);
	if (!b.full)
		n = malloc(sizeof(*n) + b.len);
	if (n) {
		n->dir_len = dir_len;
		n->src_len = src_len;
		n->dst_len = b.len - dir_len - src_len;
		memcpy(n->text, tmp, b.len);
	}
	free(tmp);
	return n;
}

void accesslog_names_free(struct accesslog_names *n)
{
	free(n);
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
	al->tcache[0].sec = al->tcache[1].sec = -1;
	al->fd = STDOUT_FILENO;
	if (spec && strcmp(spec, "stdout")) {
		al->fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (al->fd < 0) {
			int ret = -errno;

			snprintf(err, errlen, "cannot open accessLog %s: %s (use stdout, off, or a writable path)",
				 spec, strerror(errno));
			pthread_mutex_destroy(&al->mu);
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
	free(al->path);
	pthread_mutex_destroy(&al->mu);
	free(al);
}

/* The line for e into al->buf, '\n'-terminated; its length, or 0 when it
 * could not be made (ENOMEM, or longer than the buffer). */
static size_t accesslog_format(struct accesslog *al, const struct accesslog_entry *e)
{
	struct accesslog_buf b = { .p = al->buf, .cap = sizeof(al->buf) };
	const struct accesslog_names *n = e->names;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	accesslog_lit(&b, "{\"time\":");
	accesslog_put_time(al, &b, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	accesslog_lit(&b, ",\"scope\":\"access\",\"message\":\"connection closed\",\"start_time\":");
	accesslog_put_time(al, &b, e->start_unix_ms);
	accesslog_lit(&b, ",\"duration_ms\":");
	accesslog_put_int(&b, (int64_t)e->duration_ms);
	accesslog_lit(&b, ",\"direction\":");
	if (n)
		accesslog_put(&b, n->text, n->dir_len);
	else
		accesslog_put_str(&b, e->direction ? e->direction : "?");
	accesslog_lit(&b, ",\"src.addr\":");
	accesslog_put_str(&b, e->src_addr);
	accesslog_lit(&b, ",");
	if (n)
		accesslog_put(&b, n->text + n->dir_len, n->src_len);
	else
		accesslog_put_side(&b, e, 0);
	accesslog_lit(&b, ",\"dst.addr\":");
	accesslog_put_str(&b, e->dst_addr);
	accesslog_lit(&b, ",");
	if (n)
		accesslog_put(&b, n->text + n->dir_len + n->src_len, n->dst_len);
	else
		accesslog_put_side(&b, e, 1);
	accesslog_lit(&b, ",\"bytes_sent\":");
	accesslog_put_int(&b, (int64_t)e->bytes_sent);
	accesslog_lit(&b, ",\"bytes_received\":");
	accesslog_put_int(&b, (int64_t)e->bytes_received);
	accesslog_lit(&b, ",\"policy\":{\"decision\":");
	accesslog_put_str(&b, e->policy_decision ? e->policy_decision : "none");
	accesslog_lit(&b, ",\"policy\":");
	accesslog_put_str(&b, e->policy_name);
	accesslog_lit(&b, "},\"reason\":");
	accesslog_put_str(&b, e->reason ? e->reason : "closed");
	accesslog_lit(&b, "}\n");
	return b.full ? 0 : b.len;
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
