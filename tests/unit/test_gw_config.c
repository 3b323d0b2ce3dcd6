/*
 * test_gw_config.c — the `fcgikit gateway` configuration (src/gateway/config.c): every key
 * landing in its field, the defaults, backends with weights, the balance policies, the value
 * syntax and ranges, every error carrying FILE:LINE and its reason, and the command line
 * (its own syntax, and its options overriding a --config file).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <fcntl.h>

#include "gateway/config.h"

#define HEAD "[gateway]\nlisten = 127.0.0.1:8080\nbackend = unix:/run/a.sock\n"

static char g_err[2048];

static void parse_ok(gw_config *c, const char *text)
{
	if (gw_config_parse(c, "t.conf", text, strlen(text), g_err, sizeof g_err))
		fail_msg("parse failed: %s\n--- input:\n%s", g_err, text);
	if (gw_config_validate(c, g_err, sizeof g_err))
		fail_msg("validate failed: %s\n--- input:\n%s", g_err, text);
}

/* text must fail with "t.conf:LINE: " and reason somewhere in the message. */
static void parse_err(const char *text, int line, const char *reason)
{
	gw_config c;
	char want[64];
	snprintf(want, sizeof want, "t.conf:%d: ", line);
	memset(g_err, 'x', sizeof g_err);
	int rc = gw_config_parse(&c, "t.conf", text, strlen(text), g_err, sizeof g_err);
	if (!rc)
		rc = gw_config_validate(&c, g_err, sizeof g_err);
	if (!rc) {
		gw_config_free(&c);
		fail_msg("parse succeeded, want \"%s%s\"\n--- input:\n%s", want, reason, text);
	}
	if (strncmp(g_err, want, strlen(want)) || !strstr(g_err, reason))
		fail_msg("error \"%s\", want \"%s...%s\"", g_err, want, reason);
	gw_config_free(&c);
	assert_null(c.backends);
	assert_null(c.listen);
}

static void test_defaults(void **state)
{
	(void)state;
	gw_config c;
	parse_ok(&c, HEAD);
	assert_string_equal(c.listen, "127.0.0.1:8080");
	assert_int_equal(c.nbackends, 1);
	assert_string_equal(c.backends[0].addr, "unix:/run/a.sock");
	assert_int_equal(c.backends[0].weight, 1);
	assert_int_equal(c.balance, GW_BAL_RR);
	assert_true(c.max_body == (uint64_t)64 << 20);
	assert_true(c.max_buffer == (uint64_t)32 << 20);
	assert_int_equal(c.max_conns, 1024);
	assert_int_equal(c.upstream_timeout_ms, 60000);
	assert_int_equal(c.connect_timeout_ms, 3000);
	assert_int_equal(c.queue, 256);
	assert_int_equal(c.workers, 0); /* auto: one per core */
	assert_null(c.probe_uri);
	assert_int_equal(c.probe_interval_ms, 0);
	assert_null(c.root);
	assert_null(c.index);
	assert_null(c.access_log);
	assert_string_equal(c.file, "t.conf");
	assert_int_equal(c.line, 1);
	gw_config_free(&c);
}

