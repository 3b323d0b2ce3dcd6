/* config.c — `fcgikit pm` configuration: the INI-style file (with includes), the one-liner
 * command line, and the checks both go through. The format and the meaning of every field are
 * in config.h and fcgikit-pm.conf(5).
 *
 * Every value is set through one table-driven setter (pm_set), whatever it came from, so a
 * key and its command-line option accept exactly the same values and fail with the same
 * reasons; only the prefix of the message differs ("FILE:LINE: " or "usage: "). */
#include "pm/config.h"

#include <errno.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fcgikit.h"
#include "util/addr.h"
#include "util/alloc.h"
#include "util/scaled.h"

#define PM_LINE_MAX 4096
#define PM_FILE_MAX (1024 * 1024)
#define PM_INCLUDE_DEPTH 8
/* A glob over a big directory must not make us read without end. */
#define PM_MAX_FILES 256
/* Beyond a month a timeout is a typo; the bound also keeps now + timeout far from overflow
 * wherever the manager adds one to a clock. */
#define PM_DUR_MAX ((int64_t)30 * 24 * 3600 * 1000)
#define PM_RLIMIT_FILES_MAX ((int64_t)1 << 30)

/* ---------------------------------------------------------------- values */

/* clang-format off */
static const fk_unit pm_dur_units[] = {
	{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}, {NULL, 0},
};

static const fk_unit pm_size_units[] = {
	{"", 1},
	{"K", (uint64_t)1 << 10}, {"k", (uint64_t)1 << 10},
	{"M", (uint64_t)1 << 20}, {"m", (uint64_t)1 << 20},
	{"G", (uint64_t)1 << 30}, {"g", (uint64_t)1 << 30},
	{"T", (uint64_t)1 << 40}, {"t", (uint64_t)1 << 40},
	{NULL, 0},
};
/* clang-format on */

static int pm_is_digit(char ch) { return ch >= '0' && ch <= '9'; }

/* fk_scan_scaled within int64_t: 0, -1 for bad syntax, -2 when it does not fit (the
 * callers word the two differently). */
static int pm_scan_scaled(const char *s, const fk_unit *units, int64_t *out)
{
	uint64_t v;
	int rc = fk_scan_scaled(s, units, &v);
	if (rc)
		return rc;
	if (v > (uint64_t)INT64_MAX)
		return -2;
	*out = (int64_t)v;
	return 0;
}

int pm_parse_duration_ms(const char *s, int64_t *out)
{
	int64_t v;
	if (pm_scan_scaled(s, pm_dur_units, &v))
		return -1;
	*out = v;
	return 0;
}

int pm_parse_size(const char *s, int64_t *out)
{
	int64_t v;
	if (pm_scan_scaled(s, pm_size_units, &v))
		return -1;
	*out = v;
	return 0;
}

int pm_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = {"yes", "on", "true", "1"};
	static const char *const no[] = {"no", "off", "false", "0"};
	if (!s)
		return -1;
	for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = 1;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

const char *pm_mode_name(enum pm_mode m)
{
	switch (m) {
	case PM_STATIC:
		return "static";
	case PM_DYNAMIC:
		return "dynamic";
	case PM_ONDEMAND:
		return "ondemand";
	}
	return "unknown";
}

/* Decimal digits only: a sign or a unit on a count is a mistake worth reporting. */
static int pm_scan_u64(const char *s, uint64_t *out)
{
	if (!pm_is_digit(*s))
		return -1;
	uint64_t v = 0;
	for (; pm_is_digit(*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -2;
		v = v * 10 + d;
	}
	if (*s)
		return -1;
	*out = v;
	return 0;
}

static int pm_scan_i64(const char *s, int64_t *out)
{
	uint64_t v;
	int rc = pm_scan_u64(s, &v);
	if (rc)
		return rc;
	if (v > INT64_MAX)
		return -2;
	*out = (int64_t)v;
	return 0;
}

static int pm_scan_mode(const char *s, int *out)
{
	int v = 0;
	size_t n = 0;
	for (; *s >= '0' && *s <= '7'; s++, n++) {
		v = v * 8 + (*s - '0');
		if (v > 07777)
			return -1;
	}
	if (!n || *s)
		return -1;
	*out = v;
	return 0;
}

/* The largest unit that shows the value exactly, so ranges read the way they are written. */
static const char *pm_fmt_dur(int64_t ms, char *buf, size_t size)
{
	if (ms == 0)
		snprintf(buf, size, "0");
	else if (ms % (3600 * 1000) == 0)
		snprintf(buf, size, "%lldh", (long long)(ms / (3600 * 1000)));
	else if (ms % (60 * 1000) == 0)
		snprintf(buf, size, "%lldm", (long long)(ms / (60 * 1000)));
	else if (ms % 1000 == 0)
		snprintf(buf, size, "%llds", (long long)(ms / 1000));
	else
		snprintf(buf, size, "%lldms", (long long)ms);
	return buf;
}

static int pm_env_name_ok(const char *s, size_t n)
{
	if (!n || pm_is_digit(s[0]))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!(ch == '_' || pm_is_digit(ch) || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= 'a' && ch <= 'z')))
			return 0;
	}
	return 1;
}

