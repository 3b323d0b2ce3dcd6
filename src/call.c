/* call.c — `fcgikit call`: one request to a FastCGI application, the response on stdout.
 * Also `cgi-fcgi -bind -connect ADDRESS`, for scripts written for libfcgi's tool.
 * The options and exit statuses are documented in doc/fcgikit-call.1. */
#include <errno.h>
#include <fcgikit.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgi.h"
#include "tool.h"

extern char **environ;

/* Exit statuses (fcgikit-call(1), EXIT STATUS). */
enum {
	XS_OK = 0,
	XS_FAIL = 1,       /* --ping failed; a local error (reading the body, writing stdout) */
	XS_USAGE = 2,
	XS_CONNECT = 3,    /* could not connect: refused, no such socket, permission, address */
	XS_HTTP4 = 4,      /* the response status is 4xx */
	XS_HTTP5 = 5,      /* the response status is 5xx (or 600 and up) */
	XS_TIMEOUT = 6,    /* connect, read or --timeout */
	XS_PROTO = 7,      /* the peer broke the protocol, does not speak FastCGI, closed early,
	                     or sent no valid CGI head */
	XS_OVERLOADED = 8, /* END_REQUEST: OVERLOADED */
	XS_CANTMPX = 9,    /* END_REQUEST: CANT_MPX_CONN */
	XS_UNKNOWNROLE = 10, /* END_REQUEST: UNKNOWN_ROLE */
};

