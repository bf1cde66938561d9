/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mesh CA, workload identities and HBONE TLS (tunnel/ca.h, identity.h,
 * tls.h). Certificates are checked with OpenSSL's own APIs, and handshakes
 * are real: two non-blocking SSLs over a socketpair, driven by poll() and
 * the tls_io want-read/want-write mapping, bounded by a deadline (no
 * sleeps). CA files are written to mkdtemp dirs and removed afterwards.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "conf/log.h"
#include "tests/unit/t.h"
#include "tunnel/ca.h"
#include "tunnel/identity.h"
#include "tunnel/loop.h"
#include "tunnel/tls.h"

#define TD "cluster.local"

__attribute__((constructor)) static void setup(void)
{
	/* TLS writes go through write(2): a peer that already hung up must give
	 * EPIPE, not kill the test. The tunnel does the same. */
	signal(SIGPIPE, SIG_IGN);
	wlog_set_level(WLOG_WARN);
}

/* ------------------------------------------------------------ helpers */

static char *mk_tmpdir(void)
{
	char tmpl[] = "/tmp/warren-test-identity.XXXXXX";
	char *d = mkdtemp(tmpl);

	return d ? strdup(d) : NULL;
}

static void rm_tmpdir(char *dir)
{
	DIR *d;
	struct dirent *e;

	if (!dir)
		return;
	d = opendir(dir);
	if (d) {
		while ((e = readdir(d))) {
			char p[4096];

			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(dir);
	free(dir);
}

static int verify_with(X509 *root, X509 *leaf, STACK_OF(X509) *untrusted)
{
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok = 0;

	if (st && ctx && X509_STORE_add_cert(st, root) &&
	    X509_STORE_CTX_init(ctx, st, leaf, untrusted))
		ok = X509_verify_cert(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	ERR_clear_error();
	return ok;
}

static int count_uri_sans(X509 *x, char *first, size_t len)
{
	GENERAL_NAMES *g = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int n = 0, total;

	if (!g)
		return -1;
	total = sk_GENERAL_NAME_num(g);
	for (int i = 0; i < total; i++) {
		GENERAL_NAME *gn = sk_GENERAL_NAME_value(g, i);

		if (gn->type != GEN_URI)
			continue;
		if (n++ == 0)
			snprintf(first, len, "%.*s",
				 ASN1_STRING_length(gn->d.uniformResourceIdentifier),
				 (const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier));
	}
	GENERAL_NAMES_free(g);
	/* Any non-URI name would be a failure too: report it as extra. */
	return n == total ? n : -total;
}

/* --------------------------------------------------- handshake harness */

enum { ST_HS, ST_WRITE, ST_READ, ST_DONE, ST_FAILED };

struct side {
	SSL *ssl;
	int fd;
	bool client;
	int st;
	enum tls_io want;
	char reason[1024];
	char got[4];
	size_t ngot, nput;
};

static bool side_over(const struct side *s)
{
	return s->st == ST_DONE || s->st == ST_FAILED;
}

static void side_step(struct side *s)
{
	for (;;) {
		const char *msg = s->client ? "ping" : "pong";
		enum tls_io r;
		size_t n = 0;

		switch (s->st) {
		case ST_HS:
			r = tls_handshake(s->ssl);
			if (r == TLS_IO_OK) {
				s->st = s->client ? ST_WRITE : ST_READ;
				continue;
			}
			break;
		case ST_WRITE:
			r = tls_write(s->ssl, msg + s->nput, 4 - s->nput, &n);
			if (r == TLS_IO_OK) {
				s->nput += n;
				if (s->nput == 4)
					s->st = s->client ? ST_READ : ST_DONE;
				continue;
			}
			break;
		case ST_READ:
			r = tls_read(s->ssl, s->got + s->ngot, 4 - s->ngot, &n);
			if (r == TLS_IO_OK) {
				s->ngot += n;
				if (s->ngot == 4)
					s->st = s->client ? ST_DONE : ST_WRITE;
				continue;
			}
			break;
		default:
			return;
		}
		if (r == TLS_IO_WANT_READ || r == TLS_IO_WANT_WRITE) {
			s->want = r;
			return;
		}
		snprintf(s->reason, sizeof(s->reason), "%s",
			 r == TLS_IO_CLOSED ? "closed" : tls_error(s->ssl));
		s->st = ST_FAILED;
		/* Let the peer see EOF instead of waiting forever. */
		shutdown(s->fd, SHUT_RDWR);
		return;
	}
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs client and server to completion (handshake + ping/pong) or failure.
 * 0, or -ETIMEDOUT if nothing finished within 5 s. */
static int run_pair(struct side *c, struct side *s)
{
	int64_t deadline = mono_ms() + 5000;

	side_step(c);
	side_step(s);
	while (!side_over(c) || !side_over(s)) {
		struct side *sides[2] = { c, s };
		struct pollfd p[2];
		int n = 0;
		int64_t left = deadline - mono_ms();

		if (left <= 0)
			return -ETIMEDOUT;
		for (int i = 0; i < 2; i++) {
			if (side_over(sides[i]))
				continue;
			p[n].fd = sides[i]->fd;
			p[n].events = sides[i]->want == TLS_IO_WANT_WRITE ? POLLOUT : POLLIN;
			p[n].revents = 0;
			n++;
		}
		if (poll(p, (nfds_t)n, (int)left) < 0 && errno != EINTR)
			return -errno;
		for (int i = 0; i < 2; i++)
			if (!side_over(sides[i]))
				side_step(sides[i]);
	}
	return 0;
}

struct pair {
	struct side c, s;
	int fds[2];
};

/* Sets up client SSL (expecting `expect`, may be NULL) and server SSL. */
static int pair_new(struct pair *p, SSL_CTX *cctx, SSL_CTX *sctx, const char *expect)
{
	memset(p, 0, sizeof(*p));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p->fds))
		return -errno;
	p->c.fd = p->fds[0];
	p->s.fd = p->fds[1];
	p->c.client = true;
	if (tls_conn_new(cctx, p->c.fd, &p->c.ssl) || tls_conn_new(sctx, p->s.fd, &p->s.ssl))
		return -ENOMEM;
	if (expect && tls_client_expect_identity(p->c.ssl, expect))
		return -EINVAL;
	return 0;
}

static void pair_free(struct pair *p)
{
	SSL_free(p->c.ssl);
	SSL_free(p->s.ssl);
	close(p->fds[0]);
	close(p->fds[1]);
}

/* ------------------------------------------------------------------ tests */

static void test_spiffe_ids(void)
{
	char buf[SPIFFE_ID_MAX];
	struct spiffe_id id;

	T_ASSERT_INT(spiffe_id_format(buf, sizeof(buf), TD, "default", "bookinfo-ratings"), 0);
	T_ASSERT_STR(buf, "spiffe://cluster.local/ns/default/sa/bookinfo-ratings");
	T_ASSERT_INT(spiffe_id_parse(buf, &id), 0);
	T_ASSERT_STR(id.td, TD);
	T_ASSERT_STR(id.ns, "default");
	T_ASSERT_STR(id.sa, "bookinfo-ratings");
	T_ASSERT_INT(spiffe_id_format(buf, 10, TD, "a", "b"), -ENOSPC);
	T_ASSERT_INT(spiffe_id_format(buf, sizeof(buf), TD, "", "b"), -EINVAL);
	T_ASSERT_INT(spiffe_id_format(buf, sizeof(buf), TD, "a/b", "c"), -EINVAL);
	T_ASSERT_INT(spiffe_id_format(buf, sizeof(buf), "Upper.TD", "a", "c"), -EINVAL);
	T_ASSERT_INT(spiffe_id_format(buf, sizeof(buf), TD, "..", "c"), -EINVAL);
	T_ASSERT_INT(spiffe_id_parse("spiffe://td/ns/a/sa/b/c", NULL), -EINVAL);
	T_ASSERT_INT(spiffe_id_parse("spiffe://td/ns/a/xx/b", NULL), -EINVAL);
	T_ASSERT_INT(spiffe_id_parse("spiffe:///ns/a/sa/b", NULL), -EINVAL);
	T_ASSERT_INT(spiffe_id_parse("https://td/ns/a/sa/b", NULL), -EINVAL);
	T_ASSERT_INT(spiffe_id_parse("spiffe://td/ns/a/sa/", NULL), -EINVAL);
}

static void test_issue_leaf(void)
{
	struct mesh_ca *ca = NULL;
	struct ca_leaf *l1 = NULL, *l2 = NULL;
	char err[512] = "", uri[SPIFFE_ID_MAX] = "";
	const uint32_t life = 3600;
	time_t before = time(NULL);
	int days = -1, secs = -1, idx;
	char group[64] = "";
	BIGNUM *bn;
	char *hex;

	T_ASSERT_INT(ca_create_root("warren-test", "root", 30, &ca), 0);
	T_ASSERT_INT(ca_issue(ca, TD, "default", "web", life, &l1, err, sizeof(err)), 0);
	T_ASSERT_INT(ca_issue(ca, TD, "default", "web", life, &l2, err, sizeof(err)), 0);
	T_ASSERT_STR(l1->id, "spiffe://cluster.local/ns/default/sa/web");

	/* Exactly one SAN, a URI, with the SPIFFE ID; critical; empty subject. */
	T_ASSERT_INT(count_uri_sans(l1->cert, uri, sizeof(uri)), 1);
	T_ASSERT_STR(uri, "spiffe://cluster.local/ns/default/sa/web");
	idx = X509_get_ext_by_NID(l1->cert, NID_subject_alt_name, -1);
	T_ASSERT(idx >= 0);
	T_ASSERT_INT(X509_EXTENSION_get_critical(X509_get_ext(l1->cert, idx)), 1);
	T_ASSERT_INT(X509_NAME_entry_count(X509_get_subject_name(l1->cert)), 0);
	T_ASSERT_INT(X509_get_version(l1->cert), X509_VERSION_3);

	/* Key: EC P-256, the one in the cert. */
	T_ASSERT_INT(EVP_PKEY_get_base_id(l1->key), EVP_PKEY_EC);
	T_ASSERT(EVP_PKEY_get_group_name(l1->key, group, sizeof(group), NULL) == 1);
	T_ASSERT_STR(group, "prime256v1");
	T_ASSERT_INT(X509_check_private_key(l1->cert, l1->key), 1);
	T_ASSERT(EVP_PKEY_eq(l1->key, l2->key) != 1); /* a new key per issuance */

	/* Usages: leaf, digitalSignature (an EC key: no keyEncipherment), serverAuth+clientAuth. */
	T_ASSERT_INT(X509_check_ca(l1->cert), 0);
	T_ASSERT_INT(X509_get_key_usage(l1->cert), KU_DIGITAL_SIGNATURE);
	T_ASSERT_INT(X509_get_extended_key_usage(l1->cert), XKU_SSL_SERVER | XKU_SSL_CLIENT);
	T_ASSERT_INT(X509_get_signature_nid(l1->cert), NID_ecdsa_with_SHA256);

	/* Lifetime: notBefore backdated 60 s, notAfter = issuance + lifetime. */
	T_ASSERT(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(l1->cert),
				X509_get0_notAfter(l1->cert)) == 1);
	T_ASSERT_INT((long)days * 86400 + secs, life + CA_BACKDATE_S);
	T_ASSERT(l1->not_before >= before - CA_BACKDATE_S && l1->not_before <= time(NULL));
	T_ASSERT_INT(l1->not_after - l1->not_before, life + CA_BACKDATE_S);
	T_ASSERT(X509_cmp_time(X509_get0_notBefore(l1->cert), NULL) < 0);
	T_ASSERT(X509_cmp_time(X509_get0_notAfter(l1->cert), NULL) > 0);

	/* Signed by the CA, and verifies with an X509_STORE holding the root. */
	T_ASSERT_INT(X509_verify(l1->cert, X509_get0_pubkey(ca_cert0(ca))), 1);
	T_ASSERT_INT(verify_with(ca_root0(ca), l1->cert, l1->chain), 1);
	T_ASSERT_INT(sk_X509_num(l1->chain), 1);
	T_ASSERT_INT(X509_cmp(sk_X509_value(l1->chain, 0), ca_root0(ca)), 0);

	/* Serial: positive, non-zero, different each time, = serial_hex. */
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(l1->cert), NULL);
	T_ASSERT(bn && !BN_is_zero(bn) && !BN_is_negative(bn));
	hex = BN_bn2hex(bn);
	T_ASSERT(hex && strcasecmp(hex, l1->serial_hex) == 0);
	OPENSSL_free(hex);
	BN_free(bn);
	T_ASSERT(ASN1_INTEGER_cmp(X509_get0_serialNumber(l1->cert),
				  X509_get0_serialNumber(l2->cert)) != 0);
	T_ASSERT(strcmp(l1->serial_hex, l2->serial_hex) != 0);

	ca_leaf_free(l1);
	ca_leaf_free(l2);
	ca_free(ca);
}

