/* SPDX-License-Identifier: Apache-2.0 */
/*
 * warren-ca's signing path with real OpenSSL: CSRs made by the tunnel's
 * csr_make() and checked by csr_check(), hostile CSRs refused, the signed
 * certificate's profile, the answer's chain with a root and with an
 * intermediate, the checks of a TokenReview answer, and http_header().
 * Node authorization against a real API server: tests/kube/test_ca.sh.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ca/authz.h"
#include "ca/sign.h"
#include "tunnel/ca.h"
#include "tunnel/ca_client.h"
#include "tunnel/csr.h"
#include "tunnel/identity.h"
#include "tunnel/http.h"
#include "t.h"

#define TD "cluster.local"

static EVP_PKEY *p256(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* A CSR with any SAN list (config syntax) and key, signed by signer. */
static char *raw_csr(EVP_PKEY *key, EVP_PKEY *signer, const char *san)
{
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	BIO *bio = BIO_new(BIO_s_mem());
	BUF_MEM *mem;
	char *out = NULL;

	X509_REQ_set_pubkey(req, key);
	if (san) {
		X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);

		sk_X509_EXTENSION_push(exts, e);
		X509_REQ_add_extensions(req, exts);
	}
	if (X509_REQ_sign(req, signer, EVP_sha256()) && PEM_write_bio_X509_REQ(bio, req)) {
		BIO_get_mem_ptr(bio, &mem);
		out = strndup(mem->data, mem->length);
	}
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	BIO_free(bio);
	return out;
}

static void test_csr_roundtrip(void)
{
	EVP_PKEY *key = p256(), *pub = NULL;
	struct spiffe_id id;
	char *pem = NULL, err[256];

	T_ASSERT_INT(csr_make(key, "spiffe://" TD "/ns/shop/sa/cart", &pem, err, sizeof(err)), 0);
	T_ASSERT(strstr(pem, "BEGIN CERTIFICATE REQUEST"));
	T_ASSERT_INT(csr_check(pem, strlen(pem), TD, &id, &pub, err, sizeof(err)), 0);
	T_ASSERT_STR(id.ns, "shop");
	T_ASSERT_STR(id.sa, "cart");
	T_ASSERT_INT(EVP_PKEY_eq(pub, key), 1);
	EVP_PKEY_free(pub);
	/* Another trust domain is refused. */
	T_ASSERT_INT(csr_check(pem, strlen(pem), "other.td", &id, &pub, err, sizeof(err)), -EINVAL);
	T_ASSERT(strstr(err, "trust domain") && pub == NULL);
	{ char *p2 = NULL; T_ASSERT_INT(csr_make(key, "https://x/ns/a/sa/b", &p2, err, sizeof(err)),
		     -EINVAL); }
	free(pem);
	EVP_PKEY_free(key);
}

static void test_csr_hostile(void)
{
	EVP_PKEY *key = p256(), *other = p256(), *pub = NULL;
	EVP_PKEY *p521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
	EVP_PKEY *rsa1k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	struct spiffe_id id;
	char err[256];
	struct {
		const char *what;
		char *pem;
		const char *want;
	} c[] = {
		{ "no SAN", raw_csr(key, key, NULL), "no subjectAltName" },
		{ "DNS SAN", raw_csr(key, key, "DNS:evil.example"), "exactly one name" },
		{ "URI + DNS", raw_csr(key, key, "URI:spiffe://" TD "/ns/a/sa/b,DNS:x"), "exactly one name" },
		{ "two URIs", raw_csr(key, key, "URI:spiffe://" TD "/ns/a/sa/b,URI:spiffe://" TD "/ns/c/sa/d"),
		  "exactly one name" },
		{ "not SPIFFE", raw_csr(key, key, "URI:https://" TD "/ns/a/sa/b"), "is not spiffe" },
		{ "extra segment", raw_csr(key, key, "URI:spiffe://" TD "/ns/a/sa/b/c"), "is not spiffe" },
		{ "signed by another key", raw_csr(key, other, "URI:spiffe://" TD "/ns/a/sa/b"),
		  "does not verify" },
		{ "P-521", raw_csr(p521, p521, "URI:spiffe://" TD "/ns/a/sa/b"), "not accepted" },
		{ "RSA 1024", raw_csr(rsa1k, rsa1k, "URI:spiffe://" TD "/ns/a/sa/b"), "not accepted" },
		{ "garbage", strdup("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"),
		  "no PEM" },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		err[0] = 0;
		T_ASSERT(c[i].pem != NULL);
		if (csr_check(c[i].pem, strlen(c[i].pem), TD, &id, &pub, err, sizeof(err)) != -EINVAL ||
		    pub || !strstr(err, c[i].want)) {
			printf("#   case %s: err \"%s\"\n", c[i].what, err);
			T_ASSERT(0);
		}
		printf("# %s: %s\n", c[i].what, err);
		free(c[i].pem);
	}
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
	EVP_PKEY_free(p521);
	EVP_PKEY_free(rsa1k);
}

