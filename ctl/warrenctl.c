/* SPDX-License-Identifier: Apache-2.0 */
/*
 * warrenctl: reads a warren-tunnel's admin API (libcurl, TCP or a Unix
 * socket) and prints it for people (aligned tables) or for scripts (-o
 * json, the API's JSON unchanged). Exit 0 on success, 1 on any error
 * (message on stderr says what and what to do), 2 on bad usage.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/warren.h"

#define DEFAULT_ADMIN_SOCKET "/var/run/warren/admin.sock"

struct ctl {
	const char *url;
	const char *socket;
	bool json;
};

struct buf {
	char *p;
	size_t n;
};

static void ctl_warrenctl_usage(FILE *f)
{
	fprintf(f,
		"usage: warrenctl [--admin URL | --socket PATH] [-o json|table] COMMAND [ARGS]\n"
		"\n"
		"Inspect a running warren-tunnel through its admin API.\n"
		"\n"
		"Commands:\n"
		"  pods               list the pods enrolled on this node's tunnel\n"
		"                     (table: NAMESPACE NAME UID IPS CONTAINER), then any state\n"
		"                     record the tunnel could not read at start (-o json: GET\n"
		"                     /state_records has those)\n"
		"  workloads          list the pods of the mesh model: namespace, name, IPs, node,\n"
		"                     service account, enrolled (by the mesh's labels), local (on\n"
		"                     this tunnel's node), captured (served by this tunnel)\n"
		"  services           list the services of the mesh model: VIPs, ports\n"
		"                     (port->targetPort/protocol) and endpoints (ready pods the\n"
		"                     selector matches; with a named targetPort, the port each\n"
		"                     one serves it on: name(ip 80->8080))\n"
		"  connections        list live relayed connections (security: mutual_tls for\n"
		"                     HBONE, with the source and destination identities)\n"
		"  certs              list the workload certificates (mTLS mode): identity, serial,\n"
		"                     not-after, seconds to renewal, pods using it (refs)\n"
		"  policies           list AuthorizationPolicies and PeerAuthentications: scope,\n"
		"                     action, state (active/ignored/invalid), messages, and the\n"
		"                     local pods each selects\n"
		"  pool               list the pooled outbound HBONE connections: source\n"
		"                     identity, destination, streams, bytes, age\n"
		"  config-dump        print the tunnel's configuration, pods and mesh state (JSON)\n"
		"  log-level [LEVEL]  print the tunnel's log level, or set it to\n"
		"                     error|warn|info|debug\n"
		"  waypoint [routes|policies]\n"
		"                     a warren-waypoint's state (its --admin socket): the\n"
		"                     model's source, generation, errors and the objects it\n"
		"                     refused (whose Services get 503); its HTTPRoutes\n"
		"                     (parents, state, backends per rule); its policies\n"
		"\n"
		"Options:\n"
		"  -s, --socket PATH  the admin API's Unix socket (adminSocket) [" DEFAULT_ADMIN_SOCKET "]\n"
		"  -a, --admin URL    use the admin API over TCP instead (adminAddress, e.g.\n"
		"                     http://127.0.0.1:15000): read-only, so no certs,\n"
		"                     config-dump or log-level LEVEL\n"
		"  -o, --output FMT   json (the API's JSON as is) or table [table]; every command\n"
		"                     takes it\n"
		"  -h, --help         this help\n"
		"  -V, --version      print the version\n"
		"\n"
		"The tunnel serves its admin API on its adminSocket (root only); an adminAddress,\n"
		"when configured, listens inside the tunnel's network namespace: run warrenctl\n"
		"there (e.g. ip netns exec NODE warrenctl --admin URL pods).\n"
		"Exit status: 0 ok, 1 error, 2 bad usage.\n");
}

static size_t ctl_on_data(char *p, size_t size, size_t nmemb, void *ctx)
{
	struct buf *b = ctx;
	size_t n = size * nmemb;
	char *q = realloc(b->p, b->n + n + 1);

	if (!q)
		return 0;
	memcpy(q + b->n, p, n);
	b->n += n;
	q[b->n] = '\0';
	b->p = q;
	return n;
}

/* GET (or POST when post) base+path. Returns 0 and the body in *out
 * (malloc'd), or 1 after printing why. */
