/* config.h — `fcgikit pm` configuration: the parsed form of a config file or of the one-liner
 * command line. Pure: parsing touches no process state (no user or group lookup, no socket);
 * names are resolved when a pool is started, so a config can be checked anywhere
 * (`fcgikit pm --test CONFIG`).
 *
 * File format (INI-style, like php-fpm's pool files):
 *
 *   ; comment            # comment too
 *   [global]             settings of the manager itself (optional section)
 *   log = /var/log/fcgikit-pm.log     (default: stderr)
 *   status_listen = unix:/run/fcgikit-pm.sock
 *   status_mode = 0660
 *   stop_timeout = 30s
 *   pid_file = /run/fcgikit-pm.pid
 *
 *   [www]                one section per pool; the name is [A-Za-z0-9_.-]{1,63}
 *   listen = unix:/run/www.sock   (or tcp:HOST:PORT, HOST:PORT, [::1]:PORT, :PORT)
 *   command = /usr/bin/php-cgi8.2 -d display_errors=0
 *   pm = dynamic                  (static | dynamic | ondemand)
 *   ...
 *
 * Values: strings run to the end of the line, trimmed; a value in double quotes keeps its
 * spaces and understands \" and \\. Durations take a unit: 250ms, 5s, 2m, 1h (a bare number
 * is seconds). Sizes take K, M, G (powers of 1024; bare = bytes). Booleans: yes/no, on/off,
 * true/false, 1/0. Modes are octal. `command` is split on spaces, with double quotes
 * grouping words. `env[NAME] = value` adds a variable; `pass_env = A B C` copies variables
 * from the manager's own environment. `include = GLOB` reads more files (depth limit 8).
 *
 * Every error names the file, the line and the reason, in the form
 *   FILE:LINE: REASON
 * and the parse stops at the first error. */
#ifndef FK_PM_CONFIG_H
#define FK_PM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

enum pm_mode { PM_STATIC, PM_DYNAMIC, PM_ONDEMAND };
enum pm_shed { PM_SHED_503, PM_SHED_OVERLOADED };

#define PM_NAME_MAX 64
#define PM_MAX_POOLS 64
#define PM_MAX_ARGS 64
#define PM_MAX_ENV 128
#define PM_MAX_CHILDREN_LIMIT 4096
/* `rlimit_* = unlimited`: set the limit to RLIM_INFINITY. */
#define PM_RLIMIT_UNLIMITED INT64_MAX

