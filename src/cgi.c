/* cgi.c — CGI/1.1 request parameters for the tools (see cgi.h). */
#include <fcgikit.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cgi.h"

void fk_plist_set(fk_plist *ps, const char *name, size_t nl, const char *value)
{
	for (size_t i = 0; i < ps->n; i++)
		if (strlen(ps->v[i].name) == nl && !memcmp(ps->v[i].name, name, nl)) {
			free(ps->v[i].value);
			ps->v[i].value = value ? strdup(value) : NULL;
			return;
		}
	if (!value)
		return;
	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 32;
		fk_tparam *v = realloc(ps->v, cap * sizeof *v);
		if (!v)
			return; /* the parameter is lost; callers check for out of memory at the end */
		ps->v = v;
		ps->cap = cap;
	}
	ps->v[ps->n].name = strndup(name, nl);
	ps->v[ps->n].value = strdup(value);
	ps->n++;
}

void fk_plist_free(fk_plist *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		free(ps->v[i].name);
		free(ps->v[i].value);
	}
	free(ps->v);
	*ps = (fk_plist){0};
}

/* "Content-Type" -> "CONTENT_TYPE", "Content-Length" -> "CONTENT_LENGTH", others
 * -> "HTTP_NAME" with '-' as '_'. */
static char *header_param_name(const char *name, size_t nl)
{
	int special = (nl == 12 && !strncasecmp(name, "Content-Type", 12)) ||
	              (nl == 14 && !strncasecmp(name, "Content-Length", 14));
	char *out = malloc(nl + 6);
	if (!out)
		return NULL;
	size_t o = 0;
	if (!special) {
		memcpy(out, "HTTP_", 5);
		o = 5;
	}
	for (size_t i = 0; i < nl; i++) {
		char ch = name[i];
		out[o++] = ch == '-' ? '_' : (ch >= 'a' && ch <= 'z') ? (char)(ch - 'a' + 'A') : ch;
	}
	out[o] = 0;
	return out;
}

#define SET(name, value) fk_plist_set(ps, name, sizeof name - 1, value)

