/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mesh CA: load/create CA material and issue workload certificates in
 * memory. Contract and ownership: tunnel/ca.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "conf/errbuf.h"
#include "tunnel/ca.h"

struct mesh_ca {
	X509 *cert;             /* signs leaves */
	EVP_PKEY *key;
	STACK_OF(X509) *chain;  /* issuers of cert, root last; empty if cert is the root */
	X509 *root;             /* own reference */
};

/* The most useful OpenSSL reason in the thread's queue; clears the queue. */
static const char *ca_ossl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();

	if (!e) {
		snprintf(buf, len, "unknown OpenSSL error");
	} else {
		const char *r = ERR_reason_error_string(e);

		if (r)
			snprintf(buf, len, "%s", r);
		else
			ERR_error_string_n(e, buf, len);
	}
	ERR_clear_error();
	return buf;
}

/* ---------------------------------------------------------------- SPIFFE */

static bool ca_td_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > SPIFFE_TD_MAX)
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		      c == '_'))
			return false;
	}
	return true;
}

static bool ca_seg_ok(const char *s, size_t n, size_t max)
{
	if (n == 0 || n > max)
		return false;
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return false;
	}
	return true;
}

int spiffe_id_format(char *buf, size_t len, const char *td, const char *ns, const char *sa)
{
	int n;

	if (!td || !ns || !sa || !ca_td_ok(td) || !ca_seg_ok(ns, strlen(ns), SPIFFE_NS_MAX) ||
	    !ca_seg_ok(sa, strlen(sa), SPIFFE_SA_MAX))
		return -EINVAL;
	n = snprintf(buf, len, "spiffe://%s/ns/%s/sa/%s", td, ns, sa);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return 0;
}

int spiffe_id_parse(const char *uri, struct spiffe_id *out)
{
	static const char scheme[] = "spiffe://";
	const char *p, *td, *ns, *sa, *slash;
	size_t tdn, nsn, san;

	if (!uri || strncmp(uri, scheme, sizeof(scheme) - 1))
		return -EINVAL;
	td = uri + sizeof(scheme) - 1;
	slash = strchr(td, '/');
	if (!slash)
		return -EINVAL;
	tdn = (size_t)(slash - td);
	p = slash;
	if (strncmp(p, "/ns/", 4))
		return -EINVAL;
	ns = p + 4;
	slash = strchr(ns, '/');
	if (!slash)
		return -EINVAL;
	nsn = (size_t)(slash - ns);
	p = slash;
	if (strncmp(p, "/sa/", 4))
		return -EINVAL;
	sa = p + 4;
	if (strchr(sa, '/'))
		return -EINVAL;
	san = strlen(sa);
	if (tdn == 0 || tdn > SPIFFE_TD_MAX || !ca_seg_ok(ns, nsn, SPIFFE_NS_MAX) ||
	    !ca_seg_ok(sa, san, SPIFFE_SA_MAX))
		return -EINVAL;
	for (size_t i = 0; i < tdn; i++) {
		char c = td[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		      c == '_'))
			return -EINVAL;
	}
	if (out) {
		memcpy(out->td, td, tdn);
		out->td[tdn] = 0;
		memcpy(out->ns, ns, nsn);
		out->ns[nsn] = 0;
		memcpy(out->sa, sa, san + 1);
	}
	return 0;
}

