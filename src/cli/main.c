/* SPDX-License-Identifier: MIT */
/* main.c - dispatch `samepage SUBCOMMAND ...` to the registered commands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

extern const struct sp_cmd __start_sp_cmds[] __attribute__((weak));
extern const struct sp_cmd __stop_sp_cmds[] __attribute__((weak));

static void usage(FILE *f)
{
	const struct sp_cmd *c;

	fprintf(f, "usage: samepage COMMAND [OPTIONS]\n\n"
		   "Memory deduplication for Linux: the kernel's KSM, and KSM in userspace.\n\n"
		   "Commands:\n");
	for (c = __start_sp_cmds; c < __stop_sp_cmds; c++)
		fprintf(f, "  %-10s %s\n", c->name, c->summary);
	fprintf(f, "\n'samepage COMMAND --help' describes a command; so does man samepage-COMMAND.\n");
}

int main(int argc, char **argv)
{
	const struct sp_cmd *c;

	if (argc < 2) {
		usage(stderr);
		return SP_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return SP_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("samepage %s\n", SAMEPAGE_VERSION);
		return SP_EXIT_OK;
	}
	for (c = __start_sp_cmds; c < __stop_sp_cmds; c++)
		if (!strcmp(c->name, argv[1]))
			return c->run(argc - 1, argv + 1);
	fprintf(stderr, "samepage: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return SP_EXIT_USAGE;
}
