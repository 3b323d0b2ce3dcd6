/* status.c — what the manager shows: a FastCGI status socket, and `fcgikit pm status`.
 *
 * The status socket is an ordinary libfcgikit application embedded in the manager's loop
 * (fcgi_app_fd / fcgi_app_process), so nginx exposes it with three lines of fastcgi_pass and
 * the command line reads it with the client library. Handlers run on the manager's own
 * thread, between ticks, so they read the pools without locks. What to answer comes from
 * the request: a path ending in /ping → "pong"; /metrics or ?openmetrics → OpenMetrics;
 * ?json → JSON (?json&full adds every worker); anything else → the text table. */
#include <fcgikit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pm/pm.h"
#include "pm/render.h"

static const char *worker_state(const pm_worker *w)
{
	if (w->stop_ms)
		return w->reports && w->seen.state == FK_RS_DRAINING ? "draining" : "stopping";
	if (!w->ready_ms)
		return "starting";
	return pm_worker_busy(w) ? "busy" : "idle";
}

/* Builds the views (render.h) over the live pools; everything is freed by free_view. */
static int build_view(pm_manager *m, pm_status_view *v, int64_t now)
{
	memset(v, 0, sizeof *v);
	v->pid = (int)getpid();
	v->version = fcgi_version();
	v->uptime_ms = now - m->started_ms;
	v->reloads = m->reloads;
	int np = 0;
	for (pm_pool *p = m->pools; p; p = p->next)
		np++;
	pm_pool_view *pools = calloc((size_t)np + 1, sizeof *pools);
	if (!pools)
		return -1;
	int i = 0;
	for (pm_pool *p = m->pools; p; p = p->next, i++) {
		pm_pool_view *pv = &pools[i];
		pv->name = p->conf->name;
		pv->listen = p->conf->listen;
		pv->mode = pm_mode_name(p->conf->mode);
		pv->health = pm_health_state_name(&p->health);
		pv->generation = p->gen;
		pm_pool_counts(p, p->gen, &pv->live, &pv->starting, &pv->idle, &pv->busy);
		pv->max_children = p->conf->max_children;
		pv->queue = p->queue;
		pv->max_children_reached = (uint64_t)p->scale.max_children_hits;
		pv->slow_requests = p->slow;
		pv->killed_requests = p->killed;
		pv->respawns = p->respawns;
		pv->shed = p->shed;
		uint64_t served = p->requests_done;
		int nw = 0;
		for (pm_worker *w = p->workers; w; w = w->next) {
			pm_worker_read_page(w); /* fresh, not as of the last tick */
			nw += !w->zygote;
		}
		pm_worker_view *ws = calloc((size_t)nw + 1, sizeof *ws);
		if (!ws) {
			pools[i].workers = NULL;
			v->pools = pools;
			v->npools = i;
			return -1;
		}
		int k = 0;
		for (pm_worker *w = p->workers; w; w = w->next) {
			if (w->zygote)
				continue;
			pm_worker_view *wv = &ws[k++];
			served += w->reports ? w->seen.requests : 0;
			wv->pid = (int)w->pid;
			wv->generation = w->gen;
			wv->state = worker_state(w);
			wv->reports = w->reports;
			wv->requests = w->reports ? w->seen.requests : 0;
			wv->active = w->reports ? (int)w->seen.active : pm_worker_busy(w);
			wv->conns = w->reports ? (int)w->seen.conns : -1;
			wv->started_ms_ago = now - w->started_ms;
			long rss = 0;
			wv->rss_kb = pm_proc_rss_kb(w->pid, &rss) == 0 ? rss : -1;
			wv->cur_ms = -1;
			wv->cur_method = wv->cur_uri = "";
			if (w->reports && w->seen.active) {
				wv->cur_method = w->seen.cur_method;
				wv->cur_uri = w->seen.cur_uri;
				wv->cur_ms = w->seen.cur_start_ms ? now - w->seen.cur_start_ms : -1;
			}
		}
		pv->accepted = served;
		pv->nworkers = nw;
		pv->workers = ws;
	}
	v->pools = pools;
	v->npools = np;
	return 0;
}

static void free_view(pm_status_view *v)
{
	for (int i = 0; i < v->npools; i++)
		free((void *)v->pools[i].workers);
	free((void *)v->pools);
}

int pm_status_render(pm_manager *m, const char *format, char **out, size_t *len)
{
	pm_status_view v;
	int rc = build_view(m, &v, fk_now_ms());
	if (!rc) {
		if (!strcmp(format, "openmetrics"))
			rc = pm_render_openmetrics(&v, out, len);
		else if (!strcmp(format, "json"))
			rc = pm_render_json(&v, 0, out, len);
		else if (!strcmp(format, "full"))
			rc = pm_render_json(&v, 1, out, len);
		else
			rc = pm_render_text(&v, out, len);
	}
	free_view(&v);
	return rc;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && !strcmp(s + a - b, suffix);
}

static int has_word(const char *query, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = query; (p = strstr(p, word)); p += n)
		if ((p == query || p[-1] == '&') && (p[n] == 0 || p[n] == '&' || p[n] == '='))
			return 1;
	return 0;
}