static void test_issue_rejects_bad_input(void)
{
	struct mesh_ca *ca = NULL;
	struct ca_leaf *l = NULL;
	char err[512] = "";

	T_ASSERT_INT(ca_create_root(NULL, "root", 1, &ca), 0);
	T_ASSERT_INT(ca_issue(ca, TD, "default", "web", 30, &l, err, sizeof(err)), -EINVAL);
	T_ASSERT(l == NULL && strstr(err, "lifetime"));
	T_ASSERT_INT(ca_issue(ca, TD, "bad/ns", "web", 0, &l, err, sizeof(err)), -EINVAL);
	T_ASSERT(l == NULL && strstr(err, "invalid identity"));
	/* 0 = the default 24 h. */
	T_ASSERT_INT(ca_issue(ca, TD, "ns", "sa", 0, &l, err, sizeof(err)), 0);
	T_ASSERT_INT(l->not_after - l->not_before, CA_DEFAULT_LIFETIME_S + CA_BACKDATE_S);
	ca_leaf_free(l);
	ca_free(ca);
}

static void test_intermediate_chain(void)
{
	struct mesh_ca *root = NULL, *inter = NULL;
	struct ca_leaf *l = NULL;
	char err[512] = "";

	T_ASSERT_INT(ca_create_root("warren-test", "root", 30, &root), 0);
	T_ASSERT_INT(ca_create_intermediate(root, "intermediate", 10, &inter), 0);
	T_ASSERT(X509_check_ca(ca_cert0(inter)) != 0);
	T_ASSERT_INT(X509_cmp(ca_root0(inter), ca_root0(root)), 0);
	T_ASSERT_INT(ca_issue(inter, TD, "ns", "sa", 0, &l, err, sizeof(err)), 0);
	/* chain = intermediate, root */
	T_ASSERT_INT(sk_X509_num(l->chain), 2);
	T_ASSERT_INT(X509_cmp(sk_X509_value(l->chain, 0), ca_cert0(inter)), 0);
	T_ASSERT_INT(X509_cmp(sk_X509_value(l->chain, 1), ca_cert0(root)), 0);
	T_ASSERT_INT(X509_verify(l->cert, X509_get0_pubkey(ca_cert0(inter))), 1);
	T_ASSERT_INT(verify_with(ca_root0(root), l->cert, l->chain), 1);
	/* Without the intermediate the leaf does not reach the root. */
	T_ASSERT_INT(verify_with(ca_root0(root), l->cert, NULL), 0);
	ca_leaf_free(l);
	ca_free(inter);
	ca_free(root);
}

