/* authorizer — a FastCGI Authorizer on FCGX_Accept_r: HTTP Basic "demo:secret" is let
 * through with Variable-AUTH_USER; anything else gets the 401 the web server passes on. */
#include <fastcgi.h>
#include <fcgiapp.h>
#include <string.h>

int main(void)
{
	FCGX_Request request;
	FCGX_Init();
	FCGX_InitRequest(&request, 0, 0);

	while (FCGX_Accept_r(&request) >= 0) {
		char *auth = FCGX_GetParam("HTTP_AUTHORIZATION", request.envp);

		if (request.role != FCGI_AUTHORIZER) {
			FCGX_PutS("Status: 500 Internal Server Error\r\n"
			          "Content-Type: text/plain\r\n\r\n"
			          "this program is an Authorizer\n",
			          request.out);
			FCGX_SetExitStatus(1, request.out);
		} else if (auth && !strcmp(auth, "Basic ZGVtbzpzZWNyZXQ=")) {
			FCGX_PutS("Status: 200 OK\r\nVariable-AUTH_USER: demo\r\n\r\n",
			          request.out);
		} else {
			FCGX_PutS("Status: 401 Unauthorized\r\n"
			          "WWW-Authenticate: Basic realm=\"compat\"\r\n"
			          "Content-Type: text/plain\r\n\r\n"
			          "authorization required\n",
			          request.out);
		}
		FCGX_Finish_r(&request);
	}
	return 0;
}
