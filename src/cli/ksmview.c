/* SPDX-License-Identifier: MIT */
/* ksmview.c - a reading of the kernel's KSM, for people and machines (see ksmview.h). */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/ksmview.h"
#include "cli/textsafe.h"
#include "cli/units.h"

/* Says once per file and process which KSM files hold no valid value. */
static void warn_invalid(const struct sp_ksm *k)
{
	static int warned[SP_KNOB_COUNT];

	for (int i = 0; i < SP_KNOB_COUNT; i++)
		if (k->invalid[i] && !warned[i]) {
			warned[i] = 1;
			fprintf(stderr, "samepage %s: warning: %s: invalid value '%s' (%s): left out\n", sp_cmd_name,
				sp_knob_table[i].name, sp_safe(k->text[i]), k->invalid[i]);
		}
}

int sp_view_read(const struct sp_roots *r, int with_procs, struct sp_view *v)
{
	int err;

	memset(v, 0, sizeof(*v));
	v->page_size = sysconf(_SC_PAGESIZE);
	err = sp_ksm_read(r->sysfs, &v->k);
	if (err)
		return err;
	warn_invalid(&v->k);
	v->ksmd_pid = sp_ksmd_pid(r->proc);
	if (v->ksmd_pid < 0 || sp_task_read(r->proc, v->ksmd_pid, &v->ksmd))
		v->ksmd_pid = -1;
	v->cow_ksm = sp_cow_ksm(r->proc);
	if (with_procs)
		sp_ksm_users_read(r->proc, &v->users);
	return 0;
}

void sp_view_free(struct sp_view *v)
{
	sp_ksm_users_free(&v->users);
}

/* b - a of a counter per second, or NaN when either reading lacks it */
static double rate(const struct sp_view *a, const struct sp_view *b, const char *name, double dt)
{
	long long x = sp_ksm_get(&a->k, name, -1), y = sp_ksm_get(&b->k, name, -1);

	return x >= 0 && y >= 0 ? (double)(y - x) / dt : NAN;
}

void sp_view_delta(const struct sp_view *a, const struct sp_view *b, struct sp_delta *d)
{
	memset(d, 0, sizeof(*d));
	d->dt = b->k.t - a->k.t;
	if (d->dt <= 0)
		return;
	d->valid = 1;
	d->ksmd_cpu_pct = NAN;
	if (a->ksmd_pid > 0 && a->ksmd_pid == b->ksmd_pid)
		d->ksmd_cpu_pct = 100.0 * (b->ksmd.cpu_s - a->ksmd.cpu_s) / d->dt;
	d->merged_per_s = rate(a, b, "pages_sharing", d->dt);
	d->cow_per_s = NAN;
	if (a->cow_ksm >= 0 && b->cow_ksm >= 0)
		d->cow_per_s = (double)(b->cow_ksm - a->cow_ksm) / d->dt;
	d->scanned_per_s = rate(a, b, "pages_scanned", d->dt);
	d->scans_per_s = rate(a, b, "full_scans", d->dt);
}

long long sp_view_dscans(const struct sp_view *a, const struct sp_view *b)
{
	long long x = sp_ksm_get(&a->k, "full_scans", -1), y = sp_ksm_get(&b->k, "full_scans", -1);

	return x >= 0 && y >= 0 ? y - x : 0;
}

/* pages ksmd walks per full scan: its rmap items, or the counters' sum */
static long long scan_pages(const struct sp_view *v)
{
	if (v->users.rmap_items > 0)
		return v->users.rmap_items;
	return sp_ksm_pages_tracked(&v->k);
}

void sp_view_scan_time(const struct sp_view *v, const struct sp_delta *d, long long dscans, struct sp_scan_time *s)
{
	long long pts = sp_ksm_get(&v->k, "pages_to_scan", -1);
	long long sleep = sp_ksm_get(&v->k, "sleep_millisecs", -1);

	memset(s, 0, sizeof(*s));
	s->seconds = -1;
	s->pages = scan_pages(v);
	if (d && d->valid && dscans > 0) {
		s->seconds = d->dt / (double)dscans;
		s->measured = 1;
		snprintf(s->how, sizeof(s->how), "measured: %lld full scans in %.1f s", dscans, d->dt);
		return;
	}
	if (pts < 0 || sleep < 0)
		return;
	if (pts == 0) {
		s->seconds = INFINITY;
		snprintf(s->how, sizeof(s->how), "never: pages_to_scan is 0");
		return;
	}
	/* a lower bound: the sleeps alone, not ksmd's work in each batch */
	s->seconds = ceil((double)s->pages / (double)pts) * (double)sleep / 1000.0;
	snprintf(s->how, sizeof(s->how), "projection: %lld pages / pages_to_scan %lld x sleep_millisecs %lld", s->pages,
		 pts, sleep);
}