static int ctl_http(const struct ctl *c, const char *path, bool post, char **out)
{
	char url[2048], errbuf[CURL_ERROR_SIZE] = "";
	struct buf b = { 0 };
	const char *where = c->socket ? c->socket : c->url;
	long status = 0;
	CURLcode rc;
	CURL *h;
	int ret = 1;

	*out = NULL;
	snprintf(url, sizeof(url), "%s%s", c->socket ? "http://localhost" : c->url, path);
	h = curl_easy_init();
	if (!h) {
		fprintf(stderr, "warrenctl: cannot initialise libcurl\n");
		return 1;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, ctl_on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (c->socket)
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->socket);
	if (post) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	}
	rc = curl_easy_perform(h);
	if (rc == CURLE_COULDNT_CONNECT && !c->socket) {
		fprintf(stderr, "warrenctl: cannot reach warren-tunnel admin API at %s: connection refused; "
			"is warren-tunnel running (in this network namespace)?\n", where);
		goto out;
	}
	if (rc == CURLE_COULDNT_CONNECT) {
		fprintf(stderr, "warrenctl: cannot reach warren-tunnel admin API on socket %s (%s); "
			"is warren-tunnel running with adminSocket set to this path?\n", where,
			access(c->socket, F_OK) ? "no such socket file" : "connection refused");
		goto out;
	}
	if (rc != CURLE_OK) {
		fprintf(stderr, "warrenctl: request to warren-tunnel admin API at %s failed: %s\n", where,
			access(c->socket, F_OK) ? "no such socket file" : "connection refused");
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		fprintf(stderr, "warrenctl: %s%s answered HTTP %ld: %s", where, path, status,
			b.p ? b.p : "(no body)\n");
		goto out;
	}
	*out = b.p ? b.p : strdup("");
	b.p = NULL;
	ret = *out ? 0 : 1;
out:
	free(b.p);
	curl_easy_cleanup(h);
	return ret;
}

static json_t *ctl_parse(const char *body)
{
	json_error_t jerr;
	json_t *j = json_loads(body, 0, &jerr);

	if (!j)
		fprintf(stderr, "warrenctl: the admin API answered something that is not JSON: %s\n", jerr.text);
	return j;
}

static void ctl_print_cell(const char *s, size_t width, bool last)
{
	if (last)
		printf("%s\n", s);
	else
		printf("%-*s  ", (int)width, s);
}

/* Print rows (arrays of strings) as left-aligned columns. */
static void ctl_print_table(const char *const *hdr, size_t ncol, char ***rows, size_t nrow)
{
	size_t w[16] = { 0 };

	for (size_t k = 0; k < ncol; k++) {
		w[k] = strlen(hdr[k]);
		for (size_t r = 0; r < nrow; r++)
			if (strlen(rows[r][k]) > w[k])
				w[k] = strlen(rows[r][k]);
	}
	for (size_t k = 0; k < ncol; k++)
		ctl_print_cell(hdr[k], w[k], k + 1 == ncol);
	for (size_t r = 0; r < nrow; r++)
		for (size_t k = 0; k < ncol; k++)
			ctl_print_cell(rows[r][k], w[k], k + 1 == ncol);
}

static char *ctl_jstr(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (json_is_string(v))
		return strdup(json_string_value(v));
	if (json_is_boolean(v))
		return strdup(json_is_true(v) ? "yes" : "no");
	if (json_is_integer(v)) {
		char *s;

		if (asprintf(&s, "%lld", (long long)json_integer_value(v)) < 0)
			return NULL;
		return s;
	}
	return strdup("-");
}

/* Appends s (with a ',' separator) to *acc. -1 on ENOMEM. */
static int ctl_append(char **acc, const char *s)
{
	size_t n = *acc ? strlen(*acc) : 0;
	char *q = realloc(*acc, n + strlen(s) + 2);

	if (!q)
		return -1;
	sprintf(q + n, "%s%s", n ? "," : "", s);
	*acc = q;
	return 0;
}

