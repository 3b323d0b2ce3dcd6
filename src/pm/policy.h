/* policy.h — what `fcgikit pm` decides, as pure functions over plain structs: no clock (time
 * comes in as milliseconds), no syscall, no process. pool.c measures and acts; these decide,
 * and tests/unit/test_pm_policy.c checks them tick by tick. */
#ifndef FK_PM_POLICY_H
#define FK_PM_POLICY_H

#include <stdint.h>

#include "pm/config.h"

/* ---------------------------------------------------------------- scaling
 * One call per pool per manager tick (100 ms), and when a connection arrives for an
 * ondemand pool with nobody free. Counts are of the current generation's workers that were
 * not asked to stop. */
typedef struct pm_scale_in {
	enum pm_mode mode;
	int max_children, start_servers, min_spare, max_spare, spawn_rate;
	int64_t idle_timeout_ms; /* ondemand */
	int live;     /* alive, not asked to stop */
	int starting; /* of those: spawned, not yet ready */
	int idle;     /* of those: ready and serving nothing */
	int busy;     /* of those: serving at least one request */
	int queue;    /* connections waiting in the listen queue; -1 unknown */
	int64_t longest_idle_ms; /* the longest an idle worker has been idle (0 if none) */
	int64_t now_ms;
	int held;     /* 1 while spawning is held (backoff or open circuit): spawn nothing */
} pm_scale_in;

typedef struct pm_scale_state { /* per pool, zero-initialised */
	int64_t window_start_ms;   /* spawn-rate window (1 s) */
	int spawned_in_window;
	int ramp;                  /* dynamic: spawns per tick double while short, 1, 2, 4 ... */
	int64_t last_stop_ms;      /* dynamic: at most one idle worker stopped per second */
	int64_t max_children_hits; /* more workers wanted at the ceiling (counted once per
	                              stretch at the ceiling): the status metric */
	int at_max;
	int started;               /* dynamic: start_servers reached once */
} pm_scale_state;

typedef struct pm_scale_out {
	int spawn;     /* start this many now */
	int stop_idle; /* ask this many idle workers, longest idle first, to stop */
} pm_scale_out;

/* static: keep max_children alive (refills at once; a crash loop is held by pm_health).
 * dynamic: start_servers first; then keep idle + starting >= min_spare, and grow by one when
 * connections wait and nobody is idle or starting (the listen queue: how programs that do not
 * report still scale); at most spawn_rate per second, ramping 1, 2, 4 ...; never above
 * max_children; stop one idle worker per second while idle > max_spare.
 * ondemand: spawn for waiting connections not already covered by starting workers, rate-
 * limited; stop an idle worker once the longest idle passes idle_timeout_ms. */
void pm_scale(const pm_scale_in *in, pm_scale_state *st, pm_scale_out *out);

/* ---------------------------------------------------------------- respawn health */
typedef struct pm_health_conf {
	int crash_limit;          /* quick exits in a row that open the circuit */
	int64_t circuit_reset_ms; /* how long it stays open before one trial */
	int64_t min_uptime_ms;    /* an exit sooner counts as a quick exit (crash) */
	int64_t backoff_base_ms;  /* first delay after a quick exit; doubles per exit */
	int64_t backoff_max_ms;
} pm_health_conf;

typedef struct pm_health { /* per pool, zero-initialised */
	int quick_exits;      /* in a row */
	int64_t hold_until_ms; /* backoff: no spawn before */
	int open;             /* circuit open: no spawn until opened_ms + circuit_reset_ms */
	int half_open;        /* one trial after the rest: a quick exit reopens at once */
	int64_t opened_ms;
	int64_t total_crashes;
} pm_health;

/* A worker exited after uptime_ms. clean: it was asked to stop, or ended itself cleanly
 * (exit 0 after serving); such exits and long-lived ones reset the count. */
void pm_health_exit(pm_health *h, const pm_health_conf *c, int64_t uptime_ms, int clean,
                    int64_t now_ms);
/* A worker of the pool became ready: the pool is healthy again. */
void pm_health_ready(pm_health *h);
/* 1 while spawning must wait. Moves an open circuit to half-open after its rest. */
int pm_health_held(pm_health *h, const pm_health_conf *c, int64_t now_ms);
const char *pm_health_state_name(const pm_health *h); /* "ok", "backoff", "open" */

/* ---------------------------------------------------------------- requests and stops */
enum pm_req_verdict { PM_REQ_OK, PM_REQ_SLOW /* log it, once */, PM_REQ_KILL };
/* slow_ms, timeout_ms: 0 = never. slow_logged: this request was already logged slow. */
enum pm_req_verdict pm_request_check(int64_t elapsed_ms, int64_t slow_ms, int64_t timeout_ms,
                                     int slow_logged);
/* Whether the manager should answer new connections itself: nobody idle or starting, no
 * room to grow, and more than shed_queue waiting (shed_queue 0 = never; queue -1 = unknown:
 * never). */
int pm_should_shed(int idle, int starting, int live, int max_children, int queue, int shed_queue);
/* 1 once a worker has served max_requests (0 = never). */
int pm_should_recycle(uint64_t served, uint64_t max_requests);
/* SIGKILL once grace_ms have passed since the worker was asked to stop, else 0. */
int pm_stop_escalate(int64_t asked_ms, int64_t now_ms, int64_t grace_ms);

#endif
