/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node-local mesh CA and SPIFFE IDs.
 *
 * A struct mesh_ca holds the signing certificate and key, the chain from
 * the signer up to the root (root last) and the root itself. It is loaded
 * from PEM files made by hack/gen-ca.sh (or by ca_save()), or created in
 * memory (tests). ca_issue() makes a workload certificate in memory: a new
 * ECDSA P-256 key, an X.509 v3 leaf with exactly one critical URI SAN
 * spiffe://<td>/ns/<ns>/sa/<sa>, empty subject, keyUsage
 * digitalSignature+keyEncipherment, extendedKeyUsage serverAuth+clientAuth,
 * basicConstraints CA:FALSE, a random positive 16-byte serial (126 random
 * bits), notBefore = now - 60 s, notAfter = now + lifetime, signed with
 * SHA-256 by the CA key. Workload keys never touch disk.
 *
 * Ownership:
 *  - struct mesh_ca and struct ca_leaf own every OpenSSL object they point
 *    to and free them (and wipe keys, EVP_PKEY_free) in ca_free() /
 *    ca_leaf_free(); both destructors accept NULL.
 *  - The accessors ca_root0()/ca_cert0()/ca_chain0() are get0: borrowed,
 *    valid while the mesh_ca lives; callers who keep them must up-ref
 *    (X509_up_ref) themselves.
 *  - Fields of struct ca_leaf are owned by the leaf; borrow them or up-ref.
 *  - Out-parameters are set to NULL on failure.
 * Error convention: 0 or -errno; when err is non-NULL it receives a message
 * for the user that says what was wrong and what to do. Thread-safety: a
 * loaded mesh_ca is read-only and may be used from several threads.
 */
#ifndef WARREN_CA_H
#define WARREN_CA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* "spiffe://" + td(255) + "/ns/" + ns(63) + "/sa/" + sa(253) + NUL. */
#define SPIFFE_ID_MAX   600
#define SPIFFE_TD_MAX   255
#define SPIFFE_NS_MAX   63
#define SPIFFE_SA_MAX   253

#define CA_DEFAULT_LIFETIME_S  (24u * 3600u)
#define CA_MIN_LIFETIME_S      60u
#define CA_MAX_LIFETIME_S      (90u * 24u * 3600u)
/* notBefore is backdated by this much to tolerate clock skew. */
#define CA_BACKDATE_S          60

struct spiffe_id {
	char td[SPIFFE_TD_MAX + 1];
	char ns[SPIFFE_NS_MAX + 1];
	char sa[SPIFFE_SA_MAX + 1];
};

/* Writes "spiffe://td/ns/ns/sa/sa". -EINVAL when a part is empty, too long
 * or has a character outside the SPIFFE/Kubernetes set (td: [a-z0-9._-];
 * ns, sa: [A-Za-z0-9._-], not "." or ".."); -ENOSPC when buf is short. */
int spiffe_id_format(char *buf, size_t len, const char *td, const char *ns, const char *sa);
/* Parses exactly "spiffe://<td>/ns/<ns>/sa/<sa>" (five segments, literal ns
 * and sa, as ztunnel's identity parser). out may be NULL (validate only).
 * 0 or -EINVAL. */
int spiffe_id_parse(const char *uri, struct spiffe_id *out);
/* Copies the first URI SAN of cert that parses as a SPIFFE ID into buf.
 * 0, -ENOENT (no SPIFFE URI SAN), -ENOSPC. Optional nuri gets the number of
 * URI SANs of any kind. */
int spiffe_id_from_cert(const X509 *cert, char *buf, size_t len, int *nuri);

struct mesh_ca;

/* A workload certificate. */
struct ca_leaf {
	X509 *cert;
	EVP_PKEY *key;            /* private, ECDSA P-256, memory only */
	STACK_OF(X509) *chain;    /* issuers of cert, root last (never NULL) */
	char id[SPIFFE_ID_MAX];
	char serial_hex[80];      /* lowercase hex, no separators */
	time_t not_before;
	time_t not_after;
};

/*
 * Loads a CA. Two layouts:
 *  - root signs directly: cert_path = root-cert.pem, key_path = root-key.pem,
 *    chain_path = NULL; the certificate must be self-signed.
 *  - intermediate: cert_path = ca-cert.pem, key_path = ca-key.pem,
 *    chain_path = cert-chain.pem (the intermediate(s) then the root, as
 *    Istio's plugged-in CA); the root is the last certificate of the chain.
 * Checks: the key matches the certificate, the certificate is a CA
 * (basicConstraints CA:TRUE and, when keyUsage is present, keyCertSign), and
 * the certificate verifies against the root now (not expired).
 * 0, -ENOENT/-EACCES (file), -EINVAL (bad PEM or a failed check), -ENOMEM.
 */
int ca_load(const char *cert_path, const char *key_path, const char *chain_path,
	    struct mesh_ca **out, char *err, size_t errlen);
/* ca_load() on a directory: the intermediate layout when DIR/ca-cert.pem
 * exists, else DIR/root-cert.pem + DIR/root-key.pem. */
int ca_load_dir(const char *dir, struct mesh_ca **out, char *err, size_t errlen);

/* In-memory CAs (tests, demos): a self-signed root with subject
 * O=<org>, CN=<cn>, or an intermediate (pathlen 0) signed by parent.
 * days > 0. 0, -EINVAL, -ENOMEM. */
int ca_create_root(const char *org, const char *cn, unsigned days, struct mesh_ca **out);
int ca_create_intermediate(const struct mesh_ca *parent, const char *cn, unsigned days,
			   struct mesh_ca **out);
/* Writes the hack/gen-ca.sh layout into an existing dir (keys mode 0600):
 * root-signed: root-cert.pem root-key.pem; intermediate: root-cert.pem
 * ca-cert.pem ca-key.pem cert-chain.pem. Overwrites. For tests and demos:
 * this is the only function that writes a (CA) key to disk. 0 or -errno. */
int ca_save(const struct mesh_ca *ca, const char *dir);

void ca_free(struct mesh_ca *ca);

/* get0 accessors (see ownership above). ca_chain0: issuers of the signing
 * cert, root last; empty when the root signs. */
X509 *ca_root0(const struct mesh_ca *ca);
X509 *ca_cert0(const struct mesh_ca *ca);
EVP_PKEY *ca_key0(const struct mesh_ca *ca);
STACK_OF(X509) *ca_chain0(const struct mesh_ca *ca);

/* Issues a workload certificate for spiffe://td/ns/ns/sa/sa.
 * lifetime_s 0 means CA_DEFAULT_LIFETIME_S; else it must be within
 * [CA_MIN_LIFETIME_S, CA_MAX_LIFETIME_S]. The caller owns *out
 * (ca_leaf_free). 0, -EINVAL (bad identity or lifetime), -ENOMEM, -EIO
 * (an OpenSSL failure, with err filled). */
int ca_issue(const struct mesh_ca *ca, const char *td, const char *ns, const char *sa,
	     uint32_t lifetime_s, struct ca_leaf **out, char *err, size_t errlen);
void ca_leaf_free(struct ca_leaf *leaf);

#endif
