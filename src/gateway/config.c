/* config.c — `fcgikit gateway` configuration: one key table read by both the file parser and
 * the command line, one setter that checks every value (see config.h). */
#include "gateway/config.h"

#include "util/scaled.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum gw_ktype {
	GW_K_ADDR,    /* an address string (syntax only: no name is resolved here) */
	GW_K_STR,     /* any string, "" allowed (index = , script_ext = ) */
	GW_K_PATH,    /* a file or directory, not empty */
	GW_K_URLPATH, /* starts with '/' */
	GW_K_SIZE,    /* uint64_t bytes: digits, then K, M or G (powers of 1024) */
	GW_K_COUNT,   /* unsigned: digits (K, M, G accepted, as the old options did) */
	GW_K_MS,      /* unsigned milliseconds: digits, then ms (default) or s */
	GW_K_BALANCE,
	GW_K_WORKERS, /* a count or "auto" */
	GW_K_BACKEND, /* ADDR [weight=N]: appends */
} gw_ktype;

typedef struct gw_key {
	const char *name; /* the long option; the file writes '-' as '_' */
	char short_opt;
	gw_ktype type;
	size_t off;
	uint64_t min, max;
} gw_key;

#define GW_F(field) offsetof(gw_config, field)

/* clang-format off */
static const gw_key gw_keys[] = {
	{"listen",           'l', GW_K_ADDR,    GW_F(listen),              0, 0},
	{"backend",          'b', GW_K_BACKEND, GW_F(backends),            0, 0},
	{"root",             'r', GW_K_PATH,    GW_F(root),                0, 0},
	{"balance",          0,   GW_K_BALANCE, GW_F(balance),             0, 0},
	{"index",            0,   GW_K_STR,     GW_F(index),               0, 0},
	{"script-ext",       0,   GW_K_STR,     GW_F(script_ext),          0, 0},
	{"max-body",         0,   GW_K_SIZE,    GW_F(max_body),            1, (uint64_t)1 << 40},
	{"max-buffer",       0,   GW_K_SIZE,    GW_F(max_buffer),          65536, (uint64_t)1 << 40},
	{"response-buffer",  0,   GW_K_SIZE,    GW_F(response_buffer),     4096, (uint64_t)1 << 40},
	{"max-temp-file",    0,   GW_K_SIZE,    GW_F(max_temp_file),       0, (uint64_t)1 << 50},
	{"body-buffer",      0,   GW_K_SIZE,    GW_F(body_buffer),         0, (uint64_t)1 << 30},
	{"temp-dir",         0,   GW_K_PATH,    GW_F(temp_dir),            0, 0},
	{"max-conns",        0,   GW_K_COUNT,   GW_F(max_conns),           1, 1000000},
	{"upstream-timeout", 0,   GW_K_MS,      GW_F(upstream_timeout_ms), 1, 86400000},
	{"connect-timeout",  0,   GW_K_MS,      GW_F(connect_timeout_ms),  1, 600000},
	{"access-log",       0,   GW_K_PATH,    GW_F(access_log),          0, 0},
	{"status-path",      0,   GW_K_URLPATH, GW_F(status_path),         0, 0},
	{"probe-interval",   0,   GW_K_MS,      GW_F(probe_interval_ms),   0, 3600000},
	{"probe-uri",        0,   GW_K_URLPATH, GW_F(probe_uri),           0, 0},
	{"sendfile-root",    0,   GW_K_PATH,    GW_F(sendfile_root),       0, 0},
	{"backend-conns",    0,   GW_K_COUNT,   GW_F(backend_conns),       1, 4096},
	{"queue",            0,   GW_K_COUNT,   GW_F(queue),               0, 100000},
	{"authorizer",       0,   GW_K_ADDR,    GW_F(authorizer),          0, 0},
	{"auth-prefix",      0,   GW_K_URLPATH, GW_F(auth_prefix),         0, 0},
	{"workers",          0,   GW_K_WORKERS, GW_F(workers),             1, GW_MAX_WORKERS},
};
/* clang-format on */

#define GW_NKEYS ((int)(sizeof gw_keys / sizeof *gw_keys))

/* "max_body" and "max-body" both name max-body; nothing else matches. */
static int gw_key_find(const char *name)
{
	for (int i = 0; i < GW_NKEYS; i++) {
		const char *a = gw_keys[i].name, *b = name;
		while (*a && (*a == *b || (*a == '-' && *b == '_')))
			a++, b++;
		if (!*a && !*b)
			return i;
	}
	return -1;
}

