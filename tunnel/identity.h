/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-node workload identities: one
 * certificate per service account that has enrolled pods on this node, not
 * one per pod. identity_acquire() is called when a pod of that account is
 * enrolled and identity_release() when it leaves; the certificate is
 * dropped when the count reaches 0. Each identity holds its current leaf
 * (struct ca_leaf, in memory only) and ready HBONE client and server
 * SSL_CTXs (tunnel/tls.h).
 *
 * Renewal at half-life (not_before + (not_after - not_before) / 2, but never
 * sooner than a quarter of the lifetime after issuance: notBefore is
 * backdated, which puts the half-life of a 60 s certificate at issuance), driven
 * by the caller's timer: arm it for identity_next_renewal_ms(), and call
 * identity_renew_due() when it fires. Renewal is transactional: a new leaf
 * and NEW client/server SSL_CTXs are built first; only when all succeed are
 * they swapped in and the manager's references to the old ones dropped. A
 * failed renewal keeps the current ones and retries with exponential
 * backoff (1 s doubling to 150 s, as ztunnel's 500 ms..150 s).
 *
 * Ownership:
 *  - identity_mgr_new(): the mesh_ca and trust domain string are BORROWED
 *    (ca) / COPIED (trust_domain); the ca must outlive the manager.
 *  - struct identity pointers are borrowed handles owned by the manager,
 *    valid until the identity's count drops to 0 (identity_release) or
 *    identity_mgr_free(). Do not cache one across a release.
 *  - identity_ctx0(): get0, the manager's current SSL_CTX. It stays valid
 *    only until the next identity_renew*()/release. Create the SSL right
 *    away: SSL_new() (tls_conn_new) takes its own SSL_CTX reference, so live
 *    connections keep the old context, certificate and key alive across a
 *    renewal and are never disturbed. Someone who must hold a context
 *    longer calls SSL_CTX_up_ref() and later SSL_CTX_free().
 *  - identity_leaf0(): get0, same lifetime as identity_ctx0().
 * Errors: 0 or -errno; err (when non-NULL) gets a message for the log.
 * Threads: the main thread calls everything; the workers only read
 * (identity_find, identity_ready, identity_error, identity_ctx0,
 * identity_id). No locking of its own: with identity_mgr_set_isolation(),
 * each change the workers may see (the list, a certificate and its
 * contexts swapped in, a failure's reason) runs between fn(ctx, true) and
 * fn(ctx, false), which pause them (workers_isolate); issuing a
 * certificate (a key, a signature, a CSR round trip) runs before, while
 * they run.
 */
#ifndef WARREN_IDENTITY_H
#define WARREN_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>

#include "tunnel/ca.h"
#include "tunnel/tls.h"

/* Renewal backoff bounds, seconds. */
#define IDENTITY_BACKOFF_MIN_S 1
#define IDENTITY_BACKOFF_MAX_S 150

struct identity_mgr;
struct identity;
struct caclient;

struct loop;
void identity_mgr_set_loop(struct identity_mgr *mgr, struct loop *loop);
typedef void (*identity_isolate_fn)(void *ctx, bool enter);
void identity_mgr_set_isolation(struct identity_mgr *mgr, identity_isolate_fn fn, void *ctx);

/* lifetime_s: workload certificate lifetime (0 = CA_DEFAULT_LIFETIME_S).
 * 0, -EINVAL (bad trust domain or lifetime), -ENOMEM. */
int identity_mgr_new(struct mesh_ca *ca, const char *trust_domain, uint32_t lifetime_s,
		     struct identity_mgr **out);
/* Certificates from warren-ca (tunnel/ca_client.h, borrowed: it must
 * outlive the manager) instead of a local CA; the lifetime is warren-ca's.
 * In this mode an identity whose CSR fails (warren-ca unreachable or
 * refusing) is still acquired, PENDING: identity_ready() is false, it holds
 * no certificate and no context, identity_error() says why, and
 * identity_renew_due() retries it with the renewal backoff until it gets
 * one. Its pods' connections must be refused meanwhile (fail closed). */
int identity_mgr_new_remote(struct caclient *cc, const char *trust_domain,
			    struct identity_mgr **out);
/* warren-ca's answers (remote mode): the requests run on the client's own
 * thread (tunnel/ca_client.h), never on the caller's. identity_acquire()
 * and a due renewal only queue one (identity_in_flight() until its answer,
 * identity_error() "requested from warren-ca, no answer yet" meanwhile);
 * identity_mgr_complete() takes the answers that came, commits each
 * (certificate, contexts, schedule) or records the failure with its
 * backoff, and calls cb for each one, on the caller's thread, with ret
 * 0 or -errno and the serial of the certificate it replaced ("" if none).
 * With identity_mgr_set_loop(), the loop calls identity_mgr_complete()
 * when answers wait (the client's eventfd), so this is only for callers
 * without a loop (the unit tests). */
void identity_mgr_set_issued_cb(struct identity_mgr *mgr,
				void (*cb)(void *ctx, const struct identity *id, int ret,
					   const char *old_serial),
				void *ctx);
void identity_mgr_complete(struct identity_mgr *mgr);
bool identity_in_flight(const struct identity *id);
/* Called after each CSR with its result (0 or -errno) and duration, for
 * metrics. */
void identity_mgr_set_csr_observer(struct identity_mgr *mgr,
				   void (*obs)(void *ctx, int ret, double ms), void *ctx);
/* Frees every identity whatever its count, and the manager's SSL_CTX
 * references (live SSLs keep theirs). NULL-tolerant. */
void identity_mgr_free(struct identity_mgr *mgr);

/*
 * Takes one reference on the identity spiffe://<td>/ns/<ns>/sa/<sa>,
 * issuing its certificate and building its contexts on the first one.
 * *out (may be NULL) receives the borrowed handle.
 * 0, -EINVAL (bad ns/sa), -ENOMEM, -EIO (issuing or TLS setup failed).
 */
int identity_acquire(struct identity_mgr *mgr, const char *ns, const char *sa,
		     struct identity **out, char *err, size_t errlen);
/* Drops one reference; at 0 the identity, its leaf and the manager's
 * context references are freed. 0 or -ENOENT (not acquired). */
int identity_release(struct identity_mgr *mgr, const char *ns, const char *sa);
/* Borrowed handle or NULL. */
struct identity *identity_find(const struct identity_mgr *mgr, const char *ns, const char *sa);
size_t identity_count(const struct identity_mgr *mgr);

const char *identity_id(const struct identity *id);            /* "spiffe://..." */
/* false while pending (no certificate yet: contexts and leaf are NULL). */
bool identity_ready(const struct identity *id);
/* The last failure ("" after a success). */
const char *identity_error(const struct identity *id);
unsigned identity_refs(const struct identity *id);
SSL_CTX *identity_ctx0(const struct identity *id, enum tls_role role);
const struct ca_leaf *identity_leaf0(const struct identity *id);

/* Milliseconds (wall clock) from now until the earliest renewal is due:
 * 0 when one is overdue, -1 when there is no identity. */
int64_t identity_next_renewal_ms(const struct identity_mgr *mgr);
/* Renews every identity whose renewal time is <= now (wall clock seconds)
 * and that has no request in flight. Returns how many were renewed, or the
 * -errno of a failure (the failed ones keep their current certificate and
 * are retried after a backoff). From warren-ca it only queues requests
 * (0 renewed now). */
int identity_renew_due(struct identity_mgr *mgr, time_t now);
/* Renews one identity now, whatever its schedule. 0 or -errno; from
 * warren-ca -EINPROGRESS: the request is queued (or was already), its
 * answer goes through identity_mgr_complete(). */
int identity_renew(struct identity_mgr *mgr, struct identity *id, time_t now, char *err,
		   size_t errlen);

/* For the admin API. */
struct identity_info {
	char id[SPIFFE_ID_MAX];
	char serial_hex[80];
	time_t not_before;
	time_t not_after;
	time_t renew_at;
	int64_t renew_in_s;   /* renew_at - now; negative when overdue */
	unsigned refs;
	unsigned failures;    /* consecutive failed renewals */
	bool in_flight;       /* a request to warren-ca is on its way */
	char error[256];      /* the last failure, or why it has no certificate yet */
};
/* Fills up to max entries (in acquisition order); returns the total count. */
size_t identity_snapshot(const struct identity_mgr *mgr, time_t now, struct identity_info *out,
			 size_t max);

#endif
