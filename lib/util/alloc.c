/* alloc.c — the library's allocation hooks (see fcgi_set_allocator in fcgikit.h). */
#include <stdlib.h>
#include <string.h>

#include "fcgikit.h"
#include "util/alloc.h"

static void *libc_realloc(void *ud, void *p, size_t n)
{
	(void)ud;
	return realloc(p, n);
}

static void libc_free(void *ud, void *p)
{
	(void)ud;
	free(p);
}

static fcgi_allocator g_alloc = {libc_realloc, libc_free, NULL};

FCGI_EXPORT void fcgi_set_allocator(const fcgi_allocator *a)
{
	if (a && a->realloc && a->free)
		g_alloc = *a;
	else
		g_alloc = (fcgi_allocator){libc_realloc, libc_free, NULL};
}

void *fk_malloc(size_t n) { return g_alloc.realloc(g_alloc.ud, NULL, n ? n : 1); }

void *fk_calloc(size_t count, size_t size)
{
	if (size && count > SIZE_MAX / size)
		return NULL;
	void *p = fk_malloc(count * size);
	if (p)
		memset(p, 0, count * size);
	return p;
}

void *fk_realloc(void *p, size_t n) { return g_alloc.realloc(g_alloc.ud, p, n ? n : 1); }

void fk_free(void *p)
{
	if (p)
		g_alloc.free(g_alloc.ud, p);
}

char *fk_strndup(const char *s, size_t n)
{
	char *d = fk_malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

char *fk_strdup(const char *s) { return fk_strndup(s, strlen(s)); }
