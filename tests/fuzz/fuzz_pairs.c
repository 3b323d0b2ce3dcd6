/*
 * fuzz_pairs.c — libFuzzer target for name-value pairs: fk_pair_decode in a loop, and
 * fk_params_parse over the same bytes; the two must agree. Decoded pairs are re-encoded
 * with fk_pair_encode and decoded again.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "fcgikit.h"

#define CHECK(c)                                                                           \
	do {                                                                                   \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);          \
			abort();                                                                       \
		}                                                                                  \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_COUNT = 64 };

static size_t len_size(const uint8_t *p) { return p[0] & 0x80 ? 4 : 1; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fk_pair pairs[MAX_COUNT + 1];
	size_t npairs = 0, off = 0;
	int complete = 0;

	for (;;) {
		fk_pair p;
		size_t used = (size_t)-1;
		memset(&p, 0, sizeof p);
		int rc = fk_pair_decode(data + off, size - off, &p, &used);
		CHECK(rc >= 0);
		if (rc == 0) {
			complete = off == size;
			break;
		}
		/* Bounds: the pair lies inside the input, lengths as encoded. */
		CHECK(used > 0 && used <= size - off);
		const uint8_t *q = data + off;
		size_t hl = len_size(q);
		hl += len_size(q + hl);
		CHECK(used == hl + p.name_len + p.value_len);
		CHECK(p.name_len <= FK_PAIR_LEN_MAX && p.value_len <= FK_PAIR_LEN_MAX);
		CHECK(p.name == q + hl);
		CHECK(p.value == p.name + p.name_len);

		/* Re-encode and decode again. */
		size_t es = fk_pair_size(p.name_len, p.value_len);
		CHECK(es > 0 && es <= used);
		uint8_t *enc = malloc(es);
		CHECK(enc != NULL);
		CHECK(fk_pair_encode(enc, p.name, p.name_len, p.value, p.value_len) == es);
		fk_pair p2;
		size_t used2 = 0;
		CHECK(fk_pair_decode(enc, es, &p2, &used2) > 0);
		CHECK(used2 == es);
		CHECK(fk_pair_decode(enc, es - 1, &p2, &used2) == 0);
		CHECK(p2.name_len == p.name_len && p2.value_len == p.value_len);
		CHECK(memcmp(p2.name, p.name, p.name_len) == 0);
		CHECK(memcmp(p2.value, p.value, p.value_len) == 0);
		free(enc);

		if (npairs < MAX_COUNT + 1)
			pairs[npairs] = p;
		npairs++;
		off += used;
		if (off == size) {
			complete = 1;
			break;
		}
	}

	fk_params *params = NULL;
	int rc = fk_params_parse(data, size, MAX_COUNT, &params);
	if (rc == FCGI_OK) {
		CHECK(complete);
		CHECK(npairs <= MAX_COUNT);
		CHECK(params != NULL);
		CHECK(params->count == npairs);
		for (size_t i = 0; i < npairs; i++) {
			const struct fk_param *it = &params->items[i];
			CHECK(it->name_len == pairs[i].name_len && it->value_len == pairs[i].value_len);
			CHECK(memcmp(it->name, pairs[i].name, it->name_len) == 0);
			CHECK(memcmp(it->value, pairs[i].value, it->value_len) == 0);
			CHECK(it->name[it->name_len] == '\0' && it->value[it->value_len] == '\0');
		}
		fk_params_free(params);
	} else if (rc == FCGI_ELIMIT) {
		CHECK(npairs > MAX_COUNT);
	} else {
		CHECK(rc == FCGI_EPROTO);
		CHECK(!complete); /* a truncated pair */
	}
	return 0;
}
