/* pm.h — `fcgikit pm`, the process manager: its internal types.
 *
 * One process, one thread, one event loop (lib/ev). The manager owns each pool's listening
 * socket and hands it to every worker on fd 0, the way web servers and spawn-fcgi do, so any
 * FastCGI program can be a worker. It never touches the requests themselves, except to shed
 * load: when every worker is busy and the queue passes a bound, it accepts the surplus and
 * answers it at once (shed.c).
 *
 * What a worker is doing comes from its report page (lib/util/report.h) when it is built on
 * libfcgikit; otherwise from the kernel: the length of the listen queue and whether the
 * process sits in accept/poll (probe.c). Decisions — how many to spawn or stop, backoff and
 * the crash circuit, slow and overdue requests, shedding — are the pure functions of
 * policy.c; this layer only measures and acts.
 *
 *   pm.c      command line, the loop, signals, reload, stop
 *   pool.c    a pool's listener and workers: spawn, reap, tick
 *   spawn.c   fork + exec of one worker: fd 0, user, chroot, limits, environment
 *   shed.c    the manager's own answers when a pool is overloaded
 *   status.c  the status socket (FastCGI, JSON and OpenMetrics) and `fcgikit pm status`
 *   log.c     the log: stderr or a file, reopened on SIGUSR1; worker output lines
 *   config.c  the config file and the one-liner     policy.c  the decisions
 *   probe.c   listen queue and process state        render.c  status as JSON / text */
#ifndef FK_PM_H
#define FK_PM_H

#include <stdint.h>
#include <sys/types.h>

#include "codec/codec.h"
#include "ev/ev.h"
#include "pm/config.h"
#include "pm/policy.h"
#include "pm/probe.h"
#include "util/report.h"

struct fcgi_app;

/* Why a worker was asked to stop: decides whether its exit counts against the pool. */
enum pm_stop_why {
	PM_RUN = 0,
	PM_STOP_SCALE,    /* too many idle */
	PM_STOP_RECYCLE,  /* served max_requests */
	PM_STOP_RELOAD,   /* an older generation */
	PM_STOP_TIMEOUT,  /* a request past request_terminate_timeout */
	PM_STOP_SHUTDOWN, /* the manager stops */
	PM_STOP_FAILED,   /* a reload's new generation that did not come up */
};

typedef struct pm_pool pm_pool;

typedef struct pm_worker {
	pm_pool *pool;
	pid_t pid;
	int gen;
	int64_t started_ms;
	int64_t ready_ms;     /* 0 until ready */
	int64_t stop_ms;      /* when it was asked to stop (SIGTERM), 0 = running */
	int killed;           /* SIGKILL sent */
	enum pm_stop_why why;
	fk_report *page;      /* the shared report page (mapped), NULL if none */
	int reports;          /* the page carries the worker's magic: it reports */
	fk_report seen;       /* last consistent copy of the page */
	int out_fd;           /* read end of the worker's stdout+stderr, -1 when closed */
	char line[2048];      /* a partial output line */
	size_t linelen;
	int waiting;          /* sampled state, non-reporting: blocked in accept/poll */
	int64_t idle_since;   /* when it was last seen going idle */
	uint64_t slow_id;     /* the request (cur_id) already logged as slow */
	uint64_t requests;    /* served, as last seen */
	int kind;             /* PM_OBJ_WORKER_OUT: the ev item for out_fd points here */
	/* preload = yes: the zygote is a pm_worker too (zygote = 1), never counted or shown;
	 * its workers are forked on request and wait with pid 0 until it names them. */
	int zygote;
	int ctl;              /* zygote: the manager's end of the control pair, -1 when closed */
	int ctl_kind;         /* PM_OBJ_ZYGOTE */
	uint32_t serial;      /* a preforked worker's name in the zygote's answers */
	struct pm_worker *next;
} pm_worker;

typedef struct pm_shed_conn pm_shed_conn;

