/* alloc.h — every allocation in the library goes through here, so that an application's
 * allocator (fcgi_set_allocator) and the tests' failing allocator see all of them. */
#ifndef FK_ALLOC_H
#define FK_ALLOC_H

#include <stddef.h>

void *fk_malloc(size_t n);
void *fk_calloc(size_t count, size_t size);
void *fk_realloc(void *p, size_t n);
void fk_free(void *p);
/* A NUL-terminated copy, or NULL on failure. */
char *fk_strndup(const char *s, size_t n);
char *fk_strdup(const char *s);

#endif
