/* authorizer — a FastCGI Authorizer.
 *
 *   authorizer [ADDRESS] [--user NAME:PASSWORD]   (default demo:secret)
 *
 * Checks HTTP Basic credentials (HTTP_AUTHORIZATION). Accepted: "Status: 200" with
 * "Variable-AUTH_USER: NAME", which the web server passes on to the Responder as the
 * variable AUTH_USER. Refused: a 401 response with WWW-Authenticate, which the web server
 * returns to the client as it is. Requests in another role get 500. */
#include <fcgikit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_user = "demo:secret";

/* Decodes base64 into out (NUL-terminated); returns -1 on bad input. */
static int b64decode(const char *in, char *out, size_t size)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	unsigned acc = 0, bits = 0;
	for (; *in && *in != '='; in++) {
		const char *p = strchr(tbl, *in);
		if (!p || !*in)
			return -1;
		acc = acc << 6 | (unsigned)(p - tbl);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= size)
				return -1;
			out[o++] = (char)(acc >> bits & 0xff);
		}
	}
	out[o] = 0;
	return 0;
}

static void on_request(fcgi_req *req, void *ud)
{
	(void)ud;
	if (fcgi_req_role(req) != FCGI_ROLE_AUTHORIZER) {
		fcgi_puts(req, "Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n"
		               "this application is an Authorizer\n");
		fcgi_finish(req, 1);
		return;
	}
	const char *auth = fcgi_param(req, "HTTP_AUTHORIZATION");
	char cred[256];
	if (auth && !strncmp(auth, "Basic ", 6) && !b64decode(auth + 6, cred, sizeof cred) &&
	    !strcmp(cred, g_user)) {
		size_t n = strcspn(cred, ":");
		fcgi_printf(req, "Status: 200 OK\r\nVariable-AUTH_USER: %.*s\r\n\r\n", (int)n, cred);
	} else {
		fcgi_puts(req, "Status: 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"fcgikit\"\r\n"
		               "Content-Type: text/plain\r\n\r\nauthorization required\n");
	}
	fcgi_finish(req, 0);
}

int main(int argc, char **argv)
{
	const char *address = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--user") && i + 1 < argc)
			g_user = argv[++i];
		else if (argv[i][0] != '-' && !address)
			address = argv[i];
		else {
			fprintf(stderr, "usage: %s [ADDRESS] [--user NAME:PASSWORD]\n", argv[0]);
			return 2;
		}
	}
	fcgi_app *app;
	int rc = fcgi_app_new(&app);
	if (!rc)
		rc = address ? fcgi_app_listen(app, address) : fcgi_app_listen_inherited(app);
	if (rc < 0) {
		fprintf(stderr, "authorizer: %s: %s\n", address ? address : "fd 0", fcgi_strerror(rc));
		return 1;
	}
	fcgi_app_handle_signals(app);
	fcgi_app_set_handler(app, on_request, NULL);
	rc = fcgi_app_run(app);
	fcgi_app_free(app);
	return rc ? 1 : 0;
}