static void test_save_load_roundtrip(void)
{
	struct mesh_ca *root = NULL, *inter = NULL, *a = NULL, *b = NULL;
	struct ca_leaf *l = NULL;
	char *d1 = mk_tmpdir(), *d2 = mk_tmpdir();
	char err[512] = "";

	T_ASSERT(d1 && d2);
	T_ASSERT_INT(ca_create_root("warren-test", "root", 30, &root), 0);
	T_ASSERT_INT(ca_create_intermediate(root, "intermediate", 10, &inter), 0);
	T_ASSERT_INT(ca_save(root, d1), 0);
	T_ASSERT_INT(ca_save(inter, d2), 0);

	T_ASSERT_INT(ca_load_dir(d1, &a, err, sizeof(err)), 0);
	T_ASSERT_INT(X509_cmp(ca_root0(a), ca_root0(root)), 0);
	T_ASSERT_INT(sk_X509_num(ca_chain0(a)), 0);
	T_ASSERT_INT(ca_issue(a, TD, "ns", "sa", 0, &l, err, sizeof(err)), 0);
	T_ASSERT_INT(verify_with(ca_root0(root), l->cert, l->chain), 1);
	ca_leaf_free(l);
	l = NULL;

	T_ASSERT_INT(ca_load_dir(d2, &b, err, sizeof(err)), 0);
	T_ASSERT_INT(X509_cmp(ca_root0(b), ca_root0(root)), 0);
	T_ASSERT_INT(X509_cmp(ca_cert0(b), ca_cert0(inter)), 0);
	T_ASSERT_INT(sk_X509_num(ca_chain0(b)), 1);
	T_ASSERT_INT(ca_issue(b, TD, "ns", "sa", 0, &l, err, sizeof(err)), 0);
	T_ASSERT_INT(verify_with(ca_root0(root), l->cert, l->chain), 1);
	ca_leaf_free(l);
	ca_free(a);
	ca_free(b);
	ca_free(inter);
	ca_free(root);
	rm_tmpdir(d1);
	rm_tmpdir(d2);
}

static void test_load_rejects_bad_material(void)
{
	struct mesh_ca *c1 = NULL, *c2 = NULL, *got = (struct mesh_ca *)&got;
	struct ca_leaf *l = NULL;
	char *d1 = mk_tmpdir(), *d2 = mk_tmpdir();
	char err[512] = "", cert[4096], key[4096], other[4096];
	FILE *f;

	T_ASSERT(d1 && d2);
	T_ASSERT_INT(ca_create_root("warren-test", "one", 30, &c1), 0);
	T_ASSERT_INT(ca_create_root("warren-test", "two", 30, &c2), 0);
	T_ASSERT_INT(ca_save(c1, d1), 0);
	T_ASSERT_INT(ca_save(c2, d2), 0);
	snprintf(cert, sizeof(cert), "%s/root-cert.pem", d1);
	snprintf(key, sizeof(key), "%s/root-key.pem", d2);

	/* A key that does not match the CA certificate. */
	T_ASSERT_INT(ca_load(cert, key, NULL, &got, err, sizeof(err)), -EINVAL);
	T_ASSERT(got == NULL);
	printf("# %s\n", err);
	T_ASSERT(strstr(err, "does not match CA certificate") != NULL);

	/* A missing file. */
	snprintf(other, sizeof(other), "%s/nope.pem", d1);
	T_ASSERT_INT(ca_load(other, key, NULL, &got, err, sizeof(err)), -ENOENT);
	T_ASSERT(strstr(err, "nope.pem") != NULL);

	/* A workload certificate is not a CA. */
	T_ASSERT_INT(ca_issue(c1, TD, "ns", "sa", 0, &l, err, sizeof(err)), 0);
	snprintf(cert, sizeof(cert), "%s/leaf.pem", d1);
	snprintf(key, sizeof(key), "%s/leaf-key.pem", d1);
	f = fopen(cert, "w");
	T_ASSERT(f && PEM_write_X509(f, l->cert));
	fclose(f);
	f = fopen(key, "w");
	T_ASSERT(f && PEM_write_PrivateKey(f, l->key, NULL, NULL, 0, NULL, NULL));
	fclose(f);
	/* A key others can read is refused before anything else. */
	T_ASSERT_INT(chmod(key, 0644), 0);
	T_ASSERT_INT(ca_load(cert, key, NULL, &got, err, sizeof(err)), -EACCES);
	printf("# %s\n", err);
	T_ASSERT(strstr(err, "mode 0644") != NULL);
	T_ASSERT_INT(chmod(key, 0604), 0);
	T_ASSERT_INT(ca_load(cert, key, NULL, &got, err, sizeof(err)), -EACCES);
	T_ASSERT_INT(chmod(key, 0660), 0);
	T_ASSERT_INT(ca_load(cert, key, NULL, &got, err, sizeof(err)), -EACCES);
	T_ASSERT_INT(chmod(key, 0440), 0); /* a Secret volume with fsGroup */
	T_ASSERT_INT(ca_load(cert, key, NULL, &got, err, sizeof(err)), -EINVAL);
	printf("# %s\n", err);
	T_ASSERT(strstr(err, "not a CA certificate") != NULL);

	/* Garbage. */
	f = fopen(cert, "w");
	T_ASSERT(f);
	fputs("not a certificate\n", f);
	fclose(f);
	T_ASSERT_INT(ca_load(cert, key, NULL, &got, err, sizeof(err)), -EINVAL);
	T_ASSERT(strstr(err, "no PEM certificate") != NULL);

	ca_leaf_free(l);
	ca_free(c1);
	ca_free(c2);
	rm_tmpdir(d1);
	rm_tmpdir(d2);
}

