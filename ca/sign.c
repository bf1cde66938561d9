/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The signing API's body and answer. Contract: ca/sign.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/pem.h>

#include "ca/sign.h"
#include "conf/errbuf.h"
#include "tunnel/csr.h"

int casign_parse(const char *body, size_t len, const char *td, struct spiffe_id *id,
		 EVP_PKEY **pub, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;
	const char *csr;
	int ret = -EINVAL;

	*pub = NULL;
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		errbuf_set(err, errlen, "request body: not JSON (%s)", jerr.text);
		return -EINVAL;
	}
	csr = json_string_value(json_object_get(root, "csr"));
	if (!json_is_object(root) || json_object_size(root) != 1 || !csr)
		errbuf_set(err, errlen, "request body: want {\"csr\": \"<PEM>\"} and nothing else");
	else
		ret = csr_check(csr, strlen(csr), td, id, pub, err, errlen);
	json_decref(root);
	return ret;
}

static int casign_pem(BIO *bio, X509 *x)
{
	return PEM_write_bio_X509(bio, x) == 1 ? 0 : -EIO;
}

static char *casign_bio_str(BIO *bio)
{
	BUF_MEM *mem;

	BIO_get_mem_ptr(bio, &mem);
	return strndup(mem->data, mem->length);
}

int casign_answer(const struct mesh_ca *ca, const struct spiffe_id *id, EVP_PKEY *pub,
		  uint32_t lifetime_s, char **body, char *err, size_t errlen)
{
	struct ca_leaf *leaf = NULL;
	BIO *chain = BIO_new(BIO_s_mem()), *roots = BIO_new(BIO_s_mem());
	char *chain_s = NULL, *roots_s = NULL;
	json_t *ans = NULL;
	int ret;

	*body = NULL;
	ret = ca_sign_pubkey(ca, id->td, id->ns, id->sa, pub, lifetime_s, &leaf, err, errlen);
	if (ret)
		goto out;
	ret = -ENOMEM;
	if (!chain || !roots)
		goto out;
	ret = casign_pem(chain, leaf->cert);
	/* leaf->chain: the signer and its issuers, root last; the root goes to
	 * the bundle, not the chain (a peer must not be able to bring its own). */
	for (int i = 0; !ret && i < sk_X509_num(leaf->chain); i++) {
		X509 *x = sk_X509_value(leaf->chain, i);

		ret = casign_pem(X509_cmp(x, ca_root0(ca)) ? chain : roots, x);
	}
	if (ret)
		goto out;
	ret = -ENOMEM;
	chain_s = casign_bio_str(chain);
	roots_s = casign_bio_str(roots);
	if (!chain_s || !roots_s)
		goto out;
	ans = json_pack("{s:s, s:s, s:s, s:I}", "certChain", chain_s, "bundle", roots_s,
			"identity", leaf->id, "notAfter", (json_int_t)leaf->not_after);
	*body = ans ? json_dumps(ans, JSON_COMPACT) : NULL;
	if (*body)
		ret = 0;
out:
	if (ret == -ENOMEM)
		errbuf_set(err, errlen, "out of memory");
	json_decref(ans);
	free(chain_s);
	free(roots_s);
	BIO_free(chain);
	BIO_free(roots);
	ca_leaf_free(leaf);
	return ret;
}

char *casign_error(const char *reason)
{
	json_t *o = json_pack("{s:s}", "error", reason);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return s;
}