static void handle(fcgi_req *req, void *ud)
{
	pm_manager *m = ud;
	const char *q = fcgi_param(req, "QUERY_STRING");
	const char *path = fcgi_param(req, "DOCUMENT_URI");
	if (!path)
		path = fcgi_param(req, "SCRIPT_NAME");
	if (!q)
		q = "";
	if (!path)
		path = "";
	if (ends_with(path, "/ping") || has_word(q, "ping")) {
		fcgi_printf(req, "Content-Type: text/plain\r\nCache-Control: no-store\r\n\r\npong\n");
		fcgi_finish(req, 0);
		return;
	}
	const char *format = "text", *type = "text/plain; charset=utf-8";
	if (ends_with(path, "/metrics") || has_word(q, "openmetrics")) {
		format = "openmetrics";
		type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
	} else if (has_word(q, "json")) {
		format = has_word(q, "full") ? "full" : "json";
		type = "application/json";
	}
	char *out = NULL;
	size_t len = 0;
	if (pm_status_render(m, format, &out, &len)) {
		fcgi_printf(req, "Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n"
		                 "out of memory\n");
	} else {
		fcgi_printf(req, "Content-Type: %s\r\nCache-Control: no-store\r\n\r\n", type);
		fcgi_write(req, out, len);
	}
	free(out);
	fcgi_finish(req, 0);
}

int pm_status_start(pm_manager *m)
{
	const char *addr = m->cfg->status_listen;
	if (!addr)
		return 0;
	fcgi_app *app;
	int rc = fcgi_app_new(&app);
	if (rc)
		goto fail;
	fcgi_app_set_opt(app, FCGI_OPT_UNIX_MODE, m->cfg->status_mode);
	fcgi_app_set_opt(app, FCGI_OPT_MAX_CONNS, 64);
	fcgi_app_set_opt(app, FCGI_OPT_DRAIN_TIMEOUT_MS, 1000);
	if ((rc = fcgi_app_listen(app, addr)) || (rc = fcgi_app_set_handler(app, handle, m))) {
		fcgi_app_free(app);
		goto fail;
	}
	if (fk_ev_add(&m->ev, fcgi_app_fd(app), FK_EV_IN, &m->status_kind)) {
		fcgi_app_free(app);
		rc = FCGI_ESYS;
		goto fail;
	}
	m->status_app = app;
	pm_log("notice", "status on %s", addr);
	return 0;
fail:
	pm_log("error", "status_listen = %s: %s", addr, fcgi_strerror(rc));
	return -1;
}

void pm_status_process(pm_manager *m)
{
	if (m->status_app)
		fcgi_app_process(m->status_app, 0);
}

void pm_status_stop(pm_manager *m)
{
	if (!m->status_app)
		return;
	fk_ev_del(&m->ev, fcgi_app_fd(m->status_app));
	fcgi_app_free(m->status_app);
	m->status_app = NULL;
}

/* ---------------------------------------------------------------- the command */

static void status_usage(FILE *f)
{
	fprintf(f, "usage: fcgikit pm status [-c CONFIG | --socket ADDRESS] "
	           "[--json | --full | --openmetrics | --ping] [--timeout MS]\n"
	           "Asks a running manager through its status socket (status_listen).\n");
}

int pm_status_cmd(int argc, char **argv)
{
	const char *sock = NULL, *config = NULL, *format = "text";
	int timeout = 5000;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if ((!strcmp(a, "--socket") || !strcmp(a, "-s")) && i + 1 < argc)
			sock = argv[++i];
		else if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc)
			config = argv[++i];
		else if (!strcmp(a, "--timeout") && i + 1 < argc)
			timeout = atoi(argv[++i]);
		else if (!strcmp(a, "--json"))
			format = "json";
		else if (!strcmp(a, "--full"))
			format = "json&full";
		else if (!strcmp(a, "--openmetrics"))
			format = "openmetrics";
		else if (!strcmp(a, "--ping"))
			format = "ping";
		else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			status_usage(stdout);
			return 0;
		} else {
			status_usage(stderr);
			return 2;
		}
	}
	pm_config cfg;
	if (!sock && config) {
		char err[512];
		if (pm_config_load(&cfg, config, err, sizeof err)) {
			fprintf(stderr, "fcgikit pm status: %s\n", err);
			return 2;
		}
		if (!cfg.status_listen) {
			fprintf(stderr, "fcgikit pm status: %s sets no status_listen\n", config);
			pm_config_free(&cfg);
			return 2;
		}
		static char addr[1024];
		snprintf(addr, sizeof addr, "%s", cfg.status_listen);
		sock = addr;
		pm_config_free(&cfg);
	}
	if (!sock) {
		status_usage(stderr);
		return 2;
	}
	fcgi_client_param params[] = {
	    {"REQUEST_METHOD", "GET"},
	    {"SCRIPT_NAME", "/status"},
	    {"QUERY_STRING", format},
	};
	fcgi_client_req *r = NULL;
	int rc = fcgi_client_call(sock, params, 3, NULL, 0, timeout, &r);
	if (rc || !r || fcgi_client_req_error(r)) {
		fprintf(stderr, "fcgikit pm status: %s: %s\n", sock,
		        r ? fcgi_client_req_strerror(r) : fcgi_strerror(rc));
		fcgi_client_req_free(r);
		return 1;
	}
	size_t n;
	const char *out = fcgi_client_req_stdout(r, &n);
	fcgi_cgi_head head;
	fcgi_header hdrs[32];
	ssize_t hl = fcgi_cgi_head_parse(out, n, &head, hdrs, 32, 0);
	if (hl > 0) {
		out += hl;
		n -= (size_t)hl;
	}
	fwrite(out, 1, n, stdout);
	fcgi_client_req_free(r);
	return 0;
}
