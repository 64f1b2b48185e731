/*
 * test.h: the few assertions the unit-test executables share. A failed check
 * prints file, line and the expression and counts a failure; main() returns
 * test_summary(), which prints "N passed, N failed" and is non-zero on any
 * failure. Tests only.
 */
#ifndef R3D_TEST_H
#define R3D_TEST_H

#include <stdio.h>

static int test_pass_count;
static int test_fail_count;

#define CHECK(expr)                                                             \
	do {                                                                    \
		if (expr) {                                                     \
			test_pass_count++;                                      \
		} else {                                                        \
			test_fail_count++;                                      \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,  \
				__LINE__, #expr);                               \
		}                                                               \
	} while (0)

#define CHECK_NEAR(a, b, tol)                                                   \
	do {                                                                    \
		double check_a_ = (double)(a), check_b_ = (double)(b);          \
		if (check_a_ - check_b_ <= (tol) && check_b_ - check_a_ <= (tol)) { \
			test_pass_count++;                                      \
		} else {                                                        \
			test_fail_count++;                                      \
			fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s=%g %s=%g tol=%g\n", \
				__FILE__, __LINE__, #a, check_a_, #b, check_b_, (double)(tol)); \
		}                                                               \
	} while (0)

static inline int test_summary(void)
{
	printf("%d passed, %d failed\n", test_pass_count, test_fail_count);
	return test_fail_count == 0 ? 0 : 1;
}

#endif
