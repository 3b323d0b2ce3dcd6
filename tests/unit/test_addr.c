/*
 * test_addr.c — address strings and peer allow-lists (lib/util/addr.c): every form
 * fk_addr_parse accepts and the ones it must refuse, fk_addr_format round trips, and
 * fk_netlist_parse / fk_netlist_match (FCGI_WEB_SERVER_ADDRS) for IPv4, IPv6, CIDR prefixes
 * and v4-mapped peers. Pure functions: no sockets are opened.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "fcgikit.h"
#include "util/addr.h"
#include "util/alloc.h"

/* ---------------------------------------------------------------- helpers */

static const struct sockaddr_in *as_in(const fk_addr *a)
{
	return (const struct sockaddr_in *)(const void *)&a->ss;
}

static const struct sockaddr_in6 *as_in6(const fk_addr *a)
{
	return (const struct sockaddr_in6 *)(const void *)&a->ss;
}

static const struct sockaddr_un *as_un(const fk_addr *a)
{
	return (const struct sockaddr_un *)(const void *)&a->ss;
}

/* Parses s, expecting an IPv4 address host:port. */
static void expect_v4(const char *s, const char *host, unsigned port)
{
	fk_addr a;
	int rc = fk_addr_parse(s, &a);
	if (rc != FCGI_OK)
		fail_msg("fk_addr_parse(\"%s\") = %s, want FCGI_OK", s, fcgi_err_name(rc));
	assert_int_equal(a.ss.ss_family, AF_INET);
	assert_int_equal(a.len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(as_in(&a)->sin_port), port);
	struct in_addr want;
	assert_int_equal(inet_pton(AF_INET, host, &want), 1);
	assert_memory_equal(&as_in(&a)->sin_addr, &want, sizeof want);
}

static void expect_v6(const char *s, const char *host, unsigned port)
{
	fk_addr a;
	int rc = fk_addr_parse(s, &a);
	if (rc != FCGI_OK)
		fail_msg("fk_addr_parse(\"%s\") = %s, want FCGI_OK", s, fcgi_err_name(rc));
	assert_int_equal(a.ss.ss_family, AF_INET6);
	assert_int_equal(a.len, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(as_in6(&a)->sin6_port), port);
	struct in6_addr want;
	assert_int_equal(inet_pton(AF_INET6, host, &want), 1);
	assert_memory_equal(&as_in6(&a)->sin6_addr, &want, sizeof want);
}