/* Splits PEM certificates into a stack. */
static STACK_OF(X509) *pem_certs(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	STACK_OF(X509) *sk = sk_X509_new_null();
	X509 *x;

	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
		sk_X509_push(sk, x);
	ERR_clear_error();
	BIO_free(bio);
	return sk;
}

static int verify(X509 *root, X509 *leaf, STACK_OF(X509) *untrusted)
{
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok;

	X509_STORE_add_cert(st, root);
	X509_STORE_CTX_init(ctx, st, leaf, untrusted);
	ok = X509_verify_cert(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	return ok;
}

/* Signs a tunnel's CSR through the API body and checks the answer. */
static void sign_and_check(const struct mesh_ca *ca, int want_chain)
{
	EVP_PKEY *key = p256(), *pub = NULL;
	struct spiffe_id id;
	char *csr = NULL, *body = NULL, *ans = NULL, err[256];
	json_t *j = NULL;
	STACK_OF(X509) *chain = NULL, *bundle = NULL;
	X509 *leaf;
	GENERAL_NAMES *gens;
	json_int_t not_after;

	T_ASSERT_INT(csr_make(key, "spiffe://" TD "/ns/shop/sa/cart", &csr, err, sizeof(err)), 0);
	j = json_pack("{s:s}", "csr", csr);
	body = json_dumps(j, 0);
	json_decref(j);
	T_ASSERT_INT(casign_parse(body, strlen(body), TD, &id, &pub, err, sizeof(err)), 0);
	T_ASSERT_INT(casign_answer(ca, &id, pub, 3600, &ans, err, sizeof(err)), 0);
	j = json_loads(ans, 0, NULL);
	T_ASSERT(j);
	T_ASSERT_STR(json_string_value(json_object_get(j, "identity")), "spiffe://" TD "/ns/shop/sa/cart");
	chain = pem_certs(json_string_value(json_object_get(j, "certChain")));
	bundle = pem_certs(json_string_value(json_object_get(j, "bundle")));
	not_after = json_integer_value(json_object_get(j, "notAfter"));
	T_ASSERT_INT(sk_X509_num(chain), 1 + want_chain);
	T_ASSERT_INT(sk_X509_num(bundle), 1);
	T_ASSERT_INT(X509_cmp(sk_X509_value(bundle, 0), ca_root0(ca)), 0);
	leaf = sk_X509_value(chain, 0);
	/* The tunnel's key, the profile of a workload certificate. */
	T_ASSERT_INT(X509_check_private_key(leaf, key), 1);
	T_ASSERT_INT(X509_check_ca(leaf), 0);
	T_ASSERT_INT(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
	T_ASSERT_INT(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER | XKU_SSL_CLIENT);
	gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	T_ASSERT(gens && sk_GENERAL_NAME_num(gens) == 1 &&
		 sk_GENERAL_NAME_value(gens, 0)->type == GEN_URI);
	GENERAL_NAMES_free(gens);
	T_ASSERT(not_after > time(NULL) + 3500 && not_after <= time(NULL) + 3600);
	T_ASSERT_INT(verify(ca_root0(ca), leaf, chain), 1);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(bundle, X509_free);
	json_decref(j);
	free(ans);
	free(body);
	free(csr);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(key);
}

static void test_sign_root_and_intermediate(void)
{
	struct mesh_ca *root = NULL, *inter = NULL;

	T_ASSERT_INT(ca_create_root("warren", "root", 30, &root), 0);
	T_ASSERT_INT(ca_create_intermediate(root, "user intermediate", 30, &inter), 0);
	sign_and_check(root, 0);
	if (t_failed_current)
		goto out;
	sign_and_check(inter, 1); /* the chain carries the intermediate */
out:
	ca_free(inter);
	ca_free(root);
}

static void test_sign_body_refused(void)
{
	EVP_PKEY *pub = NULL;
	struct spiffe_id id;
	char err[256];
	const char *bad[] = { "", "[]", "{\"csr\": 1}", "{\"csr\": \"x\", \"csr\": \"y\"}",
			      "{\"csr\": \"x\", \"ttl\": 99999}" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		T_ASSERT_INT(casign_parse(bad[i], strlen(bad[i]), TD, &id, &pub, err, sizeof(err)),
			     -EINVAL);
		T_ASSERT(pub == NULL);
	}
}

static void test_review_checks(void)
{
	struct caz_conf conf = { .audience = "warren-ca", .tunnel_ns = "warren-system",
				 .tunnel_sa = "warren" };
	char node[64], pod[64], why[256], user[128];
	const char *self = "{\"authenticated\":true,\"audiences\":[\"warren-ca\"],\"user\":{"
			   "\"username\":\"system:serviceaccount:shop:cart\",\"extra\":{"
			   "\"authentication.kubernetes.io/pod-name\":[\"cart-1\"]}}}";
	const char *ok = "{\"authenticated\":true,\"audiences\":[\"warren-ca\"],\"user\":{"
			 "\"username\":\"system:serviceaccount:warren-system:warren\",\"extra\":{"
			 "\"authentication.kubernetes.io/pod-name\":[\"warren-abc\"],"
			 "\"authentication.kubernetes.io/node-name\":[\"node1\"]}}}";
	struct {
		const char *status, *want;
	} bad[] = {
		{ "{\"authenticated\":false,\"error\":\"token has expired\"}", "token has expired" },
		{ "{\"authenticated\":true,\"audiences\":[\"api\"],\"user\":{}}", "audience warren-ca" },
		{ "{\"authenticated\":true,\"audiences\":[\"warren-ca\"],\"user\":{\"username\":"
		  "\"system:serviceaccount:shop:cart\"}}", "not the tunnel's service account" },
		{ "{\"authenticated\":true,\"audiences\":[\"warren-ca\"],\"user\":{\"username\":"
		  "\"system:serviceaccount:warren-system:warren\"}}", "not bound to a pod" },
		{ "{\"authenticated\":true,\"audiences\":[\"warren-ca\"],\"user\":{\"username\":"
		  "\"system:serviceaccount:shop:other\"}}", "not bound to a pod" },
		{ "{\"authenticated\":true,\"audiences\":[\"warren-ca\"],\"user\":{\"username\":"
		  "\"system:serviceaccount:warren-system:warren\",\"extra\":{"
		  "\"authentication.kubernetes.io/pod-name\":[\"p\"],"
		  "\"authentication.kubernetes.io/node-name\":[\"../x\"]}}}", "malformed" },
	};
	json_t *j = json_loads(ok, 0, NULL);

	T_ASSERT_INT(caz_review_check(&conf, j, "shop", "other", user, sizeof(user), node, sizeof(node), pod,
				      sizeof(pod), why, sizeof(why)), CAZ_NODE);
	T_ASSERT_STR(node, "node1");
	T_ASSERT_STR(pod, "warren-abc");
	json_decref(j);
	/* a workload's own pod-bound token, for its own identity only */
	j = json_loads(self, 0, NULL);
	T_ASSERT_INT(caz_review_check(&conf, j, "shop", "cart", user, sizeof(user), node, sizeof(node), pod,
				      sizeof(pod), why, sizeof(why)), CAZ_SELF);
	T_ASSERT_STR(pod, "cart-1");
	T_ASSERT_STR(user, "system:serviceaccount:shop:cart");
	T_ASSERT_INT(caz_review_check(&conf, j, "shop", "other", user, sizeof(user), node, sizeof(node), pod,
				      sizeof(pod), why, sizeof(why)), -EACCES);
	T_ASSERT(strstr(why, "nor the requested identity's own (shop/other)"));
	T_ASSERT_INT(caz_review_check(&conf, j, "bank", "cart", user, sizeof(user), node, sizeof(node), pod,
				      sizeof(pod), why, sizeof(why)), -EACCES);
	json_decref(j);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = json_loads(bad[i].status, 0, NULL);
		T_ASSERT(j);
		T_ASSERT_INT(caz_review_check(&conf, j, "shop", "other", user, sizeof(user), node, sizeof(node),
					      pod, sizeof(pod), why, sizeof(why)), -EACCES);
		json_decref(j);
		printf("# %s\n", why);
		T_ASSERT(strstr(why, bad[i].want));
	}
}

static void test_http_header(void)
{
	const char *h = "POST /v1/sign HTTP/1.1\r\nHost: x\r\nauthorization:  Bearer abc \r\n\r\n";
	const char *h2 = "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n";
	const char *v;
	size_t n;

	T_ASSERT_INT(http_header(h, strlen(h), "Authorization", &v, &n), 0);
	T_ASSERT_INT(n, 10);
	T_ASSERT(!memcmp(v, "Bearer abc", 10));
	T_ASSERT_INT(http_header(h, strlen(h), "Cookie", &v, &n), -ENOENT);
	T_ASSERT_INT(http_header(h2, strlen(h2), "Authorization", &v, &n), -EEXIST);
}

/* The tunnel's checks of warren-ca's answer. */
static void test_client_accepts_only_the_bundle(void)
{
	struct mesh_ca *root = NULL, *other = NULL, *inter = NULL;
	EVP_PKEY *key = p256(), *pub = NULL, *stranger = p256();
	STACK_OF(X509) *bundle = sk_X509_new_null(), *both = sk_X509_new_null();
	struct spiffe_id id = { "cluster.local", "shop", "cart" };
	struct ca_leaf *leaf = NULL;
	char *ans = NULL, err[256];
	json_t *j = NULL;
	const char *chain;

	T_ASSERT_INT(ca_create_root("warren", "root", 30, &root), 0);
	T_ASSERT_INT(ca_create_root("warren", "other root", 30, &other), 0);
	T_ASSERT_INT(ca_create_intermediate(root, "inter", 30, &inter), 0);
	sk_X509_push(bundle, ca_root0(root));
	sk_X509_push(both, ca_root0(other));
	sk_X509_push(both, ca_root0(root));
	pub = key;
	/* Signed by the intermediate: accepted against its root, the chain
	 * holding the intermediate then the root. */
	T_ASSERT_INT(casign_answer(inter, &id, pub, 3600, &ans, err, sizeof(err)), 0);
	j = json_loads(ans, 0, NULL);
	chain = json_string_value(json_object_get(j, "certChain"));
	leaf = calloc(1, sizeof(*leaf));
	T_ASSERT(leaf);
	leaf->key = key;
	EVP_PKEY_up_ref(key);
	T_ASSERT_INT(caclient_accept(chain, bundle, "spiffe://cluster.local/ns/shop/sa/cart", leaf, err,
				     sizeof(err)), 0);
	T_ASSERT_INT(sk_X509_num(leaf->chain), 2);
	T_ASSERT(leaf->not_after > time(NULL) + 3500 && leaf->serial_hex[0]);
	ca_leaf_free(leaf);
	/* A bundle holding another root too (a rotation): accepted. */
	leaf = calloc(1, sizeof(*leaf));
	leaf->key = key;
	EVP_PKEY_up_ref(key);
	T_ASSERT_INT(caclient_accept(chain, both, "spiffe://cluster.local/ns/shop/sa/cart", leaf, err,
				     sizeof(err)), 0);
	ca_leaf_free(leaf);
	/* Another identity than asked for: refused. */
	leaf = calloc(1, sizeof(*leaf));
	leaf->key = key;
	EVP_PKEY_up_ref(key);
	T_ASSERT_INT(caclient_accept(chain, bundle, "spiffe://cluster.local/ns/shop/sa/other", leaf,
				     err, sizeof(err)), -EIO);
	printf("# %s\n", err);
	T_ASSERT(strstr(err, "not spiffe://cluster.local/ns/shop/sa/other"));
	ca_leaf_free(leaf);
	/* Not our key: refused. */
	leaf = calloc(1, sizeof(*leaf));
	leaf->key = stranger;
	EVP_PKEY_up_ref(stranger);
	T_ASSERT_INT(caclient_accept(chain, bundle, "spiffe://cluster.local/ns/shop/sa/cart", leaf, err,
				     sizeof(err)), -EIO);
	printf("# %s\n", err);
	T_ASSERT(strstr(err, "not for our key"));
	ca_leaf_free(leaf);
	/* A bundle without its root: refused. */
	sk_X509_pop(both);
	leaf = calloc(1, sizeof(*leaf));
	leaf->key = key;
	EVP_PKEY_up_ref(key);
	T_ASSERT_INT(caclient_accept(chain, both, "spiffe://cluster.local/ns/shop/sa/cart", leaf, err,
				     sizeof(err)), -EIO);
	printf("# %s\n", err);
	T_ASSERT(strstr(err, "does not verify against the trust bundle"));
	ca_leaf_free(leaf);
	json_decref(j);
	free(ans);
	sk_X509_free(bundle);
	sk_X509_free(both);
	EVP_PKEY_free(key);
	EVP_PKEY_free(stranger);
	ca_free(inter);
	ca_free(other);
	ca_free(root);
}

/* An RSA requester: keyEncipherment too, as RSA key transport needs it. */
static void test_sign_rsa_key(void)
{
	struct mesh_ca *root = NULL;
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048), *pub = NULL;
	struct ca_leaf *leaf = NULL;
	struct spiffe_id id;
	char *pem = NULL, err[256];

	T_ASSERT_INT(ca_create_root("warren", "root", 30, &root), 0);
	T_ASSERT_INT(csr_make(rsa, "spiffe://" TD "/ns/a/sa/b", &pem, err, sizeof(err)), 0);
	T_ASSERT_INT(csr_check(pem, strlen(pem), TD, &id, &pub, err, sizeof(err)), 0);
	T_ASSERT_INT(ca_sign_pubkey(root, id.td, id.ns, id.sa, pub, 0, &leaf, err, sizeof(err)), 0);
	T_ASSERT_INT(X509_get_key_usage(leaf->cert), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
	T_ASSERT(leaf->key == NULL); /* the requester keeps its private key */
	T_ASSERT(leaf->not_after - leaf->not_before == CA_DEFAULT_LIFETIME_S + CA_BACKDATE_S);
	ca_leaf_free(leaf);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(rsa);
	free(pem);
	ca_free(root);
}

static int obs_calls, obs_last;
static void obs(void *ctx, int ret, double ms)
{
	(void)ctx;
	(void)ms;
	obs_calls++;
	obs_last = ret;
}

/* Waits (bounded) for warren-ca's answers and hands them to the manager,
 * as the tunnel's loop does when the client's eventfd is readable. */
static void await_answers(struct caclient *cc, struct identity_mgr *mgr)
{
	struct pollfd pfd = { .fd = caclient_event_fd(cc), .events = POLLIN };

	T_ASSERT(poll(&pfd, 1, 10000) == 1);
	identity_mgr_complete(mgr);
}

/* A root in DIR/roots.pem (the bundle) and a token in DIR/token, for a
 * warren-ca client. bundle and token are 128-byte buffers. */
static void remote_files(char *dir, char *bundle, char *token, struct mesh_ca **root)
{
	FILE *f;

	T_ASSERT(mkdtemp(dir));
	snprintf(bundle, 128, "%s/roots.pem", dir);
	snprintf(token, 128, "%s/token", dir);
	T_ASSERT_INT(ca_create_root("warren", "root", 30, root), 0);
	f = fopen(bundle, "w");
	T_ASSERT(f && PEM_write_X509(f, ca_root0(*root)));
	fclose(f);
	f = fopen(token, "w");
	T_ASSERT(f && fputs("not-a-real-token\n", f) >= 0);
	fclose(f);
}

/* warren-ca unreachable: the identity is held PENDING (no certificate, no
 * context: its pods fail closed), says why, and is retried. */
static void test_remote_identity_pending(void)
{
	char dir[] = "/tmp/warren-test-ca.XXXXXX", bundle[128], token[128];
	struct caclient_conf cf = { .url = "https://127.0.0.1:1", .token_file = token,
				    .bundle_file = bundle, .td = TD };
	struct mesh_ca *root = NULL;
	struct caclient *cc = NULL;
	struct identity_mgr *mgr = NULL;
	struct identity *id = NULL;
	struct identity_info info[2];
	char err[256] = "";

	remote_files(dir, bundle, token, &root);
	T_ASSERT_INT(caclient_new(&cf, &cc), 0);
	T_ASSERT_INT(identity_mgr_new_remote(cc, TD, &mgr), 0);
	identity_mgr_set_csr_observer(mgr, obs, NULL);

	T_ASSERT_INT(identity_acquire(mgr, "shop", "cart", &id, err, sizeof(err)), 0);
	/* queued: the answer comes through the eventfd */
	T_ASSERT(id && !identity_ready(id) && identity_in_flight(id));
	T_ASSERT(strstr(identity_error(id), "no answer yet"));
	T_ASSERT_INT(identity_next_renewal_ms(mgr), -1); /* its answer schedules it */
	await_answers(cc, mgr);
	printf("# %s\n", identity_error(id));
	T_ASSERT(id && !identity_ready(id) && !identity_in_flight(id));
	T_ASSERT(identity_ctx0(id, TLS_CLIENT) == NULL && identity_ctx0(id, TLS_SERVER) == NULL);
	T_ASSERT(identity_leaf0(id) == NULL);
	T_ASSERT_STR(identity_id(id), "spiffe://" TD "/ns/shop/sa/cart");
	T_ASSERT(strstr(identity_error(id), "unreachable"));
	T_ASSERT_INT(obs_calls, 1);
	T_ASSERT_INT(obs_last, -EIO);
	/* Retried at the backoff, and still pending while warren-ca is away. */
	T_ASSERT(identity_next_renewal_ms(mgr) >= 0 && identity_next_renewal_ms(mgr) <= 1000);
	T_ASSERT_INT(identity_renew_due(mgr, time(NULL) + 5), 0); /* queued */
	T_ASSERT(identity_in_flight(id));
	T_ASSERT_INT(identity_renew_due(mgr, time(NULL) + 5), 0); /* not twice */
	T_ASSERT_INT(caclient_pending(cc), 1);
	await_answers(cc, mgr);
	T_ASSERT_INT(obs_calls, 2);
	T_ASSERT(!identity_ready(id));
	T_ASSERT_INT(identity_snapshot(mgr, time(NULL), info, 2), 1);
	T_ASSERT_INT(info[0].not_after, 0);
	T_ASSERT_INT(info[0].failures, 2);
	/* A second pod of the account shares it; the last release drops it. */
	T_ASSERT_INT(identity_acquire(mgr, "shop", "cart", NULL, err, sizeof(err)), 0);
	T_ASSERT_INT(identity_refs(id), 2);
	T_ASSERT_INT(identity_release(mgr, "shop", "cart"), 0);
	T_ASSERT_INT(identity_release(mgr, "shop", "cart"), 0);
	T_ASSERT_INT(identity_count(mgr), 0);
	/* An unreadable bundle is a failure too, never a certificate. */
	unlink(bundle);
	T_ASSERT_INT(identity_acquire(mgr, "shop", "cart", &id, err, sizeof(err)), 0);
	await_answers(cc, mgr);
	T_ASSERT(!identity_ready(id) && strstr(identity_error(id), "trust bundle"));
	identity_mgr_free(mgr);
	caclient_free(cc);
	ca_free(root);
	unlink(token);
	rmdir(dir);
}

/* A warren-ca that accepts and never answers: acquiring an identity
 * returns at once with its request in flight; the request times out on
 * the client's thread and the identity stays pending. Freeing the client
 * with a request hanging cancels it. */
static void test_remote_silent_ca(void)
{
	char dir[] = "/tmp/warren-test-ca.XXXXXX", bundle[128], token[128], url[64];
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof(sin);
	struct caclient_conf cf = { .url = url, .token_file = token, .bundle_file = bundle, .td = TD };
	struct pollfd pfd = { .events = POLLIN };
	struct mesh_ca *root = NULL;
	struct caclient *cc = NULL;
	struct identity_mgr *mgr = NULL;
	struct identity *id = NULL;
	char err[256] = "";
	int lfd;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	T_ASSERT(lfd >= 0 && bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0 && listen(lfd, 8) == 0);
	T_ASSERT(getsockname(lfd, (struct sockaddr *)&sin, &slen) == 0);
	snprintf(url, sizeof(url), "https://127.0.0.1:%u", ntohs(sin.sin_port));
	remote_files(dir, bundle, token, &root);
	T_ASSERT_INT(caclient_new(&cf, &cc), 0);
	T_ASSERT_INT(identity_mgr_new_remote(cc, TD, &mgr), 0);
	T_ASSERT_INT(identity_acquire(mgr, "shop", "cart", &id, err, sizeof(err)), 0);
	T_ASSERT(identity_in_flight(id) && !identity_ready(id));
	pfd.fd = caclient_event_fd(cc);
	T_ASSERT_INT(poll(&pfd, 1, 0), 0); /* no answer: the call did not wait for one */
	T_ASSERT_INT(identity_acquire(mgr, "shop", "other", NULL, err, sizeof(err)), 0);
	T_ASSERT_INT(caclient_pending(cc), 2);
	await_answers(cc, mgr);
	printf("# %s\n", identity_error(id));
	T_ASSERT(!identity_ready(id) && strstr(identity_error(id), "unreachable"));
	/* the second request runs now, against the same silent listener:
	 * freeing the client cancels it and joins the thread */
	identity_mgr_free(mgr);
	caclient_free(cc);
	close(lfd);
	ca_free(root);
	unlink(bundle);
	unlink(token);
	rmdir(dir);
}

T_MAIN(T_CASE(test_csr_roundtrip), T_CASE(test_remote_identity_pending), T_CASE(test_remote_silent_ca), T_CASE(test_sign_rsa_key), T_CASE(test_client_accepts_only_the_bundle), T_CASE(test_csr_hostile), T_CASE(test_sign_root_and_intermediate),
       T_CASE(test_sign_body_refused), T_CASE(test_review_checks), T_CASE(test_http_header))
