/* tool.h — the subcommands of the fcgikit program. Each takes the arguments after its own
 * name (argv[0] is the subcommand) and returns the process exit status. */
#ifndef FK_TOOL_H
#define FK_TOOL_H

int fk_tool_call(int argc, char **argv);
int fk_tool_bench(int argc, char **argv);
int fk_tool_pm(int argc, char **argv);
int fk_tool_gateway(int argc, char **argv);

/* `cgi-fcgi -bind -connect ADDRESS` compatibility (also `fcgikit call -bind -connect`). */
int fk_tool_cgi_fcgi(int argc, char **argv);

#endif
