/* echo — the test contract used across fcgikit.
 *
 *   echo [ADDRESS] [--threads N]
 *
 * Answers 200 with Content-Type application/octet-stream, the request body as the response
 * body, and headers X-Request-Method (REQUEST_METHOD) and X-Query (QUERY_STRING). With the
 * param ECHO_DELAY_MS it answers after that many milliseconds without holding a thread: the
 * body is read, then the answer is sent from a library timer on the loop (completing a
 * request later, from another thread than the one that accepted it). An ABORT_REQUEST ends
 * a delayed request at once. */
#include <fcgikit.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CHUNK = 65536, MAX_BODY = 64 << 20 };

struct delayed {
	fcgi_req *req;
	char *head;
	size_t head_len, head_off;
	char *body;
	size_t len, off;
	int finished;    /* the request was finished (answered or aborted) */
	int timer_fired; /* the timer owns the struct until it fires */
	struct delayed *prev, *next;
};

/* Delayed answers not yet sent: the library drops timers that have not fired when the app
 * is freed, so whatever is left here at exit is freed by main. */
static pthread_mutex_t g_pending_mu = PTHREAD_MUTEX_INITIALIZER;
static struct delayed *g_pending;

static void pending_add(struct delayed *d)
{
	pthread_mutex_lock(&g_pending_mu);
	d->next = g_pending;
	if (g_pending)
		g_pending->prev = d;
	g_pending = d;
	pthread_mutex_unlock(&g_pending_mu);
}

static int write_head(fcgi_req *req, char *buf, size_t size)
{
	const char *m = fcgi_param(req, "REQUEST_METHOD"), *q = fcgi_param(req, "QUERY_STRING");
	return snprintf(buf, size,
	                "Status: 200 OK\r\nContent-Type: application/octet-stream\r\n"
	                "X-Request-Method: %s\r\nX-Query: %s\r\n\r\n",
	                m ? m : "", q ? q : "");
}

static void delayed_free(struct delayed *d)
{
	pthread_mutex_lock(&g_pending_mu);
	if (d->prev)
		d->prev->next = d->next;
	else if (g_pending == d)
		g_pending = d->next;
	if (d->next)
		d->next->prev = d->prev;
	pthread_mutex_unlock(&g_pending_mu);
	free(d->head);
	free(d->body);
	free(d);
}

/* Loop thread: send what fits; wait for room when the connection's buffer is full. */
static void delayed_send(fcgi_req *req, void *ud)
{
	struct delayed *d = ud;
	int rc = FCGI_OK;
	while (d->head_off < d->head_len && rc == FCGI_OK) {
		rc = fcgi_write(req, d->head, d->head_len);
		if (rc == FCGI_OK)
			d->head_off = d->head_len;
	}
	while (d->off < d->len && rc == FCGI_OK) {
		size_t n = d->len - d->off < CHUNK ? d->len - d->off : CHUNK;
		rc = fcgi_write(req, d->body + d->off, n);
		if (rc == FCGI_OK)
			d->off += n;
	}
	if (rc == FCGI_EAGAIN) {
		fcgi_req_on_writable(req, delayed_send, d);
		return;
	}
	d->finished = 1;
	fcgi_finish(req, 0);
	delayed_free(d);
}

static void delayed_timer(void *ud)
{
	struct delayed *d = ud;
	d->timer_fired = 1;
	if (d->finished) {
		delayed_free(d);
		return;
	}
	delayed_send(d->req, d);
}

static void delayed_abort(fcgi_req *req, void *ud)
{
	struct delayed *d = ud;
	if (d->finished)
		return;
	d->finished = 1;
	fcgi_finish(req, 0);
	if (d->timer_fired)
		delayed_free(d); /* it was waiting for room: nobody else will free it */
}

/* Reads the whole body before answering. Answering while the body still arrives is legal
 * FastCGI, but nginx and Caddy stop sending the request body once the response has begun,
 * so a streaming echo deadlocks behind them as soon as the body outgrows the socket buffers
 * (seen with 1 MiB over a Unix socket). */
static int read_body(fcgi_req *req, char *buf, char **out, size_t *len)
{
	ssize_t n;
	*out = NULL;
	*len = 0;
	while ((n = fcgi_read(req, buf, CHUNK)) > 0) {
		if (*len + (size_t)n > MAX_BODY)
			return -1;
		char *b = realloc(*out, *len + (size_t)n);
		if (!b)
			return -1;
		memcpy(b + *len, buf, (size_t)n);
		*out = b;
		*len += (size_t)n;
	}
	return n < 0 ? -1 : 0;
}

static void serve_one(fcgi_app *app, fcgi_req *req, char *buf)
{
	const char *delay = fcgi_param(req, "ECHO_DELAY_MS");
	char head[1024];
	int hl = write_head(req, head, sizeof head);
	if (hl < 0 || (size_t)hl >= sizeof head)
		hl = 0;
	char *body;
	size_t len;
	if (read_body(req, buf, &body, &len)) {
		free(body);
		fcgi_finish(req, 1);
		return;
	}
	if (!delay) {
		if (fcgi_write(req, head, (size_t)hl) == FCGI_OK)
			fcgi_write(req, body, len);
		free(body);
		fcgi_finish(req, 0);
		return;
	}
	struct delayed *d = calloc(1, sizeof *d);
	if (!d) {
		free(body);
		fcgi_finish(req, 1);
		return;
	}
	d->req = req;
	d->head = malloc((size_t)hl + 1);
	if (d->head)
		memcpy(d->head, head, (size_t)hl);
	d->head_len = d->head ? (size_t)hl : 0;
	d->body = body;
	d->len = len;
	pending_add(d);
	fcgi_req_on_abort(req, delayed_abort, d);
	if (fcgi_app_timer(app, (unsigned)atoi(delay), delayed_timer, d) != FCGI_OK) {
		if (!d->finished)
			fcgi_finish(req, 1);
		delayed_free(d);
	}
}

static void *serve(void *arg)
{
	fcgi_app *app = arg;
	fcgi_req *req;
	char *buf = malloc(CHUNK);
	if (!buf)
		return NULL;
	while (fcgi_accept(app, &req) == FCGI_OK)
		serve_one(app, req, buf);
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *address = NULL;
	int threads = 1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (argv[i][0] != '-' && !address)
			address = argv[i];
		else {
			fprintf(stderr, "usage: %s [ADDRESS] [--threads N]\n", argv[0]);
			return 2;
		}
	}
	if (threads < 1 || threads > 1024)
		threads = 1;
	fcgi_app *app;
	int rc = fcgi_app_new(&app);
	if (!rc)
		rc = address ? fcgi_app_listen(app, address) : fcgi_app_listen_inherited(app);
	if (rc < 0) {
		fprintf(stderr, "echo: %s: %s\n", address ? address : "fd 0", fcgi_strerror(rc));
		return 1;
	}
	fcgi_app_handle_signals(app);
	pthread_t *tids = calloc((size_t)threads, sizeof *tids);
	for (int i = 1; i < threads; i++)
		pthread_create(&tids[i], NULL, serve, app);
	serve(app);
	for (int i = 1; i < threads; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	fcgi_app_free(app);
	while (g_pending)
		delayed_free(g_pending);
	return 0;
}