void sp_sleep(double seconds)
{
	struct timespec ts;

	if (!(seconds > 0) || !isfinite(seconds)) /* callers bound it; never an undefined cast */
		return;
	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

const char *sp_view_run_word(long long run)
{
	switch (run) {
	case 0:
		return "stopped (merges kept)";
	case 1:
		return "merging";
	case 2:
		return "unmerging";
	}
	return "?";
}

static void print_ratio(FILE *f, const char *name, double num, double den, const char *meaning)
{
	if (den > 0)
		fprintf(f, "  %-18s %10.2f   %s\n", name, num / den, meaning);
	else
		fprintf(f, "  %-18s %10s   %s\n", name, "-", meaning);
}

static int have(const struct sp_view *v, const char *name)
{
	return v->k.present[sp_knob_index(name)];
}

void sp_view_print_savings(FILE *f, const struct sp_view *v, const char *whose)
{
	long long sharing = sp_ksm_get(&v->k, "pages_sharing", 0), shared = sp_ksm_get(&v->k, "pages_shared", 0);
	long long zero = sp_ksm_get(&v->k, "ksm_zero_pages", 0), unshared = sp_ksm_get(&v->k, "pages_unshared", 0);
	char b[32];

	fprintf(f, "Savings\n");
	if (have(v, "pages_sharing"))
		fprintf(f, "  %-18s %10s   pages_sharing x page size = %lld x %ld B\n", "saved",
			sp_fmt_bytes(b, sizeof(b), (double)sharing * (double)v->page_size), sharing, v->page_size);
	else
		fprintf(f, "  %-18s %10s   pages_sharing is %s\n", "saved", "?",
			v->k.invalid[sp_knob_index("pages_sharing")] ? "INVALID" : "missing");
	if (have(v, "ksm_zero_pages"))
		fprintf(f, "  %-18s %10s   ksm_zero_pages x page size = %lld x %ld B\n", "zero pages",
			sp_fmt_bytes(b, sizeof(b), (double)zero * (double)v->page_size), zero, v->page_size);
	if (have(v, "general_profit"))
		fprintf(f,
			"  %-18s %10s   general_profit: (pages_sharing + ksm_zero_pages) x page size\n"
			"  %-18s %10s   - rmap items x sizeof(rmap_item), %s\n",
			"profit", sp_fmt_bytes(b, sizeof(b), (double)sp_ksm_get(&v->k, "general_profit", 0)), "", "",
			whose);
	fprintf(f, "Ratios\n");
	print_ratio(f, "sharing/shared", (double)sharing, have(v, "pages_sharing") ? (double)shared : 0,
		    "sharers per KSM page (higher: better)");
	print_ratio(f, "unshared/sharing", (double)unshared, have(v, "pages_unshared") ? (double)sharing : 0,
		    "unique pages scanned per page saved (high: wasted scanning)");
}

void sp_view_print_scan_time(FILE *f, const struct sp_scan_time *s)
{
	char b[64];

	if (s->seconds < 0)
		fprintf(f, "  %-18s %10s\n", "full scan", "unknown");
	else if (!s->measured && !s->pages)
		fprintf(f, "  %-18s %10s   nothing to scan: no process has mergeable pages\n", "full scan", "-");
	else if (isinf(s->seconds))
		fprintf(f, "  %-18s %10s   %s\n", "full scan", "never", s->how);
	else
		fprintf(f, "  %-18s %10s   %s%s\n", "full scan", sp_fmt_duration(b, sizeof(b), s->seconds), s->how,
			s->measured ? "" : " (sleeps only: a lower bound)");
}

static void print_ksmd(FILE *f, const struct sp_view *v, const struct sp_delta *d, const struct sp_scan_time *s)
{
	char b[64], c[256];

	fprintf(f, "ksmd\n");
	if (v->ksmd_pid < 0) {
		fprintf(f, "  not found in /proc (KSM compiled out, or /proc from another namespace)\n");
	} else {
		fprintf(f, "  %-18s %10d   allowed CPUs %s, nice %d, %s CPU time in all\n", "pid", v->ksmd_pid,
			sp_cpus_format(&v->ksmd.allowed, c, sizeof(c)), v->ksmd.nice,
			sp_fmt_duration(b, sizeof(b), v->ksmd.cpu_s));
		if (d && d->valid && !isnan(d->ksmd_cpu_pct))
			fprintf(f, "  %-18s %9.1f%%   over %.1f s, from /proc/%d/stat utime+stime\n", "CPU",
				d->ksmd_cpu_pct, d->dt, v->ksmd_pid);
	}
	sp_view_print_scan_time(f, s);
}

void sp_view_print_advisor(FILE *f, const struct sp_view *v)
{
	int i = sp_knob_index("advisor_mode");

	if (v->k.invalid[i]) {
		fprintf(f, "  %-18s %10s   advisor_mode holds no valid mode\n", "advisor", "INVALID");
		return;
	}
	if (!v->k.present[i]) {
		fprintf(f, "  %-18s %10s   (no advisor on this kernel: pages_to_scan is set by hand)\n", "advisor",
			"absent");
		return;
	}
	if (!v->k.val[i]) {
		fprintf(f, "  %-18s %10s   pages_to_scan is set by hand (%lld)\n", "advisor", "none",
			sp_ksm_get(&v->k, "pages_to_scan", 0));
		return;
	}
	fprintf(f, "  %-18s %10s   sets pages_to_scan (now %lld, within %lld..%lld) for a %llds scan, CPU <= %lld%%\n",
		"advisor", "scan-time", sp_ksm_get(&v->k, "pages_to_scan", 0),
		sp_ksm_get(&v->k, "advisor_min_pages_to_scan", 0), sp_ksm_get(&v->k, "advisor_max_pages_to_scan", 0),
		sp_ksm_get(&v->k, "advisor_target_scan_time", 0), sp_ksm_get(&v->k, "advisor_max_cpu", 0));
}

void sp_view_print_rate(FILE *f, const char *name, double x, const char *meaning)
{
	if (isnan(x))
		fprintf(f, "  %-18s %10s   %s\n", name, "-", meaning);
	else
		fprintf(f, "  %-18s %10.0f   %s\n", name, x, meaning);
}

static void print_rates(FILE *f, const struct sp_delta *d)
{
	if (!d || !d->valid)
		return;
	fprintf(f, "Rates (over %.1f s)\n", d->dt);
	sp_view_print_rate(f, "merged/s", d->merged_per_s, "d(pages_sharing)/dt");
	sp_view_print_rate(f, "COW breaks/s", d->cow_per_s,
			   "d(cow_ksm)/dt from /proc/vmstat: writes that broke a merge");
	sp_view_print_rate(f, "scanned/s", d->scanned_per_s, "d(pages_scanned)/dt");
}

void sp_view_print_knobs(FILE *f, const struct sp_view *v, int counters)
{
	fprintf(f, counters ? "Counters\n" : "Knobs\n");
	for (int i = 0; i < SP_KNOB_COUNT; i++) {
		if ((sp_knob_table[i].type == SP_KNOB_COUNTER) != counters)
			continue;
		if (v->k.invalid[i])
			fprintf(f, "  %-36s %-16s INVALID (%s): left out\n", sp_knob_table[i].name,
				sp_safe(v->k.text[i]), v->k.invalid[i]);
		else if (v->k.present[i])
			fprintf(f, "  %-36s %-16s %s\n", sp_knob_table[i].name, sp_safe(v->k.text[i]),
				sp_knob_table[i].help);
	}
	if (counters)
		for (int i = 0; i < v->k.nextra; i++)
			fprintf(f, "  %-36s %-16s (not known to samepage)\n", sp_safe(v->k.extra_name[i]),
				sp_safe(v->k.extra_text[i]));
}

static void print_procs(FILE *f, const struct sp_view *v, int top_n)
{
	char b[32];
	size_t n = v->users.n < (size_t)top_n ? v->users.n : (size_t)top_n;

	fprintf(f, "Processes using KSM (/proc/*/ksm_stat, by profit): %zu", v->users.n);
	if (v->users.denied)
		fprintf(f, " (%zu more unreadable: run as root)", v->users.denied);
	fprintf(f, "\n");
	if (!n)
		return;
	fprintf(f, "  %7s  %-16s %10s %10s %12s  %s\n", "PID", "COMM", "MERGING", "ZERO", "PROFIT", "MERGE_ANY");
	for (size_t i = 0; i < n; i++) {
		const struct sp_proc *p = &v->users.p[i];

		fprintf(f, "  %7d  %-16s %10ld %10ld %12s  %s\n", p->pid, sp_safe(p->comm), p->ksm_merging_pages,
			p->ksm_zero_pages, sp_fmt_bytes(b, sizeof(b), (double)p->ksm_process_profit),
			p->merge_any ? "yes" : "no");
	}
	if (n < v->users.n)
		fprintf(f, "  ... %zu more (--top N)\n", v->users.n - n);
}

void sp_view_print(FILE *f, const struct sp_view *v, const struct sp_delta *d, const struct sp_scan_time *s, int top_n)
{
	long long run = sp_ksm_get(&v->k, "run", -1);

	if (run >= 0)
		fprintf(f, "KSM: run=%lld, %s\n", run, sp_view_run_word(run));
	else
		fprintf(f, "KSM: run=?, %s\n",
			v->k.invalid[sp_knob_index("run")] ? "INVALID value in run" : "no run file");
	if (v->k.ninvalid)
		fprintf(f,
			"WARNING: %d KSM file%s hold%s no valid value: marked INVALID below, left out of the figures\n",
			v->k.ninvalid, v->k.ninvalid == 1 ? "" : "s", v->k.ninvalid == 1 ? "s" : "");
	sp_view_print_savings(f, v, "the kernel's figure");
	print_ksmd(f, v, d, s);
	sp_view_print_advisor(f, v);
	print_rates(f, d);
	sp_view_print_knobs(f, v, 0);
	sp_view_print_knobs(f, v, 1);
	if (top_n)
		print_procs(f, v, top_n);
}