int spiffe_id_from_cert(const X509 *cert, char *buf, size_t len, int *nuri)
{
	GENERAL_NAMES *gens;
	int ret = -ENOENT, count = 0;

	if (nuri)
		*nuri = 0;
	if (!cert)
		return -ENOENT;
	/* Allocates a decoded copy: freed below. */
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	if (!gens) {
		ERR_clear_error();
		return -ENOENT;
	}
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
		char tmp[SPIFFE_ID_MAX];
		const unsigned char *d;
		int dn;

		if (gn->type != GEN_URI)
			continue;
		count++;
		if (ret == 0)
			continue;
		d = ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
		dn = ASN1_STRING_length(gn->d.uniformResourceIdentifier);
		/* An embedded NUL would let "spiffe://a\0evil" compare as "spiffe://a". */
		if (dn <= 0 || (size_t)dn >= sizeof(tmp) || memchr(d, 0, (size_t)dn))
			continue;
		memcpy(tmp, d, (size_t)dn);
		tmp[dn] = 0;
		if (spiffe_id_parse(tmp, NULL))
			continue;
		if ((size_t)dn >= len) {
			ret = -ENOSPC;
			break;
		}
		memcpy(buf, tmp, (size_t)dn + 1);
		ret = 0;
	}
	GENERAL_NAMES_free(gens);
	if (nuri)
		*nuri = count;
	return ret;
}

/* ------------------------------------------------------------ building */

static int ca_rand_serial(X509 *x)
{
	unsigned char b[16];
	BIGNUM *bn = NULL;
	int ret = -EIO;

	if (RAND_bytes(b, sizeof(b)) != 1)
		goto out;
	/* Positive (DER INTEGER) and never zero, at most 16 bytes (RFC 5280). */
	b[0] = (unsigned char)((b[0] & 0x7f) | 0x40);
	bn = BN_bin2bn(b, sizeof(b), NULL);
	/* BN_to_ASN1_INTEGER writes into the cert's own serial (no new object). */
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		goto out;
	ret = 0;
out:
	BN_free(bn);
	OPENSSL_cleanse(b, sizeof(b));
	return ret;
}

/* Adds one extension from OpenSSL's config syntax; X509_add_ext copies it. */
static int ca_add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!ext)
		return -EIO;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -EIO;
}

/* A certificate skeleton: v3, random serial, validity, issuer name,
 * subject (copied; NULL = empty) and public key. */
static X509 *ca_cert_skeleton(X509 *issuer, const X509_NAME *subject, EVP_PKEY *pub, time_t now,
			   long lifetime_s)
{
	X509 *x = X509_new();

	if (!x)
		return NULL;
	if (!X509_set_version(x, X509_VERSION_3) || ca_rand_serial(x) ||
	    !X509_time_adj_ex(X509_getm_notBefore(x), 0, -CA_BACKDATE_S, &now) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), 0, lifetime_s, &now) ||
	    (subject && !X509_set_subject_name(x, subject)) ||      /* copies */
	    !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer)
					    : X509_get_subject_name(x)) || /* copies */
	    !X509_set_pubkey(x, pub)) {                           /* copies the public part */
		X509_free(x);
		return NULL;
	}
	return x;
}

