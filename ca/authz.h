/* SPDX-License-Identifier: Apache-2.0 */
/*
 * warren-ca's node authorization, as istiod's: who may have a certificate
 * for which identity.
 *
 * caz_authorize(token, ns, sa) answers "may the caller holding token get a
 * certificate for spiffe://<td>/ns/<ns>/sa/<sa>?". A caller of that
 * service account itself (a waypoint asking for its own identity, as istiod
 * signs for a non-node caller) needs one API call: a TokenReview as in 1.
 * below, with username system:serviceaccount:<ns>:<sa> and a token bound
 * to a pod (pod-name; the API server refuses a token whose pod is gone).
 * The tunnel's service account may have any identity with a pod on its
 * node, with two API calls:
 *  1. a TokenReview (POST authentication.k8s.io/v1 tokenreviews) with the
 *     configured audience: the token must be authenticated, for that
 *     audience, of the tunnel's service account (system:serviceaccount:
 *     <tunnel ns>:<tunnel sa>), and bound to a pod (the extra fields
 *     authentication.kubernetes.io/pod-name and node-name); the API server
 *     also checks the bound pod still exists and the token has not expired;
 *  2. a pod list in <ns> with fieldSelector spec.nodeName=<the caller's
 *     node>, spec.serviceAccountName=<sa> and a phase that is neither
 *     Succeeded nor Failed (limit 1): at least one such pod must exist.
 *     The answer is checked again here, so a server that ignores a
 *     selector cannot widen what is signed.
 * An accepted TokenReview is remembered for CAZ_REVIEW_TTL_S (by the
 * token's SHA-256; refusals are not), as kube-apiserver's own webhook token
 * authenticator caches: a tunnel's burst of CSRs at start costs one review,
 * and a token whose pod was deleted is refused at most that much later.
 * The pod list is never cached: a pod that leaves the node stops its
 * identity's next renewal.
 *
 * Results: 0 (allowed; node and pod get the caller's node and pod),
 * -EACCES (refused: reason says why, for a 403 the tunnel logs), -EIO (the
 * API server could not be asked or answered badly: a 503, retry later).
 * The reason never holds the token.
 *
 * Ownership and threads: struct caz holds one libcurl handle (its
 * connection to the API server is kept alive between calls) and borrows
 * conf, which must outlive it. One caz per thread; the conf is read-only.
 */
#ifndef WARREN_CA_AUTHZ_H
#define WARREN_CA_AUTHZ_H

#include <stddef.h>

#include "conf/kube.h"

#define CAZ_REVIEW_TTL_S 10
/* caz_review_check's two kinds of callers */
#define CAZ_NODE 0
#define CAZ_SELF 1

struct caz_conf {
	const struct kube_creds *creds; /* the API server and warren-ca's own credentials */
	const char *audience;           /* the audience tunnels' tokens must carry */
	const char *tunnel_ns;          /* the tunnel's service account */
	const char *tunnel_sa;
};

struct caz;

/* 0, -ENOMEM. */
int caz_new(const struct caz_conf *conf, struct caz **out);
void caz_free(struct caz *z);

int caz_authorize(struct caz *z, const char *token, const char *ns, const char *sa, char *node,
		  size_t node_len, char *pod, size_t pod_len, char *reason, size_t reason_len);

/* The checks of a TokenReview answer's status for identity ns/sa (exposed
 * for the unit tests): CAZ_NODE (the tunnel's account, with the caller's
 * node and pod), CAZ_SELF (ns/sa's own account, bound to pod; node may be
 * empty), -EACCES with reason. user gets the reviewed username. */
int caz_review_check(const struct caz_conf *conf, json_t *status, const char *ns, const char *sa,
		     char *user, size_t user_len, char *node, size_t node_len, char *pod, size_t pod_len,
		     char *reason, size_t reason_len);

#endif
