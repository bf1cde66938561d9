/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Refcounted per-service-account identities with half-life renewal.
 * Contract and ownership: tunnel/identity.h.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <stdlib.h>
#include <string.h>

#include "conf/errbuf.h"
#include "conf/log.h"
#include "conf/objcheck.h"
#include "tunnel/ca_client.h"
#include "tunnel/identity.h"
#include "tunnel/loop.h"

#define IDENTITY_MAGIC 0x1de7a11cu

struct identity {
	unsigned magic;
	struct identity *next;
	char *ns;
	char *sa;
	unsigned refs;
	char sid[SPIFFE_ID_MAX];
	struct ca_leaf *leaf; /* NULL while pending (warren-ca has not signed yet) */
	char why[256];        /* the last failure, for the log and refusals */
	SSL_CTX *client_ctx; /* one reference each, owned by the manager */
	SSL_CTX *server_ctx;
	time_t renew_at;
	unsigned failures;
	bool inflight;        /* a request to warren-ca is queued or running */
};

struct identity_mgr {
	struct mesh_ca *ca; /* borrowed; NULL with cc */
	struct caclient *cc; /* borrowed; NULL with ca */
	void (*csr_obs)(void *ctx, int ret, double ms);
	void *csr_obs_ctx;
	char *td;
	uint32_t lifetime_s;
	void (*issued)(void *ctx, const struct identity *id, int ret, const char *old_serial);
	void *issued_ctx;
	struct identity *head; /* acquisition order (appended) */
	size_t count;
	struct loop *loop;     /* that takes warren-ca's answers, or NULL */
	bool watching;         /* the client's eventfd is on loop */
	identity_isolate_fn isolate; /* around changes the workers may see; or NULL */
	void *isolate_ctx;
};

void identity_mgr_set_isolation(struct identity_mgr *mgr, identity_isolate_fn fn, void *ctx)
{
	mgr->isolate = fn;
	mgr->isolate_ctx = ctx;
}

static void identity_isolate(const struct identity_mgr *mgr, bool enter)
{
	if (mgr->isolate)
		mgr->isolate(mgr->isolate_ctx, enter);
}

static void identity_mgr_results_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	(void)l, (void)fd, (void)events;
	identity_mgr_complete(ctx);
}

void identity_mgr_set_loop(struct identity_mgr *mgr, struct loop *loop)
{
	if (mgr->watching)
		loop_del(mgr->loop, caclient_event_fd(mgr->cc));
	mgr->watching = false;
	mgr->loop = loop;
	if (loop && mgr->cc) {
		int ret = loop_add(loop, caclient_event_fd(mgr->cc), EPOLLIN, identity_mgr_results_cb, mgr);

		if (ret < 0)
			log_error("cannot watch warren-ca's answers: %s; certificates will not arrive",
				  strerror(-ret));
		mgr->watching = ret == 0;
	}
}

void identity_mgr_set_issued_cb(struct identity_mgr *mgr,
				void (*cb)(void *ctx, const struct identity *id, int ret,
					   const char *old_serial),
				void *ctx)
{
	mgr->issued = cb;
	mgr->issued_ctx = ctx;
}

bool identity_in_flight(const struct identity *id)
{
	return id->inflight;
}

static void identity_free(struct identity *id)
{
	if (!id)
		return;
	CHECK_OBJ(id, IDENTITY_MAGIC);
	SSL_CTX_free(id->client_ctx);
	SSL_CTX_free(id->server_ctx);
	ca_leaf_free(id->leaf);
	free(id->ns);
	free(id->sa);
	id->magic = 0;
	free(id);
}

static int identity_mgr_create(struct mesh_ca *ca, struct caclient *cc, const char *trust_domain,
		   uint32_t lifetime_s, struct identity_mgr **out);

void identity_mgr_set_csr_observer(struct identity_mgr *mgr,
				   void (*obs)(void *ctx, int ret, double ms), void *ctx)
{
	mgr->csr_obs = obs;
	mgr->csr_obs_ctx = ctx;
}

int identity_mgr_new_remote(struct caclient *cc, const char *trust_domain,
			    struct identity_mgr **out)
{
	*out = NULL;
	if (!cc)
		return -EINVAL;
	return identity_mgr_create(NULL, cc, trust_domain, 0, out);
}

