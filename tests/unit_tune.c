/* SPDX-License-Identifier: MIT */
/*
 * unit_tune.c - the decisions of `samepage tune` (src/tune/rules.c),
 * exactly: ksmtuned's start under memory pressure, boost up to npages_max,
 * decay down to npages_min, stop when the pressure is gone, its
 * sleep_millisecs and threshold; the scan-time controller raising
 * pages_to_scan when a full scan is too slow, lowering it when it is too
 * fast or ksmd's CPU is over the ceiling, deferring to the kernel's advisor
 * (and then never naming pages_to_scan); the ksmtuned.conf parser; the
 * housekeeping CPUs. No I/O: numbers in, changes out.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tune/rules.h"

#define GIB_KB (1024LL * 1024)

/* 16 GiB, nothing short, no VMs, KSM off, kernel defaults, no advisor */
static void base(struct sp_tune_config *c, struct sp_tune_input *in, enum sp_tune_mode mode)
{
	sp_tune_defaults(c);
	c->mode = mode;
	memset(in, 0, sizeof(*in));
	in->mem_total_kb = 16 * GIB_KB;
	in->mem_avail_kb = 12 * GIB_KB;
	in->k.run = 0;
	in->k.pages_to_scan = 100;
	in->k.sleep_millisecs = 20;
	in->k.advisor_mode = -1;
	in->k.advisor_target_scan_time = -1;
	in->k.advisor_max_cpu = -1;
	in->cur.t = 1000;
	in->cur.ksmd_cpu_s = 50;
	in->cur.full_scans = 10;
	in->cur.pages_scanned = 100000;
}

/* a previous sample dt seconds before cur, KSM running in both */
static void prev(struct sp_tune_input *in, double dt, double cpu_s, long long dscans, long long dscanned)
{
	in->k.run = 1;
	in->have_prev = 1;
	in->prev = in->cur;
	in->cur.t = in->prev.t + dt;
	in->cur.ksmd_cpu_s = in->prev.ksmd_cpu_s + cpu_s;
	in->cur.full_scans = in->prev.full_scans + dscans;
	in->cur.pages_scanned = in->prev.pages_scanned + dscanned;
	in->prev.running = in->cur.running = 1;
}

/* the change to knob, or NULL when the rules did not consider it */
static const struct sp_tune_change *find(const struct sp_tune_decision *d, enum sp_tune_knob k, int *keep)
{
	for (int i = 0; i < d->n; i++)
		if (d->c[i].knob == k) {
			if (keep)
				*keep = d->keep[i];
			return &d->c[i];
		}
	return NULL;
}

static void expect(const struct sp_tune_decision *d, enum sp_tune_knob k, const char *old, const char *val,
		   const char *in_reason)
{
	const struct sp_tune_change *c = find(d, k, NULL);

	assert_non_null(c);
	assert_string_equal(c->old, old);
	assert_string_equal(c->val, val);
	if (in_reason && !strstr(c->reason, in_reason))
		fail_msg("%s: reason \"%s\" lacks \"%s\"", sp_tune_knob_name(k), c->reason, in_reason);
}

static int changes(const struct sp_tune_decision *d)
{
	int n = 0;

	for (int i = 0; i < d->n; i++)
		n += !d->keep[i];
	return n;
}

static void test_ksmtuned_start(void **state)
{
	struct sp_tune_config c;
	struct sp_tune_input in;
	struct sp_tune_decision d;

	(void)state;
	base(&c, &in, SP_TUNE_KSMTUNED);
	in.mem_avail_kb = 1000000; /* < 20% of 16 GiB = 3355443 kB */
	sp_tune_decide(&c, &in, &d);
	assert_int_equal(d.thres_kb, 3355443);
	assert_int_equal(d.n, 3);
	/* written in ksmtuned's order: pages_to_scan, sleep, then run */
	assert_int_equal(d.c[0].knob, SP_TK_PAGES_TO_SCAN);
	assert_int_equal(d.c[1].knob, SP_TK_SLEEP_MILLISECS);
	assert_int_equal(d.c[2].knob, SP_TK_RUN);
	expect(&d, SP_TK_PAGES_TO_SCAN, "100", "400",
	       "MemAvailable 976 MiB < threshold 3276 MiB: boost 100 +300 = 400");
	expect(&d, SP_TK_SLEEP_MILLISECS, "20", "10", "= 10 ms");
	expect(&d, SP_TK_RUN, "0", "1", "memory is short");
}

