/* SPDX-License-Identifier: MIT */
/*
 * args.h - command-line helpers shared by the KSM toolkit's subcommands:
 * strict number parsing (the whole string, within bounds) and the
 * --sysfs-root / --proc-root options every reader of the kernel honours.
 */
#ifndef SP_CLI_ARGS_H
#define SP_CLI_ARGS_H

#include <stdio.h>

#include "cli/roots.h"

/* 0, or -EINVAL when s is not entirely a finite number within [lo, hi]
 * ("inf", "nan" and overflowing values are refused) */
int sp_arg_double(const char *s, double lo, double hi, double *out);
int sp_arg_long(const char *s, long lo, long hi, long *out);

/* long-option codes for the roots; handled by sp_opt_common */
enum { SP_OPT_SYSFS_ROOT = 0x1000, SP_OPT_PROC_ROOT };
#define SP_ROOT_OPTIONS                                                \
	{"sysfs-root", required_argument, NULL, SP_OPT_SYSFS_ROOT},    \
	{                                                              \
		"proc-root", required_argument, NULL, SP_OPT_PROC_ROOT \
	}
#define SP_ROOT_HELP                                                                  \
	"      --sysfs-root DIR        read DIR/kernel/mm/ksm, ... instead of /sys\n" \
	"      --proc-root DIR         read DIR/PID/..., DIR/vmstat instead of /proc\n"

/* The options every subcommand's getopt_long loop shares, for the
 * default: of its switch. A root option updates r (NULL: the subcommand
 * has none) and gives SP_OPT_GO_ON; -h/--help prints usage on stdout and
 * gives SP_EXIT_OK; anything else (an unknown option, a missing argument)
 * prints usage on stderr and gives SP_EXIT_USAGE. */
#define SP_OPT_GO_ON (-1)
int sp_opt_common(int c, const char *arg, struct sp_roots *r, void (*usage)(FILE *f));

/* After the options: SP_EXIT_USAGE, saying "unexpected argument", when
 * argv[optind] is left; else SP_OPT_GO_ON. */
int sp_opt_no_operands(int argc, char **argv);

/* Prints why KSM cannot be read (err from sp_view_read) and returns the
 * exit status for it. */
int sp_ksm_unreadable(const char *cmd, const struct sp_roots *r, int err);

#endif /* SP_CLI_ARGS_H */