static int pm_pool_name_ok(const char *s, size_t n)
{
	if (!n || n >= PM_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!(ch == '_' || ch == '.' || ch == '-' || pm_is_digit(ch) ||
		      (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')))
			return 0;
	}
	return 1;
}

/* The forms fk_addr_parse reads, checked by shape only: resolving a host name here would make
 * `--test` depend on the resolver of the machine it runs on. */
static int pm_addr_ok(const char *s)
{
	if (!strncmp(s, "unix:", 5) || s[0] == '/') {
		const char *path = s[0] == '/' ? s : s + 5;
		size_t n = strlen(path);
		return n > 0 && n < sizeof(((struct sockaddr_un *)0)->sun_path);
	}
	if (!strncmp(s, "tcp:", 4))
		s += 4;
	const char *host = s, *host_end, *port;
	if (s[0] == '[') {
		host = s + 1;
		host_end = strchr(host, ']');
		if (!host_end || host_end == host || host_end[1] != ':')
			return 0;
		port = host_end + 2;
	} else {
		host_end = strrchr(s, ':');
		if (!host_end)
			return 0;
		port = host_end + 1;
	}
	if (host_end - host >= 256)
		return 0;
	for (const char *q = host; q < host_end; q++)
		if (*q == ' ' || *q == '\t' || *q == '/' || *q == '[' || *q == ']' ||
		    (*q == ':' && s[0] != '['))
			return 0;
	uint64_t v;
	if (strlen(port) > 5 || pm_scan_u64(port, &v) || v < 1 || v > 65535)
		return 0;
	return 1;
}

/* "unix:/x" and "/x" are one socket, as are "tcp:h:p" and "h:p". */
static const char *pm_addr_key(const char *s)
{
	if (!strncmp(s, "unix:", 5))
		return s + 5;
	if (!strncmp(s, "tcp:", 4))
		return s + 4;
	return s;
}

/* ---------------------------------------------------------------- keys */

enum pm_type {
	PM_T_STR,     /* any non-empty string */
	PM_T_PATH,    /* an absolute path */
	PM_T_ADDR,    /* a listen address */
	PM_T_CLIENTS, /* an allow-list */
	PM_T_INT,     /* int, min..max */
	PM_T_U64,     /* uint64_t, any */
	PM_T_DUR,     /* int64_t ms, min..max */
	PM_T_MODE,    /* int, octal */
	PM_T_BOOL,    /* int */
	PM_T_RLIM_N,  /* int64_t count, min..max, or unlimited */
	PM_T_RLIM_SZ, /* int64_t bytes, at least min, or unlimited */
	PM_T_PM,      /* enum pm_mode */
	PM_T_SHED,    /* enum pm_shed */
	PM_T_CMD,     /* argv/argc, split into words */
	PM_T_PASSENV, /* names, resolved at the end of the pool */
	PM_T_INCLUDE,
};

typedef struct pm_key {
	const char *name;
	enum pm_type type;
	size_t off;
	int64_t min, max;
	int canon; /* an alias points at the spelling it stands for: one slot for duplicates */
} pm_key;

#define PM_DEF(t, f, lo, hi) t, offsetof(pm_pool_conf, f), lo, hi, -1
#define PM_GDEF(t, f, lo, hi) t, offsetof(pm_config, f), lo, hi

/* clang-format off */
static const pm_key pm_pool_keys[] = {
	{"listen",                    PM_DEF(PM_T_ADDR,     listen,             0, 0)},
	{"listen.owner",              PM_DEF(PM_T_STR,      listen_owner,       0, 0)},
	{"listen.group",              PM_DEF(PM_T_STR,      listen_group,       0, 0)},
	{"listen.mode",               PM_DEF(PM_T_MODE,     listen_mode,        0, 0)},
	{"listen.backlog",            PM_DEF(PM_T_INT,      backlog,            1, 65535)},
	{"listen.allowed_clients",    PM_DEF(PM_T_CLIENTS,  allowed_clients,    0, 0)},
	{"command",                   PM_DEF(PM_T_CMD,      argv,               0, 0)},
	{"user",                      PM_DEF(PM_T_STR,      user,               0, 0)},
	{"group",                     PM_DEF(PM_T_STR,      group,              0, 0)},
	{"chroot",                    PM_DEF(PM_T_PATH,     chroot,             0, 0)},
	{"chdir",                     PM_DEF(PM_T_PATH,     chdir,              0, 0)},
	{"pass_env",                  PM_DEF(PM_T_PASSENV,  env,                0, 0)},
	{"clear_env",                 PM_DEF(PM_T_BOOL,     clear_env,          0, 0)},
	{"rlimit_files",              PM_DEF(PM_T_RLIM_N,   rlimit_files,       1, PM_RLIMIT_FILES_MAX)},
	{"rlimit_core",               PM_DEF(PM_T_RLIM_SZ,  rlimit_core,        0, 0)},
	{"rlimit_memory",             PM_DEF(PM_T_RLIM_SZ,  rlimit_memory,      (int64_t)1 << 20, 0)},
	{"pm",                        PM_DEF(PM_T_PM,       mode,               0, 0)},
	{"pm.max_children",           PM_DEF(PM_T_INT,      max_children,       1, PM_MAX_CHILDREN_LIMIT)},
	{"pm.start_servers",          PM_DEF(PM_T_INT,      start_servers,      1, PM_MAX_CHILDREN_LIMIT)},
	{"pm.min_spare_servers",      PM_DEF(PM_T_INT,      min_spare,          1, PM_MAX_CHILDREN_LIMIT)},
	{"pm.max_spare_servers",      PM_DEF(PM_T_INT,      max_spare,          1, PM_MAX_CHILDREN_LIMIT)},
	{"pm.spawn_rate",             PM_DEF(PM_T_INT,      spawn_rate,         1, 1024)},
	{"pm.process_idle_timeout",   PM_DEF(PM_T_DUR,      idle_timeout_ms,    0, PM_DUR_MAX)},
	{"pm.max_requests",           PM_DEF(PM_T_U64,      max_requests,       0, 0)},
	{"request_terminate_timeout", PM_DEF(PM_T_DUR,      request_timeout_ms, 0, PM_DUR_MAX)},
	{"request_slowlog_timeout",   PM_DEF(PM_T_DUR,      slow_request_ms,    0, PM_DUR_MAX)},
	{"kill_grace",                PM_DEF(PM_T_DUR,      kill_grace_ms,      0, PM_DUR_MAX)},
	{"startup_timeout",           PM_DEF(PM_T_DUR,      startup_timeout_ms, 1, PM_DUR_MAX)},
	{"crash_limit",               PM_DEF(PM_T_INT,      crash_limit,        1, 10000)},
	{"circuit_reset",             PM_DEF(PM_T_DUR,      circuit_reset_ms,   1, PM_DUR_MAX)},
	{"shed_queue",                PM_DEF(PM_T_INT,      shed_queue,         0, 65535)},
	{"shed_response",             PM_DEF(PM_T_SHED,     shed_response,      0, 0)},
	{"catch_workers_output",      PM_DEF(PM_T_BOOL,     catch_output,       0, 0)},
	{"preload",                   PM_DEF(PM_T_BOOL,     preload,            0, 0)},
};

static const pm_key pm_global_keys[] = {
	{"log",                       PM_GDEF(PM_T_STR,     log_file,           0, 0), -1},
	{"error_log",                 PM_GDEF(PM_T_STR,     log_file,           0, 0), 0},
	{"status_listen",             PM_GDEF(PM_T_ADDR,    status_listen,      0, 0), -1},
	{"status_mode",               PM_GDEF(PM_T_MODE,    status_mode,        0, 0), -1},
	{"stop_timeout",              PM_GDEF(PM_T_DUR,     stop_timeout_ms,    0, PM_DUR_MAX), -1},
	{"process_control_timeout",   PM_GDEF(PM_T_DUR,     stop_timeout_ms,    0, PM_DUR_MAX), 4},
	{"pid_file",                  PM_GDEF(PM_T_STR,     pid_file,           0, 0), -1},
	{"pid",                       PM_GDEF(PM_T_STR,     pid_file,           0, 0), 6},
	{"include",                   PM_T_INCLUDE, 0, 0, 0, -1},
};
/* clang-format on */

#define PM_NPOOL_KEYS ((int)(sizeof pm_pool_keys / sizeof *pm_pool_keys))
#define PM_NGLOBAL_KEYS ((int)(sizeof pm_global_keys / sizeof *pm_global_keys))

static int pm_find_key(const pm_key *keys, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(keys[i].name, name))
			return i;
	return -1;
}

/* ---------------------------------------------------------------- parser state */

typedef struct pm_parser {
	pm_config *c;
	char *err;
	size_t errlen;
	const char *file; /* NULL: the command line, and messages start with "usage: " */
	int line;         /* 0: the message is about the whole file */
	int depth;
	int allow_include;
	int pool; /* the section being read: an index into c->pools, or -1 for [global] */
	const char *gseen_file[PM_NGLOBAL_KEYS];
	int gseen_line[PM_NGLOBAL_KEYS];
	int pseen_line[PM_NPOOL_KEYS]; /* in the current pool; 0 = not yet */
	char *pass[PM_MAX_ENV];        /* pass_env names of the current pool, until its end */
	int npass;
} pm_parser;

__attribute__((format(printf, 4, 0))) static void
pm_vformat(char *err, size_t errlen, const char *prefix, const char *fmt, va_list ap)
{
	if (!err || !errlen)
		return;
	size_t n = strlen(prefix);
	if (n >= errlen)
		n = errlen - 1;
	memcpy(err, prefix, n);
	err[n] = 0;
	vsnprintf(err + n, errlen - n, fmt, ap);
}

__attribute__((format(printf, 2, 3))) static int pm_fail(pm_parser *p, const char *fmt, ...)
{
	char prefix[PM_LINE_MAX + 64];
	if (!p->file)
		snprintf(prefix, sizeof prefix, "usage: ");
	else if (p->line > 0)
		snprintf(prefix, sizeof prefix, "%s:%d: ", p->file, p->line);
	else
		snprintf(prefix, sizeof prefix, "%s: ", p->file);
	va_list ap;
	va_start(ap, fmt);
	pm_vformat(p->err, p->errlen, prefix, fmt, ap);
	va_end(ap);
	return -1;
}

static int pm_oom(pm_parser *p) { return pm_fail(p, "out of memory"); }

static char *pm_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

static void pm_strv_free(char **v, int n)
{
	if (!v)
		return;
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void pm_pool_defaults(pm_pool_conf *pc)
{
	memset(pc, 0, sizeof *pc);
	pc->listen_mode = 0660;
	pc->backlog = 511;
	pc->clear_env = 1;
	pc->rlimit_files = -1;
	pc->rlimit_core = -1;
	pc->rlimit_memory = -1;
	pc->mode = PM_DYNAMIC;
	pc->max_children = 5;
	pc->start_servers = 0; /* worked out by validate from the spare bounds it ends up with */
	pc->min_spare = 1;
	pc->max_spare = 3;
	pc->spawn_rate = 32;
	pc->idle_timeout_ms = 10 * 1000;
	pc->kill_grace_ms = 3 * 1000;
	pc->startup_timeout_ms = 10 * 1000;
	pc->crash_limit = 10;
	pc->circuit_reset_ms = 60 * 1000;
	pc->shed_response = PM_SHED_503;
	pc->catch_output = 1;
}

static void pm_pool_release(pm_pool_conf *pc)
{
	free(pc->listen);
	free(pc->listen_owner);
	free(pc->listen_group);
	free(pc->allowed_clients);
	pm_strv_free(pc->argv, pc->argc);
	free(pc->user);
	free(pc->group);
	free(pc->chroot);
	free(pc->chdir);
	pm_strv_free(pc->env, pc->nenv);
}

void pm_config_init(pm_config *c)
{
	memset(c, 0, sizeof *c);
	c->status_mode = 0660;
	c->stop_timeout_ms = 30 * 1000;
}

void pm_config_free(pm_config *c)
{
	for (int i = 0; i < c->npools; i++)
		pm_pool_release(&c->pools[i]);
	free(c->pools);
	pm_strv_free(c->files, c->nfiles);
	free(c->log_file);
	free(c->status_listen);
	free(c->pid_file);
	pm_config_init(c);
}

static void pm_parser_init(pm_parser *p, pm_config *c, char *err, size_t errlen)
{
	memset(p, 0, sizeof *p);
	p->c = c;
	p->err = err;
	p->errlen = errlen;
	p->pool = -1;
	if (err && errlen)
		err[0] = 0;
}

static void pm_parser_release(pm_parser *p)
{
	for (int i = 0; i < p->npass; i++)
		free(p->pass[i]);
	p->npass = 0;
}

/* The index of the new entry of c->files, which lives as long as the config. */
static int pm_add_file(pm_parser *p, const char *path)
{
	pm_config *c = p->c;
	if (c->nfiles >= PM_MAX_FILES)
		return pm_fail(p, "more than %d config files", PM_MAX_FILES);
	char **v = realloc(c->files, (size_t)(c->nfiles + 1) * sizeof *v);
	if (!v)
		return pm_oom(p);
	c->files = v;
	if (!(v[c->nfiles] = pm_strdup(path)))
		return pm_oom(p);
	return c->nfiles++;
}

/* ---------------------------------------------------------------- environment */

static int pm_env_find(const pm_pool_conf *pc, const char *name, size_t n)
{
	for (int i = 0; i < pc->nenv; i++)
		if (!strncmp(pc->env[i], name, n) && pc->env[i][n] == '=')
			return i;
	return -1;
}

static int pm_env_add(pm_parser *p, pm_pool_conf *pc, const char *name, size_t n, const char *value)
{
	size_t vn = strlen(value);
	char *kv = malloc(n + vn + 2);
	if (!kv)
		return pm_oom(p);
	memcpy(kv, name, n);
	kv[n] = '=';
	memcpy(kv + n + 1, value, vn + 1);
	char **v = realloc(pc->env, (size_t)(pc->nenv + 2) * sizeof *v);
	if (!v) {
		free(kv);
		return pm_oom(p);
	}
	pc->env = v;
	v[pc->nenv++] = kv;
	v[pc->nenv] = NULL;
	return 0;
}

static int pm_env_room(pm_parser *p, const pm_pool_conf *pc, int more)
{
	if (pc->nenv + p->npass + more > PM_MAX_ENV)
		return pm_fail(p, "more than %d environment variables in pool [%s]", PM_MAX_ENV,
		               pc->name);
	return 0;
}

/* `name` is "NAME" (with n its length) and value the variable's; env[NAME] is one key, so a
 * second one is a duplicate like any other. */
static int pm_set_env(pm_parser *p, pm_pool_conf *pc, const char *shown, const char *name, size_t n,
                      const char *value)
{
	if (!pm_env_name_ok(name, n))
		return pm_fail(p, "invalid variable name in '%s'", shown);
	if (pm_env_find(pc, name, n) >= 0)
		return pm_fail(p, "duplicate variable %.*s in pool [%s]", (int)n, name, pc->name);
	if (pm_env_room(p, pc, 1))
		return -1;
	return pm_env_add(p, pc, name, n, value);
}

static int pm_add_pass_env(pm_parser *p, pm_pool_conf *pc, const char *shown, const char *list)
{
	const char *s = list;
	int any = 0;
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if (!*s)
			break;
		const char *e = s;
		while (*e && *e != ' ' && *e != '\t' && *e != ',')
			e++;
		size_t n = (size_t)(e - s);
		if (!pm_env_name_ok(s, n))
			return pm_fail(p, "%s: invalid variable name '%.*s'", shown, (int)n, s);
		any = 1;
		int dup = 0;
		for (int i = 0; i < p->npass && !dup; i++)
			dup = strlen(p->pass[i]) == n && !memcmp(p->pass[i], s, n);
		if (!dup) {
			if (pm_env_room(p, pc, 1))
				return -1;
			char *name = malloc(n + 1);
			if (!name)
				return pm_oom(p);
			memcpy(name, s, n);
			name[n] = 0;
			p->pass[p->npass++] = name;
		}
		s = e;
	}
	if (!any)
		return pm_fail(p, "%s needs a value", shown);
	return 0;
}

/* pass_env is resolved when its pool ends, so that env[NAME] wins over it whichever line
 * comes first: the explicit value is what the writer meant. */
static int pm_end_section(pm_parser *p)
{
	int rc = 0;
	if (p->pool >= 0) {
		pm_pool_conf *pc = &p->c->pools[p->pool];
		for (int i = 0; i < p->npass && !rc; i++) {
			size_t n = strlen(p->pass[i]);
			const char *v = getenv(p->pass[i]);
			if (v && pm_env_find(pc, p->pass[i], n) < 0)
				rc = pm_env_add(p, pc, p->pass[i], n, v);
		}
	}
	pm_parser_release(p);
	p->pool = -1;
	return rc;
}

/* ---------------------------------------------------------------- setting a value */

/* Splits like a shell would for the simple cases people write: blanks separate words, double
 * quotes group (also inside a word: --opt="a b"), \" and \\ inside quotes. */
static int pm_set_command(pm_parser *p, pm_pool_conf *pc, const char *shown, const char *s)
{
	char *buf = malloc(strlen(s) + 1);
	if (!buf)
		return pm_oom(p);
	char *words[PM_MAX_ARGS];
	int n = 0, rc = 0;
	char *w = buf;
	const char *q = s;
	for (;;) {
		while (*q == ' ' || *q == '\t')
			q++;
		if (!*q)
			break;
		if (n == PM_MAX_ARGS) {
			rc = pm_fail(p, "%s has more than %d words", shown, PM_MAX_ARGS);
			goto out;
		}
		words[n++] = w;
		while (*q && *q != ' ' && *q != '\t') {
			if (*q != '"') {
				*w++ = *q++;
				continue;
			}
			for (q++; *q != '"'; q++) {
				if (!*q) {
					rc = pm_fail(p, "%s: unterminated quote", shown);
					goto out;
				}
				if (*q == '\\') {
					if (q[1] != '"' && q[1] != '\\') {
						rc = pm_fail(p,
						             "%s: unknown escape '\\%c' (only \\\" "
						             "and \\\\)",
						             shown, q[1] ? q[1] : ' ');
						goto out;
					}
					q++;
				}
				*w++ = *q;
			}
			q++;
		}
		*w++ = 0;
	}
	if (!n) {
		rc = pm_fail(p, "%s needs a value", shown);
		goto out;
	}
	char **argv = calloc((size_t)n + 1, sizeof *argv);
	if (!argv) {
		rc = pm_oom(p);
		goto out;
	}
	for (int i = 0; i < n; i++) {
		if (!(argv[i] = pm_strdup(words[i]))) {
			pm_strv_free(argv, i);
			rc = pm_oom(p);
			goto out;
		}
	}
	pm_strv_free(pc->argv, pc->argc);
	pc->argv = argv;
	pc->argc = n;
out:
	free(buf);
	return rc;
}

static int pm_set_string(pm_parser *p, char **field, const char *v)
{
	char *d = pm_strdup(v);
	if (!d)
		return pm_oom(p);
	free(*field);
	*field = d;
	return 0;
}

/* The range message shows what was written, not what it parsed to: for an overflow there is
 * nothing else to show. */
static int pm_set(pm_parser *p, const pm_key *k, void *base, const char *shown, const char *v)
{
	void *field = (char *)base + k->off;
	char lo[32], hi[32];
	int64_t x;
	uint64_t u;
	int rc;

	if (!*v && k->type != PM_T_PASSENV)
		return pm_fail(p, "%s needs a value", shown);
	switch (k->type) {
	case PM_T_STR:
		return pm_set_string(p, field, v);
	case PM_T_PATH:
		if (v[0] != '/')
			return pm_fail(p, "%s must be an absolute path, got '%s'", shown, v);
		return pm_set_string(p, field, v);
	case PM_T_ADDR:
		if (!pm_addr_ok(v))
			return pm_fail(p,
			               "%s: invalid address '%s' (unix:PATH, /PATH, HOST:PORT, "
			               "[IPV6]:PORT or :PORT)",
			               shown, v);
		return pm_set_string(p, field, v);
	case PM_T_CLIENTS: {
		fk_net *nets;
		size_t n;
		rc = fk_netlist_parse(v, &nets, &n);
		if (rc == FCGI_ENOMEM)
			return pm_oom(p);
		if (rc != FCGI_OK)
			return pm_fail(p,
			               "%s: invalid address list '%s' (IPv4 or IPv6 addresses "
			               "or networks like 10.0.0.0/8)",
			               shown, v);
		fk_free(nets);
		return pm_set_string(p, field, v);
	}
	case PM_T_INT:
		rc = pm_scan_i64(v, &x);
		if (rc == -1)
			return pm_fail(p, "%s must be a number, got '%s'", shown, v);
		if (rc || x < k->min || x > k->max)
			return pm_fail(p, "%s must be %lld..%lld, got %s", shown, (long long)k->min,
			               (long long)k->max, v);
		*(int *)field = (int)x;
		return 0;
	case PM_T_U64:
		rc = pm_scan_u64(v, &u);
		if (rc == -1)
			return pm_fail(p, "%s must be a number, got '%s'", shown, v);
		if (rc)
			return pm_fail(p, "%s must be 0..%llu, got %s", shown,
			               (unsigned long long)UINT64_MAX, v);
		*(uint64_t *)field = u;
		return 0;
	case PM_T_DUR:
		rc = pm_scan_scaled(v, pm_dur_units, &x);
		if (rc == -1)
			return pm_fail(p,
			               "%s must be a duration like 250ms, 5s, 2m or 1h, got '%s'",
			               shown, v);
		if (rc || x < k->min || x > k->max)
			return pm_fail(p, "%s must be %s..%s, got %s", shown,
			               pm_fmt_dur(k->min, lo, sizeof lo),
			               pm_fmt_dur(k->max, hi, sizeof hi), v);
		*(int64_t *)field = x;
		return 0;
	case PM_T_MODE:
		if (pm_scan_mode(v, field))
			return pm_fail(p, "%s must be an octal mode 0..7777, got '%s'", shown, v);
		return 0;
	case PM_T_BOOL:
		if (pm_parse_bool(v, field))
			return pm_fail(p, "%s must be yes or no, got '%s'", shown, v);
		return 0;
	case PM_T_RLIM_N:
		if (!strcmp(v, "unlimited")) {
			*(int64_t *)field = PM_RLIMIT_UNLIMITED;
			return 0;
		}
		rc = pm_scan_i64(v, &x);
		if (rc == -1)
			return pm_fail(p, "%s must be a number or unlimited, got '%s'", shown, v);
		if (rc || x < k->min || x > k->max)
			return pm_fail(p, "%s must be %lld..%lld or unlimited, got %s", shown,
			               (long long)k->min, (long long)k->max, v);
		*(int64_t *)field = x;
		return 0;
	case PM_T_RLIM_SZ:
		if (!strcmp(v, "unlimited")) {
			*(int64_t *)field = PM_RLIMIT_UNLIMITED;
			return 0;
		}
		rc = pm_scan_scaled(v, pm_size_units, &x);
		if (rc == -1)
			return pm_fail(
			        p, "%s must be a size like 512K, 64M, 2G or unlimited, got '%s'",
			        shown, v);
		/* INT64_MAX itself is the unlimited sentinel: a size must stay below it. */
		if (rc || x == PM_RLIMIT_UNLIMITED)
			return pm_fail(p, "%s is too large (say unlimited), got %s", shown, v);
		if (x < k->min)
			return pm_fail(p, "%s must be at least %lldM or unlimited, got %s", shown,
			               (long long)(k->min >> 20), v);
		*(int64_t *)field = x;
		return 0;
	case PM_T_PM:
		if (!strcmp(v, "static"))
			*(enum pm_mode *)field = PM_STATIC;
		else if (!strcmp(v, "dynamic"))
			*(enum pm_mode *)field = PM_DYNAMIC;
		else if (!strcmp(v, "ondemand"))
			*(enum pm_mode *)field = PM_ONDEMAND;
		else
			return pm_fail(p, "%s must be static, dynamic or ondemand, got '%s'", shown,
			               v);
		return 0;
	case PM_T_SHED:
		if (!strcmp(v, "503"))
			*(enum pm_shed *)field = PM_SHED_503;
		else if (!strcmp(v, "overloaded"))
			*(enum pm_shed *)field = PM_SHED_OVERLOADED;
		else
			return pm_fail(p, "%s must be 503 or overloaded, got '%s'", shown, v);
		return 0;
	case PM_T_CMD:
		return pm_set_command(p, base, shown, v);
	case PM_T_PASSENV:
		return pm_add_pass_env(p, base, shown, v);
	case PM_T_INCLUDE:
		break;
	}
	return pm_fail(p, "%s cannot be set here", shown);
}

/* ---------------------------------------------------------------- the file format */

static int pm_load_file(pm_parser *p, const char *path, const char *pattern);

/* A quoted value keeps its blanks; \" and \\ are its only escapes, so a stray backslash is
 * reported rather than guessed at. */
static int pm_unquote(pm_parser *p, const char *key, const char *v, char *out)
{
	if (v[0] != '"') {
		strcpy(out, v);
		return 0;
	}
	const char *q = v + 1;
	for (; *q != '"'; q++) {
		if (!*q)
			return pm_fail(p, "%s: unterminated quote", key);
		if (*q == '\\') {
			if (q[1] != '"' && q[1] != '\\')
				return pm_fail(p, "%s: unknown escape '\\%c' (only \\\" and \\\\)",
				               key, q[1] ? q[1] : ' ');
			q++;
		}
		*out++ = *q;
	}
	*out = 0;
	if (q[1])
		return pm_fail(p, "%s: text after the closing quote", key);
	return 0;
}

static int pm_new_pool(pm_parser *p, const char *name, size_t n, int fidx)
{
	pm_config *c = p->c;
	for (int i = 0; i < c->npools; i++)
		if (strlen(c->pools[i].name) == n && !memcmp(c->pools[i].name, name, n))
			return pm_fail(p, "duplicate pool [%.*s] (first at %s:%d)", (int)n, name,
			               c->pools[i].file, c->pools[i].line);
	if (c->npools >= PM_MAX_POOLS)
		return pm_fail(p, "more than %d pools", PM_MAX_POOLS);
	pm_pool_conf *v = realloc(c->pools, (size_t)(c->npools + 1) * sizeof *v);
	if (!v)
		return pm_oom(p);
	c->pools = v;
	pm_pool_conf *pc = &v[c->npools];
	pm_pool_defaults(pc);
	memcpy(pc->name, name, n);
	pc->name[n] = 0;
	pc->file = c->files[fidx];
	pc->line = p->line;
	p->pool = c->npools++;
	memset(p->pseen_line, 0, sizeof p->pseen_line);
	return 0;
}

/* glob(3) gives its error callback no context: the reason is kept here for the message. */
static _Thread_local int pm_glob_errno;

/* A directory of the pattern that does not exist only means no match; anything else (no
 * permission to list conf.d) would silently drop pools, so it stops the load. */
static int pm_glob_error(const char *path, int err)
{
	(void)path;
	if (err == ENOENT || err == ENOTDIR)
		return 0;
	pm_glob_errno = err;
	return 1;
}

static int pm_include(pm_parser *p, const char *pattern)
{
	if (!p->allow_include)
		return pm_fail(p, "include is not allowed here");
	if (p->depth >= PM_INCLUDE_DEPTH)
		return pm_fail(p, "include '%s': includes nested deeper than %d", pattern,
		               PM_INCLUDE_DEPTH);
	/* Relative to the including file, whatever the manager's working directory: the dir
	 * part is escaped so that its own '*' or '[' are not taken as wildcards. */
	const char *from = p->file;
	const char *slash = pattern[0] == '/' ? NULL : strrchr(from, '/');
	size_t dlen = slash ? (size_t)(slash - from) : 0;
	char *full = malloc(2 * dlen + strlen(pattern) + 3);
	if (!full)
		return pm_oom(p);
	char *o = full;
	if (pattern[0] != '/') {
		if (!slash)
			*o++ = '.';
		for (size_t i = 0; i < dlen; i++) {
			if (strchr("\\*?[", from[i]))
				*o++ = '\\';
			*o++ = from[i];
		}
		*o++ = '/';
	}
	strcpy(o, pattern);

	glob_t g;
	pm_glob_errno = 0;
	int rc = glob(full, 0, pm_glob_error, &g);
	free(full);
	if (rc == GLOB_NOMATCH) {
		/* A wildcard that matches nothing is an empty conf.d; a plain name is a typo. */
		if (strpbrk(pattern, "*?["))
			return 0;
		return pm_fail(p, "include '%s': no such file", pattern);
	}
	if (rc == GLOB_NOSPACE)
		return pm_oom(p);
	if (rc)
		return pm_fail(p, "include '%s': cannot read a directory: %s", pattern,
		               strerror(pm_glob_errno ? pm_glob_errno : EIO));

	const char *save_file = p->file;
	int save_line = p->line;
	rc = 0;
	p->depth++;
	for (size_t i = 0; i < g.gl_pathc && !rc; i++) {
		rc = pm_load_file(p, g.gl_pathv[i], pattern);
		p->file = save_file;
		p->line = save_line;
	}
	p->depth--;
	globfree(&g);
	return rc;
}

static int pm_global_line(pm_parser *p, const char *key, const char *v)
{
	int i = pm_find_key(pm_global_keys, PM_NGLOBAL_KEYS, key);
	if (i < 0) {
		if (pm_find_key(pm_pool_keys, PM_NPOOL_KEYS, key) >= 0 || !strncmp(key, "env[", 4))
			return pm_fail(p, "key '%s' belongs in a pool section, not in [global]",
			               key);
		return pm_fail(p, "unknown key '%s' in [global]", key);
	}
	const pm_key *k = &pm_global_keys[i];
	if (k->type == PM_T_INCLUDE) {
		if (!*v)
			return pm_fail(p, "include needs a value");
		return pm_include(p, v);
	}
	int slot = k->canon >= 0 ? k->canon : i;
	if (p->gseen_line[slot])
		return pm_fail(p, "duplicate key '%s' in [global] (first set at %s:%d)", key,
		               p->gseen_file[slot], p->gseen_line[slot]);
	p->gseen_file[slot] = p->file;
	p->gseen_line[slot] = p->line;
	return pm_set(p, k, p->c, key, v);
}

static int pm_pool_line(pm_parser *p, const char *key, const char *v)
{
	pm_pool_conf *pc = &p->c->pools[p->pool];
	size_t klen = strlen(key);
	if (!strncmp(key, "env[", 4) && klen > 5 && key[klen - 1] == ']')
		return pm_set_env(p, pc, key, key + 4, klen - 5, v);
	int i = pm_find_key(pm_pool_keys, PM_NPOOL_KEYS, key);
	if (i < 0) {
		if (pm_find_key(pm_global_keys, PM_NGLOBAL_KEYS, key) >= 0)
			return pm_fail(p, "key '%s' belongs in [global], not in pool [%s]", key,
			               pc->name);
		return pm_fail(p, "unknown key '%s' in pool [%s]", key, pc->name);
	}
	if (p->pseen_line[i])
		return pm_fail(p, "duplicate key '%s' in pool [%s] (first on line %d)", key,
		               pc->name, p->pseen_line[i]);
	p->pseen_line[i] = p->line;
	return pm_set(p, &pm_pool_keys[i], pc, key, v);
}

static int pm_is_blank(char ch) { return ch == ' ' || ch == '\t'; }

static int pm_line(pm_parser *p, char *s, int fidx)
{
	while (pm_is_blank(*s))
		s++;
	size_t n = strlen(s);
	while (n && pm_is_blank(s[n - 1]))
		s[--n] = 0;
	if (!n || s[0] == ';' || s[0] == '#')
		return 0;

	if (s[0] == '[') {
		if (s[n - 1] != ']')
			return pm_fail(p, "section header '%.80s' lacks its closing ']'", s);
		const char *name = s + 1;
		size_t nn = n - 2;
		if (pm_end_section(p))
			return -1;
		if (nn == 6 && !memcmp(name, "global", 6))
			return 0;
		if (!pm_pool_name_ok(name, nn))
			return pm_fail(p, "invalid pool name [%.*s] (1 to %d of A-Z a-z 0-9 _ . -)",
			               nn > 80 ? 80 : (int)nn, name, PM_NAME_MAX - 1);
		return pm_new_pool(p, name, nn, fidx);
	}

	char *eq = strchr(s, '=');
	if (!eq)
		return pm_fail(p, "expected 'key = value', '[section]' or a comment, got '%.80s'",
		               s);
	char *key = s, *kend = eq;
	while (kend > key && pm_is_blank(kend[-1]))
		kend--;
	*kend = 0;
	if (!*key)
		return pm_fail(p, "missing key before '='");
	char *raw = eq + 1;
	while (pm_is_blank(*raw))
		raw++;

	/* The command's quotes group words, so it gets the value as written. */
	if (p->pool >= 0 && !strcmp(key, "command"))
		return pm_pool_line(p, key, raw);
	char value[PM_LINE_MAX + 1];
	if (pm_unquote(p, key, raw, value))
		return -1;
	if (p->pool < 0)
		return pm_global_line(p, key, value);
	return pm_pool_line(p, key, value);
}

static int pm_parse_text(pm_parser *p, int fidx, const char *text, size_t len)
{
	p->file = p->c->files[fidx];
	p->line = 0;
	p->pool = -1;
	size_t pos = 0;
	while (pos < len) {
		p->line++;
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		size_t n = end - pos;
		if (n && text[end - 1] == '\r')
			n--; /* CRLF files */
		if (n > PM_LINE_MAX)
			return pm_fail(p, "line longer than %d bytes", PM_LINE_MAX);
		char buf[PM_LINE_MAX + 1];
		for (size_t i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)text[pos + i];
			if (!ch)
				return pm_fail(p, "NUL byte in the text");
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				return pm_fail(p, "invalid control character 0x%02x", ch);
			buf[i] = (char)ch;
		}
		buf[n] = 0;
		pos = nl ? end + 1 : len;
		if (pm_line(p, buf, fidx))
			return -1;
	}
	/* A pool ends with its file: an included file cannot add keys to the includer's. */
	return pm_end_section(p);
}