static void expect_unix(const char *s, const char *path)
{
	fk_addr a;
	int rc = fk_addr_parse(s, &a);
	if (rc != FCGI_OK)
		fail_msg("fk_addr_parse(\"%s\") = %s, want FCGI_OK", s, fcgi_err_name(rc));
	assert_int_equal(a.ss.ss_family, AF_UNIX);
	assert_string_equal(as_un(&a)->sun_path, path);
	assert_int_equal(a.len, offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
}

static void expect_bad(const char *s)
{
	fk_addr a;
	int rc = fk_addr_parse(s, &a);
	if (rc != FCGI_EADDR)
		fail_msg("fk_addr_parse(\"%s\") = %s, want FCGI_EADDR", s ? s : "(null)",
		         fcgi_err_name(rc));
}

/* Two parsed addresses denote the same socket address. */
static void assert_same_addr(const fk_addr *x, const fk_addr *y)
{
	assert_int_equal(x->ss.ss_family, y->ss.ss_family);
	assert_int_equal(x->len, y->len);
	switch (x->ss.ss_family) {
	case AF_INET:
		assert_int_equal(as_in(x)->sin_port, as_in(y)->sin_port);
		assert_memory_equal(&as_in(x)->sin_addr, &as_in(y)->sin_addr, 4);
		break;
	case AF_INET6:
		assert_int_equal(as_in6(x)->sin6_port, as_in6(y)->sin6_port);
		assert_memory_equal(&as_in6(x)->sin6_addr, &as_in6(y)->sin6_addr, 16);
		break;
	case AF_UNIX:
		assert_string_equal(as_un(x)->sun_path, as_un(y)->sun_path);
		break;
	default:
		fail_msg("unexpected family %d", x->ss.ss_family);
	}
}

/* ---------------------------------------------------------------- fk_addr_parse */

static void test_parse_unix(void **state)
{
	(void)state;
	expect_unix("unix:/run/app.sock", "/run/app.sock");
	expect_unix("/run/app.sock", "/run/app.sock");
	expect_unix("unix:/a", "/a");
	expect_unix("/", "/");
	/* a colon inside a path is part of the path, not a port */
	expect_unix("unix:/tmp/a:9000", "/tmp/a:9000");
	expect_unix("/tmp/[::1]:80", "/tmp/[::1]:80");
	expect_bad("unix:");
}

static void test_parse_unix_path_length(void **state)
{
	(void)state;
	struct sockaddr_un un;
	const size_t max = sizeof un.sun_path - 1; /* room for the terminating NUL */
	char path[sizeof un.sun_path + 8], s[sizeof path + 8];
	memset(path, 'p', sizeof path);
	path[0] = '/';
	/* the longest path that fits */
	path[max] = 0;
	snprintf(s, sizeof s, "unix:%s", path);
	expect_unix(s, path);
	expect_unix(path, path);
	/* one byte more no longer fits, with or without the prefix */
	path[max] = 'p';
	path[max + 1] = 0;
	snprintf(s, sizeof s, "unix:%s", path);
	expect_bad(s);
	expect_bad(path);
	/* and far too long */
	char huge[4096];
	memset(huge, 'x', sizeof huge - 1);
	huge[0] = '/';
	huge[sizeof huge - 1] = 0;
	expect_bad(huge);
}

static void test_parse_tcp4(void **state)
{
	(void)state;
	expect_v4("127.0.0.1:9000", "127.0.0.1", 9000);
	expect_v4("tcp:127.0.0.1:9000", "127.0.0.1", 9000);
	expect_v4("0.0.0.0:1", "0.0.0.0", 1);
	expect_v4("10.1.2.3:65535", "10.1.2.3", 65535);
	expect_v4("127.0.0.1:0", "127.0.0.1", 0); /* port 0: the kernel picks one */
	expect_v4("192.168.0.1:080", "192.168.0.1", 80);
}

static void test_parse_tcp6(void **state)
{
	(void)state;
	expect_v6("[::1]:9000", "::1", 9000);
	expect_v6("tcp:[::1]:9000", "::1", 9000);
	expect_v6("[fe80::1]:80", "fe80::1", 80);
	expect_v6("[2001:db8::1:2]:65535", "2001:db8::1:2", 65535);
	expect_v6("[::ffff:10.0.0.1]:81", "::ffff:10.0.0.1", 81);
	expect_v6("[::]:0", "::", 0);
}

static void test_parse_any(void **state)
{
	(void)state;
	/* ":PORT" is every address, v6 and v4: the IPv6 any-address (dual-stack) */
	expect_v6(":9000", "::", 9000);
	expect_v6("tcp::9000", "::", 9000);
	expect_v6("*:9000", "::", 9000);
	expect_v6(":0", "::", 0);
}

static void test_parse_hostname(void **state)
{
	(void)state;
	/* host names are resolved; localhost is in /etc/hosts everywhere */
	fk_addr a;
	assert_int_equal(fk_addr_parse("localhost:8080", &a), FCGI_OK);
	assert_true(a.ss.ss_family == AF_INET || a.ss.ss_family == AF_INET6);
	if (a.ss.ss_family == AF_INET)
		assert_int_equal(ntohs(as_in(&a)->sin_port), 8080);
	else
		assert_int_equal(ntohs(as_in6(&a)->sin6_port), 8080);
	assert_int_equal(fk_addr_parse("tcp:localhost:1", &a), FCGI_OK);
}

static void test_parse_bad_ports(void **state)
{
	(void)state;
	expect_bad("127.0.0.1:65536");
	expect_bad("127.0.0.1:99999999999999999999999");
	expect_bad("127.0.0.1:-1");
	expect_bad("127.0.0.1:abc");
	expect_bad("127.0.0.1:80x");
	expect_bad("127.0.0.1:0x50");
	expect_bad("127.0.0.1:8 0");
	expect_bad("[::1]:65536");
	expect_bad("[::1]:-5");
	expect_bad(":65536");
	expect_bad(":x");
}

/* A port is digits only: no sign and no blanks, as in every other tool's address syntax. */
static void test_parse_port_digits_only(void **state)
{
	(void)state;
	expect_bad("127.0.0.1:+80");
	expect_bad("127.0.0.1: 80");
	expect_bad("127.0.0.1:-0");
	expect_bad("[::1]:+80");
	expect_bad(": 9000");
}

static void test_parse_missing_port(void **state)
{
	(void)state;
	expect_bad(NULL);
	expect_bad("");
	expect_bad("127.0.0.1");
	expect_bad("127.0.0.1:");
	expect_bad("tcp:127.0.0.1");
	expect_bad("tcp:");
	expect_bad("[::1]");
	expect_bad("[::1]:");
	expect_bad("[::1]9000");
	expect_bad("[::1");
	expect_bad("localhost");
	expect_bad(":");
}

static void test_parse_bare_v6(void **state)
{
	(void)state;
	/* without brackets the port cannot be told from the address */
	expect_bad("::1:9000");
	expect_bad("tcp:::1:9000");
	expect_bad("fe80::1:80");
	expect_bad("2001:db8::1:443");
	expect_bad("::1");
	expect_bad("::");
}

static void test_parse_bad_hosts(void **state)
{
	(void)state;
	expect_bad("[not-an-address:9000");
	expect_bad("[::1]]:9000");
	expect_bad("[::g]:80");
	/* a host part longer than any name */
	char s[400];
	memset(s, 'a', sizeof s);
	strcpy(s + 300, ":80");
	expect_bad(s);
	s[0] = '[';
	strcpy(s + 300, "]:80");
	expect_bad(s);
}

/* ---------------------------------------------------------------- fk_addr_format */

static void roundtrip(const char *s, const char *want_text)
{
	fk_addr a, b;
	char buf[256];
	int rc = fk_addr_parse(s, &a);
	if (rc)
		fail_msg("fk_addr_parse(\"%s\") = %s", s, fcgi_err_name(rc));
	assert_int_equal(fk_addr_format((struct sockaddr *)&a.ss, a.len, buf, sizeof buf), FCGI_OK);
	if (want_text)
		assert_string_equal(buf, want_text);
	rc = fk_addr_parse(buf, &b);
	if (rc)
		fail_msg("formatted \"%s\" (from \"%s\") does not parse: %s", buf, s,
		         fcgi_err_name(rc));
	assert_same_addr(&a, &b);
	/* formatting is stable */
	char again[256];
	assert_int_equal(fk_addr_format((struct sockaddr *)&b.ss, b.len, again, sizeof again),
	                 FCGI_OK);
	assert_string_equal(again, buf);
}

static void test_format_roundtrip(void **state)
{
	(void)state;
	roundtrip("unix:/run/app.sock", "unix:/run/app.sock");
	roundtrip("/run/app.sock", "unix:/run/app.sock");
	roundtrip("127.0.0.1:9000", "127.0.0.1:9000");
	roundtrip("tcp:10.0.0.1:1", "10.0.0.1:1");
	roundtrip("[::1]:9000", "[::1]:9000");
	roundtrip("[2001:DB8:0:0::1]:80", "[2001:db8::1]:80");
	roundtrip("[::ffff:10.0.0.1]:81", "[::ffff:10.0.0.1]:81");
	roundtrip(":9000", "[::]:9000");
	roundtrip("0.0.0.0:0", "0.0.0.0:0");
	roundtrip("255.255.255.255:65535", "255.255.255.255:65535");
	/* the longest Unix path round-trips too */
	struct sockaddr_un un;
	char path[sizeof un.sun_path], s[sizeof path + 8];
	memset(path, 'q', sizeof path - 1);
	path[0] = '/';
	path[sizeof path - 1] = 0;
	snprintf(s, sizeof s, "unix:%s", path);
	roundtrip(s, s);
}

static void test_format_sizes(void **state)
{
	(void)state;
	fk_addr a;
	assert_int_equal(fk_addr_parse("127.0.0.1:9000", &a), FCGI_OK);
	const char *want = "127.0.0.1:9000";
	size_t n = strlen(want);
	char buf[64];
	/* exactly enough room: the text and its NUL */
	assert_int_equal(fk_addr_format((struct sockaddr *)&a.ss, a.len, buf, n + 1), FCGI_OK);
	assert_string_equal(buf, want);
	/* one byte short */
	assert_int_equal(fk_addr_format((struct sockaddr *)&a.ss, a.len, buf, n), FCGI_ETOOBIG);
	assert_int_equal(fk_addr_format((struct sockaddr *)&a.ss, a.len, buf, 1), FCGI_ETOOBIG);

	assert_int_equal(fk_addr_parse("[2001:db8::1]:443", &a), FCGI_OK);
	assert_int_equal(fk_addr_format((struct sockaddr *)&a.ss, a.len, buf, 8), FCGI_ETOOBIG);
	assert_int_equal(fk_addr_parse("unix:/tmp/x.sock", &a), FCGI_OK);
	assert_int_equal(fk_addr_format((struct sockaddr *)&a.ss, a.len, buf, 5), FCGI_ETOOBIG);

	/* a family it does not know */
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	ss.ss_family = AF_UNSPEC;
	assert_int_equal(fk_addr_format((struct sockaddr *)&ss, sizeof ss, buf, sizeof buf),
	                 FCGI_EADDR);
}

/* A socket address built by hand (as getsockname/accept give them) formats as expected. */
static void test_format_kernel_addresses(void **state)
{
	(void)state;
	char buf[128];
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(8080)};
	in.sin_addr.s_addr = htonl(0x7f000001);
	assert_int_equal(fk_addr_format((struct sockaddr *)&in, sizeof in, buf, sizeof buf), FCGI_OK);
	assert_string_equal(buf, "127.0.0.1:8080");
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(1)};
	in6.sin6_addr = in6addr_loopback;
	assert_int_equal(fk_addr_format((struct sockaddr *)&in6, sizeof in6, buf, sizeof buf),
	                 FCGI_OK);
	assert_string_equal(buf, "[::1]:1");
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	strcpy(un.sun_path, "/var/run/x");
	assert_int_equal(fk_addr_format((struct sockaddr *)&un,
	                                (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 11), buf,
	                                sizeof buf),
	                 FCGI_OK);
	assert_string_equal(buf, "unix:/var/run/x");
}

