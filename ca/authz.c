/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Node authorization through the API server. Contract: ca/authz.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "ca/authz.h"
#include "conf/errbuf.h"

/* An API answer larger than this is refused (a limit=1 list is small). */
#define CAZ_BODY_MAX (1u << 20)

/* Accepted TokenReviews, by SHA-256 of the token (direct-mapped). */
#define CAZ_CACHE_N 1024

struct caz_cached {
	unsigned char h[32];
	time_t until;
	char node[254], pod[254];
	char user[600]; /* the reviewed username: which identities it may have is decided per request */
};

static struct caz_cached caz_cache[CAZ_CACHE_N];
static pthread_mutex_t caz_cache_mu = PTHREAD_MUTEX_INITIALIZER;

static size_t caz_slot(const unsigned char *h)
{
	return ((size_t)h[0] << 8 | h[1]) % CAZ_CACHE_N;
}

static bool caz_cache_get(const unsigned char *h, char *node, size_t node_len, char *pod,
			  size_t pod_len, char *user, size_t user_len)
{
	struct caz_cached *c = &caz_cache[caz_slot(h)];
	bool hit;

	pthread_mutex_lock(&caz_cache_mu);
	hit = c->until > time(NULL) && !memcmp(c->h, h, sizeof(c->h));
	if (hit) {
		snprintf(node, node_len, "%s", c->node);
		snprintf(pod, pod_len, "%s", c->pod);
		snprintf(user, user_len, "%s", c->user);
	}
	pthread_mutex_unlock(&caz_cache_mu);
	return hit;
}

static void caz_cache_put(const unsigned char *h, const char *node, const char *pod, const char *user)
{
	struct caz_cached *c = &caz_cache[caz_slot(h)];

	pthread_mutex_lock(&caz_cache_mu);
	memcpy(c->h, h, sizeof(c->h));
	c->until = time(NULL) + CAZ_REVIEW_TTL_S;
	snprintf(c->node, sizeof(c->node), "%s", node);
	snprintf(c->pod, sizeof(c->pod), "%s", pod);
	snprintf(c->user, sizeof(c->user), "%s", user);
	pthread_mutex_unlock(&caz_cache_mu);
}

struct caz {
	const struct caz_conf *conf;
	CURL *curl;
	char *buf;
	size_t len;
	bool too_big;
};

int caz_new(const struct caz_conf *conf, struct caz **out)
{
	struct caz *z = calloc(1, sizeof(*z));

	*out = NULL;
	if (!z)
		return -ENOMEM;
	z->conf = conf;
	z->curl = curl_easy_init();
	if (!z->curl) {
		free(z);
		return -ENOMEM;
	}
	*out = z;
	return 0;
}

void caz_free(struct caz *z)
{
	if (!z)
		return;
	curl_easy_cleanup(z->curl);
	free(z->buf);
	free(z);
}

static size_t caz_write(char *p, size_t size, size_t n, void *ctx)
{
	struct caz *z = ctx;
	size_t add = size * n;
	char *nb;

	if (z->len + add > CAZ_BODY_MAX) {
		z->too_big = true;
		return 0;
	}
	nb = realloc(z->buf, z->len + add + 1);
	if (!nb)
		return 0;
	z->buf = nb;
	memcpy(z->buf + z->len, p, add);
	z->len += add;
	z->buf[z->len] = 0;
	return add;
}

/* One API call: GET (body NULL) or POST of body. *out gets the decoded
 * answer when the status is 2xx. 0 or -EIO with reason. */
