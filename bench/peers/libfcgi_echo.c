/* libfcgi_echo — fcgikit's `echo` test contract written against Debian's libfcgi.
 *
 *   libfcgi_echo [ADDRESS] [--threads N]
 *
 * Status 200, Content-Type application/octet-stream, the request body (FCGI_STDIN) as the
 * response body, and the headers X-Request-Method (REQUEST_METHOD) and X-Query
 * (QUERY_STRING). With the param ECHO_DELAY_MS it sleeps that many milliseconds before
 * answering — holding its thread, as a libfcgi program does.
 * Two extensions that tests/clientpeers uses: the query field `status=NNN` answers with that
 * status, and a query field `stderr` writes "stderr-marker\n" to FCGI_STDERR.
 * Build: cc -O2 libfcgi_echo.c -o libfcgi_echo -lfcgi -pthread */
#include "libfcgi_peer.h"
#include <time.h>

enum { MAX_BODY = 64 << 20 };

/* The value of field `name` in a query string (NULL when absent); `len` gets its length. */
static const char *query_field(const char *q, const char *name, size_t *len)
{
	size_t n = strlen(name);
	while (q && *q) {
		const char *end = strchr(q, '&');
		size_t flen = end ? (size_t)(end - q) : strlen(q);
		if (flen >= n && !strncmp(q, name, n) && (flen == n || q[n] == '=')) {
			*len = flen > n ? flen - n - 1 : 0;
			return flen > n ? q + n + 1 : q + n;
		}
		q = end ? end + 1 : NULL;
	}
	return NULL;
}

static void serve(FCGX_Request *r)
{
	const char *method = FCGX_GetParam("REQUEST_METHOD", r->envp);
	const char *query = FCGX_GetParam("QUERY_STRING", r->envp);
	const char *delay = FCGX_GetParam("ECHO_DELAY_MS", r->envp);
	size_t len = 0, cap = 65536;
	char *body = malloc(cap);
	int n;

	if (!body) {
		FCGX_PutS("Status: 500 Internal Server Error\r\n\r\n", r->out);
		return;
	}
	/* Read the whole body first, then answer: the body can be larger than what the socket
	 * buffers hold, and not every front reads the response while it still sends the body. */
	while ((n = FCGX_GetStr(body + len, (int)(cap - len), r->in)) > 0) {
		len += (size_t)n;
		if (len == cap) {
			char *more = cap < MAX_BODY ? realloc(body, cap * 2) : NULL;
			if (!more) {
				free(body);
				FCGX_PutS("Status: 413 Payload Too Large\r\n\r\n", r->out);
				return;
			}
			body = more;
			cap *= 2;
		}
	}
	if (delay && *delay) {
		long ms = strtol(delay, NULL, 10);
		if (ms > 0) {
			struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
			nanosleep(&ts, NULL);
		}
	}
	size_t flen;
	int status = 200;
	const char *f = query_field(query, "status", &flen);
	if (f && flen == 3 && f[0] >= '1' && f[0] <= '5')
		status = atoi(f);
	if (query_field(query, "stderr", &flen))
		FCGX_PutS("stderr-marker\n", r->err);
	FCGX_FPrintF(r->out,
	             "Status: %d\r\nContent-Type: application/octet-stream\r\n"
	             "X-Request-Method: %s\r\nX-Query: %s\r\n\r\n",
	             status, method ? method : "", query ? query : "");
	if (len)
		FCGX_PutStr(body, (int)len, r->out);
	free(body);
}
