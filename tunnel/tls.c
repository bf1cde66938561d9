/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HBONE TLS contexts, SPIFFE peer verification and the want-IO mapping.
 * Contract and ownership: tunnel/tls.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tunnel/tls.h"

#define TLS_CONN_MAGIC 0x7c5e11a1u

/* Per-SSL state, SSL ex_data, freed by SSL_free through tls_conn_state_free. */
struct tls_conn_state {
	unsigned magic;
	unsigned nexpect;
	char *expect[TLS_MAX_EXPECTED];
	char *vreason; /* first verification failure; sticky */
	char *reason;  /* last fatal result, what tls_error() shows */
};

/* AES-128-GCM first: the cheapest per byte with AES-NI (docs/performance.md);
 * AES-256-GCM and ChaCha20-Poly1305 for peers that offer only those. */
#define TLS_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

/* Read-ahead buffer: one full record (ciphertext incl. overhead), OpenSSL's
 * minimum. Before each record OpenSSL moves what its buffer holds beyond
 * it to the front (to align the payload): with four records per buffer
 * that moved more bytes than it received; with one, only the start of the
 * next record moves, still one read(2) per record (docs/performance.md). */
#define TLS_READ_AHEAD (SSL3_RT_MAX_PLAIN_LENGTH + SSL3_RT_MAX_ENCRYPTED_OVERHEAD + \
			SSL3_RT_HEADER_LENGTH)

static pthread_once_t tls_ex_once = PTHREAD_ONCE_INIT;
static int tls_ex_idx = -1;

/* ------------------------------------------------------------ socket BIO */

/*
 * Our own socket BIO instead of BIO_s_socket(): send(2) with MSG_NOSIGNAL
 * (no SIGPIPE for the process), reads are plain read(2). The fd is not
 * owned. (MSG_MORE per burst was tried: it made the kernel path slower.)
 */
struct sock_bio {
	int fd;
	bool eof;
};

static int tls_sbio_create(BIO *b)
{
	struct sock_bio *sb = calloc(1, sizeof(*sb));

	if (!sb)
		return 0;
	sb->fd = -1;
	BIO_set_data(b, sb);
	BIO_set_init(b, 1);
	return 1;
}

static int tls_sbio_destroy(BIO *b)
{
	free(BIO_get_data(b));
	BIO_set_data(b, NULL);
	return 1;
}

static int tls_sbio_write(BIO *b, const char *buf, int len)
{
	struct sock_bio *sb = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = send(sb->fd, buf, (size_t)len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_write(b);
	return (int)n;
}

static int tls_sbio_read(BIO *b, char *buf, int len)
{
	struct sock_bio *sb = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = read(sb->fd, buf, (size_t)len);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_read(b);
	else if (n == 0 && len > 0)
		sb->eof = true; /* OpenSSL asks BIO_eof() to tell a truncation */
	return (int)n;
}

static long tls_sbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct sock_bio *sb = BIO_get_data(b);

	(void)num;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_EOF:
		return sb->eof;
	case BIO_C_GET_FD:
		if (ptr)
			*(int *)ptr = sb->fd;
		return sb->fd;
	default:
		return 0;
	}
}

static pthread_once_t tls_sbio_once = PTHREAD_ONCE_INIT;
static BIO_METHOD *tls_sbio_meth; /* process lifetime */

static void tls_sbio_init(void)
{
	int idx = BIO_get_new_index();
	BIO_METHOD *m;

	if (idx < 0)
		return;
	m = BIO_meth_new(idx | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "warren socket");
	if (!m)
		return;
	if (!BIO_meth_set_write(m, tls_sbio_write) || !BIO_meth_set_read(m, tls_sbio_read) ||
	    !BIO_meth_set_ctrl(m, tls_sbio_ctrl) || !BIO_meth_set_create(m, tls_sbio_create) ||
	    !BIO_meth_set_destroy(m, tls_sbio_destroy)) {
		BIO_meth_free(m);
		return;
	}
	tls_sbio_meth = m;
}