/* Formats item i of an array for a table cell into buf; false skips it. */
typedef bool (*item_fmt)(json_t *item, size_t i, char *buf, size_t len);

/* The items of arr formatted by fmt and joined with ','. 0 and *out
 * (malloc'd, NULL when nothing was formatted), or -1 on ENOMEM. */
static int ctl_join_items(json_t *arr, item_fmt fmt, char **out)
{
	char *acc = NULL, item[1024];
	json_t *v;
	size_t i;

	json_array_foreach(arr, i, v) {
		if (fmt(v, i, item, sizeof(item)) && ctl_append(&acc, item) < 0) {
			free(acc);
			return -1;
		}
	}
	*out = acc;
	return 0;
}

/* row[to] = the items of row[from] joined ("-" when none). */
static int ctl_join_field(json_t *row, const char *from, const char *to, item_fmt fmt)
{
	char *s;
	int ret;

	if (ctl_join_items(json_object_get(row, from), fmt, &s) < 0)
		return -1;
	ret = json_object_set_new(row, to, json_string(s ? s : "-"));
	free(s);
	return ret;
}

/* A string item as is; anything else is skipped. */
static bool ctl_fmt_string(json_t *v, size_t i, char *buf, size_t len)
{
	const char *s = json_string_value(v);

	if (s)
		snprintf(buf, len, "%s", s);
	return s;
}

static int ctl_table_of(json_t *arr, const char *const *hdr, const char *const *keys, size_t ncol)
{
	size_t n = json_array_size(arr), i;
	char ***rows = calloc(n ? n : 1, sizeof(*rows));
	json_t *o;
	int ret = 1;

	if (!rows)
		return 1;
	json_array_foreach(arr, i, o) {
		rows[i] = calloc(ncol, sizeof(char *));
		if (!rows[i])
			goto out;
		for (size_t k = 0; k < ncol; k++) {
			if (!strcmp(keys[k], "ips") || !strcmp(keys[k], "vips")) {
				char *s;

				if (ctl_join_items(json_object_get(o, keys[k]), ctl_fmt_string, &s) < 0)
					goto out;
				rows[i][k] = s ? s : strdup("-");
			} else {
				rows[i][k] = ctl_jstr(o, keys[k]);
			}
			if (!rows[i][k])
				goto out;
		}
	}
	if (!n)
		printf("no %s\n", !strcmp(keys[2], "uid") ? "pods enrolled" : "entries");
	else
		ctl_print_table(hdr, ncol, rows, n);
	ret = 0;
out:
	for (i = 0; i < n; i++) {
		for (size_t k = 0; rows[i] && k < ncol; k++)
			free(rows[i][k]);
		free(rows[i]);
	}
	free(rows);
	return ret;
}

/* Rewrites a row for the table (e.g. nested arrays to one string). */
typedef int (*flatten_fn)(json_t *row);

static int ctl_cmd_list_flat(const struct ctl *c, const char *path, const char *const *hdr,
			 const char *const *keys, size_t ncol, flatten_fn flat);

static int ctl_cmd_list(const struct ctl *c, const char *path, const char *const *hdr,
		    const char *const *keys, size_t ncol)
{
	return ctl_cmd_list_flat(c, path, hdr, keys, ncol, NULL);
}

static int ctl_cmd_list_flat(const struct ctl *c, const char *path, const char *const *hdr,
			 const char *const *keys, size_t ncol, flatten_fn flat)
{
	char *body = NULL;
	json_t *j = NULL;
	int ret;

	ret = ctl_http(c, path, false, &body);
	if (ret)
		goto out;
	if (c->json) {
		fputs(body, stdout);
		goto out;
	}
	ret = 1;
	j = ctl_parse(body);
	if (!j)
		goto out;
	if (!json_is_array(j)) {
		fprintf(stderr, "warrenctl: expected a JSON array from %s\n", path);
		goto out;
	}
	if (flat) {
		size_t i;
		json_t *row;

		json_array_foreach(j, i, row)
			if (flat(row) < 0) {
				fprintf(stderr, "warrenctl: out of memory\n");
				goto out;
			}
	}
	ret = ctl_table_of(j, hdr, keys, ncol);
out:
	json_decref(j);
	free(body);
	return ret;
}

