/* SPDX-License-Identifier: MIT */
/*
 * rules.c - what `samepage tune` decides each interval (see
 * rules.h). Pure: numbers in, knob changes with reasons out, so the
 * unit tests pin every rule down exactly.
 *
 * The scan-time controller without the kernel's advisor: ksmd covers
 * pages_to_scan pages per wake-up, so the time of a full scan shrinks in
 * proportion as pages_to_scan grows (while ksmd mostly sleeps). The time is
 * measured from full_scans when several scans finished in the interval,
 * otherwise from the pages_scanned rate against the pages one scan covers.
 * Before any measurement, pages / pages_to_scan x sleep_millisecs bounds it
 * from below: enough to raise pages_to_scan, never to lower it.
 * pages_to_scan then becomes pages_to_scan x measured / target, at most 4x
 * up or down per interval, lowered at once when ksmd's CPU share is over
 * the ceiling and never raised past what the ceiling allows at the measured
 * CPU per page. Moves under 10% are not made, so the knob does not jitter.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tune/rules.h"

#define KB_PER_16G     (16LL * 1024 * 1024)
#define SLEEP_FLOOR_MS 10
#define MAX_STEP       4 /* the controller moves pages_to_scan by at most this factor */

static const char *const knob_names[SP_TK_COUNT] = {
	"run", "pages_to_scan", "sleep_millisecs", "advisor_mode", "advisor_target_scan_time", "advisor_max_cpu",
};

const char *sp_tune_knob_name(enum sp_tune_knob k)
{
	return k >= 0 && k < SP_TK_COUNT ? knob_names[k] : "?";
}

void sp_tune_defaults(struct sp_tune_config *c)
{
	memset(c, 0, sizeof(*c));
	c->mode = SP_TUNE_SCAN_TIME;
	c->interval_s = 60;
	c->sleep_msec = 10;
	c->boost = 300;
	c->decay = -50;
	c->npages_min = 64;
	c->npages_max = 1250;
	c->thres_coef = 20;
	c->thres_const_mib = 2048;
	c->target_scan_s = 200;
	c->max_cpu_pct = 70;
	c->max_pages = 30000;
}

long long sp_tune_threshold_kb(const struct sp_tune_config *c, long long total_kb)
{
	long long t = total_kb * c->thres_coef / 100, k = (long long)c->thres_const_mib * 1024;

	return k > t ? k : t;
}

long long sp_tune_sleep_ms(const struct sp_tune_config *c, long long total_kb)
{
	long long s = total_kb > 0 ? (long long)c->sleep_msec * KB_PER_16G / total_kb : SLEEP_FLOOR_MS;

	return s < SLEEP_FLOOR_MS ? SLEEP_FLOOR_MS : s;
}

double sp_tune_cpu_pct(const struct sp_tune_sample *a, const struct sp_tune_sample *b)
{
	double dt = b->t - a->t;

	if (dt <= 0 || a->ksmd_cpu_s < 0 || b->ksmd_cpu_s < 0 || b->ksmd_cpu_s < a->ksmd_cpu_s)
		return -1;
	return 100.0 * (b->ksmd_cpu_s - a->ksmd_cpu_s) / dt;
}

static long long mib(long long kb)
{
	return kb / 1024;
}

__attribute__((format(printf, 5, 6))) static void add(struct sp_tune_decision *d, enum sp_tune_knob k, long long old,
						      const char *val, const char *fmt, ...)
{
	struct sp_tune_change *c;
	va_list ap;

	if (d->n == SP_TUNE_MAXCHANGES)
		return;
	c = &d->c[d->n];
	c->knob = k;
	if (k == SP_TK_ADVISOR_MODE)
		snprintf(c->old, sizeof(c->old), "%s", old == 1 ? "scan-time" : "none");
	else
		snprintf(c->old, sizeof(c->old), "%lld", old);
	snprintf(c->val, sizeof(c->val), "%s", val);
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
	d->keep[d->n] = !strcmp(c->old, c->val);
	d->n++;
}

static void add_num(struct sp_tune_decision *d, enum sp_tune_knob k, long long old, long long val, const char *why)
{
	char v[24];

	snprintf(v, sizeof(v), "%lld", val);
	add(d, k, old, v, "%s", why);
}

/* --- the run/stop rule both modes share -------------------------------- */

/* 1 to run, 0 to stop; why gets the numbers */
static int want_run(const struct sp_tune_config *c, const struct sp_tune_input *in, long long thres, char *why,
		    size_t len)
{
	long long total = in->mem_total_kb, avail = in->mem_avail_kb, vm = in->committed_kb;

	if (avail < thres) {
		snprintf(why, len, "MemAvailable %lld MiB < threshold %lld MiB: memory is short, merge", mib(avail),
			 mib(thres));
		return 1;
	}
	if (vm + thres >= total) {
		snprintf(why, len,
			 "VM memory %lld MiB + threshold %lld MiB >= MemTotal %lld MiB: guests could fill it, merge",
			 mib(vm), mib(thres), mib(total));
		return 1;
	}
	if (c->always_on) {
		snprintf(why, len, "--always-on (MemAvailable %lld MiB >= threshold %lld MiB)", mib(avail), mib(thres));
		return 1;
	}
	snprintf(why, len,
		 "MemAvailable %lld MiB >= threshold %lld MiB and VM memory %lld MiB + threshold < MemTotal %lld MiB: "
		 "no need to merge",
		 mib(avail), mib(thres), mib(vm), mib(total));
	return 0;
}

