/* scaled.c — numbers with unit suffixes; see scaled.h. */
#include "util/scaled.h"

#include <string.h>

int fk_scan_scaled(const char *s, const fk_unit *units, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -1;
	uint64_t v = 0;
	int over = 0;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			over = 1;
		else
			v = v * 10 + d;
	}
	for (const fk_unit *u = units; u->suffix; u++) {
		if (strcmp(s, u->suffix))
			continue;
		if (over || v > UINT64_MAX / u->mult)
			return -2;
		*out = v * u->mult;
		return 0;
	}
	return -1;
}