static int ctl_cmd_pods(const struct ctl *c, int argc, char **argv)
{
	static const char *const hdr[] = { "NAMESPACE", "NAME", "UID", "IPS", "CONTAINER", "REDIRECT",
					   "INBOUND" };
	static const char *const keys[] = { "namespace", "name", "uid", "ips", "containerId", "redirect",
					    "captureInbound" };

	char *body = NULL;
	json_t *bad, *r;
	size_t i;
	int ret;

	ret = ctl_cmd_list(c, "/pods", hdr, keys, ARRAY_SIZE(hdr));
	if (ret || c->json)
		return ret;
	/* Records that could not be read at start: pods that may still be
	 * captured with nobody serving them. */
	if (ctl_http(c, "/state_records", false, &body))
		return 1;
	bad = ctl_parse(body);
	free(body);
	if (json_is_array(bad) && json_array_size(bad)) {
		printf("\nstate records that could not be read (moved aside; a pod not re-adopted from its\n"
		       "netns stays captured and refused until it is re-created):\n");
		json_array_foreach(bad, i, r)
			printf("  uid %s: %s (%s): %s%s\n", json_string_value(json_object_get(r, "uid")) ?: "?",
			       json_string_value(json_object_get(r, "record")) ?: "?",
			       json_string_value(json_object_get(r, "reason")) ?: "?",
			       json_is_true(json_object_get(r, "adopted")) ? ""
			       : json_is_true(json_object_get(r, "pending")) ? "not re-adopted yet: "
									 : "not re-adopted: ",
			       json_string_value(json_object_get(r, "readopt")) ?: "?");
	}
	json_decref(bad);
	return 0;
}

static int ctl_cmd_workloads(const struct ctl *c, int argc, char **argv)
{
	static const char *const hdr[] = { "NAMESPACE", "NAME", "IPS", "NODE", "SERVICE-ACCOUNT",
					   "ENROLLED", "LOCAL", "CAPTURED" };
	static const char *const keys[] = { "namespace", "name", "ips", "node", "serviceAccount",
					    "enrolled", "local", "captured" };

	return ctl_cmd_list(c, "/workloads", hdr, keys, ARRAY_SIZE(hdr));
}

/* port -> "80->8080/TCP" */
static bool ctl_fmt_port(json_t *v, size_t i, char *buf, size_t len)
{
	json_t *tp = json_object_get(v, "targetPort");
	char tps[128];

	if (json_is_string(tp))
		snprintf(tps, sizeof(tps), "%s", json_string_value(tp));
	else
		snprintf(tps, sizeof(tps), "%lld", (long long)json_integer_value(tp));
	snprintf(buf, len, "%lld->%s/%s", (long long)json_integer_value(json_object_get(v, "port")), tps,
		 json_string_value(json_object_get(v, "protocol")) ?: "TCP");
	return true;
}

/* endpoint -> "name(ip)" */
static bool ctl_fmt_endpoint(json_t *v, size_t i, char *buf, size_t len)
{
	const char *ip = json_string_value(json_array_get(json_object_get(v, "ips"), 0));

	snprintf(buf, len, "%s(%s)", json_string_value(json_object_get(v, "name")) ?: "?",
		 ip ? ip : "no IP");
	return true;
}

/* endpoint -> "name(ip 80->8080,81->9090)": with a named targetPort the
 * numbers differ per pod, and a port the pod does not declare is absent */
static bool ctl_fmt_endpoint_ports(json_t *v, size_t i, char *buf, size_t len)
{
	const char *ip = json_string_value(json_array_get(json_object_get(v, "ips"), 0));
	const char *port, *sep = " ";
	json_t *tp;
	size_t off;
	int n;

	n = snprintf(buf, len, "%s(%s", json_string_value(json_object_get(v, "name")) ?: "?",
		     ip ? ip : "no IP");
	off = n < 0 ? 0 : (size_t)n;
	json_object_foreach(json_object_get(v, "ports"), port, tp) {
		if (off >= len)
			break;
		n = snprintf(buf + off, len - off, "%s%s->%lld", sep, port,
			     (long long)json_integer_value(tp));
		off += n < 0 ? 0 : (size_t)n;
		sep = ",";
	}
	if (off < len)
		snprintf(buf + off, len - off, ")");
	return true;
}

