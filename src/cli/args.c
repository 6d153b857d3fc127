/* SPDX-License-Identifier: MIT */
/* args.c - strict numbers and the options every subcommand shares (see args.h). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "kernel/ksm.h"

int sp_arg_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (!*s || *end || errno || !isfinite(v) || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

int sp_arg_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

int sp_opt_common(int c, const char *arg, struct sp_roots *r, void (*usage)(FILE *f))
{
	if (r && c == SP_OPT_SYSFS_ROOT) {
		r->sysfs = arg;
		return SP_OPT_GO_ON;
	}
	if (r && c == SP_OPT_PROC_ROOT) {
		r->proc = arg;
		return SP_OPT_GO_ON;
	}
	if (c == 'h') {
		usage(stdout);
		return SP_EXIT_OK;
	}
	usage(stderr);
	return SP_EXIT_USAGE;
}

int sp_opt_no_operands(int argc, char **argv)
{
	if (optind >= argc)
		return SP_OPT_GO_ON;
	sp_errorf("samepage %s: unexpected argument '%s'\n", sp_cmd_name, argv[optind]);
	return SP_EXIT_USAGE;
}

int sp_ksm_unreadable(const char *cmd, const struct sp_roots *r, int err)
{
	char dir[512];

	sp_ksm_dir(r->sysfs, dir, sizeof(dir));
	if (err == -ENOENT) {
		sp_errorf("samepage %s: %s: no such directory: this kernel has no KSM (CONFIG_KSM is off)\n", cmd, dir);
		return SP_EXIT_NOKSM;
	}
	sp_errorf("samepage %s: %s: %s\n", cmd, dir, strerror(-err));
	return err == -EACCES || err == -EPERM ? SP_EXIT_PERM : SP_EXIT_FAIL;
}