static const char *gen_ca_path(void)
{
	static char p[1024];
	const char *b = getenv("WARREN_BUILD");

	if (access("hack/gen-ca.sh", X_OK) == 0)
		return "hack/gen-ca.sh";
	if (b && snprintf(p, sizeof(p), "%s/../hack/gen-ca.sh", b) < (int)sizeof(p) &&
	    access(p, X_OK) == 0)
		return p;
	return NULL;
}

static void test_gen_ca_sh(void)
{
	struct mesh_ca *a = NULL, *b = NULL;
	struct ca_leaf *l = NULL;
	const char *script = gen_ca_path();
	char *d = NULL, cmd[16384], err[512] = "", dir[4096];

	if (system("command -v openssl >/dev/null 2>&1") != 0) {
		printf("# SKIP openssl CLI not installed\n");
		return;
	}
	T_ASSERT(script != NULL); /* run from the source tree or with WARREN_BUILD */
	d = mk_tmpdir();
	T_ASSERT(d);
	snprintf(cmd, sizeof(cmd), "'%s' '%s/root' 2>/dev/null && '%s' '%s/inter' --intermediate "
		 "--trust-domain example.org 2>/dev/null", script, d, script, d);
	T_ASSERT_INT(system(cmd), 0);
	/* Running again keeps the CA and succeeds. */
	T_ASSERT_INT(system(cmd), 0);

	snprintf(dir, sizeof(dir), "%s/root", d);
	T_ASSERT_INT(ca_load_dir(dir, &a, err, sizeof(err)), 0);
	T_ASSERT_INT(ca_issue(a, TD, "ns", "sa", 0, &l, err, sizeof(err)), 0);
	T_ASSERT_INT(verify_with(ca_root0(a), l->cert, l->chain), 1);
	ca_leaf_free(l);
	l = NULL;

	snprintf(dir, sizeof(dir), "%s/inter", d);
	T_ASSERT_INT(ca_load_dir(dir, &b, err, sizeof(err)), 0);
	T_ASSERT_INT(sk_X509_num(ca_chain0(b)), 1);
	T_ASSERT_INT(ca_issue(b, "example.org", "ns", "sa", 0, &l, err, sizeof(err)), 0);
	T_ASSERT_INT(verify_with(ca_root0(b), l->cert, l->chain), 1);
	T_ASSERT_INT(verify_with(ca_root0(b), l->cert, NULL), 0);
	ca_leaf_free(l);
	ca_free(a);
	ca_free(b);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s/root' '%s/inter'", d, d);
	T_ASSERT_INT(system(cmd), 0);
	rm_tmpdir(d);
}

static void test_refcount(void)
{
	struct mesh_ca *ca = NULL;
	struct identity_mgr *mgr = NULL;
	struct identity *i1 = NULL, *i2 = NULL, *other = NULL;
	char err[512] = "";

	T_ASSERT_INT(ca_create_root("warren-test", "root", 30, &ca), 0);
	T_ASSERT_INT(identity_mgr_new(ca, TD, 0, &mgr), 0);
	T_ASSERT_INT(identity_acquire(mgr, "shop", "cart", &i1, err, sizeof(err)), 0);
	T_ASSERT_INT(identity_acquire(mgr, "shop", "cart", &i2, err, sizeof(err)), 0);
	T_ASSERT(i1 == i2);
	T_ASSERT_INT(identity_refs(i1), 2);
	T_ASSERT_INT(identity_count(mgr), 1);
	T_ASSERT_STR(identity_id(i1), "spiffe://cluster.local/ns/shop/sa/cart");
	T_ASSERT(identity_ctx0(i1, TLS_CLIENT) && identity_ctx0(i1, TLS_SERVER));
	T_ASSERT(identity_ctx0(i1, TLS_CLIENT) != identity_ctx0(i1, TLS_SERVER));

	T_ASSERT_INT(identity_acquire(mgr, "shop", "db", &other, err, sizeof(err)), 0);
	T_ASSERT(other != i1);
	T_ASSERT_INT(identity_count(mgr), 2);
	T_ASSERT_INT(identity_acquire(mgr, "shop", "bad/sa", NULL, err, sizeof(err)), -EINVAL);

	T_ASSERT_INT(identity_release(mgr, "shop", "cart"), 0);
	T_ASSERT(identity_find(mgr, "shop", "cart") == i1);
	T_ASSERT_INT(identity_refs(i1), 1);
	T_ASSERT_INT(identity_release(mgr, "shop", "cart"), 0);
	T_ASSERT(identity_find(mgr, "shop", "cart") == NULL);
	T_ASSERT_INT(identity_count(mgr), 1);
	T_ASSERT_INT(identity_release(mgr, "shop", "cart"), -ENOENT);
	T_ASSERT(identity_find(mgr, "shop", "db") == other);

	identity_mgr_free(mgr); /* frees "db" although still referenced */
	ca_free(ca);
}