/* pattern: the include that named this file, or NULL for the top-level one; read errors of an
 * included file are reported at the include line. */
static int pm_load_file(pm_parser *p, const char *path, const char *pattern)
{
	if (!pattern) {
		p->file = path;
		p->line = 0;
	}
	char where[PM_LINE_MAX + 64] = "";
	if (pattern)
		snprintf(where, sizeof where, "include '%s': %s: ", pattern, path);

	FILE *f = fopen(path, "re");
	if (!f)
		return pm_fail(p, "%scannot open: %s", where, strerror(errno));
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(f);
		return pm_fail(p, "%sis a directory", where);
	}
	size_t cap = 0, len = 0;
	char *buf = NULL;
	int rc = 0;
	for (;;) {
		if (len == cap) {
			if (cap > PM_FILE_MAX) {
				rc = pm_fail(p, "%slarger than 1 MiB", where);
				break;
			}
			cap = cap ? 2 * cap : 16384;
			if (cap > PM_FILE_MAX + 1)
				cap = PM_FILE_MAX + 1;
			char *nb = realloc(buf, cap);
			if (!nb) {
				rc = pm_oom(p);
				break;
			}
			buf = nb;
		}
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0) {
			if (ferror(f))
				rc = pm_fail(p, "%scannot read: %s", where, strerror(errno));
			break;
		}
	}
	fclose(f);
	if (!rc && len > PM_FILE_MAX)
		rc = pm_fail(p, "%slarger than 1 MiB", where);
	if (!rc) {
		int fidx = pm_add_file(p, path);
		rc = fidx < 0 ? -1 : pm_parse_text(p, fidx, buf, len);
	}
	free(buf);
	return rc;
}

