/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS for HBONE: mutual TLS 1.3 only,
 * ALPN "h2", SPIFFE identities in URI SANs, verification against the mesh
 * root. Non-blocking use: every SSL_do_handshake/SSL_read/SSL_write result
 * goes through tls_io_map() (or the tls_handshake/tls_read/tls_write
 * wrappers that call it), which yields want-read / want-write / closed /
 * fatal, and stores a reason string for fatal results (tls_error()).
 *
 * Contexts (tls_ctx_new):
 *  - both: min = max = TLS 1.3, cipher suites AES-128-GCM-SHA256,
 *    AES-256-GCM-SHA384 and ChaCha20-Poly1305-SHA256 in that order (the
 *    server chooses by its own order), no session resumption (no tickets,
 *    no cache),
 *    peer verification against `root` only (no system store, no partial
 *    chains), our leaf presented with its intermediates (not the root).
 *  - client: offers ALPN h2 (the handshake fails if the server does not
 *    select it), sends no SNI, verifies that the server's certificate has a
 *    URI SAN equal to an identity set with tls_client_expect_identity()
 *    (none set = refuse: fail closed).
 *  - server: selects ALPN h2 only (a client without h2 gets a
 *    no_application_protocol alert), requires a client certificate
 *    (VERIFY_PEER|FAIL_IF_NO_PEER_CERT), accepts only a peer whose SPIFFE
 *    identity (first SPIFFE URI SAN) is in the trust domain of the server's
 *    own certificate.
 *  - both: the peer's certificate must carry exactly one URI SAN (an X.509
 *    SVID does); one with more is refused whatever they say.
 * Failure reasons a caller can log (tls_error after TLS_IO_FATAL):
 *   "peer certificate not signed by the mesh CA"
 *   "peer identity spiffe://x/... not in trust domain td"
 *   "expected spiffe://a but peer presented spiffe://b"
 *   "peer certificate has N URI SANs; a SPIFFE identity has exactly one"
 *   "no client certificate", "peer does not support TLS 1.3",
 *   "server did not negotiate ALPN h2", ...
 *
 * Ownership (OpenSSL semantics):
 *  - tls_ctx_new(): *out is a new SSL_CTX with one reference owned by the
 *    caller (SSL_CTX_free). The leaf cert, key and chain are taken by
 *    reference (SSL_CTX_use_certificate / use_PrivateKey / add1_chain_cert
 *    up-ref them): the caller may ca_leaf_free() the leaf afterwards. The
 *    root is added to the context's own X509_STORE (X509_STORE_add_cert
 *    up-refs it).
 *  - tls_conn_new(): SSL_new() takes its own reference on the SSL_CTX, so a
 *    live SSL keeps its context (and its certificate) alive after the
 *    creator drops the SSL_CTX (renewal relies on this). Our socket BIO
 *    does not own the fd: close it yourself after SSL_free().
 *  - Per-connection state (expected identities, the failure reason) hangs
 *    off the SSL as ex_data and is freed by SSL_free().
 *  - tls_error() returns a string owned by the SSL, valid until the next
 *    tls_* call on it or SSL_free().
 * I/O goes through our own socket BIO: read(2), and send(2) with
 * MSG_NOSIGNAL (no SIGPIPE).
 * Read-ahead is on (a record and the start of the next per read(2)): use
 * SSL_has_pending(), not SSL_pending(), to know whether input is buffered.
 * Threads: contexts are immutable after tls_ctx_new() and may be shared;
 * one SSL is used by one thread at a time.
 */
#ifndef WARREN_TLS_H
#define WARREN_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "tunnel/ca.h"

#define TLS_ALPN_H2 "h2"
/* Upper bound on expected server identities per connection (workload
 * identity plus service SANs). */
#define TLS_MAX_EXPECTED 8

enum tls_role { TLS_CLIENT, TLS_SERVER };

enum tls_io {
	TLS_IO_OK = 0,     /* done (handshake complete, or bytes moved) */
	TLS_IO_WANT_READ,  /* retry the same call when the fd is readable */
	TLS_IO_WANT_WRITE, /* retry the same call when the fd is writable */
	TLS_IO_CLOSED,     /* the peer sent close_notify: clean end of stream */
	TLS_IO_FATAL,      /* tls_error() says why; only SSL_free() remains */
};

/*
 * New HBONE context. leaf: our workload certificate; required for a
 * server, NULL for a client means "present no client certificate" (tests).
 * root: the mesh root to verify peers against (required).
 * 0, -EINVAL (bad arguments), -ENOMEM/-EIO (OpenSSL; err says why).
 */
int tls_ctx_new(enum tls_role role, const struct ca_leaf *leaf, X509 *root, SSL_CTX **out,
		char *err, size_t errlen);

/* Adds another trusted root (trust-bundle rollover); up-refs root. 0/-EIO. */
int tls_ctx_add_root(SSL_CTX *ctx, X509 *root);

/*
 * New connection on a connected non-blocking socket: SSL_new (takes a
 * reference on ctx) + our socket BIO on fd (does not own it) +
 * connect/accept state from the context's role. No SNI is ever set.
 * 0, -ENOMEM, -EIO.
 */
int tls_conn_new(SSL_CTX *ctx, int fd, SSL **out);
/* Server: until tls_conn_opened(), read one record at a time with no
 * read-ahead, so a client that never finishes its handshake holds as
 * little as OpenSSL allows. */
void tls_conn_handshaking(SSL *ssl);
/* The handshake is done: read ahead again (the buffer is allocated by the
 * next read once the handshake's is empty and freed). */
void tls_conn_opened(SSL *ssl);

/* Client: add an identity the server may present (copied). Call before
 * the handshake; at least one is required. 0, -EINVAL (not a SPIFFE ID),
 * -ENOSPC (more than TLS_MAX_EXPECTED), -ENOMEM. */
int tls_client_expect_identity(SSL *ssl, const char *spiffe_id);

/* The peer's identity (first SPIFFE URI SAN of its verified certificate)
 * into buf. 0, -ENOTCONN (no peer certificate yet), -ENOENT (no SPIFFE
 * SAN), -ENOSPC. */
int tls_peer_identity(SSL *ssl, char *buf, size_t len);

/*
 * The one place SSL results become loop actions: ret is what
 * SSL_do_handshake/SSL_read(_ex)/SSL_write(_ex)/SSL_shutdown returned; call
 * it right after that call (it reads errno and the thread's error queue,
 * and clears the queue). On TLS_IO_FATAL the reason is stored for
 * tls_error(); a reason recorded during certificate verification wins over
 * the generic "certificate verify failed".
 */
enum tls_io tls_io_map(SSL *ssl, int ret);

/* Wrappers that clear the error queue, call OpenSSL and tls_io_map().
 * tls_handshake also runs the post-handshake checks (ALPN h2 on the client,
 * TLS 1.3, a verified SPIFFE peer identity). tls_read/tls_write set *n to
 * the bytes moved (0 unless TLS_IO_OK). After TLS_IO_WANT_WRITE from
 * tls_write, retry with the same data (moving buffers are allowed); partial
 * writes are enabled. */
enum tls_io tls_handshake(SSL *ssl);
enum tls_io tls_read(SSL *ssl, void *buf, size_t len, size_t *n);
enum tls_io tls_write(SSL *ssl, const void *buf, size_t len, size_t *n);

/* The stored failure reason, "" if none. See ownership above. */
const char *tls_error(const SSL *ssl);

/* Human-readable result name ("want-read", ...), static. */
const char *tls_io_name(enum tls_io r);

#endif