/* Handshake between two identities; fills peer ids. */
static void test_mtls_ok(void)
{
	struct mesh_ca *ca = NULL;
	struct identity_mgr *mgr = NULL;
	struct identity *a = NULL, *b = NULL;
	struct pair p;
	char err[512] = "", id[SPIFFE_ID_MAX];
	const unsigned char *alpn = NULL;
	unsigned alen = 0;

	T_ASSERT_INT(ca_create_root("warren-test", "root", 30, &ca), 0);
	T_ASSERT_INT(identity_mgr_new(ca, TD, 0, &mgr), 0);
	T_ASSERT_INT(identity_acquire(mgr, "ns-a", "x", &a, err, sizeof(err)), 0);
	T_ASSERT_INT(identity_acquire(mgr, "ns-b", "y", &b, err, sizeof(err)), 0);
	T_ASSERT_INT(pair_new(&p, identity_ctx0(a, TLS_CLIENT), identity_ctx0(b, TLS_SERVER),
			      identity_id(b)), 0);
	T_ASSERT_INT(run_pair(&p.c, &p.s), 0);
	printf("# client: %s / server: %s\n", p.c.reason, p.s.reason);
	T_ASSERT_INT(p.c.st, ST_DONE);
	T_ASSERT_INT(p.s.st, ST_DONE);
	T_ASSERT(!memcmp(p.s.got, "ping", 4) && !memcmp(p.c.got, "pong", 4));

	T_ASSERT_INT(SSL_version(p.c.ssl), TLS1_3_VERSION);
	T_ASSERT_INT(SSL_version(p.s.ssl), TLS1_3_VERSION);
	SSL_get0_alpn_selected(p.c.ssl, &alpn, &alen);
	T_ASSERT(alen == 2 && !memcmp(alpn, "h2", 2));
	SSL_get0_alpn_selected(p.s.ssl, &alpn, &alen);
	T_ASSERT(alen == 2 && !memcmp(alpn, "h2", 2));
	T_ASSERT(SSL_get_servername(p.s.ssl, TLSEXT_NAMETYPE_host_name) == NULL); /* no SNI */
	T_ASSERT_INT(SSL_session_reused(p.c.ssl), 0);

	T_ASSERT_INT(tls_peer_identity(p.c.ssl, id, sizeof(id)), 0);
	T_ASSERT_STR(id, "spiffe://cluster.local/ns/ns-b/sa/y");
	T_ASSERT_INT(tls_peer_identity(p.s.ssl, id, sizeof(id)), 0);
	T_ASSERT_STR(id, "spiffe://cluster.local/ns/ns-a/sa/x");
	T_ASSERT_INT(tls_peer_identity(p.s.ssl, id, 8), -ENOSPC);
	T_ASSERT_STR(tls_error(p.c.ssl), "");
	pair_free(&p);

	/* An intermediate-CA mesh: the leaf presents its intermediate. */
	identity_mgr_free(mgr);
	mgr = NULL;
	{
		struct mesh_ca *inter = NULL;

		T_ASSERT_INT(ca_create_intermediate(ca, "inter", 10, &inter), 0);
		T_ASSERT_INT(identity_mgr_new(inter, TD, 0, &mgr), 0);
		T_ASSERT_INT(identity_acquire(mgr, "ns-a", "x", &a, err, sizeof(err)), 0);
		T_ASSERT_INT(identity_acquire(mgr, "ns-b", "y", &b, err, sizeof(err)), 0);
		T_ASSERT_INT(pair_new(&p, identity_ctx0(a, TLS_CLIENT),
				      identity_ctx0(b, TLS_SERVER), identity_id(b)), 0);
		T_ASSERT_INT(run_pair(&p.c, &p.s), 0);
		printf("# intermediate: client: %s / server: %s\n", p.c.reason, p.s.reason);
		T_ASSERT_INT(p.c.st, ST_DONE);
		T_ASSERT_INT(p.s.st, ST_DONE);
		/* The server got leaf + intermediate (not the root). */
		T_ASSERT_INT(sk_X509_num(SSL_get_peer_cert_chain(p.c.ssl)), 2);
		pair_free(&p);
		identity_mgr_free(mgr);
		ca_free(inter);
	}
	ca_free(ca);
}

/* Builds a client or server ctx for (td, ns, sa) from ca; the leaf is freed
 * right away (the context holds its own references). */
static SSL_CTX *ctx_for(enum tls_role role, struct mesh_ca *ca, const char *td, const char *ns,
			const char *sa, X509 *trust)
{
	struct ca_leaf *l = NULL;
	SSL_CTX *ctx = NULL;
	char err[512];

	if (ca_issue(ca, td, ns, sa, 0, &l, err, sizeof(err)))
		return NULL;
	if (tls_ctx_new(role, l, trust, &ctx, err, sizeof(err)))
		ctx = NULL;
	ca_leaf_free(l);
	return ctx;
}

#define SERVER_ID "spiffe://cluster.local/ns/b/sa/y"

/* Runs one failing handshake and checks both sides failed, the given side
 * with a reason containing want. */
static int expect_failure(SSL_CTX *cctx, SSL_CTX *sctx, const char *expect, bool server_side,
			  const char *want)
{
	struct pair p;
	int ok;

	if (!cctx || !sctx || pair_new(&p, cctx, sctx, expect))
		return 0;
	ok = run_pair(&p.c, &p.s) == 0;
	printf("# client: [%s] server: [%s]\n", p.c.reason, p.s.reason);
	ok = ok && p.c.st == ST_FAILED && p.s.st == ST_FAILED &&
	     strstr(server_side ? p.s.reason : p.c.reason, want) != NULL;
	pair_free(&p);
	return ok;
}