static int exit_for(int err)
{
	switch (err) {
	case FCGI_OK: return XS_OK;
	case FCGI_ESYS:
	case FCGI_EADDR: return XS_CONNECT;
	case FCGI_ETIMEDOUT: return XS_TIMEOUT;
	case FCGI_EPROTO:
	case FCGI_ECLOSED: return XS_PROTO;
	case FCGI_EOVERLOADED: return XS_OVERLOADED;
	case FCGI_ECANTMPX: return XS_CANTMPX;
	case FCGI_EUNKNOWNROLE: return XS_UNKNOWNROLE;
	default: return XS_FAIL;
	}
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads all of fd into a malloc'd buffer. */
static int read_all(int fd, char **out, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *b = malloc(cap);
	if (!b)
		return -1;
	for (;;) {
		if (n == cap) {
			char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(b, cap * 2);
			if (!nb) {
				free(b);
				return -1;
			}
			b = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(b);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*out = b;
	*len = n;
	return 0;
}

/* ---------------------------------------------------------------- the call */

typedef struct call {
	const char *address, *uri, *method, *root, *data_file;
	const char *body_arg;
	char **headers, **user_params;
	size_t nheaders, nuser_params;
	unsigned role;
	int include, verbose, get_values, ping;
	long timeout_ms, connect_timeout_ms;
	/* body */
	char *body;
	size_t body_len;
	int body_fd, data_fd;
	long long data_len, data_mtime;
	/* response */
	char *head;
	size_t head_len, head_cap;
	int head_done, head_bad, status, write_failed, raw;
	fcgi_client_req *req;
} call;

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: fcgikit call [OPTIONS] ADDRESS [URI]\n"
	        "       fcgikit call -bind -connect ADDRESS      (cgi-fcgi compatibility)\n"
	        "\n"
	        "Sends one request to the FastCGI application at ADDRESS (unix:/path, /path,\n"
	        "HOST:PORT, [v6]:PORT) and prints the response body on stdout.\n"
	        "\n"
	        "  -X, --request METHOD    request method (default GET, POST with -d)\n"
	        "  -H, --header 'N: v'     a request header, sent as HTTP_N (Content-Type and\n"
	        "                          Content-Length as CONTENT_TYPE, CONTENT_LENGTH)\n"
	        "  -p, --param NAME=VALUE  a parameter, replacing the default of that name;\n"
	        "                          -p NAME alone removes it\n"
	        "  -d, --data DATA         the body: a string, @FILE, or - for stdin\n"
	        "      --role ROLE         responder (default), authorizer, filter, or a number\n"
	        "      --data-file FILE    the Filter role's DATA stream (implies --role filter)\n"
	        "      --root DIR          DOCUMENT_ROOT; SCRIPT_FILENAME is DIR + the script path\n"
	        "                          (default: the current directory)\n"
	        "  -i, --include           print the response head too\n"
	        "  -v, --verbose           print the parameters and the END_REQUEST on stderr\n"
	        "      --timeout SECONDS   give up after this long (connect + answer)\n"
	        "      --connect-timeout SECONDS  (default 10)\n"
	        "      --get-values        ask FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS\n"
	        "      --ping              health check: exit 0 if the application answers (a\n"
	        "                          GET_VALUES, or the URI when one is given), else 1\n"
	        "  -h, --help\n"
	        "\n"
	        "Exit status: 0 ok (status < 400), 1 ping failed or local error, 2 usage,\n"
	        "3 cannot connect, 4 status 4xx, 5 status 5xx, 6 timeout, 7 protocol error or\n"
	        "not FastCGI, 8 OVERLOADED, 9 CANT_MPX_CONN, 10 UNKNOWN_ROLE.\n");
}

static long parse_seconds(const char *s, const char *opt)
{
	char *end;
	double v = strtod(s, &end);
	if (*end || v <= 0 || v > 86400 * 365) {
		fprintf(stderr, "fcgikit call: %s wants seconds > 0, not '%s'\n", opt, s);
		exit(XS_USAGE);
	}
	long ms = (long)(v * 1000 + 0.5);
	return ms ? ms : 1;
}

static unsigned parse_role(const char *s)
{
	if (!strcmp(s, "responder"))
		return FCGI_ROLE_RESPONDER;
	if (!strcmp(s, "authorizer"))
		return FCGI_ROLE_AUTHORIZER;
	if (!strcmp(s, "filter"))
		return FCGI_ROLE_FILTER;
	char *end;
	long v = strtol(s, &end, 10);
	if (*s && !*end && v >= 0 && v <= 65535)
		return (unsigned)v;
	fprintf(stderr, "fcgikit call: unknown role '%s' (responder, authorizer, filter, or a "
	                "number 0-65535)\n", s);
	exit(XS_USAGE);
}

/* ---------------------------------------------------------------- output */

static void emit(call *k, const void *p, size_t n)
{
	if (k->write_failed || !n)
		return;
	if (write_all(1, p, n) < 0) {
		k->write_failed = errno ? errno : EIO;
		fcgi_client_req_abort(k->req);
	}
}

/* The CGI head is parsed and kept back (printed with -i); the body streams through. */
static void take_head(call *k, int at_end)
{
	fcgi_header hs[256];
	fcgi_cgi_head h;
	ssize_t rc = fcgi_cgi_head_parse(k->head, k->head_len, &h, hs, 256, 0);
	if (rc == 0 && at_end && k->head_len) {
		/* Output that ends without the empty line: read it as a head without a body. */
		char *t = realloc(k->head, k->head_len + 1);
		if (t) {
			k->head = t;
			k->head[k->head_len] = '\n';
			rc = fcgi_cgi_head_parse(k->head, k->head_len + 1, &h, hs, 256, 0);
			if (rc > 0)
				k->head_len++;
		}
	}
	if (rc == 0 && !at_end)
		return;
	k->head_done = 1;
	if (rc > 0) {
		k->status = h.status;
		if (k->include)
			emit(k, k->head, (size_t)rc);
		emit(k, k->head + rc, k->head_len - (size_t)rc);
	} else {
		k->head_bad = k->head_len ? (rc ? (int)rc : FCGI_EPROTO) : 0;
		emit(k, k->head, k->head_len);
	}
	free(k->head);
	k->head = NULL;
	k->head_len = k->head_cap = 0;
}

static void on_output(fcgi_client_req *req, int stream, const void *data, size_t len, void *ud)
{
	(void)req;
	call *k = ud;
	if (stream == FCGI_CLIENT_STDERR) {
		if (len)
			write_all(2, data, len);
		return;
	}
	if (k->raw || k->head_done) {
		emit(k, data, len);
		return;
	}
	if (!len) {
		take_head(k, 1);
		return;
	}
	if (k->head_len + len > k->head_cap) {
		size_t cap = k->head_cap ? k->head_cap : 4096;
		while (cap < k->head_len + len)
			cap *= 2;
		char *t = realloc(k->head, cap);
		if (!t) {
			k->head_done = 1;
			k->head_bad = FCGI_ENOMEM;
			emit(k, data, len);
			return;
		}
		k->head = t;
		k->head_cap = cap;
	}
	memcpy(k->head + k->head_len, data, len);
	k->head_len += len;
	take_head(k, 0);
}

/* ---------------------------------------------------------------- GET_VALUES and ping */

typedef struct values_result {
	int done, err;
	char line[512];
	size_t n;
} values_result;

static void on_values(fcgi_client *c, int err, const fcgi_client_param *v, size_t n, void *ud)
{
	(void)c;
	values_result *res = ud;
	res->done = 1;
	res->err = err;
	res->n = n;
	size_t o = 0;
	for (size_t i = 0; i < n && o < sizeof res->line; i++) {
		int w = snprintf(res->line + o, sizeof res->line - o, "%s%s=%s", i ? "\n" : "",
		                 v[i].name, v[i].value);
		if (w < 0)
			break;
		o += (size_t)w;
	}
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

static int run_get_values(call *k, fcgi_client *c, char *why, size_t why_size, double *ms)
{
	values_result res = {0};
	double t0 = now_ms();
	int rc = fcgi_client_get_values(c, NULL, 0, on_values, &res);
	long limit = k->timeout_ms ? k->timeout_ms : 10000;
	while (!rc && !res.done) {
		double left = limit - (now_ms() - t0);
		if (left <= 0) {
			rc = FCGI_ETIMEDOUT;
			snprintf(why, why_size, "no answer to GET_VALUES from %s within %ld ms",
			         k->address, limit);
			break;
		}
		rc = fcgi_client_process(c, (int)left + 1);
	}
	*ms = now_ms() - t0;
	if (!rc && res.err) {
		rc = res.err;
		snprintf(why, why_size, "%s", fcgi_client_last_error(c));
	}
	if (rc)
		return rc;
	snprintf(why, why_size, "%s", res.line);
	return res.n ? FCGI_OK : FCGI_EAGAIN; /* EAGAIN: answered, but with nothing */
}

/* ---------------------------------------------------------------- main */

static int prepare_body(call *k)
{
	k->body_fd = -1;
	k->data_fd = -1;
	if (k->body_arg) {
		const char *a = k->body_arg;
		if (!strcmp(a, "-") || a[0] == '@') {
			const char *file = a[0] == '@' ? a + 1 : NULL;
			int fd = file ? open(file, O_RDONLY | O_CLOEXEC) : 0;
			if (fd < 0) {
				fprintf(stderr, "fcgikit call: %s: %s\n", file, strerror(errno));
				return XS_FAIL;
			}
			struct stat st;
			if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
				off_t pos = lseek(fd, 0, SEEK_CUR);
				k->body_fd = fd;
				k->body_len = (size_t)(st.st_size - (pos > 0 ? pos : 0));
			} else if (read_all(fd, &k->body, &k->body_len) < 0) {
				fprintf(stderr, "fcgikit call: reading %s: %s\n", file ? file : "stdin",
				        strerror(errno));
				return XS_FAIL;
			}
		} else {
			k->body = strdup(a);
			k->body_len = strlen(a);
		}
	}
	if (k->data_file) {
		int fd = open(k->data_file, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			fprintf(stderr, "fcgikit call: %s: %s\n", k->data_file, strerror(errno));
			return XS_FAIL;
		}
		k->data_fd = fd;
		k->data_len = (long long)st.st_size;
		k->data_mtime = (long long)st.st_mtime;
	}
	return XS_OK;
}

static int status_exit(int status)
{
	if (status >= 500)
		return XS_HTTP5;
	if (status >= 400)
		return XS_HTTP4;
	return XS_OK;
}

static int do_call(call *k)
{
	fcgi_client *c;
	int rc = fcgi_client_new(&c, k->address);
	if (rc) {
		fprintf(stderr, "fcgikit call: bad address '%s' (unix:/path, /path, HOST:PORT, "
		                "[v6]:PORT)\n", k->address);
		return XS_USAGE;
	}
	long ct = k->connect_timeout_ms ? k->connect_timeout_ms : 10000;
	if (k->timeout_ms && k->timeout_ms < ct)
		ct = k->timeout_ms;
	fcgi_client_set_opt(c, FCGI_CLIENT_CONNECT_TIMEOUT_MS, ct);
	fcgi_client_set_opt(c, FCGI_CLIENT_MPX, 0);
	fcgi_client_set_opt(c, FCGI_CLIENT_KEEP_CONN, 0);
	fcgi_client_set_opt(c, FCGI_CLIENT_MAX_CONNS, 1);
	if (k->timeout_ms)
		fcgi_client_set_opt(c, FCGI_CLIENT_READ_TIMEOUT_MS, k->timeout_ms);

	if (k->get_values || (k->ping && !k->uri)) {
		char why[512];
		double ms;
		if (!k->timeout_ms && k->ping)
			k->timeout_ms = 5000;
		rc = run_get_values(k, c, why, sizeof why, &ms);
		fcgi_client_free(c);
		if (rc && rc != FCGI_EAGAIN) {
			fprintf(stderr, "%s%s\n", k->ping ? "fail: " : "fcgikit call: ", why);
			return k->ping ? XS_FAIL : exit_for(rc);
		}
		if (k->ping) {
			printf("ok: %s answered GET_VALUES in %.1f ms", k->address, ms);
			if (rc == FCGI_OK) {
				for (char *p = why; *p; p++)
					if (*p == '\n')
						*p = ' ';
				printf(" (%s)", why);
			} else {
				printf(" (no values)");
			}
			printf("\n");
			return XS_OK;
		}
		if (rc == FCGI_OK)
			printf("%s\n", why);
		else
			fprintf(stderr, "fcgikit call: %s answered GET_VALUES with no values (or "
			                "UNKNOWN_TYPE)\n", k->address);
		return XS_OK;
	}

	fk_plist ps = {0};
	fk_cgi_spec spec = {
	    .uri = k->uri,
	    .method = k->method,
	    .root = k->root,
	    .has_body = k->body_arg != NULL,
	    .body_len = k->body_len,
	    .content_type = k->body_arg && k->body_arg[0] != '@' && strcmp(k->body_arg, "-")
	                        ? "application/x-www-form-urlencoded"
	                        : NULL,
	    .data_file = k->data_file,
	    .data_len = k->data_len,
	    .data_mtime = k->data_mtime,
	    .headers = k->headers,
	    .nheaders = k->nheaders,
	    .params = k->user_params,
	    .nparams = k->nuser_params,
	};
	char perr[256];
	if (fk_cgi_params(&spec, &ps, perr, sizeof perr) < 0) {
		fprintf(stderr, "fcgikit call: %s\n", perr);
		fk_plist_free(&ps);
		fcgi_client_free(c);
		return strcmp(perr, "out of memory") ? XS_USAGE : XS_FAIL;
	}
	fcgi_client_req *r;
	rc = fcgi_client_req_new(c, &r);
	for (size_t i = 0; !rc && i < ps.n; i++) {
		if (!ps.v[i].value)
			continue;
		if (k->verbose)
			fprintf(stderr, "> %s=%s\n", ps.v[i].name, ps.v[i].value);
		rc = fcgi_client_req_add_param(r, ps.v[i].name, ps.v[i].value);
	}
	fk_plist_free(&ps);
	if (!rc)
		rc = fcgi_client_req_set_role(r, k->role);
	if (!rc && k->body_fd >= 0)
		rc = fcgi_client_req_body_fd(r, k->body_fd);
	else if (!rc && k->body)
		rc = fcgi_client_req_body(r, k->body, k->body_len);
	if (!rc && k->data_fd >= 0)
		rc = fcgi_client_req_filter_data_fd(r, k->data_fd);
	if (!rc && k->timeout_ms)
		rc = fcgi_client_req_set_timeout(r, (unsigned)k->timeout_ms);
	if (!rc && !k->ping)
		rc = fcgi_client_req_on_output(r, on_output, k);
	k->req = r;
	double t0 = now_ms();
	if (!rc)
		rc = fcgi_client_req_send(r);
	if (!rc)
		rc = fcgi_client_wait(c, r, -1);
	if (rc) {
		fprintf(stderr, "fcgikit call: %s\n", fcgi_strerror(rc));
		fcgi_client_free(c);
		return XS_FAIL;
	}
	double ms = now_ms() - t0;
	int err = fcgi_client_req_error(r);
	if (k->ping) {
		size_t n;
		const char *out = fcgi_client_req_stdout(r, &n);
		k->head = (char *)out;
		fcgi_header hs[64];
		fcgi_cgi_head h;
		ssize_t hl = fcgi_cgi_head_parse(out, n, &h, hs, 64, 0);
		int x = XS_OK;
		if (err) {
			fprintf(stderr, "fail: %s\n", fcgi_client_req_strerror(r));
			x = XS_FAIL;
		} else if (hl <= 0) {
			fprintf(stderr, "fail: %s answered %s without a valid CGI head\n", k->address,
			        k->uri);
			x = XS_FAIL;
		} else if (h.status >= 400) {
			fprintf(stderr, "fail: %s answered %s with status %d\n", k->address, k->uri,
			        h.status);
			x = XS_FAIL;
		} else {
			printf("ok: %s answered %s with status %d in %.1f ms\n", k->address, k->uri,
			       h.status, ms);
		}
		k->head = NULL;
		fcgi_client_free(c);
		return x;
	}
	if (!err && !k->head_done)
		take_head(k, 1);
	if (k->verbose) {
		static const char *const ps_names[] = {"REQUEST_COMPLETE", "CANT_MPX_CONN",
		                                       "OVERLOADED", "UNKNOWN_ROLE"};
		int p = fcgi_client_req_protocol_status(r);
		if (p >= 0)
			fprintf(stderr, "< END_REQUEST appStatus=%u protocolStatus=%s (%.1f ms)\n",
			        fcgi_client_req_app_status(r), p < 4 ? ps_names[p] : "?", ms);
	}
	int x;
	if (k->write_failed) {
		if (k->write_failed != EPIPE)
			fprintf(stderr, "fcgikit call: writing the response: %s\n",
			        strerror(k->write_failed));
		x = XS_FAIL;
	} else if (err) {
		fprintf(stderr, "fcgikit call: %s\n", fcgi_client_req_strerror(r));
		x = exit_for(err);
	} else if (k->head_bad) {
		fprintf(stderr, "fcgikit call: the response does not start with a valid CGI head "
		                "(%s); printed as received\n",
		        k->head_bad == FCGI_ELIMIT ? "too large" : "malformed");
		x = XS_PROTO;
	} else {
		x = status_exit(k->status);
	}
	fcgi_client_free(c);
	return x;
}

int fk_tool_call(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-bind") || !strcmp(argv[i], "-connect"))
			return fk_tool_cgi_fcgi(argc, argv);
	call k = {.role = FCGI_ROLE_RESPONDER};
	int role_set = 0;
	enum { O_ROLE = 256, O_DATA_FILE, O_ROOT, O_TIMEOUT, O_CTIMEOUT, O_GET_VALUES, O_PING };
	static const struct option opts[] = {
	    {"request", required_argument, NULL, 'X'},
	    {"header", required_argument, NULL, 'H'},
	    {"param", required_argument, NULL, 'p'},
	    {"data", required_argument, NULL, 'd'},
	    {"data-binary", required_argument, NULL, 'd'},
	    {"role", required_argument, NULL, O_ROLE},
	    {"data-file", required_argument, NULL, O_DATA_FILE},
	    {"root", required_argument, NULL, O_ROOT},
	    {"include", no_argument, NULL, 'i'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"timeout", required_argument, NULL, O_TIMEOUT},
	    {"connect-timeout", required_argument, NULL, O_CTIMEOUT},
	    {"get-values", no_argument, NULL, O_GET_VALUES},
	    {"ping", no_argument, NULL, O_PING},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	k.headers = calloc((size_t)argc, sizeof *k.headers);
	k.user_params = calloc((size_t)argc, sizeof *k.user_params);
	if (!k.headers || !k.user_params)
		return XS_FAIL;
	optind = 1;
	int ch;
	while ((ch = getopt_long(argc, argv, "X:H:p:d:ivh", opts, NULL)) != -1) {
		switch (ch) {
		case 'X': k.method = optarg; break;
		case 'H': k.headers[k.nheaders++] = optarg; break;
		case 'p': k.user_params[k.nuser_params++] = optarg; break;
		case 'd':
			if (k.body_arg) {
				fprintf(stderr, "fcgikit call: one -d only\n");
				return XS_USAGE;
			}
			k.body_arg = optarg;
			break;
		case O_ROLE:
			k.role = parse_role(optarg);
			role_set = 1;
			break;
		case O_DATA_FILE: k.data_file = optarg; break;
		case O_ROOT: k.root = optarg; break;
		case 'i': k.include = 1; break;
		case 'v': k.verbose = 1; break;
		case O_TIMEOUT: k.timeout_ms = parse_seconds(optarg, "--timeout"); break;
		case O_CTIMEOUT: k.connect_timeout_ms = parse_seconds(optarg, "--connect-timeout"); break;
		case O_GET_VALUES: k.get_values = 1; break;
		case O_PING: k.ping = 1; break;
		case 'h': usage(stdout); return XS_OK;
		default: usage(stderr); return XS_USAGE;
		}
	}
	if (optind >= argc || argc - optind > 2) {
		usage(stderr);
		return XS_USAGE;
	}
	k.address = argv[optind];
	k.uri = optind + 1 < argc ? argv[optind + 1] : NULL;
	if (k.data_file && !role_set)
		k.role = FCGI_ROLE_FILTER;
	signal(SIGPIPE, SIG_IGN);
	int x = prepare_body(&k);
	if (x == XS_OK)
		x = do_call(&k);
	free(k.body);
	free(k.head);
	free(k.headers);
	free(k.user_params);
	if (k.body_fd > 0)
		close(k.body_fd);
	if (k.data_fd >= 0)
		close(k.data_fd);
	return x;
}

/* ---------------------------------------------------------------- cgi-fcgi -bind -connect */

typedef struct limited {
	int fd;
	unsigned long long left;
} limited;

/* STDIN for the application: exactly CONTENT_LENGTH bytes of our stdin, as CGI says. */
static ssize_t read_limited(fcgi_client_req *req, void *buf, size_t size, void *ud)
{
	(void)req;
	limited *l = ud;
	if (!l->left)
		return 0;
	if (size > l->left)
		size = (size_t)l->left;
	ssize_t n;
	do
		n = read(l->fd, buf, size);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return FCGI_ESYS;
	l->left = n ? l->left - (unsigned long long)n : 0;
	return n;
}

static void raw_output(fcgi_client_req *req, int stream, const void *data, size_t len, void *ud)
{
	(void)req;
	(void)ud;
	if (len)
		write_all(stream == FCGI_CLIENT_STDERR ? 2 : 1, data, len);
}

int fk_tool_cgi_fcgi(int argc, char **argv)
{
	const char *address = NULL;
	int bind = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-bind"))
			bind = 1;
		else if (!strcmp(argv[i], "-connect") && i + 1 < argc)
			address = argv[++i];
		else {
			fprintf(stderr, "cgi-fcgi: unsupported argument '%s' (only -bind -connect "
			                "ADDRESS is supported)\n", argv[i]);
			return XS_USAGE;
		}
	}
	if (!bind || !address) {
		fprintf(stderr, "usage: cgi-fcgi -bind -connect ADDRESS   (run as a CGI program: the "
		                "environment becomes the parameters, stdin the body)\n");
		return XS_USAGE;
	}
	/* cgi-fcgi takes "HOST:PORT" or a path, relative paths included. */
	char addr[PATH_MAX + 8];
	if (!strchr(address, ':') && address[0] != '/')
		snprintf(addr, sizeof addr, "unix:%s", address);
	else
		snprintf(addr, sizeof addr, "%s", address);
	signal(SIGPIPE, SIG_IGN);
	fcgi_client *c;
	if (fcgi_client_new(&c, addr)) {
		fprintf(stderr, "cgi-fcgi: bad address '%s'\n", address);
		return XS_USAGE;
	}
	fcgi_client_set_opt(c, FCGI_CLIENT_MPX, 0);
	fcgi_client_set_opt(c, FCGI_CLIENT_KEEP_CONN, 0);
	fcgi_client_req *r;
	int rc = fcgi_client_req_new(c, &r);
	if (!rc)
		rc = fcgi_client_req_add_env(r, (const char *const *)environ);
	const char *cl = getenv("CONTENT_LENGTH");
	limited lim = {0, cl ? strtoull(cl, NULL, 10) : 0};
	if (!rc && lim.left)
		rc = fcgi_client_req_body_cb(r, read_limited, &lim);
	if (!rc)
		rc = fcgi_client_req_on_output(r, raw_output, NULL);
	if (!rc)
		rc = fcgi_client_req_send(r);
	if (!rc)
		rc = fcgi_client_wait(c, r, -1);
	if (rc) {
		fprintf(stderr, "cgi-fcgi: %s\n", fcgi_strerror(rc));
		fcgi_client_free(c);
		return XS_FAIL;
	}
	int err = fcgi_client_req_error(r), x;
	if (err) {
		fprintf(stderr, "cgi-fcgi: %s\n", fcgi_client_req_strerror(r));
		x = exit_for(err);
	} else {
		x = (int)(fcgi_client_req_app_status(r) & 0xff);
	}
	fcgi_client_free(c);
	return x;
}
