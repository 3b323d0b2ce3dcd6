/* wake.c — the wake-up policy of the blocking API; see wake.h. */
#include <stdlib.h>

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

unsigned fk_wake_cost_update(unsigned avg_us, long long us)
{
	if (us < 0)
		us = 0;
	/* one handler stuck for minutes must not overflow the average */
	if (us > 100000000)
		us = 100000000;
	return (unsigned)(avg_us - avg_us / 8 + (unsigned long long)us / 8);
}

unsigned fk_wake_effective(unsigned blocking, unsigned cost_us)
{
	return cost_us < FK_WAKE_GRAIN_US ? 0 : blocking;
}

unsigned fk_wake_cores(unsigned ncpu, unsigned long long busy_us, unsigned long long total_us,
                       unsigned long long self_us)
{
	if (!ncpu)
		ncpu = 1;
	if (!total_us || busy_us > total_us)
		return ncpu;
	unsigned long long others = busy_us > self_us ? busy_us - self_us : 0;
	/* in 1/1000 of a core */
	unsigned long long used = others * 1000ull * ncpu / total_us;
	unsigned long long avail = 1000ull * ncpu > used ? 1000ull * ncpu - used : 0;
	unsigned cores = (unsigned)((avail + 500) / 1000);
	return cores < 1 ? 1 : cores > ncpu ? ncpu : cores;
}

unsigned fk_wake_guard_ms(unsigned prev_ms, int progress)
{
	if (!progress || prev_ms < FK_WAKE_GUARD_MS)
		return FK_WAKE_GUARD_MS;
	return prev_ms * 2 > FK_WAKE_GUARD_MAX_MS ? FK_WAKE_GUARD_MAX_MS : prev_ms * 2;
}

int fk_wake_stalled(long long now_ms, long long progress_ms)
{
	return now_ms - progress_ms >= FK_WAKE_STALL_MS;
}

unsigned fk_wake_quota_cores(unsigned ncpu, const char *text)
{
	if (!ncpu)
		ncpu = 1;
	if (!text)
		return ncpu;
	char *end;
	long long quota = strtoll(text, &end, 10);
	if (end == text || quota <= 0) /* "max", "-1", nothing */
		return ncpu;
	const char *p = end;
	long long period = strtoll(p, &end, 10);
	if (end == p || period <= 0)
		return ncpu;
	long long cores = (quota + period - 1) / period;
	return cores < 1 ? 1 : cores < (long long)ncpu ? (unsigned)cores : ncpu;
}
