/* preload — load once, then fork workers that share the data (fcgi_app_prefork).
 *
 *   preload [ADDRESS] [--workers N] [--mib M]
 *
 * Builds an M MiB table (default 64) before forking: the N workers share its pages
 * copy-on-write, so the machine holds one copy, not N. Each response says which worker
 * answered and a checksum of the table, the same in every worker. Under `fcgikit pm` with
 * `preload = yes` the manager decides how many workers run (--workers is ignored). */
#include <fcgikit.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t *table;
static size_t words;
static uint64_t checksum;

static void load(size_t mib)
{
	words = mib * 1024 * 1024 / sizeof *table;
	table = malloc(words * sizeof *table);
	if (!table) {
		perror("preload: malloc");
		exit(1);
	}
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < words; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		table[i] = x;
		checksum += x;
	}
}

static void handle(fcgi_req *req, void *ud)
{
	(void)ud;
	fcgi_printf(req,
	            "Content-Type: text/plain\r\n\r\nworker %d, table of %zu MiB, checksum %016llx\n",
	            (int)getpid(), words * sizeof *table >> 20, (unsigned long long)checksum);
	fcgi_finish(req, 0);
}

int main(int argc, char **argv)
{
	const char *address = NULL;
	int workers = 2;
	size_t mib = 64;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--workers") && i + 1 < argc)
			workers = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--mib") && i + 1 < argc)
			mib = (size_t)atol(argv[++i]);
		else if (argv[i][0] != '-' && !address)
			address = argv[i];
		else {
			fprintf(stderr, "usage: %s [ADDRESS] [--workers N] [--mib M]\n", argv[0]);
			return 2;
		}
	}
	if (mib < 1 || mib > 4096)
		mib = 64;

	fcgi_app *app;
	int rc = fcgi_app_new(&app);
	if (!rc)
		rc = address ? fcgi_app_listen(app, address) : fcgi_app_listen_inherited(app);
	if (rc < 0) {
		fprintf(stderr, "preload: %s: %s\n", address ? address : "fd 0", fcgi_strerror(rc));
		return 1;
	}
	load(mib); /* once, before the fork */
	rc = fcgi_app_prefork(app, workers);
	if (rc == FCGI_ESHUTDOWN) { /* the parent: every worker has gone */
		fcgi_app_free(app);
		return 0;
	}
	if (rc) {
		fprintf(stderr, "preload: prefork: %s\n", fcgi_strerror(rc));
		return 1;
	}
	fcgi_app_handle_signals(app);
	fcgi_app_set_handler(app, handle, NULL);
	rc = fcgi_app_run(app);
	fcgi_app_free(app);
	free(table);
	return rc ? 1 : 0;
}
