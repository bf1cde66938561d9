/* SPDX-License-Identifier: Apache-2.0 */
/* The waypoint's request metrics (contract in waypoint/stats.h). */
#include "waypoint/stats.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Istio's default duration buckets (ms), up to 10 s; above: +Inf only. */
static const double wps_buckets[] = { 0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 };
#define WPS_NB (sizeof(wps_buckets) / sizeof(wps_buckets[0]))

struct wps_series {
	char *labels; /* rendered label pairs, without braces */
	uint64_t count, sum_ms;
	uint64_t le[WPS_NB];
};

struct wp_stats {
	struct wps_series *s;
	size_t n;
	uint64_t dropped;
};

struct wp_stats *wp_stats_new(void)
{
	struct wp_stats *s = calloc(1, sizeof(*s));

	if (s && !(s->s = calloc(WP_STATS_MAX_SERIES, sizeof(*s->s)))) {
		free(s);
		return NULL;
	}
	return s;
}

void wp_stats_free(struct wp_stats *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->s[i].labels);
	free(s->s);
	free(s);
}

/* A label value, escaped as the exposition format asks. */
static void wps_put(char **p, size_t *left, const char *name, const char *v, bool first)
{
	int n = snprintf(*p, *left, "%s%s=\"", first ? "" : ",", name);

	if (n < 0 || (size_t)n >= *left)
		return;
	*p += n;
	*left -= (size_t)n;
	for (v = v && *v ? v : "unknown"; *v && *left > 3; v++) {
		if (*v == '\\' || *v == '"' || *v == '\n') {
			*(*p)++ = '\\';
			(*left)--;
		}
		*(*p)++ = *v == '\n' ? 'n' : *v;
		(*left)--;
	}
	if (*left > 1) {
		*(*p)++ = '"';
		(*left)--;
	}
	**p = '\0';
}

void wp_stats_request(struct wp_stats *s, const struct wp_stats_labels *l, uint64_t duration_ms)
{
	char buf[2048], *p = buf, code[8];
	size_t left = sizeof(buf), i;
	struct wps_series *se;

	snprintf(code, sizeof(code), "%u", l->response_code);
	wps_put(&p, &left, "reporter", "waypoint", true);
	wps_put(&p, &left, "source_principal", l->source_principal, false);
	wps_put(&p, &left, "source_workload", l->source_workload, false);
	wps_put(&p, &left, "source_workload_namespace", l->source_namespace, false);
	wps_put(&p, &left, "destination_principal", l->destination_principal, false);
	wps_put(&p, &left, "destination_workload", l->destination_workload, false);
	wps_put(&p, &left, "destination_service", l->destination_service, false);
	wps_put(&p, &left, "destination_service_name", l->destination_service_name, false);
	wps_put(&p, &left, "destination_service_namespace", l->destination_service_namespace, false);
	wps_put(&p, &left, "request_protocol", l->request_protocol, false);
	wps_put(&p, &left, "response_code", code, false);
	wps_put(&p, &left, "response_flags", l->response_flags ? l->response_flags : "-", false);
	wps_put(&p, &left, "connection_security_policy", "mutual_tls", false);
	for (i = 0; i < s->n && strcmp(s->s[i].labels, buf); i++)
		;
	if (i == s->n) {
		if (s->n == WP_STATS_MAX_SERIES || !(s->s[i].labels = strdup(buf))) {
			s->dropped++;
			return;
		}
		s->n++;
	}
	se = &s->s[i];
	se->count++;
	se->sum_ms += duration_ms;
	for (size_t b = 0; b < WPS_NB; b++)
		if ((double)duration_ms <= wps_buckets[b])
			se->le[b]++;
}

char *wp_stats_render(const struct wp_stats *s, size_t *len)
{
	char *out = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&out, &sz);

	if (!f)
		return NULL;
	fprintf(f, "# HELP istio_requests_total Requests through the waypoint.\n"
		   "# TYPE istio_requests_total counter\n");
	for (size_t i = 0; i < s->n; i++)
		fprintf(f, "istio_requests_total{%s} %llu\n", s->s[i].labels,
			(unsigned long long)s->s[i].count);
	fprintf(f, "# HELP istio_request_duration_milliseconds Request duration at the waypoint.\n"
		   "# TYPE istio_request_duration_milliseconds histogram\n");
	for (size_t i = 0; i < s->n; i++) {
		const struct wps_series *se = &s->s[i];

		for (size_t b = 0; b < WPS_NB; b++)
			fprintf(f, "istio_request_duration_milliseconds_bucket{%s,le=\"%g\"} %llu\n",
				se->labels, wps_buckets[b], (unsigned long long)se->le[b]);
		fprintf(f, "istio_request_duration_milliseconds_bucket{%s,le=\"+Inf\"} %llu\n", se->labels,
			(unsigned long long)se->count);
		fprintf(f, "istio_request_duration_milliseconds_sum{%s} %llu\n", se->labels,
			(unsigned long long)se->sum_ms);
		fprintf(f, "istio_request_duration_milliseconds_count{%s} %llu\n", se->labels,
			(unsigned long long)se->count);
	}
	fprintf(f, "# HELP warren_waypoint_series_dropped_total Requests not counted: too many label sets.\n"
		   "# TYPE warren_waypoint_series_dropped_total counter\n"
		   "warren_waypoint_series_dropped_total %llu\n", (unsigned long long)s->dropped);
	if (fclose(f)) {
		free(out);
		return NULL;
	}
	*len = sz;
	return out;
}
