/* SPDX-License-Identifier: MIT */
/*
 * tune.h - `samepage tune`, the daemon: its state, shared by tune.c (the
 * loop), tune_opts.c (the command line), tune_io.c (reading the host, writing
 * knobs, the log, putting them back) and tune_ksmd.c (ksmd's CPUs and
 * nice).
 */
#ifndef SP_CLI_TUNE_H
#define SP_CLI_TUNE_H

#include "cli/ksmview.h"
#include "tune/rules.h"

struct tuner {
	struct sp_roots r;
	struct sp_tune_config cfg;
	int dry, once, json, verbose, restore;
	const char *ksmd_cpus; /* --ksmd-cpus LIST or "housekeeping", or NULL */
	int set_nice, nice;    /* --ksmd-nice                                 */

	/* the knobs as tune found them, and which it wrote */
	char start[SP_TK_COUNT][48];
	int start_ok[SP_TK_COUNT], wrote[SP_TK_COUNT];
	/* --dry-run: the values tune would have written, read back in their place */
	char shadow[SP_TK_COUNT][48];
	int shadowed[SP_TK_COUNT];

	int ksmd_pid;
	struct sp_cpus cpus_start; /* ksmd's allowed CPUs when found */
	int cpus_changed, nice_start, nice_changed;

	int have_prev;
	struct sp_tune_sample prev;
	int write_errors;
	const char *exit_error; /* set when the loop ends in failure: the exit event's "error" */
};

/* Parses argv into t (defaults, then --config, then the options). 0, an
 * exit status after saying why, or -1 when --help was shown. */
int sp_tune_parse(struct tuner *t, int argc, char **argv);

/* the log: one line (or JSON object) per event, flushed */
void sp_tune_log(const struct tuner *t, const char *action, const char *knob, const char *old, const char *val,
		 const char *reason);

/* Reads one interval's input. 0, or an exit status after saying why. */
int sp_tune_read(struct tuner *t, struct sp_tune_input *in);

/* Logs and (unless --dry-run) writes the decision's changes. 0, or the
 * exit status of a write that cannot succeed later either. */
int sp_tune_apply(struct tuner *t, const struct sp_tune_decision *d);

/* --ksmd-cpus / --ksmd-nice, once at start. 0 or an exit status. */
int sp_tune_ksmd(struct tuner *t);

/* Puts ksmd's CPUs and nice back as they were at start. */
void sp_tune_ksmd_restore(struct tuner *t);

/* Puts back every knob, ksmd's CPUs and nice as they were at start. */
void sp_tune_restore(struct tuner *t);

#endif /* SP_CLI_TUNE_H */