static void test_ksmtuned_boost_capped(void **state)
{
	struct sp_tune_config c;
	struct sp_tune_input in;
	struct sp_tune_decision d;

	(void)state;
	base(&c, &in, SP_TUNE_KSMTUNED);
	in.mem_avail_kb = 1000000;
	in.k.run = 1;
	in.k.pages_to_scan = 1100;
	in.k.sleep_millisecs = 10;
	sp_tune_decide(&c, &in, &d);
	expect(&d, SP_TK_PAGES_TO_SCAN, "1100", "1250", "1100 +300 = 1400, capped at npages_max");
	assert_int_equal(changes(&d), 1); /* sleep and run already right */
	in.k.pages_to_scan = 1250;
	sp_tune_decide(&c, &in, &d);
	expect(&d, SP_TK_PAGES_TO_SCAN, "1250", "1250", NULL);
	assert_int_equal(changes(&d), 0);
}

static void test_ksmtuned_decay_floored(void **state)
{
	struct sp_tune_config c;
	struct sp_tune_input in;
	struct sp_tune_decision d;

	(void)state;
	base(&c, &in, SP_TUNE_KSMTUNED);
	/* memory is not short, but VMs could take it: keep merging, gently */
	in.mem_avail_kb = 4 * GIB_KB;
	in.committed_kb = 14 * GIB_KB;
	in.k.run = 1;
	in.k.pages_to_scan = 400;
	sp_tune_decide(&c, &in, &d);
	expect(&d, SP_TK_PAGES_TO_SCAN, "400", "350",
	       "MemAvailable 4096 MiB >= threshold 3276 MiB: decay 400 -50 = 350");
	expect(&d, SP_TK_RUN, "1", "1", "VM memory 14336 MiB + threshold 3276 MiB >= MemTotal 16384 MiB");
	in.k.pages_to_scan = 100;
	sp_tune_decide(&c, &in, &d);
	expect(&d, SP_TK_PAGES_TO_SCAN, "100", "64", "100 -50 = 50, floored at npages_min");
	in.k.pages_to_scan = 64;
	sp_tune_decide(&c, &in, &d);
	expect(&d, SP_TK_PAGES_TO_SCAN, "64", "64", NULL);
}

static void test_ksmtuned_stop(void **state)
{
	struct sp_tune_config c;
	struct sp_tune_input in;
	struct sp_tune_decision d;

	(void)state;
	base(&c, &in, SP_TUNE_KSMTUNED);
	in.k.run = 1;
	in.k.pages_to_scan = 700;
	sp_tune_decide(&c, &in, &d);
	/* only run changes; pages_to_scan stays for the next start */
	assert_int_equal(d.n, 1);
	expect(&d, SP_TK_RUN, "1", "0", "MemAvailable 12288 MiB >= threshold 3276 MiB and VM memory 0 MiB");
	/* the same in scan-time mode, unless --always-on */
	base(&c, &in, SP_TUNE_SCAN_TIME);
	in.k.run = 1;
	sp_tune_decide(&c, &in, &d);
	assert_int_equal(d.n, 1);
	expect(&d, SP_TK_RUN, "1", "0", "no need to merge");
	c.always_on = 1;
	in.k.run = 0;
	sp_tune_decide(&c, &in, &d);
	expect(&d, SP_TK_RUN, "0", "1", "--always-on");
}

static void test_sleep_and_threshold(void **state)
{
	struct sp_tune_config c;

	(void)state;
	sp_tune_defaults(&c);
	assert_int_equal(sp_tune_sleep_ms(&c, 16 * GIB_KB), 10);
	assert_int_equal(sp_tune_sleep_ms(&c, 4 * GIB_KB), 40);
	assert_int_equal(sp_tune_sleep_ms(&c, 3 * GIB_KB), 53);	 /* 10 x 16/3, integer division */
	assert_int_equal(sp_tune_sleep_ms(&c, 64 * GIB_KB), 10); /* 2.5, floored at 10 */
	c.sleep_msec = 100;
	assert_int_equal(sp_tune_sleep_ms(&c, 32 * GIB_KB), 50);
	/* 20% of 8 GiB is 1638 MiB: the 2048 MiB constant wins */
	sp_tune_defaults(&c);
	assert_int_equal(sp_tune_threshold_kb(&c, 8 * GIB_KB), 2048 * 1024);
	assert_int_equal(sp_tune_threshold_kb(&c, 100 * GIB_KB), 100 * GIB_KB / 5);
}

