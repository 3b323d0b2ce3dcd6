/*
 * test_pm_policy.c — the decisions of `fcgikit pm` (src/pm/policy.c), tick by tick, with no
 * socket and no process: a small pool model stands in for the workers, calls pm_scale every
 * 100 ms like the manager does and applies what it says. Scaling in each mode (the start
 * batch, php-fpm's 1, 2, 4 ... ramp under a burst, the rate window, the max_children
 * ceiling counted once, scale-down one per second, ondemand spawning on the listen queue and
 * stopping after the idle timeout, static refilling after a death), respawn backoff and the
 * crash-loop circuit (delays double and cap, the circuit opens at crash_limit, half-opens
 * after its rest for a single trial worker, re-opens on a quick exit, closes on ready), the
 * request-timeout boundaries, the shedding truth table, recycling and kill escalation —
 * including extreme times, which must not overflow (the suite also runs under UBSan).
 */
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pm/policy.h"

/* ---------------------------------------------------------------- a pool model */

#define TICK_MS 100

/* The workers of one generation by state, and the listen queue. Workers spawned on a tick
 * are ready on the next; they come up busy while `demand` says the clients keep them busy. */
typedef struct sim {
	pm_scale_in in; /* mode and limits; counts and time are filled by sim_tick */
	pm_scale_state st;
	int starting, idle, busy;
	int queue;
	int64_t now;
	int64_t idle_since; /* when the current idle workers went idle (all at once here) */
	int demand;         /* 1: every ready worker is kept busy */
	int spawned_total, stopped_total, most_live;
	pm_scale_out last;
} sim;

static void sim_init(sim *s, enum pm_mode mode, int max_children, int start, int min_spare,
                     int max_spare, int rate)
{
	memset(s, 0, sizeof *s);
	s->in.mode = mode;
	s->in.max_children = max_children;
	s->in.start_servers = start;
	s->in.min_spare = min_spare;
	s->in.max_spare = max_spare;
	s->in.spawn_rate = rate;
	s->in.idle_timeout_ms = 10000;
	s->now = 1000000; /* an arbitrary monotonic origin */
}

static int sim_live(const sim *s) { return s->starting + s->idle + s->busy; }

/* Workers spawned last tick become ready. */
static void sim_settle(sim *s)
{
	if (s->demand)
		s->busy += s->starting;
	else {
		if (s->starting && !s->idle)
			s->idle_since = s->now;
		s->idle += s->starting;
	}
	s->starting = 0;
}

/* One manager tick at s->now: the decision, applied; then time moves on. */
static pm_scale_out sim_tick(sim *s)
{
	s->in.live = sim_live(s);
	s->in.starting = s->starting;
	s->in.idle = s->idle;
	s->in.busy = s->busy;
	s->in.queue = s->queue;
	s->in.now_ms = s->now;
	s->in.longest_idle_ms = s->idle ? s->now - s->idle_since : 0;
	pm_scale_out o = {-1, -1};
	pm_scale(&s->in, &s->st, &o);
	assert_true(o.spawn >= 0);
	assert_true(o.stop_idle >= 0 && o.stop_idle <= s->idle);
	s->starting += o.spawn;
	s->idle -= o.stop_idle;
	s->spawned_total += o.spawn;
	s->stopped_total += o.stop_idle;
	if (sim_live(s) > s->most_live)
		s->most_live = sim_live(s);
	/* the invariant of every mode */
	assert_true(sim_live(s) <= s->in.max_children);
	s->last = o;
	s->now += TICK_MS;
	return o;
}

/* One call with explicit counts, outside the model. */
static pm_scale_out scale_at(const pm_scale_in *base, pm_scale_state *st, int live, int starting,
                             int idle, int queue, int64_t now)
{
	pm_scale_in in = *base;
	in.live = live;
	in.starting = starting;
	in.idle = idle;
	int64_t busy = (int64_t)live - starting - idle; /* wide: the extremes test passes INT_MIN */
	in.busy = busy < 0 ? 0 : busy > INT_MAX ? INT_MAX : (int)busy;
	in.queue = queue;
	in.now_ms = now;
	pm_scale_out o = {-1, -1};
	pm_scale(&in, st, &o);
	return o;
}

/* ---------------------------------------------------------------- static */

static void test_static_fills_and_refills(void **state)
{
	(void)state;
	sim s;
	sim_init(&s, PM_STATIC, 5, 0, 0, 0, 2);
	/* all at once, whatever spawn_rate says */
	assert_int_equal(sim_tick(&s).spawn, 5);
	sim_settle(&s);
	assert_int_equal(sim_tick(&s).spawn, 0);
	/* a worker dies: one replacement on the next tick */
	s.idle--;
	assert_int_equal(sim_tick(&s).spawn, 1);
	sim_settle(&s);
	assert_int_equal(sim_live(&s), 5);
	/* three die while the refill is held: nothing, then all three together */
	s.idle -= 3;
	s.in.held = 1;
	for (int i = 0; i < 10; i++)
		assert_int_equal(sim_tick(&s).spawn, 0);
	s.in.held = 0;
	assert_int_equal(sim_tick(&s).spawn, 3);
	/* static never stops idle workers and never counts the ceiling */
	for (int i = 0; i < 50; i++)
		assert_int_equal(sim_tick(&s).stop_idle, 0);
	assert_int_equal(s.st.max_children_hits, 0);
	assert_int_equal(s.most_live, 5);
}