/* ---------------------------------------------------------------- allow-lists */

static struct sockaddr_storage peer(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(40000);
	} else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(40000);
	} else {
		fail_msg("bad test address %s", ip);
	}
	return ss;
}

/* Whether list lets ip in. */
static int allowed(const char *list, const char *ip)
{
	fk_net *nets = NULL;
	size_t n = 0;
	int rc = fk_netlist_parse(list, &nets, &n);
	if (rc)
		fail_msg("fk_netlist_parse(\"%s\") = %s", list, fcgi_err_name(rc));
	struct sockaddr_storage ss = peer(ip);
	int ok = fk_netlist_match(nets, n, (struct sockaddr *)&ss);
	fk_free(nets);
	return ok;
}

#define ALLOW(list, ip)                                                                            \
	do {                                                                                       \
		if (!allowed(list, ip))                                                            \
			fail_msg("\"%s\" should let %s in", list, ip);                             \
	} while (0)
#define DENY(list, ip)                                                                             \
	do {                                                                                       \
		if (allowed(list, ip))                                                             \
			fail_msg("\"%s\" should keep %s out", list, ip);                           \
	} while (0)

static void test_netlist_parse_entries(void **state)
{
	(void)state;
	fk_net *nets;
	size_t n;
	assert_int_equal(fk_netlist_parse("10.0.0.1", &nets, &n), FCGI_OK);
	assert_int_equal(n, 1);
	assert_int_equal(nets[0].family, AF_INET);
	assert_int_equal(nets[0].prefix, 32);
	assert_memory_equal(nets[0].bytes, "\x0a\x00\x00\x01", 4);
	fk_free(nets);

	assert_int_equal(fk_netlist_parse("::1", &nets, &n), FCGI_OK);
	assert_int_equal(n, 1);
	assert_int_equal(nets[0].family, AF_INET6);
	assert_int_equal(nets[0].prefix, 128);
	fk_free(nets);

	assert_int_equal(fk_netlist_parse("192.168.0.0/16,fe80::/10", &nets, &n), FCGI_OK);
	assert_int_equal(n, 2);
	assert_int_equal(nets[0].family, AF_INET);
	assert_int_equal(nets[0].prefix, 16);
	assert_int_equal(nets[1].family, AF_INET6);
	assert_int_equal(nets[1].prefix, 10);
	fk_free(nets);
}

