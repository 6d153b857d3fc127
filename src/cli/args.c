/* SPDX-License-Identifier: MIT */
/* args.c - strict numbers and the root options (see args.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"

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

int sp_roots_opt(struct sp_roots *r, int c, const char *arg)
{
	if (c == SP_OPT_SYSFS_ROOT)
		r->sysfs = arg;
	else if (c == SP_OPT_PROC_ROOT)
		r->proc = arg;
	else
		return 0;
	return 1;
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
