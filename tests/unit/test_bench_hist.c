/*
 * test_bench_hist.c — the latency histogram of `fcgikit bench` (src/hist.c, compiled in here:
 * it belongs to the tool, not to the library). Checks the log-linear layout (contiguous
 * buckets, every value within 1/128 of its bucket's top), percentiles against exact ones,
 * merging, and the extremes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hist.h" /* src/hist.c, from build/libfcgikit-tools.a */

static void test_layout(void **st)
{
	(void)st;
	/* Exact below 256. */
	for (uint64_t v = 0; v < 256; v++) {
		assert_int_equal(fk_hist_index(v), v);
		assert_int_equal(fk_hist_bucket_high((unsigned)v), v);
	}
	/* Contiguous and monotonic; a value is at most 1/128 below its bucket's top. */
	unsigned last = 255;
	for (uint64_t v = 256; v < (1ull << 40); v += v / 300 + 1) {
		unsigned i = fk_hist_index(v);
		assert_true(i >= last && i <= last + 2); /* steps under a bucket and a half */
		last = i;
		uint64_t hi = fk_hist_bucket_high(i);
		assert_true(hi >= v);
		assert_true((double)(hi - v) <= (double)v / 128.0);
		if (i > 256)
			assert_true(fk_hist_bucket_high(i - 1) < v);
	}
	/* Every 64-bit value has a bucket; the last one's top is the largest value. */
	assert_int_equal(fk_hist_index(UINT64_MAX), FK_HIST_BUCKETS - 1);
	assert_true(fk_hist_bucket_high(FK_HIST_BUCKETS - 1) == UINT64_MAX);
	assert_int_equal(fk_hist_index(1ull << 63), FK_HIST_BUCKETS - FK_HIST_SUB);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_percentiles(void **st)
{
	(void)st;
	enum { N = 100000 };
	static fk_hist h;
	static uint64_t vals[N];
	fk_hist_init(&h);
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < N; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* latencies from 10 us to ~100 ms, skewed like real ones */
		vals[i] = 10000 + (x % 1000) * (x % 1000) * (1 + (x >> 60));
		fk_hist_add(&h, vals[i]);
	}
	qsort(vals, N, sizeof vals[0], cmp_u64);
	static const double ps[] = {0, 1, 50, 90, 99, 99.9, 99.99, 100};
	for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
		size_t rank = (size_t)(ps[k] / 100.0 * N + 0.999999);
		uint64_t exact = vals[rank ? rank - 1 : 0];
		uint64_t got = fk_hist_percentile(&h, ps[k]);
		assert_true(got >= exact);
		assert_true((double)(got - exact) <= (double)exact / 128.0 + 1);
	}
	assert_int_equal(fk_hist_percentile(&h, 100), vals[N - 1]);
	assert_int_equal(h.min, vals[0]);
	assert_int_equal(h.count, N);
	double mean = 0;
	for (int i = 0; i < N; i++)
		mean += (double)vals[i];
	mean /= N;
	assert_true(fk_hist_mean(&h) > mean * 0.999999 && fk_hist_mean(&h) < mean * 1.000001);
	assert_true(fk_hist_stdev(&h) > 0);
}

static void test_merge_and_empty(void **st)
{
	(void)st;
	static fk_hist a, b;
	fk_hist_init(&a);
	fk_hist_init(&b);
	assert_int_equal(fk_hist_percentile(&a, 50), 0);
	assert_true(fk_hist_stdev(&a) == 0);
	for (uint64_t v = 1; v <= 1000; v++)
		fk_hist_add(v % 2 ? &a : &b, v * 1000);
	fk_hist_merge(&a, &b);
	assert_int_equal(a.count, 1000);
	assert_int_equal(a.min, 1000);
	assert_int_equal(a.max, 1000000);
	uint64_t p50 = fk_hist_percentile(&a, 50);
	assert_true(p50 >= 500000 && p50 <= 500000 + 500000 / 128);
	/* stdev of 1000..1000000 step 1000: about 288675 */
	double sd = fk_hist_stdev(&a);
	assert_true(sd > 288000 && sd < 289500);
}

int main(void)
{
	cmocka_set_message_output(CM_OUTPUT_TAP);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_layout),
	    cmocka_unit_test(test_percentiles),
	    cmocka_unit_test(test_merge_and_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
