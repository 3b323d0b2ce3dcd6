/* buf.c — growable byte buffer (see buf.h). */
#include <string.h>

#include "fcgikit.h"
#include "util/alloc.h"
#include "util/buf.h"

int fk_buf_reserve(fk_buf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return FCGI_OK;
	/* Compacting is cheaper than growing when most of the buffer was consumed. */
	if (b->off && b->cap - (b->len - b->off) >= n) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		return FCGI_OK;
	}
	size_t need = b->len - b->off + n;
	if (need < n)
		return FCGI_ENOMEM;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need) {
		if (cap > SIZE_MAX / 2)
			return FCGI_ENOMEM;
		cap *= 2;
	}
	uint8_t *d;
	if (b->off) {
		d = fk_malloc(cap);
		if (!d)
			return FCGI_ENOMEM;
		memcpy(d, b->data + b->off, b->len - b->off);
		fk_free(b->data);
		b->len -= b->off;
		b->off = 0;
	} else {
		d = fk_realloc(b->data, cap);
		if (!d)
			return FCGI_ENOMEM;
	}
	b->data = d;
	b->cap = cap;
	return FCGI_OK;
}

int fk_buf_append(fk_buf *b, const void *p, size_t n)
{
	if (!n)
		return FCGI_OK;
	int rc = fk_buf_reserve(b, n);
	if (rc)
		return rc;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return FCGI_OK;
}

void fk_buf_consume(fk_buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

void fk_buf_reset(fk_buf *b) { b->off = b->len = 0; }

void fk_buf_free(fk_buf *b)
{
	fk_free(b->data);
	*b = (fk_buf){0};
}

void fk_buf_shrink(fk_buf *b, size_t keep)
{
	if (b->off == b->len && b->cap > keep)
		fk_buf_free(b);
}