static void test_static_large_pool_not_rated(void **state)
{
	(void)state;
	pm_scale_in in = {.mode = PM_STATIC, .max_children = 4096, .spawn_rate = 1};
	pm_scale_state st = {0};
	assert_int_equal(scale_at(&in, &st, 0, 0, 0, 0, 0).spawn, 4096);
	assert_int_equal(scale_at(&in, &st, 0, 0, 0, 0, 1).spawn, 4096);
	/* more live than the count (cannot happen, but): spawn nothing, stop nothing */
	pm_scale_out o = scale_at(&in, &st, 5000, 0, 5000, 0, 2);
	assert_int_equal(o.spawn, 0);
	assert_int_equal(o.stop_idle, 0);
}

/* ---------------------------------------------------------------- dynamic */

static void test_dynamic_start_batch(void **state)
{
	(void)state;
	sim s;
	sim_init(&s, PM_DYNAMIC, 10, 3, 2, 5, 32);
	pm_scale_out o = sim_tick(&s);
	assert_int_equal(o.spawn, 3);
	assert_int_equal(o.stop_idle, 0);
	/* while they start, idle + starting covers min_spare: nothing more */
	assert_int_equal(sim_tick(&s).spawn, 0);
	sim_settle(&s);
	for (int i = 0; i < 30; i++)
		assert_int_equal(sim_tick(&s).spawn, 0);
	assert_int_equal(sim_live(&s), 3);

	/* a big start batch is not rated or ramped: php-fpm starts start_servers at once */
	sim_init(&s, PM_DYNAMIC, 100, 40, 20, 60, 8);
	assert_int_equal(sim_tick(&s).spawn, 40);
	/* ... but it fills the window: a shortage right after it waits for the next second */
	sim_settle(&s);
	s.idle = 0;
	s.busy = 40;
	assert_int_equal(sim_tick(&s).spawn, 0);
	s.now += 1000;
	assert_int_equal(sim_tick(&s).spawn, 1);

	/* held at start: nothing, and the batch is still owed afterwards */
	sim_init(&s, PM_DYNAMIC, 10, 4, 1, 5, 32);
	s.in.held = 1;
	assert_int_equal(sim_tick(&s).spawn, 0);
	assert_int_equal(sim_tick(&s).spawn, 0);
	s.in.held = 0;
	assert_int_equal(sim_tick(&s).spawn, 4);
}

static void test_dynamic_min_spare_ramp_and_window(void **state)
{
	(void)state;
	/* min_spare far above what is there, spawn_rate 10; every worker busy, so idle +
	 * starting stays 0 and the pool is short on every tick */
	pm_scale_in in = {.mode = PM_DYNAMIC,
	                  .max_children = 1000,
	                  .start_servers = 1,
	                  .min_spare = 500,
	                  .max_spare = 600,
	                  .spawn_rate = 10};
	pm_scale_state st = {0};
	int per_second[20] = {0};
	int live = 0;
	/* the start batch opens the window at 0 and takes 1 of its 10; then 1, 2, 4 and the
	 * window's last 2 (the ramp still doubles, 8 -> 16, capped at spawn_rate: 10);
	 * nothing until the window ends at 1000; then the whole new window at once */
	const int want[] = {1, 1, 2, 4, 2, 0, 0, 0, 0, 0, 10, 0, 0};
	for (int64_t t = 0; t < 20000; t += TICK_MS) {
		int n = scale_at(&in, &st, live, 0, 0, 0, t).spawn;
		if (t / TICK_MS < (int64_t)(sizeof want / sizeof *want))
			assert_int_equal(n, want[t / TICK_MS]);
		assert_true(st.ramp >= 1 && st.ramp <= 10);
		live += n;
		per_second[t / 1000] += n;
	}
	/* never more than spawn_rate in a window, and the full rate while short */
	for (int i = 0; i < 20; i++)
		assert_int_equal(per_second[i], 10);
	/* short of min_spare still (all busy): it goes on up to max_children, no further */
	assert_int_equal(live, 200);
	for (int64_t t = 20000; t < 200000; t += TICK_MS)
		live += scale_at(&in, &st, live, 0, 0, 0, t).spawn;
	assert_int_equal(live, 1000);
	assert_int_equal(st.max_children_hits, 1);
}