int identity_mgr_new(struct mesh_ca *ca, const char *trust_domain, uint32_t lifetime_s,
		     struct identity_mgr **out)
{
	*out = NULL;
	if (!ca)
		return -EINVAL;
	return identity_mgr_create(ca, NULL, trust_domain, lifetime_s, out);
}

static int identity_mgr_create(struct mesh_ca *ca, struct caclient *cc, const char *trust_domain,
		   uint32_t lifetime_s, struct identity_mgr **out)
{
	struct identity_mgr *mgr;
	char probe[SPIFFE_ID_MAX];

	*out = NULL;
	if (!trust_domain || spiffe_id_format(probe, sizeof(probe), trust_domain, "a", "a"))
		return -EINVAL;
	if (lifetime_s && (lifetime_s < CA_MIN_LIFETIME_S || lifetime_s > CA_MAX_LIFETIME_S))
		return -EINVAL;
	mgr = calloc(1, sizeof(*mgr));
	if (!mgr)
		return -ENOMEM;
	mgr->td = strdup(trust_domain);
	if (!mgr->td) {
		free(mgr);
		return -ENOMEM;
	}
	mgr->ca = ca;
	mgr->cc = cc;
	mgr->lifetime_s = lifetime_s ? lifetime_s : CA_DEFAULT_LIFETIME_S;
	*out = mgr;
	return 0;
}

void identity_mgr_free(struct identity_mgr *mgr)
{
	struct identity *id, *next;

	if (!mgr)
		return;
	if (mgr->watching)
		loop_del(mgr->loop, caclient_event_fd(mgr->cc));
	for (id = mgr->head; id; id = next) {
		next = id->next;
		identity_free(id);
	}
	free(mgr->td);
	free(mgr);
}

struct identity *identity_find(const struct identity_mgr *mgr, const char *ns, const char *sa)
{
	for (struct identity *id = mgr->head; id; id = id->next)
		if (!strcmp(id->ns, ns) && !strcmp(id->sa, sa))
			return id;
	return NULL;
}

size_t identity_count(const struct identity_mgr *mgr)
{
	return mgr->count;
}

const char *identity_id(const struct identity *id)
{
	return id->sid;
}

bool identity_ready(const struct identity *id)
{
	return id->leaf != NULL;
}

const char *identity_error(const struct identity *id)
{
	return id->why;
}

unsigned identity_refs(const struct identity *id)
{
	return id->refs;
}

SSL_CTX *identity_ctx0(const struct identity *id, enum tls_role role)
{
	return role == TLS_CLIENT ? id->client_ctx : id->server_ctx;
}

const struct ca_leaf *identity_leaf0(const struct identity *id)
{
	return id->leaf;
}

/* The half-life of the certificate's validity. notBefore is backdated by
 * CA_BACKDATE_S, so for very short lifetimes (60 s) the half-life falls at
 * issuance and would renew in a loop: never renew sooner than a quarter of
 * the lifetime after issuance. */
static time_t identity_half_life(const struct ca_leaf *leaf)
{
	time_t hl = leaf->not_before + (leaf->not_after - leaf->not_before) / 2;
	time_t issued = leaf->not_before + CA_BACKDATE_S;
	time_t floor = issued + (leaf->not_after - issued) / 4;

	return hl > floor ? hl : floor;
}

/* Both contexts for leaf, trusting roots (every root of the bundle: a
 * rotation adds the new root before anything is signed by it) or, with a
 * local CA, its root. Called without the loop's guard: it writes only new
 * objects, so the worker threads' data path runs meanwhile. */
static int identity_make_ctxs(struct identity_mgr *mgr, const struct ca_leaf *leaf, STACK_OF(X509) *roots,
		     SSL_CTX **cctx, SSL_CTX **sctx, char *err, size_t errlen)
{
	X509 *root0 = roots ? sk_X509_value(roots, 0) : ca_root0(mgr->ca);
	int ret;

	ret = tls_ctx_new(TLS_CLIENT, leaf, root0, cctx, err, errlen);
	if (!ret)
		ret = tls_ctx_new(TLS_SERVER, leaf, root0, sctx, err, errlen);
	for (int i = 1; !ret && roots && i < sk_X509_num(roots); i++)
		if (tls_ctx_add_root(*cctx, sk_X509_value(roots, i)) ||
		    tls_ctx_add_root(*sctx, sk_X509_value(roots, i)))
			ret = -EIO;
	return ret;
}

