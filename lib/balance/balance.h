/*
 * balance.h — backend selection and backend health for `fcgikit gateway`, as pure policy.
 *
 * Nothing here makes a system call, reads a clock, takes a lock or starts a thread. Time is
 * an argument: `now` is int64 milliseconds on any monotonic clock the caller likes (only
 * differences matter; values may be negative). The event code owns the sockets and timers and
 * calls in here to decide; the tests drive the same functions with made-up times.
 *
 * Model
 * -----
 * A group (fk_bal_group) holds n backends, 1 <= n <= FK_BAL_MAX_BACKENDS. Each backend has
 *   - a weight, 1..FK_BAL_WEIGHT_MAX (its share of traffic relative to the others);
 *   - a capacity, the most requests it may have in flight (0 = unlimited). Two sources: one
 *     configured by the operator, one learned (FCGI_MAX_REQS on a multiplexing backend, else
 *     FCGI_MAX_CONNS, from GET_VALUES; or lowered by an OVERLOADED answer). The effective
 *     capacity is the smaller of the non-zero ones (fk_bal_capacity);
 *   - `outstanding`, the requests in flight, kept by the caller with fk_bal_acquire() when a
 *     request is dispatched to it and fk_bal_release() when that request is over;
 *   - an `enabled` flag (administrative drain: no new requests, in-flight ones finish);
 *   - a health state, UP, DOWN or PROBING (below).
 *
 * Selection functions return a backend index or -1 when none may take a request now (all
 * down, all at capacity, all overloaded, all excluded): the caller then queues the request
 * (fk_bal_queue_admit) or answers 503. A pick is only a recommendation: the caller must call
 * fk_bal_acquire() on the index it actually uses, before the next pick, or capacity and the
 * half-open single-trial rule cannot be enforced.
 *
 * A backend is *eligible* for a normal pick at time `now` when all of these hold:
 *   enabled; not in the caller's `tried` set; not overloaded (now >= overload_until);
 *   outstanding < effective capacity (or capacity unlimited); and
 *   state UP, or state PROBING with outstanding == 0 (the half-open trial: exactly one
 *   request at a time — requests dispatched before the ejection still count, so the trial
 *   waits until they are over; they decide the state themselves when they report).
 *
 * Health state machine (per backend)
 * ----------------------------------
 *                 `fails` failures within fail_window_ms,
 *                 or `fails` consecutive probe failures
 *        +------+ -------------------------------------> +------+
 *        |  UP  |                                         | DOWN | until down_until
 *        +------+ <------ any success, probe ok --------- +------+
 *           ^                                              |   ^
 *           |  success, probe ok        now >= down_until  |   | failure, probe failure
 *           |                                              v   | (backoff doubled)
 *           +--------------------------------------------- +---------+
 *                                                          | PROBING |
 *                                                          +---------+
 *
 * - Passive: fk_bal_report_failure() for connect errors, timeouts, resets. In UP, the
 *   failure's time is remembered; when `fails` of them fall within a sliding window of
 *   fail_window_ms (a failure at t counts at `now` iff now - t < fail_window_ms) the backend
 *   is ejected. Defaults 3 within 10 s, like nginx max_fails/fail_timeout.
 * - Ejection: DOWN until now + backoff, backoff = backoff_base_ms << (k - 1) capped at
 *   backoff_max_ms, where k counts consecutive ejections (defaults 1 s doubling to 60 s).
 *   k is reset to 0 by any success (request or probe), which also forgets past failures.
 * - When down_until passes the backend becomes PROBING (lazily, by whatever function is
 *   next called with a `now`, or by fk_bal_tick()). A success moves it to UP; a failure
 *   (request or probe) moves it straight back to DOWN with k + 1, i.e. doubled backoff.
 * - A success in DOWN (a request dispatched before the ejection, or sent by the all-down
 *   fallback, that did succeed) is proof of life: the backend goes UP at once. A failure in
 *   DOWN changes nothing: the backend is already ejected and the ejection is not extended.
 * - Active probes (fk_bal_probe_result): ok moves any state to UP. A failed probe in UP
 *   counts toward `fails` *consecutive* probe failures (reset only by a probe success, so a
 *   broken backend that still answers some requests is still caught), then DOWN. A failed
 *   probe in PROBING is the half-open trial failing: DOWN with doubled backoff. In DOWN it
 *   changes nothing. Probes may be sent in any state, at any interval the caller chooses.
 * - OVERLOADED (fk_bal_report_overloaded): not a failure. The backend is skipped by normal
 *   picks until now + overload_ms; and, when cfg.overload_lowers_capacity is set, its learned
 *   capacity is lowered to the requests it was holding when it refused (see the function).
 * - cfg.fails == 0 turns ejection off altogether (failures are only counted).
 *
 * All-down fallback: when cfg.all_down_fallback is set and no enabled, untried backend is
 * UP, a pick that found nothing eligible returns instead the enabled, untried, not
 * overloaded, under-capacity backend whose ejection ends soonest (PROBING ones count as
 * already ended; ties go to the lowest index). Its state is not changed by the pick: a
 * success revives it, a failure leaves a DOWN one as it is (a PROBING one goes back DOWN,
 * as for any failed trial). This is nginx's behaviour (when every peer is marked failed it
 * tries them anyway) and suits a pool where refusing outright is worse than trying. When
 * some backend is UP but full or overloaded, there is no fallback: the caller queues.
 *
 * Index arguments: functions taking `idx` ignore (or report FCGI_EINVAL for) an index
 * outside 0..n-1, so a stale index cannot corrupt memory.
 */
