/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CSRs to warren-ca. Contract: tunnel/ca_client.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cap-ng.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "conf/errbuf.h"
#include "conf/kube.h"
#include "tunnel/ca_client.h"
#include "tunnel/csr.h"
#include "tunnel/istio_pb.h"

#define CACLIENT_ANSWER_MAX 65536

struct cc_job {
	struct cc_job *next;
	char *ns, *sa;
	struct caclient_result *res; /* set once done */
};

struct caclient {
	char *url, *token_file, *bundle_file, *td;
	enum caclient_protocol protocol;
	int64_t validity_s;
	const char *name; /* for messages: "warren-ca" or "Istio's CA" */
	CURL *curl;
	char *buf;
	size_t len;
	long grpc_status; /* -1: none seen */
	char grpc_message[256];
	/* asynchronous requests: queued, running (the thread's), done */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thr;
	bool started;
	atomic_bool stop;
	struct cc_job *queue, *running, *done;
	size_t n_pending;
	int efd;
};

int caclient_new(const struct caclient_conf *conf, struct caclient **out)
{
	struct caclient *cc = calloc(1, sizeof(*cc));

	*out = NULL;
	if (!cc)
		return -ENOMEM;
	cc->url = strdup(conf->url);
	cc->token_file = strdup(conf->token_file);
	cc->bundle_file = strdup(conf->bundle_file);
	cc->td = strdup(conf->td);
	cc->protocol = conf->protocol;
	cc->validity_s = conf->validity_s > 0 ? conf->validity_s : 86400;
	cc->name = conf->protocol == CACLIENT_ISTIO ? "Istio's CA" : "warren-ca";
	cc->curl = curl_easy_init();
	pthread_mutex_init(&cc->mu, NULL);
	pthread_cond_init(&cc->cv, NULL);
	cc->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (cc->efd < 0 || !cc->url || !cc->token_file || !cc->bundle_file || !cc->td || !cc->curl) {
		int ret = cc->efd < 0 ? -errno : -ENOMEM;

		caclient_free(cc);
		return ret;
	}
	*out = cc;
	return 0;
}

static void cc_job_free(struct cc_job *j)
{
	caclient_result_free(j->res);
	free(j->ns);
	free(j->sa);
	free(j);
}

static void cc_jobs_free(struct cc_job *j)
{
	for (struct cc_job *next; j; j = next) {
		next = j->next;
		cc_job_free(j);
	}
}

void caclient_free(struct caclient *cc)
{
	if (!cc)
		return;
	if (cc->started) {
		pthread_mutex_lock(&cc->mu);
		atomic_store(&cc->stop, true);
		pthread_cond_signal(&cc->cv);
		pthread_mutex_unlock(&cc->mu);
		pthread_join(cc->thr, NULL);
	}
	cc_jobs_free(cc->queue);
	cc_jobs_free(cc->done);
	pthread_cond_destroy(&cc->cv);
	pthread_mutex_destroy(&cc->mu);
	if (cc->efd >= 0)
		close(cc->efd);
	if (cc->curl)
		curl_easy_cleanup(cc->curl);
	free(cc->url);
	free(cc->token_file);
	free(cc->bundle_file);
	free(cc->td);
	free(cc->buf);
	free(cc);
}

int caclient_bundle_load(const char *path, STACK_OF(X509) **out, char *err, size_t errlen)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	FILE *f;
	X509 *x;
	int ret = -EINVAL;

	*out = NULL;
	if (!sk)
		return -ENOMEM;
	f = fopen(path, "re");
	if (!f) {
		ret = -errno;
		errbuf_set(err, errlen, "trust bundle %s: %s", path, strerror(errno));
		sk_X509_free(sk);
		return ret;
	}
	while ((x = PEM_read_X509(f, NULL, NULL, NULL))) {
		if (!X509_check_ca(x)) {
			errbuf_set(err, errlen, "trust bundle %s: certificate %d is not a CA", path,
				sk_X509_num(sk) + 1);
			X509_free(x);
			goto out;
		}
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			ret = -ENOMEM;
			goto out;
		}
	}
	ERR_clear_error();
	if (sk_X509_num(sk) == 0) {
		errbuf_set(err, errlen, "trust bundle %s holds no PEM certificate", path);
		goto out;
	}
	*out = sk;
	sk = NULL;
	ret = 0;
out:
	fclose(f);
	sk_X509_pop_free(sk, X509_free);
	return ret;
}