static EVP_PKEY *ca_new_p256(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static struct mesh_ca *ca_alloc(void)
{
	struct mesh_ca *ca = calloc(1, sizeof(*ca));

	if (!ca)
		return NULL;
	ca->chain = sk_X509_new_null();
	if (!ca->chain) {
		free(ca);
		return NULL;
	}
	return ca;
}

void ca_free(struct mesh_ca *ca)
{
	if (!ca)
		return;
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	sk_X509_pop_free(ca->chain, X509_free);
	X509_free(ca->root);
	free(ca);
}

X509 *ca_root0(const struct mesh_ca *ca) { return ca->root; }
X509 *ca_cert0(const struct mesh_ca *ca) { return ca->cert; }
EVP_PKEY *ca_key0(const struct mesh_ca *ca) { return ca->key; }
STACK_OF(X509) *ca_chain0(const struct mesh_ca *ca) { return ca->chain; }

static int ca_create_ca(const struct mesh_ca *parent, const char *org, const char *cn,
		     unsigned days, struct mesh_ca **out)
{
	struct mesh_ca *ca = NULL;
	X509_NAME *name = NULL;
	X509 *issuer = parent ? parent->cert : NULL;
	int ret = -EINVAL;

	*out = NULL;
	if (!cn || !*cn || days == 0 || days > 36500)
		goto out;
	ret = -ENOMEM;
	ca = ca_alloc();
	name = X509_NAME_new();
	if (!ca || !name)
		goto out;
	ret = -EIO;
	if ((org && *org &&
	     !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)org, -1,
					 -1, 0)) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
					-1, 0))
		goto out;
	ca->key = ca_new_p256();
	if (!ca->key)
		goto out;
	ca->cert = ca_cert_skeleton(issuer, name, ca->key, time(NULL), (long)days * 86400);
	if (!ca->cert)
		goto out;
	if (ca_add_ext(ca->cert, issuer, NID_basic_constraints,
		    parent ? "critical,CA:TRUE,pathlen:0" : "critical,CA:TRUE") ||
	    ca_add_ext(ca->cert, issuer, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") ||
	    ca_add_ext(ca->cert, issuer, NID_subject_key_identifier, "hash") ||
	    (parent && ca_add_ext(ca->cert, issuer, NID_authority_key_identifier, "keyid")))
		goto out;
	if (!X509_sign(ca->cert, parent ? parent->key : ca->key, EVP_sha256()))
		goto out;
	if (parent) {
		if (!X509_add_cert(ca->chain, parent->cert, X509_ADD_FLAG_UP_REF))
			goto out;
		for (int i = 0; i < sk_X509_num(parent->chain); i++)
			if (!X509_add_cert(ca->chain, sk_X509_value(parent->chain, i),
					   X509_ADD_FLAG_UP_REF))
				goto out;
		ca->root = parent->root;
	} else {
		ca->root = ca->cert;
	}
	X509_up_ref(ca->root);
	*out = ca;
	ca = NULL;
	ret = 0;
out:
	if (ret)
		ERR_clear_error();
	X509_NAME_free(name);
	ca_free(ca);
	return ret;
}

int ca_create_root(const char *org, const char *cn, unsigned days, struct mesh_ca **out)
{
	return ca_create_ca(NULL, org, cn, days, out);
}

int ca_create_intermediate(const struct mesh_ca *parent, const char *cn, unsigned days,
			   struct mesh_ca **out)
{
	if (!parent) {
		*out = NULL;
		return -EINVAL;
	}
	return ca_create_ca(parent, NULL, cn, days, out);
}

/* -------------------------------------------------------------- loading */

static int ca_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf; (void)size; (void)rwflag; (void)u;
	return -1; /* never prompt on a terminal: encrypted keys are an error */
}

static FILE *ca_open_pem(const char *path, const char *what, int *ret, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");

	if (!f) {
		*ret = -errno;
		errbuf_set(err, errlen, "cannot open %s %s: %s", what, path, strerror(errno));
	}
	return f;
}

static int ca_read_certs(const char *path, const char *what, STACK_OF(X509) *sk, char *err,
		      size_t errlen)
{
	FILE *f;
	X509 *x;
	int ret = 0;

	f = ca_open_pem(path, what, &ret, err, errlen);
	if (!f)
		return ret;
	while ((x = PEM_read_X509(f, NULL, ca_no_passphrase, NULL))) {
		if (!sk_X509_push(sk, x)) { /* push steals x on success */
			X509_free(x);
			ret = -ENOMEM;
			break;
		}
	}
	fclose(f);
	/* The loop ends on EOF ("no start line"): not an error if we got some. */
	ERR_clear_error();
	if (!ret && sk_X509_num(sk) == 0) {
		ret = -EINVAL;
		errbuf_set(err, errlen, "%s %s holds no PEM certificate", what, path);
	}
	return ret;
}

/* The signing key must be private to its owner: a key others can read is a
 * key others can sign with. fstat on the open file, so a Secret volume's
 * symlinks are followed to the file actually read. */