static void test_scan_time_raises_slow_scan(void **state)
{
	struct sp_tune_config c;
	struct sp_tune_input in;
	struct sp_tune_decision d;

	(void)state;
	base(&c, &in, SP_TUNE_SCAN_TIME);
	in.mem_avail_kb = 1000000;
	in.scan_pages = 60000;
	/* 6000 pages scanned in 60 s: a 60000-page scan takes 600 s; 6 s CPU is 10% */
	prev(&in, 60, 6, 0, 6000);
	sp_tune_decide(&c, &in, &d);
	expect(&d, SP_TK_PAGES_TO_SCAN, "100", "300", "full scan 600 s");
	expect(&d, SP_TK_RUN, "1", "1", NULL);
	assert_int_equal(changes(&d), 1);
	assert_true(d.scan_s > 599.9 && d.scan_s < 600.1);
	assert_true(d.ksmd_cpu_pct > 9.99 && d.ksmd_cpu_pct < 10.01);
	/* 40x too slow: at most 4x per interval */
	prev(&in, 60, 6, 0, 150);
	sp_tune_decide(&c, &in, &d);
	expect(&d, SP_TK_PAGES_TO_SCAN, "100", "400", "-> 400");
	/* raising to 300 would take ksmd to 3 x 30% = 90% > 70%: held to 233 */
	prev(&in, 60, 18, 0, 6000);
	sp_tune_decide(&c, &in, &d);
	expect(&d, SP_TK_PAGES_TO_SCAN, "100", "233", "would pass the 70% ceiling: held to 233");
	/* a scan within 10% of the target is left alone */
	prev(&in, 60, 6, 0, 19000); /* 189 s */
	sp_tune_decide(&c, &in, &d);
	expect(&d, SP_TK_PAGES_TO_SCAN, "100", "100", "kept");
}

static void test_scan_time_lowers_fast_scan(void **state)
{
	struct sp_tune_config c;
	struct sp_tune_input in;
	struct sp_tune_decision d;

	(void)state;
	base(&c, &in, SP_TUNE_SCAN_TIME);
	in.mem_avail_kb = 1000000;
	in.k.pages_to_scan = 1000;
	/* 6 full scans in 60 s: 10 s each, target 200 s -> 50, but at most /4 */
	prev(&in, 60, 3, 6, 0);
	sp_tune_decide(&c, &in, &d);
	expect(&d, SP_TK_PAGES_TO_SCAN, "1000", "250", "full_scans +6 in 60.0 s");
	/* never below npages_min */
	in.k.pages_to_scan = 100;
	sp_tune_decide(&c, &in, &d);
	expect(&d, SP_TK_PAGES_TO_SCAN, "100", "64", NULL);
}

static void test_scan_time_cpu_ceiling(void **state)
{
	struct sp_tune_config c;
	struct sp_tune_input in;
	struct sp_tune_decision d;

	(void)state;
	base(&c, &in, SP_TUNE_SCAN_TIME);
	in.mem_avail_kb = 1000000;
	in.k.pages_to_scan = 1000;
	in.scan_pages = 100000;
	/* scan on target (200 s) but ksmd used 84 s of CPU in 60 s: 140% */
	prev(&in, 60, 84, 0, 30000);
	sp_tune_decide(&c, &in, &d);
	expect(&d, SP_TK_PAGES_TO_SCAN, "1000", "500", "ksmd 140.0% CPU > ceiling 70%: 1000 x 70/140.0 = 500");
	/* over the ceiling with no scan time known: lowered all the same */
	prev(&in, 60, 84, 0, 0);
	sp_tune_decide(&c, &in, &d);
	expect(&d, SP_TK_PAGES_TO_SCAN, "1000", "500", "no scanning progress");
	/* slightly over (75%): no dead band when over the ceiling */
	c.max_cpu_pct = 70;
	prev(&in, 100, 75, 0, 50000);
	sp_tune_decide(&c, &in, &d);
	expect(&d, SP_TK_PAGES_TO_SCAN, "1000", "933", NULL);
}

