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
 *
 * Asynchronous use (the tunnel): caclient_submit() queues a request for a
 * service account and returns at once; one thread of the client's own,
 * started at the first submit, runs the queued requests in order with
 * caclient_request() (each bounded by CACLIENT_TIMEOUT_MS) and hands each
 * result back through a queue and an eventfd (caclient_event_fd): the
 * caller's loop watches it and takes the results with caclient_take(), so
 * a slow or silent warren-ca never stalls the caller's thread. The thread
 * holds no capability (it drops them all when it starts) and touches
 * nothing of the caller's: only its copies of the request and its result.
 *
 * Threads: caclient_request() one caller at a time, never mixed with
 * submit on the same client (both use the one libcurl handle); submit,
 * take, event_fd and free from one thread (the owner's), the request
 * thread runs inside. caclient_free() cancels the running request (within
 * about a second: libcurl's progress callback) and joins the thread.
 */
#ifndef WARREN_CA_CLIENT_H
#define WARREN_CA_CLIENT_H

#include <stddef.h>

#include <openssl/x509.h>

#include "tunnel/ca.h"

#define CACLIENT_CONNECT_TIMEOUT_MS 1000
#define CACLIENT_TIMEOUT_MS         3000

enum caclient_protocol {
	CACLIENT_WARREN, /* POST /v1/sign, JSON (docs/ca.md) */
	/* Istio's IstioCertificateService/CreateCertificate: gRPC over TLS
	 * and HTTP/2 (libcurl's, on nghttp2), the request in protobuf
	 * (tunnel/istio_pb.h) with the identity as ImpersonatedIdentity, as
	 * ztunnel asks istiod; gRPC status UNAUTHENTICATED or
	 * PERMISSION_DENIED is a refusal (-EACCES), any other a failure. */
	CACLIENT_ISTIO,
};

struct caclient_conf {
	const char *url;         /* https://host:port, no path */
	const char *token_file;
	const char *bundle_file;
	const char *td;
	enum caclient_protocol protocol;
	int64_t validity_s;      /* CACLIENT_ISTIO: the lifetime asked for */
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

/* A finished asynchronous request. leaf and roots as caclient_request()
 * gives them on success (ret 0), NULL otherwise; ms: time it took. */
struct caclient_result {
	char *ns, *sa;
	int ret;
	struct ca_leaf *leaf;
	STACK_OF(X509) *roots;
	double ms;
	char err[512];
};

/* Queues a request for ns/sa. 0, -EALREADY (one for ns/sa is queued or
 * running: its result will come), -ENOMEM, or -errno of starting the
 * thread or the eventfd. */
int caclient_submit(struct caclient *cc, const char *ns, const char *sa);
/* The eventfd that is readable while results wait (created by
 * caclient_new; valid until caclient_free). */
int caclient_event_fd(const struct caclient *cc);
/* The oldest finished result (the caller frees it with
 * caclient_result_free), or NULL when none waits. Clears the eventfd once
 * the queue is empty. */
struct caclient_result *caclient_take(struct caclient *cc);
void caclient_result_free(struct caclient_result *r);
/* Requests queued or running. */
size_t caclient_pending(struct caclient *cc);

#endif
