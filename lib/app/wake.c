/* wake.c — the wake-up policy of the blocking API; see wake.h. */
#include "app/wake.h"

unsigned fk_wake_blocking_update(unsigned avg, int blocked)
{
	if (avg > FK_WAKE_BLOCKING_ONE)
		avg = FK_WAKE_BLOCKING_ONE;
	return avg - avg / 8 + (blocked ? FK_WAKE_BLOCKING_ONE / 8 : 0);
}

static unsigned min_u(unsigned a, unsigned b) { return a < b ? a : b; }

unsigned fk_wake_acceptors(unsigned queued, unsigned waiters, unsigned busy, unsigned ncpu,
                           unsigned blocking)
{
	unsigned n = min_u(queued, waiters);
	if (blocking >= FK_WAKE_BLOCKING_EAGER)
		return n;
	if (!ncpu)
		ncpu = 1;
	/* the leader itself runs a handler too */
	unsigned running = busy + 1;
	return running >= ncpu ? 0 : min_u(n, ncpu - running);
}

int fk_wake_successor(unsigned waiters, unsigned busy, unsigned ncpu, unsigned blocking,
                      int guarded)
{
	if (!waiters)
		return 0;
	if (blocking >= FK_WAKE_BLOCKING_EAGER)
		return 1;
	if (guarded)
		return 0;
	if (!busy)
		return 1;
	if (!ncpu)
		ncpu = 1;
	/* With the cores already taken by handlers, a woken thread would only wait for one;
	 * the first busy thread back runs the loop. */
	return busy + 1 < ncpu;
}
