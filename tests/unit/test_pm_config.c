/*
 * test_pm_config.c — the `fcgikit pm` configuration (src/pm/config.c): every key of a pool and
 * of [global] landing in its field, the defaults, the value syntax (quotes, durations, sizes,
 * booleans, modes) with its edge cases, every error carrying FILE:LINE and its reason, the
 * checks of pm_config_validate, includes read from a temporary directory, and the one-liner
 * command line.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "pm/config.h"

/* ---------------------------------------------------------------- helpers */

#define POOL "[www]\nlisten = unix:/run/www.sock\ncommand = /usr/bin/app\n"

static char g_err[8192];

static void parse_ok(pm_config *c, const char *text)
{
	if (pm_config_parse(c, "t.conf", text, strlen(text), g_err, sizeof g_err))
		fail_msg("parse failed: %s\n--- input:\n%s", g_err, text);
}

/* Parses text, which must fail with "t.conf:LINE: " and reason somewhere in the message; a
 * line of 0 means the message is about the whole file ("t.conf: "). */
static void parse_err_len(const char *text, size_t len, int line, const char *reason)
{
	pm_config c;
	char want[64];
	if (line > 0)
		snprintf(want, sizeof want, "t.conf:%d: ", line);
	else
		snprintf(want, sizeof want, "t.conf: ");
	memset(g_err, 'x', sizeof g_err);
	if (!pm_config_parse(&c, "t.conf", text, len, g_err, sizeof g_err)) {
		pm_config_free(&c);
		fail_msg("parse succeeded, want \"%s%s\"\n--- input:\n%s", want, reason, text);
	}
	if (strncmp(g_err, want, strlen(want)) || !strstr(g_err, reason))
		fail_msg("error \"%s\", want \"%s...%s\"", g_err, want, reason);
	/* Left empty: nothing to free, and freeing again is harmless. */
	assert_int_equal(c.npools, 0);
	assert_null(c.pools);
	assert_int_equal(c.nfiles, 0);
	pm_config_free(&c);
}

static void parse_err(const char *text, int line, const char *reason)
{
	parse_err_len(text, strlen(text), line, reason);
}

static void args_ok(pm_config *c, char **argv)
{
	int argc = 0;
	while (argv[argc])
		argc++;
	if (pm_config_from_args(c, argc, argv, g_err, sizeof g_err))
		fail_msg("from_args failed: %s", g_err);
}

static void args_err(char **argv, const char *reason)
{
	pm_config c;
	int argc = 0;
	while (argv[argc])
		argc++;
	if (!pm_config_from_args(&c, argc, argv, g_err, sizeof g_err)) {
		pm_config_free(&c);
		fail_msg("from_args succeeded, want \"usage: ...%s\"", reason);
	}
	if (strncmp(g_err, "usage: ", 7) || !strstr(g_err, reason))
		fail_msg("error \"%s\", want \"usage: ...%s\"", g_err, reason);
	assert_int_equal(c.npools, 0);
	pm_config_free(&c);
}

static const char *env_get(const pm_pool_conf *p, const char *name)
{
	size_t n = strlen(name);
	for (int i = 0; i < p->nenv; i++)
		if (!strncmp(p->env[i], name, n) && p->env[i][n] == '=')
			return p->env[i] + n + 1;
	return NULL;
}

static char g_dir[64];

static void write_file(const char *rel, const char *text)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", g_dir, rel);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void rm_tree(const char *dir)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* ---------------------------------------------------------------- defaults */

static void test_init_defaults(void **state)
{
	(void)state;
	pm_config c;
	memset(&c, 0x5a, sizeof c);
	pm_config_init(&c);
	assert_null(c.log_file);
	assert_null(c.status_listen);
	assert_int_equal(c.status_mode, 0660);
	assert_int_equal(c.stop_timeout_ms, 30000);
	assert_null(c.pid_file);
	assert_null(c.pools);
	assert_int_equal(c.npools, 0);
	assert_null(c.files);
	assert_int_equal(c.nfiles, 0);
	pm_config_free(&c);
	assert_string_equal(pm_mode_name(PM_STATIC), "static");
	assert_string_equal(pm_mode_name(PM_DYNAMIC), "dynamic");
	assert_string_equal(pm_mode_name(PM_ONDEMAND), "ondemand");
}

static void test_pool_defaults(void **state)
{
	(void)state;
	pm_config c;
	parse_ok(&c, POOL);
	assert_int_equal(c.npools, 1);
	assert_int_equal(c.nfiles, 1);
	assert_string_equal(c.files[0], "t.conf");
	const pm_pool_conf *p = &c.pools[0];
	assert_string_equal(p->name, "www");
	assert_ptr_equal(p->file, c.files[0]);
	assert_int_equal(p->line, 1);
	assert_string_equal(p->listen, "unix:/run/www.sock");
	assert_null(p->listen_owner);
	assert_null(p->listen_group);
	assert_int_equal(p->listen_mode, 0660);
	assert_int_equal(p->backlog, 511);
	assert_null(p->allowed_clients);
	assert_int_equal(p->argc, 1);
	assert_string_equal(p->argv[0], "/usr/bin/app");
	assert_null(p->argv[1]);
	assert_null(p->user);
	assert_null(p->group);
	assert_null(p->chroot);
	assert_null(p->chdir);
	assert_int_equal(p->nenv, 0);
	assert_int_equal(p->clear_env, 1);
	assert_int_equal(p->rlimit_files, -1);
	assert_int_equal(p->rlimit_core, -1);
	assert_int_equal(p->rlimit_memory, -1);
	assert_int_equal(p->mode, PM_DYNAMIC);
	assert_int_equal(p->max_children, 5);
	assert_int_equal(p->min_spare, 1);
	assert_int_equal(p->max_spare, 3);
	assert_int_equal(p->start_servers, 2); /* 1 + (3 - 1) / 2 */
	assert_int_equal(p->spawn_rate, 32);
	assert_int_equal(p->idle_timeout_ms, 10000);
	assert_true(p->max_requests == 0);
	assert_int_equal(p->request_timeout_ms, 0);
	assert_int_equal(p->slow_request_ms, 0);
	assert_int_equal(p->kill_grace_ms, 3000);
	assert_int_equal(p->startup_timeout_ms, 10000);
	assert_int_equal(p->crash_limit, 10);
	assert_int_equal(p->circuit_reset_ms, 60000);
	assert_int_equal(p->shed_queue, 0);
	assert_int_equal(p->shed_response, PM_SHED_503);
	assert_int_equal(p->catch_output, 1);
	/* The globals stay at their defaults. */
	assert_null(c.log_file);
	assert_int_equal(c.stop_timeout_ms, 30000);
	pm_config_free(&c);
	assert_int_equal(c.npools, 0);
	assert_null(c.pools);
}

/* ---------------------------------------------------------------- every key */

static void test_every_pool_key(void **state)
{
	(void)state;
	pm_config c;
	parse_ok(&c, "; a pool with every key\n"
	             "[php-8.2_a]\n"
	             "listen = 127.0.0.1:9000\n"
	             "listen.owner = www-data\n"
	             "listen.group = 33\n"
	             "listen.mode = 0600\n"
	             "listen.backlog = 1024\n"
	             "listen.allowed_clients = 127.0.0.1, ::1 10.0.0.0/8\n"
	             "command = /usr/bin/php-cgi -d display_errors=0\n"
	             "user = www\n"
	             "group = web\n"
	             "chroot = /srv/jail\n"
	             "chdir = /htdocs\n"
	             "env[APP_ENV] = production\n"
	             "env[EMPTY] =\n"
	             "clear_env = no\n"
	             "rlimit_files = 65536\n"
	             "rlimit_core = unlimited\n"
	             "rlimit_memory = 2G\n"
	             "pm = dynamic\n"
	             "pm.max_children = 50\n"
	             "pm.start_servers = 7\n"
	             "pm.min_spare_servers = 5\n"
	             "pm.max_spare_servers = 10\n"
	             "pm.spawn_rate = 8\n"
	             "pm.process_idle_timeout = 90s\n"
	             "pm.max_requests = 18446744073709551615\n"
	             "request_terminate_timeout = 2m\n"
	             "request_slowlog_timeout = 1500ms\n"
	             "kill_grace = 250ms\n"
	             "startup_timeout = 1m\n"
	             "crash_limit = 3\n"
	             "circuit_reset = 1h\n"
	             "shed_queue = 100\n"
	             "shed_response = overloaded\n"
	             "catch_workers_output = off\n");
	const pm_pool_conf *p = &c.pools[0];
	assert_string_equal(p->name, "php-8.2_a");
	assert_int_equal(p->line, 2);
	assert_string_equal(p->listen, "127.0.0.1:9000");
	assert_string_equal(p->listen_owner, "www-data");
	assert_string_equal(p->listen_group, "33");
	assert_int_equal(p->listen_mode, 0600);
	assert_int_equal(p->backlog, 1024);
	assert_string_equal(p->allowed_clients, "127.0.0.1, ::1 10.0.0.0/8");
	assert_int_equal(p->argc, 3);
	assert_string_equal(p->argv[0], "/usr/bin/php-cgi");
	assert_string_equal(p->argv[1], "-d");
	assert_string_equal(p->argv[2], "display_errors=0");
	assert_null(p->argv[3]);
	assert_string_equal(p->user, "www");
	assert_string_equal(p->group, "web");
	assert_string_equal(p->chroot, "/srv/jail");
	assert_string_equal(p->chdir, "/htdocs");
	assert_int_equal(p->nenv, 2);
	assert_string_equal(p->env[0], "APP_ENV=production");
	assert_string_equal(p->env[1], "EMPTY=");
	assert_null(p->env[2]);
	assert_int_equal(p->clear_env, 0);
	assert_int_equal(p->rlimit_files, 65536);
	assert_true(p->rlimit_core == PM_RLIMIT_UNLIMITED);
	assert_true(p->rlimit_core == INT64_MAX);
	assert_true(p->rlimit_memory == (int64_t)2 << 30);
	assert_int_equal(p->mode, PM_DYNAMIC);
	assert_int_equal(p->max_children, 50);
	assert_int_equal(p->start_servers, 7);
	assert_int_equal(p->min_spare, 5);
	assert_int_equal(p->max_spare, 10);
	assert_int_equal(p->spawn_rate, 8);
	assert_int_equal(p->idle_timeout_ms, 90000);
	assert_true(p->max_requests == UINT64_MAX);
	assert_int_equal(p->request_timeout_ms, 120000);
	assert_int_equal(p->slow_request_ms, 1500);
	assert_int_equal(p->kill_grace_ms, 250);
	assert_int_equal(p->startup_timeout_ms, 60000);
	assert_int_equal(p->crash_limit, 3);
	assert_int_equal(p->circuit_reset_ms, 3600000);
	assert_int_equal(p->shed_queue, 100);
	assert_int_equal(p->shed_response, PM_SHED_OVERLOADED);
	assert_int_equal(p->catch_output, 0);
	pm_config_free(&c);
}

