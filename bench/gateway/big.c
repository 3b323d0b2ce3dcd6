/* big — a FastCGI responder that answers N bytes, for bench/gateway/run.py.
 *
 *   big ADDRESS [--threads N] [--bytes N]
 *
 * The body is --bytes long (default 1 MiB), or the query's bytes=N when there is one (at
 * most 64 MiB), with Content-Length, written in 64 KiB pieces from one static buffer.
 * Blocking style like examples/hello: each thread loops on fcgi_accept(). */
#include <fcgikit.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PIECE = 65536, MAX_BYTES = 64 << 20 };

static char g_piece[PIECE];
static long g_bytes = 1 << 20;

static long wanted(fcgi_req *req)
{
	const char *q = fcgi_param(req, "QUERY_STRING");
	const char *p = q ? strstr(q, "bytes=") : NULL;
	if (p && (p == q || p[-1] == '&')) {
		long n = strtol(p + 6, NULL, 10);
		if (n >= 0 && n <= MAX_BYTES)
			return n;
	}
	return g_bytes;
}

static void *serve(void *arg)
{
	fcgi_app *app = arg;
	fcgi_req *req;
	while (fcgi_accept(app, &req) == FCGI_OK) {
		long n = wanted(req);
		int rc = fcgi_printf(req, "Content-Type: application/octet-stream\r\n"
		                          "Content-Length: %ld\r\n\r\n", n);
		for (long off = 0; rc == FCGI_OK && off < n; off += PIECE)
			rc = fcgi_write(req, g_piece, (size_t)(n - off < PIECE ? n - off : PIECE));
		fcgi_finish(req, 0);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *address = NULL;
	int threads = 1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--bytes") && i + 1 < argc)
			g_bytes = atol(argv[++i]);
		else if (argv[i][0] != '-' && !address)
			address = argv[i];
		else {
			fprintf(stderr, "usage: %s ADDRESS [--threads N] [--bytes N]\n", argv[0]);
			return 2;
		}
	}
	if (threads < 1 || threads > 1024)
		threads = 1;
	if (g_bytes < 0 || g_bytes > MAX_BYTES)
		g_bytes = 1 << 20;
	memset(g_piece, 'x', sizeof g_piece);

	fcgi_app *app;
	int rc = fcgi_app_new(&app);
	if (!rc)
		rc = address ? fcgi_app_listen(app, address) : fcgi_app_listen_inherited(app);
	if (rc < 0) {
		fprintf(stderr, "big: %s: %s\n", address ? address : "fd 0", fcgi_strerror(rc));
		return 1;
	}
	fcgi_app_handle_signals(app);

	pthread_t *tids = calloc((size_t)threads, sizeof *tids);
	for (int i = 1; i < threads; i++)
		pthread_create(&tids[i], NULL, serve, app);
	serve(app);
	for (int i = 1; i < threads; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	fcgi_app_free(app);
	return 0;
}
