/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tiny TAP test harness. Each test is a void function; T_ASSERT records a
 * failure (with file:line and the expression) and returns from the test.
 * T_MAIN runs the listed tests and prints "ok N - name" / "not ok N - name";
 * tests/run.sh counts those lines. Exit status is non-zero when any failed.
 */
#ifndef WARREN_T_H
#define WARREN_T_H

#include <stdio.h>
#include <string.h>

static int t_failed_current;

#define T_ASSERT(cond)                                                              \
	do {                                                                        \
		if (!(cond)) {                                                      \
			fprintf(stdout, "#   %s:%d: assertion failed: %s\n", __FILE__, \
				__LINE__, #cond);                                   \
			t_failed_current = 1;                                       \
			return;                                                     \
		}                                                                   \
	} while (0)

#define T_ASSERT_STR(a, b)                                                              \
	do {                                                                            \
		const char *t_a = (a), *t_b = (b);                                      \
		if (!t_a || !t_b || strcmp(t_a, t_b)) {                                 \
			fprintf(stdout, "#   %s:%d: \"%s\" != \"%s\" (%s vs %s)\n", __FILE__, \
				__LINE__, t_a ? t_a : "(null)", t_b ? t_b : "(null)", #a, #b); \
			t_failed_current = 1;                                           \
			return;                                                         \
		}                                                                       \
	} while (0)

#define T_ASSERT_INT(a, b)                                                               \
	do {                                                                             \
		long long t_a = (long long)(a), t_b = (long long)(b);                    \
		if (t_a != t_b) {                                                        \
			fprintf(stdout, "#   %s:%d: %lld != %lld (%s vs %s)\n", __FILE__,   \
				__LINE__, t_a, t_b, #a, #b);                             \
			t_failed_current = 1;                                            \
			return;                                                          \
		}                                                                        \
	} while (0)

struct t_case {
	const char *name;
	void (*fn)(void);
};

#define T_CASE(f) { #f, f }

static inline int t_run(const struct t_case *cases, size_t n)
{
	int failed = 0;

	printf("1..%zu\n", n);
	for (size_t i = 0; i < n; i++) {
		t_failed_current = 0;
		cases[i].fn();
		printf("%s %zu - %s\n", t_failed_current ? "not ok" : "ok", i + 1, cases[i].name);
		fflush(stdout);
		failed += t_failed_current;
	}
	return failed ? 1 : 0;
}

#define T_MAIN(...)                                                         \
	int main(void)                                                      \
	{                                                                   \
		static const struct t_case t_cases[] = { __VA_ARGS__ };     \
		return t_run(t_cases, sizeof(t_cases) / sizeof(t_cases[0])); \
	}

#endif
