/* SPDX-License-Identifier: Apache-2.0 */
/*
 * warren-ca's signing API, without the transport: the request body, the
 * certificate, the answer.
 *
 *   POST /v1/sign
 *   Authorization: Bearer <the tunnel pod's projected token>
 *   {"csr": "-----BEGIN CERTIFICATE REQUEST-----..."}
 *
 *   200 {"certChain": "<leaf PEM><intermediate PEMs>", "bundle": "<root PEM>",
 *        "identity": "spiffe://...", "notAfter": <unix seconds>}
 *   400/401/403/503 {"error": "<reason>"}
 *
 * certChain is the leaf then its issuers up to, not including, the root:
 * with a user's intermediate it carries the intermediate. bundle is the root
 * the chain ends at; tunnels do not trust it from here but from their
 * trustBundle file (a ConfigMap), and refuse a chain that does not verify
 * against that file.
 *
 * Ownership: casign_parse() gives *pub (EVP_PKEY_free); casign_answer()
 * and casign_error() a malloc'd NUL-terminated body (free). Errors go to err.
 * Threads: the mesh_ca is read-only; these may run on several threads.
 */
#ifndef WARREN_CA_SIGN_H
#define WARREN_CA_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "tunnel/ca.h"

/* The request body: a JSON object with exactly the string member "csr",
 * which csr_check() accepts for trust domain td. 0 or -EINVAL. */
int casign_parse(const char *body, size_t len, const char *td, struct spiffe_id *id,
		 EVP_PKEY **pub, char *err, size_t errlen);
/* Signs pub for id and writes the 200 body. 0, -EINVAL, -ENOMEM, -EIO. */
int casign_answer(const struct mesh_ca *ca, const struct spiffe_id *id, EVP_PKEY *pub,
		  uint32_t lifetime_s, char **body, char *err, size_t errlen);
/* {"error": reason}; NULL when out of memory. */
char *casign_error(const char *reason);

#endif