static void test_dynamic_burst(void **state)
{
	(void)state;
	sim s;
	sim_init(&s, PM_DYNAMIC, 20, 2, 1, 3, 32);
	assert_int_equal(sim_tick(&s).spawn, 2);
	sim_settle(&s);
	for (int i = 0; i < 10; i++)
		sim_tick(&s);
	assert_int_equal(sim_live(&s), 2);

	/* The burst: a hundred connections wait and every worker is kept busy; the programs do
	 * not report, so the queue is all the manager sees. */
	s.demand = 1;
	s.busy += s.idle;
	s.idle = 0;
	s.queue = 100;
	const int ramp[] = {1, 2, 4, 8, 3 /* the ceiling: 2 + 1 + 2 + 4 + 8 + 3 = 20 */, 0, 0};
	for (int i = 0; i < 7; i++) {
		assert_int_equal(sim_tick(&s).spawn, ramp[i]);
		sim_settle(&s);
	}
	assert_int_equal(sim_live(&s), 20);
	assert_int_equal(s.st.max_children_hits, 1);
	/* sitting at the ceiling for a while counts once */
	for (int i = 0; i < 100; i++)
		assert_int_equal(sim_tick(&s).spawn, 0);
	assert_int_equal(s.st.max_children_hits, 1);
	assert_int_equal(s.most_live, 20);

	/* The burst ends: everyone idle, nothing waits. One stopped per second down to
	 * max_spare: 17 seconds for 17 workers, never two within a second. */
	s.demand = 0;
	s.queue = 0;
	s.idle = s.busy;
	s.busy = 0;
	s.idle_since = s.now;
	int64_t last_stop = INT64_MIN;
	for (int i = 0; i < 200; i++) {
		int64_t at = s.now;
		pm_scale_out o = sim_tick(&s);
		assert_int_equal(o.spawn, 0);
		if (o.stop_idle) {
			assert_int_equal(o.stop_idle, 1);
			if (last_stop != INT64_MIN)
				assert_int_equal(at - last_stop, 1000);
			last_stop = at;
		}
	}
	assert_int_equal(s.idle, 3);
	assert_int_equal(s.stopped_total, 17);
	/* leaving the ceiling ended the stretch: a second burst that reaches it counts again */
	assert_int_equal(s.st.at_max, 0);
	s.demand = 1;
	s.busy = s.idle;
	s.idle = 0;
	s.queue = 50;
	/* the ramp starts over at 1 */
	assert_int_equal(sim_tick(&s).spawn, 1);
	for (int i = 0; i < 20; i++) {
		sim_tick(&s);
		sim_settle(&s);
	}
	assert_int_equal(sim_live(&s), 20);
	assert_int_equal(s.st.max_children_hits, 2);
}

static void test_dynamic_queue_covered_by_starting(void **state)
{
	(void)state;
	pm_scale_in in = {.mode = PM_DYNAMIC,
	                  .max_children = 50,
	                  .start_servers = 2,
	                  .min_spare = 1,
	                  .max_spare = 4,
	                  .spawn_rate = 32};
	pm_scale_state st = {.started = 1, .ramp = 16};
	/* 3 wait, 3 are starting: each will take one; nothing more (and not short: the ramp
	 * starts over) */
	assert_int_equal(scale_at(&in, &st, 5, 3, 0, 3, 0).spawn, 0);
	assert_int_equal(st.ramp, 1);
	/* 5 wait, 3 starting: 2 more */
	st.ramp = 16;
	assert_int_equal(scale_at(&in, &st, 5, 3, 0, 5, 100).spawn, 2);
	/* an idle worker will take the queue: not a reason to grow */
	assert_int_equal(scale_at(&in, &st, 5, 0, 1, 5, 200).spawn, 0);
	/* queue unknown (-1) or empty: only min_spare counts */
	assert_int_equal(scale_at(&in, &st, 5, 0, 0, -1, 300).spawn, 1);
	assert_int_equal(scale_at(&in, &st, 6, 1, 0, 0, 400).spawn, 0);
}

static void test_dynamic_scale_down(void **state)
{
	(void)state;
	pm_scale_in in = {.mode = PM_DYNAMIC,
	                  .max_children = 50,
	                  .start_servers = 2,
	                  .min_spare = 1,
	                  .max_spare = 3,
	                  .spawn_rate = 32};
	pm_scale_state st = {.started = 1};
	/* the first surplus is acted on at once, even at time 0 */
	assert_int_equal(scale_at(&in, &st, 10, 0, 10, 0, 0).stop_idle, 1);
	for (int64_t t = 100; t < 1000; t += 100)
		assert_int_equal(scale_at(&in, &st, 9, 0, 9, 0, t).stop_idle, 0);
	assert_int_equal(scale_at(&in, &st, 9, 0, 9, 0, 1000).stop_idle, 1);
	/* not while connections wait, even with the pace allowing it */
	assert_int_equal(scale_at(&in, &st, 8, 0, 8, 2, 5000).stop_idle, 0);
	/* an unknown queue does not block it */
	assert_int_equal(scale_at(&in, &st, 8, 0, 8, -1, 5000).stop_idle, 1);
	/* idle == max_spare: nothing */
	assert_int_equal(scale_at(&in, &st, 3, 0, 3, 0, 9000).stop_idle, 0);
	/* busy workers are not idle ones: 10 live, 3 idle, nothing to stop */
	assert_int_equal(scale_at(&in, &st, 10, 0, 3, 0, 9000).stop_idle, 0);
	/* the clock went backwards: scale-down goes on rather than freezing */
	assert_int_equal(scale_at(&in, &st, 8, 0, 8, 0, 100).stop_idle, 1);
}

static void test_dynamic_ceiling_counting(void **state)
{
	(void)state;
	pm_scale_in in = {.mode = PM_DYNAMIC,
	                  .max_children = 4,
	                  .start_servers = 1,
	                  .min_spare = 2,
	                  .max_spare = 3,
	                  .spawn_rate = 32};
	pm_scale_state st = {.started = 1, .ramp = 1};
	/* short by 2 but the ramp allows 1 and there is room: not the ceiling */
	assert_int_equal(scale_at(&in, &st, 1, 0, 0, 0, 0).spawn, 1);
	assert_int_equal(st.max_children_hits, 0);
	/* short by 2, ramp 2, room 1: the ceiling stopped it */
	assert_int_equal(scale_at(&in, &st, 3, 0, 0, 0, 100).spawn, 1);
	assert_int_equal(st.max_children_hits, 1);
	assert_int_equal(scale_at(&in, &st, 4, 0, 0, 0, 200).spawn, 0);
	assert_int_equal(st.max_children_hits, 1);
	/* wanting nothing ends the stretch */
	assert_int_equal(scale_at(&in, &st, 4, 0, 2, 0, 300).spawn, 0);
	assert_int_equal(st.at_max, 0);
	assert_int_equal(scale_at(&in, &st, 4, 0, 0, 0, 400).spawn, 0);
	assert_int_equal(st.max_children_hits, 2);
	/* held below the ceiling: the hold stopped it, not max_children */
	pm_scale_state st2 = {.started = 1, .ramp = 1};
	in.held = 1;
	assert_int_equal(scale_at(&in, &st2, 1, 0, 0, 0, 0).spawn, 0);
	assert_int_equal(st2.max_children_hits, 0);
	/* held at the ceiling: still the ceiling */
	assert_int_equal(scale_at(&in, &st2, 4, 0, 0, 0, 100).spawn, 0);
	assert_int_equal(st2.max_children_hits, 1);
}

