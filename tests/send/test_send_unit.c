/*
 * test_send_unit.c: the retry policy (backoff sequence, cap, jitter bounds,
 * give-up after max_attempts, bounds of [retry]) and the classification of
 * C-STORE response statuses. Pure functions only: no network, no files.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "r3d/bridge.h"
#include "r3d/send.h"
#include "r3d/test.h"

static void test_backoff_sequence(void)
{
	struct send_policy p = {2.0, 60.0, 8, SEND_JITTER_NONE};
	const double want[] = {2, 4, 8, 16, 32, 60, 60, 60, 60};

	for (unsigned a = 1; a <= 9; a++)
		CHECK_NEAR(send_backoff_delay(&p, a, 0.5), want[a - 1], 1e-9);
	/* attempts 0 behaves as the first failure */
	CHECK_NEAR(send_backoff_delay(&p, 0, 0.5), 2.0, 1e-9);
	/* huge attempt counts stay at the cap (no overflow, no inf) */
	CHECK_NEAR(send_backoff_delay(&p, 4000000000u, 0.5), 60.0, 1e-9);
	CHECK_NEAR(send_next_attempt(&p, 3, 1000.0, 0.0), 1008.0, 1e-9);

	/* cap equal to the initial delay: constant */
	struct send_policy flat = {5.0, 5.0, 3, SEND_JITTER_NONE};
	for (unsigned a = 1; a < 50; a++)
		CHECK_NEAR(send_backoff_delay(&flat, a, 0.3), 5.0, 1e-12);

	/* a cap that is not a power-of-two multiple */
	struct send_policy odd = {0.25, 3.0, 10, SEND_JITTER_NONE};
	CHECK_NEAR(send_backoff_delay(&odd, 4, 0.0), 2.0, 1e-12);
	CHECK_NEAR(send_backoff_delay(&odd, 5, 0.0), 3.0, 1e-12);
}

static void test_jitter_bounds(void)
{
	struct send_policy full = {1.0, 30.0, 10, SEND_JITTER_FULL};
	struct send_policy equal = {1.0, 30.0, 10, SEND_JITTER_EQUAL};

	for (unsigned a = 1; a <= 12; a++) {
		double d = fmin(30.0, ldexp(1.0, (int)a - 1));
		/* the ends of the ranges */
		CHECK_NEAR(send_backoff_delay(&full, a, 0.0), 1.0, 1e-12);
		CHECK_NEAR(send_backoff_delay(&equal, a, 0.0), d / 2.0, 1e-12);
		CHECK(send_backoff_delay(&full, a, 0.999999) <= d);
		CHECK(send_backoff_delay(&equal, a, 0.999999) <= d);
		CHECK(send_backoff_delay(&full, a, 0.999999) > d - 1e-3 * d);
		/* out-of-range u is clamped, never past the cap */
		CHECK(send_backoff_delay(&full, a, 7.0) <= d + 1e-12);
		CHECK(send_backoff_delay(&equal, a, -3.0) >= d / 2.0 - 1e-12);
		CHECK(send_backoff_delay(&full, a, NAN) >= 1.0);
	}
	/* real random numbers: within bounds and actually spread */
	double lo = 1e9, hi = -1e9, sum = 0.0;
	const int n = 20000;
	for (int i = 0; i < n; i++) {
		double u = send_random_unit();
		CHECK(u >= 0.0 && u < 1.0);
		double d = send_backoff_delay(&full, 6, u);   /* cap 30, floor 1 */
		if (d < lo)
			lo = d;
		if (d > hi)
			hi = d;
		sum += d;
	}
	CHECK(lo >= 1.0 && lo < 1.5);
	CHECK(hi <= 30.0 && hi > 29.5);
	CHECK_NEAR(sum / n, 15.5, 0.5);   /* uniform on [1, 30] */
}