static void test_scan_time_projection(void **state)
{
	struct sp_tune_config c;
	struct sp_tune_input in;
	struct sp_tune_decision d;

	(void)state;
	base(&c, &in, SP_TUNE_SCAN_TIME);
	in.mem_avail_kb = 1000000;
	in.k.run = 1;
	in.k.sleep_millisecs = 50;
	in.scan_pages = 1000000;
	/* first reading: 10000 batches x 50 ms = at least 500 s: raise */
	sp_tune_decide(&c, &in, &d);
	expect(&d, SP_TK_PAGES_TO_SCAN, "100", "250",
	       "at least 1000000 pages / pages_to_scan 100 x sleep_millisecs 50");
	/* at least 100 s says nothing about the target: keep */
	in.k.sleep_millisecs = 10;
	sp_tune_decide(&c, &in, &d);
	expect(&d, SP_TK_PAGES_TO_SCAN, "100", "100", "not above the target 200 s");
	/* KSM being started this interval: the controller waits */
	in.k.run = 0;
	in.k.sleep_millisecs = 50;
	sp_tune_decide(&c, &in, &d);
	assert_null(find(&d, SP_TK_PAGES_TO_SCAN, NULL));
	expect(&d, SP_TK_RUN, "0", "1", NULL);
}

static void test_scan_time_defers_to_advisor(void **state)
{
	struct sp_tune_config c;
	struct sp_tune_input in;
	struct sp_tune_decision d;

	(void)state;
	base(&c, &in, SP_TUNE_SCAN_TIME);
	in.mem_avail_kb = 1000000;
	in.scan_pages = 60000;
	in.k.advisor_mode = 0;
	in.k.advisor_target_scan_time = 100;
	in.k.advisor_max_cpu = 50;
	c.max_cpu_pct = 30;
	prev(&in, 60, 6, 0, 6000); /* would raise pages_to_scan without the advisor */
	sp_tune_decide(&c, &in, &d);
	assert_null(find(&d, SP_TK_PAGES_TO_SCAN, NULL));
	assert_int_equal(d.n, 4);
	assert_int_equal(d.c[0].knob, SP_TK_ADVISOR_TARGET_SCAN_TIME);
	assert_int_equal(d.c[1].knob, SP_TK_ADVISOR_MAX_CPU);
	assert_int_equal(d.c[2].knob, SP_TK_ADVISOR_MODE);
	expect(&d, SP_TK_ADVISOR_TARGET_SCAN_TIME, "100", "200", NULL);
	expect(&d, SP_TK_ADVISOR_MAX_CPU, "50", "30", NULL);
	expect(&d, SP_TK_ADVISOR_MODE, "none", "scan-time", "does not write pages_to_scan");
	/* already set: nothing to do, still no pages_to_scan */
	in.k.advisor_mode = 1;
	in.k.advisor_target_scan_time = 200;
	in.k.advisor_max_cpu = 30;
	sp_tune_decide(&c, &in, &d);
	assert_null(find(&d, SP_TK_PAGES_TO_SCAN, NULL));
	assert_int_equal(changes(&d), 0);
	/* ksmtuned mode on an advisor kernel: advisor off first, then pages_to_scan */
	c.mode = SP_TUNE_KSMTUNED;
	sp_tune_decide(&c, &in, &d);
	assert_int_equal(d.c[0].knob, SP_TK_ADVISOR_MODE);
	expect(&d, SP_TK_ADVISOR_MODE, "scan-time", "none", "refuses");
	assert_int_equal(d.c[1].knob, SP_TK_PAGES_TO_SCAN);
	expect(&d, SP_TK_PAGES_TO_SCAN, "100", "400", NULL);
}

static void test_cpu_pct(void **state)
{
	struct sp_tune_sample a = {.t = 10, .ksmd_cpu_s = 5}, b = {.t = 12, .ksmd_cpu_s = 6};

	(void)state;
	assert_true(sp_tune_cpu_pct(&a, &b) > 49.99 && sp_tune_cpu_pct(&a, &b) < 50.01);
	b.ksmd_cpu_s = -1;
	assert_true(sp_tune_cpu_pct(&a, &b) < 0);
	b.ksmd_cpu_s = 6;
	b.t = 10;
	assert_true(sp_tune_cpu_pct(&a, &b) < 0);
}