__attribute__((format(printf, 3, 4))) static int gw_why(char *why, size_t whylen, const char *fmt,
                                                         ...)
{
	if (why && whylen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -2;
}

const char *gw_balance_name(gw_balance b)
{
	switch (b) {
	case GW_BAL_RR: return "rr";
	case GW_BAL_LEAST: return "least";
	case GW_BAL_HASH_URI: return "hash:uri";
	case GW_BAL_HASH_CLIENT: return "hash:client";
	case GW_BAL_HASH_HEADER: return "hash:header";
	}
	return "?";
}

void gw_config_init(gw_config *c)
{
	memset(c, 0, sizeof *c);
	c->balance = GW_BAL_RR;
	c->max_body = (uint64_t)64 << 20;
	c->max_buffer = (uint64_t)32 << 20;
	c->response_buffer = (uint64_t)256 << 10;
	c->max_temp_file = (uint64_t)1 << 30;
	c->body_buffer = (uint64_t)64 << 10;
	c->max_conns = 1024;
	c->upstream_timeout_ms = 60000;
	c->connect_timeout_ms = 3000;
	c->queue = 256;
	c->workers = 0; /* auto: one per core, as nginx's worker_processes auto */
}

static void gw_backends_free(gw_config *c)
{
	for (size_t i = 0; i < c->nbackends; i++)
		free(c->backends[i].addr);
	free(c->backends);
	c->backends = NULL;
	c->nbackends = 0;
}

void gw_config_free(gw_config *c)
{
	for (int i = 0; i < GW_NKEYS; i++) {
		gw_ktype t = gw_keys[i].type;
		if (t == GW_K_ADDR || t == GW_K_STR || t == GW_K_PATH || t == GW_K_URLPATH) {
			char **f = (char **)((char *)c + gw_keys[i].off);
			free(*f);
		}
	}
	free(c->hash_header);
	free(c->file);
	gw_backends_free(c);
	gw_config_init(c);
}

/* ---------------------------------------------------------------- values */

/* clang-format off */
static const fk_unit gw_size_units[] = {
	{"", 1}, {"k", 1u << 10}, {"K", 1u << 10}, {"m", 1u << 20}, {"M", 1u << 20},
	{"g", 1u << 30}, {"G", 1u << 30}, {NULL, 0},
};
static const fk_unit gw_ms_units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {NULL, 0}};
static const fk_unit gw_plain[] = {{"", 1}, {NULL, 0}};
/* clang-format on */

/* Address syntax as fk_addr_parse reads it, without resolving anything: a Unix path, or
 * [tcp:]HOST:PORT with a port of 1..65535 (HOST may be empty: any address). */
static int gw_addr_ok(const char *s)
{
	if (!strncmp(s, "unix:", 5))
		return s[5] == '/' && s[6];
	if (s[0] == '/')
		return s[1] != 0;
	if (!strncmp(s, "tcp:", 4))
		s += 4;
	const char *colon = strrchr(s, ':');
	if (!colon)
		return 0;
	if (s[0] == '[' && (colon == s || colon[-1] != ']'))
		return 0;
	for (const char *p = s; p < colon; p++)
		if (*p == ' ' || *p == '\t' || *p == '/' || *p == ',')
			return 0;
	uint64_t port;
	return !fk_scan_scaled(colon + 1, gw_plain, &port) && port >= 1 && port <= 65535;
}

static int gw_set_backend(gw_config *c, const char *v, char *why, size_t whylen)
{
	/* ADDR, then optional parameters after ',' or blanks: weight=N. */
	size_t n = strcspn(v, ", \t");
	if (!n)
		return gw_why(why, whylen, "expected ADDR [weight=N]");
	char *addr = strndup(v, n);
	if (!addr)
		return gw_why(why, whylen, "out of memory");
	unsigned weight = 1;
	const char *p = v + n;
	int rc = 0;
	while (!rc && *p) {
		p += strspn(p, ", \t");
		if (!*p)
			break;
		size_t m = strcspn(p, ", \t");
		uint64_t w;
		char num[24];
		if (m > 7 && !strncmp(p, "weight=", 7) && m - 7 < sizeof num) {
			memcpy(num, p + 7, m - 7);
			num[m - 7] = 0;
			if (fk_scan_scaled(num, gw_plain, &w) || w < 1 || w > GW_WEIGHT_MAX)
				rc = gw_why(why, whylen, "weight %s: not a number in 1..%d", num,
				            GW_WEIGHT_MAX);
			else
				weight = (unsigned)w;
		} else {
			rc = gw_why(why, whylen, "unknown backend parameter '%.*s' (weight=N)",
			            m > 64 ? 64 : (int)m, p);
		}
		p += m;
	}
	if (!rc && !gw_addr_ok(addr))
		rc = gw_why(why, whylen, "%.200s: not an address (unix:/path, HOST:PORT)",
		            addr);
	for (size_t i = 0; !rc && i < c->nbackends; i++)
		if (!strcmp(c->backends[i].addr, addr))
			rc = gw_why(why, whylen, "duplicate backend %.200s", addr);
	if (!rc && c->nbackends >= GW_MAX_BACKENDS)
		rc = gw_why(why, whylen, "more than %d backends", GW_MAX_BACKENDS);
	if (!rc) {
		gw_backend_conf *nb = realloc(c->backends, (c->nbackends + 1) * sizeof *nb);
		if (!nb) {
			rc = gw_why(why, whylen, "out of memory");
		} else {
			c->backends = nb;
			nb[c->nbackends].addr = addr;
			nb[c->nbackends].weight = weight;
			c->nbackends++;
			return 0;
		}
	}
	free(addr);
	return rc;
}

