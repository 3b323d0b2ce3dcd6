/* gateway.h — `fcgikit gateway`: an HTTP/1.1 front that forwards requests to FastCGI
 * backends. The event-driven part lives in gateway.c; this header declares the pure parts
 * (request path normalisation and the CGI parameter mapping, cgi_map.c) so that unit tests
 * reach them without sockets. Internal: gw_ names, nothing exported. */
#ifndef FK_GATEWAY_H
#define FK_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "http/http.h"

/* Decodes %XX escapes in an origin-form path and normalises it the way nginx builds $uri:
 * runs of '/' become one, "." segments are dropped, ".." removes the previous segment.
 * in[0..n) must start with '/'. out must hold n + 1 bytes (the result is never longer than
 * the input); it is NUL-terminated. Returns the length, or -1 when the path must be refused
 * (400): not starting with '/', a malformed escape, a decoded NUL, or ".." climbing above
 * the root. Decoded bytes are not re-checked otherwise: a decoded '/' separates segments
 * like a literal one (nginx does the same), so "%2e%2e/" is ".." too. */
int gw_path_normalize(const char *in, size_t n, char *out);

/* One FastCGI parameter: NUL-terminated name and value, owned by the list. */
typedef struct gw_param {
	char *name;
	char *value;
} gw_param;

typedef struct gw_params {
	gw_param *v;
	size_t n, cap;
} gw_params;

void gw_params_free(gw_params *ps);
/* Sets name to value[0..vn) (copied), replacing the first parameter of that name or
 * appending one. FCGI_OK or FCGI_ENOMEM. */
int gw_params_set(gw_params *ps, const char *name, const char *value, size_t vn);
/* The value of the first parameter called name, or NULL. */
const char *gw_params_get(const gw_params *ps, const char *name);

/* Where a normalised path splits into SCRIPT_NAME and PATH_INFO: at the end of the first
 * segment that ends in ext (nginx's `fastcgi_split_path_info ^(.+\.php)(/.*)$`, except that
 * the regex's greedy .+ would take the *last* such segment; the first is what Apache's
 * AcceptPathInfo resolves and cannot hand a deeper, attacker-named ".php" to the
 * interpreter). Returns the length of the script part: n when there is no such segment or
 * when ext is NULL or "". */
size_t gw_split_script(const char *path, size_t n, const char *ext);

/* What the CGI mapping needs besides the parsed request. Strings are NUL-terminated and
 * borrowed for the call. */
typedef struct gw_cgi_in {
	const fk_http_req *req; /* a request fk_http_parse_request accepted */
	const char *path;       /* req->path through gw_path_normalize */
	const char *root;       /* DOCUMENT_ROOT, without a trailing '/' ("" allowed) */
	const char *script_ext; /* ".php": where PATH_INFO splits; NULL or "": never */
	const char *index;      /* appended to a script name ending in '/' ("index.php"); NULL:
	                           nothing */
	int has_body;           /* a body was announced (Content-Length or chunked) */
	uint64_t body_len;      /* its exact decoded length */
	const char *remote_addr, *remote_port; /* the HTTP client */
	const char *server_addr, *server_port; /* the local end of its connection */
	const char *software;                  /* SERVER_SOFTWARE, "fcgikit/0.1.0" */
} gw_cgi_in;

/* Builds the request's FastCGI parameters the way nginx's fastcgi_params (plus
 * SCRIPT_FILENAME, PATH_INFO and fastcgi_index) does, into an empty list *out:
 * QUERY_STRING, REQUEST_METHOD, CONTENT_TYPE, CONTENT_LENGTH, SCRIPT_NAME, SCRIPT_FILENAME,
 * PATH_INFO, REQUEST_URI, DOCUMENT_URI, DOCUMENT_ROOT, SERVER_PROTOCOL, REQUEST_SCHEME,
 * GATEWAY_INTERFACE, SERVER_SOFTWARE, REMOTE_ADDR, REMOTE_PORT, SERVER_ADDR, SERVER_PORT,
 * SERVER_NAME, REDIRECT_STATUS, then HTTP_<NAME> for every header but:
 *  - Proxy (httpoxy: an application would take HTTP_PROXY for its outgoing proxy),
 *  - names holding '_' (X_Foo would become the same HTTP_X_FOO as X-Foo and let a client
 *    overwrite a header a trusted front added),
 *  - Content-Type and Content-Length (they are CONTENT_*), Transfer-Encoding (the gateway
 *    has removed the chunked framing: the application sees a plain body).
 * Repeated headers are joined in order with ", " (Cookie with "; ", RFC 9113 §8.2.3).
 * An absolute-form target ("GET http://host/x HTTP/1.1") gives REQUEST_URI in origin form
 * ("/x", as nginx's $request_uri) and HTTP_HOST from its authority, not the Host header
 * (RFC 9112 §3.2.2).
 * Returns FCGI_OK or FCGI_ENOMEM (out is then freed and empty). */
int gw_cgi_map(const gw_cgi_in *in, gw_params *out);

#endif