static void test_every_key(void **state)
{
	(void)state;
	gw_config c;
	parse_ok(&c, "; a comment\n"
	             "# another\n"
	             "\n"
	             "[gateway]\n"
	             "listen = [::1]:8081\n"
	             "root = /srv/www\n"
	             "balance = least\n"
	             "index = \"main page.php\"\n"
	             "script_ext =\n"
	             "max_body = 16M\n"
	             "max_buffer = 128k\n"
	             "max_conns = 50\n"
	             "upstream_timeout = 5s\n"
	             "connect_timeout = 250ms\n"
	             "access_log = /var/log/gw.log\n"
	             "status_path = /status\n"
	             "probe_interval = 2000\n"
	             "sendfile_root = /srv/files\n"
	             "backend_conns = 4\n"
	             "queue = 0\n"
	             "authorizer = unix:/run/auth.sock\n"
	             "auth_prefix = /private\n"
	             "workers = auto\n"
	             "backend = 127.0.0.1:9000 weight=3\n"
	             "backend = tcp:localhost:9001,weight=1000\n"
	             "backend = /run/c.sock\n");
	assert_string_equal(c.listen, "[::1]:8081");
	assert_string_equal(c.root, "/srv/www");
	assert_int_equal(c.balance, GW_BAL_LEAST);
	assert_string_equal(c.index, "main page.php");
	assert_string_equal(c.script_ext, "");
	assert_true(c.max_body == (uint64_t)16 << 20);
	assert_true(c.max_buffer == 128 * 1024);
	assert_int_equal(c.max_conns, 50);
	assert_int_equal(c.upstream_timeout_ms, 5000);
	assert_int_equal(c.connect_timeout_ms, 250);
	assert_string_equal(c.access_log, "/var/log/gw.log");
	assert_string_equal(c.status_path, "/status");
	assert_int_equal(c.probe_interval_ms, 2000);
	assert_string_equal(c.sendfile_root, "/srv/files");
	assert_int_equal(c.backend_conns, 4);
	assert_int_equal(c.queue, 0);
	assert_string_equal(c.authorizer, "unix:/run/auth.sock");
	assert_string_equal(c.auth_prefix, "/private");
	assert_int_equal(c.workers, 0);
	assert_int_equal(c.nbackends, 3);
	assert_string_equal(c.backends[0].addr, "127.0.0.1:9000");
	assert_int_equal(c.backends[0].weight, 3);
	assert_string_equal(c.backends[1].addr, "tcp:localhost:9001");
	assert_int_equal(c.backends[1].weight, 1000);
	assert_string_equal(c.backends[2].addr, "/run/c.sock");
	assert_int_equal(c.backends[2].weight, 1);
	assert_int_equal(c.line, 4);
	gw_config_free(&c);
}

static void test_balance(void **state)
{
	(void)state;
	static const struct {
		const char *v;
		gw_balance b;
		const char *header;
	} ok[] = {
	        {"rr", GW_BAL_RR, NULL},
	        {"wrr", GW_BAL_RR, NULL},
	        {"least", GW_BAL_LEAST, NULL},
	        {"hash:uri", GW_BAL_HASH_URI, NULL},
	        {"hash:client", GW_BAL_HASH_CLIENT, NULL},
	        {"hash:header:X-User", GW_BAL_HASH_HEADER, "X-User"},
	};
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
		char text[256];
		snprintf(text, sizeof text, HEAD "balance = %s\n", ok[i].v);
		gw_config c;
		parse_ok(&c, text);
		assert_int_equal(c.balance, ok[i].b);
		if (ok[i].header)
			assert_string_equal(c.hash_header, ok[i].header);
		else
			assert_null(c.hash_header);
		gw_config_free(&c);
	}
	parse_err(HEAD "balance = random\n", 4, "balance: random: expected rr, least");
	parse_err(HEAD "balance = hash:header:\n", 4, "needs a header name");
	parse_err(HEAD "balance = hash:header:a b\n", 4, "needs a header name");
	parse_err(HEAD "balance = hash\n", 4, "expected rr, least");
}

static void test_values(void **state)
{
	(void)state;
	gw_config c;
	/* sizes: K, M, G are powers of 1024, either case */
	parse_ok(&c, HEAD "max_body = 1g\nmax_buffer = 65536\n");
	assert_true(c.max_body == (uint64_t)1 << 30);
	assert_true(c.max_buffer == 65536);
	gw_config_free(&c);
	/* a duration without a unit is milliseconds, as on the command line */
	parse_ok(&c, HEAD "upstream_timeout = 1500\nconnect_timeout = 1s\n");
	assert_int_equal(c.upstream_timeout_ms, 1500);
	assert_int_equal(c.connect_timeout_ms, 1000);
	gw_config_free(&c);
	/* blanks around '=' and at the end; CRLF */
	parse_ok(&c, "[gateway]\r\n  listen\t=   :8080   \r\nbackend=unix:/a\r\n");
	assert_string_equal(c.listen, ":8080");
	gw_config_free(&c);
	/* quotes: \" and \\ */
	parse_ok(&c, HEAD "index = \"a \\\"b\\\" \\\\c\"\n");
	assert_string_equal(c.index, "a \"b\" \\c");
	gw_config_free(&c);
}