static int ctl_flatten_service(json_t *row)
{
	json_t *p;
	size_t i;
	bool named = false;

	json_array_foreach(json_object_get(row, "ports"), i, p)
		named |= json_is_string(json_object_get(p, "targetPort"));
	if (ctl_join_field(row, "ports", "_ports", ctl_fmt_port) < 0 ||
	    ctl_join_field(row, "endpoints", "_endpoints", named ? ctl_fmt_endpoint_ports : ctl_fmt_endpoint) < 0)
		return -1;
	return 0;
}

static int ctl_cmd_services(const struct ctl *c, int argc, char **argv)
{
	static const char *const hdr[] = { "NAMESPACE", "NAME", "VIPS", "PORTS", "ENDPOINTS" };
	static const char *const keys[] = { "namespace", "name", "vips", "_ports", "_endpoints" };

	return ctl_cmd_list_flat(c, "/services", hdr, keys, ARRAY_SIZE(hdr), ctl_flatten_service);
}


static int ctl_cmd_connections_sec(const struct ctl *c, int argc, char **argv)
{
	static const char *const hdr[] = { "NAMESPACE", "POD", "DIRECTION", "SRC", "DST", "AGE_MS",
					   "SECURITY", "SRC-IDENTITY", "DST-IDENTITY" };
	static const char *const keys[] = { "namespace", "pod", "direction", "src", "dst", "ageMs",
					    "security", "srcIdentity", "dstIdentity" };

	return ctl_cmd_list(c, "/connections", hdr, keys, ARRAY_SIZE(hdr));
}

static int ctl_cmd_certs(const struct ctl *c, int argc, char **argv)
{
	static const char *const hdr[] = { "IDENTITY", "SERIAL", "NOT-AFTER", "RENEW-IN-S", "REFS" };
	static const char *const keys[] = { "identity", "serial", "notAfter", "renewInSeconds", "refs" };

	return ctl_cmd_list(c, "/certs", hdr, keys, ARRAY_SIZE(hdr));
}

/* message -> "level: text", a space after the ',' of the one before */
static bool ctl_fmt_message(json_t *v, size_t i, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s: %s", i ? " " : "", json_string_value(json_object_get(v, "level")) ?: "?",
		 json_string_value(json_object_get(v, "text")) ?: "?");
	return true;
}

/* selected pod -> "ns/pod" */
static bool ctl_fmt_selected(json_t *v, size_t i, char *buf, size_t len)
{
	snprintf(buf, len, "%s", json_string_value(v) ?: "?");
	return true;
}

static int ctl_flatten_policy(json_t *row)
{
	if (ctl_join_field(row, "messages", "_messages", ctl_fmt_message) < 0 ||
	    ctl_join_field(row, "selects", "_selects", ctl_fmt_selected) < 0)
		return -1;
	return 0;
}

static int ctl_cmd_policies(const struct ctl *c, int argc, char **argv)
{
	static const char *const hdr[] = { "KIND", "POLICY", "SCOPE", "ACTION", "STATE",
					   "SELECTS", "MESSAGES" };
	static const char *const keys[] = { "kind", "key", "scope", "action", "state", "_selects",
					    "_messages" };

	return ctl_cmd_list_flat(c, "/policies", hdr, keys, ARRAY_SIZE(hdr), ctl_flatten_policy);
}

static int ctl_cmd_pool(const struct ctl *c, int argc, char **argv)
{
	static const char *const hdr[] = { "POD", "SOURCE-IDENTITY", "DESTINATION", "STATE", "STREAMS",
					   "BYTES-IN", "BYTES-OUT", "AGE_MS" };
	static const char *const keys[] = { "pod", "sourceIdentity", "destination", "state", "streams",
					    "bytesIn", "bytesOut", "ageMs" };

	return ctl_cmd_list(c, "/pool", hdr, keys, ARRAY_SIZE(hdr));
}

