/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The access log's line (tunnel/accesslog.c) against jansson: for each
 * entry, with the strings given per line and with the names rendered once
 * (accesslog_names), the line must be byte for byte what jansson's compact
 * dump makes of the same object (the time of the line aside, checked by
 * its form), including strings that need escaping or that jansson refuses;
 * and the addresses it shows (sockaddr_str) against inet_ntop's.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tunnel/accesslog.h"
#include "tunnel/proxy.h"

#include "tests/unit/t.h"

static char *alog_slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = NULL;
	size_t cap = 0, n = 0, r;

	if (!f)
		return NULL;
	do {
		char *ns;

		cap = cap ? 2 * cap : 65536;
		ns = realloc(s, cap + 1);
		if (!ns) {
			free(s);
			fclose(f);
			return NULL;
		}
		s = ns;
		r = fread(s + n, 1, cap - n, f);
		n += r;
	} while (n == cap);
	fclose(f);
	s[n] = 0;
	return s;
}

/* What the line was when jansson made all of it: a value per key in
 * ztunnel's order, unset or empty strings (and those jansson refuses)
 * null, the rest as the header says. */
static json_t *alog_str(const char *s)
{
	json_t *v = s && *s ? json_string(s) : NULL;

	return v ? v : json_null();
}

static char *alog_expected(const struct accesslog_entry *e, const char *now)
{
	char start[40];
	json_t *o = json_object(), *p = json_object();
	char *text;

	json_object_set_new(o, "time", alog_str(now));
	json_object_set_new(o, "scope", json_string("access"));
	json_object_set_new(o, "message", json_string("connection closed"));
	json_object_set_new(o, "start_time", alog_str(accesslog_time(e->start_unix_ms, start, sizeof(start))));
	json_object_set_new(o, "duration_ms", json_integer((json_int_t)e->duration_ms));
	json_object_set_new(o, "direction", alog_str(e->direction ? e->direction : "?"));
	json_object_set_new(o, "src.addr", alog_str(e->src_addr));
	json_object_set_new(o, "src.workload", alog_str(e->src_workload));
	json_object_set_new(o, "src.namespace", alog_str(e->src_namespace));
	json_object_set_new(o, "src.identity", alog_str(e->src_identity));
	json_object_set_new(o, "dst.addr", alog_str(e->dst_addr));
	json_object_set_new(o, "dst.workload", alog_str(e->dst_workload));
	json_object_set_new(o, "dst.namespace", alog_str(e->dst_namespace));
	json_object_set_new(o, "dst.identity", alog_str(e->dst_identity));
	json_object_set_new(o, "dst.service", alog_str(e->dst_service));
	json_object_set_new(o, "bytes_sent", json_integer((json_int_t)e->bytes_sent));
	json_object_set_new(o, "bytes_received", json_integer((json_int_t)e->bytes_received));
	json_object_set_new(p, "decision", alog_str(e->policy_decision ? e->policy_decision : "none"));
	json_object_set_new(p, "policy", alog_str(e->policy_name));
	json_object_set_new(o, "policy", p);
	json_object_set_new(o, "reason", alog_str(e->reason ? e->reason : "closed"));
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return text;
}