#ifndef FK_BALANCE_H
#define FK_BALANCE_H

#include <stddef.h>
#include <stdint.h>

#define FK_BAL_MAX_BACKENDS 1024
#define FK_BAL_WEIGHT_MAX 1000
/* Most failure timestamps a backend remembers, hence the largest usable cfg.fails. */
#define FK_BAL_MAX_FAILS 16
/* Most points on the consistent-hash ring, whatever the weights: 2^18 points * 16 bytes =
 * 4 MiB at most. Above it every backend's point count is scaled down in proportion. */
#define FK_BAL_RING_MAX (1u << 18)
/* "No time": returned by fk_bal_next_event when nothing is scheduled to change. */
#define FK_BAL_NEVER INT64_MAX

typedef enum fk_bal_state {
	FK_BAL_UP = 0,  /* takes requests */
	FK_BAL_DOWN,    /* ejected until down_until */
	FK_BAL_PROBING, /* half-open: one request at a time until a verdict */
} fk_bal_state;

/* Why a request failed. All kinds count alike toward ejection; the kind only feeds the
 * per-backend counters (fails_by_kind) for the stats page and logs. */
typedef enum fk_bal_fail_kind {
	FK_BAL_FAIL_CONNECT = 0, /* connect() refused / unreachable */
	FK_BAL_FAIL_TIMEOUT,     /* connect, first-byte or idle timeout */
	FK_BAL_FAIL_RESET,       /* connection reset or closed before END_REQUEST */
	FK_BAL_FAIL_PROTOCOL,    /* malformed FastCGI from the backend */
	FK_BAL_FAIL_KINDS
} fk_bal_fail_kind;

typedef enum fk_bal_policy {
	FK_BAL_WRR = 0, /* smooth weighted round-robin (fk_bal_pick_wrr) */
	FK_BAL_LEAST,   /* weighted least outstanding (fk_bal_pick_least) */
	FK_BAL_HASH,    /* consistent hash on a key (fk_bal_pick_hash) */
} fk_bal_policy;

typedef enum fk_bal_cap_source {
	FK_BAL_CAP_CONFIGURED = 0, /* set by the operator; OVERLOADED never changes it */
	FK_BAL_CAP_LEARNED,        /* from GET_VALUES; OVERLOADED may lower it */
} fk_bal_cap_source;

typedef struct fk_bal_config {
	fk_bal_policy policy; /* what fk_bal_pick() uses; default FK_BAL_WRR */
	unsigned fails; /* failures that eject, 0..FK_BAL_MAX_FAILS; default 3; 0 = never eject */
	int64_t fail_window_ms;       /* sliding window for `fails`; default 10000; > 0 */
	int64_t backoff_base_ms;      /* first ejection; default 1000; > 0 */
	int64_t backoff_max_ms;       /* cap of the doubling; default 60000; >= backoff_base_ms */
	int64_t overload_ms;          /* skip after OVERLOADED; default 1000; >= 0 */
	unsigned hash_vnodes;         /* ring points per unit of weight; default 100; 0 = no ring */
	int overload_lowers_capacity; /* default 1 */
	int all_down_fallback;        /* default 0 (see "All-down fallback" above) */
} fk_bal_config;

