/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The few protobuf messages of Istio's certificate service
 * (istio.v1.auth.IstioCertificateService/CreateCertificate), in gRPC's
 * length-prefixed framing. No protobuf library is among warren's
 * dependencies; these two messages need only strings, one int64 and a
 * google.protobuf.Struct holding one string:
 *
 *   IstioCertificateRequest  { string csr = 1; int64 validity_duration = 3;
 *                              google.protobuf.Struct metadata = 4; }
 *   IstioCertificateResponse { repeated string cert_chain = 1; }
 *
 * istiopb_request() encodes a request in one gRPC message (5-byte prefix:
 * not compressed, big-endian length). impersonate (may be NULL) goes in
 * metadata as {"ImpersonatedIdentity": <string>}: a node agent asking for
 * the identity of a pod on its node, as Istio's ztunnel does.
 * istiopb_response() takes a whole gRPC response body (untrusted): exactly
 * one uncompressed message, whose cert_chain strings it concatenates into
 * one NUL-terminated PEM text (each element ends with a newline). Unknown
 * fields of any wire type are skipped; a truncated or malformed message, a
 * field 1 of another wire type, a string holding NUL, an empty chain, more
 * than ISTIOPB_MAX bytes or a trailing byte is an error naming the fault.
 *
 * Ownership: *out and *pem are malloc'd; the caller frees them. Both are
 * NULL on failure. Errors: 0, -EINVAL (with err), -ENOMEM.
 * Threads: no shared state.
 */
#ifndef WARREN_ISTIO_PB_H
#define WARREN_ISTIO_PB_H

#include <stddef.h>
#include <stdint.h>

#define ISTIOPB_MAX 65536

int istiopb_request(const char *csr, int64_t validity_s, const char *impersonate, uint8_t **out,
		    size_t *len);
int istiopb_response(const uint8_t *body, size_t len, char **pem, char *err, size_t errlen);

#endif
