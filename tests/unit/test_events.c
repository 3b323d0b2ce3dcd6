/* test_events.c — the event layer: the timer heap and readiness on both backends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "ev/ev.h"
#include "fcgikit.h"

static void nop(void *ud) { (void)ud; }

static void test_timer_order(void **state)
{
	(void)state;
	fk_timers t = {0};
	fk_timer x;
	assert_int_equal(fk_timers_next(&t), -1);
	assert_int_equal(fk_timers_pop_due(&t, 1000, &x), 0);
	/* ties fire in insertion order */
	for (intptr_t i = 0; i < 5; i++)
		assert_int_equal(fk_timers_push(&t, 50, nop, (void *)i), FCGI_OK);
	assert_int_equal(fk_timers_push(&t, 10, nop, (void *)100), FCGI_OK);
	assert_int_equal(fk_timers_next(&t), 10);
	assert_int_equal(fk_timers_pop_due(&t, 9, &x), 0); /* not yet due */
	assert_int_equal(fk_timers_pop_due(&t, 10, &x), 1);
	assert_int_equal((intptr_t)x.ud, 100);
	for (intptr_t i = 0; i < 5; i++) {
		assert_int_equal(fk_timers_pop_due(&t, 50, &x), 1);
		assert_int_equal((intptr_t)x.ud, i);
	}
	assert_int_equal(fk_timers_pop_due(&t, 1000, &x), 0);
	/* many random deadlines come out sorted */
	srand(7);
	for (int i = 0; i < 2000; i++)
		assert_int_equal(fk_timers_push(&t, rand() % 500, nop, NULL), FCGI_OK);
	int64_t last = -1;
	int n = 0;
	while (fk_timers_pop_due(&t, 1000, &x)) {
		assert_true(x.at >= last);
		last = x.at;
		n++;
	}
	assert_int_equal(n, 2000);
	fk_timers_free(&t);
}

static void readiness(int use_poll)
{
	if (use_poll)
		setenv("FCGIKIT_POLL", "1", 1);
	else
		unsetenv("FCGIKIT_POLL");
	fk_ev e;
	assert_int_equal(fk_ev_init(&e), FCGI_OK);
	assert_true(use_poll ? fk_ev_fd(&e) < 0 : fk_ev_fd(&e) >= 0);
	int p1[2], p2[2];
	assert_int_equal(pipe(p1), 0);
	assert_int_equal(pipe(p2), 0);
	int tag1 = 1, tag2 = 2;
	assert_int_equal(fk_ev_add(&e, p1[0], FK_EV_IN, &tag1), FCGI_OK);
	assert_int_equal(fk_ev_add(&e, p2[1], FK_EV_OUT, &tag2), FCGI_OK);
	fk_ev_item items[8];
	fk_ev_prepare(&e);
	int n = fk_ev_wait(&e, items, 8, 100);
	assert_int_equal(n, 1); /* only the writable end */
	assert_ptr_equal(items[0].ptr, &tag2);
	assert_true(items[0].events & FK_EV_OUT);
	assert_int_equal(write(p1[1], "x", 1), 1);
	assert_int_equal(fk_ev_mod(&e, p2[1], 0, &tag2), FCGI_OK);
	fk_ev_prepare(&e);
	n = fk_ev_wait(&e, items, 8, 100);
	assert_int_equal(n, 1);
	assert_ptr_equal(items[0].ptr, &tag1);
	assert_true(items[0].events & FK_EV_IN);
	assert_int_equal(fk_ev_del(&e, p1[0]), FCGI_OK);
	fk_ev_prepare(&e);
	int64_t t0 = fk_now_ms();
	assert_int_equal(fk_ev_wait(&e, items, 8, 50), 0); /* nothing left: times out */
	assert_true(fk_now_ms() - t0 >= 40);
	fk_ev_close(&e);
	close(p1[0]);
	close(p1[1]);
	close(p2[0]);
	close(p2[1]);
	unsetenv("FCGIKIT_POLL");
}

static void test_epoll(void **state)
{
	(void)state;
	readiness(0);
}

static void test_poll(void **state)
{
	(void)state;
	readiness(1);
}

int main(void)
{
	cmocka_set_message_output(CM_OUTPUT_TAP);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_timer_order),
	    cmocka_unit_test(test_epoll),
	    cmocka_unit_test(test_poll),
	};
	return cmocka_run_group_tests_name("ev", tests, NULL, NULL);
}