static void test_reject_client_from_other_ca(void)
{
	struct mesh_ca *ca = NULL, *evil = NULL;
	SSL_CTX *c = NULL, *s = NULL;

	T_ASSERT_INT(ca_create_root("warren-test", "root", 30, &ca), 0);
	T_ASSERT_INT(ca_create_root("warren-test", "root", 30, &evil), 0); /* same name! */
	/* The client trusts the mesh root (so it accepts the server) but its own
	 * certificate comes from the other CA. */
	c = ctx_for(TLS_CLIENT, evil, TD, "a", "x", ca_root0(ca));
	s = ctx_for(TLS_SERVER, ca, TD, "b", "y", ca_root0(ca));
	T_ASSERT(expect_failure(c, s, SERVER_ID, true,
				"peer certificate not signed by the mesh CA"));
	SSL_CTX_free(c);
	SSL_CTX_free(s);
	/* And the other way round: a server from another CA. */
	c = ctx_for(TLS_CLIENT, ca, TD, "a", "x", ca_root0(ca));
	s = ctx_for(TLS_SERVER, evil, TD, "b", "y", ca_root0(ca));
	T_ASSERT(expect_failure(c, s, SERVER_ID, false,
				"peer certificate not signed by the mesh CA"));
	SSL_CTX_free(c);
	SSL_CTX_free(s);
	ca_free(ca);
	ca_free(evil);
}

static void test_reject_no_client_cert(void)
{
	struct mesh_ca *ca = NULL;
	SSL_CTX *c = NULL, *s = NULL;
	char err[512];

	T_ASSERT_INT(ca_create_root("warren-test", "root", 30, &ca), 0);
	T_ASSERT_INT(tls_ctx_new(TLS_CLIENT, NULL, ca_root0(ca), &c, err, sizeof(err)), 0);
	s = ctx_for(TLS_SERVER, ca, TD, "b", "y", ca_root0(ca));
	T_ASSERT(expect_failure(c, s, SERVER_ID, true, "no client certificate"));
	SSL_CTX_free(c);
	SSL_CTX_free(s);
	ca_free(ca);
}

static void test_reject_other_trust_domain(void)
{
	struct mesh_ca *ca = NULL;
	SSL_CTX *c = NULL, *s = NULL;

	T_ASSERT_INT(ca_create_root("warren-test", "root", 30, &ca), 0);
	c = ctx_for(TLS_CLIENT, ca, "other.td", "a", "x", ca_root0(ca));
	s = ctx_for(TLS_SERVER, ca, TD, "b", "y", ca_root0(ca));
	T_ASSERT(expect_failure(c, s, SERVER_ID, true,
				"peer identity spiffe://other.td/ns/a/sa/x not in trust domain "
				"cluster.local"));
	SSL_CTX_free(c);
	SSL_CTX_free(s);
	ca_free(ca);
}

static void test_reject_wrong_server_identity(void)
{
	struct mesh_ca *ca = NULL;
	SSL_CTX *c = NULL, *s = NULL;
	struct pair p;

	T_ASSERT_INT(ca_create_root("warren-test", "root", 30, &ca), 0);
	c = ctx_for(TLS_CLIENT, ca, TD, "a", "x", ca_root0(ca));
	s = ctx_for(TLS_SERVER, ca, TD, "b", "y", ca_root0(ca));
	T_ASSERT(expect_failure(c, s, "spiffe://cluster.local/ns/b/sa/x", false,
				"expected spiffe://cluster.local/ns/b/sa/x but peer presented "
				"spiffe://cluster.local/ns/b/sa/y"));
	/* No expected identity at all: fail closed. */
	T_ASSERT(expect_failure(c, s, NULL, false, "no expected server identity"));
	/* One of several expected identities is enough (service SANs). */
	T_ASSERT_INT(pair_new(&p, c, s, "spiffe://cluster.local/ns/b/sa/x"), 0);
	T_ASSERT_INT(tls_client_expect_identity(p.c.ssl, SERVER_ID), 0);
	T_ASSERT_INT(tls_client_expect_identity(p.c.ssl, "not-spiffe"), -EINVAL);
	T_ASSERT_INT(run_pair(&p.c, &p.s), 0);
	T_ASSERT_INT(p.c.st, ST_DONE);
	pair_free(&p);
	SSL_CTX_free(c);
	SSL_CTX_free(s);
	ca_free(ca);
}

/* A leaf of ca for (td, ns, sa) with extra_uri as a second URI SAN,
 * re-signed with the CA's key (read back from ca_save's files), so only the
 * SAN count is wrong. */
static SSL_CTX *ctx_two_uris(enum tls_role role, struct mesh_ca *ca, const char *ns,
			     const char *sa, const char *extra_uri)
{
	char *dir = mk_tmpdir(), path[512], err[512];
	struct ca_leaf *l = NULL;
	GENERAL_NAMES *gens = NULL;
	GENERAL_NAME *gn = NULL;
	ASN1_IA5STRING *ia5 = NULL;
	EVP_PKEY *cakey = NULL;
	SSL_CTX *ctx = NULL;
	FILE *f = NULL;
	int nuri = 0;

	if (!dir || ca_save(ca, dir) || ca_issue(ca, TD, ns, sa, 0, &l, err, sizeof(err)))
		goto out;
	snprintf(path, sizeof(path), "%s/root-key.pem", dir);
	f = fopen(path, "r");
	cakey = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	gens = X509_get_ext_d2i(l->cert, NID_subject_alt_name, NULL, NULL);
	gn = GENERAL_NAME_new();
	ia5 = ASN1_IA5STRING_new();
	if (!cakey || !gens || !gn || !ia5 || !ASN1_STRING_set(ia5, extra_uri, -1))
		goto out;
	GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
	ia5 = NULL;
	if (!sk_GENERAL_NAME_push(gens, gn))
		goto out;
	gn = NULL;
	if (X509_add1_ext_i2d(l->cert, NID_subject_alt_name, gens, 1, X509V3_ADD_REPLACE) != 1 ||
	    !X509_sign(l->cert, cakey, EVP_sha256()))
		goto out;
	if (spiffe_id_from_cert(l->cert, path, sizeof(path), &nuri) || nuri != 2)
		goto out; /* the certificate is what the test means */
	if (tls_ctx_new(role, l, ca_root0(ca), &ctx, err, sizeof(err)))
		ctx = NULL;
out:
	if (f)
		fclose(f);
	EVP_PKEY_free(cakey);
	GENERAL_NAMES_free(gens);
	GENERAL_NAME_free(gn);
	ASN1_IA5STRING_free(ia5);
	ca_leaf_free(l);
	if (dir)
		rm_tmpdir(dir);
	return ctx;
}

/* SPIFFE: an X.509 SVID has exactly one URI SAN. A peer with two is refused
 * on both sides, even when its first is the identity expected. */
