/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Istio's certificate messages in protobuf. Contract: tunnel/istio_pb.h.
 */
#include "tunnel/istio_pb.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "conf/errbuf.h"

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

/* ------------------------------------------------------------- encoding */

struct pbuf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};

static void pb_put(struct pbuf *b, const void *data, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t cap = (b->cap ? b->cap * 2 : 256) + n;
		uint8_t *np = realloc(b->p, cap);

		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void pb_varint(struct pbuf *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;

	do {
		tmp[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	pb_put(b, tmp, n);
}

static void pb_bytes(struct pbuf *b, unsigned field, const void *data, size_t n)
{
	pb_varint(b, (uint64_t)field << 3 | PB_LEN);
	pb_varint(b, n);
	pb_put(b, data, n);
}

int istiopb_request(const char *csr, int64_t validity_s, const char *impersonate, uint8_t **out,
		    size_t *len)
{
	struct pbuf msg = { 0 }, value = { 0 }, entry = { 0 }, st = { 0 }, frame = { 0 };
	uint8_t prefix[5];
	int ret = -ENOMEM;

	*out = NULL;
	*len = 0;
	pb_bytes(&msg, 1, csr, strlen(csr));
	pb_varint(&msg, 3 << 3 | PB_VARINT);
	pb_varint(&msg, (uint64_t)validity_s);
	if (impersonate) {
		/* Struct { map<string, Value> fields = 1 }: one entry
		 * { key = 1, value = 2 }, Value { string_value = 3 } */
		pb_bytes(&value, 3, impersonate, strlen(impersonate));
		pb_bytes(&entry, 1, "ImpersonatedIdentity", strlen("ImpersonatedIdentity"));
		pb_bytes(&entry, 2, value.p, value.len);
		pb_bytes(&st, 1, entry.p, entry.len);
		pb_bytes(&msg, 4, st.p, st.len);
	}
	if (msg.oom || value.oom || entry.oom || st.oom || msg.len > UINT32_MAX)
		goto out;
	prefix[0] = 0; /* not compressed */
	prefix[1] = (uint8_t)(msg.len >> 24);
	prefix[2] = (uint8_t)(msg.len >> 16);
	prefix[3] = (uint8_t)(msg.len >> 8);
	prefix[4] = (uint8_t)msg.len;
	pb_put(&frame, prefix, sizeof(prefix));
	pb_put(&frame, msg.p, msg.len);
	if (frame.oom)
		goto out;
	*out = frame.p;
	*len = frame.len;
	frame.p = NULL;
	ret = 0;
out:
	free(msg.p);
	free(value.p);
	free(entry.p);
	free(st.p);
	free(frame.p);
	return ret;
}

/* ------------------------------------------------------------- decoding */

/* A varint at *p (< end): 0 and *p moved past it, or -1 (truncated, or
 * more than 10 bytes). */
static int pb_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;

	for (unsigned shift = 0; shift < 70; shift += 7) {
		if (*p >= end)
			return -1;
		r |= (uint64_t)(**p & 0x7f) << shift;
		if (!(*(*p)++ & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

int istiopb_response(const uint8_t *body, size_t len, char **pem, char *err, size_t errlen)
{
	const uint8_t *p, *end;
	uint32_t mlen;
	struct pbuf out = { 0 };
	size_t n_certs = 0;
	int ret = -EINVAL;

	*pem = NULL;
	if (len < 5) {
		errbuf_set(err, errlen, "gRPC response of %zu bytes: no message", len);
		return -EINVAL;
	}
	if (body[0] != 0) {
		errbuf_set(err, errlen, "gRPC response message is compressed (flag %u): not asked for",
			   body[0]);
		return -EINVAL;
	}
	mlen = (uint32_t)body[1] << 24 | (uint32_t)body[2] << 16 | (uint32_t)body[3] << 8 | body[4];
	if (mlen > ISTIOPB_MAX || (size_t)mlen != len - 5) {
		errbuf_set(err, errlen, "gRPC response: a message of %u bytes in a body of %zu "
			   "(one message of at most %d expected)", mlen, len, ISTIOPB_MAX);
		return -EINVAL;
	}
	p = body + 5;
	end = p + mlen;
	while (p < end) {
		uint64_t key, n;
		unsigned field, type;

		if (pb_get_varint(&p, end, &key)) {
			errbuf_set(err, errlen, "IstioCertificateResponse: truncated field key");
			goto out;
		}
		field = (unsigned)(key >> 3);
		type = (unsigned)(key & 7);
		if (field == 0) {
			errbuf_set(err, errlen, "IstioCertificateResponse: field number 0");
			goto out;
		}
		switch (type) {
		case PB_VARINT:
			if (pb_get_varint(&p, end, &n))
				goto truncated;
			break;
		case PB_I64:
		case PB_I32:
			n = type == PB_I64 ? 8 : 4;
			if ((size_t)(end - p) < n)
				goto truncated;
			p += n;
			break;
		case PB_LEN:
			if (pb_get_varint(&p, end, &n) || n > (uint64_t)(end - p))
				goto truncated;
			if (field == 1) {
				if (!n || memchr(p, 0, n)) {
					errbuf_set(err, errlen, "IstioCertificateResponse: cert_chain "
						   "element %zu is empty or holds a NUL byte", n_certs + 1);
					goto out;
				}
				pb_put(&out, p, n);
				if (p[n - 1] != '\n')
					pb_put(&out, "\n", 1);
				n_certs++;
			}
			p += n;
			break;
		default:
			errbuf_set(err, errlen, "IstioCertificateResponse: field %u has wire type %u "
				   "(groups and unknown types are refused)", field, type);
			goto out;
		}
		if (field == 1 && type != PB_LEN) {
			errbuf_set(err, errlen, "IstioCertificateResponse: cert_chain with wire type %u",
				   type);
			goto out;
		}
	}
	if (!n_certs) {
		errbuf_set(err, errlen, "IstioCertificateResponse holds no certificate");
		goto out;
	}
	pb_put(&out, "", 1);
	if (out.oom) {
		ret = -ENOMEM;
		errbuf_set(err, errlen, "out of memory");
		goto out;
	}
	*pem = (char *)out.p;
	out.p = NULL;
	ret = 0;
	goto out;
truncated:
	errbuf_set(err, errlen, "IstioCertificateResponse: truncated field");
out:
	free(out.p);
	return ret;
}