static int caz_call(struct caz *z, const char *what, const char *path, const char *body,
		    json_t **out, char *reason, size_t rlen)
{
	const struct kube_creds *cr = z->conf->creds;
	struct curl_slist *hdrs = NULL;
	char url[1024], auth[8192], cerr[CURL_ERROR_SIZE] = "";
	char *token = NULL;
	long status = 0;
	CURLcode rc;

	*out = NULL;
	if (cr->token_file) {
		if (kube_token_read(cr->token_file, &token, reason, rlen))
			return -EIO;
	} else if (cr->token) {
		token = strdup(cr->token);
		if (!token)
			return -EIO;
	}
	snprintf(url, sizeof(url), "%s%s", cr->server, path);
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (body)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		hdrs = curl_slist_append(hdrs, auth);
		explicit_bzero(auth, sizeof(auth));
	}
	free(token);
	z->len = 0;
	z->too_big = false;
	curl_easy_reset(z->curl);
	curl_easy_setopt(z->curl, CURLOPT_URL, url);
	curl_easy_setopt(z->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(z->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(z->curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(z->curl, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(z->curl, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(z->curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(z->curl, CURLOPT_WRITEFUNCTION, caz_write);
	curl_easy_setopt(z->curl, CURLOPT_WRITEDATA, z);
	if (cr->ca_file)
		curl_easy_setopt(z->curl, CURLOPT_CAINFO, cr->ca_file);
	if (cr->ca_pem) {
		struct curl_blob b = { cr->ca_pem, strlen(cr->ca_pem), CURL_BLOB_COPY };

		curl_easy_setopt(z->curl, CURLOPT_CAINFO_BLOB, &b);
	}
	if (cr->insecure) {
		curl_easy_setopt(z->curl, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(z->curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (cr->cert_file)
		curl_easy_setopt(z->curl, CURLOPT_SSLCERT, cr->cert_file);
	if (cr->key_file)
		curl_easy_setopt(z->curl, CURLOPT_SSLKEY, cr->key_file);
	if (cr->cert_pem) {
		struct curl_blob b = { cr->cert_pem, strlen(cr->cert_pem), CURL_BLOB_COPY };

		curl_easy_setopt(z->curl, CURLOPT_SSLCERT_BLOB, &b);
	}
	if (cr->key_pem) {
		struct curl_blob b = { cr->key_pem, strlen(cr->key_pem), CURL_BLOB_COPY };

		curl_easy_setopt(z->curl, CURLOPT_SSLKEY_BLOB, &b);
	}
	if (body)
		curl_easy_setopt(z->curl, CURLOPT_POSTFIELDS, body);
	rc = curl_easy_perform(z->curl);
	/* The header list held the bearer token: wipe it before freeing. */
	for (struct curl_slist *h = hdrs; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(hdrs);
	if (rc != CURLE_OK) {
		errbuf_set(reason, rlen, "API server %s: %s", cr->server,
			z->too_big ? "answer too large" : cerr[0] ? cerr : curl_easy_strerror(rc));
		return -EIO;
	}
	curl_easy_getinfo(z->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		errbuf_set(reason, rlen, "API server %s: %s: HTTP %ld (is warren-ca's RBAC applied?)",
			cr->server, what, status);
		return -EIO;
	}
	*out = json_loadb(z->buf ? z->buf : "", z->len, 0, NULL);
	if (!*out) {
		errbuf_set(reason, rlen, "API server %s: %s: an answer that is not JSON", cr->server,
			what);
		return -EIO;
	}
	return 0;
}

/* A Kubernetes object name as the API server writes it (DNS subdomain). */
static bool caz_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
			return false;
	return true;
}

static const char *caz_extra1(json_t *user, const char *key)
{
	json_t *v = json_object_get(json_object_get(user, "extra"), key);

	return json_string_value(json_array_get(v, 0));
}

/* Who username may be for identity ns/sa: CAZ_NODE (the tunnel's service
 * account: node authorization), CAZ_SELF (that identity's own service
 * account), or -EACCES with reason. */
static int caz_caller(const struct caz_conf *conf, const char *username, const char *ns, const char *sa,
		      char *reason, size_t reason_len)
{
	char want[600], self[600];

	snprintf(want, sizeof(want), "system:serviceaccount:%s:%s", conf->tunnel_ns, conf->tunnel_sa);
	snprintf(self, sizeof(self), "system:serviceaccount:%s:%s", ns, sa);
	if (username && !strcmp(username, want))
		return CAZ_NODE;
	if (username && !strcmp(username, self))
		return CAZ_SELF;
	errbuf_set(reason, reason_len,
		   "caller %s is not the tunnel's service account %s nor the requested identity's own (%s/%s)",
		   username ? username : "(no username)", want, ns, sa);
	return -EACCES;
}

int caz_review_check(const struct caz_conf *conf, json_t *status, const char *ns, const char *sa,
		     char *user, size_t user_len, char *node, size_t node_len, char *pod, size_t pod_len,
		     char *reason, size_t reason_len)
{
	json_t *juser = json_object_get(status, "user"), *auds;
	const char *err = json_string_value(json_object_get(status, "error"));
	const char *username = json_string_value(json_object_get(juser, "username"));
	const char *pname = caz_extra1(juser, "authentication.kubernetes.io/pod-name");
	const char *nname = caz_extra1(juser, "authentication.kubernetes.io/node-name");
	size_t i;
	bool aud = false;
	int kind;

	if (!json_is_true(json_object_get(status, "authenticated"))) {
		errbuf_set(reason, reason_len, "token not authenticated: %s",
			err && *err ? err : "the API server gave no reason");
		return -EACCES;
	}
	auds = json_object_get(status, "audiences");
	for (i = 0; i < json_array_size(auds); i++)
		aud |= !strcmp(json_string_value(json_array_get(auds, i)) ?: "", conf->audience);
	if (!aud) {
		errbuf_set(reason, reason_len, "token not valid for audience %s", conf->audience);
		return -EACCES;
	}
	kind = caz_caller(conf, username, ns, sa, reason, reason_len);
	if (kind < 0)
		return kind;
	/* a workload's own token must be bound to a pod too: a long-lived
	 * Secret token of the account would otherwise outlive every pod */
	if (!pname || (kind == CAZ_NODE && !nname)) {
		errbuf_set(reason, reason_len,
			"token of %s is not bound to a pod%s (no pod-name%s in its extra info): use the "
			"pod's projected token", username, kind == CAZ_NODE ? " scheduled on a node" : "",
			kind == CAZ_NODE ? "/node-name" : "");
		return -EACCES;
	}
	if (!nname)
		nname = "";
	if ((*nname && !caz_name_ok(nname)) || !caz_name_ok(pname) || strlen(nname) >= node_len ||
	    strlen(pname) >= pod_len || strlen(username) >= user_len) {
		errbuf_set(reason, reason_len, "token names a malformed node or pod");
		return -EACCES;
	}
	strcpy(node, nname);
	strcpy(pod, pname);
	strcpy(user, username);
	return kind;
}

/* At least one pod of ns/sa on node, not finished, in the list answer. */
static bool caz_pod_found(json_t *list, const char *node, const char *sa)
{
	json_t *items = json_object_get(list, "items"), *p;
	size_t i;

	json_array_foreach(items, i, p) {
		json_t *spec = json_object_get(p, "spec");
		const char *n = json_string_value(json_object_get(spec, "nodeName"));
		const char *s = json_string_value(json_object_get(spec, "serviceAccountName"));
		const char *ph =
			json_string_value(json_object_get(json_object_get(p, "status"), "phase"));

		if (n && s && !strcmp(n, node) && !strcmp(s, sa) &&
		    !(ph && (!strcmp(ph, "Succeeded") || !strcmp(ph, "Failed"))))
			return true;
	}
	return false;
}

int caz_authorize(struct caz *z, const char *token, const char *ns, const char *sa, char *node,
		  size_t node_len, char *pod, size_t pod_len, char *reason, size_t reason_len)
{
	json_t *req = NULL, *ans = NULL;
	char *body = NULL, path[1024], user[600];
	unsigned char h[32];
	bool hashed;
	int ret;

	node[0] = pod[0] = 0;
	hashed = EVP_Digest(token, strlen(token), h, NULL, EVP_sha256(), NULL) == 1;
	if (hashed && caz_cache_get(h, node, node_len, pod, pod_len, user, sizeof(user))) {
		ret = caz_caller(z->conf, user, ns, sa, reason, reason_len);
		goto decided;
	}
	req = json_pack("{s:s, s:s, s:{s:s, s:[s]}}", "apiVersion", "authentication.k8s.io/v1",
			"kind", "TokenReview", "spec", "token", token, "audiences",
			z->conf->audience);
	body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!body) {
		errbuf_set(reason, reason_len, "out of memory");
		return -EIO;
	}
	ret = caz_call(z, "create tokenreviews", "/apis/authentication.k8s.io/v1/tokenreviews", body, &ans, reason,
		       reason_len);
	explicit_bzero(body, strlen(body)); /* held the caller's token */
	free(body);
	if (ret)
		return ret;
	ret = caz_review_check(z->conf, json_object_get(ans, "status"), ns, sa, user, sizeof(user), node,
			       node_len, pod, pod_len, reason, reason_len);
	json_decref(ans);
	ans = NULL;
	if (ret >= 0 && hashed)
		caz_cache_put(h, node, pod, user);
decided:
	if (ret < 0)
		return ret;
	if (ret == CAZ_SELF)
		return 0; /* its own identity: the API server checked the token's pod exists */
	/* ns and sa are checked SPIFFE segments ([A-Za-z0-9._-]) and node a DNS
	 * name: nothing here needs URL escaping. */
	snprintf(path, sizeof(path),
		 "/api/v1/namespaces/%s/pods?limit=1&fieldSelector=spec.nodeName%%3D%s"
		 "%%2Cspec.serviceAccountName%%3D%s%%2Cstatus.phase%%21%%3DSucceeded"
		 "%%2Cstatus.phase%%21%%3DFailed",
		 ns, node, sa);
	ret = caz_call(z, "list pods", path, NULL, &ans, reason, reason_len);
	if (ret)
		return ret;
	if (!caz_pod_found(ans, node, sa)) {
		errbuf_set(reason, reason_len,
			"no running pod with service account %s/%s on node %s (caller pod %s)", ns,
			sa, node, pod);
		ret = -EACCES;
	}
	json_decref(ans);
	return ret;
}
