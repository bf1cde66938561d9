/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pure parts of Kubernetes mode (tunnel/kube_watch.c does the I/O):
 *
 *  - where the API server is and how to authenticate to it: a kubeconfig
 *    file (its current context; token, tokenFile or client certificate;
 *    exec plugins are refused) or the in-cluster service-account files and
 *    KUBERNETES_SERVICE_HOST/PORT;
 *  - one line of a watch stream decoded into an event;
 *  - the retry delay after a failure (exponential, with jitter);
 *  - the object store: per resource, "namespace/name" -> what the model
 *    needs of the object the API server sent (kube_obj_compact), from which
 *    the model is rebuilt through mesh_build(), the builder file mode uses.
 *
 * Ownership: every string and JSON value in a struct below is owned by it
 * and freed by its _free(); kube_event_parse() gives the caller a
 * reference to ev->object. Nothing here logs; errors go to err (never a
 * token or a key).
 */
#ifndef WARREN_KUBE_H
#define WARREN_KUBE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct kube_creds {
	char *server;      /* "https://host:port", no trailing slash */
	char *ca_file;     /* CA bundle path, or NULL */
	char *ca_pem;      /* CA bundle in memory (certificate-authority-data) */
	bool insecure;     /* insecure-skip-tls-verify (logged loudly by the caller) */
	char *token;       /* static bearer token, or NULL */
	char *token_file;  /* re-read when it changes and after a 401 */
	char *cert_file, *key_file; /* client certificate (files) ... */
	char *cert_pem, *key_pem;   /* ... or in memory */
	char *namespace;   /* the context's or the pod's namespace, may be NULL */
	char *origin;      /* "kubeconfig <path>" or "in-cluster", for messages */
};

/* The current context of the kubeconfig at path. 0 or -errno with err. */
int kube_config_load(const char *path, struct kube_creds *out, char *err, size_t errlen);
/* In-cluster: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT and
 * sa_dir/{token,ca.crt,namespace} (sa_dir NULL: KUBE_SA_DIR). */
int kube_config_incluster(const char *sa_dir, struct kube_creds *out, char *err, size_t errlen);
void kube_creds_free(struct kube_creds *c);
/* Reads a token file into a new string, whitespace trimmed. 0 or -errno. */
int kube_token_read(const char *path, char **out, char *err, size_t errlen);

enum kube_ev_type { KEV_ADDED, KEV_MODIFIED, KEV_DELETED, KEV_BOOKMARK, KEV_ERROR };

struct kube_event {
	enum kube_ev_type type;
	json_t *object;  /* a reference (ERROR: the Status) */
	const char *rv;  /* object's metadata.resourceVersion, inside object; may be NULL */
	int code;        /* ERROR: the Status code (410: expired), else 0 */
};

/* One line of a watch stream (without its '\n'). 0, or -EINVAL with err.
 * On success ev->object holds a reference the caller drops. */
int kube_event_parse(const char *line, size_t len, struct kube_event *ev, char *err,
		     size_t errlen);
const char *kube_event_type_name(enum kube_ev_type t);

/* Delay before retry number attempt (0-based) after a failure: base ms
 * doubled per attempt up to max ms, then a uniformly chosen point in its
 * upper half (rnd: a random 32-bit value), so that many nodes that lost
 * the API server together do not come back in step. */
uint64_t kube_backoff_ms(unsigned attempt, uint64_t base, uint64_t max, uint32_t rnd);

/* How long a change at now waits for its model rebuild, the last one
 * having started at last (0: none yet): at most one rebuild per window ms,
 * and none later than needed: 0 when the last is window or more ago (the
 * first change after a quiet spell, with those of the same read: a label
 * flipped alone is acted on at once), else until last + window (a burst
 * is coalesced). */
uint64_t kube_rebuild_delay(uint64_t now, uint64_t last, uint64_t window);

/* The object store of one resource: an object of "ns/name" (cluster
 * scoped: "name") -> object. */
/* "ns/name" of obj into buf; -EINVAL when metadata.name is missing. */
int kube_obj_key(const json_t *obj, char *buf, size_t len);
const char *kube_obj_rv(const json_t *obj);
/* Drops metadata.managedFields (large, never read) and sets apiVersion and
 * kind when missing (a list's items carry neither). */
void kube_obj_trim(json_t *obj, const char *api_version, const char *kind);
/* A new reference to what the model needs of obj (trimmed): of a Pod, a new
 * object holding only the fields the model builder reads (metadata name,
 * namespace, uid, resourceVersion, labels, annotations; spec service
 * account, node, hostNetwork, the containers' and initContainers'
 * restartPolicy and ports; status phase, podIP, podIPs, the conditions'
 * type and status), sharing their values with obj and each as sent, so the
 * builder decodes it exactly as it decodes obj; obj itself when it holds
 * nothing else (a pod pruned from the text, conf/kube_prune.h) and for any
 * other kind. A pod is ~1/10 of its JSON. NULL when out of memory. */
json_t *kube_obj_compact(json_t *obj);
/* a and b are the same object but for metadata.resourceVersion: an event
 * that changes nothing the store keeps (a pod's status heartbeat, once
 * compact) needs no new model. */
bool kube_obj_same(json_t *a, json_t *b);

#endif
