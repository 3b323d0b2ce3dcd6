/* test_wake.c — the blocking API's wake policy (lib/app/wake.h), tick by tick. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "app/wake.h"

static void test_blocking_average(void **state)
{
	(void)state;
	unsigned avg = 0;
	/* three blocked handlers in a row make handlers count as blocking */
	avg = fk_wake_blocking_update(avg, 1);
	assert_true(avg < FK_WAKE_BLOCKING_EAGER);
	avg = fk_wake_blocking_update(avg, 1);
	avg = fk_wake_blocking_update(avg, 1);
	assert_true(avg >= FK_WAKE_BLOCKING_EAGER);
	/* always blocking converges to one, never above */
	for (int i = 0; i < 200; i++)
		avg = fk_wake_blocking_update(avg, 1);
	assert_true(avg <= FK_WAKE_BLOCKING_ONE && avg > FK_WAKE_BLOCKING_ONE - 16);
	/* and computing again brings it back under the bar within a few dozen samples */
	int n = 0;
	while (avg >= FK_WAKE_BLOCKING_EAGER && n < 100)
		avg = fk_wake_blocking_update(avg, 0), n++;
	assert_true(n > 5 && n < 20);
	/* an out-of-range value is clamped, not wrapped */
	assert_true(fk_wake_blocking_update(5000, 0) <= FK_WAKE_BLOCKING_ONE);
}

static void test_acceptors_computing(void **state)
{
	(void)state;
	/* two cores, nobody busy: the leader takes one request, one more thread runs */
	assert_int_equal(fk_wake_acceptors(10, 7, 0, 2, 0), 1);
	/* one thread already busy: the cores are taken; it will take the rest */
	assert_int_equal(fk_wake_acceptors(10, 6, 1, 2, 0), 0);
	assert_int_equal(fk_wake_acceptors(10, 6, 5, 2, 0), 0);
	/* eight cores: up to seven more */
	assert_int_equal(fk_wake_acceptors(10, 7, 0, 8, 0), 7);
	assert_int_equal(fk_wake_acceptors(3, 7, 2, 8, 0), 3);
	assert_int_equal(fk_wake_acceptors(10, 2, 0, 8, 0), 2);
	/* never more than queued or waiting; nothing queued wakes nobody */
	assert_int_equal(fk_wake_acceptors(0, 7, 0, 8, 0), 0);
	assert_int_equal(fk_wake_acceptors(5, 0, 0, 8, 0), 0);
	/* an unknown core count reads as one */
	assert_int_equal(fk_wake_acceptors(5, 5, 0, 0, 0), 0);
}

static void test_acceptors_blocking(void **state)
{
	(void)state;
	/* handlers that block: every queued request gets a thread now */
	assert_int_equal(fk_wake_acceptors(10, 6, 1, 2, FK_WAKE_BLOCKING_EAGER), 6);
	assert_int_equal(fk_wake_acceptors(3, 6, 5, 2, FK_WAKE_BLOCKING_ONE), 3);
	assert_int_equal(fk_wake_acceptors(0, 6, 5, 2, FK_WAKE_BLOCKING_ONE), 0);
}

static void test_successor(void **state)
{
	(void)state;
	/* nobody asleep: nobody to wake */
	assert_false(fk_wake_successor(0, 0, 2, 0, 0));
	/* nobody busy who would come back, no guard: someone must run the loop */
	assert_true(fk_wake_successor(3, 0, 2, 0, 0));
	/* a guard watches: the leader runs the loop again when back, nobody is woken */
	assert_false(fk_wake_successor(3, 0, 2, 0, 1));
	assert_false(fk_wake_successor(3, 0, 8, 0, 1));
	/* two cores, one other busy: that one takes the loop over when back */
	assert_false(fk_wake_successor(3, 1, 2, 0, 0));
	/* eight cores, one busy: a core is free for the loop */
	assert_true(fk_wake_successor(3, 1, 8, 0, 0));
	assert_false(fk_wake_successor(3, 7, 8, 0, 0));
	/* blocking handlers: always, guard or not */
	assert_true(fk_wake_successor(3, 7, 8, FK_WAKE_BLOCKING_EAGER, 0));
	assert_true(fk_wake_successor(3, 0, 2, FK_WAKE_BLOCKING_EAGER, 1));
}

static void test_cost_and_grain(void **state)
{
	(void)state;
	/* the average follows handler times */
	unsigned avg = FK_WAKE_GRAIN_US;
	for (int i = 0; i < 64; i++)
		avg = fk_wake_cost_update(avg, 2);
	assert_true(avg < 10);
	for (int i = 0; i < 64; i++)
		avg = fk_wake_cost_update(avg, 10000);
	assert_true(avg > 9000 && avg <= 10000);
	/* a negative reading (clock trouble) counts as zero; a huge one is capped */
	assert_true(fk_wake_cost_update(0, -5) == 0);
	avg = 0;
	for (int i = 0; i < 400; i++)
		avg = fk_wake_cost_update(avg, 1LL << 40);
	assert_true(avg <= 100000000u);
	/* handlers under a grain never make the policy eager, whatever they do */
	assert_int_equal(fk_wake_effective(FK_WAKE_BLOCKING_ONE, FK_WAKE_GRAIN_US - 1), 0);
	assert_int_equal(fk_wake_effective(FK_WAKE_BLOCKING_ONE, FK_WAKE_GRAIN_US),
	                 FK_WAKE_BLOCKING_ONE);
	assert_int_equal(fk_wake_effective(0, 100000), 0);
}