static void test_global_keys(void **state)
{
	(void)state;
	pm_config c;
	parse_ok(&c, "[global]\n"
	             "log = /var/log/pm.log\n"
	             "status_listen = unix:/run/pm-status.sock\n"
	             "status_mode = 600\n"
	             "stop_timeout = 45s\n"
	             "pid_file = /run/pm.pid\n" POOL);
	assert_string_equal(c.log_file, "/var/log/pm.log");
	assert_string_equal(c.status_listen, "unix:/run/pm-status.sock");
	assert_int_equal(c.status_mode, 0600);
	assert_int_equal(c.stop_timeout_ms, 45000);
	assert_string_equal(c.pid_file, "/run/pm.pid");
	assert_int_equal(c.pools[0].line, 7);
	pm_config_free(&c);

	/* php-fpm's spellings. */
	parse_ok(&c, "[global]\nerror_log = /var/log/e.log\nprocess_control_timeout = 2m\n"
	             "pid = /run/x.pid\n" POOL);
	assert_string_equal(c.log_file, "/var/log/e.log");
	assert_int_equal(c.stop_timeout_ms, 120000);
	assert_string_equal(c.pid_file, "/run/x.pid");
	pm_config_free(&c);
}

static void test_keys_before_section_are_global(void **state)
{
	(void)state;
	pm_config c;
	parse_ok(&c, "log = /tmp/a.log\nstop_timeout = 0\n" POOL "[global]\npid = /run/p\n"
	             "[two]\nlisten = :9001\ncommand = /bin/two\n");
	assert_string_equal(c.log_file, "/tmp/a.log");
	assert_int_equal(c.stop_timeout_ms, 0);
	assert_string_equal(c.pid_file, "/run/p");
	assert_int_equal(c.npools, 2);
	assert_string_equal(c.pools[0].name, "www");
	assert_int_equal(c.pools[0].line, 3);
	assert_string_equal(c.pools[1].name, "two");
	assert_int_equal(c.pools[1].line, 8);
	assert_string_equal(c.pools[1].listen, ":9001");
	pm_config_free(&c);
}

static void test_comments_blanks_crlf(void **state)
{
	(void)state;
	pm_config c;
	parse_ok(&c, "; comment\r\n"
	             "# another\r\n"
	             "   ; indented comment\r\n"
	             "\r\n"
	             "\t\r\n"
	             "  [www]  \r\n"
	             "\tlisten\t=\tunix:/run/www.sock   \r\n"
	             "command=/usr/bin/app ; not a comment\r\n"
	             "user = a;b#c");
	const pm_pool_conf *p = &c.pools[0];
	assert_int_equal(p->line, 6);
	assert_string_equal(p->listen, "unix:/run/www.sock");
	/* No inline comments: a value runs to the end of the line. */
	assert_int_equal(p->argc, 5);
	assert_string_equal(p->argv[1], ";");
	assert_string_equal(p->argv[2], "not");
	assert_string_equal(p->user, "a;b#c");
	pm_config_free(&c);
}

/* ---------------------------------------------------------------- value syntax */

static void test_quoting(void **state)
{
	(void)state;
	pm_config c;
	parse_ok(&c, POOL "user = \"  spaced  \"\n"
	                  "group = \"q\\\"uo\\\\te\"\n"
	                  "env[A] = \"\"\n"
	                  "env[B] = \" x = y \"\n"
	                  "listen.owner = not\"quoted\"\n");
	const pm_pool_conf *p = &c.pools[0];
	assert_string_equal(p->user, "  spaced  ");
	assert_string_equal(p->group, "q\"uo\\te");
	assert_string_equal(env_get(p, "A"), "");
	assert_string_equal(env_get(p, "B"), " x = y ");
	assert_string_equal(p->listen_owner, "not\"quoted\"");
	pm_config_free(&c);

	parse_err(POOL "user = \"open\n", 4, "user: unterminated quote");
	parse_err(POOL "user = \"a\\nb\"\n", 4, "user: unknown escape '\\n'");
	parse_err(POOL "user = \"a\" b\n", 4, "user: text after the closing quote");
	parse_err(POOL "user = \"\"\n", 4, "user needs a value");
	parse_err(POOL "user =\n", 4, "user needs a value");
	parse_err(POOL "user = \"ab\\\n", 4, "unknown escape");
}

static void test_command_words(void **state)
{
	(void)state;
	pm_config c;
	parse_ok(&c,
	         "[www]\nlisten = :9000\n"
	         "command = \"/opt/my app/bin\"  -x \t--opt=\"a b\" \"\" \"q\\\"\\\\\" plain\\n\n");
	const pm_pool_conf *p = &c.pools[0];
	assert_int_equal(p->argc, 6);
	assert_string_equal(p->argv[0], "/opt/my app/bin");
	assert_string_equal(p->argv[1], "-x");
	assert_string_equal(p->argv[2], "--opt=a b");
	assert_string_equal(p->argv[3], "");
	assert_string_equal(p->argv[4], "q\"\\");
	assert_string_equal(p->argv[5], "plain\\n"); /* backslashes outside quotes are literal */
	assert_null(p->argv[6]);
	pm_config_free(&c);

	/* PM_MAX_ARGS words are fine, one more is not. */
	char text[1024] = "[www]\nlisten = :9000\ncommand = /bin/x";
	for (int i = 1; i < PM_MAX_ARGS; i++)
		strcat(text, " a");
	parse_ok(&c, text);
	assert_int_equal(c.pools[0].argc, PM_MAX_ARGS);
	assert_null(c.pools[0].argv[PM_MAX_ARGS]);
	pm_config_free(&c);
	strcat(text, " b\n");
	parse_err(text, 3, "command has more than 64 words");

	parse_err("[www]\nlisten = :9000\ncommand = /bin/x \"open\n", 3,
	          "command: unterminated quote");
	parse_err("[www]\nlisten = :9000\ncommand = /bin/x \"\\q\"\n", 3, "unknown escape '\\q'");
	parse_err("[www]\nlisten = :9000\ncommand =   \n", 3, "command needs a value");
}