int fk_cgi_params(const fk_cgi_spec *s, fk_plist *ps, char *err, size_t errsize)
{
	const char *uri = s->uri ? s->uri : "/";
	char host[256] = "localhost", port[16] = "80";
	int tls = 0;
	if (!strncmp(uri, "http://", 7) || !strncmp(uri, "https://", 8)) {
		tls = uri[4] == 's';
		snprintf(port, sizeof port, "%s", tls ? "443" : "80");
		const char *h = uri + (tls ? 8 : 7), *slash = strchr(h, '/');
		size_t hl = slash ? (size_t)(slash - h) : strlen(h);
		if (hl >= sizeof host)
			hl = sizeof host - 1;
		memcpy(host, h, hl);
		host[hl] = 0;
		char *colon = strrchr(host, ':');
		if (colon && !strchr(colon, ']')) {
			snprintf(port, sizeof port, "%s", colon + 1);
			*colon = 0;
		}
		uri = slash ? slash : "/";
	}
	size_t ul = strlen(uri);
	char *request_uri = malloc(ul + 2);
	char *path = NULL, *script = NULL, *path_info = NULL, *filename = NULL;
	if (!request_uri)
		goto nomem;
	snprintf(request_uri, ul + 2, "%s%s", uri[0] == '/' ? "" : "/", uri);
	const char *q = strchr(request_uri, '?');
	path = strndup(request_uri, q ? (size_t)(q - request_uri) : strlen(request_uri));
	script = path ? strdup(path) : NULL;
	if (!script)
		goto nomem;
	/* PHP-style split, as nginx's fastcgi_split_path_info ^(.+\.php)(/.+)$ does:
	 * /index.php/extra -> SCRIPT_NAME /index.php, PATH_INFO /extra. */
	char *dotphp = strstr(script, ".php/");
	if (dotphp) {
		path_info = strdup(dotphp + 4);
		dotphp[4] = 0;
	}
	char cwd[PATH_MAX];
	const char *root = s->root;
	if (!root)
		root = getcwd(cwd, sizeof cwd) ? cwd : ".";
	size_t rl = strlen(root);
	while (rl > 1 && root[rl - 1] == '/')
		rl--;
	size_t fl = rl + strlen(script) + 1;
	filename = malloc(fl);
	if (!filename)
		goto nomem;
	snprintf(filename, fl, "%.*s%s", (int)rl, root, script);
	char docroot[PATH_MAX];
	snprintf(docroot, sizeof docroot, "%.*s", (int)rl, root);

	char clen[32] = "";
	if (s->has_body)
		snprintf(clen, sizeof clen, "%zu", s->body_len);
	SET("QUERY_STRING", q ? q + 1 : "");
	SET("REQUEST_METHOD", s->method ? s->method : s->has_body ? "POST" : "GET");
	SET("CONTENT_TYPE", s->has_body && s->content_type ? s->content_type : "");
	SET("CONTENT_LENGTH", clen);
	SET("SCRIPT_NAME", script);
	SET("SCRIPT_FILENAME", filename);
	if (path_info)
		SET("PATH_INFO", path_info);
	SET("REQUEST_URI", request_uri);
	SET("DOCUMENT_URI", path);
	SET("DOCUMENT_ROOT", docroot);
	SET("SERVER_PROTOCOL", "HTTP/1.1");
	SET("REQUEST_SCHEME", tls ? "https" : "http");
	if (tls)
		SET("HTTPS", "on");
	SET("GATEWAY_INTERFACE", "CGI/1.1");
	char software[64];
	snprintf(software, sizeof software, "fcgikit/%s", fcgi_version());
	SET("SERVER_SOFTWARE", software);
	SET("REMOTE_ADDR", "127.0.0.1");
	SET("REMOTE_PORT", "0");
	SET("SERVER_ADDR", "127.0.0.1");
	SET("SERVER_PORT", port);
	SET("SERVER_NAME", host);
	SET("REDIRECT_STATUS", "200"); /* php-cgi's cgi.force_redirect wants it */
	SET("HTTP_HOST", host);
	if (s->data_file) {
		char v[32];
		snprintf(v, sizeof v, "%lld", s->data_len);
		SET("FCGI_DATA_LENGTH", v);
		snprintf(v, sizeof v, "%lld", s->data_mtime);
		SET("FCGI_DATA_LAST_MOD", v);
	}
	for (size_t i = 0; i < s->nheaders; i++) {
		const char *h = s->headers[i], *colon = strchr(h, ':');
		if (!colon || colon == h) {
			snprintf(err, errsize, "-H wants 'Name: value', not '%s'", h);
			goto fail;
		}
		const char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		char *name = header_param_name(h, (size_t)(colon - h));
		if (!name)
			goto nomem;
		fk_plist_set(ps, name, strlen(name), v);
		if (!strcmp(name, "HTTP_HOST"))
			SET("SERVER_NAME", v);
		free(name);
	}
	for (size_t i = 0; i < s->nparams; i++) {
		const char *p = s->params[i], *eq = strchr(p, '=');
		if (eq == p || !*p) {
			snprintf(err, errsize, "-p wants NAME=VALUE, not '%s'", p);
			goto fail;
		}
		if (eq)
			fk_plist_set(ps, p, (size_t)(eq - p), eq + 1);
		else
			fk_plist_set(ps, p, strlen(p), NULL); /* -p NAME: do not send NAME */
	}
	for (size_t i = 0; i < ps->n; i++)
		if (!ps->v[i].name || (!ps->v[i].value && 0))
			goto nomem;
	free(request_uri);
	free(path);
	free(script);
	free(path_info);
	free(filename);
	return 0;
nomem:
	snprintf(err, errsize, "out of memory");
fail:
	free(request_uri);
	free(path);
	free(script);
	free(path_info);
	free(filename);
	return -1;
}