/* ---------------------------------------------------------------- ondemand */

static void test_ondemand_lifecycle(void **state)
{
	(void)state;
	sim s;
	sim_init(&s, PM_ONDEMAND, 8, 0, 0, 0, 32);
	s.in.idle_timeout_ms = 2000;
	/* nothing waits: nothing runs */
	for (int i = 0; i < 20; i++) {
		pm_scale_out o = sim_tick(&s);
		assert_int_equal(o.spawn, 0);
		assert_int_equal(o.stop_idle, 0);
	}
	/* three connections arrive */
	s.queue = 3;
	assert_int_equal(sim_tick(&s).spawn, 3);
	/* still queued while they start: covered, nothing more */
	assert_int_equal(sim_tick(&s).spawn, 0);
	/* two more arrive: two more */
	s.queue = 5;
	assert_int_equal(sim_tick(&s).spawn, 2);
	/* they serve the five and go idle */
	s.queue = 0;
	sim_settle(&s);
	assert_int_equal(s.idle, 5);
	int64_t idle_from = s.idle_since;
	/* nobody stops before the idle timeout ... */
	while (s.now - idle_from < 2000)
		assert_int_equal(sim_tick(&s).stop_idle, 0);
	/* ... then one per tick while the longest idle qualifies (here all went idle together) */
	for (int i = 0; i < 5; i++)
		assert_int_equal(sim_tick(&s).stop_idle, 1);
	assert_int_equal(sim_live(&s), 0);
	assert_int_equal(sim_tick(&s).stop_idle, 0);
	assert_int_equal(s.st.max_children_hits, 0);
}

static void test_ondemand_rules(void **state)
{
	(void)state;
	pm_scale_in in = {
	        .mode = PM_ONDEMAND, .max_children = 4, .spawn_rate = 2, .idle_timeout_ms = 10000};
	pm_scale_state st = {0};
	/* queue unknown or empty: no spawn */
	assert_int_equal(scale_at(&in, &st, 0, 0, 0, -1, 0).spawn, 0);
	assert_int_equal(scale_at(&in, &st, 0, 0, 0, 0, 0).spawn, 0);
	/* an idle worker will take it */
	assert_int_equal(scale_at(&in, &st, 1, 0, 1, 3, 0).spawn, 0);
	/* rated: 2 per second */
	assert_int_equal(scale_at(&in, &st, 0, 0, 0, 10, 0).spawn, 2);
	assert_int_equal(scale_at(&in, &st, 2, 0, 0, 10, 500).spawn, 0);
	assert_int_equal(scale_at(&in, &st, 2, 0, 0, 10, 999).spawn, 0);
	assert_int_equal(st.max_children_hits, 0); /* the rate stopped it, not the ceiling */
	/* next window: 2 more fill the pool: wanted 10, at the ceiling */
	assert_int_equal(scale_at(&in, &st, 2, 0, 0, 10, 1000).spawn, 2);
	assert_int_equal(st.max_children_hits, 1);
	assert_int_equal(scale_at(&in, &st, 4, 0, 0, 10, 2500).spawn, 0);
	assert_int_equal(st.max_children_hits, 1);
	/* held: nothing */
	pm_scale_state st2 = {0};
	in.held = 1;
	assert_int_equal(scale_at(&in, &st2, 0, 0, 0, 3, 0).spawn, 0);
	in.held = 0;

	/* idle timeout boundaries */
	pm_scale_in t = in;
	t.longest_idle_ms = 9999;
	assert_int_equal(scale_at(&t, &st, 2, 0, 2, 0, 5000).stop_idle, 0);
	t.longest_idle_ms = 10000;
	assert_int_equal(scale_at(&t, &st, 2, 0, 2, 0, 5000).stop_idle, 1);
	assert_int_equal(scale_at(&t, &st, 2, 0, 2, -1, 5000).stop_idle, 1);
	/* not while connections wait, not without an idle worker */
	assert_int_equal(scale_at(&t, &st, 2, 0, 2, 1, 5000).stop_idle, 0);
	assert_int_equal(scale_at(&t, &st, 2, 0, 0, 0, 5000).stop_idle, 0);
	/* idle_timeout <= 0: never (config refuses it; the policy does not churn) */
	t.idle_timeout_ms = 0;
	t.longest_idle_ms = 1000000;
	assert_int_equal(scale_at(&t, &st, 2, 0, 2, 0, 5000).stop_idle, 0);
}

/* ---------------------------------------------------------------- held, trial, extremes */