static void test_netlist_separators(void **state)
{
	(void)state;
	fk_net *nets;
	size_t n;
	/* commas, blanks, tabs, in any mix and number, leading and trailing */
	const char *list = " 10.0.0.1, 10.0.0.2 ,10.0.0.3\t192.168.0.0/16,,  ::1 ,";
	assert_int_equal(fk_netlist_parse(list, &nets, &n), FCGI_OK);
	assert_int_equal(n, 5);
	assert_memory_equal(nets[2].bytes, "\x0a\x00\x00\x03", 4);
	assert_int_equal(nets[3].prefix, 16);
	assert_int_equal(nets[4].family, AF_INET6);
	fk_free(nets);
	ALLOW(list, "10.0.0.2");
	ALLOW(list, "192.168.44.5");
	ALLOW(list, "::1");
	DENY(list, "10.0.0.4");
	/* every separator counted for the allocation: many in a row cannot overflow it */
	char many[512];
	size_t k = 0;
	for (int i = 0; i < 50; i++) {
		k += (size_t)snprintf(many + k, sizeof many - k, "1.2.3.%d", i);
		many[k++] = i % 3 == 0 ? ',' : i % 3 == 1 ? ' ' : '\t';
	}
	many[k] = 0;
	assert_int_equal(fk_netlist_parse(many, &nets, &n), FCGI_OK);
	assert_int_equal(n, 50);
	fk_free(nets);
}

