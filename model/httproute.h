/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTPRoute (gateway.networking.k8s.io/v1) attached to Services, as GAMMA
 * specifies for a mesh: decoding into the model, and the pure matching and
 * backend choice the waypoint makes per request.
 *
 * Decoding (mesh_httproute_decode, called by model/mesh.c) is strict: an
 * unknown key, a bad path/header/query/method match, a regex regcomp()
 * refuses, a backendRef to another namespace or kind, or a field warren does
 * not implement yet (filters but the header modifiers, retry,
 * sessionPersistence) fails
 * the model's load with an error naming the field: a route that would be
 * applied only in part must not be applied at all. parentRefs of kind
 * Service (group "") attach the route to that Service of the route's
 * namespace (port: only that Service port); parentRefs to a Gateway are
 * kept out (not mesh routes). hostnames are ignored, as GAMMA says.
 *
 * Matching (mesh_route_select): over the routes attached to (Service,
 * port), a rule matches when one of its matches does (no matches: a
 * PathPrefix "/"); a match needs all of its path, method, headers (Exact,
 * name case-insensitive) and query parameters (Exact, the first parameter
 * of that name, compared as received, no percent-decoding). Paths compare
 * as received (without the query): Exact; PathPrefix by path elements
 * ("/a" matches "/a" and "/a/b", not "/ab"; a trailing "/" of the prefix
 * is ignored); RegularExpression is a POSIX extended regex (regcomp)
 * that must match the whole path. Among matching rules the most specific
 * wins, as the Gateway API orders them: Exact path, then
 * RegularExpression, then the longest PathPrefix; then a method; then
 * more headers; then more query parameters; ties go to the route first by
 * namespace/name, then to the earlier rule.
 *
 * Weights (mesh_route_pick): a backendRef is picked with probability
 * weight / sum of the rule's weights (default weight 1); none when the sum
 * is 0 (the waypoint answers 500, as the Gateway API says).
 *
 * Timeouts: timeouts.request and timeouts.backendRequest are Gateway API
 * durations (1 to 4 of 1..5 digits followed by h, m, s or ms; "0s" or
 * absent: none), backendRequest not above request; at most 24 h.
 *
 * Header modifiers (filters RequestHeaderModifier, ResponseHeaderModifier,
 * each at most once per rule): names are tokens, values have no control
 * byte but HTAB; a name that frames the message or the connection
 * (Content-Length, Transfer-Encoding, Connection, Upgrade, TE, Trailer,
 * Keep-Alive, Proxy-Connection, Expect, Host) is refused: the waypoint
 * frames what it forwards by the head it parsed, and the next hop must
 * frame it the same way. mesh_route_rewrite_head applies one to a head.
 *
 * Lifetime: a route's strings and arrays are owned by the model; regexes
 * are compiled once at decode and freed by mesh_httproute_clear. The
 * match functions allocate nothing and may run on any thread (regexec on
 * a compiled regex_t is thread-safe).
 */
#ifndef WARREN_MODEL_HTTPROUTE_H
#define WARREN_MODEL_HTTPROUTE_H

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mesh;
struct mesh_service;

#define MESH_ROUTE_REGEX_MAX 1024

enum mesh_path_type { MESH_PATH_PREFIX, MESH_PATH_EXACT, MESH_PATH_REGEX };

struct mesh_route_kv {
	const char *name;
	const char *value;
};

struct mesh_route_match {
	enum mesh_path_type path_type;
	const char *path;
	size_t path_len;   /* PathPrefix: without a trailing '/' (0 for "/") */
	regex_t *re;       /* MESH_PATH_REGEX */
	const char *method; /* NULL: any */
	struct mesh_route_kv *headers;
	size_t n_headers;
	struct mesh_route_kv *query;
	size_t n_query;
};

struct mesh_route_backend {
	const char *service; /* in the route's namespace */
	uint16_t port;       /* a port of that Service */
	uint32_t weight;
};

/* RequestHeaderModifier / ResponseHeaderModifier: remove, then set
 * (replacing every field of the name), then add. */
struct mesh_route_hdrmod {
	struct mesh_route_kv *set, *add;
	size_t n_set, n_add;
	const char **remove;
	size_t n_remove;
};

struct mesh_route_rule {
	struct mesh_route_match *matches;
	size_t n_matches;
	struct mesh_route_backend *backends;
	size_t n_backends;
	uint64_t weight_sum;
	/* timeouts.request and timeouts.backendRequest in ms, 0: none. The
	 * waypoint bounds the whole request (retries included) by the smaller
	 * and answers 504 at expiry. */
	uint32_t timeout_ms, backend_timeout_ms;
	struct mesh_route_hdrmod req_mod, resp_mod; /* filters; empty: none */
};

struct mesh_route_parent {
	const char *service;
	uint16_t port; /* 0: every port */
};

struct mesh_httproute {
	const char *namespace;
	const char *name;
	struct mesh_route_parent *parents; /* Service parents only */
	size_t n_parents;
	struct mesh_route_rule *rules;
	size_t n_rules;
};

/* Decodes object o (metadata already checked: ns, name). where prefixes
 * error messages ("file: object N (HTTPRoute ns/name)"). 0 or -EINVAL /
 * -ENOMEM with err set; on failure r is cleared. */
int mesh_httproute_decode(json_t *o, const char *ns, const char *name, const char *where,
			  struct mesh_httproute *r, char *err, size_t errlen);
void mesh_httproute_clear(struct mesh_httproute *r);

/* A request as the matcher sees it. header() returns the first field of
 * that name (case-insensitive) or NULL. */
struct mesh_route_req {
	const char *method;
	const char *path;
	size_t path_len;
	const char *query; /* after '?', may be NULL */
	size_t query_len;
	const char *(*header)(void *ctx, const char *name, size_t *len);
	void *ctx;
};

bool mesh_route_match(const struct mesh_route_match *mt, const struct mesh_route_req *rq);

/* Is any route attached to (svc, port)? */
bool mesh_service_routed(const struct mesh *m, const struct mesh_service *svc, uint16_t port);

/* The rule that serves rq (see above), or NULL when no rule matches;
 * *route (may be NULL) gets its route. */
const struct mesh_route_rule *mesh_route_select(const struct mesh *m, const struct mesh_service *svc,
						uint16_t port, const struct mesh_route_req *rq,
						const struct mesh_httproute **route);

/* The backend for random value rnd (uniform in [0, 2^32)), or NULL when
 * the rule has no backend with a weight. */
const struct mesh_route_backend *mesh_route_pick(const struct mesh_route_rule *rule, uint32_t rnd);

/* Writes head (a request or response head as the strict parser accepted
 * it: CRLF lines, ending with an empty line) into out with m applied.
 * Returns the new length, or -E2BIG when it does not fit in cap. */
long mesh_route_rewrite_head(const char *head, size_t len, const struct mesh_route_hdrmod *m, char *out,
			     size_t cap);
static inline bool mesh_route_hdrmod_empty(const struct mesh_route_hdrmod *m)
{
	return !m->n_set && !m->n_add && !m->n_remove;
}

#endif