static void test_trial_spawns_one(void **state)
{
	(void)state;
	const enum pm_mode modes[] = {PM_STATIC, PM_DYNAMIC, PM_ONDEMAND};
	for (int m = 0; m < 3; m++) {
		pm_scale_in in = {.mode = modes[m],
		                  .max_children = 10,
		                  .start_servers = 5,
		                  .min_spare = 5,
		                  .max_spare = 8,
		                  .spawn_rate = 32,
		                  .trial = 1};
		pm_scale_state st = {0};
		/* one, however many are wanted */
		assert_int_equal(scale_at(&in, &st, 0, 0, 0, 10, 0).spawn, 1);
		/* none while it starts */
		assert_int_equal(scale_at(&in, &st, 1, 1, 0, 10, 100).spawn, 0);
		/* it left without a verdict (asked to stop): another one */
		assert_int_equal(scale_at(&in, &st, 0, 0, 0, 10, 200).spawn, 1);
		/* held wins over trial */
		in.held = 1;
		assert_int_equal(scale_at(&in, &st, 0, 0, 0, 10, 300).spawn, 0);
	}
}

static void test_scale_extreme_inputs(void **state)
{
	(void)state;
	const enum pm_mode modes[] = {PM_STATIC, PM_DYNAMIC, PM_ONDEMAND};
	const int64_t times[] = {INT64_MIN, -1, 0, 1, INT64_MAX - 1, INT64_MAX, INT64_MIN + 1};
	const int counts[] = {INT_MIN, -1, 0, 1, INT_MAX};
	for (int m = 0; m < 3; m++) {
		pm_scale_in in = {.mode = modes[m],
		                  .max_children = INT_MAX,
		                  .start_servers = INT_MAX,
		                  .min_spare = INT_MAX,
		                  .max_spare = INT_MIN,
		                  .spawn_rate = INT_MAX,
		                  .idle_timeout_ms = INT64_MIN,
		                  .longest_idle_ms = INT64_MAX};
		pm_scale_state st = {.window_start_ms = INT64_MIN,
		                     .last_stop_ms = INT64_MAX,
		                     .stopped = 1,
		                     .ramp = INT_MAX,
		                     .spawned_in_window = INT_MAX};
		for (size_t t = 0; t < sizeof times / sizeof *times; t++)
			for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
				pm_scale_out o = scale_at(&in, &st, counts[c], counts[c], counts[c],
				                          counts[c], times[t]);
				assert_true(o.spawn >= 0);
				assert_true(o.stop_idle == 0 || o.stop_idle == 1);
			}
		/* spawn_rate 0 reads as the default */
		pm_scale_in d = {.mode = modes[m],
		                 .max_children = 100,
		                 .start_servers = 1,
		                 .min_spare = 100,
		                 .max_spare = 100};
		pm_scale_state ds = {.started = 1, .ramp = 64};
		assert_int_equal(scale_at(&d, &ds, 0, 0, 0, 100, 0).spawn,
		                 modes[m] == PM_STATIC ? 100 : PM_SPAWN_RATE_DEFAULT);
	}
}

/* ---------------------------------------------------------------- health */

static const pm_health_conf HC = {.crash_limit = 5,
                                  .circuit_reset_ms = 60000,
                                  .min_uptime_ms = 1000,
                                  .backoff_base_ms = 100,
                                  .backoff_max_ms = 30000};

static void test_backoff_delay(void **state)
{
	(void)state;
	assert_int_equal(pm_backoff_delay(&HC, 0), 0);
	assert_int_equal(pm_backoff_delay(&HC, -3), 0);
	int64_t want = 100;
	for (int n = 1; n <= 9; n++, want *= 2)
		assert_int_equal(pm_backoff_delay(&HC, n), want); /* 100 .. 25600 */
	assert_int_equal(pm_backoff_delay(&HC, 10), 30000);
	assert_int_equal(pm_backoff_delay(&HC, 64), 30000);
	assert_int_equal(pm_backoff_delay(&HC, INT_MAX), 30000);
	/* extremes: no overflow, the cap always holds */
	pm_health_conf big = {.backoff_base_ms = INT64_MAX / 3, .backoff_max_ms = INT64_MAX};
	assert_true(pm_backoff_delay(&big, 2) == INT64_MAX / 3 * 2);
	assert_true(pm_backoff_delay(&big, 3) == INT64_MAX);
	assert_true(pm_backoff_delay(&big, INT_MAX) == INT64_MAX);
	pm_health_conf inv = {.backoff_base_ms = 5000, .backoff_max_ms = 1000};
	assert_int_equal(pm_backoff_delay(&inv, 1), 1000);
	pm_health_conf neg = {.backoff_base_ms = -5, .backoff_max_ms = -1};
	assert_int_equal(pm_backoff_delay(&neg, 3), 0);
}