/* ---------------------------------------------------------------- validation */

__attribute__((format(printf, 4, 5))) static int
pm_pool_fail(char *err, size_t errlen, const pm_pool_conf *pc, const char *fmt, ...)
{
	char prefix[PM_LINE_MAX + 64];
	if (pc->file && pc->line > 0)
		snprintf(prefix, sizeof prefix, "%s:%d: ", pc->file, pc->line);
	else
		snprintf(prefix, sizeof prefix, "usage: "); /* the one-liner's pool */
	va_list ap;
	va_start(ap, fmt);
	pm_vformat(err, errlen, prefix, fmt, ap);
	va_end(ap);
	return -1;
}

static int pm_check_pool(pm_pool_conf *pc, char *err, size_t errlen)
{
	const char *nm = pc->name;
	char a[32], b[32];
	if (!pc->listen)
		return pm_pool_fail(err, errlen, pc, "pool [%s]: listen is required", nm);
	if (!pc->argv || pc->argc < 1 || !pc->argv[0])
		return pm_pool_fail(err, errlen, pc, "pool [%s]: command is required", nm);
	if (pc->argc > PM_MAX_ARGS)
		return pm_pool_fail(err, errlen, pc, "pool [%s]: command has more than %d words",
		                    nm, PM_MAX_ARGS);
	if (pc->argv[0][0] != '/')
		return pm_pool_fail(err, errlen, pc,
		                    "pool [%s]: command must start with an absolute path, got '%s'",
		                    nm, pc->argv[0]);
	if (pc->nenv > PM_MAX_ENV)
		return pm_pool_fail(err, errlen, pc,
		                    "pool [%s]: more than %d environment variables", nm,
		                    PM_MAX_ENV);
	if (pc->max_children < 1 || pc->max_children > PM_MAX_CHILDREN_LIMIT)
		return pm_pool_fail(err, errlen, pc,
		                    "pool [%s]: pm.max_children must be 1..%d, got %d", nm,
		                    PM_MAX_CHILDREN_LIMIT, pc->max_children);
	if (pc->start_servers == 0)
		pc->start_servers = pc->min_spare + (pc->max_spare - pc->min_spare) / 2;
	switch (pc->mode) {
	case PM_STATIC:
		break;
	case PM_DYNAMIC:
		if (pc->min_spare < 1)
			return pm_pool_fail(
			        err, errlen, pc,
			        "pool [%s]: pm.min_spare_servers must be at least 1, got %d", nm,
			        pc->min_spare);
		if (pc->min_spare > pc->max_spare)
			return pm_pool_fail(err, errlen, pc,
			                    "pool [%s]: pm.min_spare_servers (%d) must not exceed "
			                    "pm.max_spare_servers (%d)",
			                    nm, pc->min_spare, pc->max_spare);
		if (pc->max_spare > pc->max_children)
			return pm_pool_fail(err, errlen, pc,
			                    "pool [%s]: pm.max_spare_servers (%d) must not exceed "
			                    "pm.max_children (%d)",
			                    nm, pc->max_spare, pc->max_children);
		if (pc->start_servers < pc->min_spare || pc->start_servers > pc->max_spare)
			return pm_pool_fail(err, errlen, pc,
			                    "pool [%s]: pm.start_servers (%d) must be within "
			                    "pm.min_spare_servers..pm.max_spare_servers (%d..%d)",
			                    nm, pc->start_servers, pc->min_spare, pc->max_spare);
		break;
	case PM_ONDEMAND:
		if (pc->idle_timeout_ms <= 0)
			return pm_pool_fail(
			        err, errlen, pc,
			        "pool [%s]: pm.process_idle_timeout must be above 0 with "
			        "pm = ondemand",
			        nm);
		break;
	default:
		return pm_pool_fail(err, errlen, pc, "pool [%s]: unknown pm mode %d", nm,
		                    (int)pc->mode);
	}
	if (pc->slow_request_ms > 0 && pc->request_timeout_ms > 0 &&
	    pc->slow_request_ms >= pc->request_timeout_ms)
		return pm_pool_fail(err, errlen, pc,
		                    "pool [%s]: request_slowlog_timeout (%s) must be below "
		                    "request_terminate_timeout (%s)",
		                    nm, pm_fmt_dur(pc->slow_request_ms, a, sizeof a),
		                    pm_fmt_dur(pc->request_timeout_ms, b, sizeof b));
	/* The queue never grows past the backlog: such a threshold would never shed. */
	if (pc->shed_queue > 0 && pc->shed_queue >= pc->backlog)
		return pm_pool_fail(err, errlen, pc,
		                    "pool [%s]: shed_queue (%d) must be below listen.backlog (%d)",
		                    nm, pc->shed_queue, pc->backlog);
	return 0;
}