struct pm_pool {
	int kind;             /* PM_OBJ_LISTENER: the ev item for listen_fd (shedding) */
	pm_pool_conf *conf;
	struct pm_manager *m;
	int listen_fd;
	int is_unix;
	char *unix_path;      /* socket file we created, removed when the pool goes */
	int gen;              /* the generation being spawned now */
	int shedding;         /* the manager takes the surplus off listen_fd */
	int wake_on_conn;     /* ondemand with nobody free: a new connection spawns at once */
	int watching;         /* listen_fd is in the loop (for either of the two above) */
	pm_worker *workers;
	pm_scale_state scale;
	pm_health health;
	int ever_spawned;
	/* counters for status */
	uint64_t requests_done; /* from workers that exited */
	uint64_t respawns, slow, killed, shed, spawned;
	int queue;              /* last sampled listen queue, -1 unknown */
	/* reload: the next configuration, waiting for its generation to come up */
	pm_pool_conf *next_conf;
	int next_fd;            /* its listener when the address changed, else -1 */
	int next_is_unix;
	char *next_unix_path;
	int removed;            /* not in the new configuration: draining, then freed */
	int reload_spawns;      /* workers started for the new generation so far */
	int reload_proven;      /* a new worker has been ready or ended cleanly after serving */
	uint32_t next_serial;
	pm_shed_conn *shed_conns;
	int nshed_conns;
	struct pm_pool *next;
};

typedef struct pm_manager {
	pm_config *cfg;
	pm_config *next_cfg;    /* a reload in progress */
	int64_t reload_started;
	char reload_error[256]; /* why the reload in progress failed, "" while it can go on */
	char *config_file;      /* NULL for the one-liner */
	pm_pool *pools;
	fk_ev ev;
	int sig_fd;             /* signalfd */
	int sig_kind;           /* PM_OBJ_SIGNAL */
	pm_probe probe;
	struct fcgi_app *status_app;
	int status_kind;        /* PM_OBJ_STATUS */
	int64_t started_ms;
	int reloads;
	int stopping;           /* 1 graceful, 2 immediate */
	int64_t stop_deadline;
	int notify;             /* systemd NOTIFY_SOCKET present */
	int ready_sent;
	int exit_status;
} pm_manager;

enum { PM_OBJ_LISTENER = 1, PM_OBJ_WORKER_OUT, PM_OBJ_SIGNAL, PM_OBJ_STATUS, PM_OBJ_SHED,
       PM_OBJ_ZYGOTE };

/* log.c */
int pm_log_open(const char *file);  /* NULL = stderr; 0 or -1 (errno) */
void pm_log_reopen(void);
void pm_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pm_log_worker_line(const char *pool, pid_t pid, const char *line, size_t len);

/* spawn.c: forks and execs one worker of conf on listen_fd; the report page's descriptor
 * and the output pipe are the caller's. Returns the pid or -1 (logged). */
pid_t pm_spawn(const pm_pool_conf *conf, int listen_fd, int report_fd, int out_fd, int zygote_fd);
/* Opens a pool's listening socket; on a Unix path sets owner, group and mode. -1 on error,
 * logged. *unix_path receives a malloc'd path to unlink later, or NULL. */
int pm_listen(const pm_pool_conf *conf, int *is_unix, char **unix_path);

/* pool.c */
pm_pool *pm_pool_new(pm_manager *m, pm_pool_conf *conf, int listen_fd, int is_unix,
                     char *unix_path);
void pm_pool_free(pm_pool *p);
void pm_pool_tick(pm_pool *p, int64_t now);
void pm_pool_scale(pm_pool *p, int64_t now);
int pm_pool_spawn(pm_pool *p, int gen, const pm_pool_conf *conf, int fd, int64_t now);
void pm_worker_stop(pm_worker *w, enum pm_stop_why why, int64_t now);
void pm_worker_kill(pm_worker *w); /* SIGKILL, once; never to a pid not yet known */
void pm_zygote_io(pm_worker *z, int64_t now);
void pm_worker_output(pm_worker *w);
int pm_pool_reap(pm_manager *m, pid_t pid, int status, int64_t now);
void pm_pool_counts(const pm_pool *p, int gen, int *live, int *starting, int *idle, int *busy);
int pm_pool_initial(const pm_pool_conf *c);
void pm_worker_read_page(pm_worker *w);
int pm_worker_busy(const pm_worker *w);

/* shed.c */
void pm_shed_update(pm_pool *p, int want);
void pm_listen_watch(pm_pool *p); /* puts listen_fd in the loop or out, as the flags say */
void pm_shed_accept(pm_pool *p);
void pm_shed_io(pm_shed_conn *c, unsigned events);
void pm_shed_sweep(pm_pool *p, int64_t now);
void pm_shed_free_all(pm_pool *p);

/* status.c */
int pm_status_start(pm_manager *m);
void pm_status_process(pm_manager *m);
void pm_status_stop(pm_manager *m);
int pm_status_render(pm_manager *m, const char *format, char **out, size_t *len);
int pm_status_cmd(int argc, char **argv);

#endif
