/* body.h — `fcgikit gateway`: where a request body waits between the HTTP client and the
 * backend. The first `mem_max` bytes stay in memory; past that the whole body moves to an
 * unlinked temporary file (O_TMPFILE, else mkstemp + unlink) and is appended there, so a
 * body of any size allowed by --max-body costs at most mem_max bytes of memory. Everything
 * is kept until the request ends: a request never delivered may be sent again, from offset
 * 0, to another backend.
 *
 * No sockets, no clock: the gateway appends what it decodes and reads at any offset; a unit
 * test drives the same calls (tests/unit/test_gw_body.c). Errors are negative errno values
 * (-ENOSPC, -EIO, -ENOMEM, ...); after one, the store refuses further appends with the same
 * error (the body is incomplete: the request can only fail). */
#ifndef FK_GW_BODY_H
#define FK_GW_BODY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* 64 KiB: nginx's client_body_buffer_size on 64-bit is 16 KiB; four times that keeps the
 * common form posts and JSON bodies off the disk and still bounds 1024 connections at
 * 64 MiB of body memory. */
#define GW_BODY_MEM_DEFAULT ((size_t)64 << 10)

typedef struct gw_body {
	size_t mem_max;  /* bytes kept in memory before spilling (0: spill at the first byte) */
	const char *dir; /* where the temporary file goes (borrowed; NULL: $TMPDIR or /tmp) */
	unsigned char *mem; /* the body while it is small (NULL once spilled) */
	size_t mem_cap;
	uint64_t len; /* bytes appended so far */
	int fd;       /* the temporary file once spilled, else -1 */
	int err;      /* the first error (negative errno), sticky; 0 when none */
} gw_body;

/* An empty store; dir is borrowed and must outlive it. */
/* The directory temporary files go to: dir, else $TMPDIR, else /tmp. */
const char *gw_temp_dir(const char *dir);
/* A file with no name in gw_temp_dir(dir), read-write, close-on-exec: nothing is left
 * behind whatever happens to the process. The descriptor, or -errno. Shared by request
 * bodies and responses spilled for slow clients. */
int gw_tmpfile(const char *dir);

void gw_body_init(gw_body *b, size_t mem_max, const char *dir);
/* Appends p[0..n). 0, or a negative errno (the temporary file could not be made or
 * written, ENOSPC included; out of memory). */
int gw_body_append(gw_body *b, const void *p, size_t n);
/* Copies up to n bytes from offset off into buf: the count, 0 at or past the end, or a
 * negative errno. */
ssize_t gw_body_read(gw_body *b, uint64_t off, void *buf, size_t n);
static inline uint64_t gw_body_len(const gw_body *b) { return b->len; }
/* Whether the body lives in a temporary file. */
static inline int gw_body_spilled(const gw_body *b) { return b->fd >= 0; }
/* Empties it for the next request: memory freed, the file closed (it disappears then: it
 * has no name). mem_max and dir stay. */
void gw_body_reset(gw_body *b);

#endif