static int gw_set_balance(gw_config *c, const char *v, char *why, size_t whylen)
{
	static const struct {
		const char *name;
		gw_balance b;
	} names[] = {{"rr", GW_BAL_RR},           {"wrr", GW_BAL_RR},
	             {"least", GW_BAL_LEAST},     {"hash:uri", GW_BAL_HASH_URI},
	             {"hash:client", GW_BAL_HASH_CLIENT}};
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (!strcmp(v, names[i].name)) {
			c->balance = names[i].b;
			free(c->hash_header);
			c->hash_header = NULL;
			return 0;
		}
	if (!strncmp(v, "hash:header:", 12)) {
		const char *h = v + 12;
		/* a field name is a token (RFC 9110 5.1) */
		size_t n = strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		                     "0123456789!#$%&'*+-.^_`|~");
		if (!n || h[n])
			return gw_why(why, whylen, "hash:header: needs a header name");
		char *d = strdup(h);
		if (!d)
			return gw_why(why, whylen, "out of memory");
		free(c->hash_header);
		c->hash_header = d;
		c->balance = GW_BAL_HASH_HEADER;
		return 0;
	}
	return gw_why(why, whylen,
	              "%.80s: expected rr, least, hash:uri, hash:client or "
	              "hash:header:NAME",
	              v);
}

static int gw_set_key(gw_config *c, const gw_key *k, const char *v, char *why, size_t whylen)
{
	void *f = (char *)c + k->off;
	uint64_t n = 0;
	int rc;
	switch (k->type) {
	case GW_K_BACKEND:
		return gw_set_backend(c, v, why, whylen);
	case GW_K_BALANCE:
		return gw_set_balance(c, v, why, whylen);
	case GW_K_ADDR:
		if (!gw_addr_ok(v))
			return gw_why(why, whylen, "%.200s: not an address (unix:/path, HOST:PORT)",
			              v);
		break;
	case GW_K_PATH:
		if (!*v)
			return gw_why(why, whylen, "empty path");
		break;
	case GW_K_URLPATH:
		if (v[0] != '/')
			return gw_why(why, whylen, "%.200s: must start with '/'", v);
		break;
	case GW_K_STR:
		break;
	case GW_K_WORKERS:
		if (!strcmp(v, "auto")) {
			*(unsigned *)f = 0;
			return 0;
		}
		/* fall through */
	case GW_K_SIZE:
	case GW_K_COUNT:
	case GW_K_MS:
		rc = fk_scan_scaled(v, k->type == GW_K_MS ? gw_ms_units : gw_size_units, &n);
		if (rc == -1)
			return gw_why(why, whylen, "%.80s: not a %s", v,
			              k->type == GW_K_SIZE ? "size (bytes, or with K, M, G)"
			              : k->type == GW_K_MS ? "duration (ms, or with s)"
			                                   : "number");
		if (rc == -2 || n < k->min || n > k->max)
			return gw_why(why, whylen, "%.80s: out of range %llu..%llu", v,
			              (unsigned long long)k->min, (unsigned long long)k->max);
		if (k->type == GW_K_SIZE)
			*(uint64_t *)f = n;
		else
			*(unsigned *)f = (unsigned)n;
		return 0;
	}
	char *d = strdup(v);
	if (!d)
		return gw_why(why, whylen, "out of memory");
	free(*(char **)f);
	*(char **)f = d;
	return 0;
}

int gw_config_set(gw_config *c, const char *key, const char *value, char *why, size_t whylen)
{
	int i = gw_key_find(key);
	if (i < 0)
		return -1;
	return gw_set_key(c, &gw_keys[i], value, why, whylen);
}

