/* hello_event — the same answer as hello, event-driven: a handler runs on the library's loop
 * and answers at once. Usage as hello. */
#include <fcgikit.h>
#include <stdio.h>
#include <string.h>

static void on_request(fcgi_req *req, void *ud)
{
	(void)ud;
	fcgi_puts(req, "Content-Type: text/plain\r\n\r\nHello, World!\n");
	fcgi_finish(req, 0);
}

int main(int argc, char **argv)
{
	const char *address = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
	fcgi_app *app;
	int rc = fcgi_app_new(&app);
	if (!rc)
		rc = address ? fcgi_app_listen(app, address) : fcgi_app_listen_inherited(app);
	if (rc < 0) {
		fprintf(stderr, "hello_event: %s: %s\n", address ? address : "fd 0", fcgi_strerror(rc));
		return 1;
	}
	fcgi_app_handle_signals(app);
	fcgi_app_set_handler(app, on_request, NULL);
	rc = fcgi_app_run(app);
	fcgi_app_free(app);
	return rc ? 1 : 0;
}
