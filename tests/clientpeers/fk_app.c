/* fk_app — a libfcgikit application with the settings the examples have no option for, so
 * the client's tests can make it answer every protocol status:
 *   fk_app ADDRESS [--no-mpx] [--max-reqs N]
 * --no-mpx: a second request in flight on a connection gets CANT_MPX_CONN;
 * --max-reqs N: past N requests in flight in the app, OVERLOADED.
 * It answers "ok" after the param HOLD_MS milliseconds (a library timer, no thread held);
 * unknown roles get UNKNOWN_ROLE from the library. */
#include <fcgikit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fcgi_app *g_app;

static void answer(void *ud)
{
	fcgi_req *req = ud;
	fcgi_puts(req, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok\n");
	fcgi_finish(req, 0);
}

static void on_body(fcgi_req *req, const void *data, size_t len, void *ud)
{
	(void)data;
	(void)ud;
	if (len)
		return;
	const char *hold = fcgi_param(req, "HOLD_MS");
	if (!hold || fcgi_app_timer(g_app, (unsigned)atoi(hold), answer, req) != FCGI_OK)
		answer(req);
}

static void handler(fcgi_req *req, void *ud)
{
	(void)ud;
	fcgi_req_on_body(req, on_body, NULL);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: fk_app ADDRESS [--no-mpx] [--max-reqs N]\n");
		return 2;
	}
	if (fcgi_app_new(&g_app))
		return 1;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--no-mpx"))
			fcgi_app_set_opt(g_app, FCGI_OPT_MPXS_CONNS, 0);
		else if (!strcmp(argv[i], "--max-reqs") && i + 1 < argc)
			fcgi_app_set_opt(g_app, FCGI_OPT_MAX_REQS, atol(argv[++i]));
	}
	int rc = fcgi_app_listen(g_app, argv[1]);
	if (rc) {
		fprintf(stderr, "fk_app: %s: %s\n", argv[1], fcgi_strerror(rc));
		return 1;
	}
	fcgi_app_handle_signals(g_app);
	fcgi_app_set_handler(g_app, handler, NULL);
	fcgi_app_run(g_app);
	fcgi_app_free(g_app);
	return 0;
}