static void test_backoff_doubles_and_caps(void **state)
{
	(void)state;
	pm_health_conf c = HC;
	c.crash_limit = 100; /* no circuit here */
	pm_health h = {0};
	int64_t now = 5000;
	assert_string_equal(pm_health_state_name(&h), "ok");
	assert_int_equal(pm_health_held(&h, &c, now), 0);
	int64_t delay = 100;
	for (int i = 1; i <= 12; i++) {
		pm_health_exit(&h, &c, 50, 0, now);
		assert_int_equal(h.quick_exits, i);
		assert_int_equal(h.total_crashes, i);
		assert_string_equal(pm_health_state_name(&h), "backoff");
		int64_t d = delay < 30000 ? delay : 30000;
		/* held up to the last millisecond of the delay, free at its end */
		assert_int_equal(pm_health_held(&h, &c, now), 1);
		assert_int_equal(pm_health_held(&h, &c, now + d - 1), 1);
		assert_int_equal(pm_health_held(&h, &c, now + d), 0);
		now += d + 10; /* the respawn lives 50 ms and dies again */
		delay *= 2;
	}
	/* a worker that lived past min_uptime ends the backoff */
	pm_health_exit(&h, &c, 1000, 0, now);
	assert_int_equal(h.quick_exits, 0);
	assert_int_equal(pm_health_held(&h, &c, now), 0);
	assert_string_equal(pm_health_state_name(&h), "ok");
	assert_int_equal(h.total_crashes, 12);
	/* uptime 999: quick */
	pm_health_exit(&h, &c, 999, 0, now);
	assert_int_equal(h.quick_exits, 1);
	assert_int_equal(pm_health_held(&h, &c, now + 99), 1);
	/* a clean exit, however short, ends it too */
	pm_health_exit(&h, &c, 1, 1, now);
	assert_int_equal(h.quick_exits, 0);
	assert_int_equal(pm_health_held(&h, &c, now), 0);
	/* and so does a worker reaching ready */
	pm_health_exit(&h, &c, 1, 0, now);
	pm_health_exit(&h, &c, 1, 0, now);
	assert_int_equal(pm_health_held(&h, &c, now + 150), 1);
	pm_health_ready(&h);
	assert_int_equal(pm_health_held(&h, &c, now + 150), 0);
	assert_string_equal(pm_health_state_name(&h), "ok");
}

static void test_circuit(void **state)
{
	(void)state;
	pm_health h = {0};
	int64_t now = 0;
	for (int i = 1; i < 5; i++) {
		pm_health_exit(&h, &HC, 10, 0, now);
		assert_int_equal(h.open, 0);
		now += pm_backoff_delay(&HC, i);
	}
	/* the crash_limit-th quick exit opens it */
	pm_health_exit(&h, &HC, 10, 0, now);
	assert_int_equal(h.open, 1);
	assert_int_equal(h.opened_ms, now);
	assert_string_equal(pm_health_state_name(&h), "open");
	assert_int_equal(pm_health_trial(&h), 0);
	int64_t opened = now;
	/* held for the whole rest; a straggler crashing meanwhile does not extend it, and a long
	 * lived worker leaving does not close it */
	assert_int_equal(pm_health_held(&h, &HC, opened + 1), 1);
	pm_health_exit(&h, &HC, 10, 0, opened + 20);
	pm_health_exit(&h, &HC, 3600000, 0, opened + 30);
	pm_health_exit(&h, &HC, 5, 1, opened + 40);
	assert_int_equal(h.open, 1);
	assert_int_equal(h.opened_ms, opened);
	assert_int_equal(h.total_crashes, 6);
	assert_int_equal(pm_health_held(&h, &HC, opened + 59999), 1);
	/* rested: half-open, one trial */
	assert_int_equal(pm_health_held(&h, &HC, opened + 60000), 0);
	assert_int_equal(h.open, 0);
	assert_int_equal(pm_health_trial(&h), 1);
	assert_string_equal(pm_health_state_name(&h), "backoff");
	assert_int_equal(pm_health_held(&h, &HC, opened + 60100), 0);
	/* a non-quick exit during the trial changes nothing: only ready closes it */
	pm_health_exit(&h, &HC, 5000, 1, opened + 60200);
	assert_int_equal(pm_health_trial(&h), 1);
	/* the trial crashes at once: open again immediately, for another full rest */
	now = opened + 60300;
	pm_health_exit(&h, &HC, 50, 0, now);
	assert_int_equal(h.open, 1);
	assert_int_equal(pm_health_trial(&h), 0);
	assert_int_equal(h.opened_ms, now);
	assert_int_equal(pm_health_held(&h, &HC, now + 59999), 1);
	assert_int_equal(pm_health_held(&h, &HC, now + 60000), 0);
	/* this trial comes up: closed */
	pm_health_ready(&h);
	assert_int_equal(pm_health_trial(&h), 0);
	assert_int_equal(h.quick_exits, 0);
	assert_int_equal(pm_health_held(&h, &HC, now + 60001), 0);
	assert_string_equal(pm_health_state_name(&h), "ok");
	/* closed means closed: the next crash is a first one (short delay, no circuit) */
	pm_health_exit(&h, &HC, 50, 0, now + 70000);
	assert_int_equal(h.open, 0);
	assert_int_equal(h.quick_exits, 1);
	assert_int_equal(h.hold_until_ms, now + 70100);

	/* crash_limit 1 (and nonsense 0): the first quick exit opens */
	pm_health_conf one = HC;
	one.crash_limit = 0;
	pm_health h1 = {0};
	pm_health_exit(&h1, &one, 0, 0, 5);
	assert_int_equal(h1.open, 1);
}