static void test_durations(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int64_t ms;
	} ok[] = {
	        {"0", 0},
	        {"5", 5000},
	        {"250ms", 250},
	        {"5s", 5000},
	        {"2m", 120000},
	        {"1h", 3600000},
	        {"007s", 7000},
	        {"9223372036854775807ms", INT64_MAX},
	        {"9223372036854775s", 9223372036854775000},
	};
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
		int64_t v = -1;
		if (pm_parse_duration_ms(ok[i].s, &v) || v != ok[i].ms)
			fail_msg("pm_parse_duration_ms(\"%s\") = %lld", ok[i].s, (long long)v);
	}
	static const char *const bad[] = {
	        "",
	        "s",
	        "-1s",
	        "+1s",
	        "1.5s",
	        "1 s",
	        " 1s",
	        "1s ",
	        "1S",
	        "1d",
	        "1sec",
	        "1ms2",
	        "0x10",
	        "99999999999999999999s",
	        "9223372036854775808ms",
	        "9223372036854776s",
	        "2562047788015216h",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int64_t v = 42;
		if (!pm_parse_duration_ms(bad[i], &v))
			fail_msg("pm_parse_duration_ms(\"%s\") accepted: %lld", bad[i],
			         (long long)v);
		assert_int_equal(v, 42);
	}
	int64_t v;
	assert_int_equal(pm_parse_duration_ms(NULL, &v), -1);

	parse_err(POOL "kill_grace = 99999999999999999999s\n", 4,
	          "kill_grace must be 0..720h, got 99999999999999999999s");
	parse_err(POOL "kill_grace = 721h\n", 4, "kill_grace must be 0..720h, got 721h");
	parse_err(POOL "kill_grace = 5 s\n", 4,
	          "kill_grace must be a duration like 250ms, 5s, 2m or 1h, got '5 s'");
	parse_err(POOL "startup_timeout = 0\n", 4, "startup_timeout must be 1ms..720h, got 0");
	parse_err(POOL "circuit_reset = 0ms\n", 4, "circuit_reset must be 1ms..720h, got 0ms");
	pm_config c;
	parse_ok(&c, POOL "kill_grace = 720h\nstartup_timeout = 1ms\n");
	assert_int_equal(c.pools[0].kill_grace_ms, (int64_t)720 * 3600 * 1000);
	assert_int_equal(c.pools[0].startup_timeout_ms, 1);
	pm_config_free(&c);
}

static void test_sizes(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int64_t v;
	} ok[] = {
	        {"0", 0},
	        {"512", 512},
	        {"1K", 1024},
	        {"1k", 1024},
	        {"64M", 64 << 20},
	        {"2g", (int64_t)2 << 30},
	        {"3T", (int64_t)3 << 40},
	        {"9223372036854775807", INT64_MAX},
	        {"8388607T", (int64_t)8388607 << 40},
	};
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
		int64_t v = -1;
		if (pm_parse_size(ok[i].s, &v) || v != ok[i].v)
			fail_msg("pm_parse_size(\"%s\") = %lld", ok[i].s, (long long)v);
	}
	static const char *const bad[] = {"",
	                                  "K",
	                                  "-1",
	                                  "1KB",
	                                  "1 M",
	                                  "1.5G",
	                                  "1P",
	                                  "8388608T",
	                                  "9223372036854775808",
	                                  "99999999999999999999K",
	                                  "unlimited"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int64_t v = 42;
		if (!pm_parse_size(bad[i], &v))
			fail_msg("pm_parse_size(\"%s\") accepted: %lld", bad[i], (long long)v);
		assert_int_equal(v, 42);
	}

	pm_config c;
	parse_ok(&c, POOL "rlimit_files = unlimited\nrlimit_core = 0\nrlimit_memory = 1M\n");
	assert_true(c.pools[0].rlimit_files == PM_RLIMIT_UNLIMITED);
	assert_int_equal(c.pools[0].rlimit_core, 0);
	assert_int_equal(c.pools[0].rlimit_memory, 1 << 20);
	pm_config_free(&c);
	parse_err(POOL "rlimit_memory = 1000K\n", 4,
	          "rlimit_memory must be at least 1M or unlimited, got 1000K");
	parse_err(POOL "rlimit_core = lots\n", 4,
	          "rlimit_core must be a size like 512K, 64M, 2G or unlimited, got 'lots'");
	parse_err(POOL "rlimit_core = 99999999999999999999\n", 4, "rlimit_core is too large");
	parse_err(POOL "rlimit_core = 9223372036854775807\n", 4, "rlimit_core is too large");
	parse_err(POOL "rlimit_files = 0\n", 4,
	          "rlimit_files must be 1..1073741824 or unlimited, got 0");
	parse_err(POOL "rlimit_files = 1M\n", 4,
	          "rlimit_files must be a number or unlimited, got '1M'");
}

static void test_bools_and_modes(void **state)
{
	(void)state;
	static const char *const yes[] = {"yes", "YES", "on", "On", "true", "TRUE", "1"};
	static const char *const no[] = {"no", "No", "off", "OFF", "false", "False", "0"};
	static const char *const bad[] = {"", "y", "n", "2", "yess", "enable", " yes", "01"};
	for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
		int v = 7;
		assert_int_equal(pm_parse_bool(yes[i], &v), 0);
		assert_int_equal(v, 1);
	}
	for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
		int v = 7;
		assert_int_equal(pm_parse_bool(no[i], &v), 0);
		assert_int_equal(v, 0);
	}
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int v = 7;
		if (!pm_parse_bool(bad[i], &v))
			fail_msg("pm_parse_bool(\"%s\") accepted", bad[i]);
		assert_int_equal(v, 7);
	}
	int v;
	assert_int_equal(pm_parse_bool(NULL, &v), -1);
	parse_err(POOL "catch_workers_output = maybe\n", 4,
	          "catch_workers_output must be yes or no, got 'maybe'");

	pm_config c;
	parse_ok(&c, POOL "listen.mode = 7777\n");
	assert_int_equal(c.pools[0].listen_mode, 07777);
	pm_config_free(&c);
	parse_ok(&c, POOL "listen.mode = 0\n");
	assert_int_equal(c.pools[0].listen_mode, 0);
	pm_config_free(&c);
	parse_ok(&c, POOL "listen.mode = 000666\n");
	assert_int_equal(c.pools[0].listen_mode, 0666);
	pm_config_free(&c);
	parse_err(POOL "listen.mode = 0668\n", 4, "listen.mode must be an octal mode 0..7777");
	parse_err(POOL "listen.mode = 17777\n", 4, "got '17777'");
	parse_err(POOL "listen.mode = rw\n", 4, "listen.mode must be an octal mode");
	parse_err("status_mode = -1\n" POOL, 1, "status_mode must be an octal mode");

	parse_ok(&c, POOL "pm = static\nshed_response = 503\n");
	assert_int_equal(c.pools[0].mode, PM_STATIC);
	assert_int_equal(c.pools[0].shed_response, PM_SHED_503);
	pm_config_free(&c);
	parse_err(POOL "pm = Static\n", 4, "pm must be static, dynamic or ondemand, got 'Static'");
	parse_err(POOL "shed_response = 502\n", 4, "shed_response must be 503 or overloaded");
}

static void test_integer_ranges(void **state)
{
	(void)state;
	parse_err(POOL "pm.max_children = 0\n", 4, "pm.max_children must be 1..4096, got 0");
	parse_err(POOL "pm.max_children = 4097\n", 4, "pm.max_children must be 1..4096, got 4097");
	parse_err(POOL "pm.max_children = 99999999999999999999\n", 4,
	          "pm.max_children must be 1..4096, got 99999999999999999999");
	parse_err(POOL "pm.max_children = -1\n", 4, "pm.max_children must be a number, got '-1'");
	parse_err(POOL "pm.max_children = 5x\n", 4, "pm.max_children must be a number, got '5x'");
	parse_err(POOL "pm.max_children = 2147483648\n", 4, "must be 1..4096");
	parse_err(POOL "listen.backlog = 0\n", 4, "listen.backlog must be 1..65535, got 0");
	parse_err(POOL "pm.spawn_rate = 1025\n", 4, "pm.spawn_rate must be 1..1024, got 1025");
	parse_err(POOL "crash_limit = 0\n", 4, "crash_limit must be 1..10000, got 0");
	parse_err(POOL "shed_queue = 65536\n", 4, "shed_queue must be 0..65535, got 65536");
	parse_err(POOL "pm.start_servers = 0\n", 4, "pm.start_servers must be 1..4096, got 0");
	parse_err(POOL "pm.max_requests = 18446744073709551616\n", 4,
	          "pm.max_requests must be 0..18446744073709551615, got 18446744073709551616");
	parse_err(POOL "pm.max_requests = 1e6\n", 4, "pm.max_requests must be a number");

	pm_config c;
	parse_ok(&c, POOL "pm = static\npm.max_children = 4096\nlisten.backlog = 65535\n");
	assert_int_equal(c.pools[0].max_children, 4096);
	assert_int_equal(c.pools[0].backlog, 65535);
	pm_config_free(&c);
}