static BIO *tls_sbio_new(int fd)
{
	struct sock_bio *sb;
	BIO *b;

	pthread_once(&tls_sbio_once, tls_sbio_init);
	if (!tls_sbio_meth)
		return NULL;
	b = BIO_new(tls_sbio_meth);
	if (!b)
		return NULL;
	sb = BIO_get_data(b);
	sb->fd = fd;
	return b;
}

static void tls_conn_state_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			    void *argp)
{
	struct tls_conn_state *st = ptr;

	(void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
	if (!st)
		return;
	if (st->magic != TLS_CONN_MAGIC)
		abort(); /* ex_data slot holds something that is not ours */
	for (unsigned i = 0; i < st->nexpect; i++)
		free(st->expect[i]);
	free(st->vreason);
	free(st->reason);
	st->magic = 0;
	free(st);
}

static void tls_ex_init(void)
{
	tls_ex_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_conn_state_free);
}

static int tls_ex_index(void)
{
	pthread_once(&tls_ex_once, tls_ex_init);
	return tls_ex_idx;
}

static struct tls_conn_state *tls_state_of(const SSL *ssl, bool create)
{
	struct tls_conn_state *st;
	int idx = tls_ex_index();

	if (idx < 0)
		return NULL;
	st = SSL_get_ex_data(ssl, idx);
	if (st) {
		if (st->magic != TLS_CONN_MAGIC)
			abort();
		return st;
	}
	if (!create)
		return NULL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->magic = TLS_CONN_MAGIC;
	/* SSL_set_ex_data takes a const-less SSL; we own st until SSL_free. */
	if (!SSL_set_ex_data((SSL *)ssl, idx, st)) {
		free(st);
		return NULL;
	}
	return st;
}

static char *tls_vfmt(const char *fmt, va_list ap)
{
	char *s = NULL;

	if (vasprintf(&s, fmt, ap) < 0)
		return NULL;
	return s;
}

/* The verification reason: the first one wins (later callbacks for the same
 * chain would only restate it less precisely). */
static void __attribute__((format(printf, 2, 3))) tls_set_vreason(SSL *ssl, const char *fmt, ...)
{
	struct tls_conn_state *st = tls_state_of(ssl, true);
	va_list ap;

	if (!st || st->vreason)
		return;
	va_start(ap, fmt);
	st->vreason = tls_vfmt(fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 2, 3))) tls_set_reason(SSL *ssl, const char *fmt, ...)
{
	struct tls_conn_state *st = tls_state_of(ssl, true);
	va_list ap;

	if (!st)
		return;
	free(st->reason);
	va_start(ap, fmt);
	st->reason = tls_vfmt(fmt, ap);
	va_end(ap);
}

const char *tls_error(const SSL *ssl)
{
	struct tls_conn_state *st = ssl ? tls_state_of(ssl, false) : NULL;

	return st && st->reason ? st->reason : "";
}

const char *tls_io_name(enum tls_io r)
{
	switch (r) {
	case TLS_IO_OK: return "ok";
	case TLS_IO_WANT_READ: return "want-read";
	case TLS_IO_WANT_WRITE: return "want-write";
	case TLS_IO_CLOSED: return "closed";
	case TLS_IO_FATAL: return "fatal";
	}
	return "?";
}

/* -------------------------------------------------------- verification */

static bool tls_cert_has_uri(const X509 *cert, const char *uri)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	size_t n = strlen(uri);
	bool found = false;

	if (!gens) {
		ERR_clear_error();
		return false;
	}
	for (int i = 0; !found && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);

		if (gn->type != GEN_URI)
			continue;
		found = (size_t)ASN1_STRING_length(gn->d.uniformResourceIdentifier) == n &&
			!memcmp(ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier), uri, n);
	}
	GENERAL_NAMES_free(gens);
	return found;
}