static void test_value_errors(void **state)
{
	(void)state;
	parse_err(HEAD "max_body = 12x\n", 4, "max_body: 12x: not a size");
	parse_err(HEAD "max_body = 0\n", 4, "out of range 1..");
	parse_err(HEAD "max_body = 2T\n", 4, "not a size");
	parse_err(HEAD "max_body = 99999999999999999999999\n", 4, "out of range");
	parse_err(HEAD "max_body = -1\n", 4, "not a size");
	parse_err(HEAD "max_buffer = 1000\n", 4, "out of range 65536..");
	parse_err(HEAD "max_conns = 0\n", 4, "out of range 1..1000000");
	parse_err(HEAD "max_conns = lots\n", 4, "not a number");
	parse_err(HEAD "upstream_timeout = 5 s\n", 4, "not a duration");
	parse_err(HEAD "upstream_timeout = 0\n", 4, "out of range");
	parse_err(HEAD "connect_timeout = 11m\n", 4, "not a duration");
	parse_err(HEAD "probe_interval = 3600001\n", 4, "out of range 0..3600000");
	parse_err(HEAD "backend_conns = 4097\n", 4, "out of range 1..4096");
	parse_err(HEAD "queue = 100001\n", 4, "out of range");
	parse_err(HEAD "workers = 65\n", 4, "out of range 1..64");
	parse_err(HEAD "workers = 0\n", 4, "out of range 1..64");
	parse_err(HEAD "status_path = status\n", 4, "must start with '/'");
	parse_err(HEAD "auth_prefix = x\n", 4, "must start with '/'");
	parse_err(HEAD "root =\n", 4, "empty path");
	parse_err(HEAD "authorizer = nowhere\n", 4, "not an address");
	parse_err(HEAD "index = \"open\n", 4, "unterminated quoted value");
	parse_err(HEAD "index = \"a\" b\n", 4, "text after the closing quote");
}

static void test_backends(void **state)
{
	(void)state;
	parse_err(HEAD "backend = unix:/run/a.sock\n", 4, "duplicate backend unix:/run/a.sock");
	parse_err(HEAD "backend = 127.0.0.1:9 weight=0\n", 4, "weight 0: not a number in 1..1000");
	parse_err(HEAD "backend = 127.0.0.1:9 weight=1001\n", 4, "weight 1001");
	parse_err(HEAD "backend = 127.0.0.1:9 weight=x\n", 4, "weight x");
	parse_err(HEAD "backend = 127.0.0.1:9 max=3\n", 4, "unknown backend parameter 'max=3'");
	parse_err(HEAD "backend = 127.0.0.1\n", 4, "127.0.0.1: not an address");
	parse_err(HEAD "backend = 127.0.0.1:0\n", 4, "not an address");
	parse_err(HEAD "backend = 127.0.0.1:65536\n", 4, "not an address");
	parse_err(HEAD "backend = unix:\n", 4, "not an address");
	parse_err(HEAD "backend =\n", 4, "expected ADDR [weight=N]");
	/* many backends: all kept, in order */
	char *text = malloc(64 * 1100);
	assert_non_null(text);
	size_t n = (size_t)sprintf(text, "[gateway]\nlisten = :1\n");
	for (int i = 0; i < GW_MAX_BACKENDS; i++)
		n += (size_t)sprintf(text + n, "backend = unix:/b%d weight=%d\n", i, i % 7 + 1);
	gw_config c;
	parse_ok(&c, text);
	assert_int_equal(c.nbackends, GW_MAX_BACKENDS);
	assert_string_equal(c.backends[GW_MAX_BACKENDS - 1].addr, "unix:/b1023");
	assert_int_equal(c.backends[10].weight, 4);
	gw_config_free(&c);
	sprintf(text + n, "backend = unix:/one-more\n");
	parse_err(text, GW_MAX_BACKENDS + 3, "more than 1024 backends");
	free(text);
}

