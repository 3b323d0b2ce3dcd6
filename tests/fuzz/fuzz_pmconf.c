/*
 * fuzz_pmconf.c — libFuzzer target for the `fcgikit pm` config parser (src/pm/config.c): the
 * input is a config file's text. Besides ASan/UBSan findings it checks the contract: an error
 * is "NAME:LINE: REASON" (or "NAME: REASON") and leaves the config empty; a success holds only
 * pools that validate would pass, with NULL-terminated argv and env.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pm/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_ok(const pm_config *c)
{
	if (c->npools < 1 || c->npools > PM_MAX_POOLS || c->nfiles != 1)
		abort();
	for (int i = 0; i < c->npools; i++) {
		const pm_pool_conf *p = &c->pools[i];
		if (!p->listen || !p->argv || p->argc < 1 || p->argc > PM_MAX_ARGS ||
		    p->argv[p->argc] || p->argv[0][0] != '/' || p->file != c->files[0])
			abort();
		if (p->nenv > PM_MAX_ENV || (p->nenv && p->env[p->nenv]) || (!p->nenv && p->env))
			abort();
		for (int j = 0; j < p->nenv; j++)
			if (!strchr(p->env[j], '='))
				abort();
		if (p->max_children < 1 || p->max_children > PM_MAX_CHILDREN_LIMIT)
			abort();
		if (p->mode == PM_DYNAMIC &&
		    !(1 <= p->min_spare && p->min_spare <= p->start_servers &&
		      p->start_servers <= p->max_spare && p->max_spare <= p->max_children))
			abort();
		if (p->mode == PM_ONDEMAND && p->idle_timeout_ms <= 0)
			abort();
		if (strlen(p->name) < 1 || strlen(p->name) >= PM_NAME_MAX)
			abort();
		for (int j = 0; j < i; j++)
			if (!strcmp(c->pools[j].name, p->name))
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pm_config c;
	char err[512];
	memset(err, 'x', sizeof err);
	int rc = pm_config_parse(&c, "fuzz.conf", (const char *)data, size, err, sizeof err);
	if (rc == 0) {
		check_ok(&c);
	} else {
		if (rc != -1 || !memchr(err, 0, sizeof err) || strncmp(err, "fuzz.conf:", 10) ||
		    !strstr(err, ": ") || c.npools || c.pools || c.nfiles || c.files)
			abort();
	}
	pm_config_free(&c);
	/* A too-short buffer still ends with a NUL. */
	char tiny[5];
	if (pm_config_parse(&c, "fuzz.conf", (const char *)data, size, tiny, sizeof tiny)) {
		if (!memchr(tiny, 0, sizeof tiny))
			abort();
	}
	pm_config_free(&c);
	return 0;
}