/* Our own (identity) rejections: without an X509 error code OpenSSL would
 * send an internal_error alert; this one becomes handshake_failure and
 * SSL_get_verify_result() says "application verification failure". */
static int tls_reject(X509_STORE_CTX *xs)
{
	X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
	return 0;
}

static int tls_verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	char id[SPIFFE_ID_MAX];
	X509 *peer;
	int nuri = 0;

	if (!ssl)
		return 0;
	if (!ok) {
		int e = X509_STORE_CTX_get_error(xs);

		switch (e) {
		case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
		case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
		case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
		case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
		case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
			tls_set_vreason(ssl, "peer certificate not signed by the mesh CA");
			break;
		case X509_V_ERR_CERT_HAS_EXPIRED:
			tls_set_vreason(ssl, "peer certificate expired");
			break;
		case X509_V_ERR_CERT_NOT_YET_VALID:
			tls_set_vreason(ssl, "peer certificate not yet valid (check the node clocks)");
			break;
		default:
			tls_set_vreason(ssl, "peer certificate rejected at depth %d: %s",
				    X509_STORE_CTX_get_error_depth(xs),
				    X509_verify_cert_error_string(e));
			break;
		}
		return 0;
	}
	if (X509_STORE_CTX_get_error_depth(xs) != 0)
		return 1;

	peer = X509_STORE_CTX_get_current_cert(xs); /* get0 */
	if (spiffe_id_from_cert(peer, id, sizeof(id), &nuri)) {
		tls_set_vreason(ssl, "peer certificate has no SPIFFE identity (URI SAN "
				 "spiffe://<td>/ns/<ns>/sa/<sa>)");
		return tls_reject(xs);
	}
	/* An X.509 SVID has exactly one URI SAN (the SPIFFE spec): with more,
	 * which one names the peer would be our guess. */
	if (nuri != 1) {
		tls_set_vreason(ssl, "peer certificate has %d URI SANs; a SPIFFE identity has exactly one",
			    nuri);
		return tls_reject(xs);
	}
	if (SSL_is_server(ssl)) {
		/* Same trust domain as our own certificate (ztunnel
		 * TrustDomainVerifier). SSL_get_certificate is get0. */
		char own[SPIFFE_ID_MAX];
		struct spiffe_id a, b;

		if (spiffe_id_from_cert(SSL_get_certificate(ssl), own, sizeof(own), NULL) ||
		    spiffe_id_parse(own, &a) || spiffe_id_parse(id, &b)) {
			tls_set_vreason(ssl, "our own certificate has no SPIFFE identity");
			return tls_reject(xs);
		}
		if (strcmp(a.td, b.td)) {
			tls_set_vreason(ssl, "peer identity %s not in trust domain %s", id, a.td);
			return tls_reject(xs);
		}
		return 1;
	} else {
		struct tls_conn_state *st = tls_state_of(ssl, false);

		if (!st || st->nexpect == 0) {
			tls_set_vreason(ssl, "no expected server identity was set for this connection");
			return tls_reject(xs);
		}
		for (unsigned i = 0; i < st->nexpect; i++)
			if (tls_cert_has_uri(peer, st->expect[i]))
				return 1;
		tls_set_vreason(ssl, "expected %s%s but peer presented %s", st->expect[0],
			    st->nexpect > 1 ? " (or another expected identity)" : "", id);
		return tls_reject(xs);
	}
}

static int tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)ssl; (void)arg;
	for (unsigned int i = 0; i < inlen;) {
		unsigned int n = in[i];

		if (i + 1 + n > inlen)
			break;
		if (n == 2 && !memcmp(in + i + 1, TLS_ALPN_H2, 2)) {
			*out = in + i + 1;
			*outlen = 2;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + n;
	}
	return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
}

/* ------------------------------------------------------------- contexts */

