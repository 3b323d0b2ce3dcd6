/* render.h — `fcgikit pm` status as JSON, OpenMetrics text and a human table. Pure: the
 * manager fills a snapshot (plain structs, pointing at its own strings), the renderers turn
 * it into a malloc'd buffer and touch nothing else.
 *
 * Strings may come from untrusted workers (the current request's method and URI), so every
 * renderer makes them safe for its output: JSON escapes them (invalid UTF-8 becomes U+FFFD),
 * OpenMetrics escapes label values the same way, and the text table replaces control
 * characters and invalid UTF-8 with \xNN and shortens long URIs, so a URI cannot move the
 * cursor or forge a line on a terminal. A NULL string is rendered as null (JSON), "" (a
 * label value) or "-" (text). */
#ifndef FK_PM_RENDER_H
#define FK_PM_RENDER_H

#include <stddef.h>
#include <stdint.h>

typedef struct pm_worker_view {
	int pid;
	int generation;
	const char *state; /* "starting", "idle", "busy", "draining", "stopping" */
	int reports; /* 1 = libfcgikit worker that reports; 0 = state sampled from the kernel */
	uint64_t requests;
	int active;
	int conns;
	int64_t started_ms_ago;
	long rss_kb;                      /* < 0: unknown */
	const char *cur_method, *cur_uri; /* current request, NULL if none or unknown */
	int64_t cur_ms;                   /* current request's age, -1 none */
} pm_worker_view;

typedef struct pm_pool_view {
	const char *name, *listen, *mode /* static|dynamic|ondemand */,
	        *health /* ok|backoff|open */;
	int generation;
	int live, idle, busy, starting, max_children;
	int queue; /* -1 unknown */
	uint64_t accepted /* requests served, sum */, max_children_reached, slow_requests,
	        killed_requests, respawns, shed;
	int nworkers;
	const pm_worker_view *workers;
} pm_pool_view;

typedef struct pm_status_view {
	int pid;
	const char *version;
	int64_t uptime_ms;
	int reloads;
	int npools;
	const pm_pool_view *pools;
} pm_status_view;

/* All three renderers: on success *out is a malloc'd, NUL-terminated buffer (free it) of
 * *len bytes not counting the NUL, and they return 0. On failure they return -1 with errno
 * ENOMEM (or EINVAL for a NULL argument, or a negative npools/nworkers) and leave *out and
 * *len untouched. The output depends only on v. */

/* One JSON object, no whitespace, ending in "\n":
 *   {"pid":N,"version":S,"uptime_ms":N,"reloads":N,"pools":[POOL,...]}
 * POOL:
 *   {"name":S,"listen":S,"mode":S,"health":S,"generation":N,"live":N,"idle":N,"busy":N,
 *    "starting":N,"max_children":N,"queue":N|null,"requests":N,"max_children_reached":N,
 *    "slow_requests":N,"killed_requests":N,"respawns":N,"shed":N[,"workers":[WORKER,...]]}
 * "requests" is pm_pool_view.accepted; "queue" is null when unknown (-1). With full set,
 * "workers" lists every worker:
 *   {"pid":N,"generation":N,"state":S,"reports":true|false,"requests":N,"active":N,
 *    "conns":N,"started_ms_ago":N,"rss_kb":N|null,
 *    "current":{"method":S,"uri":S,"ms":N}|null}
 * "current" is null when cur_ms < 0. Strings: " and \ are escaped, control characters (C0,
 * DEL, C1) are written \u00XX, U+2028/U+2029 \u2028/\u2029 (for JavaScript consumers); each
 * byte that does not start a well-formed UTF-8 sequence (overlong, surrogate, beyond
 * U+10FFFF, truncated) becomes \ufffd. */
int pm_render_json(const pm_status_view *v, int full, char **out, size_t *len);

/* OpenMetrics 1.0 text, to be served as
 * Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8
 * Each family is announced by "# TYPE", "# UNIT" (where it has one) and "# HELP" lines, then
 * its samples, one family after another; a counter family's name has no "_total", its samples
 * do. Ends with "# EOF\n". Families:
 *   fcgikit_pm_uptime_seconds                          gauge (milliseconds as a decimal)
 *   fcgikit_pm_reloads                                 counter
 *   fcgikit_pm_workers{pool,state}                     gauge; state = starting, idle, busy
 *                                                      (the pool's counts), draining and
 *                                                      stopping (counted from its workers);
 *                                                      all five always present
 *   fcgikit_pm_listen_queue{pool}                      gauge; no sample when unknown
 *   fcgikit_pm_max_children{pool}                      gauge
 *   fcgikit_pm_requests{pool}                          counter (pm_pool_view.accepted)
 *   fcgikit_pm_max_children_reached{pool}, fcgikit_pm_slow_requests{pool},
 *   fcgikit_pm_killed_requests{pool}, fcgikit_pm_respawns{pool}, fcgikit_pm_shed{pool}
 *                                                      counters
 *   fcgikit_pm_worker_requests{pool,pid}               counter
 *   fcgikit_pm_worker_rss_bytes{pool,pid}              gauge; no sample when rss unknown
 * Label values are escaped (\\, \", \n) and invalid UTF-8 becomes U+FFFD. */
int pm_render_openmetrics(const pm_status_view *v, char **out, size_t *len);

/* A human table for `fcgikit pm status`: a header line (version, pid, uptime, reloads), then
 * per pool one line
 *   pool NAME  LISTEN  MODE  HEALTH  live L/MAX (idle I, busy B, starting S)  queue Q|?  requests R
 * (and a second one with max_children reached / slow / killed / respawns / shed when any is
 * not zero), a column header and per worker one line: pid, generation, state (a "*" marks a
 * state sampled from the kernel, explained under the table), requests, RSS, and the current
 * request (method, URI cut at 60 characters) with its age. Not a stable format: scripts use
 * the JSON. */
int pm_render_text(const pm_status_view *v, char **out, size_t *len);

#endif