/* Swaps the new leaf and contexts into id (taking them) and drops the
 * manager's references to the old ones (live SSLs keep theirs). */
static void identity_swap_in(struct identity *id, struct ca_leaf *leaf, SSL_CTX *cctx, SSL_CTX *sctx)
{
	SSL_CTX_free(id->client_ctx);
	SSL_CTX_free(id->server_ctx);
	ca_leaf_free(id->leaf);
	id->client_ctx = cctx;
	id->server_ctx = sctx;
	id->leaf = leaf;
	id->renew_at = identity_half_life(id->leaf);
	id->why[0] = '\0';
}

/* A new leaf and its contexts into id: leaf from the CA client, or (NULL)
 * issued here by the local CA (caDir: a key, a signature and two contexts
 * take milliseconds). Built while the workers run (they read only the
 * immutable CA and the new objects); id changes after, isolated. On
 * failure id is untouched, and a given leaf stays the caller's. */
static int identity_commit(struct identity_mgr *mgr, struct identity *id, struct ca_leaf *leaf,
		  STACK_OF(X509) *roots, char *err, size_t errlen)
{
	struct ca_leaf *issued = NULL;
	SSL_CTX *cctx = NULL, *sctx = NULL;
	int ret = 0;

	if (!leaf) {
		ret = ca_issue(mgr->ca, mgr->td, id->ns, id->sa, mgr->lifetime_s, &issued, err,
			       errlen);
		leaf = issued;
	}
	if (!ret)
		ret = identity_make_ctxs(mgr, leaf, roots, &cctx, &sctx, err, errlen);
	if (ret) {
		SSL_CTX_free(cctx);
		SSL_CTX_free(sctx);
		ca_leaf_free(issued);
		return ret;
	}
	identity_isolate(mgr, true);
	identity_swap_in(id, leaf, cctx, sctx);
	identity_isolate(mgr, false);
	return 0;
}

/* warren-ca: queue a request; identity_mgr_complete() takes the answer. */
static int identity_request(struct identity_mgr *mgr, struct identity *id, char *err, size_t errlen)
{
	int ret = caclient_submit(mgr->cc, id->ns, id->sa);

	if (ret == -EALREADY)
		ret = 0; /* a request for it is on its way already */
	if (ret) {
		errbuf_set(err, errlen, "cannot queue a request to warren-ca: %s", strerror(-ret));
		return ret;
	}
	id->inflight = true;
	return 0;
}

int identity_acquire(struct identity_mgr *mgr, const char *ns, const char *sa,
		     struct identity **out, char *err, size_t errlen)
{
	struct identity *id, **tail;
	char probe[SPIFFE_ID_MAX];
	int ret;