static size_t cc_write(char *p, size_t size, size_t n, void *ctx)
{
	struct caclient *cc = ctx;
	size_t add = size * n;
	char *nb;

	if (cc->len + add > CACLIENT_ANSWER_MAX)
		return 0;
	nb = realloc(cc->buf, cc->len + add + 1);
	if (!nb)
		return 0;
	cc->buf = nb;
	memcpy(cc->buf + cc->len, p, add);
	cc->len += add;
	cc->buf[cc->len] = 0;
	return add;
}

/* caclient_free() while a request runs: abort it. */
static int cc_progress(void *ctx, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
	struct caclient *cc = ctx;

	(void)dlt, (void)dln, (void)ult, (void)uln;
	return atomic_load(&cc->stop) ? 1 : 0;
}

static time_t cc_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

int caclient_accept(const char *chain_pem, STACK_OF(X509) *roots, const char *want_id,
		    struct ca_leaf *leaf, char *err, size_t errlen)
{
	BIO *bio = BIO_new_mem_buf(chain_pem, -1);
	STACK_OF(X509) *untrusted = sk_X509_new_null(), *verified = NULL;
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *vctx = X509_STORE_CTX_new();
	char got[SPIFFE_ID_MAX] = "";
	X509 *x;
	BIGNUM *bn = NULL;
	char *hex = NULL;
	int nuri = 0, ret = -EIO;

	if (!bio || !untrusted || !store || !vctx)
		goto out;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
		if (!sk_X509_push(untrusted, x)) {
			X509_free(x);
			goto out;
		}
	ERR_clear_error();
	if (sk_X509_num(untrusted) == 0) {
		errbuf_set(err, errlen, "warren-ca's answer holds no certificate");
		goto out;
	}
	leaf->cert = sk_X509_shift(untrusted);
	for (int i = 0; i < sk_X509_num(roots); i++)
		X509_STORE_add_cert(store, sk_X509_value(roots, i));
	if (X509_STORE_CTX_init(vctx, store, leaf->cert, untrusted) != 1)
		goto out;
	X509_STORE_CTX_set_purpose(vctx, X509_PURPOSE_SSL_CLIENT);
	if (X509_verify_cert(vctx) != 1) {
		errbuf_set(err, errlen, "warren-ca's certificate does not verify against the trust "
			"bundle: %s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
		goto out;
	}
	if (spiffe_id_from_cert(leaf->cert, got, sizeof(got), &nuri) || nuri != 1 ||
	    strcmp(got, want_id)) {
		errbuf_set(err, errlen, "warren-ca's certificate names %s (%d URI SANs), not %s",
			got[0] ? got : "no SPIFFE ID", nuri, want_id);
		goto out;
	}
	if (X509_check_private_key(leaf->cert, leaf->key) != 1) {
		errbuf_set(err, errlen, "warren-ca's certificate is not for our key");
		goto out;
	}
	verified = X509_STORE_CTX_get1_chain(vctx); /* leaf, intermediates, root */
	if (!verified)
		goto out;
	X509_free(sk_X509_shift(verified));
	leaf->chain = verified;
	verified = NULL;
	snprintf(leaf->id, sizeof(leaf->id), "%s", want_id);
	leaf->not_before = cc_time(X509_get0_notBefore(leaf->cert));
	leaf->not_after = cc_time(X509_get0_notAfter(leaf->cert));
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf->cert), NULL);
	hex = bn ? BN_bn2hex(bn) : NULL;
	if (!hex)
		goto out;
	for (size_t i = 0; hex[i] && i + 1 < sizeof(leaf->serial_hex); i++)
		leaf->serial_hex[i] = (char)((hex[i] >= 'A' && hex[i] <= 'F') ? hex[i] - 'A' + 'a' : hex[i]);
	ret = 0;
out:
	ERR_clear_error();
	OPENSSL_free(hex);
	BN_free(bn);
	sk_X509_pop_free(verified, X509_free);
	sk_X509_pop_free(untrusted, X509_free);
	X509_STORE_CTX_free(vctx);
	X509_STORE_free(store);
	BIO_free(bio);
	return ret;
}

/* gRPC's status and message, from the response headers (a trailers-only
 * answer) or the trailers, which libcurl passes here too. */