int tls_ctx_new(enum tls_role role, const struct ca_leaf *leaf, X509 *root, SSL_CTX **out,
		char *err, size_t errlen)
{
	static const unsigned char alpn[] = { 2, 'h', '2' };
	SSL_CTX *ctx = NULL;
	const char *what = "SSL_CTX_new";
	int ret = -EINVAL;

	*out = NULL;
	if (!root || (role == TLS_SERVER && !leaf) || (leaf && (!leaf->cert || !leaf->key))) {
		if (err && errlen)
			snprintf(err, errlen, "TLS context needs the mesh root%s",
				 role == TLS_SERVER ? " and a workload certificate" : "");
		goto out;
	}
	if (tls_ex_index() < 0)
		goto ossl;
	ret = -EIO;
	ctx = SSL_CTX_new(role == TLS_CLIENT ? TLS_client_method() : TLS_server_method());
	if (!ctx)
		goto ossl;
	what = "TLS 1.3 settings";
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, TLS_SUITES))
		goto ossl;
	/* The server picks from its own order, so two ends that both allow
	 * AES-128-GCM use it whatever order the client offers. */
	if (role == TLS_SERVER)
		SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* ztunnel disables resumption: every connection is a full mTLS handshake. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (role == TLS_SERVER && !SSL_CTX_set_num_tickets(ctx, 0))
		goto ossl;
	/* NO_AUTO_CHAIN: send exactly leaf + intermediates we add below, never a
	 * chain OpenSSL builds from the trust store. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_NO_AUTO_CHAIN);
	/* Without read-ahead OpenSSL reads each record with two read(2)s
	 * (header, then body); with it, one read fills a buffer of several
	 * records. SSL_has_pending() (not SSL_pending) tells the caller. */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, TLS_READ_AHEAD);

	what = "trust store";
	/* The context's own store, empty (no system CAs); add_cert up-refs root. */
	if (!X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), root))
		goto ossl;
	SSL_CTX_set_verify(ctx,
			   SSL_VERIFY_PEER |
				   (role == TLS_SERVER ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
			   tls_verify_cb);
	SSL_CTX_set_verify_depth(ctx, 8);

	if (leaf) {
		what = "workload certificate";
		/* use_certificate / use_PrivateKey / add1_chain_cert: up-ref. */
		if (SSL_CTX_use_certificate(ctx, leaf->cert) != 1 ||
		    SSL_CTX_use_PrivateKey(ctx, leaf->key) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1)
			goto ossl;
		for (int i = 0; leaf->chain && i < sk_X509_num(leaf->chain); i++) {
			X509 *x = sk_X509_value(leaf->chain, i);

			if (X509_check_issued(x, x) == X509_V_OK)
				continue; /* the peer has the root already */
			if (!SSL_CTX_add1_chain_cert(ctx, x))
				goto ossl;
		}
	}
	what = "ALPN";
	if (role == TLS_CLIENT) {
		if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn)) != 0) /* 0 = success */
			goto ossl;
	} else {
		SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select, NULL);
	}
	*out = ctx;
	ctx = NULL;
	ret = 0;
	goto out;
ossl:
	if (err && errlen) {
		unsigned long e = ERR_peek_last_error();
		char buf[256];

		if (e)
			ERR_error_string_n(e, buf, sizeof(buf));
		else
			snprintf(buf, sizeof(buf), "unknown error");
		snprintf(err, errlen, "TLS context (%s): %s", what, buf);
	}
	if (ret == -EINVAL)
		ret = -EIO;
out:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return ret;
}

int tls_ctx_add_root(SSL_CTX *ctx, X509 *root)
{
	if (!X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), root)) {
		ERR_clear_error();
		return -EIO;
	}
	return 0;
}

void tls_conn_handshaking(SSL *ssl)
{
	SSL_set_read_ahead(ssl, 0);
	SSL_set_default_read_buffer_len(ssl, 0);
}

void tls_conn_opened(SSL *ssl)
{
	SSL_set_read_ahead(ssl, 1);
	SSL_set_default_read_buffer_len(ssl, TLS_READ_AHEAD);
	if (!SSL_has_pending(ssl))
		SSL_free_buffers(ssl); /* refuses while a buffer holds data */
	ERR_clear_error();
}

