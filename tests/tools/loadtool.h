/* SPDX-License-Identifier: Apache-2.0 */
/* What the bench's load tools (connrate, httpload) share: a monotonic clock
 * in microseconds and the open-files limit raised to its hard limit. */
#ifndef WARREN_TESTS_LOADTOOL_H
#define WARREN_TESTS_LOADTOOL_H

#include <stdint.h>
#include <sys/resource.h>
#include <time.h>

static inline uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static inline void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

#endif
