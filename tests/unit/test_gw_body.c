/*
 * test_gw_body.c — the gateway's request body store (src/gateway/body.c): a small body stays
 * in memory, a large one moves to a temporary file that has no name in the directory, reads
 * at any offset give back exactly what was appended (a retry reads from 0 again), and a
 * directory that cannot take the file is an error, not a crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/body.h"

static char tmpdir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/fk-gwbody-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return rmdir(tmpdir); /* fails when a file was left behind */
}

static size_t dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Deterministic bytes that differ at every offset modulo a prime, so a read from the wrong
 * offset shows. */
static unsigned char pat(uint64_t i) { return (unsigned char)((i * 131 + i / 251) % 251); }

static void fill(unsigned char *p, uint64_t off, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pat(off + i);
}

static void check_range(gw_body *b, uint64_t off, size_t n)
{
	unsigned char *got = malloc(n ? n : 1);
	assert_non_null(got);
	size_t have = 0;
	while (have < n) {
		ssize_t r = gw_body_read(b, off + have, got + have, n - have);
		assert_true(r > 0);
		have += (size_t)r;
	}
	for (size_t i = 0; i < n; i++)
		if (got[i] != pat(off + i))
			fail_msg("byte %llu: got %u, want %u", (unsigned long long)(off + i), got[i],
			         pat(off + i));
	free(got);
}

static void test_small_in_memory(void **state)
{
	(void)state;
	gw_body b;
	gw_body_init(&b, 1024, tmpdir);
	unsigned char d[300];
	for (uint64_t off = 0; off < 900; off += sizeof d) {
		fill(d, off, sizeof d);
		assert_int_equal(gw_body_append(&b, d, sizeof d), 0);
	}
	assert_int_equal(gw_body_len(&b), 900);
	assert_false(gw_body_spilled(&b));
	assert_int_equal(dir_entries(tmpdir), 0);
	check_range(&b, 0, 900);
	check_range(&b, 17, 500);
	unsigned char x[8];
	assert_int_equal(gw_body_read(&b, 900, x, sizeof x), 0);
	assert_int_equal(gw_body_read(&b, 5000, x, sizeof x), 0);
	assert_int_equal(gw_body_read(&b, 896, x, sizeof x), 4);
	/* exactly the threshold still fits */
	fill(d, 900, 124);
	assert_int_equal(gw_body_append(&b, d, 124), 0);
	assert_false(gw_body_spilled(&b));
	gw_body_reset(&b);
	assert_int_equal(gw_body_len(&b), 0);
	assert_int_equal(b.mem_max, 1024);
}

static void test_large_spills(void **state)
{
	(void)state;
	gw_body b;
	gw_body_init(&b, 4096, tmpdir);
	size_t total = 3 * 1024 * 1024 + 77;
	unsigned char *d = malloc(65521);
	assert_non_null(d);
	uint64_t off = 0;
	while (off < total) {
		size_t n = total - off < 65521 ? total - off : 65521;
		fill(d, off, n);
		assert_int_equal(gw_body_append(&b, d, n), 0);
		off += n;
		if (off > 4096)
			assert_true(gw_body_spilled(&b));
	}
	free(d);
	assert_int_equal(gw_body_len(&b), total);
	assert_null(b.mem); /* the memory part went to the file with the rest */
	/* the file has no name: the directory stays empty while it is in use */
	assert_int_equal(dir_entries(tmpdir), 0);
	struct stat st;
	assert_int_equal(fstat(b.fd, &st), 0);
	assert_int_equal((uint64_t)st.st_size, total);
	assert_int_equal(st.st_nlink, 0);
	check_range(&b, 0, total);          /* a retry from the start */
	check_range(&b, 4000, 200);         /* across the old memory/file border */
	check_range(&b, total - 10, 10);    /* the tail */
	check_range(&b, 1234567, 65536);
	/* a read-along reader (the backend) sees bytes appended after it started */
	unsigned char more[100];
	fill(more, total, sizeof more);
	assert_int_equal(gw_body_append(&b, more, sizeof more), 0);
	check_range(&b, total - 50, 150);
	gw_body_reset(&b);
	assert_int_equal(b.fd, -1);
	assert_int_equal(dir_entries(tmpdir), 0);
}

static void test_spill_from_start(void **state)
{
	(void)state;
	gw_body b;
	gw_body_init(&b, 0, tmpdir);
	unsigned char d[10];
	fill(d, 0, sizeof d);
	assert_int_equal(gw_body_append(&b, d, sizeof d), 0);
	assert_true(gw_body_spilled(&b));
	check_range(&b, 0, 10);
	check_range(&b, 3, 7);
	gw_body_reset(&b);
}

static void test_bad_dir(void **state)
{
	(void)state;
	gw_body b;
	gw_body_init(&b, 16, "/nonexistent/fcgikit-body-test");
	unsigned char d[64];
	fill(d, 0, sizeof d);
	assert_int_equal(gw_body_append(&b, d, 8), 0); /* memory: no file needed yet */
	int rc = gw_body_append(&b, d, sizeof d);
	assert_int_equal(rc, -ENOENT);
	/* sticky: the body is incomplete, nothing more is taken */
	assert_int_equal(gw_body_append(&b, d, 1), -ENOENT);
	assert_int_equal(gw_body_len(&b), 8);
	check_range(&b, 0, 8);
	gw_body_reset(&b);
	assert_int_equal(b.err, 0);
}

static void test_default_dir(void **state)
{
	(void)state;
	/* NULL dir: $TMPDIR */
	char *old = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
	setenv("TMPDIR", tmpdir, 1);
	gw_body b;
	gw_body_init(&b, 0, NULL);
	assert_int_equal(gw_body_append(&b, "abc", 3), 0);
	assert_true(gw_body_spilled(&b));
	assert_int_equal(dir_entries(tmpdir), 0);
	gw_body_reset(&b);
	if (old) {
		setenv("TMPDIR", old, 1);
		free(old);
	} else {
		unsetenv("TMPDIR");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_small_in_memory),
	        cmocka_unit_test(test_large_spills),
	        cmocka_unit_test(test_spill_from_start),
	        cmocka_unit_test(test_bad_dir),
	        cmocka_unit_test(test_default_dir),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
