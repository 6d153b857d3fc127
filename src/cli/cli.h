/* SPDX-License-Identifier: MIT */
/*
 * cli.h - the samepage command: subcommands register themselves.
 *
 * Each subcommand lives in its own file src/cli/<name>.c and declares
 *
 *     SP_COMMAND(name, "one-line summary", run_function);
 *
 * where run_function(argc, argv) gets argv[0] == "name" and returns the exit
 * status. main.c finds every declared command through the linker section
 * "sp_cmds", so adding a subcommand touches no other file.
 */
#ifndef SP_CLI_H
#define SP_CLI_H

struct sp_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

#define SP_COMMAND(n, summary, fn) \
	static const struct sp_cmd sp_cmd_##n __attribute__((used, section("sp_cmds"), aligned(8))) = {#n, summary, fn}

/* exit statuses shared by all subcommands */
enum {
	SP_EXIT_OK = 0,
	SP_EXIT_FAIL = 1,    /* the operation failed                      */
	SP_EXIT_USAGE = 2,   /* bad command line                          */
	SP_EXIT_PERM = 3,    /* not permitted (not root, ptrace denied)   */
	SP_EXIT_NOKSM = 4,   /* KSM missing from this kernel / read-only  */
	SP_EXIT_PARTIAL = 5, /* partial result (a target went away, ...)  */
};

#endif /* SP_CLI_H */