/* --- ksmtuned ----------------------------------------------------------- */

static void ksmtuned_pages(const struct sp_tune_config *c, const struct sp_tune_input *in, long long thres,
			   struct sp_tune_decision *d)
{
	long long p = in->k.pages_to_scan < 0 ? 0 : in->k.pages_to_scan;
	int short_mem = in->mem_avail_kb < thres;
	long long step = short_mem ? c->boost : c->decay, want = p + step;
	const char *bound = "";
	char why[320];

	if (want > c->npages_max) {
		want = c->npages_max;
		bound = ", capped at npages_max";
	}
	if (want < c->npages_min) {
		want = c->npages_min;
		bound = ", floored at npages_min";
	}
	snprintf(why, sizeof(why), "MemAvailable %lld MiB %s threshold %lld MiB: %s %lld %+lld = %lld%s (%ld..%ld)",
		 mib(in->mem_avail_kb), short_mem ? "<" : ">=", mib(thres), short_mem ? "boost" : "decay", p, step,
		 p + step, bound, c->npages_min, c->npages_max);
	add_num(d, SP_TK_PAGES_TO_SCAN, in->k.pages_to_scan, want, why);
}

static void ksmtuned_sleep(const struct sp_tune_config *c, const struct sp_tune_input *in, struct sp_tune_decision *d)
{
	long long raw = in->mem_total_kb > 0 ? (long long)c->sleep_msec * KB_PER_16G / in->mem_total_kb : 0;
	long long s = sp_tune_sleep_ms(c, in->mem_total_kb);
	char why[320];

	snprintf(why, sizeof(why), "sleep_msec %ld x 16384 MiB / MemTotal %lld MiB = %lld ms%s", c->sleep_msec,
		 mib(in->mem_total_kb), raw, raw < SLEEP_FLOOR_MS ? ", raised to the 10 ms floor" : "");
	if (in->k.sleep_millisecs >= 0)
		add_num(d, SP_TK_SLEEP_MILLISECS, in->k.sleep_millisecs, s, why);
}

/* --- scan-time ---------------------------------------------------------- */

static void defer_to_advisor(const struct sp_tune_config *c, const struct sp_tune_input *in, struct sp_tune_decision *d)
{
	if (in->k.advisor_target_scan_time >= 0)
		add_num(d, SP_TK_ADVISOR_TARGET_SCAN_TIME, in->k.advisor_target_scan_time, c->target_scan_s,
			"--target-scan-time for the kernel's advisor");
	if (in->k.advisor_max_cpu >= 0)
		add_num(d, SP_TK_ADVISOR_MAX_CPU, in->k.advisor_max_cpu, c->max_cpu_pct,
			"--max-cpu for the kernel's advisor");
	add(d, SP_TK_ADVISOR_MODE, in->k.advisor_mode, "scan-time",
	    "this kernel has the advisor: it sizes pages_to_scan for a %ld s scan under %ld%% CPU, tune does not "
	    "write pages_to_scan",
	    c->target_scan_s, c->max_cpu_pct);
}

/* pages_to_scan x sleep_millisecs per scan: a lower bound (scanning takes time too) */
static double projection(const struct sp_tune_input *in, char *how, size_t len)
{
	long long p = in->k.pages_to_scan, s = in->k.sleep_millisecs;

	if (in->scan_pages <= 0 || p <= 0 || s < 0) {
		snprintf(how, len, "no full-scan time yet (needs two readings with KSM running)");
		return -1;
	}
	snprintf(how, len, "at least %lld pages / pages_to_scan %lld x sleep_millisecs %lld", in->scan_pages, p, s);
	return (double)(in->scan_pages / p + (in->scan_pages % p != 0)) * (double)s / 1000.0;
}

/* Seconds per full scan, <0 unknown; how says from what. *lower is set
 * when the figure is only a lower bound (no measurement yet). */
static double scan_seconds(const struct sp_tune_input *in, char *how, size_t len, int *lower)
{
	const struct sp_tune_sample *a = &in->prev, *b = &in->cur;
	double dt = b->t - a->t;
	long long dscans = -1, dscanned = -1;

	*lower = 0;
	if (!in->have_prev || !a->running || !b->running || dt <= 0) {
		*lower = 1;
		return projection(in, how, len);
	}
	if (a->full_scans >= 0 && b->full_scans >= a->full_scans)
		dscans = b->full_scans - a->full_scans;
	if (a->pages_scanned >= 0 && b->pages_scanned >= a->pages_scanned)
		dscanned = b->pages_scanned - a->pages_scanned;
	if (dscans >= 2) {
		snprintf(how, len, "full_scans +%lld in %.1f s", dscans, dt);
		return dt / (double)dscans;
	}
	if (dscanned > 0 && in->scan_pages > 0) {
		snprintf(how, len, "pages_scanned +%lld in %.1f s, %lld pages per scan", dscanned, dt, in->scan_pages);
		return (double)in->scan_pages * dt / (double)dscanned;
	}
	if (dscans == 1) {
		snprintf(how, len, "full_scans +1 in %.1f s", dt);
		return dt;
	}
	snprintf(how, len, "no scanning progress in %.1f s", dt);
	return -1;
}

