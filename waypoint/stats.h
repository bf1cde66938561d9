/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The waypoint's request metrics, Istio's names and labels with
 * reporter="waypoint": istio_requests_total, and the histograms
 * istio_request_duration_milliseconds, istio_request_bytes and
 * istio_response_bytes (a message's head and body as they crossed the wire,
 * as Istio's total sizes); for TCP relays istio_tcp_connections_opened_total,
 * istio_tcp_connections_closed_total, istio_tcp_sent_bytes_total and
 * istio_tcp_received_bytes_total (request_protocol="tcp", no response_code);
 * one series per label set, at most
 * WP_STATS_MAX_SERIES (later label sets are counted in
 * warren_waypoint_series_dropped_total); and how many upstream HBONE
 * streams were opened and reused (warren_waypoint_upstream_streams_total).
 * Rendered in the Prometheus text format for GET /metrics.
 * Single-threaded (the waypoint's loop).
 */
#ifndef WARREN_WAYPOINT_STATS_H
#define WARREN_WAYPOINT_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WP_STATS_MAX_SERIES 2048

struct wp_stats;

/* The labels of one request (borrowed strings; NULL or "" = "unknown"). */
struct wp_stats_labels {
	const char *source_principal, *source_workload, *source_namespace;
	const char *destination_service, *destination_service_name, *destination_service_namespace;
	const char *destination_workload, *destination_principal;
	const char *request_protocol; /* "http", "grpc", "tcp" */
	unsigned response_code;
	const char *response_flags;   /* "-" none, "UF" upstream failure, ... */
	const char *grpc_response_status; /* gRPC requests only (NULL: no such label) */
};

struct wp_stats *wp_stats_new(void);
void wp_stats_free(struct wp_stats *s);
void wp_stats_request(struct wp_stats *s, const struct wp_stats_labels *l, uint64_t duration_ms,
		      uint64_t request_bytes, uint64_t response_bytes);
/* A TCP relay opened (closed false), or closed with its byte counts
 * (sent: to the client; received: from it). */
void wp_stats_tcp(struct wp_stats *s, const struct wp_stats_labels *l, bool closed, uint64_t sent,
		  uint64_t received);
/* One upstream stream for a request: a new one, or a parked one reused. */
void wp_stats_upstream(struct wp_stats *s, bool reused);
/* malloc'd exposition text (caller frees) or NULL. */
char *wp_stats_render(const struct wp_stats *s, size_t *len);

#endif
