/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PKCS#10 requests for workload certificates. Contract: tunnel/csr.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "conf/errbuf.h"
#include "tunnel/csr.h"

int csr_make(EVP_PKEY *key, const char *spiffe_id, char **pem_out, char *err, size_t errlen)
{
	X509_REQ *req = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	GENERAL_NAMES *gens = NULL;
	GENERAL_NAME *gn = NULL;
	ASN1_IA5STRING *ia5 = NULL;
	BIO *bio = NULL;
	BUF_MEM *mem;
	int ret = -EINVAL;

	*pem_out = NULL;
	if (spiffe_id_parse(spiffe_id, NULL)) {
		errbuf_set(err, errlen, "%s is not a SPIFFE ID", spiffe_id);
		return -EINVAL;
	}
	ret = -EIO;
	req = X509_REQ_new();
	gens = sk_GENERAL_NAME_new_null();
	gn = GENERAL_NAME_new();
	ia5 = ASN1_IA5STRING_new();
	exts = sk_X509_EXTENSION_new_null();
	if (!req || !gens || !gn || !ia5 || !exts ||
	    !ASN1_STRING_set(ia5, spiffe_id, (int)strlen(spiffe_id)))
		goto out;
	GENERAL_NAME_set0_value(gn, GEN_URI, ia5); /* gn steals ia5 */
	ia5 = NULL;
	if (!sk_GENERAL_NAME_push(gens, gn)) /* gens steals gn */
		goto out;
	gn = NULL;
	if (!X509_REQ_set_version(req, X509_REQ_VERSION_1) || !X509_REQ_set_pubkey(req, key) ||
	    !X509V3_add1_i2d(&exts, NID_subject_alt_name, gens, 1, X509V3_ADD_DEFAULT) ||
	    !X509_REQ_add_extensions(req, exts) || !X509_REQ_sign(req, key, EVP_sha256()))
		goto out;
	bio = BIO_new(BIO_s_mem());
	if (!bio || !PEM_write_bio_X509_REQ(bio, req))
		goto out;
	BIO_get_mem_ptr(bio, &mem);
	ret = -ENOMEM;
	*pem_out = strndup(mem->data, mem->length);
	if (*pem_out)
		ret = 0;
out:
	if (ret == -EIO) {
		errbuf_set(err, errlen, "making a CSR for %s failed: %s", spiffe_id,
			ERR_reason_error_string(ERR_peek_last_error()) ?: "OpenSSL error");
		ERR_clear_error();
	}
	BIO_free(bio);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	X509_REQ_free(req);
	return ret;
}

static bool csr_key_ok(EVP_PKEY *pub, char *err, size_t errlen)
{
	char group[32] = "";
	int bits = EVP_PKEY_get_bits(pub);

	switch (EVP_PKEY_get_base_id(pub)) {
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_group_name(pub, group, sizeof(group), NULL) == 1 &&
		    (!strcmp(group, "prime256v1") || !strcmp(group, "secp384r1")))
			return true;
		errbuf_set(err, errlen, "CSR key: EC curve %s not accepted (P-256 or P-384)",
			group[0] ? group : "(unknown)");
		return false;
	case EVP_PKEY_RSA:
		if (bits >= 2048 && bits <= 4096)
			return true;
		errbuf_set(err, errlen, "CSR key: RSA %d bits not accepted (2048 to 4096)", bits);
		return false;
	default:
		errbuf_set(err, errlen, "CSR key: type %s not accepted (EC P-256/P-384 or RSA)",
			OBJ_nid2sn(EVP_PKEY_get_base_id(pub)));
		return false;
	}
}

int csr_check(const char *pem, size_t len, const char *td, struct spiffe_id *id, EVP_PKEY **pub,
	      char *err, size_t errlen)
{
	X509_REQ *req = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	GENERAL_NAMES *gens = NULL;
	EVP_PKEY *key = NULL;
	BIO *bio = NULL;
	char uri[SPIFFE_ID_MAX];
	int ret = -EINVAL, crit = 0, idx = -1;

	*pub = NULL;
	if (len > CSR_PEM_MAX) {
		errbuf_set(err, errlen, "CSR longer than %d bytes", CSR_PEM_MAX);
		return -EINVAL;
	}
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return -ENOMEM;
	req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	if (!req) {
		errbuf_set(err, errlen, "csr: no PEM CERTIFICATE REQUEST");
		goto out;
	}
	key = X509_REQ_get_pubkey(req); /* a new reference */
	if (!key) {
		errbuf_set(err, errlen, "CSR has no readable public key");
		goto out;
	}
	if (X509_REQ_verify(req, key) != 1) {
		errbuf_set(err, errlen, "CSR signature does not verify with its own key");
		goto out;
	}
	if (!csr_key_ok(key, err, errlen))
		goto out;
	exts = X509_REQ_get_extensions(req);
	idx = exts ? X509v3_get_ext_by_NID(exts, NID_subject_alt_name, -1) : -1;
	if (idx >= 0 && X509v3_get_ext_by_NID(exts, NID_subject_alt_name, idx) >= 0) {
		errbuf_set(err, errlen, "CSR has more than one subjectAltName extension");
		goto out;
	}
	if (idx >= 0)
		gens = X509V3_get_d2i(exts, NID_subject_alt_name, &crit, NULL);
	if (!gens) {
		errbuf_set(err, errlen, "CSR has no subjectAltName (or a malformed one)");
		goto out;
	}
	if (sk_GENERAL_NAME_num(gens) != 1 || sk_GENERAL_NAME_value(gens, 0)->type != GEN_URI) {
		errbuf_set(err, errlen, "CSR subjectAltName must hold exactly one name, a URI (it has %d)",
			sk_GENERAL_NAME_num(gens));
		goto out;
	}
	{
		const ASN1_IA5STRING *s = sk_GENERAL_NAME_value(gens, 0)->d.uniformResourceIdentifier;
		int n = ASN1_STRING_length(s);

		if (n <= 0 || (size_t)n >= sizeof(uri) ||
		    memchr(ASN1_STRING_get0_data(s), 0, (size_t)n)) {
			errbuf_set(err, errlen, "CSR URI SAN is empty, too long or holds a NUL");
			goto out;
		}
		memcpy(uri, ASN1_STRING_get0_data(s), (size_t)n);
		uri[n] = 0;
	}
	if (spiffe_id_parse(uri, id)) {
		errbuf_set(err, errlen, "CSR URI SAN %.200s is not spiffe://<td>/ns/<ns>/sa/<sa>", uri);
		goto out;
	}
	if (strcmp(id->td, td)) {
		errbuf_set(err, errlen, "CSR asks for trust domain %s, this CA signs %s", id->td, td);
		goto out;
	}
	*pub = key;
	key = NULL;
	ret = 0;
out:
	ERR_clear_error();
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	EVP_PKEY_free(key);
	X509_REQ_free(req);
	BIO_free(bio);
	return ret;
}