/* "2026-01-02T03:04:05.678Z" */
static int alog_is_time(const char *s)
{
	static const char form[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	for (size_t i = 0; i < sizeof(form) - 1; i++)
		if (form[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != form[i])
			return 0;
	return 1;
}

static const struct accesslog_entry alog_cases[] = {
	{ .start_unix_ms = 1700000000123, .duration_ms = 7, .direction = "outbound",
	  .src_addr = "10.0.0.1:1234", .src_workload = "sleep", .src_namespace = "a",
	  .src_identity = "spiffe://cluster.local/ns/a/sa/s", .dst_addr = "[fd00::2]:80",
	  .dst_workload = "b", .dst_namespace = "b", .dst_identity = "spiffe://cluster.local/ns/b/sa/b",
	  .dst_service = "b.b.svc.cluster.local", .bytes_sent = 5, .bytes_received = 6,
	  .policy_decision = "allow", .policy_name = "a/allow", .reason = "closed" },
	/* everything unset: nulls and the defaults */
	{ 0 },
	/* strings that need escaping, in every field that takes text */
	{ .start_unix_ms = 1767323045678, .duration_ms = UINT64_MAX, .direction = "in\"bound",
	  .src_addr = "a\\b", .src_workload = "we\"ird\nname\u00e9", .src_namespace = "tab\there",
	  .src_identity = "\x01\x1f\x7f", .dst_addr = "\xe2\x82\xac:1", .dst_workload = "/slash/",
	  .dst_namespace = "\u00e9t\u00e9", .dst_identity = "x\ry", .dst_service = "\b\f",
	  .bytes_sent = (uint64_t)INT64_MAX + 1, .bytes_received = 1234567890123,
	  .policy_decision = "deny", .policy_name = "ns/\"quoted\"", .reason = "error on source: \"x\"\n" },
	/* not UTF-8 (jansson refuses: null), empty strings (null) */
	{ .start_unix_ms = 999, .direction = "", .src_addr = "", .src_workload = "\xff\xfe",
	  .src_namespace = "", .dst_addr = "\xc3", .dst_service = "ok\x80", .policy_name = "",
	  .reason = "" },
	/* before 1970: the time as accesslog_time writes it */
	{ .start_unix_ms = -1500, .direction = "inbound", .reason = "reset by source" },
};

static void test_line_matches_jansson(void)
{
	size_t ncases = sizeof(alog_cases) / sizeof(alog_cases[0]);
	char path[] = "/tmp/warren-alog-jansson.XXXXXX", err[256], *log = NULL, *line;
	struct accesslog_names *names[sizeof(alog_cases) / sizeof(alog_cases[0])] = { 0 };
	struct accesslog *al = NULL;
	int fd = mkstemp(path);
	size_t i, nlines = 0;

	T_ASSERT(fd >= 0);
	close(fd);
	T_ASSERT_INT(accesslog_open(path, &al, err, sizeof(err)), 0);
	for (i = 0; i < ncases; i++) {
		struct accesslog_entry e = alog_cases[i];

		accesslog_write(al, &e);
		names[i] = accesslog_names_new(&e);
		/* the names replace the strings: these must not be read */
		e = (struct accesslog_entry){ .start_unix_ms = e.start_unix_ms, .duration_ms = e.duration_ms,
					      .src_addr = e.src_addr, .dst_addr = e.dst_addr,
					      .bytes_sent = e.bytes_sent, .bytes_received = e.bytes_received,
					      .policy_decision = e.policy_decision, .policy_name = e.policy_name,
					      .reason = e.reason, .direction = "WRONG", .src_workload = "WRONG",
					      .dst_service = "WRONG", .names = names[i] };
		if (names[i])
			accesslog_write(al, &e);
	}
	accesslog_close(al);
	log = alog_slurp(path);
	unlink(path);
	for (i = 0; i < ncases; i++)
		T_ASSERT(names[i]);
	T_ASSERT(log);
	for (line = log; *line; nlines++) {
		const struct accesslog_entry *e = &alog_cases[nlines / 2];
		char *nl = strchr(line, '\n'), now[25], *want;
		json_t *parsed;
		int same;

		T_ASSERT(nl && nlines < 2 * ncases);
		*nl = 0;
		/* {"time":"2026-01-02T03:04:05.678Z",... */
		T_ASSERT(!strncmp(line, "{\"time\":\"", 9) && alog_is_time(line + 9));
		memcpy(now, line + 9, 24);
		now[24] = 0;
		want = alog_expected(e, now);
		T_ASSERT(want);
		same = !strcmp(line, want);
		if (!same)
			printf("#   line %zu:\n#   got  %s\n#   want %s\n", nlines, line, want);
		free(want);
		T_ASSERT(same);
		parsed = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
		T_ASSERT(parsed);
		json_decref(parsed);
		line = nl + 1;
	}
	T_ASSERT_INT(nlines, 2 * ncases);
	for (i = 0; i < ncases; i++)
		accesslog_names_free(names[i]);
	free(log);
}

/* Start times in consecutive seconds, half a second apart, with a jump
 * of days now and then. */
static int64_t alog_start(int i)
{
	return 1767323045000 + i * 500 + (i % 5 == 4 ? 86400000LL * i + 7 : 0);
}

/* Lines over many seconds and both of a line's times in different
 * seconds: the cached seconds never leak into another second's time. */
static void test_time_cache(void)
{
	char path[] = "/tmp/warren-alog-time.XXXXXX", err[256], *log = NULL, *line;
	struct accesslog *al = NULL;
	int fd = mkstemp(path);
	int i = 0;

	T_ASSERT(fd >= 0);
	close(fd);
	T_ASSERT_INT(accesslog_open(path, &al, err, sizeof(err)), 0);
	for (i = 0; i < 50; i++)
		accesslog_write(al, &(struct accesslog_entry){ .start_unix_ms = alog_start(i) });
	accesslog_close(al);
	log = alog_slurp(path);
	unlink(path);
	T_ASSERT(log);
	for (line = log, i = 0; *line; i++) {
		char want[40], *st = strstr(line, "\"start_time\":\""), *nl = strchr(line, '\n');

		T_ASSERT(st && nl && i < 50);
		accesslog_time(alog_start(i), want, sizeof(want));
		T_ASSERT(!strncmp(st + 14, want, 24) && st[38] == '"');
		line = nl + 1;
	}
	T_ASSERT_INT(i, 50);
	free(log);
}

/* The addresses of a line (sockaddr_str, written digit by digit) as
 * inet_ntop and snprintf write them, cut the same way to a short buffer. */
static void test_addresses(void)
{
	static const struct {
		int family;
		const char *ip;
		unsigned port;
	} cases[] = {
		{ AF_INET, "0.0.0.0", 0 }, { AF_INET, "10.244.1.5", 43210 },
		{ AF_INET, "255.255.255.255", 65535 }, { AF_INET, "1.20.100.9", 7 },
		{ AF_INET6, "::", 0 }, { AF_INET6, "fd00::2", 80 }, { AF_INET6, "::ffff:10.0.0.1", 15008 },
		{ AF_INET6, "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 65535 }, { 0, NULL, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss = { .ss_family = (sa_family_t)cases[i].family };
		char ip[INET6_ADDRSTRLEN], want[80], got[80];

		if (cases[i].family == AF_INET) {
			struct sockaddr_in *s4 = (void *)&ss;

			T_ASSERT(inet_pton(AF_INET, cases[i].ip, &s4->sin_addr) == 1);
			s4->sin_port = htons((uint16_t)cases[i].port);
			inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
			snprintf(want, sizeof(want), "%s:%u", ip, cases[i].port);
		} else if (cases[i].family == AF_INET6) {
			struct sockaddr_in6 *s6 = (void *)&ss;

			T_ASSERT(inet_pton(AF_INET6, cases[i].ip, &s6->sin6_addr) == 1);
			s6->sin6_port = htons((uint16_t)cases[i].port);
			inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
			snprintf(want, sizeof(want), "[%s]:%u", ip, cases[i].port);
		} else {
			snprintf(want, sizeof(want), "?");
		}
		T_ASSERT_STR(sockaddr_str(&ss, got, sizeof(got)), want);
		for (size_t len = 1; len <= strlen(want) + 1; len++) {
			memset(got, 'x', sizeof(got));
			sockaddr_str(&ss, got, len);
			T_ASSERT(strlen(got) == len - 1 && !strncmp(got, want, len - 1));
		}
	}
}

T_MAIN(T_CASE(test_line_matches_jansson), T_CASE(test_time_cache), T_CASE(test_addresses))
