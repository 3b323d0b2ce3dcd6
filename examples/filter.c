/* filter — a FastCGI Filter: the web server sends the request (PARAMS, STDIN) and then the
 * file to filter as the DATA stream; this one upper-cases the file's ASCII letters and
 * answers it with the same length (FCGI_DATA_LENGTH).
 *
 *   filter [ADDRESS]
 *
 * Blocking style: the body is read to its end first, then the DATA stream. */
#include <ctype.h>
#include <fcgikit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void serve_one(fcgi_req *req)
{
	char buf[16384];
	ssize_t n;
	if (fcgi_req_role(req) != FCGI_ROLE_FILTER) {
		fcgi_puts(req, "Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n"
		               "this application is a Filter\n");
		fcgi_finish(req, 1);
		return;
	}
	while (fcgi_read(req, buf, sizeof buf) > 0)
		; /* a filter may look at the request body; this one does not */
	const char *len = fcgi_param(req, "FCGI_DATA_LENGTH");
	const char *mtime = fcgi_param(req, "FCGI_DATA_LAST_MOD");
	fcgi_printf(req, "Content-Type: text/plain\r\nX-Data-Last-Mod: %s\r\n", mtime ? mtime : "");
	if (len)
		fcgi_printf(req, "Content-Length: %s\r\n", len);
	fcgi_puts(req, "\r\n");
	int rc = FCGI_OK;
	while (rc == FCGI_OK && (n = fcgi_read_data(req, buf, sizeof buf)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			buf[i] = (char)toupper((unsigned char)buf[i]);
		rc = fcgi_write(req, buf, (size_t)n);
	}
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
		fprintf(stderr, "filter: %s: %s\n", address ? address : "fd 0", fcgi_strerror(rc));
		return 1;
	}
	fcgi_app_handle_signals(app);
	fcgi_req *req;
	while (fcgi_accept(app, &req) == FCGI_OK)
		serve_one(req);
	fcgi_app_free(app);
	return 0;
}
