/* addr.h — address strings and peer allow-lists, shared by the application and client
 * sides. Address forms: "unix:/path", "/path", "tcp:HOST:PORT", "HOST:PORT",
 * "[v6]:PORT", ":PORT" (any address). */
#ifndef FK_ADDR_H
#define FK_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct fk_addr {
	struct sockaddr_storage ss;
	socklen_t len;
} fk_addr;

/* Parses an address; host names are resolved (first result). For ":PORT" the result is
 * the IPv6 any-address (dual-stack). FCGI_OK or FCGI_EADDR. */
int fk_addr_parse(const char *s, fk_addr *out);
/* Writes a form fk_addr_parse accepts. FCGI_OK or FCGI_ETOOBIG. */
int fk_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);

/* Before binding a Unix socket path: a socket file left by a process that is gone (nobody
 * accepts on it) is removed; FCGI_OK also when there is no file. A live socket is FCGI_ESYS
 * with errno EADDRINUSE; a file that is not a socket, FCGI_EADDR. Shared by the application
 * runtime, fcgikit pm and the gateway, so none of them takes over a socket in use. */
struct sockaddr_un;
int fk_unix_clear_stale(const struct sockaddr_un *un, socklen_t len);

/* An allow-list of IPv4/IPv6 networks (FCGI_WEB_SERVER_ADDRS). */
typedef struct fk_net {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t prefix;
	uint8_t bytes[16];
} fk_net;

/* Parses "a, b/24, ::1, fe80::/10"; *out is allocated (fk_free), *n set. An empty or NULL
 * string gives n = 0 (allow everyone). FCGI_EADDR names nothing about which entry: the
 * caller reports the string. */
int fk_netlist_parse(const char *s, fk_net **out, size_t *n);
/* Whether a peer address is allowed; v4-mapped v6 peers match v4 networks. */
int fk_netlist_match(const fk_net *nets, size_t n, const struct sockaddr *sa);

#endif