static void test_health_clock_extremes(void **state)
{
	(void)state;
	pm_health_conf c = {.crash_limit = 3,
	                    .circuit_reset_ms = INT64_MAX,
	                    .min_uptime_ms = 1000,
	                    .backoff_base_ms = INT64_MAX,
	                    .backoff_max_ms = INT64_MAX};
	pm_health h = {0};
	pm_health_exit(&h, &c, INT64_MIN, 0, INT64_MAX);
	assert_true(h.hold_until_ms == INT64_MAX);
	assert_int_equal(pm_health_held(&h, &c, INT64_MAX - 1), 1);
	pm_health_exit(&h, &c, 0, 0, INT64_MIN);
	pm_health_exit(&h, &c, 0, 0, INT64_MIN);
	assert_int_equal(h.open, 1);
	assert_true(h.opened_ms == INT64_MIN);
	assert_int_equal(pm_health_held(&h, &c, INT64_MIN + 5), 1);
	/* INT64_MAX - INT64_MIN saturates to INT64_MAX: the rest is over */
	assert_int_equal(pm_health_held(&h, &c, INT64_MAX), 0);
	assert_int_equal(pm_health_trial(&h), 1);
	/* the clock going backwards restarts the rest instead of holding for ever */
	pm_health_conf r = HC;
	pm_health g = {.open = 1, .opened_ms = 1000000, .quick_exits = 5};
	assert_int_equal(pm_health_held(&g, &r, 500), 1);
	assert_int_equal(g.opened_ms, 500);
	assert_int_equal(pm_health_held(&g, &r, 60500), 0);
}

/* A static pool whose command dies 50 ms after each start, run through the manager's loop:
 * health decides the hold, scale the spawns, ready/exit feed back. */
static void test_crash_loop_simulation(void **state)
{
	(void)state;
	pm_health_conf c = {.crash_limit = 4,
	                    .circuit_reset_ms = 10000,
	                    .min_uptime_ms = 1000,
	                    .backoff_base_ms = 100,
	                    .backoff_max_ms = 30000};
	pm_health h = {0};
	pm_scale_state st = {0};
	pm_scale_in in = {.mode = PM_STATIC, .max_children = 3};
	int64_t born[64];
	int nlive = 0;
	int64_t spawn_times[64];
	int nspawn = 0;
	int broken = 1;
	for (int64_t now = 0; now < 40000; now += 10) {
		/* exits: a broken command dies 50 ms in; reaped at once */
		if (broken)
			for (int i = 0; i < nlive; i++)
				if (now - born[i] >= 50) {
					pm_health_exit(&h, &c, now - born[i], 0, now);
					born[i--] = born[--nlive];
				}
		if (now % TICK_MS)
			continue;
		/* ready: a fixed command is ready 20 ms in, seen at the next tick */
		int starting = 0;
		for (int i = 0; i < nlive; i++) {
			if (!broken && born[i] >= 0 && now - born[i] >= 20) {
				pm_health_ready(&h);
				born[i] = -1; /* ready */
			}
			starting += born[i] >= 0;
		}
		in.held = pm_health_held(&h, &c, now);
		in.trial = pm_health_trial(&h);
		pm_scale_out o = scale_at(&in, &st, nlive, starting, nlive - starting, 0, now);
		for (int i = 0; i < o.spawn; i++) {
			assert_true(nlive < 3);
			born[nlive++] = now;
			if (nspawn < 64)
				spawn_times[nspawn++] = now;
		}
		/* the command is fixed while the circuit is open */
		if (now == 25000)
			broken = 0;
	}
	/* t=0: 3 spawned; they die at 50 ms: quick_exits 1, 2, 3 at once (holding 400 ms from
	 * the third); the 4th quick exit opens the circuit. */
	assert_int_equal(spawn_times[0], 0);
	assert_int_equal(spawn_times[1], 0);
	assert_int_equal(spawn_times[2], 0);
	/* 50 + 400 ms of backoff: the tick at 500 refills all three */
	assert_int_equal(spawn_times[3], 500);
	assert_int_equal(spawn_times[5], 500);
	/* they die at 550: the first of them is the 4th in a row: open at 550, the rest are
	 * stragglers; the circuit rests until 10550: the tick at 10600 starts ONE trial */
	assert_int_equal(spawn_times[6], 10600);
	/* it dies at 10650: open again until 20650; the next trial, at 20700, dies at 20750; the
	 * one at 30800 (the command was fixed meanwhile) is ready 20 ms in, seen at the 30900
	 * tick, which closes the circuit and refills the pool at once */
	assert_int_equal(spawn_times[7], 20700);
	assert_int_equal(spawn_times[8], 30800);
	assert_int_equal(spawn_times[9], 30900);
	assert_int_equal(spawn_times[10], 30900);
	assert_int_equal(nspawn, 11);
	assert_int_equal(nlive, 3);
	assert_string_equal(pm_health_state_name(&h), "ok");
	assert_int_equal(h.total_crashes, 8);
}

/* ---------------------------------------------------------------- requests, shedding, stops */

static void test_request_check(void **state)
{
	(void)state;
	/* slow 5 s, timeout 30 s */
	assert_int_equal(pm_request_check(0, 5000, 30000, 0), PM_REQ_OK);
	assert_int_equal(pm_request_check(4999, 5000, 30000, 0), PM_REQ_OK);
	assert_int_equal(pm_request_check(5000, 5000, 30000, 0), PM_REQ_SLOW);
	assert_int_equal(pm_request_check(5000, 5000, 30000, 1), PM_REQ_OK); /* logged once */
	assert_int_equal(pm_request_check(29999, 5000, 30000, 1), PM_REQ_OK);
	assert_int_equal(pm_request_check(30000, 5000, 30000, 1), PM_REQ_KILL);
	assert_int_equal(pm_request_check(30000, 5000, 30000, 0), PM_REQ_KILL); /* kill wins */
	assert_int_equal(pm_request_check(INT64_MAX, 5000, 30000, 0), PM_REQ_KILL);
	/* 0 = never */
	assert_int_equal(pm_request_check(INT64_MAX, 0, 0, 0), PM_REQ_OK);
	assert_int_equal(pm_request_check(INT64_MAX, 5000, 0, 0), PM_REQ_SLOW);
	assert_int_equal(pm_request_check(INT64_MAX, 0, 30000, 0), PM_REQ_KILL);
	assert_int_equal(pm_request_check(1000, -1, -1, 0), PM_REQ_OK);
	/* a clock that went backwards is not slow */
	assert_int_equal(pm_request_check(-5, 1, 1, 0), PM_REQ_OK);
	/* slow beyond the timeout: never logged slow, killed at the timeout */
	assert_int_equal(pm_request_check(1500, 2000, 1000, 0), PM_REQ_KILL);
	assert_int_equal(pm_request_check(999, 2000, 1000, 0), PM_REQ_OK);
}

