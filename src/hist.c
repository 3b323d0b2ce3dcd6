/* hist.c — log-linear latency histogram (see hist.h). */
#include <string.h>

#include "hist.h"

void fk_hist_init(fk_hist *h)
{
	memset(h, 0, sizeof *h);
	h->min = UINT64_MAX;
}

/* v < 256: bucket v. Else, with b the position of the top bit (b >= 8), the top 8 bits m of
 * v (128..255) pick one of 128 buckets of the octave: index 128 * (b - 7) + m. */
unsigned fk_hist_index(uint64_t v)
{
	if (v < 2 * FK_HIST_SUB)
		return (unsigned)v;
	unsigned b = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = b - 7;
	return FK_HIST_SUB * shift + (unsigned)(v >> shift);
}

uint64_t fk_hist_bucket_high(unsigned idx)
{
	if (idx < 2 * FK_HIST_SUB)
		return idx;
	unsigned shift = idx / FK_HIST_SUB - 1;
	uint64_t m = idx % FK_HIST_SUB + FK_HIST_SUB;
	return ((m + 1) << shift) - 1; /* the top bucket wraps to UINT64_MAX, as it should */
}

void fk_hist_add(fk_hist *h, uint64_t v)
{
	h->b[fk_hist_index(v)]++;
	h->count++;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->sum += (double)v;
	h->sumsq += (double)v * (double)v;
}

void fk_hist_merge(fk_hist *into, const fk_hist *from)
{
	for (unsigned i = 0; i < FK_HIST_BUCKETS; i++)
		into->b[i] += from->b[i];
	into->count += from->count;
	if (from->count) {
		if (from->min < into->min)
			into->min = from->min;
		if (from->max > into->max)
			into->max = from->max;
	}
	into->sum += from->sum;
	into->sumsq += from->sumsq;
}

uint64_t fk_hist_percentile(const fk_hist *h, double p)
{
	if (!h->count)
		return 0;
	if (p >= 100)
		return h->max;
	double exact = p / 100.0 * (double)h->count;
	uint64_t want = (uint64_t)exact;
	if ((double)want < exact)
		want++; /* ceil, without libm */
	if (!want)
		want = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < FK_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			uint64_t v = fk_hist_bucket_high(i);
			return v > h->max ? h->max : v < h->min ? h->min : v;
		}
	}
	return h->max;
}

double fk_hist_mean(const fk_hist *h) { return h->count ? h->sum / (double)h->count : 0; }

double fk_hist_stdev(const fk_hist *h)
{
	if (h->count < 2)
		return 0;
	double m = fk_hist_mean(h), var = h->sumsq / (double)h->count - m * m;
	if (!(var > 0))
		return 0;
	double x = var > 1 ? var / 2 : 1; /* Newton's square root: no libm for the tests */
	for (int i = 0; i < 200; i++) {
		double nx = (x + var / x) / 2;
		if (nx == x)
			break;
		x = nx;
	}
	return x;
}