static int ctl_cmd_config_dump(const struct ctl *c, int argc, char **argv)
{
	char *body = NULL;
	int ret = ctl_http(c, "/config_dump", false, &body);

	if (!ret)
		fputs(body, stdout);
	free(body);
	return ret;
}

static int ctl_cmd_log_level(const struct ctl *c, int argc, char **argv)
{
	char path[128], *body = NULL;
	json_t *j = NULL;
	int ret;

	if (argc > 2) {
		fprintf(stderr, "warrenctl: log-level takes at most one LEVEL (error|warn|info|debug)\n");
		return 2;
	}
	if (argc == 2) {
		if (strcmp(argv[1], "error") && strcmp(argv[1], "warn") && strcmp(argv[1], "info") &&
		    strcmp(argv[1], "debug")) {
			fprintf(stderr, "warrenctl: unknown log level \"%s\"; use error, warn, info or debug\n", argv[1]);
			return 2;
		}
		snprintf(path, sizeof(path), "/logging?level=%s", argv[1]);
	} else {
		snprintf(path, sizeof(path), "/logging");
	}
	ret = ctl_http(c, path, argc == 2, &body);
	if (ret)
		goto out;
	if (c->json) {
		fputs(body, stdout);
		goto out;
	}
	ret = 1;
	j = ctl_parse(body);
	if (!j)
		goto out;
	printf("%s\n", json_string_value(json_object_get(j, "level")) ?: "?");
	ret = 0;
out:
	json_decref(j);
	free(body);
	return ret;
}

/* route parent -> "ns/svc:port (state)" */
static bool ctl_fmt_parent(json_t *v, size_t i, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s (%s)", i ? " " : "", json_string_value(json_object_get(v, "service")) ?: "?",
		 json_string_value(json_object_get(v, "state")) ?: "?");
	return true;
}

/* rule -> "svc:port*weight,..." per rule, rules separated by "; " */
static bool ctl_fmt_rule(json_t *v, size_t i, char *buf, size_t len)
{
	json_t *b;
	size_t k, off = (size_t)snprintf(buf, len, "%s", i ? " " : "");

	json_array_foreach(json_object_get(v, "backends"), k, b)
		if (off < len)
			off += (size_t)snprintf(buf + off, len - off, "%s%s:%lld*%lld", k ? "," : "",
						json_string_value(json_object_get(b, "service")) ?: "?",
						(long long)json_integer_value(json_object_get(b, "port")),
						(long long)json_integer_value(json_object_get(b, "weight")));
	return true;
}

static int ctl_flatten_route(json_t *row)
{
	char key[320];

	snprintf(key, sizeof(key), "%s/%s", json_string_value(json_object_get(row, "namespace")) ?: "?",
		 json_string_value(json_object_get(row, "name")) ?: "?");
	if (json_object_set_new(row, "_key", json_string(key)) < 0 ||
	    ctl_join_field(row, "parents", "_parents", ctl_fmt_parent) < 0 ||
	    ctl_join_field(row, "rules", "_rules", ctl_fmt_rule) < 0)
		return -1;
	return 0;
}

static int ctl_flatten_wp_policy(json_t *row)
{
	return ctl_join_field(row, "messages", "_messages", ctl_fmt_message);
}

