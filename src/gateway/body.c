/* body.c — the request body store of `fcgikit gateway` (see body.h). */
#include "gateway/body.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void gw_body_init(gw_body *b, size_t mem_max, const char *dir)
{
	memset(b, 0, sizeof *b);
	b->mem_max = mem_max;
	b->dir = dir;
	b->fd = -1;
}

void gw_body_reset(gw_body *b)
{
	free(b->mem);
	if (b->fd >= 0)
		close(b->fd);
	gw_body_init(b, b->mem_max, b->dir);
}

const char *gw_temp_dir(const char *dir)
{
	if (!dir || !*dir) {
		dir = getenv("TMPDIR");
		if (!dir || !*dir)
			dir = "/tmp";
	}
	return dir;
}

/* O_TMPFILE first (never has a name at all); a filesystem without it (EOPNOTSUPP, an old
 * kernel's EISDIR) gets mkstemp and an unlink right away. */
int gw_tmpfile(const char *dir)
{
	dir = gw_temp_dir(dir);
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/fcgikit-body-XXXXXX", dir) >= (int)sizeof path)
		return -ENAMETOOLONG;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(path);
	return fd;
}

static int gw_body_pwrite(int fd, const unsigned char *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

int gw_body_append(gw_body *b, const void *p, size_t n)
{
	if (b->err)
		return b->err;
	if (!n)
		return 0;
	if (b->fd < 0 && b->len + n <= b->mem_max) {
		if (b->len + n > b->mem_cap) {
			size_t cap = b->mem_cap ? b->mem_cap : 4096;
			while (cap < b->len + n)
				cap *= 2;
			if (cap > b->mem_max)
				cap = b->mem_max;
			unsigned char *m = realloc(b->mem, cap);
			if (!m)
				return b->err = -ENOMEM;
			b->mem = m;
			b->mem_cap = cap;
		}
		memcpy(b->mem + b->len, p, n);
		b->len += n;
		return 0;
	}
	if (b->fd < 0) {
		int fd = gw_tmpfile(b->dir);
		if (fd < 0)
			return b->err = fd;
		b->fd = fd;
		int rc = gw_body_pwrite(fd, b->mem, (size_t)b->len, 0);
		if (rc)
			return b->err = rc;
		free(b->mem);
		b->mem = NULL;
		b->mem_cap = 0;
	}
	int rc = gw_body_pwrite(b->fd, p, n, b->len);
	if (rc)
		return b->err = rc;
	b->len += n;
	return 0;
}

ssize_t gw_body_read(gw_body *b, uint64_t off, void *buf, size_t n)
{
	if (off >= b->len)
		return 0;
	if (n > b->len - off)
		n = (size_t)(b->len - off);
	if (n > SSIZE_MAX)
		n = SSIZE_MAX;
	if (b->fd < 0) {
		memcpy(buf, b->mem + off, n);
		return (ssize_t)n;
	}
	for (;;) {
		ssize_t r = pread(b->fd, buf, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		return r ? r : -EIO; /* the file is shorter than what was written: not ours any more */
	}
}
