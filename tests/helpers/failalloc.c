/* failalloc.c — see failalloc.h. Not thread-safe: the codec tests are single-threaded. */
#include "helpers/failalloc.h"

#include <stdlib.h>

#include "fcgikit.h"

static unsigned long fa_calls;
static unsigned long fa_failures;
static unsigned long fa_fail_at;
static int fa_sticky;
static long fa_live;

static void *fa_realloc(void *ud, void *ptr, size_t size)
{
	(void)ud;
	fa_calls++;
	if (fa_fail_at != 0 && (fa_calls == fa_fail_at || (fa_sticky && fa_calls > fa_fail_at))) {
		fa_failures++;
		return NULL;
	}
	void *p = realloc(ptr, size ? size : 1);
	if (p != NULL && ptr == NULL)
		fa_live++;
	return p;
}

static void fa_free(void *ud, void *ptr)
{
	(void)ud;
	if (ptr != NULL) {
		fa_live--;
		free(ptr);
	}
}

static const fcgi_allocator fa_allocator = {fa_realloc, fa_free, NULL};

void failalloc_install(unsigned long fail_at, int sticky)
{
	fa_calls = 0;
	fa_failures = 0;
	fa_live = 0;
	fa_fail_at = fail_at;
	fa_sticky = sticky;
	fcgi_set_allocator(&fa_allocator);
}

void failalloc_uninstall(void) { fcgi_set_allocator(NULL); }

unsigned long failalloc_calls(void) { return fa_calls; }
unsigned long failalloc_failures(void) { return fa_failures; }
long failalloc_live(void) { return fa_live; }
