/* cgi_map.c — the gateway's pure parts: request path normalisation and the HTTP request →
 * FastCGI parameters mapping (see gateway.h). No I/O, no clock. */
#include <fcgikit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/gateway.h"

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int gw_path_normalize(const char *in, size_t n, char *out)
{
	if (n == 0 || in[0] != '/')
		return -1;
	/* One pass: decode a byte, then treat it as if it had been sent literally. out[seg..o)
	 * is the segment being collected; out[seg - 1] is always '/'. */
	out[0] = '/';
	size_t o = 1, seg = 1;
	for (size_t i = 1; i <= n; i++) {
		int end = i == n;
		if (!end) {
			int c = (unsigned char)in[i];
			if (c == '%') {
				if (n - i < 3)
					return -1;
				int hi = hexval((unsigned char)in[i + 1]);
				int lo = hexval((unsigned char)in[i + 2]);
				if (hi < 0 || lo < 0)
					return -1;
				c = hi * 16 + lo;
				i += 2;
			}
			if (c == 0)
				return -1;
			if (c != '/') {
				out[o++] = (char)c;
				continue;
			}
		}
		size_t len = o - seg;
		if (len == 1 && out[seg] == '.') {
			o = seg; /* "." dropped */
		} else if (len == 2 && out[seg] == '.' && out[seg + 1] == '.') {
			if (seg == 1)
				return -1; /* above the root */
			o = seg - 1; /* the '/' before "..": back to just after the one before it */
			while (out[o - 1] != '/')
				o--;
		} else if (len > 0 && !end) {
			out[o++] = '/';
		} /* len 0: "//" merged */
		seg = o;
	}
	out[o] = '\0';
	return (int)o;
}

void gw_params_free(gw_params *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		free(ps->v[i].name);
		free(ps->v[i].value);
	}
	free(ps->v);
	ps->v = NULL;
	ps->n = ps->cap = 0;
}

const char *gw_params_get(const gw_params *ps, const char *name)
{
	for (size_t i = 0; i < ps->n; i++)
		if (!strcmp(ps->v[i].name, name))
			return ps->v[i].value;
	return NULL;
}

/* Appends a pair; name and value are copied (value: vn bytes). */
static int add_n(gw_params *ps, const char *name, const char *value, size_t vn)
{
	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 48;
		gw_param *v = realloc(ps->v, cap * sizeof *v);
		if (!v)
			return FCGI_ENOMEM;
		ps->v = v;
		ps->cap = cap;
	}
	char *nm = strdup(name), *val = malloc(vn + 1);
	if (!nm || !val) {
		free(nm);
		free(val);
		return FCGI_ENOMEM;
	}
	if (vn)
		memcpy(val, value, vn);
	val[vn] = '\0';
	ps->v[ps->n].name = nm;
	ps->v[ps->n].value = val;
	ps->n++;
	return FCGI_OK;
}

int gw_params_set(gw_params *ps, const char *name, const char *value, size_t vn)
{
	for (size_t i = 0; i < ps->n; i++)
		if (!strcmp(ps->v[i].name, name)) {
			char *val = malloc(vn + 1);
			if (!val)
				return FCGI_ENOMEM;
			if (vn)
				memcpy(val, value, vn);
			val[vn] = '\0';
			free(ps->v[i].value);
			ps->v[i].value = val;
			return FCGI_OK;
		}
	return add_n(ps, name, value, vn);
}

static int add(gw_params *ps, const char *name, const char *value)
{
	return add_n(ps, name, value ? value : "", value ? strlen(value) : 0);
}

size_t gw_split_script(const char *path, size_t n, const char *ext)
{
	size_t el = ext ? strlen(ext) : 0;
	if (!el)
		return n;
	for (size_t i = 1; i <= n; i++)
		if ((i == n || path[i] == '/') && i >= el + 1 && !memcmp(path + i - el, ext, el) &&
		    path[i - el - 1] != '/')
			return i;
	return n;
}

