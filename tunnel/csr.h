/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Certificate signing requests between a tunnel and warren-ca.
 *
 * The tunnel makes one PKCS#10 request per identity with csr_make(): its
 * in-memory key, an empty subject and one URI SAN, the SPIFFE ID it asks
 * for. warren-ca checks it with csr_check() before anything else: one PEM
 * request, a valid self-signature (proof the requester holds the key), an
 * acceptable key (EC P-256 or P-384, RSA 2048..4096 bits), and a
 * subjectAltName holding exactly one name, a URI that is a SPIFFE ID of the
 * CA's trust domain. Whatever else the request asks for (subject, usages,
 * CA:TRUE, other names) is never copied: the certificate is built from the
 * identity and the public key only (ca_sign_pubkey).
 *
 * Ownership: *pem_out (csr_make) is malloc'd, the caller frees it; *pub
 * (csr_check) is a new reference, EVP_PKEY_free it. Out-parameters are NULL
 * on failure. Errors: 0 or -errno; err gets a message naming what was wrong.
 * Threads: no shared state.
 */
#ifndef WARREN_CSR_H
#define WARREN_CSR_H

#include <stddef.h>

#include <openssl/evp.h>

#include "tunnel/ca.h"

/* Upper bound on a PEM request we read (an RSA-4096 request is ~1.7 KB). */
#define CSR_PEM_MAX 8192

/* 0, -EINVAL (not a SPIFFE ID), -ENOMEM, -EIO. */
int csr_make(EVP_PKEY *key, const char *spiffe_id, char **pem_out, char *err, size_t errlen);
/* td: the only trust domain accepted. On success *id holds the identity and
 * *pub the request's public key. -EINVAL (any check failed), -ENOMEM. */
int csr_check(const char *pem, size_t len, const char *td, struct spiffe_id *id, EVP_PKEY **pub,
	      char *err, size_t errlen);

#endif