static void test_config_parse(void **state)
{
	const char *text = "# Configuration file for ksmtuned.\n"
			   "\n"
			   "KSM_MONITOR_INTERVAL=30\n"
			   "  KSM_SLEEP_MSEC=\"20\"\n"
			   "KSM_NPAGES_BOOST='500'   # faster\n"
			   "KSM_NPAGES_DECAY=-25\n"
			   "# KSM_NPAGES_MIN=1\n"
			   "KSM_NPAGES_MIN=\n"
			   "export KSM_NPAGES_MAX=2000\n"
			   "KSM_THRES_COEF=30\n"
			   "KSM_THRES_CONST=4096\r\n"
			   "LOGFILE=/var/log/ksmtuned\n"
			   "DEBUG=1\n"
			   "KSM_FOO=3";
	struct sp_tune_config c;
	char msg[256];

	(void)state;
	sp_tune_defaults(&c);
	assert_int_equal(sp_tune_config_parse(text, &c, msg, sizeof(msg)), 0);
	assert_true(c.interval_s == 30);
	assert_int_equal(c.sleep_msec, 20);
	assert_int_equal(c.boost, 500);
	assert_int_equal(c.decay, -25);
	assert_int_equal(c.npages_min, 64); /* KEY= keeps the default */
	assert_int_equal(c.npages_max, 2000);
	assert_int_equal(c.thres_coef, 30);
	assert_int_equal(c.thres_const_mib, 4096);
	assert_string_equal(msg, "ignored: LOGFILE, DEBUG, KSM_FOO (unknown)");
	assert_int_equal(sp_tune_config_check(&c, msg, sizeof(msg)), 0);

	sp_tune_defaults(&c);
	assert_int_equal(sp_tune_config_parse("KSM_NPAGES_MAX=100\nKSM_NPAGES_BOOST=lots\n", &c, msg, sizeof(msg)),
			 -EINVAL);
	assert_string_equal(msg, "line 2: KSM_NPAGES_BOOST=lots: not an integer from 0 to 1000000000");
	assert_int_equal(sp_tune_config_parse("KSM_NPAGES_DECAY=50", &c, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "line 1: KSM_NPAGES_DECAY=50"));
	assert_non_null(strstr(msg, "give it negative"));
	assert_int_equal(sp_tune_config_parse("\n\nKSM_THRES_COEF=101\n", &c, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "line 3:"));
	assert_int_equal(sp_tune_config_parse("just words\n", &c, msg, sizeof(msg)), -EINVAL);
	assert_string_equal(msg, "line 1: expected KEY=VALUE");
	assert_int_equal(sp_tune_config_parse("KSM_MONITOR_INTERVAL=0.5", &c, msg, sizeof(msg)), 0);
	assert_true(c.interval_s == 0.5);

	/* one key at a time, as the options use it */
	assert_int_equal(sp_tune_config_set(&c, "KSM_NPAGES_MIN", "5000", msg, sizeof(msg)), 0);
	assert_int_equal(sp_tune_config_check(&c, msg, sizeof(msg)), -EINVAL);
	assert_string_equal(msg, "npages_min 5000 is above npages_max 1250");
	assert_int_equal(sp_tune_config_set(&c, "NOPE", "1", msg, sizeof(msg)), -ENOENT);
}

static void test_housekeeping(void **state)
{
	struct sp_cpus online, iso, nohz, out;
	char b[64];

	(void)state;
	assert_int_equal(sp_cpus_parse("0-7", &online), 0);
	assert_int_equal(sp_cpus_parse("2-3", &iso), 0);
	assert_int_equal(sp_cpus_parse("3-5", &nohz), 0);
	sp_tune_housekeeping(&online, &iso, &nohz, &out);
	assert_string_equal(sp_cpus_format(&out, b, sizeof(b)), "0-1,6-7");
	assert_int_equal(sp_cpus_parse("", &iso), 0);
	assert_int_equal(sp_cpus_parse("", &nohz), 0);
	sp_tune_housekeeping(&online, &iso, &nohz, &out);
	assert_string_equal(sp_cpus_format(&out, b, sizeof(b)), "0-7");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ksmtuned_start),
		cmocka_unit_test(test_ksmtuned_boost_capped),
		cmocka_unit_test(test_ksmtuned_decay_floored),
		cmocka_unit_test(test_ksmtuned_stop),
		cmocka_unit_test(test_sleep_and_threshold),
		cmocka_unit_test(test_scan_time_raises_slow_scan),
		cmocka_unit_test(test_scan_time_lowers_fast_scan),
		cmocka_unit_test(test_scan_time_cpu_ceiling),
		cmocka_unit_test(test_scan_time_projection),
		cmocka_unit_test(test_scan_time_defers_to_advisor),
		cmocka_unit_test(test_cpu_pct),
		cmocka_unit_test(test_config_parse),
		cmocka_unit_test(test_housekeeping),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