static void test_listen_forms(void **state)
{
	(void)state;
	static const char *const ok[] = {
	        "unix:/run/a.sock", "/run/a.sock",  "unix:rel.sock", "tcp:127.0.0.1:9000",
	        "127.0.0.1:9000",   "[::1]:9000",   "tcp:[::]:1",    ":9000",
	        "*:65535",          "localhost:80",
	};
	static const char *const bad[] = {
	        "unix:",    "9000",      "127.0.0.1", "127.0.0.1:0",      "127.0.0.1:65536",
	        "::1:9000", "[::1]9000", "[]:9000",   "host:port",        "host:-1",
	        "a b:9000", "tcp:",      "[::1:9000", "127.0.0.1:009000",
	};
	char text[512];
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
		pm_config c;
		snprintf(text, sizeof text, "[p]\nlisten = %s\ncommand = /bin/x\n", ok[i]);
		parse_ok(&c, text);
		assert_string_equal(c.pools[0].listen, ok[i]);
		pm_config_free(&c);
	}
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		snprintf(text, sizeof text, "[p]\nlisten = %s\ncommand = /bin/x\n", bad[i]);
		char reason[128];
		snprintf(reason, sizeof reason, "listen: invalid address '%s'", bad[i]);
		parse_err(text, 2, reason);
	}
	/* A Unix path that cannot fit in sun_path. */
	char longp[200] = "listen = unix:/";
	memset(longp + strlen(longp), 'a', 120);
	snprintf(text, sizeof text, "[p]\n%s\ncommand = /bin/x\n", longp);
	parse_err(text, 2, "listen: invalid address");

	parse_err("status_listen = nowhere\n" POOL, 1, "status_listen: invalid address 'nowhere'");
	parse_err(POOL "listen.allowed_clients = 127.0.0.1, not-an-ip\n", 4,
	          "listen.allowed_clients: invalid address list '127.0.0.1, not-an-ip'");
	parse_err(POOL "listen.allowed_clients = 10.0.0.0/33\n", 4, "invalid address list");
	parse_err(POOL "chroot = srv\n", 4, "chroot must be an absolute path, got 'srv'");
	parse_err(POOL "chdir = htdocs\n", 4, "chdir must be an absolute path, got 'htdocs'");
}

/* ---------------------------------------------------------------- environment */

static void test_env(void **state)
{
	(void)state;
	pm_config c;
	setenv("PMTEST_A", "from-manager", 1);
	setenv("PMTEST_B", "b-manager", 1);
	unsetenv("PMTEST_MISSING");
	/* env[] wins over pass_env whichever comes first; a missing variable is skipped. */
	parse_ok(&c, POOL "env[PMTEST_B] = explicit\n"
	                  "pass_env = PMTEST_A, PMTEST_B PMTEST_MISSING\tPMTEST_A\n"
	                  "env[_x9] = 1\n"
	                  "[two]\nlisten = :1\ncommand = /bin/x\nenv[PMTEST_A] = mine\n");
	const pm_pool_conf *p = &c.pools[0];
	assert_int_equal(p->nenv, 3);
	assert_string_equal(env_get(p, "PMTEST_B"), "explicit");
	assert_string_equal(env_get(p, "_x9"), "1");
	assert_string_equal(env_get(p, "PMTEST_A"), "from-manager");
	assert_null(env_get(p, "PMTEST_MISSING"));
	assert_null(p->env[3]);
	/* pass_env stays with its own pool. */
	assert_int_equal(c.pools[1].nenv, 1);
	assert_string_equal(c.pools[1].env[0], "PMTEST_A=mine");
	assert_int_equal(c.pools[1].clear_env, 1);
	pm_config_free(&c);

	parse_err(POOL "env[1A] = x\n", 4, "invalid variable name in 'env[1A]'");
	parse_err(POOL "env[A-B] = x\n", 4, "invalid variable name in 'env[A-B]'");
	parse_err(POOL "env[] = x\n", 4, "unknown key 'env[]' in pool [www]");
	parse_err(POOL "env[A] = 1\nenv[A] = 2\n", 5, "duplicate variable A in pool [www]");
	parse_err(POOL "pass_env = A 9B\n", 4, "pass_env: invalid variable name '9B'");
	parse_err(POOL "pass_env = , ,\n", 4, "pass_env needs a value");
	parse_err(POOL "pass_env = A\npass_env = B\n", 5, "duplicate key 'pass_env'");
	parse_err(POOL "clear_env = sometimes\n", 4, "clear_env must be yes or no");
	parse_err("env[X] = 1\n" POOL, 1, "key 'env[X]' belongs in a pool section");

	/* PM_MAX_ENV variables, counting the names of pass_env whether set or not. */
	char *text = malloc(16384);
	strcpy(text, POOL "pass_env = PMTEST_MISSING\n");
	for (int i = 1; i < PM_MAX_ENV; i++)
		sprintf(text + strlen(text), "env[V%d] = %d\n", i, i);
	parse_ok(&c, text);
	assert_int_equal(c.pools[0].nenv, PM_MAX_ENV - 1);
	pm_config_free(&c);
	strcat(text, "env[ONE_MORE] = x\n");
	parse_err(text, 4 + PM_MAX_ENV, "more than 128 environment variables in pool [www]");
	free(text);
}

/* ---------------------------------------------------------------- key and section errors */

static void test_unknown_and_misplaced_keys(void **state)
{
	(void)state;
	parse_err(POOL "pm.max_chidlren = 5\n", 4, "unknown key 'pm.max_chidlren' in pool [www]");
	parse_err("[global]\nlogfile = /x\n", 2, "unknown key 'logfile' in [global]");
	parse_err("listen = :9000\n", 1, "key 'listen' belongs in a pool section, not in [global]");
	parse_err(POOL "pid_file = /run/x\n", 4,
	          "key 'pid_file' belongs in [global], not in pool [www]");
	parse_err(POOL "include = /etc/x\n", 4, "key 'include' belongs in [global]");
	parse_err(POOL "Listen = :1\n", 4, "unknown key 'Listen'");
	parse_err(POOL "just words\n", 4,
	          "expected 'key = value', '[section]' or a comment, got 'just words'");
	parse_err(POOL " = value\n", 4, "missing key before '='");
}

static void test_duplicates(void **state)
{
	(void)state;
	parse_err(POOL "user = a\n\nuser = b\n", 6,
	          "duplicate key 'user' in pool [www] (first on line 4)");
	parse_err(POOL "listen = :1\n", 4,
	          "duplicate key 'listen' in pool [www] (first on line 2)");
	parse_err(POOL "command = /bin/b\n", 4, "duplicate key 'command'");
	parse_err("log = /a\n[global]\nerror_log = /b\n" POOL, 3,
	          "duplicate key 'error_log' in [global] (first set at t.conf:1)");
	parse_err("pid = /a\npid_file = /b\n" POOL, 2, "duplicate key 'pid_file' in [global]");
	parse_err("stop_timeout = 1s\nprocess_control_timeout = 2s\n" POOL, 2,
	          "duplicate key 'process_control_timeout'");
	parse_err(POOL "\n[www]\n", 5, "duplicate pool [www] (first at t.conf:1)");

	/* The same key in two pools is not a duplicate. */
	pm_config c;
	parse_ok(&c, POOL "user = a\n[b]\nlisten = :1\ncommand = /bin/b\nuser = b\n");
	assert_string_equal(c.pools[0].user, "a");
	assert_string_equal(c.pools[1].user, "b");
	pm_config_free(&c);
}

static void test_sections(void **state)
{
	(void)state;
	parse_err("[www\n", 1, "section header '[www' lacks its closing ']'");
	parse_err("[]\n", 1, "invalid pool name []");
	parse_err("[a b]\n", 1, "invalid pool name [a b]");
	parse_err("[ www ]\n", 1, "invalid pool name [ www ]");
	parse_err("[a/b]\n", 1, "invalid pool name [a/b]");
	char text[256] = "[";
	memset(text + 1, 'n', PM_NAME_MAX - 1);
	strcat(text, "]\nlisten = :1\ncommand = /bin/x\n");
	pm_config c;
	parse_ok(&c, text);
	assert_int_equal(strlen(c.pools[0].name), PM_NAME_MAX - 1);
	pm_config_free(&c);
	memset(text + 1, 'n', PM_NAME_MAX);
	strcpy(text + 1 + PM_NAME_MAX, "]\n");
	parse_err(text, 1, "invalid pool name");

	/* PM_MAX_POOLS pools, then one too many. */
	char *big = malloc(64 * 1024);
	big[0] = 0;
	for (int i = 0; i < PM_MAX_POOLS; i++)
		sprintf(big + strlen(big), "[p%d]\nlisten = :%d\ncommand = /bin/x\n", i, 1000 + i);
	parse_ok(&c, big);
	assert_int_equal(c.npools, PM_MAX_POOLS);
	assert_string_equal(c.pools[63].name, "p63");
	assert_int_equal(c.pools[63].line, 63 * 3 + 1);
	pm_config_free(&c);
	strcat(big, "[extra]\n");
	parse_err(big, PM_MAX_POOLS * 3 + 1, "more than 64 pools");
	free(big);
}

