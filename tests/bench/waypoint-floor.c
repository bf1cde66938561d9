/* SPDX-License-Identifier: Apache-2.0 */
/*
 * waypoint-floor: the bench's bound for warren-waypoint's idle RSS
 * (tests/bench/waypoint.sh). Linked with exactly the waypoint's libraries
 * and flags (Makefile), it runs none of the waypoint's code:
 *
 *   waypoint-floor
 *       loads the libraries (their relocations and load-time constructors),
 *       prints "ready", waits for SIGTERM;
 *   waypoint-floor CERT KEY ROOTS
 *       also holds what any mTLS server and client on 15008 holds before
 *       its first connection: a TLS 1.3 server and client SSL_CTX with the
 *       certificate CERT, its key KEY, peer verification against ROOTS and
 *       ALPN h2.
 */
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

/* as warren-waypoint: skip GnuTLS's load-time initialisation (waypoint/main.c) */
int _gnutls_global_init_skip(void);
int _gnutls_global_init_skip(void)
{
	return 1;
}

static SSL_CTX *floor_ctx(const SSL_METHOD *m, const char *cert, const char *key, const char *roots)
{
	static const unsigned char h2[] = "\x02h2";
	SSL_CTX *c = SSL_CTX_new(m);

	if (!c || !SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) ||
	    SSL_CTX_use_certificate_chain_file(c, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_load_verify_locations(c, roots, NULL) != 1)
		return NULL;
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	if (m == TLS_client_method() && SSL_CTX_set_alpn_protos(c, h2, sizeof(h2) - 1))
		return NULL;
	return c;
}

int main(int argc, char **argv)
{
	SSL_CTX *s = NULL, *c = NULL;

	if (argc != 1 && argc != 4) {
		fprintf(stderr, "usage: waypoint-floor [CERT KEY ROOTS]\n");
		return 2;
	}
	if (argc == 4) {
		s = floor_ctx(TLS_server_method(), argv[1], argv[2], argv[3]);
		c = floor_ctx(TLS_client_method(), argv[1], argv[2], argv[3]);
		if (!s || !c) {
			fprintf(stderr, "waypoint-floor: cannot load %s, %s, %s\n", argv[1], argv[2], argv[3]);
			return 1;
		}
	}
	printf("ready\n");
	fflush(stdout);
	pause(); /* SIGTERM ends it */
	SSL_CTX_free(s);
	SSL_CTX_free(c);
	return 0;
}