static size_t cc_header(char *p, size_t size, size_t n, void *ctx)
{
	struct caclient *cc = ctx;
	size_t len = size * n, vlen;
	const char *v;

	if (len > 12 && !strncasecmp(p, "grpc-status:", 12)) {
		v = p + 12;
		cc->grpc_status = strtol(v, NULL, 10);
	} else if (len > 13 && !strncasecmp(p, "grpc-message:", 13)) {
		v = p + 13;
		while (v < p + len && *v == ' ')
			v++;
		vlen = (size_t)(p + len - v);
		while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
			vlen--;
		if (vlen >= sizeof(cc->grpc_message))
			vlen = sizeof(cc->grpc_message) - 1;
		memcpy(cc->grpc_message, v, vlen);
		cc->grpc_message[vlen] = 0;
	}
	return len;
}

/* The request's body and headers for cc's protocol. 0 or -ENOMEM. */
static int cc_build(struct caclient *cc, const char *id, const char *csr, const char *auth,
		    char **body, size_t *blen, struct curl_slist **hdrs, char *url, size_t urllen)
{
	if (cc->protocol == CACLIENT_ISTIO) {
		if (istiopb_request(csr, cc->validity_s, id, (uint8_t **)body, blen))
			return -ENOMEM;
		*hdrs = curl_slist_append(*hdrs, "Content-Type: application/grpc");
		*hdrs = curl_slist_append(*hdrs, "TE: trailers");
		snprintf(url, urllen, "%s/istio.v1.auth.IstioCertificateService/CreateCertificate",
			 cc->url);
	} else {
		json_t *req = json_pack("{s:s}", "csr", csr);

		*body = req ? json_dumps(req, JSON_COMPACT) : NULL;
		json_decref(req);
		if (!*body)
			return -ENOMEM;
		*blen = strlen(*body);
		*hdrs = curl_slist_append(*hdrs, "Content-Type: application/json");
		snprintf(url, urllen, "%s/v1/sign", cc->url);
	}
	*hdrs = curl_slist_append(*hdrs, auth);
	return 0;
}

/* The answer's chain (leaf first), or a refusal (-EACCES) or failure
 * (-EIO) with err. *chain is malloc'd. */
static int cc_answer(struct caclient *cc, const char *id, long status, char **chain, char *err,
		     size_t errlen)
{
	json_t *ans;
	const char *why, *pem;
	long version = 0;

	*chain = NULL;
	if (cc->protocol == CACLIENT_ISTIO) {
		curl_easy_getinfo(cc->curl, CURLINFO_HTTP_VERSION, &version);
		if (version != CURL_HTTP_VERSION_2_0) {
			errbuf_set(err, errlen, "%s %s does not speak HTTP/2 (gRPC needs it; ALPN)",
				   cc->name, cc->url);
			return -EIO;
		}
		if (status != 200 || cc->grpc_status != 0) {
			errbuf_set(err, errlen, "%s refused %s: HTTP %ld, gRPC status %ld %s", cc->name,
				   id, status, cc->grpc_status,
				   cc->grpc_message[0] ? cc->grpc_message : "(no message)");
			/* UNAUTHENTICATED, PERMISSION_DENIED */
			return cc->grpc_status == 16 || cc->grpc_status == 7 ? -EACCES : -EIO;
		}
		return istiopb_response((const uint8_t *)(cc->buf ? cc->buf : ""), cc->len, chain, err,
					errlen) == -ENOMEM ? -ENOMEM : (*chain ? 0 : -EIO);
	}
	ans = json_loadb(cc->buf ? cc->buf : "", cc->len, 0, NULL);
	if (status != 200) {
		why = json_string_value(json_object_get(ans, "error"));
		errbuf_set(err, errlen, "warren-ca refused %s: %ld %s", id, status,
			   why ? why : "(no reason given)");
		json_decref(ans);
		return status == 401 || status == 403 ? -EACCES : -EIO;
	}
	pem = json_string_value(json_object_get(ans, "certChain"));
	*chain = pem ? strdup(pem) : NULL;
	json_decref(ans);
	if (!pem) {
		errbuf_set(err, errlen, "warren-ca's answer has no certChain");
		return -EIO;
	}
	return *chain ? 0 : -ENOMEM;
}