int pm_config_validate(pm_config *c, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = 0;
	if (c->npools < 1) {
		if (err && errlen)
			snprintf(err, errlen,
			         "%s: no pool defined (a [name] section with listen and command)",
			         c->nfiles ? c->files[0] : "config");
		return -1;
	}
	if (c->npools > PM_MAX_POOLS)
		return pm_pool_fail(err, errlen, &c->pools[PM_MAX_POOLS], "more than %d pools",
		                    PM_MAX_POOLS);
	for (int i = 0; i < c->npools; i++)
		if (pm_check_pool(&c->pools[i], err, errlen))
			return -1;
	for (int i = 0; i < c->npools; i++) {
		const pm_pool_conf *pc = &c->pools[i];
		const char *key = pm_addr_key(pc->listen);
		for (int j = 0; j < i; j++) {
			const pm_pool_conf *o = &c->pools[j];
			if (!strcmp(key, pm_addr_key(o->listen)))
				return pm_pool_fail(
				        err, errlen, pc,
				        "pools [%s] and [%s] (%s:%d) both listen on '%s'", pc->name,
				        o->name, o->file ? o->file : "?", o->line, pc->listen);
		}
		if (c->status_listen && !strcmp(key, pm_addr_key(c->status_listen)))
			return pm_pool_fail(err, errlen, pc,
			                    "pool [%s] listens on the status address '%s'",
			                    pc->name, pc->listen);
	}
	return 0;
}

