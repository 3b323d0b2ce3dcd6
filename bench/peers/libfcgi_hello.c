/* libfcgi_hello — fcgikit's `hello` written against Debian's libfcgi, for side-by-side runs.
 *
 *   libfcgi_hello [ADDRESS] [--threads N]
 *
 * Answers every request with Content-Type text/plain and the body "Hello, World!\n".
 * Build: cc -O2 libfcgi_hello.c -o libfcgi_hello -lfcgi -pthread */
#include "libfcgi_peer.h"

static void serve(FCGX_Request *r)
{
	FCGX_PutS("Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nHello, World!\n", r->out);
}
