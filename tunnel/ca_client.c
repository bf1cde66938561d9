/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CSRs to warren-ca. Contract: tunnel/ca_client.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

#define CACLIENT_ANSWER_MAX 65536

struct caclient {
	char *url, *token_file, *bundle_file, *td;
	CURL *curl;
	char *buf;
	size_t len;
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
	cc->curl = curl_easy_init();
	if (!cc->url || !cc->token_file || !cc->bundle_file || !cc->td || !cc->curl) {
		caclient_free(cc);
		return -ENOMEM;
	}
	*out = cc;
	return 0;
}

void caclient_free(struct caclient *cc)
{
	if (!cc)
		return;
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

int caclient_request(struct caclient *cc, const char *ns, const char *sa, struct ca_leaf **out,
		     STACK_OF(X509) **roots_out, char *err, size_t errlen)
{
	struct ca_leaf *leaf = NULL;
	STACK_OF(X509) *roots = NULL;
	struct curl_slist *hdrs = NULL;
	char id[SPIFFE_ID_MAX], url[1024], cerr[CURL_ERROR_SIZE] = "";
	char *token = NULL, *csr = NULL, *body = NULL, *auth = NULL;
	json_t *req = NULL, *ans = NULL;
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
	req = json_pack("{s:s}", "csr", csr);
	body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	if (!body || asprintf(&auth, "Authorization: Bearer %s", token) < 0) {
		auth = NULL;
		goto out;
	}
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, auth);
	snprintf(url, sizeof(url), "%s/v1/sign", cc->url);
	cc->len = 0;
	curl_easy_reset(cc->curl);
	curl_easy_setopt(cc->curl, CURLOPT_URL, url);
	curl_easy_setopt(cc->curl, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(cc->curl, CURLOPT_CAINFO, cc->bundle_file);
	curl_easy_setopt(cc->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(cc->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(cc->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cc->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)CACLIENT_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(cc->curl, CURLOPT_TIMEOUT_MS, (long)CACLIENT_TIMEOUT_MS);
	curl_easy_setopt(cc->curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(cc->curl, CURLOPT_WRITEFUNCTION, cc_write);
	curl_easy_setopt(cc->curl, CURLOPT_WRITEDATA, cc);
	rc = curl_easy_perform(cc->curl);
	ret = -EIO;
	if (rc != CURLE_OK) {
		errbuf_set(err, errlen, "warren-ca %s unreachable: %s", cc->url,
			cerr[0] ? cerr : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(cc->curl, CURLINFO_RESPONSE_CODE, &status);
	ans = json_loadb(cc->buf ? cc->buf : "", cc->len, 0, NULL);
	if (status != 200) {
		const char *why = json_string_value(json_object_get(ans, "error"));

		errbuf_set(err, errlen, "warren-ca refused %s: %ld %s", id, status,
			why ? why : "(no reason given)");
		ret = status == 401 || status == 403 ? -EACCES : -EIO;
		goto out;
	}
	if (!json_string_value(json_object_get(ans, "certChain"))) {
		errbuf_set(err, errlen, "warren-ca's answer has no certChain");
		goto out;
	}
	ret = caclient_accept(json_string_value(json_object_get(ans, "certChain")), roots, id, leaf, err,
			errlen);
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
	json_decref(req);
	json_decref(ans);
	free(body);
	free(csr);
	ca_leaf_free(leaf);
	sk_X509_pop_free(roots, X509_free);
	return ret;
}
