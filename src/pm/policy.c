/* policy.c — the manager's decisions (see policy.h for each contract). Pure: no clock, no
 * syscall. Arithmetic on times and counts is done in int64_t and saturates, so hostile or
 * nonsensical inputs give a nonsensical answer, never undefined behaviour. */
#include <limits.h>
#include <signal.h>
#include <stdint.h>

#include "pm/policy.h"

/* ---------------------------------------------------------------- arithmetic */

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* a - b, saturated: used for "how long since", where both come from one clock but nothing
 * stops a caller (or a test) from passing extremes. */
static int64_t sub_sat(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_sub_overflow(a, b, &r))
		return b < 0 ? INT64_MAX : INT64_MIN;
	return r;
}

static int64_t add_sat(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

/* Counts come in as int; negative ones (a caller's bug) read as 0. The result fits an int
 * because it is never more than one of the inputs. */
static int64_t cnt(int v) { return v > 0 ? v : 0; }

/* ---------------------------------------------------------------- scaling */

static int64_t rate_of(const pm_scale_in *in)
{
	return in->spawn_rate > 0 ? in->spawn_rate : PM_SPAWN_RATE_DEFAULT;
}

/* How many more may start in the current window; opens a new window when the old one is over
 * (or the clock went backwards, which would otherwise freeze spawning for good). */
static int64_t rate_room(const pm_scale_in *in, pm_scale_state *st)
{
	int64_t since = sub_sat(in->now_ms, st->window_start_ms);
	if (since >= PM_RATE_WINDOW_MS || since < 0) {
		st->window_start_ms = in->now_ms;
		st->spawned_in_window = 0;
	}
	return max64(0, rate_of(in) - st->spawned_in_window);
}

static void note_spawned(pm_scale_state *st, int64_t n)
{
	int64_t s = (int64_t)st->spawned_in_window + n;
	st->spawned_in_window = (int)min64(s, INT_MAX);
}

/* The ceiling metric. wanted: workers wanted this tick; n: spawned this tick. The pool is "at
 * the ceiling" when it wanted more than it spawned and the spawns filled it: what stopped it
 * was max_children, not the ramp, the rate or a hold. A long stretch there counts once, the
 * way php-fpm warns once when it reaches pm.max_children rather than every cycle. */
static void note_ceiling(const pm_scale_in *in, pm_scale_state *st, int64_t wanted, int64_t n)
{
	int at = wanted > n && cnt(in->live) + n >= (int64_t)in->max_children;
	if (at && !st->at_max && st->max_children_hits < INT64_MAX)
		st->max_children_hits++;
	st->at_max = at;
}

/* What the hold, the trial, the ceiling and the rate leave of n. */
static int64_t limit_spawn(const pm_scale_in *in, pm_scale_state *st, int64_t n, int rated)
{
	int64_t room = max64(0, (int64_t)in->max_children - cnt(in->live));
	n = min64(n, room);
	if (in->held)
		n = 0;
	/* Half-open circuit: one worker tests the program; more only once it proved itself
	 * (ready closes the circuit and clears trial) or left (starting drops back to 0). */
	if (in->trial)
		n = cnt(in->starting) > 0 ? 0 : min64(n, 1);
	if (rated && n > 0)
		n = min64(n, rate_room(in, st));
	return max64(n, 0);
}

static void scale_static(const pm_scale_in *in, pm_scale_state *st, pm_scale_out *out)
{
	int64_t want = max64(0, (int64_t)in->max_children - cnt(in->live));
	out->spawn = (int)limit_spawn(in, st, want, 0);
}

static void scale_dynamic(const pm_scale_in *in, pm_scale_state *st, pm_scale_out *out)
{
	int64_t live = cnt(in->live), idle = cnt(in->idle), starting = cnt(in->starting);
	int64_t rate = rate_of(in);
	if (st->ramp < 1)
		st->ramp = 1;

	if (!st->started) {
		/* The start batch: a known number, spawned at once like php-fpm's start_servers
		 * (not ramped, not rated; it still fills the window, so a burst right after start
		 * does not add another spawn_rate on top). */
		int64_t want = max64(0, (int64_t)in->start_servers - live);
		int64_t n = limit_spawn(in, st, want, 0);
		if (n > 0) {
			rate_room(in, st); /* opens the window if it is over */
			note_spawned(st, n);
		}
		note_ceiling(in, st, want, n);
		out->spawn = (int)n;
		if (live + n >= (int64_t)in->start_servers)
			st->started = 1;
		return;
	}

	int64_t want = max64(0, (int64_t)in->min_spare - (idle + starting));
	/* Connections wait and nobody is idle: the kernel's queue says the pool is short even if
	 * its workers never report (then idle is what the manager sampled). Workers already
	 * starting will each take one, so only the rest count. */
	if (in->queue > 0 && idle == 0)
		want = max64(want, (int64_t)in->queue - starting);

	if (want == 0) {
		st->ramp = 1; /* no longer short: the next shortage starts slow again */
		note_ceiling(in, st, 0, 0);
	} else {
		int64_t n = limit_spawn(in, st, min64(want, st->ramp), 1);
		note_ceiling(in, st, want, n);
		if (n > 0) {
			note_spawned(st, n);
			/* php-fpm doubles its idle_spawn_rate after each cycle that spawned while
			 * short; so do we, per tick, up to spawn_rate. A tick that could not spawn
			 * (held, ceiling, window full) leaves the ramp where it was. */
			st->ramp = (int)min64((int64_t)st->ramp * 2, rate);
		}
		out->spawn = (int)n;
	}

	/* Scale down gently: one per second, so a pool that just served a burst keeps most of
	 * its workers for the next one. Not while connections wait: a worker that looks idle
	 * then is about to take one (or was sampled a moment too early). */
	if (idle > in->max_spare && in->queue <= 0 &&
	    (!st->stopped || sub_sat(in->now_ms, st->last_stop_ms) >= PM_STOP_PACE_MS ||
	     sub_sat(in->now_ms, st->last_stop_ms) < 0)) {
		out->stop_idle = 1;
		st->last_stop_ms = in->now_ms;
		st->stopped = 1;
	}
}

static void scale_ondemand(const pm_scale_in *in, pm_scale_state *st, pm_scale_out *out)
{
	int64_t want = 0;
	if (in->queue > 0 && cnt(in->idle) == 0)
		want = max64(0, (int64_t)in->queue - cnt(in->starting));
	int64_t n = want > 0 ? limit_spawn(in, st, want, 1) : 0;
	if (n > 0)
		note_spawned(st, n);
	note_ceiling(in, st, want, n);
	out->spawn = (int)n;

	/* The caller knows only the longest idle, so one per call: the next longest goes on a
	 * later tick if it qualifies too. Not while connections wait (see scale_dynamic). */
	if (cnt(in->idle) > 0 && in->queue <= 0 && in->idle_timeout_ms > 0 &&
	    in->longest_idle_ms >= in->idle_timeout_ms)
		out->stop_idle = 1;
}

void pm_scale(const pm_scale_in *in, pm_scale_state *st, pm_scale_out *out)
{
	out->spawn = 0;
	out->stop_idle = 0;
	switch (in->mode) {
	case PM_STATIC:
		scale_static(in, st, out);
		return;
	case PM_DYNAMIC:
		scale_dynamic(in, st, out);
		return;
	case PM_ONDEMAND:
		scale_ondemand(in, st, out);
		return;
	}
}

/* ---------------------------------------------------------------- health */

int64_t pm_backoff_delay(const pm_health_conf *c, int n)
{
	if (n <= 0)
		return 0;
	int64_t cap = max64(0, c->backoff_max_ms);
	int64_t d = min64(max64(0, c->backoff_base_ms), cap);
	/* Doubling stops at the cap, so neither the shift count nor the value can overflow
	 * (n may be in the thousands with a large crash_limit). */
	for (int i = 1; i < n && d < cap; i++)
		d = d > cap / 2 ? cap : d * 2;
	return d;
}

void pm_health_exit(pm_health *h, const pm_health_conf *c, int64_t uptime_ms, int clean,
                    int64_t now_ms)
{
	if (clean || uptime_ms >= c->min_uptime_ms) {
		/* Not a crash. It ends a backoff: the program does run. But it cannot close or
		 * reset a circuit: only a new worker reaching ready proves new workers can start. */
		if (!h->open && !h->half_open) {
			h->quick_exits = 0;
			h->hold_until_ms = 0;
		}
		return;
	}
	if (h->total_crashes < INT64_MAX)
		h->total_crashes++;
	if (h->quick_exits < INT_MAX)
		h->quick_exits++;
	if (h->open)
		return; /* a worker spawned before it opened: the rest runs from the opening */
	int limit = c->crash_limit > 0 ? c->crash_limit : 1;
	if (h->half_open || h->quick_exits >= limit) {
		/* The crash_limit-th in a row, or the trial after the rest crashed at once. */
		h->open = 1;
		h->half_open = 0;
		h->opened_ms = now_ms;
		h->hold_until_ms = 0;
		return;
	}
	h->hold_until_ms = add_sat(now_ms, pm_backoff_delay(c, h->quick_exits));
}

void pm_health_ready(pm_health *h)
{
	h->quick_exits = 0;
	h->hold_until_ms = 0;
	h->open = 0;
	h->half_open = 0;
}

int pm_health_held(pm_health *h, const pm_health_conf *c, int64_t now_ms)
{
	if (h->open) {
		int64_t since = sub_sat(now_ms, h->opened_ms);
		/* since < 0: the clock went backwards; rest from now rather than for ever. */
		if (since < 0)
			h->opened_ms = now_ms;
		if (since < 0 || since < c->circuit_reset_ms)
			return 1;
		h->open = 0;
		h->half_open = 1;
		h->hold_until_ms = 0;
		return 0;
	}
	return h->hold_until_ms > 0 && now_ms < h->hold_until_ms;
}

int pm_health_trial(const pm_health *h) { return h->half_open; }

const char *pm_health_state_name(const pm_health *h)
{
	if (h->open)
		return "open";
	if (h->half_open || h->quick_exits > 0)
		return "backoff";
	return "ok";
}

/* ---------------------------------------------------------------- requests, shedding */

enum pm_req_verdict pm_request_check(int64_t elapsed_ms, int64_t slow_ms, int64_t timeout_ms,
                                     int slow_logged)
{
	if (timeout_ms > 0 && elapsed_ms >= timeout_ms)
		return PM_REQ_KILL;
	if (slow_ms > 0 && elapsed_ms >= slow_ms && !slow_logged)
		return PM_REQ_SLOW;
	return PM_REQ_OK;
}

int pm_should_shed(int idle, int starting, int live, int max_children, int queue, int shed_queue)
{
	/* Shedding turns clients away, so it is for when waiting cannot help:
	 * - shed_queue 0 is "off", and an unknown queue (-1) is never a reason;
	 * - an idle worker will take the next connection in a moment;
	 * - a starting worker is capacity on its way (every start-up and every recycle has one;
	 *   shedding then would answer 503 at each of them for a wait of one start-up);
	 * - below max_children the scaler grows the pool instead;
	 * - and up to shed_queue waiting connections are an accepted wait.
	 * Only with all of these ruled out is the surplus answered by the manager. */
	if (shed_queue <= 0 || queue < 0)
		return 0;
	return idle <= 0 && starting <= 0 && live >= max_children && queue > shed_queue;
}

int pm_should_recycle(uint64_t served, uint64_t max_requests)
{
	return max_requests > 0 && served >= max_requests;
}

int pm_stop_escalate(int64_t asked_ms, int64_t now_ms, int64_t grace_ms)
{
	return now_ms >= add_sat(asked_ms, max64(grace_ms, 0)) ? SIGKILL : 0;
}