static void test_free_cores(void **state)
{
	(void)state;
	/* two cores over 100 ms: 200000 us in all */
	/* idle machine but for us using one core: both are ours */
	assert_int_equal(fk_wake_cores(2, 100000, 200000, 100000), 2);
	/* a web server keeps one core busy, we use half of the other: one core for us */
	assert_int_equal(fk_wake_cores(2, 200000, 200000, 50000), 1);
	/* others saturate both cores: still one, never zero */
	assert_int_equal(fk_wake_cores(2, 200000, 200000, 0), 1);
	/* others use a quarter of a core: rounded, both free */
	assert_int_equal(fk_wake_cores(2, 25000, 200000, 0), 2);
	/* nginx at 90% of a core and wrk at 40% beside us: one */
	assert_int_equal(fk_wake_cores(2, 180000, 200000, 50000), 1);
	/* eight cores, others use three: five */
	assert_int_equal(fk_wake_cores(8, 400000, 800000, 100000), 5);
	/* nothing measured, or readings that make no sense: every core */
	assert_int_equal(fk_wake_cores(4, 0, 0, 0), 4);
	assert_int_equal(fk_wake_cores(4, 500, 100, 0), 4);
	/* our own time above the machine's (different clocks): nobody else counted */
	assert_int_equal(fk_wake_cores(2, 1000, 200000, 5000), 2);
	assert_int_equal(fk_wake_cores(0, 0, 0, 0), 1);
}

static void test_quota(void **state)
{
	(void)state;
	/* cgroup v2 cpu.max */
	assert_int_equal(fk_wake_quota_cores(8, "max 100000\n"), 8);
	assert_int_equal(fk_wake_quota_cores(8, "100000 100000\n"), 1);
	assert_int_equal(fk_wake_quota_cores(8, "150000 100000\n"), 2); /* 1.5 cores: two run */
	assert_int_equal(fk_wake_quota_cores(2, "400000 100000"), 2);   /* never above ncpu */
	assert_int_equal(fk_wake_quota_cores(8, "1000 100000"), 1);     /* never below one */
	/* cgroup v1 quota and period */
	assert_int_equal(fk_wake_quota_cores(4, "-1 100000"), 4);
	assert_int_equal(fk_wake_quota_cores(4, "200000 100000"), 2);
	/* what does not parse changes nothing */
	assert_int_equal(fk_wake_quota_cores(4, ""), 4);
	assert_int_equal(fk_wake_quota_cores(4, "abc"), 4);
	assert_int_equal(fk_wake_quota_cores(4, "100000"), 4);
	assert_int_equal(fk_wake_quota_cores(4, "100000 0"), 4);
	assert_int_equal(fk_wake_quota_cores(4, NULL), 4);
	assert_int_equal(fk_wake_quota_cores(0, "max 1"), 1);
}

static void test_guard_backoff(void **state)
{
	(void)state;
	unsigned ms = FK_WAKE_GUARD_MS;
	/* progress each time: doubles up to the maximum */
	for (int i = 0; i < 10; i++)
		ms = fk_wake_guard_ms(ms, 1);
	assert_int_equal(ms, FK_WAKE_GUARD_MAX_MS);
	assert_int_equal(fk_wake_guard_ms(FK_WAKE_GUARD_MS, 1), 2 * FK_WAKE_GUARD_MS);
	/* a stall: back to the shortest watch */
	assert_int_equal(fk_wake_guard_ms(ms, 0), FK_WAKE_GUARD_MS);
	assert_int_equal(fk_wake_guard_ms(0, 1), FK_WAKE_GUARD_MS);
	/* stuck: nothing ended for a while; a pass or a handler that just ended is progress */
	assert_false(fk_wake_stalled(1000, 1000));
	assert_false(fk_wake_stalled(1000 + FK_WAKE_STALL_MS - 1, 1000));
	assert_true(fk_wake_stalled(1000 + FK_WAKE_STALL_MS, 1000));
	assert_true(fk_wake_stalled(100000, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_blocking_average),
	        cmocka_unit_test(test_acceptors_computing),
	        cmocka_unit_test(test_acceptors_blocking),
	        cmocka_unit_test(test_successor),
	        cmocka_unit_test(test_cost_and_grain),
	        cmocka_unit_test(test_free_cores),
	        cmocka_unit_test(test_quota),
	        cmocka_unit_test(test_guard_backoff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