static void test_netlist_bad_entries(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "10.0.0.256", "10.0.0", "10.0.0.1/33", "10.0.0.1/", "10.0.0.1/-1", "10.0.0.1/abc",
	    "10.0.0.1/8/8", "::1/129", "::1/", "::g", "localhost", "/24", "10.0.0.1, bogus",
	    "bogus,10.0.0.1", "10.0.0.1;10.0.0.2", "*", "[::1]", "10.0.0.1:80",
	    "aaaa:bbbb:cccc:dddd:eeee:ffff:0000:1111:2222:3333:4444:5555:6666:7777/128",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		fk_net *nets = (fk_net *)&nets; /* anything but NULL */
		size_t n = 99;
		int rc = fk_netlist_parse(bad[i], &nets, &n);
		if (rc != FCGI_EADDR)
			fail_msg("fk_netlist_parse(\"%s\") = %s, want FCGI_EADDR", bad[i],
			         fcgi_err_name(rc));
		assert_null(nets);
		assert_int_equal(n, 0);
	}
}

static void test_netlist_empty_allows_all(void **state)
{
	(void)state;
	fk_net *nets;
	size_t n;
	static const char *const empty[] = {"", " ", ",", " , ,\t"};
	for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
		nets = (fk_net *)&nets;
		n = 99;
		assert_int_equal(fk_netlist_parse(empty[i], &nets, &n), FCGI_OK);
		assert_int_equal(n, 0);
		assert_null(nets);
	}
	assert_int_equal(fk_netlist_parse(NULL, &nets, &n), FCGI_OK);
	assert_int_equal(n, 0);
	assert_null(nets);
	struct sockaddr_storage a = peer("203.0.113.9"), b = peer("2001:db8::9");
	assert_true(fk_netlist_match(NULL, 0, (struct sockaddr *)&a));
	assert_true(fk_netlist_match(NULL, 0, (struct sockaddr *)&b));
	ALLOW("", "203.0.113.9");
}

