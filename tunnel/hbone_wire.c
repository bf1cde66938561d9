/* SPDX-License-Identifier: Apache-2.0 */
/* HBONE wire values (contract: hbone_wire.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "tunnel/hbone_wire.h"

void hbone_wire_traceparent(char buf[HBONE_TRACEPARENT_LEN])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t r[24];
	char *p = buf;

	if (RAND_bytes(r, sizeof(r)) != 1) {
		/* Telemetry only: a fixed id is better than none. */
		memset(r, 0x5a, sizeof(r));
	}
	/* 00-<32 hex trace id>-<16 hex span id>-01; no printf per stream. */
	*p++ = '0';
	*p++ = '0';
	*p++ = '-';
	for (int i = 0; i < 24; i++) {
		if (i == 16)
			*p++ = '-';
		*p++ = hex[r[i] >> 4];
		*p++ = hex[r[i] & 15];
	}
	memcpy(p, "-01", 4);
}

int hbone_addr_port_str(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	int n;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		n = snprintf(buf, len, "%s:%u", ip, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		n = snprintf(buf, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		return -EINVAL;
	}
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

int hbone_format_forwarded(char *buf, size_t len, const struct sockaddr *src, const char *host)
{
	char a[INET6_ADDRSTRLEN + 10];
	int n, ret = hbone_addr_port_str(src, a, sizeof(a));

	if (ret)
		return ret;
	if (host)
		n = snprintf(buf, len, "for=\"%s\";host=%s", a, host);
	else
		n = snprintf(buf, len, "for=\"%s\"", a);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static int wire_parse_port(const char *p, uint16_t *port)
{
	unsigned long v = 0;

	if (!*p || strlen(p) > 5)
		return -EINVAL;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int hbone_parse_authority(const char *a, struct hbone_request *r)
{
	const char *colon;
	size_t hl;

	r->is_ip = false;
	memset(&r->target, 0, sizeof(r->target));
	r->host[0] = 0;
	if (!a || !*a)
		return -EINVAL;
	if (a[0] == '[') {
		const char *end = strchr(a, ']');
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&r->target;

		if (!end || end[1] != ':')
			return -EINVAL;
		hl = (size_t)(end - a - 1);
		if (!hl || hl >= sizeof(r->host))
			return -EINVAL;
		memcpy(r->host, a + 1, hl);
		r->host[hl] = 0;
		if (inet_pton(AF_INET6, r->host, &in6->sin6_addr) != 1 ||
		    wire_parse_port(end + 2, &r->port))
			return -EINVAL;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(r->port);
		r->is_ip = true;
		return 0;
	}
	colon = strrchr(a, ':');
	if (!colon || colon == a)
		return -EINVAL;
	hl = (size_t)(colon - a);
	if (hl >= sizeof(r->host) || hl > 253)
		return -EINVAL;
	memcpy(r->host, a, hl);
	r->host[hl] = 0;
	if (wire_parse_port(colon + 1, &r->port))
		return -EINVAL;
	{
		struct sockaddr_in *in = (struct sockaddr_in *)&r->target;

		if (inet_pton(AF_INET, r->host, &in->sin_addr) == 1) {
			in->sin_family = AF_INET;
			in->sin_port = htons(r->port);
			r->is_ip = true;
			return 0;
		}
	}
	/* A DNS name (double HBONE): letters, digits, '-', '.'; no empty label. */
	for (size_t i = 0; i < hl; i++) {
		char ch = r->host[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '-' || ch == '.';

		if (!ok || (ch == '.' && (i == 0 || r->host[i - 1] == '.')))
			return -EINVAL;
	}
	if (r->host[0] == '-')
		return -EINVAL;
	return 0;
}