static int ca_key_mode_check(FILE *f, const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fileno(f), &st)) {
		errbuf_set(err, errlen, "CA key %s: %s", path, strerror(errno));
		return -errno;
	}
	/* Group read stays allowed: a Secret volume with fsGroup is 0440, owner
	 * root, group the pod's. */
	if (st.st_mode & (S_IRWXO | S_IWGRP)) {
		errbuf_set(err, errlen,
			"CA key %s is mode %04o: others may read it (or group write it); make it "
			"0600, 0400 or 0440 (a Secret volume: defaultMode: 0400)",
			path, (unsigned)(st.st_mode & 07777));
		return -EACCES;
	}
	return 0;
}

static bool ca_self_signed(X509 *x)
{
	return X509_check_issued(x, x) == X509_V_OK;
}

int ca_load(const char *cert_path, const char *key_path, const char *chain_path,
	    struct mesh_ca **out, char *err, size_t errlen)
{
	struct mesh_ca *ca = NULL;
	STACK_OF(X509) *sk = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *vctx = NULL;
	FILE *f = NULL;
	char why[256];
	uint32_t fl;
	int ret = -ENOMEM;

	*out = NULL;
	ca = ca_alloc();
	sk = sk_X509_new_null();
	if (!ca || !sk)
		goto out;

	ret = ca_read_certs(cert_path, "CA certificate", sk, err, errlen);
	if (ret)
		goto out;
	ca->cert = sk_X509_shift(sk); /* steal the first one; the rest is ignored */

	f = ca_open_pem(key_path, "CA key", &ret, err, errlen);
	if (!f)
		goto out;
	ret = ca_key_mode_check(f, key_path, err, errlen);
	if (ret)
		goto out;
	ca->key = PEM_read_PrivateKey(f, NULL, ca_no_passphrase, NULL);
	if (!ca->key) {
		ret = -EINVAL;
		errbuf_set(err, errlen, "CA key %s: no unencrypted PEM private key (%s)", key_path,
			ca_ossl_reason(why, sizeof(why)));
		goto out;
	}
	ret = -EINVAL;
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		ERR_clear_error();
		errbuf_set(err, errlen,
			"CA key %s does not match CA certificate %s: use the key generated with "
			"that certificate (hack/gen-ca.sh writes matching pairs)",
			key_path, cert_path);
		goto out;
	}
	fl = X509_get_extension_flags(ca->cert);
	if (!(fl & EXFLAG_BCONS) || !(fl & EXFLAG_CA)) {
		errbuf_set(err, errlen,
			"%s is not a CA certificate (basicConstraints CA:TRUE missing): give the "
			"mesh root or intermediate CA, not a workload certificate",
			cert_path);
		goto out;
	}
	if ((fl & EXFLAG_KUSAGE) && !(X509_get_key_usage(ca->cert) & KU_KEY_CERT_SIGN)) {
		errbuf_set(err, errlen, "CA certificate %s lacks keyUsage keyCertSign", cert_path);
		goto out;
	}

	if (chain_path) {
		while (sk_X509_num(sk))
			X509_free(sk_X509_pop(sk));
		ret = ca_read_certs(chain_path, "CA chain", sk, err, errlen);
		if (ret)
			goto out;
		ret = -EINVAL;
		/* cert-chain.pem normally starts with the signing cert itself. */
		if (X509_cmp(sk_X509_value(sk, 0), ca->cert) == 0)
			X509_free(sk_X509_shift(sk));
		if (sk_X509_num(sk) == 0) {
			errbuf_set(err, errlen, "CA chain %s has no certificate above %s: it must end "
				"with the root", chain_path, cert_path);
			goto out;
		}
		ca->root = sk_X509_value(sk, sk_X509_num(sk) - 1);
		if (!ca_self_signed(ca->root)) {
			ca->root = NULL;
			errbuf_set(err, errlen, "CA chain %s does not end with a self-signed root",
				chain_path);
			goto out;
		}
		X509_up_ref(ca->root);
		sk_X509_pop_free(ca->chain, X509_free);
		ca->chain = sk; /* steal the remaining issuers */
		sk = NULL;
	} else {
		ret = -EINVAL;
		if (!ca_self_signed(ca->cert)) {
			errbuf_set(err, errlen,
				"CA certificate %s is not self-signed: for an intermediate CA also "
				"give its chain (cert-chain.pem)",
				cert_path);
			goto out;
		}
		ca->root = ca->cert;
		X509_up_ref(ca->root);
	}

	ret = -ENOMEM;
	store = X509_STORE_new();
	vctx = X509_STORE_CTX_new();
	if (!store || !vctx)
		goto out;
	/* X509_STORE_add_cert takes its own reference. */
	if (!X509_STORE_add_cert(store, ca->root) ||
	    !X509_STORE_CTX_init(vctx, store, ca->cert, ca->chain))
		goto out;
	ret = -EINVAL;
	if (X509_verify_cert(vctx) != 1) {
		int e = X509_STORE_CTX_get_error(vctx);

		ERR_clear_error();
		errbuf_set(err, errlen, "CA certificate %s does not verify against the root: %s",
			cert_path, X509_verify_cert_error_string(e));
		goto out;
	}
	*out = ca;
	ca = NULL;
	ret = 0;
