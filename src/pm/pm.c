/* pm.c — `fcgikit pm`: the command line, the manager's loop, signals, reload and stop.
 *
 *   fcgikit pm -c CONFIG              pools from a file (fcgikit-pm.conf(5))
 *   fcgikit pm --test -c CONFIG       check a config and exit
 *   fcgikit pm --listen ADDR --workers N [options] -- COMMAND ARGS...
 *   fcgikit pm status [...]           ask a running manager (status.c)
 *
 * Signals: TERM/INT stop gracefully (workers finish what they hold, bounded by
 * stop_timeout), QUIT stops at once, HUP reloads, USR1 reopens the log.
 *
 * Reload keeps every listening socket whose address did not change, so nothing queued on
 * it is lost, starts the new generation beside the old, waits until each new worker is
 * ready (it reports so, or the kernel shows it waiting in accept), and only then asks the
 * old generation to stop — which each worker does after the requests it holds. If the new
 * configuration does not parse, or its workers do not come up within startup_timeout, the
 * old generation simply goes on and the log says why. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fcgikit.h"
#include "pm/pm.h"
#include "tool.h"

#define PM_TICK_MS 100

/* Old configurations still referenced by a pool that is draining. */
static pm_config *retired[16];
static int nretired;

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: fcgikit pm -c CONFIG [--test]\n"
	        "       fcgikit pm --listen ADDRESS [--workers N] [options] -- COMMAND [ARGS...]\n"
	        "       fcgikit pm status [-c CONFIG | --socket ADDRESS] [--json|--full|"
	        "--openmetrics|--ping]\n"
	        "Runs FastCGI programs as supervised pools of workers.\n\n"
	        "One-liner options (each also --opt=VALUE; see fcgikit-pm.conf(5) for meanings):\n"
	        "  --listen ADDR  --workers N  --dynamic MIN:MAX  --ondemand  --idle-timeout DUR\n"
	        "  --max-children N  --start-servers N  --min-spare N  --max-spare N\n"
	        "  --spawn-rate N  --user U  --group G  --chroot DIR  --chdir DIR\n"
	        "  --socket-mode MODE  --socket-owner U  --socket-group G  --backlog N\n"
	        "  --allow ADDRS  --env NAME=VALUE  --pass-env NAME  --clear-env BOOL\n"
	        "  --max-requests N  --request-timeout DUR  --slow-request DUR  --kill-grace DUR\n"
	        "  --startup-timeout DUR  --crash-limit N  --circuit-reset DUR\n"
	        "  --shed-queue N  --shed-response 503|overloaded  --catch-output BOOL\n"
	        "  --preload BOOL  --rlimit-files N  --rlimit-core SIZE  --rlimit-memory SIZE\n"
	        "  --status ADDR  --log FILE  --pid-file FILE  --stop-timeout DUR  --test\n"
	        "Signals: TERM/INT graceful stop, QUIT immediate, HUP reload, USR1 reopen the log.\n"
	        "Manual: fcgikit-pm(1), fcgikit-pm.conf(5).\n");
}

/* ---------------------------------------------------------------- systemd */

static void notify(pm_manager *m, const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!m->notify || !path || (path[0] != '/' && path[0] != '@'))
		return;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	if (n >= sizeof sa.sun_path)
		return;
	memcpy(sa.sun_path, path, n);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = 0; /* abstract namespace */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
	close(fd);
}

/* ---------------------------------------------------------------- checks before starting */

/* What can be checked in the manager before any fork, so a typo is one clear line at start
 * or reload instead of a crash loop. */
