/* addr.c — address parsing and allow-lists (see addr.h). */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fcgikit.h"
#include "util/addr.h"
#include "util/alloc.h"

/* Decimal digits only: strtol would also take blanks and a sign ("+80", " 80"). */
static int parse_port(const char *p, uint16_t *port)
{
	unsigned long v = 0;
	if (!*p || strlen(p) > 5)
		return FCGI_EADDR;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return FCGI_EADDR;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v > 65535)
		return FCGI_EADDR;
	*port = (uint16_t)v;
	return FCGI_OK;
}

int fk_addr_parse(const char *s, fk_addr *out)
{
	memset(out, 0, sizeof *out);
	if (!s || !*s)
		return FCGI_EADDR;
	if (!strncmp(s, "unix:", 5) || s[0] == '/') {
		const char *path = s[0] == '/' ? s : s + 5;
		struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;
		size_t n = strlen(path);
		if (!n || n >= sizeof un->sun_path)
			return FCGI_EADDR;
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, path, n + 1);
		out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
		return FCGI_OK;
	}
	if (!strncmp(s, "tcp:", 4))
		s += 4;
	char host[256];
	const char *portstr;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof host)
			return FCGI_EADDR;
		memcpy(host, s + 1, (size_t)(rb - s - 1));
		host[rb - s - 1] = 0;
		portstr = rb + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof host)
			return FCGI_EADDR;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = 0;
		portstr = colon + 1;
		if (strchr(host, ':'))
			return FCGI_EADDR; /* bare IPv6 needs brackets */
	}
	uint16_t port;
	if (parse_port(portstr, &port))
		return FCGI_EADDR;
	if (!*host || !strcmp(host, "*")) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->ss;
		a6->sin6_family = AF_INET6;
		a6->sin6_addr = in6addr_any;
		a6->sin6_port = htons(port);
		out->len = sizeof *a6;
		return FCGI_OK;
	}
	struct sockaddr_in *a4 = (struct sockaddr_in *)&out->ss;
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		out->len = sizeof *a4;
		return FCGI_OK;
	}
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->ss;
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		out->len = sizeof *a6;
		return FCGI_OK;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *res;
	if (getaddrinfo(host, NULL, &hints, &res) || !res)
		return FCGI_EADDR;
	if (res->ai_addrlen > sizeof out->ss) {
		freeaddrinfo(res);
		return FCGI_EADDR;
	}
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->len = res->ai_addrlen;
	freeaddrinfo(res);
	if (out->ss.ss_family == AF_INET)
		((struct sockaddr_in *)&out->ss)->sin_port = htons(port);
	else if (out->ss.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&out->ss)->sin6_port = htons(port);
	else
		return FCGI_EADDR;
	return FCGI_OK;
}

int fk_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN];
	int n;
	(void)len;
	switch (sa->sa_family) {
	case AF_UNIX:
		n = snprintf(buf, size, "unix:%s", ((const struct sockaddr_un *)sa)->sun_path);
		break;
	case AF_INET: {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
		n = snprintf(buf, size, "%s:%u", host, ntohs(a->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
		n = snprintf(buf, size, "[%s]:%u", host, ntohs(a->sin6_port));
		break;
	}
	default:
		return FCGI_EADDR;
	}
	return n < 0 || (size_t)n >= size ? FCGI_ETOOBIG : FCGI_OK;
}

static int parse_net(const char *s, fk_net *net)
{
	char tmp[64];
	size_t n = strlen(s);
	if (!n || n >= sizeof tmp)
		return FCGI_EADDR;
	memcpy(tmp, s, n + 1);
	char *slash = strchr(tmp, '/');
	long prefix = -1;
	if (slash) {
		char *end;
		*slash = 0;
		prefix = strtol(slash + 1, &end, 10);
		if (slash[1] < '0' || slash[1] > '9' || *end || prefix < 0)
			return FCGI_EADDR;
	}
	memset(net, 0, sizeof *net);
	if (inet_pton(AF_INET, tmp, net->bytes) == 1) {
		if (prefix > 32)
			return FCGI_EADDR;
		net->family = AF_INET;
		net->prefix = (uint8_t)(prefix < 0 ? 32 : prefix);
	} else if (inet_pton(AF_INET6, tmp, net->bytes) == 1) {
		if (prefix > 128)
			return FCGI_EADDR;
		net->family = AF_INET6;
		net->prefix = (uint8_t)(prefix < 0 ? 128 : prefix);
	} else {
		return FCGI_EADDR;
	}
	return FCGI_OK;
}

int fk_netlist_parse(const char *s, fk_net **out, size_t *count)
{
	*out = NULL;
	*count = 0;
	if (!s)
		return FCGI_OK;
	/* Entries are split at commas and blanks alike: count every separator. */
	size_t cap = 1;
	for (const char *p = s; *p; p++)
		cap += *p == ',' || *p == ' ' || *p == '\t';
	fk_net *nets = fk_calloc(cap, sizeof *nets);
	if (!nets)
		return FCGI_ENOMEM;
	size_t n = 0;
	const char *p = s;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		const char *e = p;
		while (*e && *e != ',' && *e != ' ' && *e != '\t')
			e++;
		char item[64];
		if ((size_t)(e - p) >= sizeof item) {
			fk_free(nets);
			return FCGI_EADDR;
		}
		memcpy(item, p, (size_t)(e - p));
		item[e - p] = 0;
		if (parse_net(item, &nets[n])) {
			fk_free(nets);
			return FCGI_EADDR;
		}
		n++;
		p = e;
	}
	if (!n) {
		fk_free(nets);
		nets = NULL;
	}
	*out = nets;
	*count = n;
	return FCGI_OK;
}

static int prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;
	if (memcmp(a, b, full))
		return 0;
	if (!rest)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

int fk_netlist_match(const fk_net *nets, size_t n, const struct sockaddr *sa)
{
	if (!n || sa->sa_family == AF_UNIX)
		return 1;
	uint8_t v4[4], v6[16];
	int has4 = 0, has6 = 0;
	if (sa->sa_family == AF_INET) {
		memcpy(v4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		has4 = 1;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		memcpy(v6, a, 16);
		has6 = 1;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			memcpy(v4, v6 + 12, 4);
			has4 = 1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (nets[i].family == AF_INET && has4 && prefix_match(nets[i].bytes, v4, nets[i].prefix))
			return 1;
		if (nets[i].family == AF_INET6 && has6 && prefix_match(nets[i].bytes, v6, nets[i].prefix))
			return 1;
	}
	return 0;
}

int fk_unix_clear_stale(const struct sockaddr_un *un, socklen_t len)
{
	struct stat st;
	if (!un->sun_path[0] || lstat(un->sun_path, &st))
		return FCGI_OK; /* abstract name, or no file */
	if (!S_ISSOCK(st.st_mode))
		return FCGI_EADDR;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return FCGI_ESYS;
	int live = connect(fd, (const struct sockaddr *)un, len) == 0;
	close(fd);
	if (live) {
		errno = EADDRINUSE;
		return FCGI_ESYS;
	}
	return unlink(un->sun_path) ? FCGI_ESYS : FCGI_OK;
}
