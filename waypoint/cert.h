/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The waypoint's own certificate (cert.c), spiffe://<td>/ns/<ns>/sa/<sa>,
 * through the tunnel's identity manager (tunnel/identity.h): from
 * warren-ca (--ca-address: a CSR with a key made in memory, the pod's
 * projected token of audience warren-ca as proof; warren-ca signs a
 * workload's own identity, docs/ca.md), or from a local CA directory
 * (--ca-dir, development only). Renewed at half life on w->loop; a failed
 * renewal keeps the current certificate and retries with backoff.
 *
 * Fail closed: while there is no certificate (warren-ca unreachable or
 * refusing at start) w->server_ctx and w->client_ctx are NULL: the
 * waypoint accepts no HBONE connection and is not ready, and the CSR is
 * retried (1 s doubling to 150 s) until it is signed.
 *
 * w->server_ctx, w->client_ctx and w->id are borrowed from the identity
 * and replaced after each renewal (live connections keep their SSL_CTX
 * reference). Single-threaded (w->loop): warren-ca's requests run on the
 * CA client's own thread and their answers are taken on w->loop.
 */
#ifndef WARREN_WAYPOINT_CERT_H
#define WARREN_WAYPOINT_CERT_H

#include <stdbool.h>

struct wp;
struct wp_cert;

struct wp_cert_conf {
	const char *ca_dir;      /* a local CA, or NULL */
	const char *ca_address;  /* https://warren-ca...:15012, or NULL */
	const char *token_file;  /* the projected token (audience warren-ca) */
	const char *bundle_file; /* the trust bundle (PEM roots) */
	const char *td, *ns, *sa;
};

/* 0 (with or without a certificate yet, in warren-ca mode) or -errno
 * (logged): a bad configuration, or a local CA that cannot issue. */
int wp_cert_start(struct wp *w, const struct wp_cert_conf *conf, struct wp_cert **out);
void wp_cert_free(struct wp_cert *c);
/* false with *why (the last error) while there is no certificate. */
bool wp_cert_ready(const struct wp_cert *c, const char **why);

#endif