static void test_reject_two_uri_sans(void)
{
	struct mesh_ca *ca = NULL;
	SSL_CTX *c = NULL, *s = NULL;

	T_ASSERT_INT(ca_create_root("warren-test", "root", 30, &ca), 0);
	c = ctx_two_uris(TLS_CLIENT, ca, "a", "x", "spiffe://cluster.local/ns/b/sa/y");
	s = ctx_for(TLS_SERVER, ca, TD, "b", "y", ca_root0(ca));
	T_ASSERT(c && s);
	T_ASSERT(expect_failure(c, s, SERVER_ID, true, "has 2 URI SANs"));
	SSL_CTX_free(c);
	SSL_CTX_free(s);
	c = ctx_for(TLS_CLIENT, ca, TD, "a", "x", ca_root0(ca));
	s = ctx_two_uris(TLS_SERVER, ca, "b", "y", "spiffe://cluster.local/ns/a/sa/x");
	T_ASSERT(c && s);
	T_ASSERT(expect_failure(c, s, SERVER_ID, false, "has 2 URI SANs"));
	SSL_CTX_free(c);
	SSL_CTX_free(s);
	ca_free(ca);
}

static void test_reject_tls12_and_no_alpn(void)
{
	struct mesh_ca *ca = NULL;
	struct ca_leaf *l = NULL;
	SSL_CTX *c12 = NULL, *c13 = NULL, *s = NULL;
	char err[512];

	T_ASSERT_INT(ca_create_root("warren-test", "root", 30, &ca), 0);
	T_ASSERT_INT(ca_issue(ca, TD, "a", "x", 0, &l, err, sizeof(err)), 0);
	s = ctx_for(TLS_SERVER, ca, TD, "b", "y", ca_root0(ca));
	T_ASSERT(s);

	/* A plain OpenSSL client limited to TLS 1.2, with a valid mesh cert. */
	c12 = SSL_CTX_new(TLS_client_method());
	T_ASSERT(c12);
	T_ASSERT(SSL_CTX_set_max_proto_version(c12, TLS1_2_VERSION) == 1);
	T_ASSERT(SSL_CTX_use_certificate(c12, l->cert) == 1);
	T_ASSERT(SSL_CTX_use_PrivateKey(c12, l->key) == 1);
	T_ASSERT(SSL_CTX_set_alpn_protos(c12, (const unsigned char *)"\x02h2", 3) == 0);
	T_ASSERT(expect_failure(c12, s, SERVER_ID, true, "peer does not support TLS 1.3"));

	/* TLS 1.3 but no ALPN offered. */
	c13 = SSL_CTX_new(TLS_client_method());
	T_ASSERT(c13);
	T_ASSERT(SSL_CTX_use_certificate(c13, l->cert) == 1);
	T_ASSERT(SSL_CTX_use_PrivateKey(c13, l->key) == 1);
	T_ASSERT(X509_STORE_add_cert(SSL_CTX_get_cert_store(c13), ca_root0(ca)) == 1);
	T_ASSERT(expect_failure(c13, s, SERVER_ID, true, "client did not offer ALPN h2"));

	SSL_CTX_free(c12);
	SSL_CTX_free(c13);
	SSL_CTX_free(s);
	ca_leaf_free(l);
	ca_free(ca);
}

static void test_renewal_swaps_contexts(void)
{
	struct mesh_ca *ca = NULL;
	struct identity_mgr *mgr = NULL;
	struct identity *a = NULL, *b = NULL;
	struct identity_info info[4];
	SSL_CTX *old_sctx, *held;
	char old_serial[80], err[512] = "", id[SPIFFE_ID_MAX];
	const uint32_t life = 600;
	time_t now = time(NULL);
	int64_t next;
	struct pair p;

	T_ASSERT_INT(ca_create_root("warren-test", "root", 30, &ca), 0);
	T_ASSERT_INT(identity_mgr_new(ca, TD, life, &mgr), 0);
	T_ASSERT_INT(identity_next_renewal_ms(mgr), -1);
	T_ASSERT_INT(identity_acquire(mgr, "ns-a", "x", &a, err, sizeof(err)), 0);
	T_ASSERT_INT(identity_acquire(mgr, "ns-b", "y", &b, err, sizeof(err)), 0);

	/* Half-life: not_before + (life + 60) / 2 = now - 60 + 330 = now + 270 s. */
	next = identity_next_renewal_ms(mgr);
	T_ASSERT(next > 0 && next <= 1000LL * ((life + CA_BACKDATE_S) / 2 - CA_BACKDATE_S));
	T_ASSERT(next >= 1000LL * ((life + CA_BACKDATE_S) / 2 - CA_BACKDATE_S - 5));
	T_ASSERT_INT(identity_snapshot(mgr, now, info, 4), 2);
	T_ASSERT_STR(info[1].id, "spiffe://cluster.local/ns/ns-b/sa/y");
	T_ASSERT_STR(info[1].serial_hex, identity_leaf0(b)->serial_hex);
	T_ASSERT_INT(info[1].not_after, identity_leaf0(b)->not_after);
	T_ASSERT(info[1].renew_in_s > 260 && info[1].renew_in_s <= 272);
	T_ASSERT_INT(info[1].refs, 1);

	/* A connection made before the renewal, plus an explicit reference. */
	old_sctx = identity_ctx0(b, TLS_SERVER);
	snprintf(old_serial, sizeof(old_serial), "%s", identity_leaf0(b)->serial_hex);
	T_ASSERT_INT(SSL_CTX_up_ref(old_sctx), 1);
	held = old_sctx;
	T_ASSERT_INT(pair_new(&p, identity_ctx0(a, TLS_CLIENT), old_sctx, identity_id(b)), 0);

	T_ASSERT_INT(identity_renew_due(mgr, now), 0); /* nothing due yet */
	T_ASSERT(identity_ctx0(b, TLS_SERVER) == old_sctx);
	T_ASSERT_INT(identity_renew_due(mgr, info[1].renew_at), 2);
	T_ASSERT(identity_ctx0(b, TLS_SERVER) != old_sctx);
	T_ASSERT(strcmp(identity_leaf0(b)->serial_hex, old_serial) != 0);
	T_ASSERT(identity_find(mgr, "ns-b", "y") == b); /* same handle */
	T_ASSERT_INT(identity_refs(b), 1);

	/* The SSLs made before the renewal (old contexts, whose only other
	 * owner is now the SSL) still complete a handshake. */
	T_ASSERT_INT(run_pair(&p.c, &p.s), 0);
	printf("# client: %s / server: %s\n", p.c.reason, p.s.reason);
	T_ASSERT_INT(p.c.st, ST_DONE);
	T_ASSERT_INT(p.s.st, ST_DONE);
	T_ASSERT_INT(tls_peer_identity(p.c.ssl, id, sizeof(id)), 0);
	T_ASSERT_STR(id, identity_id(b));
	{
		/* The server presented the OLD certificate. */
		X509 *pc = SSL_get0_peer_certificate(p.c.ssl);
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(pc), NULL);
		char *hex = BN_bn2hex(bn);

		T_ASSERT(hex && strcasecmp(hex, old_serial) == 0);
		OPENSSL_free(hex);
		BN_free(bn);
	}
	pair_free(&p);

	/* The held reference is still a working context after the SSLs are gone. */
	T_ASSERT_INT(pair_new(&p, identity_ctx0(a, TLS_CLIENT), held, identity_id(b)), 0);
	T_ASSERT_INT(run_pair(&p.c, &p.s), 0);
	T_ASSERT_INT(p.s.st, ST_DONE);
	pair_free(&p);
	SSL_CTX_free(held);

	/* And the new contexts work too. */
	T_ASSERT_INT(pair_new(&p, identity_ctx0(a, TLS_CLIENT), identity_ctx0(b, TLS_SERVER),
			      identity_id(b)), 0);
	T_ASSERT_INT(run_pair(&p.c, &p.s), 0);
	T_ASSERT_INT(p.c.st, ST_DONE);
	T_ASSERT_INT(p.s.st, ST_DONE);
	pair_free(&p);

	identity_mgr_free(mgr);
	ca_free(ca);
}