/* ---------------------------------------------------------------- entry points */

static int pm_finish(pm_parser *p, int rc)
{
	if (!rc)
		rc = pm_end_section(p);
	if (!rc)
		rc = pm_config_validate(p->c, p->err, p->errlen);
	pm_parser_release(p);
	if (rc)
		pm_config_free(p->c);
	return rc;
}

int pm_config_load(pm_config *c, const char *file, char *err, size_t errlen)
{
	pm_parser p;
	pm_config_init(c);
	pm_parser_init(&p, c, err, errlen);
	p.allow_include = 1;
	return pm_finish(&p, pm_load_file(&p, file, NULL));
}

int pm_config_parse(pm_config *c, const char *name, const char *text, size_t len, char *err,
                    size_t errlen)
{
	pm_parser p;
	pm_config_init(c);
	pm_parser_init(&p, c, err, errlen);
	p.file = name;
	int rc;
	if (len > PM_FILE_MAX)
		rc = pm_fail(&p, "larger than 1 MiB");
	else {
		int fidx = pm_add_file(&p, name);
		rc = fidx < 0 ? -1 : pm_parse_text(&p, fidx, text, len);
	}
	return pm_finish(&p, rc);
}

/* ---------------------------------------------------------------- the one-liner */

enum pm_opt_kind {
	PM_O_POOL,    /* a pool key */
	PM_O_GLOBAL,  /* a [global] key */
	PM_O_WORKERS, /* static size, or max_children of the others */
	PM_O_DYNAMIC, /* MIN:MAX */
	PM_O_ONDEMAND,
	PM_O_ENV,     /* NAME=VALUE, repeatable */
	PM_O_PASSENV, /* repeatable */
};