/* ---------------------------------------------------------------- the file */

typedef struct gw_parser {
	gw_config *c;
	const char *file;
	int line;
	int section; /* 0 before [gateway], 1 inside it */
	int seen[GW_NKEYS];
	char *err;
	size_t errlen;
} gw_parser;

__attribute__((format(printf, 2, 3))) static int gw_fail(gw_parser *p, const char *fmt, ...)
{
	if (!p->err || !p->errlen)
		return -1;
	int n = snprintf(p->err, p->errlen, "%s:%d: ", p->file, p->line);
	if (n >= 0 && (size_t)n < p->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int gw_blank(char ch) { return ch == ' ' || ch == '\t'; }

/* A value in double quotes keeps its spaces; \" and \\ inside. out holds strlen(v) + 1. */
static int gw_unquote(gw_parser *p, const char *v, char *out)
{
	if (v[0] != '"') {
		strcpy(out, v);
		return 0;
	}
	size_t o = 0;
	for (const char *s = v + 1;; s++) {
		if (!*s)
			return gw_fail(p, "unterminated quoted value");
		if (*s == '"') {
			if (s[1])
				return gw_fail(p, "text after the closing quote");
			break;
		}
		if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
			s++;
		out[o++] = *s;
	}
	out[o] = 0;
	return 0;
}

static int gw_line(gw_parser *p, char *s)
{
	while (gw_blank(*s))
		s++;
	size_t n = strlen(s);
	while (n && gw_blank(s[n - 1]))
		s[--n] = 0;
	if (!n || s[0] == ';' || s[0] == '#')
		return 0;
	if (s[0] == '[') {
		if (s[n - 1] != ']')
			return gw_fail(p, "section header '%.80s' lacks its closing ']'", s);
		if (strcmp(s, "[gateway]"))
			return gw_fail(p, "unknown section %.80s (the one section is [gateway])", s);
		if (p->section)
			return gw_fail(p, "duplicate section [gateway] (first on line %d)",
			               p->c->line);
		p->section = 1;
		p->c->line = p->line;
		return 0;
	}
	char *eq = strchr(s, '=');
	if (!eq)
		return gw_fail(p, "expected 'key = value', '[gateway]' or a comment, got '%.80s'",
		               s);
	char *kend = eq;
	while (kend > s && gw_blank(kend[-1]))
		kend--;
	*kend = 0;
	if (!*s)
		return gw_fail(p, "missing key before '='");
	if (!p->section)
		return gw_fail(p, "key '%.80s' before the [gateway] section", s);
	int k = gw_key_find(s);
	if (k < 0 || strchr(s, '-'))
		return gw_fail(p, "unknown key '%.80s'", s);
	if (gw_keys[k].type != GW_K_BACKEND && p->seen[k])
		return gw_fail(p, "duplicate key '%s' (first on line %d)", s, p->seen[k]);
	p->seen[k] = p->line;
	char *raw = eq + 1;
	while (gw_blank(*raw))
		raw++;
	char value[GW_LINE_MAX + 1];
	if (gw_unquote(p, raw, value))
		return -1;
	char why[512];
	if (gw_set_key(p->c, &gw_keys[k], value, why, sizeof why))
		return gw_fail(p, "%s: %s", s, why);
	return 0;
}

int gw_config_parse(gw_config *c, const char *name, const char *text, size_t len, char *err,
                    size_t errlen)
{
	gw_config_init(c);
	if (err && errlen)
		err[0] = 0;
	gw_parser p = {.c = c, .file = name, .err = err, .errlen = errlen};
	size_t pos = 0;
	int rc = 0;
	c->file = strdup(name);
	if (!c->file) {
		p.line = 1;
		rc = gw_fail(&p, "out of memory");
	}
	while (!rc && pos < len) {
		p.line++;
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		size_t n = end - pos;
		if (n && text[end - 1] == '\r')
			n--; /* CRLF files */
		if (n > GW_LINE_MAX) {
			rc = gw_fail(&p, "line longer than %d bytes", GW_LINE_MAX);
			break;
		}
		char buf[GW_LINE_MAX + 1];
		for (size_t i = 0; i < n && !rc; i++) {
			unsigned char ch = (unsigned char)text[pos + i];
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				rc = gw_fail(&p, "invalid control character 0x%02x", ch);
			buf[i] = (char)ch;
		}
		if (rc)
			break;
		buf[n] = 0;
		pos = nl ? end + 1 : len;
		rc = gw_line(&p, buf);
	}
	if (!rc && !p.section) {
		p.line = p.line ? p.line : 1;
		rc = gw_fail(&p, "no [gateway] section");
	}
	if (rc) {
		gw_config_free(c);
		return -1;
	}
	return 0;
}

int gw_config_load(gw_config *c, const char *file, char *err, size_t errlen)
{
	gw_config_init(c);
	FILE *f = fopen(file, "re");
	if (!f) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return -1;
	}
	/* A config is small: 1 MiB is far more than any real one. */
	enum { MAX = 1 << 20 };
	char *text = malloc(MAX + 1);
	size_t n = text ? fread(text, 1, MAX + 1, f) : 0;
	int bad = !text || ferror(f);
	int e = errno;
	fclose(f);
	if (bad || n > MAX) {
		snprintf(err, errlen, "%s: %s", file,
		         !text ? "out of memory" : n > MAX ? "larger than 1 MiB" : strerror(e));
		free(text);
		return -1;
	}
	int rc = gw_config_parse(c, file, text, n, err, errlen);
	free(text);
	return rc;
}

int gw_config_validate(const gw_config *c, char *err, size_t errlen)
{
	const char *what = !c->listen ? "no listen address (listen = ADDR)"
	                   : !c->nbackends ? "no backend (backend = ADDR [weight=N])"
	                                   : NULL;
	if (!what)
		return 0;
	if (c->file)
		snprintf(err, errlen, "%s:%d: %s", c->file, c->line ? c->line : 1, what);
	else
		snprintf(err, errlen, "usage: --listen and at least one --backend are required");
	return -1;
}

/* ---------------------------------------------------------------- the command line */

int gw_config_from_args(gw_config *c, int argc, char **argv, gw_cmdline *cl, char *err,
                        size_t errlen)
{
	gw_config_init(c);
	memset(cl, 0, sizeof *cl);
	if (err && errlen)
		err[0] = 0;
	/* First pass: find --config and check the syntax; the file is read before the
	 * options are applied, so that they override it wherever they stand. */
	int *key = calloc((size_t)(argc > 0 ? argc : 1), sizeof *key);
	const char **val = calloc((size_t)(argc > 0 ? argc : 1), sizeof *val);
	int nopt = 0, rc = 0;
	if (!key || !val) {
		snprintf(err, errlen, "usage: out of memory");
		rc = -1;
	}
	for (int i = 1; !rc && i < argc; i++) {
		const char *a = argv[i], *v = NULL;
		int k = -1, is_config = 0;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			cl->help = 1;
			continue;
		}
		if (!strcmp(a, "--test") || !strcmp(a, "-t")) {
			cl->test = 1;
			continue;
		}
		if (a[0] == '-' && a[1] == '-' && a[2]) {
			const char *name = a + 2;
			const char *eq = strchr(name, '=');
			char buf[64];
			size_t n = eq ? (size_t)(eq - name) : strlen(name);
			if (n < sizeof buf) {
				memcpy(buf, name, n);
				buf[n] = 0;
				is_config = !strcmp(buf, "config");
				if (!is_config && !strchr(buf, '_'))
					k = gw_key_find(buf);
			}
			if (eq)
				v = eq + 1;
		} else if (a[0] == '-' && a[1] && !a[2]) {
			is_config = a[1] == 'c';
			for (int j = 0; j < GW_NKEYS && !is_config; j++)
				if (gw_keys[j].short_opt == a[1])
					k = j;
		}
		if (k < 0 && !is_config) {
			snprintf(err, errlen, "usage: unknown option '%.80s'", a);
			rc = -1;
			break;
		}
		if (!v) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "usage: %.80s needs a value", a);
				rc = -1;
				break;
			}
			v = argv[++i];
		}
		if (is_config) {
			cl->config = v;
		} else {
			key[nopt] = k;
			val[nopt++] = v;
		}
	}
	if (!rc && cl->help)
		goto done;
	if (!rc && cl->config && gw_config_load(c, cl->config, err, errlen))
		rc = -1;
	int cli_backends = 0;
	for (int i = 0; !rc && i < nopt; i++) {
		const gw_key *k = &gw_keys[key[i]];
		if (k->type == GW_K_BACKEND && !cli_backends++)
			gw_backends_free(c); /* the command line's list replaces the file's */
		char why[512];
		if (gw_set_key(c, k, val[i], why, sizeof why)) {
			snprintf(err, errlen, "usage: --%s %.200s: %s", k->name, val[i], why);
			rc = -1;
		}
	}
	if (!rc)
		rc = gw_config_validate(c, err, errlen);
done:
	free(key);
	free(val);
	if (rc)
		gw_config_free(c);
	return rc;
}
