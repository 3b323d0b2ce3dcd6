/* policy.c — the manager's decisions (see policy.h). Pure: no clock, no syscall. */
#include <signal.h>

#include "pm/policy.h"

static int imin(int a, int b) { return a < b ? a : b; }

/* How many may still be spawned in the current 1 s window. */
static int rate_room(const pm_scale_in *in, pm_scale_state *st)
{
	if (in->now_ms - st->window_start_ms >= 1000 || in->now_ms < st->window_start_ms) {
		st->window_start_ms = in->now_ms;
		st->spawned_in_window = 0;
	}
	int rate = in->spawn_rate > 0 ? in->spawn_rate : 32;
	return rate - st->spawned_in_window;
}

static void note_ceiling(pm_scale_state *st, int wanted_more, int at_ceiling)
{
	int hit = wanted_more && at_ceiling;
	if (hit && !st->at_max)
		st->max_children_hits++;
	st->at_max = hit;
}

void pm_scale(const pm_scale_in *in, pm_scale_state *st, pm_scale_out *out)
{
	out->spawn = out->stop_idle = 0;
	int room = in->max_children - in->live;
	if (room < 0)
		room = 0;
	switch (in->mode) {
	case PM_STATIC:
		if (!in->held)
			out->spawn = room;
		return;
	case PM_DYNAMIC: {
		int want = 0;
		if (!st->started) {
			want = in->start_servers - in->live;
		} else {
			int spare = in->idle + in->starting;
			if (spare < in->min_spare)
				want = in->min_spare - spare;
			if (in->queue > 0 && in->idle == 0 && in->starting == 0 && want < 1)
				want = 1; /* connections wait and nobody is free: the kernel says grow */
		}
		if (want > 0) {
			/* php-fpm's ramp: 1, 2, 4 ... per second while still short */
			if (st->ramp < 1)
				st->ramp = 1;
			int n = imin(want, st->started ? st->ramp : want);
			note_ceiling(st, 1, n > room);
			n = imin(n, room);
			n = imin(n, rate_room(in, st));
			if (in->held || n < 0)
				n = 0;
			out->spawn = n;
			st->spawned_in_window += n;
			if (n > 0 && st->started && st->ramp < (in->spawn_rate > 0 ? in->spawn_rate : 32))
				st->ramp *= 2;
		} else {
			st->ramp = 1;
			note_ceiling(st, 0, 0);
		}
		if (!in->held && in->live + out->spawn >= in->start_servers)
			st->started = 1;
		if (in->idle > in->max_spare && in->now_ms - st->last_stop_ms >= 1000) {
			out->stop_idle = 1;
			st->last_stop_ms = in->now_ms;
		}
		return;
	}
	case PM_ONDEMAND: {
		if (in->queue > 0 && in->idle == 0 && in->starting < in->queue) {
			int n = imin(in->queue - in->starting, room);
			note_ceiling(st, 1, in->queue - in->starting > room);
			n = imin(n, rate_room(in, st));
			if (in->held || n < 0)
				n = 0;
			out->spawn = n;
			st->spawned_in_window += n;
		} else {
			note_ceiling(st, 0, 0);
		}
		if (in->idle > 0 && in->longest_idle_ms >= in->idle_timeout_ms)
			out->stop_idle = 1;
		return;
	}
	}
}

/* ---------------------------------------------------------------- health */

void pm_health_exit(pm_health *h, const pm_health_conf *c, int64_t uptime_ms, int clean,
                    int64_t now_ms)
{
	if (clean || uptime_ms >= c->min_uptime_ms) {
		if (!h->open)
			h->quick_exits = 0;
		h->hold_until_ms = 0;
		return;
	}
	h->total_crashes++;
	h->quick_exits++;
	if (h->half_open || h->quick_exits >= c->crash_limit) {
		/* A trial after the circuit's rest that crashed at once: open again. */
		h->open = 1;
		h->half_open = 0;
		h->opened_ms = now_ms;
		return;
	}
	int shift = h->quick_exits - 1;
	if (shift > 20)
		shift = 20;
	int64_t delay = c->backoff_base_ms << shift;
	if (delay > c->backoff_max_ms || delay < 0)
		delay = c->backoff_max_ms;
	h->hold_until_ms = now_ms + delay;
}

void pm_health_ready(pm_health *h)
{
	h->quick_exits = 0;
	h->open = 0;
	h->half_open = 0;
	h->hold_until_ms = 0;
}

int pm_health_held(pm_health *h, const pm_health_conf *c, int64_t now_ms)
{
	if (h->open) {
		if (now_ms - h->opened_ms < c->circuit_reset_ms)
			return 1;
		/* Rested: let one worker try. */
		h->open = 0;
		h->half_open = 1;
		h->hold_until_ms = 0;
		return 0;
	}
	return now_ms < h->hold_until_ms;
}

const char *pm_health_state_name(const pm_health *h)
{
	if (h->open)
		return "open";
	if (h->quick_exits > 0)
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
	/* Shed only when waiting cannot help: nobody is free, nobody is on the way, the pool may
	 * not grow, and more are queued than the bound. Anything less and the queue drains by
	 * itself within a request's time. */
	if (shed_queue <= 0 || queue < 0)
		return 0;
	return idle == 0 && starting == 0 && live >= max_children && queue > shed_queue;
}

int pm_should_recycle(uint64_t served, uint64_t max_requests)
{
	return max_requests > 0 && served >= max_requests;
}

int pm_stop_escalate(int64_t asked_ms, int64_t now_ms, int64_t grace_ms)
{
	return now_ms - asked_ms >= grace_ms ? SIGKILL : 0;
}
