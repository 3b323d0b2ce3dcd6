/* mpx_check — the client library with its defaults (FCGI_CLIENT_MPX 1: ask GET_VALUES once,
 * multiplex only when the application says FCGI_MPXS_CONNS=1) against a real application:
 *   mpx_check ADDRESS N MAX_CONNS [NAME=VALUE...]
 * sends N requests at once over at most MAX_CONNS connections and prints one JSON line:
 * {"mpxs":M,"ok":K,"multiplexed":X,"failed":F,"first_error":"..."} */
#include <fcgikit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	int n = atoi(argv[2]);
	fcgi_client *c;
	if (n < 1 || n > 10000 || fcgi_client_new(&c, argv[1]))
		return 2;
	fcgi_client_set_opt(c, FCGI_CLIENT_MAX_CONNS, atol(argv[3]));
	fcgi_client_req **rs = calloc((size_t)n, sizeof *rs);
	for (int i = 0; i < n; i++) {
		fcgi_client_req_new(c, &rs[i]);
		fcgi_client_req_add_param(rs[i], "REQUEST_METHOD", "GET");
		for (int k = 4; k < argc; k++) {
			char *eq = strchr(argv[k], '=');
			if (eq)
				fcgi_client_req_add_param_n(rs[i], argv[k], (size_t)(eq - argv[k]), eq + 1,
				                            strlen(eq + 1));
		}
		fcgi_client_req_set_timeout(rs[i], 20000);
		fcgi_client_req_send(rs[i]);
	}
	fcgi_client_run(c, 30000);
	int ok = 0, mpx = 0, failed = 0;
	const char *first = "";
	for (int i = 0; i < n; i++) {
		if (fcgi_client_req_error(rs[i]) == FCGI_OK)
			ok++;
		else if (!failed++)
			first = fcgi_client_req_strerror(rs[i]);
		mpx += fcgi_client_req_multiplexed(rs[i]);
	}
	printf("{\"mpxs\":%d,\"ok\":%d,\"multiplexed\":%d,\"failed\":%d,\"first_error\":\"%s\"}\n",
	       fcgi_client_mpxs(c), ok, mpx, failed, first);
	for (int i = 0; i < n; i++)
		fcgi_client_req_free(rs[i]);
	free(rs);
	fcgi_client_free(c);
	return 0;
}
