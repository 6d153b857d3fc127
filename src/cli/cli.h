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
	int json; /* takes --json: failures are reported as JSON too */
};

#define SP_COMMAND(n, summary, fn)            \
	static const struct sp_cmd sp_cmd_##n \
		__attribute__((used, section("sp_cmds"), aligned(8))) = {#n, summary, fn, 0}
/* a subcommand with --json (see sp_json_printed below) */
#define SP_COMMAND_JSON(n, summary, fn)       \
	static const struct sp_cmd sp_cmd_##n \
		__attribute__((used, section("sp_cmds"), aligned(8))) = {#n, summary, fn, 1}

/* exit statuses shared by all subcommands */
enum {
	SP_EXIT_OK = 0,
	SP_EXIT_FAIL = 1,    /* the operation failed                      */
	SP_EXIT_USAGE = 2,   /* bad command line                          */
	SP_EXIT_PERM = 3,    /* not permitted (not root, ptrace denied)   */
	SP_EXIT_NOKSM = 4,   /* KSM missing from this kernel / read-only  */
	SP_EXIT_PARTIAL = 5, /* partial result (a target went away, ...)  */
};

/*
 * One rule for every subcommand: a bad command line exits SP_EXIT_USAGE,
 * and with --json stdout always carries a JSON object. A subcommand prints
 * its answer with sp_json_print() (textsafe.h), which sets sp_json_printed;
 * when it exits with a failure status without having done so, main.c prints
 * {"error": MESSAGE, "exit_status": N}, MESSAGE being the first sp_errorf().
 * A subcommand that wants the error object after its output (top, whose
 * output is a stream) clears sp_json_printed.
 */
extern int sp_json_printed;

/* The running subcommand's name ("status"), set by main.c. */
extern const char *sp_cmd_name;

/* fprintf(stderr, ...) that also keeps the first message for --json. */
__attribute__((format(printf, 1, 2))) void sp_errorf(const char *fmt, ...);

/* The first sp_errorf() message, without "samepage CMD: " and the final
 * newline, or NULL. */
const char *sp_error_message(void);

#endif /* SP_CLI_H */
