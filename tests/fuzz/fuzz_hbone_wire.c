/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: arbitrary bytes as an HBONE :authority
 * (tunnel/hbone_wire.h). A parse either fails with -EINVAL or yields a
 * port 1-65535 and a host that fits; an IP authority formats back
 * (hbone_addr_port_str, hbone_format_forwarded) to a value that parses to
 * the same address and port. Must never crash or trip a sanitizer.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/hbone_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hbone_request r, again;
	char a[600], back[80], fwd[200];
	int ret;

	if (size >= sizeof(a))
		return 0;
	memcpy(a, data, size);
	a[size] = 0;
	ret = hbone_parse_authority(a, &r);
	if (ret) {
		if (ret != -EINVAL)
			abort();
		return 0;
	}
	if (!r.port || strlen(r.host) >= sizeof(r.host) || !r.host[0])
		abort();
	if (!r.is_ip)
		return 0;
	if (hbone_addr_port_str((const struct sockaddr *)&r.target, back, sizeof(back)) ||
	    hbone_parse_authority(back, &again) || !again.is_ip || again.port != r.port ||
	    again.target.ss_family != r.target.ss_family ||
	    memcmp(&again.target, &r.target, sizeof(r.target)))
		abort();
	if (hbone_format_forwarded(fwd, sizeof(fwd), (const struct sockaddr *)&r.target, "h") ||
	    strncmp(fwd, "for=\"", 5) || !strstr(fwd, back))
		abort();
	return 0;
}