out:
	if (ret == -ENOMEM)
		errbuf_set(err, errlen, "out of memory loading the CA");
	if (f)
		fclose(f);
	X509_STORE_CTX_free(vctx);
	X509_STORE_free(store);
	sk_X509_pop_free(sk, X509_free);
	ca_free(ca);
	return ret;
}

int ca_load_dir(const char *dir, struct mesh_ca **out, char *err, size_t errlen)
{
	char cert[4096], key[4096], chain[4096];

	*out = NULL;
	if (snprintf(cert, sizeof(cert), "%s/ca-cert.pem", dir) >= (int)sizeof(cert))
		return -ENAMETOOLONG;
	if (access(cert, F_OK) == 0) {
		snprintf(key, sizeof(key), "%s/ca-key.pem", dir);
		snprintf(chain, sizeof(chain), "%s/cert-chain.pem", dir);
		return ca_load(cert, key, chain, out, err, errlen);
	}
	snprintf(cert, sizeof(cert), "%s/root-cert.pem", dir);
	snprintf(key, sizeof(key), "%s/root-key.pem", dir);
	return ca_load(cert, key, NULL, out, err, errlen);
}

/* --------------------------------------------------------------- saving */

static FILE *ca_create_file(const char *dir, const char *name, mode_t mode)
{
	char path[4096];
	int fd;
	FILE *f;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return NULL;
	/* An existing file keeps its mode through O_TRUNC: force it for keys. */
	if (fchmod(fd, mode) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return NULL;
	}
	f = fdopen(fd, "w");
	if (!f) {
		int e = errno;

		close(fd);
		errno = e;
	}
	return f;
}

static int ca_save_certs(const char *dir, const char *name, X509 *first, STACK_OF(X509) *rest)
{
	FILE *f = ca_create_file(dir, name, 0644);
	int ok;

	if (!f)
		return -errno;
	ok = PEM_write_X509(f, first);
	for (int i = 0; rest && ok && i < sk_X509_num(rest); i++)
		ok = PEM_write_X509(f, sk_X509_value(rest, i));
	if (fclose(f) != 0 || !ok) {
		ERR_clear_error();
		return -EIO;
	}
	return 0;
}

static int ca_save_key(const char *dir, const char *name, EVP_PKEY *key)
{
	FILE *f = ca_create_file(dir, name, 0600);
	int ok;

	if (!f)
		return -errno;
	ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	if (fclose(f) != 0 || !ok) {
		ERR_clear_error();
		return -EIO;
	}
	return 0;
}

int ca_save(const struct mesh_ca *ca, const char *dir)
{
	int ret;

	if (sk_X509_num(ca->chain) == 0) {
		ret = ca_save_certs(dir, "root-cert.pem", ca->cert, NULL);
		if (!ret)
			ret = ca_save_key(dir, "root-key.pem", ca->key);
		return ret;
	}
	ret = ca_save_certs(dir, "root-cert.pem", ca->root, NULL);
	if (!ret)
		ret = ca_save_certs(dir, "ca-cert.pem", ca->cert, NULL);
	if (!ret)
		ret = ca_save_key(dir, "ca-key.pem", ca->key);
	if (!ret)
		ret = ca_save_certs(dir, "cert-chain.pem", ca->cert, ca->chain);
	return ret;
}

