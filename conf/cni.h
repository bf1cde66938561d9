/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CNI side of warren-cni: the plugin's stdin configuration, CNI_ARGS,
 * CNI result conversion between spec versions, and CNI error JSON
 * (the CNI spec's result and error formats).
 *
 * Pure functions over memory: no I/O, no environment access, so they can be
 * unit-tested and fuzzed. Every failure fills a struct cni_error with the
 * CNI error code and a message that names the offending key or variable.
 *
 * Ownership: struct cni_conf is one owner tree freed only by
 * cni_conf_free() (NULL-tolerant); *out pointers are NULL on failure.
 * struct cni_args owns its strings; cni_args_release() frees them.
 * Functions returning json_t * return a new reference owned by the caller.
 */
#ifndef WARREN_CNI_H
#define WARREN_CNI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Error codes (the CNI spec's); >= 100 are ours. */
enum {
	CNI_ERR_INCOMPATIBLE_VERSION = 1,
	CNI_ERR_UNSUPPORTED_FIELD = 2,
	CNI_ERR_UNKNOWN_CONTAINER = 3,
	CNI_ERR_INVALID_ENV = 4,
	CNI_ERR_IO = 5,
	CNI_ERR_DECODE = 6,
	CNI_ERR_INVALID_CONFIG = 7,
	CNI_ERR_TRY_AGAIN_LATER = 11,
	CNI_ERR_NOT_AVAILABLE = 50,
	CNI_ERR_LIMITED_CONNECTIVITY = 51,
	/* warren's own codes */
	CNI_ERR_TUNNEL_REFUSED = 100,  /* the tunnel answered ok=false */
	CNI_ERR_TUNNEL_PROTOCOL = 101, /* the tunnel's answer made no sense */
	CNI_ERR_REDIRECT = 102,        /* programming in-pod redirection failed */
	CNI_ERR_CHECK_REDIRECT = 103,  /* CHECK: in-pod redirection incomplete */
	CNI_ERR_CHECK_UNKNOWN = 104,   /* CHECK: the tunnel does not know the pod */
	CNI_ERR_INTERNAL = 999,
};

#define CNI_VERSION_LATEST "1.1.0"
#define CNI_DEFAULT_TIMEOUT_MS 5000
#define CNI_DEFAULT_BPF_DIR "/sys/fs/bpf"
#define CNI_MAX_TIMEOUT_MS 600000

struct cni_error {
	int code;           /* 0 = no error */
	char msg[256];      /* short, stands alone */
	char details[1024]; /* what was wrong and what to do */
};

/* Fill err (NULL-tolerant). details is printf-style and may be NULL.
 * Always returns -1 so callers can `return cni_error_set(...)`. */
int cni_error_set(struct cni_error *err, int code, const char *msg, const char *details_fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* {"cniVersion", "code", "msg", "details"} as a malloc'd string with a
 * trailing newline, or NULL on allocation failure. version may be NULL
 * (then CNI_VERSION_LATEST). */
char *cni_error_json(const char *version, const struct cni_error *err);

enum cni_redirect { CNI_REDIRECT_NFTABLES = 0, CNI_REDIRECT_EBPF };

struct cni_conf {
	char *cni_version;  /* always set, one of the supported versions */
	char *name;         /* always set */
	char *type;         /* may be NULL */
	json_t *prev_result;/* object or NULL (owned reference) */
	json_t *raw;        /* the whole stdin object (owned), for GC keys */
	char *tunnel_socket;
	char **exclude_namespaces;
	size_t n_exclude_namespaces;
	enum cni_redirect redirect;
	char *bpf_dir;      /* bpffs mount for redirect ebpf; always set */
	char *log_file;     /* may be NULL */
	char *log_level;    /* may be NULL; validated by wlog_parse_level */
	int timeout_ms;
};

/* Parse the plugin's stdin. Returns 0 and *out, or -1 with err filled:
 * 6 malformed JSON / not an object, 1 unsupported cniVersion, 7 a known
 * key of the wrong type or an invalid value. */
int cni_conf_parse(const char *buf, size_t len, struct cni_conf **out, struct cni_error *err);
void cni_conf_free(struct cni_conf *conf);

/* Is ns listed in excludeNamespaces? */
bool cni_conf_excluded(const struct cni_conf *conf, const char *ns);

/* The supported versions, oldest first, and a JSON array of them. */
extern const char *const cni_supported_versions[];
extern const size_t cni_n_supported_versions;
json_t *cni_supported_versions_json(void);
bool cni_version_supported(const char *v);
/* Compare two dotted versions numerically: <0, 0, >0. Missing parts are 0;
 * garbage compares as 0. */
int cni_version_cmp(const char *a, const char *b);

/* The cniVersion of a stdin buffer, leniently: a non-empty string
 * "cniVersion" of a JSON object, else NULL. malloc'd. */
char *cni_peek_version(const char *buf, size_t len);

/* CNI_ARGS: K=V;K=V. Unknown keys ignored, empty segments ignored, values
 * may contain '='. A segment without '=' or with an empty key is an error
 * (code 4 naming CNI_ARGS). s may be NULL or empty. */
struct cni_args {
	char *pod_namespace;
	char *pod_name;
	char *pod_uid;
	char *pod_infra_container_id;
};
int cni_args_parse(const char *s, struct cni_args *out, struct cni_error *err);
void cni_args_release(struct cni_args *args);

/* Environment value checks (pkg/utils/utils.go rules); -1 with code 4. */
int cni_validate_container_id(const char *id, struct cni_error *err);
int cni_validate_ifname(const char *ifname, struct cni_error *err);

/* prevResult encoded for `version`, with cniVersion set to it:
 *  - >= 1.0.0: ips[].version removed;
 *  - < 1.0.0: ips[].version "4"/"6" synthesised from ips[].address;
 *  - < 1.1.0: 1.1-only interfaces[].{mtu,socketPath,pciID} and
 *    routes[].{mtu,advmss,priority,table,scope} removed.
 * Everything else (dns, extra keys) is copied unchanged. prev NULL gives
 * {"cniVersion": version}. Returns NULL (err code 7) when prev is not an
 * object, or on allocation failure (999). */
json_t *cni_result_convert(const json_t *prev, const char *version, struct cni_error *err);

/* ["10.0.0.2/24", ...] from prev's ips[].address (strings only); an empty
 * array when prev is NULL. NULL only on allocation failure. */
json_t *cni_result_ips(const json_t *prev);

/* The GC valid attachments of the config ("cni.dev/valid-attachments", or
 * the 1.1.0-tag name "cni.dev/attachments"), as the tunnel's
 * [{"containerId", "ifname"}, ...]. -1 with code 7 when missing or
 * malformed: an empty list would make the tunnel forget every pod. */
int cni_conf_gc_valid(const struct cni_conf *conf, json_t **out, struct cni_error *err);

#endif
