/* buf.h — a growable byte buffer with a read offset; bytes are appended at the end and
 * consumed from the front. Used for connection input/output and per-request bodies. */
#ifndef FK_BUF_H
#define FK_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct fk_buf {
	uint8_t *data;
	size_t off; /* first unconsumed byte */
	size_t len; /* end of valid bytes (data[off..len) is the content) */
	size_t cap;
} fk_buf;

static inline size_t fk_buf_size(const fk_buf *b) { return b->len - b->off; }
/* NULL for a buffer never allocated (NULL + 0 is undefined behaviour in C). */
static inline uint8_t *fk_buf_head(const fk_buf *b) { return b->data ? b->data + b->off : NULL; }

/* Makes room for at least n more bytes at the end; compacts first. FCGI_OK or FCGI_ENOMEM. */
int fk_buf_reserve(fk_buf *b, size_t n);
int fk_buf_append(fk_buf *b, const void *p, size_t n);
/* Drops n bytes from the front. */
void fk_buf_consume(fk_buf *b, size_t n);
void fk_buf_reset(fk_buf *b);
/* Frees the storage. */
void fk_buf_free(fk_buf *b);
/* Frees the storage when it is empty and larger than keep, so idle connections stay small. */
void fk_buf_shrink(fk_buf *b, size_t keep);

#endif
