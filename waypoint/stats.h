/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The waypoint's request metrics, Istio's names and labels with
 * reporter="waypoint": istio_requests_total and
 * istio_request_duration_milliseconds (a histogram), one series per label
 * set, at most WP_STATS_MAX_SERIES (later label sets are counted in
 * warren_waypoint_series_dropped_total). Rendered in the Prometheus text
 * format for GET /metrics. Single-threaded (the waypoint's loop).
 */
#ifndef WARREN_WAYPOINT_STATS_H
#define WARREN_WAYPOINT_STATS_H

#include <stddef.h>
#include <stdint.h>

#define WP_STATS_MAX_SERIES 2048

struct wp_stats;

/* The labels of one request (borrowed strings; NULL or "" = "unknown"). */
struct wp_stats_labels {
	const char *source_principal, *source_workload, *source_namespace;
	const char *destination_service, *destination_service_name, *destination_service_namespace;
	const char *destination_workload, *destination_principal;
	const char *request_protocol; /* "http", "tcp" */
	unsigned response_code;
	const char *response_flags;   /* "-" none, "UF" upstream failure, ... */
};

struct wp_stats *wp_stats_new(void);
void wp_stats_free(struct wp_stats *s);
void wp_stats_request(struct wp_stats *s, const struct wp_stats_labels *l, uint64_t duration_ms);
/* malloc'd exposition text (caller frees) or NULL. */
char *wp_stats_render(const struct wp_stats *s, size_t *len);

#endif
