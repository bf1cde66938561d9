/* SPDX-License-Identifier: Apache-2.0 */
/*
 * warren-tunnel configuration: one file, YAML or JSON (loaded through
 * conf/kobj.h). Every key, its type, range, default and meaning:
 * docs/configuration.md, which tests/lint/config_doc.py holds to the keys[]
 * table of tunnel_conf.c.
 * Unknown keys are an error naming the key (a typo must not silently
 * change behaviour); a known key of the wrong type is an error naming it.
 * tunnel_conf_free() frees the strings.
 */
#ifndef WARREN_TUNNEL_CONF_H
#define WARREN_TUNNEL_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/log.h"

struct tunnel_conf {
	char *node;
	char *plugin_socket;
	char *state_dir;
	char *mesh_path;         /* NULL in kubernetes mode */
	char *mesh_source;       /* "file" or "kubernetes" */
	char *kubeconfig;        /* NULL: in-cluster */
	bool kube;               /* meshSource is kubernetes */
	char *admin_address;
	char *admin_socket;
	char *metrics_address;
	char *readiness_address;
	char *log_file;
	char *trust_domain;
	enum wlog_level log_level;
	int mesh_reload_ms;
	char *access_log;  /* "stdout", "off" or a path */
	char *cluster_id;
	char *ca_dir;            /* the local CA (development only) */
	char *ca_address;        /* warren-ca's https:// URL */
	char *ca_protocol;       /* "warren" or "istio" (caAddress speaks it) */
	char *ca_token_file;     /* the projected token sent to warren-ca */
	char *trust_bundle;      /* PEM roots (several during a rotation) */
	bool mtls_disabled;      /* mtls: disabled, the explicit plaintext choice */
	int cert_lifetime_s;
	char *root_namespace;
	int pool_max_streams;
	int pool_idle_timeout_ms;
	int hbone_ping_interval_ms;
	bool keep_capabilities;  /* true: drop to the data path's set */
	int adopt_batch;
	int worker_threads;
	bool host_probe_snat;
	int kubelet_uid;         /* -1: find the kubelet's at start */
	int drain_seconds;
	int hbone_handshake_timeout_ms;
	int hbone_max_pending;        /* per pod */
	int hbone_max_pending_source; /* per pod and client address */
};

int tunnel_conf_load(const char *path, struct tunnel_conf *out, char *err, size_t errlen);
void tunnel_conf_free(struct tunnel_conf *c);

#endif