/* How the caller describes one backend to fk_bal_group_new. */
typedef struct fk_bal_backend_conf {
	/* Identity for the hash ring: the bytes are hashed (not kept), e.g. "10.0.0.5:9000".
	 * Two groups that give a backend the same id place it on the same ring points, so a
	 * group rebuilt without one backend (indices shifted) still maps the other keys the
	 * same way. NULL = the index is the identity. */
	const void *id;
	size_t id_len;
	unsigned weight;   /* 1..FK_BAL_WEIGHT_MAX; 0 is taken as 1 */
	unsigned capacity; /* configured capacity; 0 = unlimited */
} fk_bal_backend_conf;

/* One backend. Read freely; change only through the functions below. */
typedef struct fk_bal_backend {
	uint64_t id_hash;
	unsigned weight;
	unsigned cap_conf;    /* configured capacity, 0 = none */
	unsigned cap_learned; /* learned capacity, 0 = none */
	unsigned outstanding; /* requests in flight (fk_bal_acquire - fk_bal_release) */
	int enabled;
	fk_bal_state state;
	int64_t down_until;     /* DOWN: when it becomes PROBING */
	int64_t overload_until; /* skipped by normal picks while now < overload_until */
	unsigned ejections;     /* consecutive ejections (k); reset by a success */
	unsigned probe_fails;   /* consecutive failed probes; reset by a probe success */
	unsigned nfail;         /* remembered failure times in fail_at[], oldest first */
	int64_t fail_at[FK_BAL_MAX_FAILS];
	int64_t wrr_current; /* smooth WRR accumulator */
	/* Counters for observability; never reset by the module. */
	uint64_t fails_total;
	uint64_t fails_by_kind[FK_BAL_FAIL_KINDS];
	uint64_t ejections_total;
	uint64_t overloads_total;
} fk_bal_backend;

typedef struct fk_bal_point {
	uint64_t hash;
	uint32_t idx;
} fk_bal_point;

typedef struct fk_bal_group {
	fk_bal_config cfg;
	size_t n;
	fk_bal_backend *b;  /* n backends */
	fk_bal_point *ring; /* sorted by hash; NULL when cfg.hash_vnodes == 0 */
	size_t nring;
	size_t least_next; /* round-robin cursor breaking least-outstanding ties */
} fk_bal_group;

/* The set of backends already tried for one request: a retry passes it so that it never
 * picks the same backend twice. Zero-initialise ({0}) or fk_bal_tried_clear. */
typedef struct fk_bal_tried {
	uint64_t bits[FK_BAL_MAX_BACKENDS / 64];
} fk_bal_tried;

void fk_bal_tried_clear(fk_bal_tried *t);
/* Adds idx (ignored if out of 0..FK_BAL_MAX_BACKENDS-1). */
void fk_bal_tried_add(fk_bal_tried *t, int idx);
/* 1 if idx is in the set; t == NULL is the empty set. */
int fk_bal_tried_has(const fk_bal_tried *t, int idx);

/* ------------------------------------------------------------------ group */

/* Fills *cfg with the defaults listed in fk_bal_config. */
void fk_bal_config_default(fk_bal_config *cfg);

/* Creates a group of n backends described by conf[0..n-1], all UP, enabled, idle. cfg NULL
 * means the defaults; it is copied. Returns FCGI_OK and *out, FCGI_EINVAL (out or conf
 * NULL, n out of 1..FK_BAL_MAX_BACKENDS, a weight over FK_BAL_WEIGHT_MAX, an id NULL with
 * id_len > 0, fails > FK_BAL_MAX_FAILS, a non-positive window or backoff, backoff_max_ms <
 * backoff_base_ms, negative overload_ms, an unknown policy) or FCGI_ENOMEM; on error *out
 * is NULL and nothing is allocated. Free with fk_bal_group_free. */
int fk_bal_group_new(fk_bal_group **out, const fk_bal_config *cfg, const fk_bal_backend_conf *conf,
                     size_t n);