static void test_structure_errors(void **state)
{
	(void)state;
	parse_err("listen = :8080\n", 1, "key 'listen' before the [gateway] section");
	parse_err("[gateway]\n[gateway]\n", 2, "duplicate section [gateway] (first on line 1)");
	parse_err("[backend x]\n", 1, "unknown section [backend x]");
	parse_err("[gateway\n", 1, "lacks its closing ']'");
	parse_err(HEAD "bogus = 1\n", 4, "unknown key 'bogus'");
	parse_err(HEAD "max-body = 1\n", 4, "unknown key 'max-body'");
	parse_err(HEAD "listen = :9090\n", 4, "duplicate key 'listen' (first on line 2)");
	parse_err(HEAD "just words\n", 4, "expected 'key = value'");
	parse_err(HEAD " = 3\n", 4, "missing key before '='");
	parse_err(HEAD "index = a\001b\n", 4, "invalid control character 0x01");
	parse_err("", 1, "no [gateway] section");
	parse_err("; only a comment\n", 1, "no [gateway] section");
	/* required keys: reported at the [gateway] line */
	parse_err("\n[gateway]\nbackend = unix:/a\n", 2, "no listen address");
	parse_err("[gateway]\nlisten = :1\n", 1, "no backend");
	/* a line too long */
	char *text = malloc(GW_LINE_MAX + 256);
	assert_non_null(text);
	int n = sprintf(text, HEAD "index = ");
	memset(text + n, 'a', GW_LINE_MAX);
	strcpy(text + n + GW_LINE_MAX, "\n");
	parse_err(text, 4, "line longer than");
	free(text);
}

/* A message is NUL-terminated whatever the buffer's size. */
static void test_small_error_buffer(void **state)
{
	(void)state;
	gw_config c;
	char tiny[6];
	memset(tiny, 'x', sizeof tiny);
	assert_int_equal(gw_config_parse(&c, "t.conf", "bogus\n", 6, tiny, sizeof tiny), -1);
	assert_non_null(memchr(tiny, 0, sizeof tiny));
	assert_int_equal(gw_config_parse(&c, "t.conf", "bogus\n", 6, NULL, 0), -1);
	gw_config_free(&c);
}

static void test_set(void **state)
{
	(void)state;
	gw_config c;
	gw_config_init(&c);
	char why[256];
	assert_int_equal(gw_config_set(&c, "max-body", "2k", why, sizeof why), 0);
	assert_int_equal(gw_config_set(&c, "max_body", "3k", why, sizeof why), 0);
	assert_true(c.max_body == 3072);
	assert_int_equal(gw_config_set(&c, "nope", "1", why, sizeof why), -1);
	assert_int_equal(gw_config_set(&c, "queue", "-3", why, sizeof why), -2);
	assert_non_null(strstr(why, "not a number"));
	assert_int_equal(gw_config_set(&c, "backend", "unix:/x,weight=2", why, sizeof why), 0);
	assert_int_equal(c.backends[0].weight, 2);
	gw_config_free(&c);
}

static int args(gw_config *c, gw_cmdline *cl, ...)
{
	char *argv[32];
	int argc = 0;
	argv[argc++] = "gateway";
	va_list ap;
	va_start(ap, cl);
	for (char *a; (a = va_arg(ap, char *));)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	memset(g_err, 'x', sizeof g_err);
	return gw_config_from_args(c, argc, argv, cl, g_err, sizeof g_err);
}

