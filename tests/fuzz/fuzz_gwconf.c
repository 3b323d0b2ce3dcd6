/*
 * fuzz_gwconf.c — libFuzzer target for the `fcgikit gateway` config parser
 * (src/gateway/config.c): the input is a config file's text. Besides ASan/UBSan findings it
 * checks the contract: an error is "NAME:LINE: REASON" and leaves the config empty; a
 * success holds values inside the ranges the key table promises, backends with weights in
 * 1..GW_WEIGHT_MAX and no address twice.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_ok(const gw_config *c)
{
	if (!c->file || strcmp(c->file, "fuzz.conf") || c->line < 1)
		abort();
	if (c->nbackends > GW_MAX_BACKENDS || (c->nbackends && !c->backends))
		abort();
	for (size_t i = 0; i < c->nbackends; i++) {
		if (!c->backends[i].addr || !c->backends[i].addr[0] || c->backends[i].weight < 1 ||
		    c->backends[i].weight > GW_WEIGHT_MAX)
			abort();
		for (size_t j = 0; j < i; j++)
			if (!strcmp(c->backends[i].addr, c->backends[j].addr))
				abort();
	}
	if (!c->max_body || c->max_body > ((uint64_t)1 << 40) || c->max_buffer < 65536 ||
	    c->max_conns < 1 || c->upstream_timeout_ms < 1 || c->connect_timeout_ms < 1 ||
	    c->workers > GW_MAX_WORKERS || c->backend_conns > 4096 || c->queue > 100000)
		abort();
	if ((c->balance == GW_BAL_HASH_HEADER) != (c->hash_header != NULL))
		abort();
	if ((c->status_path && c->status_path[0] != '/') ||
	    (c->auth_prefix && c->auth_prefix[0] != '/'))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	gw_config c;
	char err[512];
	memset(err, 'x', sizeof err);
	int rc = gw_config_parse(&c, "fuzz.conf", (const char *)data, size, err, sizeof err);
	if (rc == 0) {
		check_ok(&c);
		/* validate either passes or says where, in the same form */
		if (gw_config_validate(&c, err, sizeof err) &&
		    (strncmp(err, "fuzz.conf:", 10) || !memchr(err, 0, sizeof err)))
			abort();
	} else {
		if (rc != -1 || !memchr(err, 0, sizeof err) || strncmp(err, "fuzz.conf:", 10) ||
		    !strstr(err, ": ") || c.backends || c.nbackends || c.listen || c.file)
			abort();
	}
	gw_config_free(&c);
	/* A too-short buffer still ends with a NUL. */
	char tiny[5];
	if (gw_config_parse(&c, "fuzz.conf", (const char *)data, size, tiny, sizeof tiny))
		if (!memchr(tiny, 0, sizeof tiny))
			abort();
	gw_config_free(&c);
	return 0;
}
