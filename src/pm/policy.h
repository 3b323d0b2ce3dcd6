/* policy.h — what `fcgikit pm` decides, as small pure functions over plain structs: no clock
 * (time comes in as int64 milliseconds, from any one monotonic origin), no syscall, no process,
 * no allocation. pool.c measures and acts; these decide, and tests/unit/test_pm_policy.c
 * checks them tick by tick without a socket. Policy apart from mechanism: a rule changes here
 * and in its test, never in the event code.
 *
 * Every function tolerates any input values without undefined behaviour: time differences
 * and sums saturate instead of overflowing, shifts are capped, negative counts read as 0. */
#ifndef FK_PM_POLICY_H
#define FK_PM_POLICY_H

#include <stdint.h>

#include "pm/config.h"

/* spawn_rate <= 0 in pm_scale_in reads as this (the config default). */
#define PM_SPAWN_RATE_DEFAULT 32
/* The spawn-rate window and the dynamic scale-down pace. */
#define PM_RATE_WINDOW_MS 1000
#define PM_STOP_PACE_MS 1000

/* ---------------------------------------------------------------- scaling
 * One call per pool per manager tick (100 ms), and when a connection arrives for an ondemand
 * pool with nobody free. The counts are of the current generation's workers that were not
 * asked to stop; live = starting + idle + busy (busy is informational). */
typedef struct pm_scale_in {
	enum pm_mode mode;
	int max_children, start_servers, min_spare, max_spare, spawn_rate;
	int64_t idle_timeout_ms; /* ondemand; <= 0: never stop for idleness */
	int live;                /* alive, not asked to stop */
	int starting;            /* of those: spawned, not yet ready */
	int idle;                /* of those: ready and serving nothing */
	int busy;                /* of those: serving at least one request */
	int queue;               /* connections waiting in the listen queue; -1 unknown */
	int64_t longest_idle_ms; /* the longest an idle worker has been idle (0 if none) */
	int64_t now_ms;
	/* 1 while spawning is held (backoff or open circuit): spawn nothing. */
	int held;
	/* 1 while the circuit is half-open (pm_health_trial): at most one worker may be
	 * starting, so a single worker tests the program. 0 when unset. */
	int trial;
} pm_scale_in;

/* Per pool, zero-initialised; only pm_scale writes it. */
typedef struct pm_scale_state {
	int64_t window_start_ms; /* spawn-rate window (PM_RATE_WINDOW_MS) */
	int spawned_in_window;
	/* dynamic: the most to spawn this tick; doubles after each tick that spawned while short
	 * (1, 2, 4 ... spawn_rate), back to 1 once nothing is wanted: php-fpm's idle_spawn_rate */
	int ramp;
	int64_t last_stop_ms; /* dynamic: when an idle worker was last stopped */
	/* More workers wanted at the ceiling, counted once per stretch at the ceiling: the
	 * status metric. */
	int64_t max_children_hits;
	int at_max;  /* 1 while in such a stretch */
	int started; /* dynamic: the start_servers batch has been spawned */
	int stopped; /* dynamic: last_stop_ms is meaningful */
} pm_scale_state;

typedef struct pm_scale_out {
	int spawn;     /* start this many now */
	int stop_idle; /* ask this many idle workers, longest idle first, to stop */
} pm_scale_out;

/* Decides one tick; always fills *out (zeroes when nothing is to be done). Spawns are never
 * more than max_children - live, never any while held, and at most one worker is starting
 * while trial is set.
 *
 * static: spawn max_children - live at once (no rate limit: the count is fixed and a crash
 *   loop is slowed by pm_health, not here).
 * dynamic: the first spawn is the start_servers batch, at once. After that, what is wanted
 *   is the larger of min_spare - (idle + starting) and, when connections wait (queue > 0)
 *   and nobody is idle, queue - starting: the listen queue is how programs that do not
 *   report their state still scale (idle is then what the manager sampled). Spawns per tick
 *   follow the ramp (1, 2, 4 ... spawn_rate) and at most spawn_rate fall in one 1 s window.
 *   While idle > max_spare and no connection waits, one idle worker is stopped, at most one
 *   per PM_STOP_PACE_MS.
 * ondemand: while connections wait and nobody is idle, spawn one per waiting connection not
 *   already covered by a starting worker, rate-limited like dynamic (no ramp: each spawn
 *   answers a connection that is there). While no connection waits, stop one idle worker
 *   per call once the longest idle has been idle idle_timeout_ms; the next one goes on a
 *   later call if it qualifies too.
 *
 * max_children_hits counts the moments the pool enters the state "more workers wanted, but
 * after this tick's spawns live is at max_children"; it stays there (no further count) until
 * a tick wants nothing more or has room again. */
void pm_scale(const pm_scale_in *in, pm_scale_state *st, pm_scale_out *out);

