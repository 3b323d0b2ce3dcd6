/*
 * failalloc.h — a counting allocator for fcgi_set_allocator() that fails on demand.
 *
 * Every allocating call (realloc with or without a pointer) is counted from 1. With
 * failalloc_install(n, 0) the n-th call returns NULL and later calls succeed again (one
 * injected failure); with failalloc_install(n, 1) the n-th and every later call fail.
 * n == 0 never fails. The helper also counts live blocks, so a test can check that an
 * unwind path freed everything without relying on LeakSanitizer.
 */
#ifndef TESTS_FAILALLOC_H
#define TESTS_FAILALLOC_H

#include <stddef.h>

/* Installs the allocator process-wide and resets the counters. */
void failalloc_install(unsigned long fail_at, int sticky);
/* Restores the C library's allocator (fcgi_set_allocator(NULL)). Counters stay readable. */
void failalloc_uninstall(void);
/* Allocating calls seen since install (failed ones included). */
unsigned long failalloc_calls(void);
/* Calls that were made to fail. */
unsigned long failalloc_failures(void);
/* Blocks handed out and not yet freed. */
long failalloc_live(void);

#endif