typedef struct pm_opt {
	const char *name;
	enum pm_opt_kind kind;
	const char *key;
} pm_opt;

/* clang-format off */
static const pm_opt pm_opts[] = {
	{"listen",          PM_O_POOL,     "listen"},
	{"workers",         PM_O_WORKERS,  NULL},
	{"dynamic",         PM_O_DYNAMIC,  NULL},
	{"ondemand",        PM_O_ONDEMAND, NULL},
	{"idle-timeout",    PM_O_POOL,     "pm.process_idle_timeout"},
	{"max-children",    PM_O_POOL,     "pm.max_children"},
	{"min-spare",       PM_O_POOL,     "pm.min_spare_servers"},
	{"max-spare",       PM_O_POOL,     "pm.max_spare_servers"},
	{"start-servers",   PM_O_POOL,     "pm.start_servers"},
	{"spawn-rate",      PM_O_POOL,     "pm.spawn_rate"},
	{"user",            PM_O_POOL,     "user"},
	{"group",           PM_O_POOL,     "group"},
	{"chroot",          PM_O_POOL,     "chroot"},
	{"chdir",           PM_O_POOL,     "chdir"},
	{"socket-mode",     PM_O_POOL,     "listen.mode"},
	{"socket-owner",    PM_O_POOL,     "listen.owner"},
	{"socket-group",    PM_O_POOL,     "listen.group"},
	{"backlog",         PM_O_POOL,     "listen.backlog"},
	{"allow",           PM_O_POOL,     "listen.allowed_clients"},
	{"env",             PM_O_ENV,      NULL},
	{"pass-env",        PM_O_PASSENV,  NULL},
	{"clear-env",       PM_O_POOL,     "clear_env"},
	{"max-requests",    PM_O_POOL,     "pm.max_requests"},
	{"request-timeout", PM_O_POOL,     "request_terminate_timeout"},
	{"slow-request",    PM_O_POOL,     "request_slowlog_timeout"},
	{"kill-grace",      PM_O_POOL,     "kill_grace"},
	{"startup-timeout", PM_O_POOL,     "startup_timeout"},
	{"crash-limit",     PM_O_POOL,     "crash_limit"},
	{"circuit-reset",   PM_O_POOL,     "circuit_reset"},
	{"shed-queue",      PM_O_POOL,     "shed_queue"},
	{"shed-response",   PM_O_POOL,     "shed_response"},
	{"catch-output",    PM_O_POOL,     "catch_workers_output"},
	{"preload",         PM_O_POOL,     "preload"},
	{"rlimit-files",    PM_O_POOL,     "rlimit_files"},
	{"rlimit-core",     PM_O_POOL,     "rlimit_core"},
	{"rlimit-memory",   PM_O_POOL,     "rlimit_memory"},
	{"status",          PM_O_GLOBAL,   "status_listen"},
	{"log",             PM_O_GLOBAL,   "log"},
	{"pid-file",        PM_O_GLOBAL,   "pid_file"},
	{"stop-timeout",    PM_O_GLOBAL,   "stop_timeout"},
};
/* clang-format on */

#define PM_NOPTS ((int)(sizeof pm_opts / sizeof *pm_opts))

static int pm_opt_find(const char *name, size_t n)
{
	for (int i = 0; i < PM_NOPTS; i++)
		if (strlen(pm_opts[i].name) == n && !memcmp(pm_opts[i].name, name, n))
			return i;
	return -1;
}

static int pm_opt_index(const char *name) { return pm_opt_find(name, strlen(name)); }

static char *pm_path_join(const char *dir, size_t dn, const char *name)
{
	size_t nn = strlen(name);
	char *s = malloc(dn + nn + 2);
	if (!s)
		return NULL;
	memcpy(s, dir, dn);
	s[dn] = '/';
	memcpy(s + dn + 1, name, nn + 1);
	return s;
}

static char *pm_absolute(const char *path)
{
	if (path[0] == '/')
		return pm_strdup(path);
	char cwd[4096];
	if (!getcwd(cwd, sizeof cwd))
		return NULL;
	return pm_path_join(cwd, strlen(cwd), path);
}

/* The one place that looks at the filesystem: a command line says `-- php-cgi` the way a
 * shell would, and validate wants the absolute path the manager will exec. */
static int pm_resolve_command(pm_parser *p, pm_pool_conf *pc)
{
	const char *cmd = pc->argv[0];
	char *found = NULL;
	if (cmd[0] == '/')
		return 0;
	if (pc->chroot)
		return pm_fail(p,
		               "with --chroot the command must be an absolute path inside it, "
		               "got '%s'",
		               cmd);
	if (!*cmd)
		return pm_fail(p, "the command is empty");
	if (strchr(cmd, '/')) {
		if (!(found = pm_absolute(cmd)))
			return pm_fail(p, "cannot make '%s' absolute: %s", cmd, strerror(errno));
	} else {
		const char *path = getenv("PATH");
		if (!path || !*path)
			path = "/usr/local/bin:/usr/bin:/bin";
		for (const char *d = path; !found;) {
			const char *e = strchr(d, ':');
			size_t dn = e ? (size_t)(e - d) : strlen(d);
			char *cand = dn ? pm_path_join(d, dn, cmd) : pm_path_join(".", 1, cmd);
			if (!cand)
				return pm_oom(p);
			struct stat st;
			if (access(cand, X_OK) == 0 && stat(cand, &st) == 0 &&
			    S_ISREG(st.st_mode)) {
				found = pm_absolute(cand);
				if (!found) {
					free(cand);
					return pm_fail(p, "cannot make '%s' absolute: %s", cmd,
					               strerror(errno));
				}
			}
			free(cand);
			if (!e)
				break;
			d = e + 1;
		}
		if (!found)
			return pm_fail(p, "command '%s' not found in PATH", cmd);
	}
	free(pc->argv[0]);
	pc->argv[0] = found;
	return 0;
}