/* Frees the group (NULL is fine). */
void fk_bal_group_free(fk_bal_group *g);

/* Changes a weight (1..FK_BAL_WEIGHT_MAX) and rebuilds the ring, which allocates: returns
 * FCGI_OK, FCGI_EINVAL or FCGI_ENOMEM; on error the group is unchanged. Resets every smooth
 * WRR accumulator (as a freshly loaded configuration would start) so the new proportions
 * apply from the next pick. */
int fk_bal_set_weight(fk_bal_group *g, int idx, unsigned weight);

/* Sets the configured or learned capacity (0 = none from that source). A new learned value
 * replaces the old one, including one lowered by OVERLOADED. Requests already in flight
 * above a lowered capacity are not touched; no new ones go there until below it. */
void fk_bal_set_capacity(fk_bal_group *g, int idx, unsigned capacity, fk_bal_cap_source src);
/* Effective capacity: the smaller non-zero of configured and learned, 0 = unlimited. */
unsigned fk_bal_capacity(const fk_bal_group *g, int idx);

/* Administrative enable/drain. A disabled backend gets no new request from any policy (its
 * ring points are skipped, so for hashing only its own keys move) and no fallback pick. */
void fk_bal_set_enabled(fk_bal_group *g, int idx, int enabled);

/* ------------------------------------------------------------------ selection */

/* Smooth weighted round-robin (nginx): every eligible backend adds its weight to its
 * accumulator, the largest accumulator wins (ties: lowest index) and loses the sum of the
 * eligible weights. Deterministic; 5:1:1 gives a,a,b,a,c,a,a per cycle of 7, with no burst.
 * Ineligible backends (full, overloaded, tried, disabled) neither gain nor lose, so they
 * rejoin without a catch-up burst; an ejected one restarts from 0 when it comes back. */
int fk_bal_pick_wrr(fk_bal_group *g, int64_t now, const fk_bal_tried *tried);

/* Weighted least outstanding: the eligible backend with the smallest outstanding/weight.
 * Ties are broken round-robin (the scan starts after the previous pick), so equal idle
 * backends alternate instead of the first one taking everything. */
int fk_bal_pick_least(fk_bal_group *g, int64_t now, const fk_bal_tried *tried);

/* Consistent hashing: key (len bytes; NULL only with len 0) is hashed to 64 bits (FNV-1a
 * then a murmur-style finaliser) and located on the ring by binary search: the first point
 * at or after it, wrapping. Each backend has about hash_vnodes * weight points. When that
 * point's backend is not eligible the walk continues clockwise to the next distinct
 * backend, so an ejected, full or disabled backend moves only its own keys (about 1/n of
 * them), each to the backend that follows it on the ring. Returns -1 also when the group
 * has no ring (cfg.hash_vnodes == 0). Does not change any selection state but the lazy
 * DOWN -> PROBING transitions. */
int fk_bal_pick_hash(fk_bal_group *g, int64_t now, const void *key, size_t len,
                     const fk_bal_tried *tried);

/* fk_bal_pick_wrr, _least or _hash as cfg.policy says (key ignored unless hashing). */
int fk_bal_pick(fk_bal_group *g, int64_t now, const void *key, size_t len,
                const fk_bal_tried *tried);

/* The 64-bit key hash used by the ring (exposed for tests and logging). */
uint64_t fk_bal_hash(const void *key, size_t len);

/* A request is dispatched to idx: outstanding + 1. Call it right after the pick. */
void fk_bal_acquire(fk_bal_group *g, int idx);
/* That request is over (any outcome): outstanding - 1, never below 0. Report the outcome
 * first (fk_bal_report_*), then release. */
void fk_bal_release(fk_bal_group *g, int idx);

/* ------------------------------------------------------------------ health */

/* The request to idx got a valid answer (any FastCGI END_REQUEST but OVERLOADED; an HTTP
 * 5xx from the application is still a working backend). Forgets past failures, resets the
 * backoff, and moves DOWN or PROBING to UP. */
