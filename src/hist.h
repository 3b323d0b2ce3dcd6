/* hist.h — a latency histogram with log-linear buckets (the HdrHistogram layout): exact
 * below 256, then 128 buckets per power of two, so any value is kept within 1/128 (0.8%)
 * of itself, in constant memory (7424 counters) whatever the range. Values are unsigned
 * 64-bit (nanoseconds here). Not thread-safe: one per thread, merged at the end. */
#ifndef FK_TOOL_HIST_H
#define FK_TOOL_HIST_H

#include <stdint.h>

enum { FK_HIST_SUB = 128, FK_HIST_BUCKETS = FK_HIST_SUB * 58 };

typedef struct fk_hist {
	uint64_t count;
	uint64_t min, max;
	double sum, sumsq;
	uint64_t b[FK_HIST_BUCKETS];
} fk_hist;

void fk_hist_init(fk_hist *h);
void fk_hist_add(fk_hist *h, uint64_t v);
void fk_hist_merge(fk_hist *into, const fk_hist *from);
/* The value at percentile p (0..100): the highest value of the bucket that holds it,
 * clamped to the exact max. 0 when empty. */
uint64_t fk_hist_percentile(const fk_hist *h, double p);
double fk_hist_mean(const fk_hist *h);
double fk_hist_stdev(const fk_hist *h);
/* Bucket index of a value and the range it stands for (exposed for the tests). */
unsigned fk_hist_index(uint64_t v);
uint64_t fk_hist_bucket_high(unsigned idx);

#endif