/* -------------------------------------------------------------- issuing */

void ca_leaf_free(struct ca_leaf *leaf)
{
	if (!leaf)
		return;
	X509_free(leaf->cert);
	EVP_PKEY_free(leaf->key); /* OpenSSL clears the key material on free */
	sk_X509_pop_free(leaf->chain, X509_free);
	free(leaf);
}

/* The SAN: one URI (the SPIFFE ID) then host names (DNS, or IP for an
 * address), built as GENERAL_NAMEs
 * rather than through the config syntax, so no identity string is ever
 * parsed as config. */
static int ca_add_san(X509 *x, const char *uri, const char *const *dns)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn = NULL;
	ASN1_IA5STRING *ia5 = NULL;
	int ret = -EIO;

	if (!gens)
		goto out;
	for (size_t i = 0; i == 0 || (dns && dns[i - 1]); i++) {
		const char *v = i == 0 ? uri : dns[i - 1];

		unsigned char ip[16];
		int iplen = inet_pton(AF_INET, v, ip) == 1 ? 4 : inet_pton(AF_INET6, v, ip) == 1 ? 16 : 0;

		gn = GENERAL_NAME_new();
		ia5 = ASN1_IA5STRING_new(); /* also an OCTET STRING for an address */
		if (!gn || !ia5)
			goto out;
		if (i > 0 && iplen) { /* a host given as an address: an IP SAN */
			if (!ASN1_OCTET_STRING_set(ia5, ip, iplen))
				goto out;
			GENERAL_NAME_set0_value(gn, GEN_IPADD, ia5); /* gn steals ia5 */
		} else {
			if (!ASN1_STRING_set(ia5, v, (int)strlen(v)))
				goto out;
			GENERAL_NAME_set0_value(gn, i == 0 ? GEN_URI : GEN_DNS, ia5);
		}
		ia5 = NULL;
		if (!sk_GENERAL_NAME_push(gens, gn)) /* gens steals gn */
			goto out;
		gn = NULL;
	}
	/* X509_add1_ext_i2d encodes a copy; critical because the subject is empty
	 * (RFC 5280 §4.2.1.6), as Istio does. */
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 1, X509V3_ADD_DEFAULT) != 1)
		goto out;
	ret = 0;
out:
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	return ret;
}

/* Signs pub into a new leaf; the leaf takes ownership of key (may be NULL:
 * a remote requester keeps its private key). */
static int ca_sign_leaf(const struct mesh_ca *ca, const char *td, const char *ns, const char *sa,
		     EVP_PKEY *pub, EVP_PKEY *key, const char *const *dns, uint32_t lifetime_s,
		     struct ca_leaf **out, char *err, size_t errlen)
{
	struct ca_leaf *leaf = NULL;
	BIGNUM *bn = NULL;
	char *hex = NULL, why[256];
	time_t now;
	int ret;

