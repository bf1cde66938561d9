/* SPDX-License-Identifier: Apache-2.0 */
/*
 * warren-tunnel configuration: one file, YAML or JSON (loaded through
 * conf/kobj.h). Every key is optional; defaults in brackets:
 *   node            node name, used for logs and the model  [hostname]
 *   pluginSocket    plugin handoff socket      [/var/run/warren/tunnel.sock]
 *   stateDir        pod records for restart    [/var/lib/warren]
 *   meshPath        file or directory of Kubernetes objects  [required]
 *   adminAddress    admin HTTP, host:port      [127.0.0.1:15000]
 *   adminSocket     admin HTTP on a Unix socket too  [none]
 *   metricsAddress  [0.0.0.0:15020]   readinessAddress [0.0.0.0:15021]
 *   logLevel        error|warn|info|debug      [info]
 *   logFile         also log to this file      [none]
 *   trustDomain     [cluster.local]
 *   meshReloadMs    poll interval for meshPath changes when inotify cannot be used [1000]
 *   accessLog       JSON access log per closed connection: stdout|off|PATH [stdout]
 *   clusterId       source_cluster/destination_cluster metric label [Kubernetes]
 *   caDir           mesh CA directory made by hack/gen-ca.sh: root-cert.pem +
 *                   root-key.pem, or ca-cert.pem + ca-key.pem + cert-chain.pem
 *                   (intermediate layout, preferred when ca-cert.pem exists).
 *                   Set: pod-to-pod traffic is mTLS HBONE (port 15008) with L4
 *                   policy. Unset: the tunnel is not ready and refuses every
 *                   captured connection, unless mtls is "disabled"  [none]
 *   mtls            "enabled" or "disabled". disabled: no caDir, and traffic
 *                   between enrolled pods is plain TCP (an explicit choice,
 *                   logged loudly at start; caDir must then be unset)  [enabled]
 *   certLifetimeSeconds  workload certificate lifetime, 60..7776000; renewed
 *                   at half-life  [86400]
 *   rootNamespace   Istio root namespace: its selector-less policies are
 *                   mesh-wide  [istio-system]
 *   poolMaxStreams  HBONE streams per pooled HTTP/2 connection, 1..10000 [100]
 *   poolIdleTimeoutMs  close a pooled HBONE connection idle this long [300000]
 *   hbonePingIntervalMs  HTTP/2 PING keepalive interval, 0 = off; no answer
 *                   within twice the interval drops the connection  [10000]
 *   keepCapabilities  true: once started, keep only the capabilities the
 *                   data path needs (CAP_NET_ADMIN, CAP_SYS_ADMIN,
 *                   CAP_SYS_PTRACE; tunnel/main.c says why), empty the
 *                   bounding, inheritable and ambient sets and set
 *                   no_new_privs. false: keep every capability it was
 *                   started with (debugging only)  [true]
 *   adoptBatch      pod records re-adopted per loop iteration after a
 *                   restart, 1..4096: smaller keeps probes and the plugin
 *                   answered sooner while adopting, larger adopts faster [16]
 *   workerThreads   data-path threads, 1..64; each accepts its share of
 *                   every pod's connections (SO_REUSEPORT)  [2]
 *   hostProbeSnat   keep the node's table inet warren-host, which makes the
 *                   kubelet's TCP to enrolled pods leave from 169.254.7.127
 *                   so the in-pod rules pass it to the app uncaptured
 *                   (netlink/nft_host.h). false: delete that table  [true]
 *   kubeletUid      the UID whose connections are kubelet probes, 0..2^31-1
 *                   [found at start: the owner of a process named kubelet,
 *                   kubelite or k3s, as Istio finds it]
 *   drainSeconds    on SIGTERM, close the listeners in every pod and keep
 *                   relaying established connections this long, 0..3600;
 *                   0 stops at once (tunnel/drain.c)  [25, as ztunnel's]
 *   metricsAddress and readinessAddress also accept "off" (no server).
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
	char *mesh_path;
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
	char *ca_dir;            /* NULL: no mTLS (allowed only with mtls_disabled) */
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
};

int tunnel_conf_load(const char *path, struct tunnel_conf *out, char *err, size_t errlen);
void tunnel_conf_free(struct tunnel_conf *c);

#endif