static void test_args(void **state)
{
	(void)state;
	gw_config c;
	gw_cmdline cl;
	assert_int_equal(args(&c, &cl, "-l", "127.0.0.1:1", "--backend", "unix:/a,weight=5",
	                      "-b", "unix:/b", "--max-body=1M", "--balance", "hash:uri",
	                      "--workers", "auto", NULL),
	                 0);
	assert_string_equal(c.listen, "127.0.0.1:1");
	assert_int_equal(c.nbackends, 2);
	assert_int_equal(c.backends[0].weight, 5);
	assert_int_equal(c.backends[1].weight, 1);
	assert_true(c.max_body == 1 << 20);
	assert_int_equal(c.balance, GW_BAL_HASH_URI);
	assert_int_equal(c.workers, 0);
	assert_null(cl.config);
	assert_false(cl.test);
	assert_null(c.file);
	gw_config_free(&c);

	assert_int_equal(args(&c, &cl, "--help", NULL), 0);
	assert_true(cl.help);
	gw_config_free(&c);

	assert_int_equal(args(&c, &cl, "--listen", ":1", NULL), -1);
	assert_string_equal(g_err, "usage: --listen and at least one --backend are required");
	assert_int_equal(args(&c, &cl, "-l", ":1", "-b", "unix:/a", "--bogus", "1", NULL), -1);
	assert_string_equal(g_err, "usage: unknown option '--bogus'");
	assert_int_equal(args(&c, &cl, "-l", ":1", "-b", "unix:/a", "--max_body", "1", NULL), -1);
	assert_non_null(strstr(g_err, "unknown option"));
	assert_int_equal(args(&c, &cl, "-l", ":1", "-b", "unix:/a", "--queue", NULL), -1);
	assert_string_equal(g_err, "usage: --queue needs a value");
	assert_int_equal(args(&c, &cl, "-l", ":1", "-b", "unix:/a", "--queue", "x", NULL), -1);
	assert_string_equal(g_err, "usage: --queue x: x: not a number");
	assert_int_equal(args(&c, &cl, "-l", ":1", "-b", "unix:/a", "stray", NULL), -1);
	assert_int_equal(args(&c, &cl, "-l", ":1", "-b", "unix:/a", "-b", "unix:/a", NULL), -1);
	assert_non_null(strstr(g_err, "duplicate backend"));
	gw_config_free(&c);
}

static void test_args_override_file(void **state)
{
	(void)state;
	char path[] = "/tmp/test_gw_config_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *text = "[gateway]\nlisten = 127.0.0.1:8080\nbackend = unix:/a weight=2\n"
	                   "backend = unix:/b\nmax_conns = 10\nqueue = 7\n";
	assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	gw_config c;
	gw_cmdline cl;
	/* options override the file's keys, wherever they stand; the rest stays */
	assert_int_equal(args(&c, &cl, "--max-conns", "20", "--config", path, "--test", NULL), 0);
	assert_string_equal(cl.config, path);
	assert_true(cl.test);
	assert_int_equal(c.max_conns, 20);
	assert_int_equal(c.queue, 7);
	assert_int_equal(c.nbackends, 2);
	assert_int_equal(c.backends[0].weight, 2);
	gw_config_free(&c);
	/* any --backend replaces the file's list */
	assert_int_equal(args(&c, &cl, "-c", path, "-b", "unix:/a", "-b", "unix:/z,weight=9", NULL),
	                 0);
	assert_int_equal(c.nbackends, 2);
	assert_string_equal(c.backends[0].addr, "unix:/a");
	assert_int_equal(c.backends[0].weight, 1);
	assert_string_equal(c.backends[1].addr, "unix:/z");
	gw_config_free(&c);
	/* the file's errors keep FILE:LINE */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	text = "[gateway]\nlisten = 127.0.0.1:8080\nmax_conns = many\n";
	assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	assert_int_equal(args(&c, &cl, "--config", path, NULL), -1);
	char want[128];
	snprintf(want, sizeof want, "%s:3: max_conns: many: not a number", path);
	assert_string_equal(g_err, want);
	/* the command line can supply what the file lacks */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	text = "[gateway]\nlisten = 127.0.0.1:8080\n";
	assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	assert_int_equal(args(&c, &cl, "--config", path, NULL), -1);
	snprintf(want, sizeof want, "%s:1: no backend", path);
	assert_non_null(strstr(g_err, want));
	assert_int_equal(args(&c, &cl, "--config", path, "-b", "unix:/q", NULL), 0);
	gw_config_free(&c);
	unlink(path);
	assert_int_equal(args(&c, &cl, "--config", path, NULL), -1);
	snprintf(want, sizeof want, "%s: No such file or directory", path);
	assert_string_equal(g_err, want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_defaults),
	        cmocka_unit_test(test_every_key),
	        cmocka_unit_test(test_balance),
	        cmocka_unit_test(test_values),
	        cmocka_unit_test(test_value_errors),
	        cmocka_unit_test(test_backends),
	        cmocka_unit_test(test_structure_errors),
	        cmocka_unit_test(test_small_error_buffer),
	        cmocka_unit_test(test_set),
	        cmocka_unit_test(test_args),
	        cmocka_unit_test(test_args_override_file),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