int tls_conn_new(SSL_CTX *ctx, int fd, SSL **out)
{
	SSL *ssl;
	BIO *bio;

	*out = NULL;
	ssl = SSL_new(ctx); /* up-refs ctx */
	if (!ssl) {
		ERR_clear_error();
		return -ENOMEM;
	}
	if (!tls_state_of(ssl, true)) {
		SSL_free(ssl);
		return -ENOMEM;
	}
	bio = tls_sbio_new(fd); /* does not own fd */
	if (!bio) {
		ERR_clear_error();
		SSL_free(ssl);
		return -ENOMEM;
	}
	SSL_set_bio(ssl, bio, bio); /* one reference, now the SSL's */
	if (SSL_is_server(ssl))
		SSL_set_accept_state(ssl);
	else
		SSL_set_connect_state(ssl);
	*out = ssl;
	return 0;
}

int tls_client_expect_identity(SSL *ssl, const char *spiffe_id)
{
	struct tls_conn_state *st;

	if (!spiffe_id || spiffe_id_parse(spiffe_id, NULL))
		return -EINVAL;
	st = tls_state_of(ssl, true);
	if (!st)
		return -ENOMEM;
	if (st->nexpect >= TLS_MAX_EXPECTED)
		return -ENOSPC;
	st->expect[st->nexpect] = strdup(spiffe_id);
	if (!st->expect[st->nexpect])
		return -ENOMEM;
	st->nexpect++;
	return 0;
}

int tls_peer_identity(SSL *ssl, char *buf, size_t len)
{
	X509 *peer = SSL_get0_peer_certificate(ssl); /* get0 */

	if (!peer)
		return -ENOTCONN;
	return spiffe_id_from_cert(peer, buf, len, NULL);
}

/* ---------------------------------------------------------------- I/O */

static void tls_ssl_reason(SSL *ssl)
{
	struct tls_conn_state *st = tls_state_of(ssl, false);
	unsigned long e = ERR_peek_error();
	char buf[256];

	if (st && st->vreason) {
		tls_set_reason(ssl, "%s", st->vreason);
		return;
	}
	if (ERR_GET_LIB(e) == ERR_LIB_SSL) {
		switch (ERR_GET_REASON(e)) {
		case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
			tls_set_reason(ssl, "no client certificate");
			return;
		case SSL_R_UNSUPPORTED_PROTOCOL:
		case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
			tls_set_reason(ssl, "peer does not support TLS 1.3");
			return;
		case SSL_R_NO_APPLICATION_PROTOCOL:
		case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
			tls_set_reason(ssl, "ALPN h2 not agreed with the peer");
			return;
		case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
			tls_set_reason(ssl, "peer requires a client certificate");
			return;
		case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
			tls_set_reason(ssl, "peer rejected our certificate: not signed by its mesh CA");
			return;
		case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
			tls_set_reason(ssl, "peer refused the handshake (identity not accepted)");
			return;
		case SSL_R_CERTIFICATE_VERIFY_FAILED:
			tls_set_reason(ssl, "peer certificate verification failed");
			return;
		case SSL_R_UNEXPECTED_EOF_WHILE_READING:
			tls_set_reason(ssl, "connection closed by the peer without close_notify");
			return;
		case SSL_R_WRONG_VERSION_NUMBER:
		case SSL_R_HTTP_REQUEST:
			tls_set_reason(ssl, "peer is not speaking TLS");
			return;
		default:
			break;
		}
	}
	if (e) {
		const char *r = ERR_reason_error_string(e);

		if (r)
			snprintf(buf, sizeof(buf), "%s", r);
		else
			ERR_error_string_n(e, buf, sizeof(buf));
	} else {
		snprintf(buf, sizeof(buf), "unknown error");
	}
	tls_set_reason(ssl, "TLS error: %s", buf);
}

