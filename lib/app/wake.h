/* wake.h — how many threads blocked in fcgi_accept a pass of the loop wakes (internal).
 *
 * Waking a sleeping thread costs a futex call on each side and, when more threads run than
 * there are cores, preemption and lock contention that slow every request down. A thread
 * busy in a short handler comes back to fcgi_accept soon and takes queued work without
 * anyone waking it. So while handlers mostly compute (they rarely block: sampled with
 * getrusage's voluntary context switches), the loop wakes only as many threads as keep the
 * cores busy; once they often block (a database, a sleep), every queued request gets a
 * thread at once, as before. A guard (one waiter sleeps with a short timeout while others
 * are busy) bounds the wait when a handler that usually computes blocks after all.
 *
 * Pure functions of counts; tested alone in tests/unit/test_wake.c. */
#ifndef FK_APP_WAKE_H
#define FK_APP_WAKE_H

/* The blocking estimate is a fraction in 1/1024: an exponential average over sampled
 * handlers of "it switched out voluntarily" (0 or 1024), weight 1/8. */
#define FK_WAKE_BLOCKING_ONE 1024u
#define FK_WAKE_BLOCKING_EAGER 256u /* at or above: handlers block; wake eagerly */
/* A guard's sleep: the longest a queued request waits for a busy thread to come back. */
#define FK_WAKE_GUARD_MS 2
/* Every other sleeper's, so that no queued request waits longer whatever happens. */
#define FK_WAKE_CHECK_MS 50
/* A guard's while nothing runs: how long a leader that leaves the loop for a handler that
 * blocks after all may leave the sockets unwatched. */
#define FK_WAKE_GUARD_IDLE_MS 100
/* One handler in this many is sampled (three getrusage calls), and the first ones. */
#define FK_WAKE_SAMPLE_EVERY 128u
#define FK_WAKE_SAMPLE_FIRST 32u

/* The new average after one sample. */
unsigned fk_wake_blocking_update(unsigned avg, int blocked);

/* Threads to wake when `queued` requests wait that the leaving leader does not take itself;
 * `waiters` sleep in fcgi_accept, `busy` run a handler (not counting the leader), the
 * machine has `ncpu` cores (0 reads as 1). */
unsigned fk_wake_acceptors(unsigned queued, unsigned waiters, unsigned busy, unsigned ncpu,
                           unsigned blocking);

/* Whether a leader that leaves the loop to run a handler must wake a sleeping acceptor to
 * take the loop over, given `busy` other threads in handlers (one of which will take it
 * over when it comes back) and whether a guard sleeps on a watch (it will, or the leader
 * itself once back: a single connection's requests then cost no wake at all). */
int fk_wake_successor(unsigned waiters, unsigned busy, unsigned ncpu, unsigned blocking,
                      int guarded);

#endif
