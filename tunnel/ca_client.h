/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tunnel as warren-ca's client (caAddress): one CSR per identity.
 *
 * caclient_request() makes a new ECDSA P-256 key in memory, a CSR for
 * spiffe://<td>/ns/<ns>/sa/<sa> (tunnel/csr.h), and POSTs it to
 * <caAddress>/v1/sign over TLS 1.2+ (libcurl), verifying warren-ca's
 * certificate and host name against the trust bundle file, with the
 * projected token read from the token file at each request (the kubelet
 * rotates it) as a bearer token. The answer's chain must verify against
 * the trust bundle as read at that moment, name exactly the requested
 * identity as its only URI SAN, and hold our key; else it is refused. The
 * bundle file holds one or more PEM roots: during a root rotation both.
 *
 * Results: 0; -EACCES (warren-ca refused: 401/403, err holds its reason);
 * -EIO (warren-ca unreachable, a 5xx, or an answer that does not check
 * out; err says which); -EINVAL, -ENOMEM.
 *
 * Ownership: *leaf (ca_leaf_free) and *roots (sk_X509_pop_free(.., X509_free))
 * belong to the caller; leaf->chain is the intermediates then the root the
 * chain verified to. struct caclient copies its conf strings and holds one
 * libcurl handle (kept-alive connection).
 * Threads: one caller at a time (the tunnel's main thread); a request
 * blocks for at most CACLIENT_TIMEOUT_MS.
 */
#ifndef WARREN_CA_CLIENT_H
#define WARREN_CA_CLIENT_H

#include <stddef.h>

#include <openssl/x509.h>

#include "tunnel/ca.h"

#define CACLIENT_CONNECT_TIMEOUT_MS 1000
#define CACLIENT_TIMEOUT_MS         3000

struct caclient_conf {
	const char *url;         /* https://host:port, no path */
	const char *token_file;
	const char *bundle_file;
	const char *td;
};

struct caclient;

int caclient_new(const struct caclient_conf *conf, struct caclient **out);
void caclient_free(struct caclient *cc);

/* The PEM roots of a trust bundle file: at least one, each a CA. 0,
 * -ENOENT/-EACCES, -EINVAL (with err). */
int caclient_bundle_load(const char *path, STACK_OF(X509) **out, char *err, size_t errlen);

int caclient_request(struct caclient *cc, const char *ns, const char *sa, struct ca_leaf **leaf,
		     STACK_OF(X509) **roots, char *err, size_t errlen);
/* The checks of an answer (exposed for the unit tests): chain_pem (leaf
 * then intermediates) must verify against roots for TLS client and server
 * use, name exactly want_id as its only URI SAN, and hold leaf->key (set by
 * the caller). Fills leaf's cert, chain, id, times and serial. 0 or -EIO
 * with err; on failure the caller frees leaf (ca_leaf_free). */
int caclient_accept(const char *chain_pem, STACK_OF(X509) *roots, const char *want_id,
		    struct ca_leaf *leaf, char *err, size_t errlen);

#endif