typedef struct pm_pool_conf {
	char name[PM_NAME_MAX];
	const char *file; /* where the section began, for messages (owned by the config) */
	int line;

	/* Listening socket. */
	char *listen;       /* address string as fk_addr_parse reads it; required */
	char *listen_owner; /* Unix socket owner/group names or numeric ids; NULL = unchanged */
	char *listen_group;
	int listen_mode;     /* Unix socket mode; default 0660 */
	int backlog;         /* default 511 */
	char *allowed_clients; /* FCGI_WEB_SERVER_ADDRS form, NULL = anyone */

	/* The program. */
	char **argv;  /* command split into words, NULL-terminated; argv[0] must be absolute */
	int argc;
	char *user;   /* NULL = the manager's own */
	char *group;  /* NULL = the user's primary group */
	char *chroot; /* NULL = none */
	char *chdir;  /* NULL = "/" */
	char **env;   /* "NAME=value" strings, NULL-terminated; the worker's whole environment
	               * besides what the manager adds (FCGI_WEB_SERVER_ADDRS, the report fd) */
	int nenv;
	int clear_env;  /* default yes: the worker gets env only; no: the manager's whole
	                 * environment, with env set over it. pass_env names are looked up
	                 * when the config is parsed and land in env. */
	int64_t rlimit_files;  /* -1 = leave as is; PM_RLIMIT_UNLIMITED for all three */
	int64_t rlimit_core;   /* bytes; -1 = leave as is */
	int64_t rlimit_memory; /* address space, bytes; -1 = leave as is */

	/* Scaling. */
	enum pm_mode mode;      /* default dynamic */
	int max_children;       /* static: the count; others: the ceiling. default 5 */
	int start_servers;      /* dynamic: at start; default min_spare + (max_spare-min_spare)/2 */
	int min_spare;          /* dynamic; default 1 */
	int max_spare;          /* dynamic; default 3 */
	int spawn_rate;         /* dynamic/ondemand: most new workers per second; default 32 */
	int64_t idle_timeout_ms; /* ondemand: stop a worker idle this long; default 10s */

	/* Health. */
	uint64_t max_requests;          /* recycle after this many; 0 = never */
	int64_t request_timeout_ms;     /* kill past this; 0 = never */
	int64_t slow_request_ms;        /* log past this; 0 = never */
	int64_t kill_grace_ms;          /* SIGTERM..SIGKILL; default 3s */
	int64_t startup_timeout_ms;     /* a new worker must be ready within; default 10s */
	int crash_limit;                /* circuit opens after this many quick exits in a row;
	                                 * default 10 */
	int64_t circuit_reset_ms;       /* retry an open circuit after; default 60s */

	/* Load shedding. */
	int shed_queue;         /* shed when all busy and the listen queue passes this; 0 = off */
	enum pm_shed shed_response; /* default PM_SHED_503 */

	/* Worker output. */
	int catch_output; /* capture stdout/stderr into the log; default yes */

	/* Preload, then fork: the command is started once and, having loaded what its workers
	 * share, calls fcgi_app_prefork(); the manager then has it fork each worker (copy-on-
	 * write) instead of starting the command again. libfcgikit programs only. Default no. */
	int preload;
} pm_pool_conf;

typedef struct pm_config {
	char *log_file;        /* NULL = stderr */
	char *status_listen;   /* NULL = no status socket */
	int status_mode;       /* default 0660 */
	int64_t stop_timeout_ms; /* graceful stop bound; default 30s */
	char *pid_file;        /* NULL = none */
	pm_pool_conf *pools;   /* npools entries, in file order */
	int npools;
	char **files;          /* every file read (owned), for messages */
	int nfiles;
} pm_config;

/* Fills *c with the defaults above and no pools. */
void pm_config_init(pm_config *c);

/* Parses FILE (and its includes). 0 on success; otherwise -1 with "FILE:LINE: REASON" in err
 * (always NUL-terminated) and *c left empty. On success free with pm_config_free. */
int pm_config_load(pm_config *c, const char *file, char *err, size_t errlen);

/* Parses TEXT (len bytes, need not be NUL-terminated) as if read from a file named NAME;
 * `include` is refused here. Same contract as pm_config_load. */
int pm_config_parse(pm_config *c, const char *name, const char *text, size_t len, char *err,
                    size_t errlen);

/* The one-liner: `--listen ADDR --workers N [options] -- COMMAND ARGS...` (argv as given
 * after the word `pm`, options parsed in order; see fcgikit-pm(1)). Builds one pool named
 * "default", static with N workers unless --min-spare/--max-spare/--ondemand say otherwise.
 * Same contract as pm_config_load; usage errors start with "usage: ". */
int pm_config_from_args(pm_config *c, int argc, char **argv, char *err, size_t errlen);

/* Checks the whole config after parsing (required keys, ranges, min<=max, no two pools on one
 * address, at most PM_MAX_POOLS); called by the three above. 0 or -1 with err. */
int pm_config_validate(pm_config *c, char *err, size_t errlen);

void pm_config_free(pm_config *c);

/* Parsers shared with the gateway's config: return 0 or -1. */
int pm_parse_duration_ms(const char *s, int64_t *out);
int pm_parse_size(const char *s, int64_t *out);
int pm_parse_bool(const char *s, int *out);

const char *pm_mode_name(enum pm_mode m);

#endif