static void test_text_limits(void **state)
{
	(void)state;
	/* 4096 bytes of line are fine (a CR before the LF does not count), 4097 are not. */
	char *text = malloc(3 * 4096);
	strcpy(text, POOL "user = ");
	size_t pre = strlen(POOL);
	size_t at = strlen(text);
	memset(text + at, 'u', 4096 - (at - pre));
	strcpy(text + pre + 4096, "\r\n");
	pm_config c;
	parse_ok(&c, text);
	assert_int_equal(strlen(c.pools[0].user), 4096 - strlen("user = "));
	pm_config_free(&c);
	text[pre + 4096] = 'u';
	text[pre + 4097] = 0;
	parse_err(text, 4, "line longer than 4096 bytes");
	free(text);

	static const char nul[] = "[www]\nlisten = :1\x00\ncommand = /bin/x\n";
	parse_err_len(nul, sizeof nul - 1, 2, "NUL byte");
	parse_err(POOL "user = a\x01z\n", 4, "invalid control character 0x01");
	parse_err(POOL "user = a\x7fz\n", 4, "invalid control character 0x7f");
	parse_err(POOL "user = a\rz\n", 4, "invalid control character 0x0d");
	parse_err("\x1b[www]\n", 1, "invalid control character 0x1b");
	/* Bytes above 127 are text (UTF-8 names and paths). */
	parse_ok(&c, POOL "user = \xc3\xa9t\xc3\xa9\n");
	assert_string_equal(c.pools[0].user, "\xc3\xa9t\xc3\xa9");
	pm_config_free(&c);

	/* More than 1 MiB: refused before looking at the text. */
	size_t big = 1024 * 1024 + 1;
	char *huge = malloc(big);
	memset(huge, '\n', big);
	parse_err_len(huge, big, 0, "larger than 1 MiB");
	memcpy(huge, POOL, strlen(POOL));
	if (pm_config_parse(&c, "t.conf", huge, big - 1, g_err, sizeof g_err))
		fail_msg("1 MiB exactly refused: %s", g_err);
	pm_config_free(&c);
	free(huge);

	/* Text need not be NUL-terminated: only len bytes are read. */
	char raw[sizeof POOL + 8];
	memcpy(raw, POOL "user=zz", sizeof POOL - 1 + 7);
	parse_err_len(raw, sizeof POOL - 1 + 5, 4, "user needs a value");
}

/* ---------------------------------------------------------------- validation */

static void test_validate_required(void **state)
{
	(void)state;
	parse_err("; nothing\n", 0, "no pool defined");
	parse_err("[global]\nlog = /x\n", 0, "no pool defined");
	parse_err("\n\n[www]\ncommand = /bin/x\n", 3, "pool [www]: listen is required");
	parse_err("[www]\nlisten = :1\n", 1, "pool [www]: command is required");
	parse_err(POOL "[b]\nlisten = :2\ncommand = php-cgi -b\n", 4,
	          "pool [b]: command must start with an absolute path, got 'php-cgi'");
	parse_err("[a]\nlisten = :1\ncommand = \"\"\n", 1,
	          "command must start with an absolute path, got ''");
	/* The include refusal of the text parser. */
	parse_err("include = /etc/*.conf\n" POOL, 1, "include is not allowed here");
}

static void test_validate_scaling(void **state)
{
	(void)state;
	pm_config c;
	/* start_servers follows the spare bounds it was not given. */
	parse_ok(&c, POOL "pm.min_spare_servers = 4\npm.max_spare_servers = 9\n"
	                  "pm.max_children = 20\n");
	assert_int_equal(c.pools[0].start_servers, 6);
	pm_config_free(&c);
	parse_ok(&c, POOL "pm.min_spare_servers = 2\npm.max_spare_servers = 2\n"
	                  "pm.start_servers = 2\npm.max_children = 2\n");
	assert_int_equal(c.pools[0].start_servers, 2);
	pm_config_free(&c);

	parse_err(POOL "pm.min_spare_servers = 4\npm.max_spare_servers = 3\n", 1,
	          "pool [www]: pm.min_spare_servers (4) must not exceed pm.max_spare_servers (3)");
	parse_err(POOL "pm.max_spare_servers = 6\n", 1,
	          "pool [www]: pm.max_spare_servers (6) must not exceed pm.max_children (5)");
	parse_err(POOL "pm.start_servers = 4\n", 1,
	          "pool [www]: pm.start_servers (4) must be within "
	          "pm.min_spare_servers..pm.max_spare_servers (1..3)");
	parse_err(POOL "pm.min_spare_servers = 2\npm.start_servers = 1\n", 1,
	          "pm.start_servers (1) must be within");

	/* The spare bounds do not matter to the other modes. */
	parse_ok(&c, POOL "pm = static\npm.max_children = 1\npm.max_spare_servers = 9\n");
	assert_int_equal(c.pools[0].mode, PM_STATIC);
	assert_int_equal(c.pools[0].max_children, 1);
	pm_config_free(&c);
	parse_ok(&c, POOL "pm = ondemand\npm.process_idle_timeout = 250ms\n");
	assert_int_equal(c.pools[0].mode, PM_ONDEMAND);
	assert_int_equal(c.pools[0].idle_timeout_ms, 250);
	pm_config_free(&c);
	parse_err(POOL "pm = ondemand\npm.process_idle_timeout = 0\n", 1,
	          "pool [www]: pm.process_idle_timeout must be above 0 with pm = ondemand");
	parse_ok(&c, POOL "pm = dynamic\npm.process_idle_timeout = 0\n");
	pm_config_free(&c);

	parse_err(POOL "request_terminate_timeout = 30s\nrequest_slowlog_timeout = 30s\n", 1,
	          "pool [www]: request_slowlog_timeout (30s) must be below "
	          "request_terminate_timeout (30s)");
	parse_ok(&c, POOL "request_terminate_timeout = 0\nrequest_slowlog_timeout = 5m\n");
	pm_config_free(&c);
	parse_ok(&c, POOL "request_terminate_timeout = 30s\nrequest_slowlog_timeout = 29999ms\n");
	pm_config_free(&c);
	parse_err(POOL "listen.backlog = 64\nshed_queue = 64\n", 1,
	          "pool [www]: shed_queue (64) must be below listen.backlog (64)");
}

static void test_validate_addresses(void **state)
{
	(void)state;
	parse_err(POOL "\n[b]\nlisten = unix:/run/www.sock\ncommand = /bin/b\n", 5,
	          "pools [b] and [www] (t.conf:1) both listen on 'unix:/run/www.sock'");
	parse_err(POOL "[b]\nlisten = /run/www.sock\ncommand = /bin/b\n", 4,
	          "pools [b] and [www] (t.conf:1) both listen on '/run/www.sock'");
	parse_err("[a]\nlisten = tcp:127.0.0.1:9000\ncommand = /bin/a\n"
	          "[b]\nlisten = 127.0.0.1:9000\ncommand = /bin/b\n",
	          4, "pools [b] and [a]");
	parse_err("status_listen = /run/www.sock\n" POOL, 2,
	          "pool [www] listens on the status address 'unix:/run/www.sock'");

	/* pm_config_validate on a config built by hand. */
	pm_config c;
	parse_ok(&c, POOL);
	assert_int_equal(pm_config_validate(&c, g_err, sizeof g_err), 0);
	c.pools[0].max_children = 0;
	assert_int_equal(pm_config_validate(&c, g_err, sizeof g_err), -1);
	assert_non_null(strstr(g_err, "t.conf:1: pool [www]: pm.max_children must be 1..4096"));
	c.pools[0].max_children = 5;
	c.pools[0].mode = (enum pm_mode)9;
	assert_int_equal(pm_config_validate(&c, g_err, sizeof g_err), -1);
	assert_non_null(strstr(g_err, "unknown pm mode 9"));
	c.pools[0].mode = PM_DYNAMIC;
	char tiny[8];
	assert_int_equal(pm_config_validate(&c, tiny, 0), 0);
	c.pools[0].min_spare = 0;
	assert_int_equal(pm_config_validate(&c, tiny, sizeof tiny), -1);
	assert_int_equal(strlen(tiny), sizeof tiny - 1); /* truncated, terminated */
	pm_config_free(&c);
}

/* ---------------------------------------------------------------- includes */