static void test_shed_truth_table(void **state)
{
	(void)state;
	const int max = 4, bound = 10;
	/* every combination of the five conditions: only all five together shed */
	for (int mask = 0; mask < 32; mask++) {
		int on = mask & 1; /* shedding configured */
		int no_idle = (mask >> 1) & 1;
		int no_starting = (mask >> 2) & 1;
		int full = (mask >> 3) & 1;
		int over = (mask >> 4) & 1;
		int idle = no_idle ? 0 : 1;
		int starting = no_starting ? 0 : 1;
		int live = full ? max : max - 1;
		int queue = over ? bound + 1 : bound;
		int want = on && no_idle && no_starting && full && over;
		assert_int_equal(pm_should_shed(idle, starting, live, max, queue, on ? bound : 0),
		                 want);
	}
	/* queue unknown: never */
	assert_int_equal(pm_should_shed(0, 0, 4, 4, -1, 10), 0);
	/* the bound itself is an accepted wait; one more is not */
	assert_int_equal(pm_should_shed(0, 0, 4, 4, 10, 10), 0);
	assert_int_equal(pm_should_shed(0, 0, 4, 4, 11, 10), 1);
	/* more live than max_children (during a scale-down race) is still full */
	assert_int_equal(pm_should_shed(0, 0, 5, 4, 11, 10), 1);
	assert_int_equal(pm_should_shed(0, 0, 4, 4, INT_MAX, 1), 1);
	assert_int_equal(pm_should_shed(0, 0, 4, 4, INT_MAX, -1), 0);
}

static void test_recycle(void **state)
{
	(void)state;
	assert_int_equal(pm_should_recycle(0, 0), 0);
	assert_int_equal(pm_should_recycle(UINT64_MAX, 0), 0);
	assert_int_equal(pm_should_recycle(0, 500), 0);
	assert_int_equal(pm_should_recycle(499, 500), 0);
	assert_int_equal(pm_should_recycle(500, 500), 1);
	assert_int_equal(pm_should_recycle(501, 500), 1);
	assert_int_equal(pm_should_recycle(1, 1), 1);
	assert_int_equal(pm_should_recycle(UINT64_MAX, UINT64_MAX), 1);
}

static void test_stop_escalate(void **state)
{
	(void)state;
	assert_int_equal(pm_stop_escalate(1000, 1000, 3000), 0);
	assert_int_equal(pm_stop_escalate(1000, 3999, 3000), 0);
	assert_int_equal(pm_stop_escalate(1000, 4000, 3000), SIGKILL);
	assert_int_equal(pm_stop_escalate(1000, 99999, 3000), SIGKILL);
	/* no grace: at once */
	assert_int_equal(pm_stop_escalate(1000, 1000, 0), SIGKILL);
	assert_int_equal(pm_stop_escalate(1000, 1000, -5), SIGKILL);
	/* a clock that went backwards: wait */
	assert_int_equal(pm_stop_escalate(1000, 500, 3000), 0);
	/* extremes: no overflow */
	assert_int_equal(pm_stop_escalate(INT64_MAX - 1, INT64_MAX - 1, INT64_MAX), 0);
	assert_int_equal(pm_stop_escalate(INT64_MAX, INT64_MAX, INT64_MAX), SIGKILL);
	assert_int_equal(pm_stop_escalate(INT64_MIN, INT64_MAX, INT64_MAX), SIGKILL);
	assert_int_equal(pm_stop_escalate(INT64_MAX - 10, INT64_MAX, 5), SIGKILL);
	assert_int_equal(pm_stop_escalate(INT64_MIN, INT64_MIN, INT64_MAX), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_static_fills_and_refills),
	        cmocka_unit_test(test_static_large_pool_not_rated),
	        cmocka_unit_test(test_dynamic_start_batch),
	        cmocka_unit_test(test_dynamic_min_spare_ramp_and_window),
	        cmocka_unit_test(test_dynamic_burst),
	        cmocka_unit_test(test_dynamic_queue_covered_by_starting),
	        cmocka_unit_test(test_dynamic_scale_down),
	        cmocka_unit_test(test_dynamic_ceiling_counting),
	        cmocka_unit_test(test_ondemand_lifecycle),
	        cmocka_unit_test(test_ondemand_rules),
	        cmocka_unit_test(test_trial_spawns_one),
	        cmocka_unit_test(test_scale_extreme_inputs),
	        cmocka_unit_test(test_backoff_delay),
	        cmocka_unit_test(test_backoff_doubles_and_caps),
	        cmocka_unit_test(test_circuit),
	        cmocka_unit_test(test_health_clock_extremes),
	        cmocka_unit_test(test_crash_loop_simulation),
	        cmocka_unit_test(test_request_check),
	        cmocka_unit_test(test_shed_truth_table),
	        cmocka_unit_test(test_recycle),
	        cmocka_unit_test(test_stop_escalate),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