static void test_netlist_v4(void **state)
{
	(void)state;
	ALLOW("10.0.0.1", "10.0.0.1");
	DENY("10.0.0.1", "10.0.0.2");
	DENY("10.0.0.1", "127.0.0.1");
	ALLOW("10.0.0.1,127.0.0.1", "127.0.0.1");
	/* /32 is the address alone */
	ALLOW("10.0.0.1/32", "10.0.0.1");
	DENY("10.0.0.1/32", "10.0.0.0");
	/* /24 */
	ALLOW("192.168.1.0/24", "192.168.1.0");
	ALLOW("192.168.1.0/24", "192.168.1.255");
	DENY("192.168.1.0/24", "192.168.2.1");
	DENY("192.168.1.0/24", "192.168.0.255");
	/* /8 */
	ALLOW("127.0.0.0/8", "127.0.0.1");
	ALLOW("127.0.0.0/8", "127.255.255.254");
	DENY("127.0.0.0/8", "128.0.0.1");
	DENY("127.0.0.0/8", "126.255.255.255");
	/* a prefix not on a byte boundary */
	ALLOW("10.0.0.0/9", "10.127.255.255");
	DENY("10.0.0.0/9", "10.128.0.0");
	ALLOW("172.16.0.0/12", "172.31.1.1");
	DENY("172.16.0.0/12", "172.32.0.1");
	ALLOW("10.0.0.4/31", "10.0.0.5");
	DENY("10.0.0.4/31", "10.0.0.6");
	/* host bits set in the entry are ignored by the prefix */
	ALLOW("10.1.2.3/8", "10.200.0.1");
	/* /0 is everyone (IPv4) */
	ALLOW("0.0.0.0/0", "1.2.3.4");
	ALLOW("0.0.0.0/0", "255.255.255.255");
	ALLOW("1.2.3.4/0", "9.9.9.9");
}

static void test_netlist_v6(void **state)
{
	(void)state;
	ALLOW("::1", "::1");
	DENY("::1", "::2");
	ALLOW("::1/128", "::1");
	DENY("::1/128", "::");
	ALLOW("2001:db8::/64", "2001:db8::1234");
	ALLOW("2001:db8::/64", "2001:db8::ffff:ffff:ffff:ffff");
	DENY("2001:db8::/64", "2001:db8:0:1::1");
	ALLOW("2001:db8::/32", "2001:db8:ffff::1");
	DENY("2001:db8::/32", "2001:db9::1");
	ALLOW("fe80::/10", "febf::1");
	DENY("fe80::/10", "fec0::1");
	ALLOW("::/0", "2001:db8::1");
	ALLOW("::/0", "::1");
	/* v6 entries do not let plain IPv4 peers in, nor v4 entries plain v6 peers */
	DENY("::1", "127.0.0.1");
	DENY("127.0.0.1", "::1");
	DENY("0.0.0.0/0", "2001:db8::1");
}

static void test_netlist_v4_mapped(void **state)
{
	(void)state;
	/* a dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d */
	ALLOW("127.0.0.1", "::ffff:127.0.0.1");
	ALLOW("10.0.0.0/8", "::ffff:10.20.30.40");
	DENY("10.0.0.0/8", "::ffff:11.0.0.1");
	ALLOW("0.0.0.0/0", "::ffff:1.2.3.4");
	DENY("10.0.0.1", "::ffff:10.0.0.2");
	/* a v6 entry still matches the mapped form as a v6 address */
	ALLOW("::ffff:0:0/96", "::ffff:192.0.2.1");
	/* not mapped: the v4-compatible and NAT64 forms are plain IPv6 */
	DENY("10.0.0.1", "::10.0.0.1");
	DENY("10.0.0.1", "64:ff9b::10.0.0.1");
}