/* Header names are HTTP tokens (the parser checked): upper-case them and turn '-' into '_'. */
static int header_param_name(const fk_http_slice *name, char *out, size_t size)
{
	if (name->n + 6 > size)
		return -1;
	memcpy(out, "HTTP_", 5);
	for (size_t i = 0; i < name->n; i++) {
		char c = name->p[i];
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 32);
		else if (c == '-')
			c = '_';
		out[5 + i] = c;
	}
	out[5 + name->n] = '\0';
	return 0;
}

static int same_name(const fk_http_slice *a, const fk_http_slice *b)
{
	return a->n == b->n && !strncasecmp(a->p, b->p, a->n);
}

static int add_headers(const gw_cgi_in *in, gw_params *ps)
{
	const fk_http_req *r = in->req;
	int absolute = r->form == FK_HTTP_FORM_ABSOLUTE;
	if (absolute && r->host.p && add_n(ps, "HTTP_HOST", r->host.p, r->host.n))
		return FCGI_ENOMEM;
	for (unsigned i = 0; i < r->nheaders; i++) {
		const fk_http_header *h = &r->headers[i];
		/* An absolute-form target's authority replaces Host (RFC 9112 §3.2.2): an
		 * application that builds links from HTTP_HOST must not see a Host the target
		 * contradicts (Debian's fastcgi_params sends nginx's $host for the same reason). */
		if (absolute && fk_http_header_is(h, "host"))
			continue;
		if (memchr(h->name.p, '_', h->name.n) || fk_http_header_is(h, "proxy") ||
		    fk_http_header_is(h, "content-type") ||
		    fk_http_header_is(h, "content-length") ||
		    fk_http_header_is(h, "transfer-encoding"))
			continue;
		int seen = 0;
		for (unsigned j = 0; j < i && !seen; j++)
			seen = same_name(&r->headers[j].name, &h->name);
		if (seen)
			continue; /* joined into the first occurrence below */
		char name[FK_HTTP_MAX_LINE_DEFAULT + 8];
		if (header_param_name(&h->name, name, sizeof name))
			continue; /* longer than any line the parser lets through */
		const char *sep = fk_http_header_is(h, "cookie") ? "; " : ", ";
		size_t total = h->value.n, count = 1;
		for (unsigned j = i + 1; j < r->nheaders; j++)
			if (same_name(&r->headers[j].name, &h->name)) {
				total += strlen(sep) + r->headers[j].value.n;
				count++;
			}
		if (count == 1) {
			if (add_n(ps, name, h->value.p, h->value.n))
				return FCGI_ENOMEM;
			continue;
		}
		char *v = malloc(total + 1);
		if (!v)
			return FCGI_ENOMEM;
		size_t o = 0;
		for (unsigned j = i; j < r->nheaders; j++) {
			if (!same_name(&r->headers[j].name, &h->name))
				continue;
			if (o) {
				memcpy(v + o, sep, strlen(sep));
				o += strlen(sep);
			}
			if (r->headers[j].value.n)
				memcpy(v + o, r->headers[j].value.p, r->headers[j].value.n);
			o += r->headers[j].value.n;
		}
		int rc = add_n(ps, name, v, o);
		free(v);
		if (rc)
			return rc;
	}
	return FCGI_OK;
}

