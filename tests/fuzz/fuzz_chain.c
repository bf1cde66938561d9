/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for warren-install's untrusted input: the node's CNI
 * network configuration (install/chain.c), written by whatever agent runs
 * the network. Each input goes through insert (as a .conflist and as a
 * .conf), remove and has; what insert writes must parse again, hold
 * warren-cni exactly once, last, and give CHAIN_SAME on a second insert
 * (the installer's own writes never trigger another write). Leaks are
 * failures (LeakSanitizer).
 */
#include "install/chain.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const excl[] = { "kube-system" };
	static const struct chain_settings s = { .tunnel_socket = "/var/run/warren/tunnel.sock",
						 .exclude_ns = excl, .n_exclude = 1 };
	const char *in = (const char *)data;
	json_t *e = chain_entry(&s);
	char err[256], *out, *again, *rem;
	size_t len, alen, rlen;

	if (!e)
		return 0;
	for (int k = 0; k < 2; k++) {
		enum chain_kind kind = k ? CHAIN_CONF : CHAIN_CONFLIST;

		if (chain_insert(in, size, kind, e, &out, &len, NULL, err, sizeof(err)) != CHAIN_CHANGED)
			continue;
		if (!chain_has(out, len) ||
		    chain_insert(out, len, CHAIN_CONFLIST, e, &again, &alen, NULL, err, sizeof(err)) != CHAIN_SAME)
			abort();
		if (chain_remove(out, len, &rem, &rlen, err, sizeof(err)) != CHAIN_CHANGED || chain_has(rem, rlen))
			abort();
		free(rem);
		free(out);
	}
	if (chain_remove(in, size, &rem, &rlen, err, sizeof(err)) == CHAIN_CHANGED)
		free(rem);
	chain_has(in, size);
	json_decref(e);
	return 0;
}
