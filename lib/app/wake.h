/* wake.h — how many threads blocked in fcgi_accept a pass of the loop wakes (internal).
 *
 * Waking a sleeping thread costs a futex call on each side and, when more threads run than
 * there are cores, preemption and lock contention that slow every request down. A thread
 * busy in a short handler comes back to fcgi_accept soon and takes queued work without
 * anyone waking it. So:
 * - the loop wakes only as many threads as keep the free cores busy, where "free cores" are
 *   the process's cores (its CPU affinity, capped by a cgroup CPU quota) less what other
 *   processes kept busy lately (from /proc/stat every FK_WAKE_CORES_MS): a web server on the
 *   same machine that saturates a core is not a core to wake a thread for;
 * - handlers at least a grain long (FK_WAKE_GRAIN_US, timed with the vDSO clock) are sampled
 *   (getrusage's voluntary context switches); once they often block (a database, a sleep),
 *   every queued request gets a thread at once. Shorter ones are not sampled and never make
 *   the loop eager: whatever they do, a wake costs about as much as they do.
 * A guard (one waiter sleeps with a short timeout while others are busy) bounds the wait
 * when a handler that usually computes blocks after all. While a handler or a loop pass
 * ended just before it wakes, nothing is stuck: it watches again, for longer (up to
 * FK_WAKE_GUARD_MAX_MS), rather than join the busy threads; after a stall it takes the
 * work or the loop over.
 *
 * Pure functions of counts; tested alone in tests/unit/test_wake.c. */
#ifndef FK_APP_WAKE_H
#define FK_APP_WAKE_H

/* The blocking estimate is a fraction in 1/1024: an exponential average over sampled
 * handlers of "it switched out voluntarily" (0 or 1024), weight 1/8. */
#define FK_WAKE_BLOCKING_ONE 1024u
#define FK_WAKE_BLOCKING_EAGER 256u /* at or above: handlers block; wake eagerly */
/* A guard's first sleep: the longest a queued request waits for a busy thread to come back
 * once the guard saw a stall; doubled while it finds progress, up to the maximum (the
 * longest wait after a calm spell). */
#define FK_WAKE_GUARD_MS 2
#define FK_WAKE_GUARD_MAX_MS 16
/* Every other sleeper's, so that no queued request waits longer whatever happens (the guard
 * is the one that watches: each of these wakes costs syscalls on every sleeper). */
#define FK_WAKE_CHECK_MS 250
/* A guard's while nothing runs: how long a leader that leaves the loop for a handler that
 * blocks after all may leave the sockets unwatched. */
#define FK_WAKE_GUARD_IDLE_MS 100
/* Handler time below which a wake is not worth it: a wake costs a few microseconds on each
 * side and tens of microseconds of scheduling latency. */
#define FK_WAKE_GRAIN_US 50u
/* One long handler in this many is sampled (three getrusage calls: a microsecond, against
 * at least a grain). */
#define FK_WAKE_SAMPLE_EVERY 4u
/* How often the free cores are estimated. */
#define FK_WAKE_CORES_MS 100

/* The new average handler time (microseconds, weight 1/8) after one handler took `us`. */
unsigned fk_wake_cost_update(unsigned avg_us, long long us);

/* The blocking estimate the policy acts on: none for handlers shorter than a grain. */
unsigned fk_wake_effective(unsigned blocking, unsigned cost_us);

/* Cores this process may keep busy without taking them from others: `ncpu` less what other
 * processes used over the last interval, that is the busy time of those cores (`busy_us`
 * out of `total_us`, summed over them) less this process's own CPU time `self_us`. Rounded
 * to the nearest core, at least 1; `ncpu` itself when nothing was measured. */
unsigned fk_wake_cores(unsigned ncpu, unsigned long long busy_us, unsigned long long total_us,
                       unsigned long long self_us);

/* The cores a CPU quota leaves of `ncpu`, from the text of a cgroup v2 cpu.max file ("max
 * 100000" or "150000 100000": quota and period in microseconds) or, for cgroup v1, from
 * cpu.cfs_quota_us and cpu.cfs_period_us joined by a space ("-1 100000"). Rounded up, at
 * least 1; `ncpu` when there is no quota or the text does not parse. */
unsigned fk_wake_quota_cores(unsigned ncpu, const char *text);

/* Whether the threads look stuck to a guard that wakes at `now_ms`: no handler and no loop
 * pass ended since `progress_ms`, for FK_WAKE_STALL_MS or more. */
#define FK_WAKE_STALL_MS 5
int fk_wake_stalled(long long now_ms, long long progress_ms);

/* A guard's next sleep in ms: longer while the others made progress since its last one,
 * back to the first after it had to take work over. */
unsigned fk_wake_guard_ms(unsigned prev_ms, int progress);

/* The new average after one sample. */
unsigned fk_wake_blocking_update(unsigned avg, int blocked);

/* Threads to wake when `queued` requests wait that the leaving leader does not take itself;
 * `waiters` sleep in fcgi_accept, `busy` run a handler (not counting the leader), `ncpu`
 * cores are free for the process (fk_wake_cores; 0 reads as 1). */
unsigned fk_wake_acceptors(unsigned queued, unsigned waiters, unsigned busy, unsigned ncpu,
                           unsigned blocking);

/* Whether a leader that leaves the loop to run a handler must wake a sleeping acceptor to
 * take the loop over, given `busy` other threads in handlers (one of which will take it
 * over when it comes back) and whether a guard sleeps on a watch (it will, or the leader
 * itself once back: a single connection's requests then cost no wake at all). */
int fk_wake_successor(unsigned waiters, unsigned busy, unsigned ncpu, unsigned blocking,
                      int guarded);

#endif