static int map(const gw_cgi_in *in, gw_params *ps)
{
	const fk_http_req *r = in->req;
	const char *path = in->path;
	size_t pn = strlen(path);
	size_t sn = gw_split_script(path, pn, in->script_ext);
	int index = in->index && in->index[0] && sn == pn && pn && path[pn - 1] == '/';
	size_t il = index ? strlen(in->index) : 0;
	size_t rl = strlen(in->root);

	char *script = malloc(sn + il + 1), *file = malloc(rl + sn + il + 1);
	if (!script || !file) {
		free(script);
		free(file);
		return FCGI_ENOMEM;
	}
	memcpy(script, path, sn);
	if (il)
		memcpy(script + sn, in->index, il);
	script[sn + il] = '\0';
	memcpy(file, in->root, rl);
	memcpy(file + rl, script, sn + il + 1);

	char clen[24] = "";
	if (in->has_body)
		snprintf(clen, sizeof clen, "%llu", (unsigned long long)in->body_len);
	const fk_http_header *ct = fk_http_find(r, "content-type");

	/* SERVER_NAME: the host without its port ("[v6]" keeps its brackets, as nginx's
	 * $server_name would for a literal); no Host at all (HTTP/1.0): the local address. */
	char sname[512];
	if (r->host.p && r->host.n) {
		size_t hn = r->host.n;
		const char *colon = NULL;
		for (size_t i = hn; i > 0; i--) {
			if (r->host.p[i - 1] == ']')
				break;
			if (r->host.p[i - 1] == ':') {
				colon = r->host.p + i - 1;
				break;
			}
		}
		if (colon)
			hn = (size_t)(colon - r->host.p);
		if (hn >= sizeof sname)
			hn = sizeof sname - 1;
		memcpy(sname, r->host.p, hn);
		sname[hn] = '\0';
	} else
		snprintf(sname, sizeof sname, "%s", in->server_addr ? in->server_addr : "");

	/* REQUEST_URI in origin form, as nginx's $request_uri: applications append it to
	 * HTTP_HOST, so an absolute-form target loses its scheme and authority. The authority
	 * ends at the first '/' or '?' after "://"; with no path, "/" stands for it. */
	const char *uri = r->target.p;
	size_t un = r->target.n;
	char *slash_uri = NULL;
	if (r->form == FK_HTTP_FORM_ABSOLUTE) {
		const char *end = r->target.p + r->target.n;
		const char *rest = memmem(r->target.p, r->target.n, "://", 3);
		rest = rest ? rest + 3 : end;
		while (rest < end && *rest != '/' && *rest != '?')
			rest++;
		un = (size_t)(end - rest);
		if (un && *rest == '/') {
			uri = rest;
		} else {
			slash_uri = malloc(un + 2);
			if (!slash_uri) {
				free(script);
				free(file);
				return FCGI_ENOMEM;
			}
			slash_uri[0] = '/';
			if (un)
				memcpy(slash_uri + 1, rest, un);
			slash_uri[++un] = '\0';
			uri = slash_uri;
		}
	}

	char proto[16];
	snprintf(proto, sizeof proto, "HTTP/1.%d", r->minor);
	int rc = add_n(ps, "QUERY_STRING", r->query.p ? r->query.p : "", r->query.n);
	rc = rc ? rc : add_n(ps, "REQUEST_METHOD", r->method.p, r->method.n);
	rc = rc ? rc : add_n(ps, "CONTENT_TYPE", ct ? ct->value.p : "", ct ? ct->value.n : 0);
	rc = rc ? rc : add(ps, "CONTENT_LENGTH", clen);
	rc = rc ? rc : add(ps, "SCRIPT_NAME", script);
	rc = rc ? rc : add(ps, "SCRIPT_FILENAME", file);
	rc = rc ? rc : add(ps, "PATH_INFO", path + sn);
	rc = rc ? rc : add_n(ps, "REQUEST_URI", uri, un);
	rc = rc ? rc : add(ps, "DOCUMENT_URI", path);
	rc = rc ? rc : add(ps, "DOCUMENT_ROOT", in->root);
	rc = rc ? rc : add(ps, "SERVER_PROTOCOL", proto);
	rc = rc ? rc : add(ps, "REQUEST_SCHEME", "http");
	rc = rc ? rc : add(ps, "GATEWAY_INTERFACE", "CGI/1.1");
	rc = rc ? rc : add(ps, "SERVER_SOFTWARE", in->software);
	rc = rc ? rc : add(ps, "REMOTE_ADDR", in->remote_addr);
	rc = rc ? rc : add(ps, "REMOTE_PORT", in->remote_port);
	rc = rc ? rc : add(ps, "SERVER_ADDR", in->server_addr);
	rc = rc ? rc : add(ps, "SERVER_PORT", in->server_port);
	rc = rc ? rc : add(ps, "SERVER_NAME", sname);
	/* php-cgi built with --enable-force-cgi-redirect refuses to run without it. */
	rc = rc ? rc : add(ps, "REDIRECT_STATUS", "200");
	rc = rc ? rc : add_headers(in, ps);
	free(script);
	free(file);
	free(slash_uri);
	return rc;
}

int gw_cgi_map(const gw_cgi_in *in, gw_params *out)
{
	int rc = map(in, out);
	if (rc)
		gw_params_free(out);
	return rc;
}
