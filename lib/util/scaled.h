/* scaled.h — a number with a unit suffix, as config files write sizes and durations
 * ("64K", "250ms", "2s"): pure, internal, shared by fcgikit pm's and the gateway's parsers. */
#ifndef FK_UTIL_SCALED_H
#define FK_UTIL_SCALED_H

#include <stdint.h>

/* One accepted suffix ("" for none) and what it multiplies by. A table ends with a NULL
 * suffix. */
typedef struct fk_unit {
	const char *suffix;
	uint64_t mult;
} fk_unit;

/* Digits, then exactly one suffix of units (compared whole, case as written). 0 with the
 * scaled value in *out; -1 for bad syntax (no digit first, an unknown suffix); -2 when the
 * value does not fit in 64 bits, so that callers can word the two differently. */
int fk_scan_scaled(const char *s, const fk_unit *units, uint64_t *out);

#endif