static int check_pool(const pm_pool_conf *c)
{
	char path[4096];
	snprintf(path, sizeof path, "%s%s", c->chroot ? c->chroot : "", c->argv[0]);
	const char *where = c->file ? c->file : "command line";
	if (c->chroot) {
		struct stat st;
		if (stat(c->chroot, &st) || !S_ISDIR(st.st_mode)) {
			pm_log("error", "%s:%d: pool %s: chroot %s: %s", where, c->line, c->name, c->chroot,
			       errno ? strerror(errno) : "not a directory");
			return -1;
		}
	}
	if (access(path, X_OK)) {
		pm_log("error", "%s:%d: pool %s: command %s: %s", where, c->line, c->name, path,
		       strerror(errno));
		return -1;
	}
	if (c->user && !getpwnam(c->user) && strspn(c->user, "0123456789") != strlen(c->user)) {
		pm_log("error", "%s:%d: pool %s: user %s does not exist", where, c->line, c->name,
		       c->user);
		return -1;
	}
	if ((c->user || c->group) && geteuid() != 0) {
		struct passwd *pw = c->user ? getpwnam(c->user) : NULL;
		if (!pw || pw->pw_uid != geteuid() || c->group) {
			pm_log("error", "%s:%d: pool %s: user/group need the manager to run as root", where,
			       c->line, c->name);
			return -1;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- pools */

static pm_pool *find_pool(pm_manager *m, const char *name)
{
	for (pm_pool *p = m->pools; p; p = p->next)
		if (!p->removed && !strcmp(p->conf->name, name))
			return p;
	return NULL;
}

static void add_pool(pm_manager *m, pm_pool *p)
{
	pm_pool **pp = &m->pools;
	while (*pp)
		pp = &(*pp)->next;
	*pp = p;
}

static int start_pool(pm_manager *m, pm_pool_conf *c, pm_pool **out)
{
	int is_unix;
	char *path;
	int fd = pm_listen(c, &is_unix, &path);
	if (fd < 0)
		return -1;
	pm_pool *p = pm_pool_new(m, c, fd, is_unix, path);
	if (!p) {
		close(fd);
		free(path);
		return -1;
	}
	add_pool(m, p);
	pm_log("notice", "pool %s: listening on %s, %s, %d workers at most: %s", c->name, c->listen,
	       pm_mode_name(c->mode), c->max_children, c->argv[0]);
	*out = p;
	return 0;
}

static int conf_in(const pm_config *cfg, const pm_pool_conf *c)
{
	return cfg && c >= cfg->pools && c < cfg->pools + cfg->npools;
}

static void gc_configs(pm_manager *m)
{
	for (int i = 0; i < nretired; i++) {
		int used = 0;
		for (pm_pool *p = m->pools; p && !used; p = p->next)
			used = conf_in(retired[i], p->conf) || conf_in(retired[i], p->next_conf);
		if (used)
			continue;
		pm_config_free(retired[i]);
		free(retired[i]);
		retired[i--] = retired[--nretired];
	}
}

static void retire(pm_config *c)
{
	if (nretired == (int)(sizeof retired / sizeof retired[0])) {
		/* Many reloads while old pools still drain: keep the memory rather than free what
		 * a pool may still read. */
		return;
	}
	retired[nretired++] = c;
}

/* Same socket? Then the running one is kept. */
static int same_listener(const pm_pool_conf *a, const pm_pool_conf *b)
{
	return !strcmp(a->listen, b->listen) && a->listen_mode == b->listen_mode &&
	       a->backlog == b->backlog &&
	       !strcmp(a->listen_owner ? a->listen_owner : "", b->listen_owner ? b->listen_owner : "") &&
	       !strcmp(a->listen_group ? a->listen_group : "", b->listen_group ? b->listen_group : "");
}

/* ---------------------------------------------------------------- reload */

static void reload_begin(pm_manager *m)
{
	if (m->stopping)
		return;
	if (m->next_cfg) {
		pm_log("warning", "reload already in progress: SIGHUP ignored");
		return;
	}
	pm_config *nc = m->cfg;
	if (m->config_file) {
		nc = calloc(1, sizeof *nc);
		char err[1024];
		if (!nc || pm_config_load(nc, m->config_file, err, sizeof err)) {
			pm_log("error", "reload failed: %s; the running configuration stays",
			       nc ? err : "out of memory");
			free(nc);
			return;
		}
		for (int i = 0; i < nc->npools; i++)
			if (check_pool(&nc->pools[i])) {
				pm_log("error", "reload failed (see above); the running configuration stays");
				pm_config_free(nc);
				free(nc);
				return;
			}
	}
	pm_log("notice", "reload: starting the new generation");
	notify(m, "RELOADING=1");
	int64_t now = fk_now_ms();
	m->reload_started = now;
	m->reload_error[0] = 0;
	m->next_cfg = nc;
	for (int i = 0; i < nc->npools; i++) {
		pm_pool_conf *c = &nc->pools[i];
		pm_pool *p = find_pool(m, c->name);
		if (!p) {
			if (start_pool(m, c, &p)) {
				snprintf(m->reload_error, sizeof m->reload_error,
				         "pool %s: cannot listen on %s", c->name, c->listen);
				return;
			}
			p->gen = 0; /* its first generation is the reload's */
		}
		p->next_conf = c;
		int fd = p->listen_fd;
		if (!same_listener(p->conf, c) && p->gen > 0) {
			p->next_fd = pm_listen(c, &p->next_is_unix, &p->next_unix_path);
			if (p->next_fd < 0) {
				snprintf(m->reload_error, sizeof m->reload_error,
				         "pool %s: cannot listen on %s", c->name, c->listen);
				return;
			}
			fd = p->next_fd;
		}
		int n = pm_pool_initial(c);
		p->reload_spawns = n;
		p->reload_proven = 0;
		for (int k = 0; k < n; k++)
			if (pm_pool_spawn(p, p->gen + 1, c, fd, now)) {
				snprintf(m->reload_error, sizeof m->reload_error, "pool %s: cannot spawn",
				         c->name);
				return;
			}
	}
}

static int64_t reload_timeout(const pm_config *nc)
{
	int64_t t = 0;
	for (int i = 0; i < nc->npools; i++)
		if (nc->pools[i].startup_timeout_ms > t)
			t = nc->pools[i].startup_timeout_ms;
	return t;
}

static void reload_abort(pm_manager *m, int64_t now)
{
	pm_log("error", "reload failed: %s; the running configuration stays",
	       m->reload_error[0] ? m->reload_error : "timeout");
	for (pm_pool *p = m->pools; p; p = p->next) {
		if (!p->next_conf)
			continue;
		for (pm_worker *w = p->workers; w; w = w->next)
			if (w->gen == p->gen + 1) {
				pm_worker_stop(w, PM_STOP_FAILED, now);
				pm_worker_kill(w);
			}
		if (p->next_fd >= 0) {
			close(p->next_fd);
			p->next_fd = -1;
			if (p->next_unix_path)
				unlink(p->next_unix_path);
		}
		free(p->next_unix_path);
		p->next_unix_path = NULL;
		if (p->gen == 0) /* added by this reload */
			p->removed = 1;
		else
			p->next_conf = NULL;
	}
	if (m->next_cfg != m->cfg)
		retire(m->next_cfg);
	m->next_cfg = NULL;
	notify(m, "READY=1");
}

static void reload_commit(pm_manager *m, int64_t now)
{
	pm_config *nc = m->next_cfg;
	for (pm_pool *p = m->pools; p; p = p->next) {
		if (p->removed)
			continue;
		if (!p->next_conf) {
			/* Not in the new configuration. */
			p->removed = 1;
			pm_shed_update(p, 0);
			for (pm_worker *w = p->workers; w; w = w->next)
				pm_worker_stop(w, PM_STOP_SHUTDOWN, now);
			pm_log("notice", "pool %s: removed by the reload, draining", p->conf->name);
			continue;
		}
		for (pm_worker *w = p->workers; w; w = w->next)
			if (w->gen <= p->gen)
				pm_worker_stop(w, PM_STOP_RELOAD, now);
		p->conf = p->next_conf;
		p->next_conf = NULL;
		p->gen++;
		memset(&p->health, 0, sizeof p->health);
		if (p->next_fd >= 0) {
			pm_shed_update(p, 0);
			close(p->listen_fd);
			if (p->unix_path && (!p->next_unix_path || strcmp(p->unix_path, p->next_unix_path)))
				unlink(p->unix_path);
			free(p->unix_path);
			p->listen_fd = p->next_fd;
			p->is_unix = p->next_is_unix;
			p->unix_path = p->next_unix_path;
			p->next_fd = -1;
			p->next_unix_path = NULL;
		}
	}
	if (nc != m->cfg) {
		int status_changed =
		    strcmp(nc->status_listen ? nc->status_listen : "",
		           m->cfg->status_listen ? m->cfg->status_listen : "") != 0;
		if (strcmp(nc->log_file ? nc->log_file : "", m->cfg->log_file ? m->cfg->log_file : "") &&
		    pm_log_open(nc->log_file))
			pm_log("error", "log %s: %s", nc->log_file, strerror(errno));
		retire(m->cfg);
		m->cfg = nc;
		if (status_changed) {
			pm_status_stop(m);
			pm_status_start(m);
		}
	}
	m->next_cfg = NULL;
	m->reloads++;
	pm_log("notice", "reload complete in %.2f s: the new generation serves, the old one drains",
	       (double)(now - m->reload_started) / 1000);
	notify(m, "READY=1");
}

static void reload_progress(pm_manager *m, int64_t now)
{
	if (!m->next_cfg)
		return;
	if (m->reload_error[0] || now - m->reload_started > reload_timeout(m->next_cfg)) {
		reload_abort(m, now);
		return;
	}
	int waiting = 0;
	for (pm_pool *p = m->pools; p; p = p->next) {
		if (!p->next_conf)
			continue;
		int live = 0;
		for (pm_worker *w = p->workers; w; w = w->next) {
			if (w->gen != p->gen + 1 || w->stop_ms || w->zygote)
				continue;
			if (w->ready_ms)
				p->reload_proven = 1;
			waiting |= !w->ready_ms && !p->reload_proven;
			live++;
		}
		/* A new worker may leave cleanly before it was seen ready (php-cgi ends itself
		 * after PHP_FCGI_MAX_REQUESTS, quickly on a kept connection): replace it within a
		 * bound, so a generation that only ever exits still fails the reload. */
		int missing = pm_pool_initial(p->next_conf) - live;
		for (; missing > 0; missing--, waiting |= !p->reload_proven) {
			if (!p->reload_proven && ++p->reload_spawns > 4 * pm_pool_initial(p->next_conf) + 4) {
				snprintf(m->reload_error, sizeof m->reload_error,
				         "pool %s: new workers keep exiting", p->conf->name);
				return;
			}
			pm_pool_spawn(p, p->gen + 1, p->next_conf, p->next_fd >= 0 ? p->next_fd
			                                                             : p->listen_fd, now);
		}
	}
	if (!waiting)
		reload_commit(m, now);
}

/* ---------------------------------------------------------------- stop */

static void stop_begin(pm_manager *m, int how, int64_t now)
{
	if (m->stopping >= how)
		return;
	if (m->next_cfg) {
		snprintf(m->reload_error, sizeof m->reload_error, "the manager is stopping");
		reload_abort(m, now);
	}
	m->stopping = how;
	m->stop_deadline = now + m->cfg->stop_timeout_ms;
	notify(m, "STOPPING=1");
	pm_log("notice", "%s stop: %s", how == 1 ? "graceful" : "immediate",
	       how == 1 ? "workers finish the requests they hold" : "killing the workers");
	for (pm_pool *p = m->pools; p; p = p->next) {
		pm_shed_update(p, 0);
		for (pm_worker *w = p->workers; w; w = w->next) {
			pm_worker_stop(w, PM_STOP_SHUTDOWN, now);
			if (how == 2)
				pm_worker_kill(w);
		}
	}
}

/* ---------------------------------------------------------------- the loop */

static void on_signal(pm_manager *m, int64_t now)
{
	struct signalfd_siginfo si;
	while (read(m->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			stop_begin(m, 1, now);
			break;
		case SIGQUIT:
			stop_begin(m, 2, now);
			break;
		case SIGHUP:
			reload_begin(m);
			break;
		case SIGUSR1:
			pm_log_reopen();
			break;
		case SIGCHLD:
			break; /* reaped below */
		}
	}
}

static void reap(pm_manager *m, int64_t now)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		pm_pool_reap(m, pid, status, now);
}

static int all_ready(pm_manager *m)
{
	for (pm_pool *p = m->pools; p; p = p->next) {
		int live, starting, idle, busy;
		pm_pool_counts(p, p->gen, &live, &starting, &idle, &busy);
		if (starting || (live < pm_pool_initial(p->conf) && !p->health.open))
			return 0;
	}
	return 1;
}

static void tick(pm_manager *m, int64_t now)
{
	reap(m, now);
	for (pm_pool *p = m->pools; p; p = p->next)
		pm_pool_tick(p, now);
	reload_progress(m, now);
	if (!m->ready_sent && all_ready(m)) {
		m->ready_sent = 1;
		notify(m, "READY=1");
		pm_log("notice", "ready");
	}
	/* Pools removed by a reload leave once their last worker has. */
	for (pm_pool **pp = &m->pools; *pp;) {
		pm_pool *p = *pp;
		if (p->removed && !p->workers) {
			*pp = p->next;
			pm_log("notice", "pool %s: gone", p->conf->name);
			pm_pool_free(p);
			continue;
		}
		pp = &p->next;
	}
	gc_configs(m);
}

static int workers_left(pm_manager *m)
{
	for (pm_pool *p = m->pools; p; p = p->next)
		if (p->workers)
			return 1;
	return 0;
}

static int run(pm_manager *m)
{
	int64_t next_tick = fk_now_ms();
	for (;;) {
		int64_t now = fk_now_ms();
		if (now >= next_tick) {
			tick(m, now);
			next_tick = now + PM_TICK_MS;
		}
		if (m->stopping && !workers_left(m))
			break;
		fk_ev_item items[64];
		int n = fk_ev_wait(&m->ev, items, 64, (int)(next_tick > now ? next_tick - now : 0));
		if (n < 0) {
			pm_log("error", "event wait: %s", strerror(errno));
			return 1;
		}
		now = fk_now_ms();
		/* Workers are freed by reap(), so it waits until the batch is done: a later item
		 * may still point at an exiting worker's output pipe. */
		int need_reap = 0;
		for (int i = 0; i < n; i++) {
			int kind = *(int *)items[i].ptr;
			switch (kind) {
			case PM_OBJ_SIGNAL:
				on_signal(m, now);
				need_reap = 1;
				break;
			case PM_OBJ_LISTENER: {
				pm_pool *p = (pm_pool *)items[i].ptr;
				if (p->shedding) {
					pm_shed_accept(p);
				} else if (p->wake_on_conn) {
					/* ondemand: a connection waits and nobody is free — spawn now, not
					 * at the next tick; the tick watches again once it has looked. */
					p->wake_on_conn = 0;
					pm_listen_watch(p);
					p->queue = pm_probe_queue(&m->probe, p->listen_fd);
					if (p->queue < 1)
						p->queue = 1; /* the socket said so, whatever the probe saw */
					pm_pool_scale(p, now);
				}
				break;
			}
			case PM_OBJ_WORKER_OUT: {
				pm_worker *w = (pm_worker *)((char *)items[i].ptr - offsetof(pm_worker, kind));
				pm_worker_output(w);
				break;
			}
			case PM_OBJ_STATUS:
				pm_status_process(m);
				break;
			case PM_OBJ_ZYGOTE: {
				pm_worker *z = (pm_worker *)((char *)items[i].ptr - offsetof(pm_worker, ctl_kind));
				pm_zygote_io(z, now);
				break;
			}
			case PM_OBJ_SHED:
				pm_shed_io((pm_shed_conn *)items[i].ptr, items[i].events);
				break;
			}
		}
		if (need_reap)
			reap(m, now);
	}
	return m->exit_status;
}

int fk_tool_pm(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "status"))
		return pm_status_cmd(argc - 1, argv + 1);
	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return 0;
	}
	pm_manager mgr, *m = &mgr;
	memset(m, 0, sizeof *m);
	pm_config *cfg = calloc(1, sizeof *cfg);
	if (!cfg)
		return 1;
	const char *config = NULL;
	int test = 0;
	for (int i = 1; i < argc && argv[i][0] == '-' && strcmp(argv[i], "--"); i++) {
		if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc)
			config = argv[++i];
		else if (!strcmp(argv[i], "-t") || !strcmp(argv[i], "--test"))
			test = 1;
		else if (!config)
			break; /* the one-liner's options */
	}
	/* --test may stand among the one-liner's options: the parser is not told of it. */
	char **args = calloc((size_t)argc + 1, sizeof *args);
	int nargs = 0;
	if (!args)
		return 1;
	for (int i = 1, cmd = 0; i < argc; i++) {
		cmd |= !strcmp(argv[i], "--");
		if (!cmd && (!strcmp(argv[i], "--test") || !strcmp(argv[i], "-t"))) {
			test = 1;
			continue;
		}
		args[nargs++] = argv[i];
	}
	char err[1024];
	int rc = config ? pm_config_load(cfg, config, err, sizeof err)
	                : pm_config_from_args(cfg, nargs, args, err, sizeof err);
	free(args);
	if (rc) {
		fprintf(stderr, "fcgikit pm: %s\n", err);
		if (!strncmp(err, "usage: ", 7))
			usage(stderr);
		free(cfg);
		return 2;
	}
	for (int i = 0; i < cfg->npools; i++)
		if (check_pool(&cfg->pools[i])) {
			pm_config_free(cfg);
			free(cfg);
			return 1;
		}
	if (test) {
		printf("fcgikit pm: configuration OK: %d pool%s\n", cfg->npools,
		       cfg->npools == 1 ? "" : "s");
		pm_config_free(cfg);
		free(cfg);
		return 0;
	}
	if (pm_log_open(cfg->log_file)) {
		fprintf(stderr, "fcgikit pm: log %s: %s\n", cfg->log_file, strerror(errno));
		return 1;
	}
	m->cfg = cfg;
	m->config_file = config ? realpath(config, NULL) : NULL;
	m->started_ms = fk_now_ms();
	m->notify = getenv("NOTIFY_SOCKET") != NULL;
	m->sig_kind = PM_OBJ_SIGNAL;
	m->status_kind = PM_OBJ_STATUS;
	signal(SIGPIPE, SIG_IGN);
	/* Preforked workers are the zygote's children; should it die, they become ours. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	sigset_t set;
	sigemptyset(&set);
	int sigs[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGCHLD};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(&set, sigs[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	m->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (m->sig_fd < 0 || fk_ev_init(&m->ev) || fk_ev_add(&m->ev, m->sig_fd, FK_EV_IN, &m->sig_kind)) {
		pm_log("error", "cannot set up the event loop: %s", strerror(errno));
		return 1;
	}
	pm_probe_init(&m->probe);
	for (int i = 0; i < cfg->npools; i++) {
		pm_pool *p;
		if (start_pool(m, &cfg->pools[i], &p)) {
			for (pm_pool *q = m->pools, *next; q; q = next) {
				next = q->next;
				pm_pool_free(q);
			}
			return 1;
		}
	}
	if (cfg->status_listen && pm_status_start(m))
		return 1;
	if (cfg->pid_file) {
		FILE *f = fopen(cfg->pid_file, "w");
		if (!f) {
			pm_log("error", "pid_file %s: %s", cfg->pid_file, strerror(errno));
			return 1;
		}
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
	}
	pm_log("notice", "fcgikit pm %s started (pid %d), %d pool%s", fcgi_version(), (int)getpid(),
	       cfg->npools, cfg->npools == 1 ? "" : "s");
	char *pid_file = cfg->pid_file ? strdup(cfg->pid_file) : NULL;
	cfg = NULL; /* a reload retires it: m->cfg is the configuration from here on */
	rc = run(m);
	pm_log("notice", "stopped");
	pm_status_stop(m);
	for (pm_pool *p = m->pools, *next; p; p = next) {
		next = p->next;
		pm_pool_free(p);
	}
	if (pid_file)
		unlink(pid_file); /* the one written at start: a reload does not move it */
	free(pid_file);
	pm_probe_close(&m->probe);
	fk_ev_close(&m->ev);
	close(m->sig_fd);
	pm_config_free(m->cfg);
	free(m->cfg);
	for (int i = 0; i < nretired; i++) {
		pm_config_free(retired[i]);
		free(retired[i]);
	}
	nretired = 0;
	free(m->config_file);
	return rc;
}