static void test_give_up(void)
{
	struct send_policy p = {1.0, 10.0, 3, SEND_JITTER_NONE};
	struct r3d_err net = {R3D_ENET, "connection refused"};
	struct r3d_err refused = {R3D_EREFUSED, "association rejected (permanent)"};
	struct r3d_err io = {R3D_EIO, "cannot read"};

	CHECK(send_should_retry(&p, 1, &net));
	CHECK(send_should_retry(&p, 2, &net));
	CHECK(!send_should_retry(&p, 3, &net));   /* third attempt was the last */
	CHECK(!send_should_retry(&p, 4, &net));
	CHECK(!send_should_retry(&p, 1, &refused));
	CHECK(!send_should_retry(&p, 1, &io));

	struct send_policy once = {1.0, 10.0, 1, SEND_JITTER_NONE};
	CHECK(!send_should_retry(&once, 1, &net));

	/* The whole life of a row: 1 + 4 retries, total wait 1+2+4+8. */
	struct send_policy five = {1.0, 100.0, 5, SEND_JITTER_NONE};
	double t = 0.0;
	unsigned attempts = 0;
	for (;;) {
		attempts++;   /* an attempt at time t fails with ENET */
		if (!send_should_retry(&five, attempts, &net))
			break;
		t = send_next_attempt(&five, attempts, t, 0.0);
	}
	CHECK(attempts == 5);
	CHECK_NEAR(t, 15.0, 1e-9);
}

static void test_policy_check(void)
{
	struct r3d_err err;
	struct send_policy ok = {1.0, 300.0, 10, SEND_JITTER_FULL};
	struct send_policy p;

	CHECK(send_policy_check(&err, &ok));
	p = ok;
	p.initial_delay_s = 0.0;
	CHECK(!send_policy_check(&err, &p) && err.code == R3D_EINVAL &&
	      strstr(err.msg, "initial_delay_s") != NULL);
	p = ok;
	p.initial_delay_s = NAN;
	CHECK(!send_policy_check(&err, &p));
	p = ok;
	p.max_delay_s = 0.5;   /* below initial */
	CHECK(!send_policy_check(&err, &p) && strstr(err.msg, "max_delay_s") != NULL);
	p = ok;
	p.max_delay_s = SEND_MAX_DELAY_S * 2;
	CHECK(!send_policy_check(&err, &p));
	p = ok;
	p.max_attempts = 0;
	CHECK(!send_policy_check(&err, &p) && strstr(err.msg, "max_attempts") != NULL);
	p = ok;
	p.max_attempts = SEND_MAX_ATTEMPTS + 1;
	CHECK(!send_policy_check(&err, &p));
	p = ok;
	p.jitter = (enum send_jitter)7;
	CHECK(!send_policy_check(&err, &p));
}

static void test_status_kinds(void)
{
	CHECK(bridge_store_status_kind(0x0000) == BRIDGE_STORE_SUCCESS);
	CHECK(bridge_store_status_kind(0x0001) == BRIDGE_STORE_WARNING);
	CHECK(bridge_store_status_kind(0x0107) == BRIDGE_STORE_WARNING);
	CHECK(bridge_store_status_kind(0x0116) == BRIDGE_STORE_WARNING);
	CHECK(bridge_store_status_kind(0xB000) == BRIDGE_STORE_WARNING);
	CHECK(bridge_store_status_kind(0xB007) == BRIDGE_STORE_WARNING);
	CHECK(bridge_store_status_kind(0xA700) == BRIDGE_STORE_TRANSIENT);
	CHECK(bridge_store_status_kind(0xA7FF) == BRIDGE_STORE_TRANSIENT);
	CHECK(bridge_store_status_kind(0x0213) == BRIDGE_STORE_TRANSIENT);
	CHECK(bridge_store_status_kind(0xA900) == BRIDGE_STORE_PERMANENT);
	CHECK(bridge_store_status_kind(0xA9FF) == BRIDGE_STORE_PERMANENT);
	CHECK(bridge_store_status_kind(0xC000) == BRIDGE_STORE_PERMANENT);
	CHECK(bridge_store_status_kind(0xCFFF) == BRIDGE_STORE_PERMANENT);
	CHECK(bridge_store_status_kind(0x0110) == BRIDGE_STORE_PERMANENT);
	CHECK(bridge_store_status_kind(0x0122) == BRIDGE_STORE_PERMANENT);
	CHECK(bridge_store_status_kind(0x0124) == BRIDGE_STORE_PERMANENT);
	CHECK(bridge_store_status_kind(0xFF00) == BRIDGE_STORE_PERMANENT);
	CHECK(bridge_store_status_kind(0xA800) == BRIDGE_STORE_PERMANENT);
	CHECK(strcmp(bridge_store_status_text(0xA701), "Out of Resources") == 0);
	CHECK(strcmp(bridge_store_status_text(0xC123), "Cannot understand") == 0);
	CHECK(strcmp(bridge_store_status_text(0xA900), "Data Set does not match SOP Class") == 0);
}

int main(void)
{
	test_backoff_sequence();
	test_jitter_bounds();
	test_give_up();
	test_policy_check();
	test_status_kinds();
	return test_summary();
}