void fk_bal_report_success(fk_bal_group *g, int idx, int64_t now);
/* The request to idx failed for `kind` at `now` (see the state machine above). */
void fk_bal_report_failure(fk_bal_group *g, int idx, int64_t now, fk_bal_fail_kind kind);
/* idx answered FCGI_OVERLOADED at `now`. Not a failure (the failure window and backoff are
 * untouched, the state is unchanged): normal picks skip it until now + cfg.overload_ms.
 * With cfg.overload_lowers_capacity, call it *after* fk_bal_release() of the refused
 * request: the backend was then holding `outstanding` requests and refused one more, so its
 * learned capacity is lowered to max(1, outstanding) — only ever lowered here, and set even
 * if none was learned before (the backend has just told us it has a limit). A configured
 * capacity is not changed, but the effective one is the smaller of the two. The lowered
 * value stays until fk_bal_set_capacity(..., FK_BAL_CAP_LEARNED) learns a new one (the
 * gateway does on each new connection's GET_VALUES). */
void fk_bal_report_overloaded(fk_bal_group *g, int idx, int64_t now);
/* An active health probe of idx finished at `now`, ok or not (see the state machine). */
void fk_bal_probe_result(fk_bal_group *g, int idx, int ok, int64_t now);

/* Applies the time-driven transitions (DOWN -> PROBING when now >= down_until) to every
 * backend. Returns how many changed state. Picks do this lazily for what they look at;
 * call this from the timer that fk_bal_next_event schedules. */
int fk_bal_tick(fk_bal_group *g, int64_t now);
/* idx's state at `now` (applying the lazy transition first); FK_BAL_DOWN for a bad idx. */
fk_bal_state fk_bal_backend_state(fk_bal_group *g, int idx, int64_t now);
/* The earliest time after `now` at which something changes by itself: a DOWN backend
 * becomes PROBING, or an overload skip ends. FK_BAL_NEVER if nothing is pending. A time
 * already reached (a DOWN backend not yet ticked) is returned as `now`. */
int64_t fk_bal_next_event(const fk_bal_group *g, int64_t now);

/* "UP", "DOWN", "PROBING"; "?" for anything else. Static storage. */
const char *fk_bal_state_name(fk_bal_state s);
/* "connect", "timeout", "reset", "protocol"; "?" for anything else. Static storage. */
const char *fk_bal_fail_kind_name(fk_bal_fail_kind k);

/* ------------------------------------------------------------------ waiting queue */

/* A bounded queue for requests that found every backend at capacity (pick returned -1 with
 * some backend UP). The queue itself (a list of waiting requests) is the caller's; this
 * only decides. */
typedef struct fk_bal_queue_conf {
	unsigned capacity;   /* most waiting requests; 0 = no queue, reject at once */
	int64_t max_wait_ms; /* a request waiting this long gets 503; > 0 */
} fk_bal_queue_conf;

typedef struct fk_bal_queue_state {
	unsigned len;           /* requests waiting now */
	int64_t oldest_since;   /* when the oldest waiting request was queued (ignored if len 0) */
	uint32_t drain_per_sec; /* recent completions per second across the group, 0 = unknown */
} fk_bal_queue_state;

typedef struct fk_bal_queue_verdict {
	int admit;            /* 1: queue it; 0: answer 503 now */
	unsigned retry_after; /* with admit 0: seconds for the Retry-After header, >= 1 */
	int64_t deadline;     /* with admit 1: answer 503 if still waiting at this time */
} fk_bal_queue_verdict;

/* Decides for a request arriving at `now`. It is rejected when the queue is full, when the
 * configuration allows no queue, or when the oldest waiter has already waited max_wait_ms
 * (nothing is moving: a new request would only time out later). Otherwise it is admitted
 * with deadline now + max_wait_ms.
 * Retry-After estimates how long a request arriving now would wait for the ones ahead of
 * it: ceil((len + 1) / drain_per_sec) seconds when the drain rate is known, else
 * ceil(max_wait_ms / 1000); always clamped to 1..max(1, ceil(max_wait_ms / 1000)), since
 * no queued request waits longer than max_wait_ms. */
fk_bal_queue_verdict fk_bal_queue_admit(const fk_bal_queue_conf *c, const fk_bal_queue_state *s,
                                        int64_t now);
/* 1 if a request queued at `since` has waited too long at `now` (now - since >= max_wait_ms). */
int fk_bal_queue_expired(const fk_bal_queue_conf *c, int64_t since, int64_t now);

#endif
