/* render.c — `fcgikit pm` status snapshot as JSON, OpenMetrics and a text table. Contracts and
 * the exact output forms are in render.h. Everything is appended to one growing buffer whose
 * first allocation failure sticks, so the renderers check for ENOMEM once, at the end. */
#include "pm/render.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- output buffer */

typedef struct pm_buf {
	char *p;
	size_t len, cap;
	int err; /* an allocation failed: everything after is dropped */
} pm_buf;

/* Makes room for n more bytes and the NUL. */
static int pm_buf_room(pm_buf *b, size_t n)
{
	if (b->err)
		return -1;
	if (n < b->cap - b->len) /* cap > len always once allocated; 0 - 0 = 0 before */
		return 0;
	if (n > SIZE_MAX / 2 - b->len) {
		b->err = 1;
		return -1;
	}
	size_t want = b->len + n + 1, cap = b->cap ? b->cap : 1024;
	while (cap < want)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->err = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

static void pm_putn(pm_buf *b, const char *s, size_t n)
{
	if (pm_buf_room(b, n) < 0)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void pm_puts(pm_buf *b, const char *s) { pm_putn(b, s, strlen(s)); }

static void pm_putc(pm_buf *b, char c) { pm_putn(b, &c, 1); }

__attribute__((format(printf, 2, 3))) static void pm_printf(pm_buf *b, const char *fmt, ...)
{
	if (b->err)
		return;
	/* Most pieces are short numbers: try a stack buffer first, format twice only if long. */
	char small[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = 1;
		return;
	}
	if ((size_t)n < sizeof small) {
		pm_putn(b, small, (size_t)n);
		return;
	}
	if (pm_buf_room(b, (size_t)n) < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Hands the buffer over, or frees it and fails with ENOMEM. */
static int pm_buf_finish(pm_buf *b, char **out, size_t *len)
{
	if (!b->err && pm_buf_room(b, 0) == 0) { /* an empty output still gets its NUL */
		b->p[b->len] = '\0';
		*out = b->p;
		*len = b->len;
		return 0;
	}
	free(b->p);
	errno = ENOMEM;
	return -1;
}

/* ---------------------------------------------------------------- UTF-8 */

/* The length (1-4) of the well-formed UTF-8 sequence at s (n bytes available), or 0 if the
 * byte at s does not start one: a stray continuation byte, C0/C1/F5-FF, an overlong form, a
 * surrogate, a code point beyond U+10FFFF, or a sequence cut short. (Unicode table 3-7.) */
static size_t pm_utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	size_t len;
	unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		if (c == 0xE0)
			lo = 0xA0; /* overlong below */
		else if (c == 0xED)
			hi = 0x9F; /* surrogates above */
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F; /* beyond U+10FFFF above */
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return len;
}

/* ---------------------------------------------------------------- JSON */

static void pm_json_str(pm_buf *b, const char *s)
{
	if (!s) {
		pm_puts(b, "null");
		return;
	}
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	pm_putc(b, '"');
	size_t i = 0;
	while (i < n) {
		/* Copy the longest run that needs no escape in one go. */
		size_t run = i;
		while (run < n && p[run] >= 0x20 && p[run] < 0x7F && p[run] != '"' &&
		       p[run] != '\\')
			run++;
		pm_putn(b, s + i, run - i);
		i = run;
		if (i >= n)
			break;
		unsigned c = p[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			pm_putn(b, e, 2);
			i++;
			continue;
		}
		if (c < 0x80) { /* C0 control or DEL */
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			pm_putn(b, e, 6);
			i++;
			continue;
		}
		size_t k = pm_utf8_seq(p + i, n - i);
		if (k == 0) {
			pm_puts(b, "\\ufffd");
			i++;
		} else if (k == 2 && c == 0xC2 && p[i + 1] <= 0x9F) { /* C1 control U+0080-U+009F */
			char e[6] = {'\\', 'u', '0', '0', hex[p[i + 1] >> 4], hex[p[i + 1] & 15]};
			pm_putn(b, e, 6);
			i += 2;
		} else if (k == 3 && c == 0xE2 && p[i + 1] == 0x80 &&
		           (p[i + 2] == 0xA8 || p[i + 2] == 0xA9)) {
			/* U+2028/U+2029 are valid JSON but end a line in older JavaScript. */
			pm_puts(b, p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029");
			i += 3;
		} else {
			pm_putn(b, s + i, k);
			i += k;
		}
	}
	pm_putc(b, '"');
}

static void pm_json_worker(pm_buf *b, const pm_worker_view *w)
{
	pm_puts(b, "{\"pid\":");
	pm_printf(b, "%d,\"generation\":%d,\"state\":", w->pid, w->generation);
	pm_json_str(b, w->state);
	pm_printf(b,
	          ",\"reports\":%s,\"requests\":%" PRIu64 ",\"active\":%d,\"conns\":%d"
	          ",\"started_ms_ago\":%" PRId64 ",\"rss_kb\":",
	          w->reports ? "true" : "false", w->requests, w->active, w->conns,
	          w->started_ms_ago);
	if (w->rss_kb < 0)
		pm_puts(b, "null");
	else
		pm_printf(b, "%ld", w->rss_kb);
	pm_puts(b, ",\"current\":");
	if (w->cur_ms < 0) {
		pm_puts(b, "null}");
		return;
	}
	pm_puts(b, "{\"method\":");
	pm_json_str(b, w->cur_method);
	pm_puts(b, ",\"uri\":");
	pm_json_str(b, w->cur_uri);
	pm_printf(b, ",\"ms\":%" PRId64 "}}", w->cur_ms);
}

static void pm_json_pool(pm_buf *b, const pm_pool_view *pl, int full)
{
	pm_puts(b, "{\"name\":");
	pm_json_str(b, pl->name);
	pm_puts(b, ",\"listen\":");
	pm_json_str(b, pl->listen);
	pm_puts(b, ",\"mode\":");
	pm_json_str(b, pl->mode);
	pm_puts(b, ",\"health\":");
	pm_json_str(b, pl->health);
	pm_printf(b,
	          ",\"generation\":%d,\"live\":%d,\"idle\":%d,\"busy\":%d,\"starting\":%d"
	          ",\"max_children\":%d,\"queue\":",
	          pl->generation, pl->live, pl->idle, pl->busy, pl->starting, pl->max_children);
	if (pl->queue < 0)
		pm_puts(b, "null");
	else
		pm_printf(b, "%d", pl->queue);
	pm_printf(b,
	          ",\"requests\":%" PRIu64 ",\"max_children_reached\":%" PRIu64
	          ",\"slow_requests\":%" PRIu64 ",\"killed_requests\":%" PRIu64
	          ",\"respawns\":%" PRIu64 ",\"shed\":%" PRIu64,
	          pl->accepted, pl->max_children_reached, pl->slow_requests, pl->killed_requests,
	          pl->respawns, pl->shed);
	if (full) {
		pm_puts(b, ",\"workers\":[");
		for (int i = 0; i < pl->nworkers; i++) {
			if (i)
				pm_putc(b, ',');
			pm_json_worker(b, &pl->workers[i]);
		}
		pm_putc(b, ']');
	}
	pm_putc(b, '}');
}

/* Rejects what would make the renderers read out of bounds. */
static int pm_view_ok(const pm_status_view *v, char **out, size_t *len)
{
	if (!v || !out || !len || v->npools < 0 || (v->npools > 0 && !v->pools))
		return 0;
	for (int i = 0; i < v->npools; i++)
		if (v->pools[i].nworkers < 0 || (v->pools[i].nworkers > 0 && !v->pools[i].workers))
			return 0;
	return 1;
}

int pm_render_json(const pm_status_view *v, int full, char **out, size_t *len)
{
	if (!pm_view_ok(v, out, len)) {
		errno = EINVAL;
		return -1;
	}
	pm_buf b = {0};
	pm_printf(&b, "{\"pid\":%d,\"version\":", v->pid);
	pm_json_str(&b, v->version);
	pm_printf(&b, ",\"uptime_ms\":%" PRId64 ",\"reloads\":%d,\"pools\":[", v->uptime_ms,
	          v->reloads);
	for (int i = 0; i < v->npools; i++) {
		if (i)
			pm_putc(&b, ',');
		pm_json_pool(&b, &v->pools[i], full);
	}
	pm_puts(&b, "]}\n");
	return pm_buf_finish(&b, out, len);
}

/* ---------------------------------------------------------------- OpenMetrics */

/* A label value: \, " and newline escaped; invalid UTF-8 replaced by U+FFFD, since the
 * format is UTF-8 and a parser may reject the whole exposition otherwise. */
static void pm_om_label(pm_buf *b, const char *s)
{
	pm_putc(b, '"');
	if (s) {
		const unsigned char *p = (const unsigned char *)s;
		size_t n = strlen(s), i = 0;
		while (i < n) {
			unsigned c = p[i];
			size_t k = pm_utf8_seq(p + i, n - i);
			if (c == '\\') {
				pm_puts(b, "\\\\");
			} else if (c == '"') {
				pm_puts(b, "\\\"");
			} else if (c == '\n') {
				pm_puts(b, "\\n");
			} else if (k == 0) {
				pm_puts(b, "\xEF\xBF\xBD");
				k = 1;
			} else {
				pm_putn(b, s + i, k);
				i += k;
				continue;
			}
			i++;
		}
	}
	pm_putc(b, '"');
}

/* The metadata lines of one family. */
static void pm_om_family(pm_buf *b, const char *name, const char *type, const char *unit,
                         const char *help)
{
	pm_printf(b, "# TYPE %s %s\n", name, type);
	if (unit)
		pm_printf(b, "# UNIT %s %s\n", name, unit);
	pm_printf(b, "# HELP %s %s\n", name, help);
}

/* One sample with a pool label (and an optional second label), e.g.
 * fcgikit_pm_workers{pool="www",state="idle"} 3 */
static void pm_om_sample(pm_buf *b, const char *name, const char *pool, const char *label2,
                         const char *value2, uint64_t value)
{
	pm_printf(b, "%s{pool=", name);
	pm_om_label(b, pool);
	if (label2) {
		pm_printf(b, ",%s=", label2);
		pm_om_label(b, value2);
	}
	pm_printf(b, "} %" PRIu64 "\n", value);
}

static void pm_om_sample_signed(pm_buf *b, const char *name, const char *pool, const char *label2,
                                const char *value2, int64_t value)
{
	pm_printf(b, "%s{pool=", name);
	pm_om_label(b, pool);
	if (label2) {
		pm_printf(b, ",%s=", label2);
		pm_om_label(b, value2);
	}
	pm_printf(b, "} %" PRId64 "\n", value);
}

static int pm_count_state(const pm_pool_view *pl, const char *state)
{
	int n = 0;
	for (int i = 0; i < pl->nworkers; i++)
		if (pl->workers[i].state && strcmp(pl->workers[i].state, state) == 0)
			n++;
	return n;
}

/* A pool counter family: metadata, then one sample per pool. */
enum pm_pool_counter { PM_C_REQ, PM_C_MAXCH, PM_C_SLOW, PM_C_KILLED, PM_C_RESPAWN, PM_C_SHED };

static uint64_t pm_pool_counter(const pm_pool_view *pl, enum pm_pool_counter c)
{
	switch (c) {
	case PM_C_REQ:
		return pl->accepted;
	case PM_C_MAXCH:
		return pl->max_children_reached;
	case PM_C_SLOW:
		return pl->slow_requests;
	case PM_C_KILLED:
		return pl->killed_requests;
	case PM_C_RESPAWN:
		return pl->respawns;
	case PM_C_SHED:
		return pl->shed;
	}
	return 0;
}

int pm_render_openmetrics(const pm_status_view *v, char **out, size_t *len)
{
	if (!pm_view_ok(v, out, len)) {
		errno = EINVAL;
		return -1;
	}
	pm_buf b = {0};

	pm_om_family(&b, "fcgikit_pm_uptime_seconds", "gauge", "seconds",
	             "Time since the process manager started.");
	/* Milliseconds as a decimal number of seconds, exactly; the magnitude is taken in
	 * unsigned arithmetic so even INT64_MIN prints. */
	uint64_t up =
	        v->uptime_ms < 0 ? (uint64_t)0 - (uint64_t)v->uptime_ms : (uint64_t)v->uptime_ms;
	pm_printf(&b, "fcgikit_pm_uptime_seconds %s%" PRIu64 ".%03u\n", v->uptime_ms < 0 ? "-" : "",
	          up / 1000, (unsigned)(up % 1000));

	pm_om_family(&b, "fcgikit_pm_reloads", "counter", NULL,
	             "Configuration reloads since the process manager started.");
	pm_printf(&b, "fcgikit_pm_reloads_total %d\n", v->reloads);

	pm_om_family(&b, "fcgikit_pm_workers", "gauge", NULL, "Worker processes by state.");
	for (int i = 0; i < v->npools; i++) {
		const pm_pool_view *pl = &v->pools[i];
		const struct {
			const char *state;
			int n;
		} st[] = {
		        {"starting", pl->starting},
		        {"idle", pl->idle},
		        {"busy", pl->busy},
		        {"draining", pm_count_state(pl, "draining")},
		        {"stopping", pm_count_state(pl, "stopping")},
		};
		for (size_t k = 0; k < sizeof st / sizeof st[0]; k++)
			pm_om_sample_signed(&b, "fcgikit_pm_workers", pl->name, "state",
			                    st[k].state, st[k].n);
	}

	pm_om_family(&b, "fcgikit_pm_listen_queue", "gauge", NULL,
	             "Connections waiting in the listening socket's accept queue.");
	for (int i = 0; i < v->npools; i++)
		if (v->pools[i].queue >= 0)
			pm_om_sample_signed(&b, "fcgikit_pm_listen_queue", v->pools[i].name, NULL,
			                    NULL, v->pools[i].queue);

	pm_om_family(&b, "fcgikit_pm_max_children", "gauge", NULL,
	             "Most worker processes the pool may run.");
	for (int i = 0; i < v->npools; i++)
		pm_om_sample_signed(&b, "fcgikit_pm_max_children", v->pools[i].name, NULL, NULL,
		                    v->pools[i].max_children);

	static const struct {
		const char *family, *sample, *help;
		enum pm_pool_counter c;
	} counters[] = {
	        {"fcgikit_pm_requests", "fcgikit_pm_requests_total", "Requests served.", PM_C_REQ},
	        {"fcgikit_pm_max_children_reached", "fcgikit_pm_max_children_reached_total",
	         "Times the pool wanted another worker but had max_children.", PM_C_MAXCH},
	        {"fcgikit_pm_slow_requests", "fcgikit_pm_slow_requests_total",
	         "Requests that ran longer than the slow-request threshold.", PM_C_SLOW},
	        {"fcgikit_pm_killed_requests", "fcgikit_pm_killed_requests_total",
	         "Workers killed for running a request past its time limit.", PM_C_KILLED},
	        {"fcgikit_pm_respawns", "fcgikit_pm_respawns_total",
	         "Workers started again after one exited.", PM_C_RESPAWN},
	        {"fcgikit_pm_shed", "fcgikit_pm_shed_total",
	         "Connections refused because the pool was overloaded.", PM_C_SHED},
	};
	for (size_t k = 0; k < sizeof counters / sizeof counters[0]; k++) {
		pm_om_family(&b, counters[k].family, "counter", NULL, counters[k].help);
		for (int i = 0; i < v->npools; i++)
			pm_om_sample(&b, counters[k].sample, v->pools[i].name, NULL, NULL,
			             pm_pool_counter(&v->pools[i], counters[k].c));
	}

	char pid[24];
	pm_om_family(&b, "fcgikit_pm_worker_requests", "counter", NULL,
	             "Requests served by a worker process.");
	for (int i = 0; i < v->npools; i++)
		for (int j = 0; j < v->pools[i].nworkers; j++) {
			const pm_worker_view *w = &v->pools[i].workers[j];
			snprintf(pid, sizeof pid, "%d", w->pid);
			pm_om_sample(&b, "fcgikit_pm_worker_requests_total", v->pools[i].name,
			             "pid", pid, w->requests);
		}

	pm_om_family(&b, "fcgikit_pm_worker_rss_bytes", "gauge", "bytes",
	             "Resident memory of a worker process.");
	for (int i = 0; i < v->npools; i++)
		for (int j = 0; j < v->pools[i].nworkers; j++) {
			const pm_worker_view *w = &v->pools[i].workers[j];
			if (w->rss_kb < 0)
				continue;
			snprintf(pid, sizeof pid, "%d", w->pid);
			pm_om_sample(&b, "fcgikit_pm_worker_rss_bytes", v->pools[i].name, "pid",
			             pid, (uint64_t)w->rss_kb * 1024);
		}

	pm_puts(&b, "# EOF\n");
	return pm_buf_finish(&b, out, len);
}

/* ---------------------------------------------------------------- text */

/* A string for a terminal: valid, printable UTF-8 is kept; control characters (C0, DEL, C1),
 * backslash and bytes of invalid UTF-8 become \xNN / \\, so nothing a worker sends can drive
 * the terminal. At most max characters, then "..." if there was more. */
static void pm_text_str(pm_buf *b, const char *s, size_t max)
{
	if (!s || !*s) {
		pm_putc(b, '-');
		return;
	}
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, chars = 0;
	while (i < n) {
		if (chars == max) {
			pm_puts(b, "...");
			return;
		}
		size_t k = pm_utf8_seq(p + i, n - i);
		unsigned c = p[i];
		if (c == '\\') {
			pm_puts(b, "\\\\");
		} else if (k == 0 || c < 0x20 || c == 0x7F) {
			pm_printf(b, "\\x%02x", c);
			k = 1;
		} else if (k == 2 && c == 0xC2 && p[i + 1] <= 0x9F) {
			pm_printf(b, "\\x%02x\\x%02x", c, p[i + 1]);
		} else {
			pm_putn(b, s + i, k);
		}
		i += k;
		chars++;
	}
}

/* Left-aligns what pm_text_str wrote since mark to width columns (counting bytes, so a
 * multi-byte name pads short: fine for a table meant for eyes). */
static void pm_text_pad(pm_buf *b, size_t mark, size_t width)
{
	for (size_t w = b->err ? width : b->len - mark; w < width; w++)
		pm_putc(b, ' ');
}

/* 850ms, 12.3s, 5m03s, 3h02m, 2d03h; "-" for negative. */
static void pm_text_dur(char *out, size_t size, int64_t ms)
{
	if (ms < 0)
		snprintf(out, size, "-");
	else if (ms < 1000)
		snprintf(out, size, "%dms", (int)ms);
	else if (ms < 60000)
		snprintf(out, size, "%d.%ds", (int)(ms / 1000), (int)(ms % 1000 / 100));
	else if (ms < 3600000)
		snprintf(out, size, "%dm%02ds", (int)(ms / 60000), (int)(ms / 1000 % 60));
	else if (ms < 86400000)
		snprintf(out, size, "%dh%02dm", (int)(ms / 3600000), (int)(ms / 60000 % 60));
	else
		snprintf(out, size, "%" PRId64 "d%02dh", ms / 86400000, (int)(ms / 3600000 % 24));
}

/* 900K, 12.3M, 1.5G; "-" for unknown. */
static void pm_text_kb(char *out, size_t size, long kb)
{
	if (kb < 0)
		snprintf(out, size, "-");
	else if (kb < 10240)
		snprintf(out, size, "%ldK", kb);
	else if (kb < 10240L * 1024)
		snprintf(out, size, "%ld.%ldM", kb / 1024, kb % 1024 * 10 / 1024);
	else
		snprintf(out, size, "%ld.%ldG", kb / (1024L * 1024),
		         kb % (1024L * 1024) * 10 / (1024L * 1024));
}

static void pm_text_worker(pm_buf *b, const pm_worker_view *w)
{
	char rss[32], age[32];
	pm_text_kb(rss, sizeof rss, w->rss_kb);
	pm_printf(b, "  %7d %4d  ", w->pid, w->generation);
	size_t mark = b->len;
	pm_text_str(b, w->state, 10);
	if (!w->reports)
		pm_putc(b, '*');
	pm_text_pad(b, mark, 10);
	pm_printf(b, " %10" PRIu64 " %7s  ", w->requests, rss);
	if (w->cur_ms < 0) {
		pm_puts(b, "-\n");
		return;
	}
	pm_text_dur(age, sizeof age, w->cur_ms);
	pm_text_str(b, w->cur_method, 16);
	pm_putc(b, ' ');
	pm_text_str(b, w->cur_uri, 60);
	pm_printf(b, "  %s\n", age);
}

static void pm_text_pool(pm_buf *b, const pm_pool_view *pl)
{
	pm_puts(b, "\npool ");
	pm_text_str(b, pl->name, 63);
	pm_puts(b, "  ");
	pm_text_str(b, pl->listen, 108);
	pm_puts(b, "  ");
	pm_text_str(b, pl->mode, 16);
	pm_puts(b, "  ");
	pm_text_str(b, pl->health, 16);
	pm_printf(b, "  live %d/%d (idle %d, busy %d, starting %d)  queue ", pl->live,
	          pl->max_children, pl->idle, pl->busy, pl->starting);
	if (pl->queue < 0)
		pm_putc(b, '?');
	else
		pm_printf(b, "%d", pl->queue);
	pm_printf(b, "  requests %" PRIu64 "\n", pl->accepted);
	/* Trouble counters only when there was trouble, to keep the quiet case short. */
	if (pl->max_children_reached || pl->slow_requests || pl->killed_requests || pl->respawns ||
	    pl->shed)
		pm_printf(b,
		          "  max_children reached %" PRIu64 ", slow %" PRIu64 ", killed %" PRIu64
		          ", respawns %" PRIu64 ", shed %" PRIu64 "\n",
		          pl->max_children_reached, pl->slow_requests, pl->killed_requests,
		          pl->respawns, pl->shed);
	if (pl->nworkers > 0)
		pm_printf(b, "  %7s %4s  %-10s %10s %7s  %s\n", "PID", "GEN", "STATE", "REQUESTS",
		          "RSS", "REQUEST");
	for (int i = 0; i < pl->nworkers; i++)
		pm_text_worker(b, &pl->workers[i]);
}

int pm_render_text(const pm_status_view *v, char **out, size_t *len)
{
	if (!pm_view_ok(v, out, len)) {
		errno = EINVAL;
		return -1;
	}
	pm_buf b = {0};
	char up[32];
	pm_text_dur(up, sizeof up, v->uptime_ms);
	pm_puts(&b, "fcgikit pm ");
	pm_text_str(&b, v->version, 32);
	pm_printf(&b, "  pid %d  up %s  reloads %d\n", v->pid, up, v->reloads);
	int sampled = 0;
	for (int i = 0; i < v->npools; i++) {
		pm_text_pool(&b, &v->pools[i]);
		for (int j = 0; j < v->pools[i].nworkers; j++)
			sampled |= !v->pools[i].workers[j].reports;
	}
	if (sampled)
		pm_puts(&b, "\n* state sampled from the kernel: the worker does not report it\n");
	return pm_buf_finish(&b, out, len);
}