int caclient_request(struct caclient *cc, const char *ns, const char *sa, struct ca_leaf **out,
		     STACK_OF(X509) **roots_out, char *err, size_t errlen)
{
	struct ca_leaf *leaf = NULL;
	STACK_OF(X509) *roots = NULL;
	struct curl_slist *hdrs = NULL;
	char id[SPIFFE_ID_MAX], url[1024], cerr[CURL_ERROR_SIZE] = "";
	char *token = NULL, *csr = NULL, *body = NULL, *auth = NULL, *chain = NULL;
	size_t blen = 0;
	long status = 0;
	CURLcode rc;
	int ret;

	*out = NULL;
	*roots_out = NULL;
	if (spiffe_id_format(id, sizeof(id), cc->td, ns, sa)) {
		errbuf_set(err, errlen, "invalid service account %s/%s", ns, sa);
		return -EINVAL;
	}
	ret = caclient_bundle_load(cc->bundle_file, &roots, err, errlen);
	if (ret)
		return ret == -ENOMEM ? ret : -EIO;
	ret = kube_token_read(cc->token_file, &token, err, errlen);
	if (ret) {
		ret = -EIO;
		goto out;
	}
	ret = -ENOMEM;
	leaf = calloc(1, sizeof(*leaf));
	if (!leaf)
		goto out;
	ret = -EIO;
	leaf->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!leaf->key) {
		errbuf_set(err, errlen, "generating a key failed");
		goto out;
	}
	ret = csr_make(leaf->key, id, &csr, err, errlen);
	if (ret)
		goto out;
	ret = -ENOMEM;
	if (asprintf(&auth, "Authorization: Bearer %s", token) < 0) {
		auth = NULL;
		goto out;
	}
	if (cc_build(cc, id, csr, auth, &body, &blen, &hdrs, url, sizeof(url)))
		goto out;
	cc->len = 0;
	cc->grpc_status = -1;
	cc->grpc_message[0] = 0;
	curl_easy_reset(cc->curl);
	curl_easy_setopt(cc->curl, CURLOPT_URL, url);
	curl_easy_setopt(cc->curl, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(cc->curl, CURLOPT_CAINFO, cc->bundle_file);
	curl_easy_setopt(cc->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(cc->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(cc->curl, CURLOPT_POSTFIELDSIZE, (long)blen);
	if (cc->protocol == CACLIENT_ISTIO) {
		curl_easy_setopt(cc->curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
		curl_easy_setopt(cc->curl, CURLOPT_HEADERFUNCTION, cc_header);
		curl_easy_setopt(cc->curl, CURLOPT_HEADERDATA, cc);
	}
	curl_easy_setopt(cc->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cc->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)CACLIENT_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(cc->curl, CURLOPT_TIMEOUT_MS, (long)CACLIENT_TIMEOUT_MS);
	curl_easy_setopt(cc->curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(cc->curl, CURLOPT_WRITEFUNCTION, cc_write);
	curl_easy_setopt(cc->curl, CURLOPT_WRITEDATA, cc);
	curl_easy_setopt(cc->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(cc->curl, CURLOPT_XFERINFOFUNCTION, cc_progress);
	curl_easy_setopt(cc->curl, CURLOPT_XFERINFODATA, cc);
	rc = curl_easy_perform(cc->curl);
	ret = -EIO;
	if (rc != CURLE_OK) {
		errbuf_set(err, errlen, "%s %s unreachable: %s", cc->name, cc->url,
			cerr[0] ? cerr : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(cc->curl, CURLINFO_RESPONSE_CODE, &status);
	ret = cc_answer(cc, id, status, &chain, err, errlen);
	if (ret)
		goto out;
	ret = caclient_accept(chain, roots, id, leaf, err, errlen);
	if (ret)
		goto out;
	*out = leaf;
	*roots_out = roots;
	leaf = NULL;
	roots = NULL;
out:
	if (ret == -ENOMEM)
		errbuf_set(err, errlen, "out of memory");
	for (struct curl_slist *h = hdrs; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(hdrs);
	if (auth) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	if (token) {
		explicit_bzero(token, strlen(token));
		free(token);
	}
	free(body);
	free(chain);
	free(csr);
	ca_leaf_free(leaf);
	sk_X509_pop_free(roots, X509_free);
	return ret;
}

/* ------------------------------------------------------------ asynchronous */

void caclient_result_free(struct caclient_result *r)
{
	if (!r)
		return;
	ca_leaf_free(r->leaf);
	sk_X509_pop_free(r->roots, X509_free);
	free(r->ns);
	free(r->sa);
	free(r);
}

int caclient_event_fd(const struct caclient *cc)
{
	return cc->efd;
}

size_t caclient_pending(struct caclient *cc)
{
	size_t n;

	pthread_mutex_lock(&cc->mu);
	n = cc->n_pending;
	pthread_mutex_unlock(&cc->mu);
	return n;
}

/* The request thread needs no privilege: it reads two root-owned files
 * (root's DAC, no capability) and makes one TCP connection. */
static void cc_drop_caps(void)
{
	if (capng_get_caps_process() < 0)
		return;
	capng_clear(CAPNG_SELECT_BOTH);
	if (capng_apply(CAPNG_SELECT_CAPS) < 0)
		return; /* not fatal: the thread does nothing privileged */
}

static void *cc_thread(void *arg)
{
	struct caclient *cc = arg;

	cc_drop_caps();
	pthread_mutex_lock(&cc->mu);
	for (;;) {
		struct caclient_result *r;
		struct cc_job *j, **tail;
		struct timespec t0, t1;

		while (!cc->queue && !atomic_load(&cc->stop))
			pthread_cond_wait(&cc->cv, &cc->mu);
		if (atomic_load(&cc->stop))
			break;
		j = cc->queue;
		cc->queue = j->next;
		j->next = NULL;
		cc->running = j;
		pthread_mutex_unlock(&cc->mu);

		r = calloc(1, sizeof(*r));
		if (r) {
			clock_gettime(CLOCK_MONOTONIC, &t0);
			r->ret = caclient_request(cc, j->ns, j->sa, &r->leaf, &r->roots, r->err,
						  sizeof(r->err));
			clock_gettime(CLOCK_MONOTONIC, &t1);
			r->ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
				(double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		}

		pthread_mutex_lock(&cc->mu);
		cc->running = NULL;
		j->res = r;
		for (tail = &cc->done; *tail; tail = &(*tail)->next)
			;
		*tail = j;
		eventfd_write(cc->efd, 1);
	}
	pthread_mutex_unlock(&cc->mu);
	return NULL;
}

static bool cc_job_is(const struct cc_job *j, const char *ns, const char *sa)
{
	return j && !strcmp(j->ns, ns) && !strcmp(j->sa, sa);
}

int caclient_submit(struct caclient *cc, const char *ns, const char *sa)
{
	struct cc_job *j, **tail;
	int ret = 0;

	pthread_mutex_lock(&cc->mu);
	if (cc_job_is(cc->running, ns, sa)) {
		ret = -EALREADY;
		goto out;
	}
	for (tail = &cc->queue; *tail; tail = &(*tail)->next)
		if (cc_job_is(*tail, ns, sa)) {
			ret = -EALREADY;
			goto out;
		}
	if (!cc->started) {
		/* Started at the first request, not at caclient_new(): a
		 * caller that never submits has no thread. */
		ret = -pthread_create(&cc->thr, NULL, cc_thread, cc);
		if (ret)
			goto out;
		cc->started = true;
	}
	ret = -ENOMEM;
	j = calloc(1, sizeof(*j));
	if (!j)
		goto out;
	j->ns = strdup(ns);
	j->sa = strdup(sa);
	if (!j->ns || !j->sa) {
		cc_job_free(j);
		goto out;
	}
	*tail = j;
	cc->n_pending++;
	pthread_cond_signal(&cc->cv);
	ret = 0;
out:
	pthread_mutex_unlock(&cc->mu);
	return ret;
}

struct caclient_result *caclient_take(struct caclient *cc)
{
	struct caclient_result *r = NULL;
	struct cc_job *j;
	eventfd_t v;

	pthread_mutex_lock(&cc->mu);
	j = cc->done;
	if (j) {
		cc->done = j->next;
		cc->n_pending--;
	}
	if (!cc->done)
		eventfd_read(cc->efd, &v); /* drained: readable again at the next result */
	pthread_mutex_unlock(&cc->mu);
	if (!j)
		return NULL;
	r = j->res;
	j->res = NULL;
	if (!r) {
		/* the thread could not allocate a result: report it as one */
		r = calloc(1, sizeof(*r));
		if (r) {
			r->ret = -ENOMEM;
			snprintf(r->err, sizeof(r->err), "out of memory");
		}
	}
	if (r && !r->ns) {
		r->ns = j->ns;
		r->sa = j->sa;
		j->ns = j->sa = NULL;
	}
	cc_job_free(j);
	return r;
}
