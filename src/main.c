/* main.c — the fcgikit program: one binary, one subcommand per tool.
 *
 *   fcgikit call ADDRESS [URI]     send one request (see fcgikit-call(1))
 *   fcgikit bench ADDRESS [URI]    load generator (see fcgikit-bench(1))
 *   fcgikit pm ...                 process manager (see fcgikit-pm(1))
 *   fcgikit --version | help
 *
 * Run under the name cgi-fcgi (a symlink), it behaves as `cgi-fcgi -bind -connect`.
 * Subcommands are rows of the table below: a new tool adds its row and its file in src/. */
#include <fcgikit.h>
#include <stdio.h>
#include <string.h>

#include "tool.h"

typedef struct subcommand {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} subcommand;

static const subcommand subcommands[] = {
    {"call", fk_tool_call, "send one request to a FastCGI application, print the response"},
    {"bench", fk_tool_bench, "load a FastCGI application directly, report rate and latency"},
    {"pm", fk_tool_pm, "run FastCGI programs as supervised pools of workers"},
    {"gateway", fk_tool_gateway, "HTTP/1.1 front that forwards requests to FastCGI backends"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: fcgikit COMMAND [ARGS...]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
		fprintf(f, "  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
	fprintf(f, "  %-8s %s\n", "help", "this text; `fcgikit COMMAND --help` for a command");
	fprintf(f, "\n`fcgikit --version` prints the version. Manual pages: fcgikit-call(1), "
	           "fcgikit-bench(1).\n");
}

int main(int argc, char **argv)
{
	const char *self = strrchr(argv[0], '/');
	self = self ? self + 1 : argv[0];
	if (!strcmp(self, "cgi-fcgi"))
		return fk_tool_cgi_fcgi(argc, argv);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V") || !strcmp(cmd, "version")) {
		printf("fcgikit %s\n", fcgi_version());
		return 0;
	}
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		if (argc > 2) {
			char *sub[] = {argv[2], "--help", NULL};
			for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
				if (!strcmp(argv[2], subcommands[i].name))
					return subcommands[i].run(2, sub);
		}
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
		if (!strcmp(cmd, subcommands[i].name))
			return subcommands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "fcgikit: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
