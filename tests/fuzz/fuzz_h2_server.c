/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the waypoint's HTTP/2 server side (waypoint/h2.c):
 * the bytes an application sends after the preface, fed to one client
 * connection's nghttp2 session with the waypoint's callbacks (header
 * blocks kept within WPH2_FIELDS / WPH2_HEADER_LIST, trailers, bodies
 * within the window, resets, the stream limit), every request answered by
 * the waypoint itself (the connection has no model: 503, or 400/414/431 for
 * what it refuses first). ASan/UBSan catch memory errors and leaks.
 */
#include "waypoint/h2.h"
#include "waypoint/proto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char pre[] = WP_H2_PREFACE;
	uint8_t *buf = malloc(sizeof(pre) - 1 + size + 1);

	if (!buf)
		return 0;
	memcpy(buf, pre, sizeof(pre) - 1);
	if (size)
		memcpy(buf + sizeof(pre) - 1, data, size);
	wph2_feed_local(buf, sizeof(pre) - 1 + size, NULL, 0, NULL);
	free(buf);
	return 0;
}