static void test_netlist_unix_always_allowed(void **state)
{
	(void)state;
	fk_net *nets;
	size_t n;
	assert_int_equal(fk_netlist_parse("10.0.0.1", &nets, &n), FCGI_OK);
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	strcpy(un.sun_path, "/tmp/peer");
	assert_true(fk_netlist_match(nets, n, (struct sockaddr *)&un));
	struct sockaddr_un unnamed = {.sun_family = AF_UNIX}; /* what accept() gives a client */
	assert_true(fk_netlist_match(nets, n, (struct sockaddr *)&unnamed));
	/* a family it does not know is not let in past a list */
	struct sockaddr_storage other;
	memset(&other, 0, sizeof other);
	other.ss_family = AF_UNSPEC;
	assert_false(fk_netlist_match(nets, n, (struct sockaddr *)&other));
	fk_free(nets);
}

/* fcgi_app_allow is the public face of the same parser. */
static void test_app_allow_validates(void **state)
{
	(void)state;
	fcgi_app *app;
	assert_int_equal(fcgi_app_new(&app), FCGI_OK);
	assert_int_equal(fcgi_app_allow(app, "10.0.0.1, 127.0.0.0/8 ::1"), FCGI_OK);
	assert_int_equal(fcgi_app_allow(app, "10.0.0.1, nonsense"), FCGI_EADDR);
	assert_int_equal(fcgi_app_allow(app, "10.0.0.0/33"), FCGI_EADDR);
	assert_int_equal(fcgi_app_allow(app, ""), FCGI_OK);
	assert_int_equal(fcgi_app_allow(app, NULL), FCGI_OK);
	fcgi_app_free(app);
	/* FCGI_WEB_SERVER_ADDRS is read by fcgi_app_new; a bad one is refused */
	setenv("FCGI_WEB_SERVER_ADDRS", "127.0.0.1,::1", 1);
	assert_int_equal(fcgi_app_new(&app), FCGI_OK);
	fcgi_app_free(app);
	setenv("FCGI_WEB_SERVER_ADDRS", "127.0.0.1,bogus", 1);
	app = (fcgi_app *)&app;
	assert_int_equal(fcgi_app_new(&app), FCGI_EADDR);
	assert_null(app);
	unsetenv("FCGI_WEB_SERVER_ADDRS");
}

int main(void)
{
	cmocka_set_message_output(CM_OUTPUT_TAP);
	unsetenv("FCGI_WEB_SERVER_ADDRS");
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_unix),
	    cmocka_unit_test(test_parse_unix_path_length),
	    cmocka_unit_test(test_parse_tcp4),
	    cmocka_unit_test(test_parse_tcp6),
	    cmocka_unit_test(test_parse_any),
	    cmocka_unit_test(test_parse_hostname),
	    cmocka_unit_test(test_parse_bad_ports),
	    cmocka_unit_test(test_parse_port_digits_only),
	    cmocka_unit_test(test_parse_missing_port),
	    cmocka_unit_test(test_parse_bare_v6),
	    cmocka_unit_test(test_parse_bad_hosts),
	    cmocka_unit_test(test_format_roundtrip),
	    cmocka_unit_test(test_format_sizes),
	    cmocka_unit_test(test_format_kernel_addresses),
	    cmocka_unit_test(test_netlist_parse_entries),
	    cmocka_unit_test(test_netlist_separators),
	    cmocka_unit_test(test_netlist_bad_entries),
	    cmocka_unit_test(test_netlist_empty_allows_all),
	    cmocka_unit_test(test_netlist_v4),
	    cmocka_unit_test(test_netlist_v6),
	    cmocka_unit_test(test_netlist_v4_mapped),
	    cmocka_unit_test(test_netlist_unix_always_allowed),
	    cmocka_unit_test(test_app_allow_validates),
	};
	return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
