/* filter — a FastCGI Filter on the FCGX API: reads the request body to its end, moves to the
 * DATA stream with FCGX_StartFilterData and answers the file upper-cased. */
#include <ctype.h>
#include <fastcgi.h>
#include <fcgiapp.h>
#include <stdio.h>

int main(void)
{
	FCGX_Stream *in, *out, *err;
	FCGX_ParamArray envp;

	while (FCGX_Accept(&in, &out, &err, &envp) >= 0) {
		char *len = FCGX_GetParam("FCGI_DATA_LENGTH", envp);
		char *mod = FCGX_GetParam("FCGI_DATA_LAST_MOD", envp);
		int c, body = 0;

		while (FCGX_GetChar(in) != EOF)
			body++;
		if (FCGX_StartFilterData(in) != 0) {
			FCGX_PutS("Status: 500 Internal Server Error\r\nContent-Type: "
			          "text/plain\r\n\r\n"
			          "no filter data\n",
			          out);
			FCGX_SetExitStatus(1, out);
			continue;
		}
		FCGX_FPrintF(
		        out,
		        "Content-Type: text/plain\r\nX-Data-Length: %s\r\nX-Data-Last-Mod: %s\r\n"
		        "X-Body-Length: %d\r\n\r\n",
		        len ? len : "", mod ? mod : "", body);
		while ((c = FCGX_GetChar(in)) != EOF)
			FCGX_PutChar(toupper(c), out);
	}
	return 0;
}