	if (out)
		*out = NULL;
	if (!ns || !sa || spiffe_id_format(probe, sizeof(probe), mgr->td, ns, sa)) {
		if (err && errlen)
			snprintf(err, errlen, "invalid service account %s/%s",
				 ns ? ns : "(null)", sa ? sa : "(null)");
		return -EINVAL;
	}
	id = identity_find(mgr, ns, sa);
	if (id) {
		id->refs++;
		if (out)
			*out = id;
		return 0;
	}
	ret = -ENOMEM;
	id = calloc(1, sizeof(*id));
	if (!id)
		goto fail;
	id->magic = IDENTITY_MAGIC;
	id->ns = strdup(ns);
	id->sa = strdup(sa);
	if (!id->ns || !id->sa)
		goto fail;
	snprintf(id->sid, sizeof(id->sid), "%s", probe);
	if (!mgr->cc) {
		ret = identity_commit(mgr, id, NULL, NULL, id->why, sizeof(id->why));
		if (ret) {
			errbuf_set(err, errlen, "%s", id->why);
			goto fail;
		}
	} else {
		/* From warren-ca, the identity is held PENDING (no certificate:
		 * its pods' connections are refused) until the answer comes
		 * (identity_mgr_complete); a failure is retried with backoff by
		 * identity_renew_due(), so it works once warren-ca signs
		 * without the pods being added again. */
		snprintf(id->why, sizeof(id->why), "requested from the CA, no answer yet");
		ret = identity_request(mgr, id, id->why, sizeof(id->why));
		if (ret) {
			id->failures = 1;
			id->renew_at = time(NULL) + IDENTITY_BACKOFF_MIN_S;
			errbuf_set(err, errlen, "%s", id->why);
			log_error("identity %s: no certificate yet (%s), retry in %ds", id->sid,
				  id->why, IDENTITY_BACKOFF_MIN_S);
		}
	}
	id->refs = 1;
	for (tail = &mgr->head; *tail; tail = &(*tail)->next)
		;
	identity_isolate(mgr, true); /* workers walk the list (identity_find) */
	*tail = id;
	identity_isolate(mgr, false);
	mgr->count++;
	if (id->leaf)
		log_info("identity %s: issued certificate serial %s, renewal in %llds", id->sid,
			 id->leaf->serial_hex, (long long)(id->renew_at - time(NULL)));
	else
		log_info("identity %s: certificate requested from the CA", id->sid);
	if (out)
		*out = id;
	return 0;
fail:
	if (ret == -ENOMEM && err && errlen)
		snprintf(err, errlen, "out of memory creating identity %s", probe);
	identity_free(id);
	return ret;
}

int identity_release(struct identity_mgr *mgr, const char *ns, const char *sa)
{
	for (struct identity **pp = &mgr->head; *pp; pp = &(*pp)->next) {
		struct identity *id = *pp;

		if (strcmp(id->ns, ns) || strcmp(id->sa, sa))
			continue;
		assert(id->refs > 0);
		if (--id->refs)
			return 0;
		log_info("identity %s: last pod left, certificate dropped", id->sid);
		identity_isolate(mgr, true);
		*pp = id->next;
		identity_free(id);
		identity_isolate(mgr, false);
		mgr->count--;
		return 0;
	}
	return -ENOENT;
}

int64_t identity_next_renewal_ms(const struct identity_mgr *mgr)
{
	struct timespec ts;
	int64_t now_ms, best = -1;

	if (!mgr->head)
		return -1;
	clock_gettime(CLOCK_REALTIME, &ts);
	now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	for (const struct identity *id = mgr->head; id; id = id->next) {
		int64_t d = (int64_t)id->renew_at * 1000 - now_ms;

		if (id->inflight)
			continue; /* its answer schedules it */
		if (d < 0)
			d = 0;
		if (best < 0 || d < best)
			best = d;
	}
	return best;
}

/* A failed attempt: the next one after an exponential backoff (returned),
 * why kept for the admin API and err. */
static time_t identity_failed(const struct identity_mgr *mgr, struct identity *id, time_t now,
			      const char *why, char *err, size_t errlen)
{
	unsigned shift = id->failures < 8 ? id->failures : 8;
	time_t backoff = (time_t)IDENTITY_BACKOFF_MIN_S << shift;

	if (backoff > IDENTITY_BACKOFF_MAX_S)
		backoff = IDENTITY_BACKOFF_MAX_S;
	id->failures++;
	id->renew_at = now + backoff;
	identity_isolate(mgr, true); /* workers log why (identity_error) */
	snprintf(id->why, sizeof(id->why), "%s", why);
	identity_isolate(mgr, false);
	if (err && errlen)
		snprintf(err, errlen, "%s", why);
	return backoff;
}

/* The outcome of a renewal or of a pending identity's request: logged
 * (the tests and operators read these lines), and the backoff on failure. */