static void test_include(void **state)
{
	(void)state;
	strcpy(g_dir, "/tmp/pmconf-XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	char path[256], sub[1024];
	snprintf(sub, sizeof sub, "%s/conf.d", g_dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	write_file("main.conf", "log = /var/log/x.log\n"
	                        "include = conf.d/*.conf\n"
	                        "stop_timeout = 5s\n"
	                        "[main]\nlisten = :9000\ncommand = /bin/main\n");
	/* Each file starts in [global]; pools end with their file. */
	write_file("conf.d/b.conf", "\n[bb]\nlisten = :9002\ncommand = /bin/b\n");
	write_file("conf.d/a.conf", "pid = /run/a.pid\n[aa]\nlisten = :9001\ncommand = /bin/a\n");
	write_file("conf.d/ignored.txt", "garbage\n");

	pm_config c;
	snprintf(path, sizeof path, "%s/main.conf", g_dir);
	if (pm_config_load(&c, path, g_err, sizeof g_err))
		fail_msg("load: %s", g_err);
	assert_int_equal(c.npools, 3);
	/* glob order: a.conf before b.conf, both before the rest of main.conf. */
	assert_string_equal(c.pools[0].name, "aa");
	assert_string_equal(c.pools[1].name, "bb");
	assert_string_equal(c.pools[2].name, "main");
	assert_int_equal(c.nfiles, 3);
	assert_string_equal(c.files[0], path);
	assert_non_null(strstr(c.pools[0].file, "conf.d/a.conf"));
	assert_int_equal(c.pools[0].line, 2);
	assert_non_null(strstr(c.pools[1].file, "conf.d/b.conf"));
	assert_int_equal(c.pools[1].line, 2);
	assert_ptr_equal(c.pools[2].file, c.files[0]);
	assert_int_equal(c.pools[2].line, 4);
	assert_string_equal(c.pid_file, "/run/a.pid");
	assert_string_equal(c.log_file, "/var/log/x.log");
	assert_int_equal(c.stop_timeout_ms, 5000);
	pm_config_free(&c);

	/* Relative to the including file, not to the working directory. */
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir("/"), 0);
	int rc = pm_config_load(&c, path + 1, g_err, sizeof g_err); /* "tmp/pmconf-.../main.conf" */
	assert_int_equal(chdir(cwd), 0);
	if (rc)
		fail_msg("load relative: %s", g_err);
	assert_int_equal(c.npools, 3);
	pm_config_free(&c);

	/* An error in an included file names that file and its line. */
	write_file("conf.d/c.conf", "[cc]\nlisten = :9003\nbogus = 1\n");
	assert_int_equal(pm_config_load(&c, path, g_err, sizeof g_err), -1);
	snprintf(sub, sizeof sub, "%s/conf.d/c.conf:3: unknown key 'bogus' in pool [cc]", g_dir);
	assert_string_equal(g_err, sub);
	assert_int_equal(c.npools, 0);
	assert_null(c.files);

	/* A key duplicated across files of [global]. */
	write_file("conf.d/c.conf", "log = /other\n");
	assert_int_equal(pm_config_load(&c, path, g_err, sizeof g_err), -1);
	snprintf(sub, sizeof sub,
	         "%s/conf.d/c.conf:1: duplicate key 'log' in [global] (first set at %s:1)", g_dir,
	         path);
	assert_string_equal(g_err, sub);

	/* The same pool name in two files. */
	write_file("conf.d/c.conf", "[main]\n");
	assert_int_equal(pm_config_load(&c, path, g_err, sizeof g_err), -1);
	snprintf(sub, sizeof sub,
	         "%s/main.conf:4: duplicate pool [main] (first at %s/conf.d/c.conf:1)", g_dir,
	         g_dir);
	assert_string_equal(g_err, sub);

	/* Validation of a pool from an included file points at its header there. */
	write_file("conf.d/c.conf", "\n\n[cc]\nlisten = :9000\ncommand = /bin/c\n");
	assert_int_equal(pm_config_load(&c, path, g_err, sizeof g_err), -1);
	snprintf(
	        sub, sizeof sub,
	        "%s/main.conf:4: pools [main] and [cc] (%s/conf.d/c.conf:3) both listen on ':9000'",
	        g_dir, g_dir);
	assert_string_equal(g_err, sub);
	snprintf(sub, sizeof sub, "%s/conf.d/c.conf", g_dir);
	assert_int_equal(unlink(sub), 0);

	/* A wildcard matching nothing is fine; a plain name that is missing is not. */
	write_file("empty.conf", "include = nothing.d/*.conf\ninclude = /nonexistent-dir/*\n" POOL);
	snprintf(path, sizeof path, "%s/empty.conf", g_dir);
	if (pm_config_load(&c, path, g_err, sizeof g_err))
		fail_msg("load: %s", g_err);
	assert_int_equal(c.nfiles, 1);
	pm_config_free(&c);
	write_file("missing.conf", POOL "[global]\n\ninclude = missing.conf.d\n");
	snprintf(path, sizeof path, "%s/missing.conf", g_dir);
	assert_int_equal(pm_config_load(&c, path, g_err, sizeof g_err), -1);
	snprintf(sub, sizeof sub, "%s:6: include 'missing.conf.d': no such file", path);
	assert_string_equal(g_err, sub);

	/* A directory matched by the glob. */
	write_file("dir.conf", "include = conf.d*\n" POOL);
	snprintf(path, sizeof path, "%s/dir.conf", g_dir);
	assert_int_equal(pm_config_load(&c, path, g_err, sizeof g_err), -1);
	snprintf(sub, sizeof sub, "%s:1: include 'conf.d*': %s/conf.d: is a directory", path,
	         g_dir);
	assert_string_equal(g_err, sub);

	/* A file including itself stops at the depth limit, at the ninth include line. */
	write_file("loop.conf", "; loops\ninclude = loop.conf\n");
	snprintf(path, sizeof path, "%s/loop.conf", g_dir);
	assert_int_equal(pm_config_load(&c, path, g_err, sizeof g_err), -1);
	snprintf(sub, sizeof sub, "%s:2: include 'loop.conf': includes nested deeper than 8", path);
	assert_string_equal(g_err, sub);

	/* Eight levels are allowed. */
	for (int i = 0; i < 8; i++) {
		char name[32], body[64];
		snprintf(name, sizeof name, "d%d.conf", i);
		snprintf(body, sizeof body, "include = d%d.conf\n", i + 1);
		write_file(name, body);
	}
	write_file("d8.conf", POOL);
	snprintf(path, sizeof path, "%s/d0.conf", g_dir);
	if (pm_config_load(&c, path, g_err, sizeof g_err))
		fail_msg("8 levels: %s", g_err);
	assert_int_equal(c.nfiles, 9);
	assert_int_equal(c.npools, 1);
	pm_config_free(&c);
	write_file("d8.conf", "include = d9.conf\n");
	write_file("d9.conf", POOL);
	assert_int_equal(pm_config_load(&c, path, g_err, sizeof g_err), -1);
	assert_non_null(
	        strstr(g_err, "d8.conf:1: include 'd9.conf': includes nested deeper than 8"));

	/* Whole-file errors: "FILE: reason". */
	snprintf(path, sizeof path, "%s/absent.conf", g_dir);
	assert_int_equal(pm_config_load(&c, path, g_err, sizeof g_err), -1);
	snprintf(sub, sizeof sub, "%s: cannot open: No such file or directory", path);
	assert_string_equal(g_err, sub);
	assert_int_equal(pm_config_load(&c, g_dir, g_err, sizeof g_err), -1);
	snprintf(sub, sizeof sub, "%s: is a directory", g_dir);
	assert_string_equal(g_err, sub);

	char *huge = malloc(1024 * 1024 + 2);
	memset(huge, '#', 1024 * 1024 + 1);
	huge[1024 * 1024 + 1] = 0;
	write_file("huge.conf", huge);
	free(huge);
	write_file("inc-huge.conf", POOL "[global]\ninclude = huge.conf\n");
	snprintf(path, sizeof path, "%s/inc-huge.conf", g_dir);
	assert_int_equal(pm_config_load(&c, path, g_err, sizeof g_err), -1);
	snprintf(sub, sizeof sub, "%s:5: include 'huge.conf': %s/huge.conf: larger than 1 MiB",
	         path, g_dir);
	assert_string_equal(g_err, sub);
	snprintf(path, sizeof path, "%s/huge.conf", g_dir);
	assert_int_equal(pm_config_load(&c, path, g_err, sizeof g_err), -1);
	snprintf(sub, sizeof sub, "%s: larger than 1 MiB", path);
	assert_string_equal(g_err, sub);

	/* Line numbers of load errors count from 1 in each file. */
	write_file("bad.conf", "\n\n\n[x]\nlisten = :1\ncommand = /bin/x\npm.max_children = 0\n");
	snprintf(path, sizeof path, "%s/bad.conf", g_dir);
	assert_int_equal(pm_config_load(&c, path, g_err, sizeof g_err), -1);
	snprintf(sub, sizeof sub, "%s:7: pm.max_children must be 1..4096, got 0", path);
	assert_string_equal(g_err, sub);

	rm_tree(g_dir);
}

/* ---------------------------------------------------------------- the one-liner */

static void test_args_minimal(void **state)
{
	(void)state;
	pm_config c;
	char *argv[] = {"--listen", "unix:/run/a.sock", "--", "/usr/bin/app", "-x", "y", NULL};
	args_ok(&c, argv);
	assert_int_equal(c.npools, 1);
	const pm_pool_conf *p = &c.pools[0];
	assert_string_equal(p->name, "default");
	assert_non_null(p->file);
	assert_int_equal(p->line, 0);
	assert_string_equal(p->listen, "unix:/run/a.sock");
	assert_int_equal(p->mode, PM_STATIC);
	assert_int_equal(p->max_children, 1);
	assert_int_equal(p->argc, 3);
	assert_string_equal(p->argv[0], "/usr/bin/app");
	assert_string_equal(p->argv[1], "-x");
	assert_string_equal(p->argv[2], "y");
	assert_null(p->argv[3]);
	assert_int_equal(p->nenv, 0);
	assert_int_equal(p->clear_env, 1);
	assert_int_equal(p->backlog, 511);
	assert_null(c.status_listen);
	pm_config_free(&c);

	/* Options after -- belong to the command. */
	char *argv2[] = {"--listen=:9000", "--workers=4", "--", "/bin/x", "--workers", "9", NULL};
	args_ok(&c, argv2);
	assert_string_equal(c.pools[0].listen, ":9000");
	assert_int_equal(c.pools[0].max_children, 4);
	assert_int_equal(c.pools[0].argc, 3);
	assert_string_equal(c.pools[0].argv[1], "--workers");
	pm_config_free(&c);
}

static void test_args_every_option(void **state)
{
	(void)state;
	pm_config c;
	setenv("PMTEST_PASS", "passed", 1);
	char *argv[] = {"--listen",
	                "127.0.0.1:9000",
	                "--workers",
	                "3",
	                "--user",
	                "www",
	                "--group=web",
	                "--chroot",
	                "/jail",
	                "--chdir",
	                "/app",
	                "--socket-mode",
	                "0600",
	                "--socket-owner",
	                "nginx",
	                "--socket-group",
	                "nginx",
	                "--backlog",
	                "128",
	                "--allow",
	                "127.0.0.1,::1",
	                "--env",
	                "A=1",
	                "--env=B=x=y",
	                "--pass-env",
	                "PMTEST_PASS",
	                "--pass-env",
	                "PMTEST_NONE",
	                "--clear-env",
	                "no",
	                "--max-requests",
	                "500",
	                "--request-timeout",
	                "30s",
	                "--slow-request",
	                "2s",
	                "--kill-grace",
	                "1s",
	                "--startup-timeout",
	                "20s",
	                "--crash-limit",
	                "4",
	                "--circuit-reset",
	                "2m",
	                "--shed-queue",
	                "16",
	                "--shed-response",
	                "overloaded",
	                "--catch-output",
	                "no",
	                "--rlimit-files",
	                "4096",
	                "--rlimit-core",
	                "0",
	                "--rlimit-memory",
	                "unlimited",
	                "--status",
	                "unix:/run/st.sock",
	                "--log",
	                "/var/log/pm.log",
	                "--pid-file",
	                "/run/pm.pid",
	                "--stop-timeout",
	                "10s",
	                "--spawn-rate",
	                "2",
	                "--",
	                "/bin/app",
	                NULL};
	args_ok(&c, argv);
	const pm_pool_conf *p = &c.pools[0];
	assert_string_equal(p->listen, "127.0.0.1:9000");
	assert_int_equal(p->mode, PM_STATIC);
	assert_int_equal(p->max_children, 3);
	assert_string_equal(p->user, "www");
	assert_string_equal(p->group, "web");
	assert_string_equal(p->chroot, "/jail");
	assert_string_equal(p->chdir, "/app");
	assert_int_equal(p->listen_mode, 0600);
	assert_string_equal(p->listen_owner, "nginx");
	assert_string_equal(p->listen_group, "nginx");
	assert_int_equal(p->backlog, 128);
	assert_string_equal(p->allowed_clients, "127.0.0.1,::1");
	assert_int_equal(p->nenv, 3);
	assert_string_equal(env_get(p, "A"), "1");
	assert_string_equal(env_get(p, "B"), "x=y");
	assert_string_equal(env_get(p, "PMTEST_PASS"), "passed");
	assert_int_equal(p->clear_env, 0);
	assert_true(p->max_requests == 500);
	assert_int_equal(p->request_timeout_ms, 30000);
	assert_int_equal(p->slow_request_ms, 2000);
	assert_int_equal(p->kill_grace_ms, 1000);
	assert_int_equal(p->startup_timeout_ms, 20000);
	assert_int_equal(p->crash_limit, 4);
	assert_int_equal(p->circuit_reset_ms, 120000);
	assert_int_equal(p->shed_queue, 16);
	assert_int_equal(p->shed_response, PM_SHED_OVERLOADED);
	assert_int_equal(p->catch_output, 0);
	assert_int_equal(p->rlimit_files, 4096);
	assert_int_equal(p->rlimit_core, 0);
	assert_true(p->rlimit_memory == PM_RLIMIT_UNLIMITED);
	assert_int_equal(p->spawn_rate, 2);
	assert_string_equal(c.status_listen, "unix:/run/st.sock");
	assert_string_equal(c.log_file, "/var/log/pm.log");
	assert_string_equal(c.pid_file, "/run/pm.pid");
	assert_int_equal(c.stop_timeout_ms, 10000);
	pm_config_free(&c);
}

static void test_args_scaling(void **state)
{
	(void)state;
	pm_config c;
	char *dyn[] = {"--listen", ":1", "--dynamic", "2:5", "--", "/bin/x", NULL};
	args_ok(&c, dyn);
	assert_int_equal(c.pools[0].mode, PM_DYNAMIC);
	assert_int_equal(c.pools[0].min_spare, 2);
	assert_int_equal(c.pools[0].max_spare, 5);
	assert_int_equal(c.pools[0].max_children, 15);
	assert_int_equal(c.pools[0].start_servers, 3);
	pm_config_free(&c);

	char *dynw[] = {"--listen", ":1", "--dynamic=1:2", "--workers", "8", "--", "/bin/x", NULL};
	args_ok(&c, dynw);
	assert_int_equal(c.pools[0].max_children, 8);
	pm_config_free(&c);

	char *dynbig[] = {"--listen", ":1", "--dynamic", "1:2000", "--", "/bin/x", NULL};
	args_ok(&c, dynbig);
	assert_int_equal(c.pools[0].max_children, PM_MAX_CHILDREN_LIMIT);
	pm_config_free(&c);

	char *spare[] = {"--listen",
	                 ":1",
	                 "--min-spare",
	                 "2",
	                 "--max-spare",
	                 "4",
	                 "--max-children",
	                 "6",
	                 "--start-servers",
	                 "4",
	                 "--",
	                 "/bin/x",
	                 NULL};
	args_ok(&c, spare);
	assert_int_equal(c.pools[0].mode, PM_DYNAMIC);
	assert_int_equal(c.pools[0].max_children, 6);
	assert_int_equal(c.pools[0].start_servers, 4);
	pm_config_free(&c);

	char *ond[] = {"--listen",       ":1", "--ondemand", "--idle-timeout", "30s",
	               "--max-children", "12", "--",         "/bin/x",         NULL};
	args_ok(&c, ond);
	assert_int_equal(c.pools[0].mode, PM_ONDEMAND);
	assert_int_equal(c.pools[0].idle_timeout_ms, 30000);
	assert_int_equal(c.pools[0].max_children, 12);
	pm_config_free(&c);
	char *ondw[] = {"--listen", ":1", "--ondemand", "--workers", "7", "--", "/bin/x", NULL};
	args_ok(&c, ondw);
	assert_int_equal(c.pools[0].max_children, 7);
	assert_int_equal(c.pools[0].idle_timeout_ms, 10000);
	pm_config_free(&c);

	char *st[] = {"--listen", ":1", "--max-children", "9", "--", "/bin/x", NULL};
	args_ok(&c, st);
	assert_int_equal(c.pools[0].mode, PM_STATIC);
	assert_int_equal(c.pools[0].max_children, 9);
	pm_config_free(&c);

	char *e1[] = {"--listen", ":1", "--dynamic", "3:2", "--", "/bin/x", NULL};
	args_err(e1, "--dynamic MIN:MAX needs 1 <= MIN <= MAX <= 4096, got 3:2");
	char *e2[] = {"--listen", ":1", "--dynamic", "0:2", "--", "/bin/x", NULL};
	args_err(e2, "--dynamic MIN:MAX needs 1 <= MIN <= MAX");
	char *e3[] = {"--listen", ":1", "--dynamic", "2", "--", "/bin/x", NULL};
	args_err(e3, "--dynamic needs MIN:MAX, got '2'");
	char *e4[] = {"--listen", ":1",     "--dynamic", "1:99999999999999999999",
	              "--",       "/bin/x", NULL};
	args_err(e4, "--dynamic MIN:MAX needs");
	char *e5[] = {"--listen", ":1", "--dynamic", "1:2", "--ondemand", "--", "/bin/x", NULL};
	args_err(e5, "either dynamic or --ondemand");
	char *e6[] = {"--listen", ":1", "--idle-timeout", "5s", "--", "/bin/x", NULL};
	args_err(e6, "--idle-timeout applies to --ondemand pools");
	char *e7[] = {"--listen", ":1", "--workers", "2", "--max-children",
	              "3",        "--", "/bin/x",    NULL};
	args_err(e7, "--workers and --max-children both set");
	char *e8[] = {"--listen", ":1", "--dynamic", "2:5", "--workers", "3", "--", "/bin/x", NULL};
	args_err(e8,
	         "pool [default]: pm.max_spare_servers (5) must not exceed pm.max_children (3)");
	char *e9[] = {"--listen", ":1", "--workers", "0", "--", "/bin/x", NULL};
	args_err(e9, "--workers must be 1..4096, got 0");
	char *e10[] = {"--listen", ":1", "--ondemand", "--idle-timeout", "0", "--", "/bin/x", NULL};
	args_err(e10, "pm.process_idle_timeout must be above 0");
	char *e11[] = {"--listen", ":1", "--dynamic", "1:2", "--min-spare",
	               "1",        "--", "/bin/x",    NULL};
	args_err(e11, "--dynamic MIN:MAX and --min-spare/--max-spare");
}

static void test_args_errors(void **state)
{
	(void)state;
	char *a1[] = {"--", "/bin/x", NULL};
	args_err(a1, "--listen ADDRESS is required");
	char *a2[] = {"--listen", ":1", NULL};
	args_err(a2, "missing the command");
	char *a3[] = {"--listen", ":1", "--", NULL};
	args_err(a3, "missing the command");
	char *a4[] = {"--listen", NULL};
	args_err(a4, "--listen needs a value");
	char *a5[] = {"--listen", ":1", "--frobnicate", "--", "/bin/x", NULL};
	args_err(a5, "unknown option '--frobnicate'");
	char *a6[] = {"--listen", ":1", "/bin/x", NULL};
	args_err(a6, "unexpected '/bin/x' (the command goes after --)");
	char *a7[] = {"--listen", ":1", "--listen", ":2", "--", "/bin/x", NULL};
	args_err(a7, "--listen given twice");
	char *a8[] = {"--listen", ":1", "--ondemand=yes", "--", "/bin/x", NULL};
	args_err(a8, "--ondemand takes no value");
	char *a9[] = {"--listen", "nowhere", "--", "/bin/x", NULL};
	args_err(a9, "--listen: invalid address 'nowhere'");
	char *a10[] = {"--listen", ":1", "--env", "NOVALUE", "--", "/bin/x", NULL};
	args_err(a10, "--env needs NAME=VALUE, got 'NOVALUE'");
	char *a11[] = {"--listen", ":1", "--env", "A=1", "--env", "A=2", "--", "/bin/x", NULL};
	args_err(a11, "duplicate variable A");
	char *a12[] = {"--listen", ":1", "--env", "=1", "--", "/bin/x", NULL};
	args_err(a12, "invalid variable name in '=1'");
	char *a13[] = {"--listen", ":1", "--stop-timeout", "forever", "--", "/bin/x", NULL};
	args_err(a13, "--stop-timeout must be a duration like 250ms, 5s, 2m or 1h, got 'forever'");
	char *a14[] = {"--listen", ":1", "--shed-response", "404", "--", "/bin/x", NULL};
	args_err(a14, "--shed-response must be 503 or overloaded, got '404'");
	char *a15[] = {"--listen", ":1", "--request-timeout", "5s", "--slow-request", "9s", "--",
	               "/bin/x",   NULL};
	args_err(a15, "request_slowlog_timeout (9s) must be below request_terminate_timeout (5s)");
	char *a16[] = {"--listen", ":1", "--", "pm-no-such-command-anywhere", NULL};
	args_err(a16, "command 'pm-no-such-command-anywhere' not found in PATH");
	char *a17[] = {"--listen", ":1", "--chroot", "/jail", "--", "sh", NULL};
	args_err(a17, "with --chroot the command must be an absolute path");
	char *a18[] = {"--listen", ":1", "--", "", NULL};
	args_err(a18, "the command is empty");
	char *a19[] = {"--listen", ":1", "-w", "2", "--", "/bin/x", NULL};
	args_err(a19, "unexpected '-w'");
	char *a20[] = {"--listen", ":1", "--socket-mode", "999", "--", "/bin/x", NULL};
	args_err(a20, "--socket-mode must be an octal mode");
	char *a21[] = {"--listen", ":1", "--", "/bin/x", NULL};
	pm_config c;
	assert_int_equal(pm_config_from_args(&c, 0, a21, g_err, sizeof g_err), -1);
	assert_non_null(strstr(g_err, "usage: --listen ADDRESS is required"));
	pm_config_free(&c);

	char *many[PM_MAX_ARGS + 5] = {"--listen", ":1", "--"};
	for (int i = 3; i < PM_MAX_ARGS + 4; i++)
		many[i] = "/bin/x";
	many[PM_MAX_ARGS + 4] = NULL;
	args_err(many, "the command has more than 64 words");
	many[PM_MAX_ARGS + 3] = NULL;
	args_ok(&c, many);
	assert_int_equal(c.pools[0].argc, PM_MAX_ARGS);
	pm_config_free(&c);
}

static void test_args_command_lookup(void **state)
{
	(void)state;
	pm_config c;
	char *saved = getenv("PATH") ? strdup(getenv("PATH")) : NULL;

	strcpy(g_dir, "/tmp/pmconf-XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	write_file("tool", "#!/bin/sh\n");
	write_file("plain", "not executable\n");
	char path[256];
	snprintf(path, sizeof path, "%s/tool", g_dir);
	assert_int_equal(chmod(path, 0755), 0);

	/* The first directory of PATH holding an executable regular file wins. */
	char search[512];
	snprintf(search, sizeof search, "/nonexistent-pm-dir::%s:/usr/bin:/bin", g_dir);
	setenv("PATH", search, 1);
	char *a1[] = {"--listen", ":1", "--", "tool", "arg", NULL};
	args_ok(&c, a1);
	assert_string_equal(c.pools[0].argv[0], path);
	assert_string_equal(c.pools[0].argv[1], "arg");
	pm_config_free(&c);
	char *a2[] = {"--listen", ":1", "--", "plain", NULL};
	args_err(a2, "command 'plain' not found in PATH");

	/* A relative path with a slash is taken from the working directory. */
	char cwd[PATH_MAX], here[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(g_dir), 0);
	assert_non_null(getcwd(here, sizeof here)); /* /tmp may be a symlink */
	char *a4[] = {"--listen", ":1", "--", "./tool", NULL};
	int rc = pm_config_from_args(&c, 4, a4, g_err, sizeof g_err);
	/* An empty PATH entry means the working directory too. */
	char *a5[] = {"--listen", ":1", "--", "tool", NULL};
	setenv("PATH", "/nonexistent-pm-dir:", 1);
	pm_config c2;
	int rc2 = pm_config_from_args(&c2, 4, a5, g_err, sizeof g_err);
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(rc, 0);
	assert_int_equal(rc2, 0);
	char want[PATH_MAX + 16];
	snprintf(want, sizeof want, "%s/./tool", here);
	assert_string_equal(c.pools[0].argv[0], want);
	assert_non_null(strstr(c2.pools[0].argv[0], "/tool"));
	assert_int_equal(c2.pools[0].argv[0][0], '/');
	pm_config_free(&c);
	pm_config_free(&c2);

	/* No PATH at all: the usual directories. */
	unsetenv("PATH");
	char *a6[] = {"--listen", ":1", "--", "sh", NULL};
	args_ok(&c, a6);
	assert_int_equal(c.pools[0].argv[0][0], '/');
	assert_non_null(strstr(c.pools[0].argv[0], "/sh"));
	pm_config_free(&c);

	if (saved) {
		setenv("PATH", saved, 1);
		free(saved);
	}
	rm_tree(g_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_init_defaults),
	        cmocka_unit_test(test_pool_defaults),
	        cmocka_unit_test(test_every_pool_key),
	        cmocka_unit_test(test_global_keys),
	        cmocka_unit_test(test_keys_before_section_are_global),
	        cmocka_unit_test(test_comments_blanks_crlf),
	        cmocka_unit_test(test_quoting),
	        cmocka_unit_test(test_command_words),
	        cmocka_unit_test(test_durations),
	        cmocka_unit_test(test_sizes),
	        cmocka_unit_test(test_bools_and_modes),
	        cmocka_unit_test(test_integer_ranges),
	        cmocka_unit_test(test_listen_forms),
	        cmocka_unit_test(test_env),
	        cmocka_unit_test(test_unknown_and_misplaced_keys),
	        cmocka_unit_test(test_duplicates),
	        cmocka_unit_test(test_sections),
	        cmocka_unit_test(test_text_limits),
	        cmocka_unit_test(test_validate_required),
	        cmocka_unit_test(test_validate_scaling),
	        cmocka_unit_test(test_validate_addresses),
	        cmocka_unit_test(test_include),
	        cmocka_unit_test(test_args_minimal),
	        cmocka_unit_test(test_args_every_option),
	        cmocka_unit_test(test_args_scaling),
	        cmocka_unit_test(test_args_errors),
	        cmocka_unit_test(test_args_command_lookup),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
