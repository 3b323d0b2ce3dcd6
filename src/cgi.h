/* cgi.h — the CGI/1.1 parameters a web server sends with a request (nginx's fastcgi_params
 * plus SCRIPT_FILENAME), built from a URI and command-line options; shared by `call` and
 * `bench`. */
#ifndef FK_TOOL_CGI_H
#define FK_TOOL_CGI_H

#include <stddef.h>

typedef struct fk_tparam {
	char *name, *value; /* value NULL: removed (not sent) */
} fk_tparam;

typedef struct fk_plist {
	fk_tparam *v;
	size_t n, cap;
} fk_plist;

/* Sets name (nl bytes) to value, replacing an earlier value; value NULL removes it. */
void fk_plist_set(fk_plist *ps, const char *name, size_t nl, const char *value);
void fk_plist_free(fk_plist *ps);

typedef struct fk_cgi_spec {
	const char *uri;        /* "/path?query" or "http[s]://host[:port]/path?query"; NULL "/" */
	const char *method;     /* NULL: GET, or POST when there is a body */
	const char *root;       /* DOCUMENT_ROOT; NULL: the current directory */
	int has_body;
	size_t body_len;
	const char *content_type; /* default CONTENT_TYPE when there is a body, or NULL */
	const char *data_file;  /* Filter: FCGI_DATA_LENGTH / FCGI_DATA_LAST_MOD from these */
	long long data_len, data_mtime;
	char **headers;         /* "Name: value" */
	size_t nheaders;
	char **params;          /* "NAME=VALUE" (replaces), "NAME" (removes) */
	size_t nparams;
} fk_cgi_spec;

/* Fills ps. Returns 0, or -1 with a message in err (a usage error, or out of memory). */
int fk_cgi_params(const fk_cgi_spec *s, fk_plist *ps, char *err, size_t errsize);

#endif