static void identity_renewed(const struct identity_mgr *mgr, struct identity *id, int ret, bool was_pending,
		    const char *why, time_t now,
		    char *err, size_t errlen)
{
	time_t backoff;

	if (ret && was_pending) {
		backoff = identity_failed(mgr, id, now, why, err, errlen);
		log_error("identity %s: %s (%s); its pods' connections are refused until the CA "
			  "signs one, retry in %llds", id->sid,
			  id->failures == 1 ? "no certificate yet" : "still no certificate", why,
			  (long long)backoff);
	} else if (ret) {
		backoff = identity_failed(mgr, id, now, why, err, errlen);
		log_error("identity %s: renewal failed (%s); keeping the current certificate "
			  "(expires in %llds), retry in %llds",
			  id->sid, why, (long long)(id->leaf->not_after - now), (long long)backoff);
	} else if (was_pending && id->failures) {
		log_info("identity %s: issued certificate serial %s after %u failed attempts; its pods' "
			 "connections are accepted", id->sid, id->leaf->serial_hex, id->failures);
	} else if (was_pending) {
		log_info("identity %s: issued certificate serial %s, renewal in %llds", id->sid,
			 id->leaf->serial_hex, (long long)(id->renew_at - now));
	} else {
		log_info("identity %s: renewed, serial %s", id->sid, id->leaf->serial_hex);
	}
}

int identity_renew(struct identity_mgr *mgr, struct identity *id, time_t now, char *err,
		   size_t errlen)
{
	char why[512] = "";
	bool was_pending = !id->leaf;
	int ret;

	CHECK_OBJ(id, IDENTITY_MAGIC);
	if (mgr->cc) {
		if (id->inflight)
			return -EINPROGRESS;
		ret = identity_request(mgr, id, why, sizeof(why));
		if (!ret)
			return -EINPROGRESS;
	} else {
		ret = identity_commit(mgr, id, NULL, NULL, why, sizeof(why));
	}
	identity_renewed(mgr, id, ret, was_pending, why, now, err, errlen);
	if (!ret)
		id->failures = 0;
	return ret;
}

void identity_mgr_complete(struct identity_mgr *mgr)
{
	struct caclient_result *r;

	if (!mgr->cc)
		return;
	while ((r = caclient_take(mgr->cc))) {
		struct identity *id = identity_find(mgr, r->ns, r->sa);
		char old_serial[sizeof(id->leaf->serial_hex)] = "";
		bool was_pending;
		int ret = r->ret;

		if (mgr->csr_obs)
			mgr->csr_obs(mgr->csr_obs_ctx, ret, r->ms);
		if (!id) { /* its last pod left meanwhile */
			caclient_result_free(r);
			continue;
		}
		id->inflight = false;
		was_pending = !id->leaf;
		if (id->leaf)
			snprintf(old_serial, sizeof(old_serial), "%s", id->leaf->serial_hex);
		if (!ret) {
			ret = identity_commit(mgr, id, r->leaf, r->roots, r->err, sizeof(r->err));
			if (!ret)
				r->leaf = NULL; /* taken */
		}
		identity_renewed(mgr, id, ret, was_pending, r->err, time(NULL), NULL, 0);
		if (!ret)
			id->failures = 0;
		if (mgr->issued)
			mgr->issued(mgr->issued_ctx, id, ret, old_serial);
		caclient_result_free(r);
	}
}

int identity_renew_due(struct identity_mgr *mgr, time_t now)
{
	int identity_renewed = 0, failed = 0;

	for (struct identity *id = mgr->head; id; id = id->next) {
		int ret;

		if (id->renew_at > now || id->inflight)
			continue;
		ret = identity_renew(mgr, id, now, NULL, 0);
		if (ret == -EINPROGRESS)
			continue; /* the answer comes to identity_mgr_complete() */
		if (ret)
			failed = ret;
		else
			identity_renewed++;
	}
	return failed ? failed : identity_renewed;
}

size_t identity_snapshot(const struct identity_mgr *mgr, time_t now, struct identity_info *out,
			 size_t max)
{
	size_t n = 0;

	for (const struct identity *id = mgr->head; id; id = id->next, n++) {
		struct identity_info *in;

		if (n >= max)
			continue;
		in = &out[n];
		memset(in, 0, sizeof(*in));
		snprintf(in->id, sizeof(in->id), "%s", id->sid);
		if (id->leaf) {
			snprintf(in->serial_hex, sizeof(in->serial_hex), "%s", id->leaf->serial_hex);
			in->not_before = id->leaf->not_before;
			in->not_after = id->leaf->not_after;
		}
		in->renew_at = id->renew_at;
		in->renew_in_s = (int64_t)(id->renew_at - now);
		in->refs = id->refs;
		in->failures = id->failures;
		in->in_flight = id->inflight;
		snprintf(in->error, sizeof(in->error), "%s", id->why);
	}
	return n;
}
