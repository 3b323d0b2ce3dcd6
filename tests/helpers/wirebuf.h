/* wirebuf.h — a growable byte buffer the unit tests build FastCGI wire bytes in, by hand
 * and apart from the codec under test. Include after <cmocka.h>. */
#ifndef TESTS_WIREBUF_H
#define TESTS_WIREBUF_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct wb {
	uint8_t *d;
	size_t n, cap;
} wb;

static inline void wb_put(wb *w, const void *p, size_t n)
{
	if (w->n + n > w->cap) {
		size_t cap = w->cap ? w->cap : 256;
		while (cap < w->n + n)
			cap *= 2;
		w->d = realloc(w->d, cap);
		assert_non_null(w->d);
		w->cap = cap;
	}
	if (n)
		memcpy(w->d + w->n, p, n);
	w->n += n;
}

static inline void wb_free(wb *w)
{
	free(w->d);
	memset(w, 0, sizeof *w);
}

#endif