enum tls_io tls_io_map(SSL *ssl, int ret)
{
	int saved_errno = errno;
	int e = SSL_get_error(ssl, ret);
	enum tls_io io = TLS_IO_FATAL;

	switch (e) {
	case SSL_ERROR_NONE:
		io = TLS_IO_OK;
		break;
	case SSL_ERROR_WANT_READ:
		io = TLS_IO_WANT_READ;
		break;
	case SSL_ERROR_WANT_WRITE:
		io = TLS_IO_WANT_WRITE;
		break;
	case SSL_ERROR_ZERO_RETURN:
		io = TLS_IO_CLOSED;
		break;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error())
			tls_ssl_reason(ssl);
		else if (saved_errno)
			tls_set_reason(ssl, "socket error: %s", strerror(saved_errno));
		else
			tls_set_reason(ssl, "connection closed by the peer without close_notify");
		break;
	case SSL_ERROR_SSL:
		tls_ssl_reason(ssl);
		break;
	default:
		tls_set_reason(ssl, "unexpected SSL_get_error result %d", e);
		break;
	}
	/* The queue is per thread: leftovers would be blamed on the next
	 * connection served by this thread. */
	ERR_clear_error();
	return io;
}

enum tls_io tls_handshake(SSL *ssl)
{
	const unsigned char *p = NULL;
	unsigned int n = 0;
	char id[SPIFFE_ID_MAX];
	enum tls_io io;
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(ssl);
	io = tls_io_map(ssl, r);
	if (io == TLS_IO_CLOSED) {
		tls_set_reason(ssl, "peer closed the connection during the handshake");
		return TLS_IO_FATAL;
	}
	if (io != TLS_IO_OK)
		return io;
	if (SSL_version(ssl) != TLS1_3_VERSION) {
		tls_set_reason(ssl, "negotiated %s, not TLS 1.3", SSL_get_version(ssl));
		return TLS_IO_FATAL;
	}
	SSL_get0_alpn_selected(ssl, &p, &n);
	if (n != 2 || memcmp(p, TLS_ALPN_H2, 2)) {
		tls_set_reason(ssl, SSL_is_server(ssl) ? "client did not offer ALPN h2"
						   : "server did not negotiate ALPN h2");
		return TLS_IO_FATAL;
	}
	if (SSL_get_verify_result(ssl) != X509_V_OK) {
		tls_set_reason(ssl, "peer certificate verification failed: %s",
			   X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
		return TLS_IO_FATAL;
	}
	if (tls_peer_identity(ssl, id, sizeof(id))) {
		tls_set_reason(ssl, "peer presented no SPIFFE identity");
		return TLS_IO_FATAL;
	}
	return TLS_IO_OK;
}

/*
 * SSL_get_error needs an empty error queue before the call. On the hot
 * path it is empty (tls_io_map clears what a failure left), so it is only
 * peeked at: ERR_clear_error resets all of the queue's slots on every call,
 * once per record (docs/performance.md, "HBONE per byte").
 */
static inline void tls_err_reset(void)
{
	if (ERR_peek_error())
		ERR_clear_error();
}

enum tls_io tls_read(SSL *ssl, void *buf, size_t len, size_t *n)
{
	size_t got = 0;
	int r;

	tls_err_reset();
	errno = 0;
	r = SSL_read_ex(ssl, buf, len, &got);
	*n = r == 1 ? got : 0;
	if (r == 1)
		return TLS_IO_OK; /* the hot path: nothing to map or clear */
	return tls_io_map(ssl, r);
}

enum tls_io tls_write(SSL *ssl, const void *buf, size_t len, size_t *n)
{
	size_t put = 0;
	int r;

	tls_err_reset();
	errno = 0;
	r = SSL_write_ex(ssl, buf, len, &put);
	*n = r == 1 ? put : 0;
	if (r == 1)
		return TLS_IO_OK;
	return tls_io_map(ssl, r);
}
