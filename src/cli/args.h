/* SPDX-License-Identifier: MIT */
/*
 * args.h - command-line helpers shared by the KSM toolkit's subcommands:
 * strict number parsing (the whole string, within bounds) and the
 * --sysfs-root / --proc-root options every reader of the kernel honours.
 */
#ifndef SP_CLI_ARGS_H
#define SP_CLI_ARGS_H

#include "cli/ksmview.h"

/* 0, or -EINVAL when s is not entirely a finite number within [lo, hi]
 * ("inf", "nan" and overflowing values are refused) */
int sp_arg_double(const char *s, double lo, double hi, double *out);
int sp_arg_long(const char *s, long lo, long hi, long *out);

/* long-option codes for the roots; handle with sp_roots_opt */
enum { SP_OPT_SYSFS_ROOT = 0x1000, SP_OPT_PROC_ROOT };
#define SP_ROOT_OPTIONS                                                \
	{"sysfs-root", required_argument, NULL, SP_OPT_SYSFS_ROOT},    \
	{                                                              \
		"proc-root", required_argument, NULL, SP_OPT_PROC_ROOT \
	}
#define SP_ROOT_HELP                                                                  \
	"      --sysfs-root DIR        read DIR/kernel/mm/ksm, ... instead of /sys\n" \
	"      --proc-root DIR         read DIR/PID/..., DIR/vmstat instead of /proc\n"

/* 1 if c was a root option (and r is updated), else 0 */
int sp_roots_opt(struct sp_roots *r, int c, const char *arg);

/* Prints why KSM cannot be read (err from sp_view_read) and returns the
 * exit status for it. */
int sp_ksm_unreadable(const char *cmd, const struct sp_roots *r, int err);

#endif /* SP_CLI_ARGS_H */
