/* SPDX-License-Identifier: Apache-2.0 */
/* The waypoint's request metrics (contract in waypoint/stats.h). */
#include "waypoint/stats.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Istio's default duration buckets (ms), up to 10 s; above: +Inf only. */
static const double wps_buckets[] = { 0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 };
#define WPS_NB (sizeof(wps_buckets) / sizeof(wps_buckets[0]))
/* Sizes (bytes): Envoy's default buckets, which Istio keeps for them. */
static const double wps_size_buckets[] = { 0.5,   1,     5,      10,     25,     50,      100,
					   250,   500,   1000,   2500,   5000,   10000,   30000,
					   60000, 300000, 600000, 1800000, 3600000 };
#define WPS_NSB (sizeof(wps_size_buckets) / sizeof(wps_size_buckets[0]))

struct wps_hist {
	uint64_t sum;
	uint64_t le[WPS_NSB]; /* wide enough for either bucket set */
};

struct wps_series {
	char *labels; /* rendered label pairs, without braces */
	bool tcp;     /* request_protocol="tcp": the TCP counters, no response_code */
	uint64_t count;
	struct wps_hist dur, req, resp;
	uint64_t opened, closed, sent, received;
};

struct wp_stats {
	struct wps_series *s;
	size_t n;
	uint64_t dropped, up_new, up_reused;
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

static void wps_observe(struct wps_hist *h, const double *b, size_t nb, uint64_t v)
{
	h->sum += v;
	for (size_t i = 0; i < nb; i++)
		if ((double)v <= b[i])
			h->le[i]++;
}

void wp_stats_upstream(struct wp_stats *s, bool reused)
{
	if (reused)
		s->up_reused++;
	else
		s->up_new++;
}

/* The series of l (a new one if need be), or NULL when full. */
static struct wps_series *wps_series(struct wp_stats *s, const struct wp_stats_labels *l, bool tcp)
{
	char buf[2048], *p = buf, code[8];
	size_t left = sizeof(buf), i;

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
	if (!tcp)
		wps_put(&p, &left, "response_code", code, false);
	wps_put(&p, &left, "response_flags", l->response_flags ? l->response_flags : "-", false);
	if (!tcp && l->grpc_response_status)
		wps_put(&p, &left, "grpc_response_status", l->grpc_response_status, false);
	wps_put(&p, &left, "connection_security_policy", "mutual_tls", false);
	for (i = 0; i < s->n && strcmp(s->s[i].labels, buf); i++)
		;
	if (i == s->n) {
		if (s->n == WP_STATS_MAX_SERIES || !(s->s[i].labels = strdup(buf))) {
			s->dropped++;
			return NULL;
		}
		s->s[i].tcp = tcp;
		s->n++;
	}
	return &s->s[i];
}

void wp_stats_tcp(struct wp_stats *s, const struct wp_stats_labels *l, bool closed, uint64_t sent,
		  uint64_t received)
{
	struct wps_series *se = wps_series(s, l, true);

	if (!se)
		return;
	if (!closed) {
		se->opened++;
		return;
	}
	se->closed++;
	se->sent += sent;
	se->received += received;
}

void wp_stats_request(struct wp_stats *s, const struct wp_stats_labels *l, uint64_t duration_ms,
		      uint64_t request_bytes, uint64_t response_bytes)
{
	struct wps_series *se = wps_series(s, l, false);

	if (!se)
		return;
	se->count++;
	wps_observe(&se->dur, wps_buckets, WPS_NB, duration_ms);
	wps_observe(&se->req, wps_size_buckets, WPS_NSB, request_bytes);
	wps_observe(&se->resp, wps_size_buckets, WPS_NSB, response_bytes);
}

static void wps_render_hist(FILE *f, const struct wp_stats *s, const char *name, const char *help,
			    size_t off, const double *b, size_t nb)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (size_t i = 0; i < s->n; i++) {
		const struct wps_series *se = &s->s[i];
		const struct wps_hist *h = (const struct wps_hist *)((const char *)se + off);

		if (se->tcp)
			continue;
		for (size_t k = 0; k < nb; k++)
			fprintf(f, "%s_bucket{%s,le=\"%g\"} %llu\n", name, se->labels, b[k],
				(unsigned long long)h->le[k]);
		fprintf(f, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, se->labels, (unsigned long long)se->count);
		fprintf(f, "%s_sum{%s} %llu\n", name, se->labels, (unsigned long long)h->sum);
		fprintf(f, "%s_count{%s} %llu\n", name, se->labels, (unsigned long long)se->count);
	}
}

static void wps_render_tcp(FILE *f, const struct wp_stats *s, const char *name, const char *help, size_t off)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (size_t i = 0; i < s->n; i++)
		if (s->s[i].tcp)
			fprintf(f, "%s{%s} %llu\n", name, s->s[i].labels,
				(unsigned long long)*(const uint64_t *)((const char *)&s->s[i] + off));
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
		if (!s->s[i].tcp)
			fprintf(f, "istio_requests_total{%s} %llu\n", s->s[i].labels,
				(unsigned long long)s->s[i].count);
	wps_render_tcp(f, s, "istio_tcp_connections_opened_total", "TCP connections relayed by the waypoint.",
		       offsetof(struct wps_series, opened));
	wps_render_tcp(f, s, "istio_tcp_connections_closed_total", "TCP connections the waypoint closed.",
		       offsetof(struct wps_series, closed));
	wps_render_tcp(f, s, "istio_tcp_sent_bytes_total", "Bytes sent to the client over TCP.",
		       offsetof(struct wps_series, sent));
	wps_render_tcp(f, s, "istio_tcp_received_bytes_total", "Bytes received from the client over TCP.",
		       offsetof(struct wps_series, received));
	wps_render_hist(f, s, "istio_request_duration_milliseconds", "Request duration at the waypoint.",
			offsetof(struct wps_series, dur), wps_buckets, WPS_NB);
	wps_render_hist(f, s, "istio_request_bytes", "Request sizes (head and body) at the waypoint.",
			offsetof(struct wps_series, req), wps_size_buckets, WPS_NSB);
	wps_render_hist(f, s, "istio_response_bytes", "Response sizes (head and body) at the waypoint.",
			offsetof(struct wps_series, resp), wps_size_buckets, WPS_NSB);
	fprintf(f, "# HELP warren_waypoint_upstream_streams_total Upstream HBONE streams taken for requests.\n"
		   "# TYPE warren_waypoint_upstream_streams_total counter\n"
		   "warren_waypoint_upstream_streams_total{reused=\"false\"} %llu\n"
		   "warren_waypoint_upstream_streams_total{reused=\"true\"} %llu\n",
		(unsigned long long)s->up_new, (unsigned long long)s->up_reused);
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