static int ctl_cmd_waypoint(const struct ctl *c, int argc, char **argv)
{
	static const char *const rhdr[] = { "ROUTE", "PARENTS", "BACKENDS" };
	static const char *const rkeys[] = { "_key", "_parents", "_rules" };
	static const char *const phdr[] = { "POLICY", "SCOPE", "ACTION", "STATE", "MESSAGES" };
	static const char *const pkeys[] = { "key", "scope", "action", "state", "_messages" };
	char *body = NULL, *src = NULL;
	json_t *j = NULL, *s, *r;
	size_t i;
	int ret;

	if (argc > 2 || (argc == 2 && strcmp(argv[1], "routes") && strcmp(argv[1], "policies"))) {
		fprintf(stderr, "warrenctl: waypoint takes routes, policies or nothing\n");
		return 2;
	}
	if (argc == 2 && !strcmp(argv[1], "routes"))
		return ctl_cmd_list_flat(c, "/waypoint/routes", rhdr, rkeys, ARRAY_SIZE(rhdr), ctl_flatten_route);
	if (argc == 2)
		return ctl_cmd_list_flat(c, "/waypoint/policies", phdr, pkeys, ARRAY_SIZE(phdr), ctl_flatten_wp_policy);
	ret = ctl_http(c, "/waypoint", false, &body);
	if (ret || c->json) {
		if (!ret)
			fputs(body, stdout);
		goto out;
	}
	ret = 1;
	if (!(j = ctl_parse(body)))
		goto out;
	s = json_object_get(j, "source");
	src = json_dumps(json_object_get(s, "kubernetes") ?: json_object_get(s, "path"), JSON_ENCODE_ANY);
	printf("gateway     %s/%s\nidentity    %s\nready       %s\nrequests    %lld (%lld denied)\n"
	       "source      %s %s\ngeneration  %lld (%lld loads, %lld errors)\nlast error  %s\n",
	       json_string_value(json_object_get(j, "namespace")) ?: "?",
	       json_string_value(json_object_get(j, "name")) ?: "?",
	       json_string_value(json_object_get(j, "identity")) ?: "?",
	       json_is_true(json_object_get(j, "ready")) ? "yes" : "no (no model yet)",
	       (long long)json_integer_value(json_object_get(j, "requests")),
	       (long long)json_integer_value(json_object_get(j, "denied")),
	       json_string_value(json_object_get(s, "source")) ?: "?", src ? src : "",
	       (long long)json_integer_value(json_object_get(s, "generation")),
	       (long long)json_integer_value(json_object_get(s, "loads")),
	       (long long)json_integer_value(json_object_get(s, "errors")),
	       json_string_value(json_object_get(s, "lastError")) ?: "-");
	json_array_foreach(json_object_get(s, "refused"), i, r)
		printf("refused     %s %s: %s\n", json_string_value(json_object_get(r, "kind")) ?: "?",
		       json_string_value(json_object_get(r, "name")) ?: "?",
		       json_string_value(json_object_get(r, "error")) ?: "?");
	ret = 0;
out:
	free(src);
	json_decref(j);
	free(body);
	return ret;
}

static const struct {
	const char *name;
	int (*fn)(const struct ctl *c, int argc, char **argv);
} ctl_cmds[] = {
	{ "pods", ctl_cmd_pods },
	{ "workloads", ctl_cmd_workloads },
	{ "services", ctl_cmd_services },
	{ "connections", ctl_cmd_connections_sec },
	{ "certs", ctl_cmd_certs },
	{ "policies", ctl_cmd_policies },
	{ "pool", ctl_cmd_pool },
	{ "config-dump", ctl_cmd_config_dump },
	{ "log-level", ctl_cmd_log_level },
	{ "waypoint", ctl_cmd_waypoint },
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "admin", required_argument, NULL, 'a' },
		{ "socket", required_argument, NULL, 's' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl c = { .socket = DEFAULT_ADMIN_SOCKET };
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "+a:s:o:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			c.url = optarg;
			c.socket = NULL;
			break;
		case 's':
			c.socket = optarg;
			break;
		case 'o':
			if (!strcmp(optarg, "json")) {
				c.json = true;
			} else if (strcmp(optarg, "table")) {
				fprintf(stderr, "warrenctl: unknown output format \"%s\"; use json or table\n", optarg);
				return 2;
			}
			break;
		case 'h':
			ctl_warrenctl_usage(stdout);
			return 0;
		case 'V':
			printf("warrenctl %s\n", WARREN_VERSION);
			return 0;
		default:
			ctl_warrenctl_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "warrenctl: missing COMMAND\n");
		ctl_warrenctl_usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < ARRAY_SIZE(ctl_cmds); i++) {
		if (strcmp(argv[optind], ctl_cmds[i].name))
			continue;
		curl_global_init(CURL_GLOBAL_DEFAULT);
		ret = ctl_cmds[i].fn(&c, argc - optind, argv + optind);
		curl_global_cleanup();
		return ret;
	}
	fprintf(stderr, "warrenctl: unknown command \"%s\"; see warrenctl --help\n", argv[optind]);
	return 2;
}