/* appends to a string buffer, truncating */
__attribute__((format(printf, 3, 4))) static void app(char *buf, size_t len, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	if (n + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + n, len - n, fmt, ap);
	va_end(ap);
}

static void controller(const struct sp_tune_config *c, const struct sp_tune_input *in, struct sp_tune_decision *d)
{
	long long p = in->k.pages_to_scan, want = p, lo = c->npages_min > 0 ? c->npages_min : 1, cap;
	double cpu = in->have_prev ? sp_tune_cpu_pct(&in->prev, &in->cur) : -1, t;
	int over = cpu > (double)c->max_cpu_pct, lower, measured;
	char how[160], why[320] = "";

	t = scan_seconds(in, how, sizeof(how), &lower);
	measured = t >= 0 && !(lower && t <= (double)c->target_scan_s); /* a low bound under target says nothing */
	d->scan_s = t;
	d->ksmd_cpu_pct = cpu;
	if (p <= 0) {
		snprintf(why, sizeof(why), "pages_to_scan %lld never completes a scan: start at npages_min", p);
		add_num(d, SP_TK_PAGES_TO_SCAN, p, lo, why);
		return;
	}
	if (measured) {
		want = (long long)((double)p * t / (double)c->target_scan_s + 0.5);
		if (want > p * MAX_STEP)
			want = p * MAX_STEP;
		if (want < p / MAX_STEP)
			want = p / MAX_STEP;
		app(why, sizeof(why), "full scan %.0f s (%s), target %ld s: %lld x %.0f/%ld -> %lld", t, how,
		    c->target_scan_s, p, t, c->target_scan_s, want);
	} else if (t >= 0) {
		app(why, sizeof(why), "full scan %s = %.1f s, not above the target %ld s", how, t, c->target_scan_s);
	} else {
		app(why, sizeof(why), "%s", how);
	}
	if (cpu >= 0) {
		cap = cpu > 0 ? (long long)((double)p * (double)c->max_cpu_pct / cpu)
			      : want; /* >= 0: truncation floors */
		if (over && want > cap) {
			want = cap;
			app(why, sizeof(why), "; ksmd %.1f%% CPU > ceiling %ld%%: %lld x %ld/%.1f = %lld", cpu,
			    c->max_cpu_pct, p, c->max_cpu_pct, cpu, cap);
		} else if (want > cap) {
			want = cap > p ? cap : p;
			app(why, sizeof(why), "; ksmd %.1f%% CPU would pass the %ld%% ceiling: held to %lld", cpu,
			    c->max_cpu_pct, want);
		} else {
			app(why, sizeof(why), "; ksmd %.1f%% CPU (ceiling %ld%%)", cpu, c->max_cpu_pct);
		}
	}
	if (want < lo)
		want = lo;
	if (want > c->max_pages)
		want = c->max_pages;
	if (!over && want != p && llabs(want - p) * 10 < p) {
		want = p;
		app(why, sizeof(why), "; under 10%% off, kept");
	}
	add_num(d, SP_TK_PAGES_TO_SCAN, p, want, why);
}

void sp_tune_decide(const struct sp_tune_config *c, const struct sp_tune_input *in, struct sp_tune_decision *d)
{
	long long thres = sp_tune_threshold_kb(c, in->mem_total_kb);
	int run_now = in->k.run == 1, run;
	char why[320];

	memset(d, 0, sizeof(*d));
	d->thres_kb = thres;
	d->ksmd_cpu_pct = -1;
	d->scan_s = -1;
	run = want_run(c, in, thres, why, sizeof(why));
	if (!run) {
		add_num(d, SP_TK_RUN, in->k.run, 0, why);
		return;
	}
	if (c->mode == SP_TUNE_KSMTUNED) {
		if (in->k.advisor_mode == 1)
			add(d, SP_TK_ADVISOR_MODE, 1, "none",
			    "ksmtuned rules set pages_to_scan, which the kernel refuses while the advisor is on");
		ksmtuned_pages(c, in, thres, d);
		ksmtuned_sleep(c, in, d);
	} else if (in->k.advisor_mode >= 0) {
		defer_to_advisor(c, in, d);
	} else if (run_now) {
		controller(c, in, d);
	}
	add_num(d, SP_TK_RUN, in->k.run, 1, why);
}

void sp_tune_housekeeping(const struct sp_cpus *online, const struct sp_cpus *isolated, const struct sp_cpus *nohz,
			  struct sp_cpus *out)
{
	struct sp_cpus quiet;

	for (int i = 0; i < SP_MAXCPU / 64; i++)
		quiet.bits[i] = isolated->bits[i] | nohz->bits[i];
	sp_cpus_andnot(online, &quiet, out);
}