static void test_io_map(void)
{
	struct mesh_ca *ca = NULL;
	SSL_CTX *c = NULL;
	struct pair p;
	char buf[8];
	size_t n = 99;

	T_ASSERT_INT(ca_create_root("warren-test", "root", 30, &ca), 0);
	c = ctx_for(TLS_CLIENT, ca, TD, "a", "x", ca_root0(ca));
	T_ASSERT(c);
	T_ASSERT_INT(pair_new(&p, c, c, SERVER_ID), 0);
	/* Nothing to read yet: a non-blocking client wants to read after
	 * sending its ClientHello. */
	T_ASSERT_INT(tls_handshake(p.c.ssl), TLS_IO_WANT_READ);
	/* The peer speaks garbage: fatal with a reason. */
	T_ASSERT_INT(write(p.fds[1], "HTTP/1.1 400 Bad\r\n\r\n", 20), 20);
	T_ASSERT_INT(tls_handshake(p.c.ssl), TLS_IO_FATAL);
	printf("# %s\n", tls_error(p.c.ssl));
	T_ASSERT(tls_error(p.c.ssl)[0] != 0);
	pair_free(&p);

	/* EOF during the handshake. */
	T_ASSERT_INT(pair_new(&p, c, c, SERVER_ID), 0);
	T_ASSERT_INT(tls_handshake(p.c.ssl), TLS_IO_WANT_READ);
	shutdown(p.fds[1], SHUT_WR);
	T_ASSERT_INT(tls_read(p.c.ssl, buf, sizeof(buf), &n), TLS_IO_FATAL);
	T_ASSERT_INT(n, 0);
	printf("# %s\n", tls_error(p.c.ssl));
	T_ASSERT(strstr(tls_error(p.c.ssl), "closed") != NULL);
	pair_free(&p);
	T_ASSERT_STR(tls_io_name(TLS_IO_WANT_WRITE), "want-write");
	SSL_CTX_free(c);
	ca_free(ca);
}

/* Issuing isolates the workers only around what they may see change (the
 * certificate swapped in, the list), never around the crypto: a second
 * acquire of the same account (a reference) and a failed one (bad name)
 * isolate nothing; the last release isolates the unlink and free. */
struct issue_iso {
	struct identity_mgr *mgr;
	int enters, exits;
	bool held;
	bool nested;      /* entered while held: pairs must not nest here */
};

static void issue_iso_cb(void *ctx, bool enter)
{
	struct issue_iso *g = ctx;

	if (enter && g->held)
		g->nested = true;
	g->held = enter;
	if (enter)
		g->enters++;
	else
		g->exits++;
}

static void test_issue_isolates_only_changes(void)
{
	struct issue_iso g = { 0 };
	struct mesh_ca *ca = NULL;
	struct identity *id = NULL;
	char err[256];
	int e0;

	T_ASSERT_INT(ca_create_root("warren-test", "root", 30, &ca), 0);
	T_ASSERT_INT(identity_mgr_new(ca, TD, 0, &g.mgr), 0);
	identity_mgr_set_isolation(g.mgr, issue_iso_cb, &g);
	T_ASSERT_INT(identity_acquire(g.mgr, "shop", "cart", &id, err, sizeof(err)), 0);
	T_ASSERT_INT(g.enters, 2); /* the commit, then the list */
	e0 = g.enters;
	T_ASSERT_INT(identity_acquire(g.mgr, "shop", "cart", NULL, err, sizeof(err)), 0);
	T_ASSERT_INT(identity_acquire(g.mgr, "shop", "bad/sa", NULL, err, sizeof(err)), -EINVAL);
	T_ASSERT_INT(g.enters, e0);
	T_ASSERT_INT(identity_renew(g.mgr, id, time(NULL), err, sizeof(err)), 0);
	T_ASSERT_INT(g.enters, e0 + 1);
	T_ASSERT_INT(identity_release(g.mgr, "shop", "cart"), 0);
	T_ASSERT_INT(g.enters, e0 + 1);
	T_ASSERT_INT(identity_release(g.mgr, "shop", "cart"), 0);
	T_ASSERT_INT(g.enters, e0 + 2);
	T_ASSERT_INT(g.enters, g.exits);
	T_ASSERT(!g.held && !g.nested);
	T_ASSERT_INT(identity_count(g.mgr), 0);
	identity_mgr_free(g.mgr);
	ca_free(ca);
}

T_MAIN(T_CASE(test_spiffe_ids), T_CASE(test_issue_isolates_only_changes), T_CASE(test_issue_leaf), T_CASE(test_issue_rejects_bad_input),
       T_CASE(test_intermediate_chain), T_CASE(test_save_load_roundtrip),
       T_CASE(test_load_rejects_bad_material), T_CASE(test_gen_ca_sh), T_CASE(test_refcount),
       T_CASE(test_mtls_ok), T_CASE(test_reject_client_from_other_ca),
       T_CASE(test_reject_no_client_cert), T_CASE(test_reject_other_trust_domain),
       T_CASE(test_reject_wrong_server_identity), T_CASE(test_reject_two_uri_sans),
       T_CASE(test_reject_tls12_and_no_alpn),
       T_CASE(test_renewal_swaps_contexts), T_CASE(test_io_map))
