/* SPDX-License-Identifier: MIT */
/*
 * ksmview.h - one reading of the kernel's KSM as `samepage status`, `top`
 * and `exporter` show it: the sysfs snapshot, ksmd's CPU time, cow_ksm,
 * the processes using KSM, and what follows from two readings (CPU %,
 * rates, time per full scan).
 *
 * Each figure shown to people carries its formula, so an operator can
 * check it against /sys by hand. A reading is self-contained: two
 * readings of the same host give rates; one gives a projection.
 */
#ifndef SP_CLI_KSMVIEW_H
#define SP_CLI_KSMVIEW_H

#include <json-c/json.h>
#include <stdio.h>

#include "kernel/host.h"
#include "kernel/ksm.h"
#include "kernel/ksmstat.h"
#include "cli/roots.h"

struct sp_view {
	struct sp_ksm k;
	int ksmd_pid; /* -1: not found */
	struct sp_task ksmd;
	long long cow_ksm; /* -1: absent */
	struct sp_ksm_users users;
	long page_size;
};

/* What two readings say; valid says whether dt > 0. A rate a reading
 * cannot give (ksmd not found, a counter absent or invalid) is NaN. */
struct sp_delta {
	double dt;
	int valid;
	double ksmd_cpu_pct, merged_per_s, cow_per_s, scanned_per_s, scans_per_s;
};

struct sp_scan_time {
	double seconds; /* <0: unknown; INFINITY when pages_to_scan is 0 */
	int measured;	/* 1 from full_scans over time, 0 a projection  */
	long long pages;
	char how[160];
};

/* 0, or -ENOENT when the kernel has no KSM (sysfs dir missing), -errno.
 * Warns on stderr, once per file, about KSM files holding invalid values. */
int sp_view_read(const struct sp_roots *r, int with_procs, struct sp_view *v);
void sp_view_free(struct sp_view *v);
void sp_view_delta(const struct sp_view *a, const struct sp_view *b, struct sp_delta *d);
/* full scans between two readings (0 when either lacks full_scans) */
long long sp_view_dscans(const struct sp_view *a, const struct sp_view *b);
void sp_view_scan_time(const struct sp_view *v, const struct sp_delta *d, long long dscans, struct sp_scan_time *s);

/* the human report; top_n rows of processes (0: none) */
void sp_view_print(FILE *f, const struct sp_view *v, const struct sp_delta *d, const struct sp_scan_time *s, int top_n);
struct json_object *sp_view_json(const struct sp_view *v, const struct sp_delta *d, const struct sp_scan_time *s,
				 int top_n);

/* Pieces of the report, also used for samepaged's domains (daemonview.c),
 * whose knobs and counters fill an sp_view's k by the table's index. */
const char *sp_view_run_word(long long run); /* "merging", ... */
/* savings and ratios; whose: "the kernel's figure" (said of general_profit) */
void sp_view_print_savings(FILE *f, const struct sp_view *v, const char *whose);
void sp_view_print_advisor(FILE *f, const struct sp_view *v);
void sp_view_print_scan_time(FILE *f, const struct sp_scan_time *s); /* the "full scan" line */
void sp_view_print_rate(FILE *f, const char *name, double x, const char *meaning);
/* every present knob (counters 0) or counter (1), with its help */
void sp_view_print_knobs(FILE *f, const struct sp_view *v, int counters);
struct json_object *sp_view_knobs_json(const struct sp_view *v, int counters);
struct json_object *sp_view_savings_json(const struct sp_view *v);
struct json_object *sp_view_rates_json(const struct sp_delta *d); /* NULL (JSON null) when not valid */
/* Adds full_scan_seconds/_method/_pages/_how of s to the object o. */
void sp_scan_time_json_add(struct json_object *o, const struct sp_scan_time *s);

/* Sleeps seconds (fractional). */
void sp_sleep(double seconds);

#endif /* SP_CLI_KSMVIEW_H */