static int pm_opt_set_key(pm_parser *p, const pm_opt *o, const char *shown, const char *v)
{
	if (o->kind == PM_O_GLOBAL)
		return pm_set(p,
		              &pm_global_keys[pm_find_key(pm_global_keys, PM_NGLOBAL_KEYS, o->key)],
		              p->c, shown, v);
	return pm_set(p, &pm_pool_keys[pm_find_key(pm_pool_keys, PM_NPOOL_KEYS, o->key)],
	              &p->c->pools[0], shown, v);
}

/* --dynamic MIN:MAX: both bounds, each like --min-spare / --max-spare. */
static int pm_opt_dynamic(pm_parser *p, pm_pool_conf *pc, const char *v)
{
	const char *colon = strchr(v, ':');
	int64_t lo, hi;
	char tmp[32];
	size_t n = colon ? (size_t)(colon - v) : 0;
	if (!colon || n >= sizeof tmp)
		return pm_fail(p, "--dynamic needs MIN:MAX, got '%s'", v);
	memcpy(tmp, v, n);
	tmp[n] = 0;
	if (pm_scan_i64(tmp, &lo) == -1 || pm_scan_i64(colon + 1, &hi) == -1)
		return pm_fail(p, "--dynamic needs MIN:MAX, got '%s'", v);
	if (pm_scan_i64(tmp, &lo) || pm_scan_i64(colon + 1, &hi) || lo < 1 || hi < lo ||
	    hi > PM_MAX_CHILDREN_LIMIT)
		return pm_fail(p, "--dynamic MIN:MAX needs 1 <= MIN <= MAX <= %d, got %s",
		               PM_MAX_CHILDREN_LIMIT, v);
	pc->min_spare = (int)lo;
	pc->max_spare = (int)hi;
	return 0;
}

int pm_config_from_args(pm_config *c, int argc, char **argv, char *err, size_t errlen)
{
	pm_parser p;
	int seen[PM_NOPTS] = {0};
	int workers = 0;
	pm_config_init(c);
	pm_parser_init(&p, c, err, errlen);

	int rc = pm_add_file(&p, "command line");
	if (rc >= 0)
		rc = pm_new_pool(&p, "default", 7, rc);
	if (rc < 0)
		return pm_finish(&p, -1);
	pm_pool_conf *pc = &c->pools[0];
	p.file = NULL; /* from here on messages are usage errors */

	int i = 0;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (strncmp(a, "--", 2))
			return pm_finish(
			        &p, pm_fail(&p, "unexpected '%s' (the command goes after --)", a));
		const char *name = a + 2, *eq = strchr(name, '=');
		size_t n = eq ? (size_t)(eq - name) : strlen(name);
		int oi = pm_opt_find(name, n);
		if (oi < 0)
			return pm_finish(&p, pm_fail(&p, "unknown option '--%.*s'", (int)n, name));
		const pm_opt *o = &pm_opts[oi];
		char shown[40];
		snprintf(shown, sizeof shown, "--%s", o->name);
		const char *v = NULL;
		if (o->kind == PM_O_ONDEMAND) {
			if (eq)
				return pm_finish(&p, pm_fail(&p, "%s takes no value", shown));
		} else if (eq) {
			v = eq + 1;
		} else if (i + 1 < argc) {
			v = argv[++i];
		} else {
			return pm_finish(&p, pm_fail(&p, "%s needs a value", shown));
		}
		if (seen[oi] && o->kind != PM_O_ENV && o->kind != PM_O_PASSENV)
			return pm_finish(&p, pm_fail(&p, "%s given twice", shown));
		seen[oi] = 1;

		switch (o->kind) {
		case PM_O_POOL:
		case PM_O_GLOBAL:
			rc = pm_opt_set_key(&p, o, shown, v);
			break;
		case PM_O_WORKERS: {
			static const pm_key wk = {"workers", PM_T_INT, 0, 1, PM_MAX_CHILDREN_LIMIT,
			                          -1};
			rc = pm_set(&p, &wk, &workers, shown, v);
			break;
		}
		case PM_O_DYNAMIC:
			rc = pm_opt_dynamic(&p, pc, v);
			break;
		case PM_O_ONDEMAND:
			rc = 0;
			break;
		case PM_O_ENV: {
			const char *e = strchr(v, '=');
			if (!e)
				rc = pm_fail(&p, "--env needs NAME=VALUE, got '%s'", v);
			else
				rc = pm_set_env(&p, pc, v, v, (size_t)(e - v), e + 1);
			break;
		}
		case PM_O_PASSENV:
			rc = pm_add_pass_env(&p, pc, shown, v);
			break;
		}
		if (rc)
			return pm_finish(&p, -1);
	}

	int o_dyn = seen[pm_opt_index("dynamic")];
	int o_min = seen[pm_opt_index("min-spare")], o_max = seen[pm_opt_index("max-spare")];
	int o_ond = seen[pm_opt_index("ondemand")], o_idle = seen[pm_opt_index("idle-timeout")];
	int o_work = seen[pm_opt_index("workers")], o_maxch = seen[pm_opt_index("max-children")];
	int dynamic = o_dyn || o_min || o_max || seen[pm_opt_index("start-servers")];

	if (o_dyn && (o_min || o_max))
		rc = pm_fail(&p,
		             "--dynamic MIN:MAX and --min-spare/--max-spare say the same thing");
	else if (dynamic && o_ond)
		rc = pm_fail(&p, "a pool is either dynamic or --ondemand, not both");
	else if (o_idle && !o_ond)
		rc = pm_fail(&p, "--idle-timeout applies to --ondemand pools");
	else if (!dynamic && !o_ond && o_work && o_maxch)
		rc = pm_fail(&p, "--workers and --max-children both set the size of a static pool");
	else if (!seen[pm_opt_index("listen")])
		rc = pm_fail(&p, "--listen ADDRESS is required");
	else if (i >= argc)
		rc = pm_fail(&p, "missing the command: ... -- COMMAND [ARGS...]");
	else if (argc - i > PM_MAX_ARGS)
		rc = pm_fail(&p, "the command has more than %d words", PM_MAX_ARGS);
	if (rc)
		return pm_finish(&p, -1);

	if (o_ond) {
		pc->mode = PM_ONDEMAND;
		if (!o_maxch && o_work)
			pc->max_children = workers;
	} else if (dynamic) {
		pc->mode = PM_DYNAMIC;
		if (!o_maxch) {
			int64_t dflt = 3 * (int64_t)pc->max_spare;
			pc->max_children =
			        o_work ? workers
			               : (int)(dflt > PM_MAX_CHILDREN_LIMIT ? PM_MAX_CHILDREN_LIMIT
			                                                    : dflt);
		}
	} else {
		pc->mode = PM_STATIC;
		if (!o_maxch)
			pc->max_children = o_work ? workers : 1;
	}

	pc->argv = calloc((size_t)(argc - i) + 1, sizeof *pc->argv);
	if (!pc->argv)
		return pm_finish(&p, pm_oom(&p));
	for (; i < argc; i++) {
		if (!(pc->argv[pc->argc] = pm_strdup(argv[i])))
			return pm_finish(&p, pm_oom(&p));
		pc->argc++;
	}
	return pm_finish(&p, pm_resolve_command(&p, pc));
}