	*out = NULL;
	if (lifetime_s == 0)
		lifetime_s = CA_DEFAULT_LIFETIME_S;
	if (lifetime_s < CA_MIN_LIFETIME_S || lifetime_s > CA_MAX_LIFETIME_S) {
		errbuf_set(err, errlen, "certificate lifetime %us is outside [%u, %u] seconds",
			lifetime_s, CA_MIN_LIFETIME_S, CA_MAX_LIFETIME_S);
		EVP_PKEY_free(key);
		return -EINVAL;
	}
	ret = -ENOMEM;
	leaf = calloc(1, sizeof(*leaf));
	if (!leaf) {
		EVP_PKEY_free(key);
		goto out;
	}
	leaf->key = key;
	ret = spiffe_id_format(leaf->id, sizeof(leaf->id), td, ns, sa);
	if (ret) {
		errbuf_set(err, errlen,
			"invalid identity td=%s ns=%s sa=%s: each part must be a non-empty "
			"DNS-style name",
			td ? td : "(null)", ns ? ns : "(null)", sa ? sa : "(null)");
		ret = -EINVAL;
		goto out;
	}
	ret = -EIO;
	now = time(NULL);
	leaf->cert = ca_cert_skeleton(ca->cert, NULL, pub, now, (long)lifetime_s);
	if (!leaf->cert)
		goto out;
	/* keyEncipherment only where the key can encipher (RSA key transport). */
	if (ca_add_ext(leaf->cert, ca->cert, NID_basic_constraints, "critical,CA:FALSE") ||
	    ca_add_ext(leaf->cert, ca->cert, NID_key_usage,
		    EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA
			    ? "critical,digitalSignature,keyEncipherment"
			    : "critical,digitalSignature") ||
	    ca_add_ext(leaf->cert, ca->cert, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    ca_add_ext(leaf->cert, ca->cert, NID_authority_key_identifier, "keyid") ||
	    ca_add_san(leaf->cert, leaf->id, dns))
		goto out;
	if (!X509_sign(leaf->cert, ca->key, EVP_sha256()))
		goto out;
	leaf->not_before = now - CA_BACKDATE_S;
	leaf->not_after = now + (time_t)lifetime_s;

	ret = -ENOMEM;
	/* The signer, then its issuers: each entry is an extra reference. */
	leaf->chain = sk_X509_new_null();
	if (!leaf->chain || !X509_add_cert(leaf->chain, ca->cert, X509_ADD_FLAG_UP_REF) ||
	    !X509_add_certs(leaf->chain, ca->chain, X509_ADD_FLAG_UP_REF))
		goto out;
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf->cert), NULL);
	hex = bn ? BN_bn2hex(bn) : NULL;
	if (!hex)
		goto out;
	for (size_t i = 0; hex[i] && i + 1 < sizeof(leaf->serial_hex); i++) {
		char c = hex[i];

		leaf->serial_hex[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
	}
	*out = leaf;
	leaf = NULL;
	ret = 0;
out:
	if (ret == -EIO)
		errbuf_set(err, errlen, "issuing a certificate failed: %s",
			ca_ossl_reason(why, sizeof(why)));
	else if (ret == -ENOMEM)
		errbuf_set(err, errlen, "out of memory issuing a certificate");
	OPENSSL_free(hex);
	BN_free(bn);
	ca_leaf_free(leaf);
	return ret;
}

int ca_issue(const struct mesh_ca *ca, const char *td, const char *ns, const char *sa,
	     uint32_t lifetime_s, struct ca_leaf **out, char *err, size_t errlen)
{
	EVP_PKEY *key = ca_new_p256();

	*out = NULL;
	if (!key) {
		errbuf_set(err, errlen, "generating a key failed");
		return -EIO;
	}
	return ca_sign_leaf(ca, td, ns, sa, key, key, NULL, lifetime_s, out, err, errlen);
}

int ca_sign_pubkey(const struct mesh_ca *ca, const char *td, const char *ns, const char *sa,
		   EVP_PKEY *pub, uint32_t lifetime_s, struct ca_leaf **out, char *err,
		   size_t errlen)
{
	return ca_sign_leaf(ca, td, ns, sa, pub, NULL, NULL, lifetime_s, out, err, errlen);
}

int ca_issue_server(const struct mesh_ca *ca, const char *td, const char *ns, const char *sa,
		    const char *const *dns, uint32_t lifetime_s, struct ca_leaf **out, char *err,
		    size_t errlen)
{
	EVP_PKEY *key = ca_new_p256();

	*out = NULL;
	if (!key) {
		errbuf_set(err, errlen, "generating a key failed");
		return -EIO;
	}
	return ca_sign_leaf(ca, td, ns, sa, key, key, dns, lifetime_s, out, err, errlen);
}
