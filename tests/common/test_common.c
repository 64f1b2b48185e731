/*
 * test_common.c: unit tests for err, log, util and wake.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "r3d/err.h"
#include "r3d/log.h"
#include "r3d/test.h"
#include "r3d/util.h"
#include "r3d/wake.h"

static void test_size_math(void)
{
	size_t out = 0;

	CHECK(size_mul(512, 512, &out) && out == 262144);
	CHECK(!size_mul(SIZE_MAX / 2 + 1, 2, &out));
	CHECK(size_mul3(512, 512, 4096, &out) && out == (size_t)512 * 512 * 4096);
	CHECK(!size_mul3(SIZE_MAX, 2, 1, &out));
	CHECK(!size_add(SIZE_MAX, 1, &out));
}

static void test_parse(void)
{
	struct r3d_err err;
	long v = 0;
	bool b = false;

	CHECK(parse_long(&err, "11112", 1, 65535, &v) && v == 11112);
	CHECK(!parse_long(&err, "70000", 1, 65535, &v));
	CHECK(strstr(err.msg, "out of range") != NULL);
	CHECK(!parse_long(&err, "12x", 1, 65535, &v));
	CHECK(err.code == R3D_EINVAL);
	CHECK(!parse_long(&err, "", 1, 65535, &v));
	CHECK(!parse_long(&err, "99999999999999999999999", 0, 10, &v));
	CHECK(parse_bool(&err, "Yes", &b) && b);
	CHECK(parse_bool(&err, "off", &b) && !b);
	CHECK(!parse_bool(&err, "maybe", &b));
}

static void test_err(void)
{
	struct r3d_err err;

	CHECK(!r3d_err_set(&err, R3D_ENET, "peer %s down", "PACS"));
	CHECK(strcmp(err.msg, "peer PACS down") == 0);
	CHECK(r3d_err_retryable(&err));
	r3d_err_prefix(&err, "send");
	CHECK(strcmp(err.msg, "send: peer PACS down") == 0);
	r3d_err_set(&err, R3D_EINVAL, "bad");
	CHECK(!r3d_err_retryable(&err));
	CHECK(strcmp(r3d_code_name(R3D_ENOSPC), "nospace") == 0);
}

static void test_bigbuf(void)
{
	struct r3d_err err;
	size_t size = (size_t)8 << 20;
	unsigned char *p = bigbuf_alloc(&err, size);

	CHECK(p != NULL);
	if (p != NULL) {
		CHECK(p[0] == 0 && p[size - 1] == 0);
		memset(p, 7, size);
		CHECK(p[size / 2] == 7);
		bigbuf_free(p, size);
	}
}

static void test_log_level(void)
{
	enum log_level l = LOG_ERROR;

	CHECK(log_level_parse("debug", &l) && l == LOG_DEBUG);
	CHECK(!log_level_parse("verbose", &l));
	log_set_level(LOG_WARN);
	CHECK(!log_enabled(LOG_INFO));
	CHECK(log_enabled(LOG_ERROR));
}

static void *post_later(void *arg)
{
	struct timespec t = {0, 100 * 1000000L};

	nanosleep(&t, NULL);
	wake_post(*(enum wake_topic *)arg);
	return NULL;
}

static void test_wake(void)
{
	unsigned long seen = 0, other = 0;
	enum wake_topic topic = WAKE_OUTBOX;
	pthread_t th;
	double t;

	/* Nothing posted: the wait lasts its timeout. */
	t = clock_mono_s();
	wake_wait(WAKE_JOBS, &seen, 150);
	CHECK(clock_mono_s() - t >= 0.14);
	/* A post made while nobody waits is not lost: the next wait returns at once. */
	wake_post(WAKE_OUTBOX);
	t = clock_mono_s();
	wake_wait(WAKE_OUTBOX, &other, 5000);
	CHECK(clock_mono_s() - t < 0.5);
	CHECK(other == 1);
	/* ... once: the following one waits again. */
	t = clock_mono_s();
	wake_wait(WAKE_OUTBOX, &other, 150);
	CHECK(clock_mono_s() - t >= 0.14);
	/* A post from another thread ends a long wait early; a post on another
	 * topic does not. */
	CHECK(pthread_create(&th, NULL, post_later, &topic) == 0);
	t = clock_mono_s();
	wake_wait(WAKE_OUTBOX, &other, 10000);
	double waited = clock_mono_s() - t;
	CHECK(waited >= 0.05 && waited < 2.0);
	pthread_join(th, NULL);
	topic = WAKE_FINISHED;
	CHECK(pthread_create(&th, NULL, post_later, &topic) == 0);
	t = clock_mono_s();
	wake_wait(WAKE_OUTBOX, &other, 400);
	CHECK(clock_mono_s() - t >= 0.39);
	pthread_join(th, NULL);
}

int main(void)
{
	test_size_math();
	test_parse();
	test_err();
	test_bigbuf();
	test_log_level();
	test_wake();
	return test_summary();
}