/* ---------------------------------------------------------------- respawn health
 * Respawn backoff and the crash-loop circuit, one pm_health per pool (reset on reload).
 *
 * A quick exit is one that was not asked for (clean = 0) and came less than min_uptime_ms
 * after the spawn. Each quick exit in a row holds spawning for backoff_base_ms *
 * 2^(quick_exits - 1), capped at backoff_max_ms. At crash_limit quick exits in a row the
 * circuit opens: nothing spawns for circuit_reset_ms. Then it half-opens: one trial worker may
 * start (pm_health_trial tells pm_scale to allow just one). The trial reaching ready closes the
 * circuit (pm_health_ready); a quick exit re-opens it at once for another circuit_reset_ms. */
typedef struct pm_health_conf {
	int crash_limit;          /* quick exits in a row that open the circuit; <= 0 reads as 1 */
	int64_t circuit_reset_ms; /* how long it stays open before a trial */
	int64_t min_uptime_ms;    /* an unasked exit sooner is a quick exit (crash); 1000 */
	int64_t backoff_base_ms;  /* the delay after the first quick exit; 100 */
	int64_t backoff_max_ms;   /* the delay's cap; 30000 */
} pm_health_conf;

/* Per pool, zero-initialised. */
typedef struct pm_health {
	int quick_exits;       /* in a row, since the last ready or non-quick exit */
	int64_t hold_until_ms; /* backoff: no spawn before this (meaningful while > 0) */
	int open;              /* circuit open: no spawn until opened_ms + circuit_reset_ms */
	int half_open;         /* rested: one trial worker; a quick exit re-opens at once */
	int64_t opened_ms;
	int64_t total_crashes; /* quick exits ever: the status metric */
} pm_health;

/* A worker of the current generation exited after living uptime_ms. clean: it was asked to
 * stop (recycle, scale down, reload) or ended itself on purpose. A clean or long-lived exit
 * ends a backoff (quick_exits = 0, no hold) — but changes nothing while the circuit is open or
 * half-open: an old worker leaving says nothing about whether new ones can start; only a
 * worker reaching ready does. A quick exit counts a crash, holds spawning for the backoff
 * delay, opens the circuit at crash_limit, and re-opens a half-open one (opened_ms = now).
 * Quick exits while already open (workers spawned before it opened) are counted but do not
 * move opened_ms. */
void pm_health_exit(pm_health *h, const pm_health_conf *c, int64_t uptime_ms, int clean,
                    int64_t now_ms);
/* A worker of the current generation became ready: the program can start, so the pool is
 * healthy again — quick_exits = 0, no hold, the circuit closed. */
void pm_health_ready(pm_health *h);
/* 1 while spawning must wait: a backoff delay running (now_ms < hold_until_ms) or the circuit
 * open. Once an open circuit has rested circuit_reset_ms it half-opens and this returns 0 so
 * that a trial can start; pm_health_trial then reads 1. */
int pm_health_held(pm_health *h, const pm_health_conf *c, int64_t now_ms);
/* 1 while half-open: what pm_scale_in.trial should carry. */
int pm_health_trial(const pm_health *h);
/* "open" while the circuit is open; "backoff" while quick exits are counted (a delay running
 * or over, or a half-open trial); else "ok". Static strings. */
const char *pm_health_state_name(const pm_health *h);
/* The delay after the n-th quick exit in a row: base * 2^(n-1), capped at max; 0 for n <= 0.
 * Exposed for tests and the status page; never overflows. */
int64_t pm_backoff_delay(const pm_health_conf *c, int n);

/* ---------------------------------------------------------------- requests and stops */
enum pm_req_verdict { PM_REQ_OK, PM_REQ_SLOW /* log it, once */, PM_REQ_KILL };
/* For a request running elapsed_ms: KILL once elapsed_ms >= timeout_ms; else SLOW once
 * elapsed_ms >= slow_ms if slow_logged is 0 (this request was not logged yet); else OK.
 * slow_ms, timeout_ms: <= 0 = never. KILL wins over SLOW: a request past both is stopped,
 * and the kill is logged on its own. */
enum pm_req_verdict pm_request_check(int64_t elapsed_ms, int64_t slow_ms, int64_t timeout_ms,
                                     int slow_logged);
/* 1 when the manager should answer new connections itself: shed_queue > 0, queue known and
 * above shed_queue, nobody idle, nobody starting, and no room to grow (live >= max_children).
 * See policy.c for why each condition is there. */
int pm_should_shed(int idle, int starting, int live, int max_children, int queue, int shed_queue);
/* 1 once a worker has served max_requests (max_requests 0 = never). */
int pm_should_recycle(uint64_t served, uint64_t max_requests);
/* For a worker asked to stop (SIGTERM) at asked_ms: SIGKILL once now_ms >= asked_ms +
 * grace_ms (grace_ms <= 0: at once), else 0. The caller sends it once. */
int pm_stop_escalate(int64_t asked_ms, int64_t now_ms, int64_t grace_ms);

#endif
