/* SPDX-License-Identifier: MIT */
/*
 * daemon_ksm_diff.c - samepaged against the kernel's KSM, counter for
 * counter, on a workload spread over three processes.
 *
 * ksm_diff.c's workload (duplicate groups of 1000, 300, 257, 256 and 2
 * copies, zero pages, unique pages, shuffled) is dealt out page by page to
 * three processes. Once merged by ksmd (each process madvise
 * MADV_MERGEABLE) and once by samepaged (each process a client in one
 * domain), with the same knobs: when each side has settled, pages_shared,
 * pages_sharing, stable_node_chains, stable_node_dups and ksm_zero_pages
 * must be equal, for several max_page_sharing and use_zero_pages values.
 * Every process then checks its memory.
 *
 * Needs root and a writable /sys/kernel/mm/ksm; every kernel knob is
 * restored at exit, also when killed (testlib).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemontest.h"
#include "samepage.h"
#include "testlib.h"

#define NPROC	  3
#define NPAGES	  T_DIFF_NPAGES
#define SETTLE_MS 90000

static uint32_t tags[NPAGES];

/* process p holds pages p, p + NPROC, p + 2 NPROC, ... */
static size_t share_of(int p)
{
	return (NPAGES - (size_t)p + NPROC - 1) / NPROC;
}

struct job {
	int proc;
	int engine; /* 0 kernel, 1 samepaged */
};

/* child: build, register ('r'); on 'c' check ('v'/'x'); on 'q' leave */
static int client(void *arg, int wr, int rd)
{
	const struct job *j = arg;
	size_t n = share_of(j->proc);
	uint8_t *m = t_map(n);
	char b;
	int err;

	madvise(m, n * TPAGE, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < n; i++)
		t_fill(m + i * TPAGE, tags[(size_t)j->proc + i * NPROC]);
	err = j->engine ? samepage_madvise(m, n * TPAGE, SAMEPAGE_MERGEABLE) : madvise(m, n * TPAGE, MADV_MERGEABLE);
	if (err)
		return perror("madvise"), 1;
	if (write(wr, "r", 1) != 1 || read(rd, &b, 1) != 1)
		return 1;
	b = 'v';
	for (size_t i = 0; i < n; i++)
		if (!t_check(m + i * TPAGE, tags[(size_t)j->proc + i * NPROC]))
			b = 'x';
	if (write(wr, &b, 1) != 1 || read(rd, &b, 1) != 1)
		return 1;
	return 0;
}

static long daemon_counters(const struct dt_daemon *d, struct t_ksm_counters *c)
{
	const char *st = dt_status(d);
	const char *blk = "domain user:0";

	c->shared = (long)dt_value(st, blk, "pages_shared");
	c->sharing = (long)dt_value(st, blk, "pages_sharing");
	c->chains = (long)dt_value(st, blk, "stable_node_chains");
	c->dups = (long)dt_value(st, blk, "stable_node_dups");
	c->zero = (long)dt_value(st, blk, "ksm_zero_pages");
	return (long)dt_value(st, blk, "full_scans");
}

/* Settled: the counters held through two more full scans after at least
 * three (the full_scans counter paces the polling, with a deadline). */
static int settle(const struct dt_daemon *d, struct t_ksm_counters *out)
{
	uint64_t deadline = t_now_ms() + SETTLE_MS;
	struct t_ksm_counters prev = {-1, -1, -1, -1, -1};
	long start = -1, seen = -1;
	int still = 0;

	while (t_now_ms() < deadline) {
		struct t_ksm_counters now;
		long fs = d ? daemon_counters(d, &now) : t_ksm_get("full_scans");

		if (start < 0)
			start = fs;
		if (fs == seen || fs < 0) {
			usleep(2000); /* polling a counter, with a deadline */
			continue;
		}
		seen = fs;
		if (d)
			*out = now;
		else
			t_ksm_counters(out);
		if (fs - start >= 3 && !memcmp(out, &prev, sizeof(prev)))
			still++;
		else
			still = 0;
		prev = *out;
		if (still >= 2)
			return 0;
	}
	return -1;
}

static void run_side(int engine, const struct dt_daemon *d, struct t_ksm_counters *out)
{
	struct dt_child c[NPROC];
	struct job j[NPROC];

	for (int p = 0; p < NPROC; p++) {
		j[p] = (struct job){.proc = p, .engine = engine};
		dt_spawn(&c[p], client, &j[p]);
	}
	for (int p = 0; p < NPROC; p++)
		assert_int_equal(dt_step(&c[p]), 'r');
	if (!engine)
		assert_int_equal(t_ksm_set("run", "1"), 0);
	assert_int_equal(settle(engine ? d : NULL, out), 0);
	for (int p = 0; p < NPROC; p++)
		dt_go(&c[p], 'c');
	for (int p = 0; p < NPROC; p++)
		assert_int_equal(dt_step(&c[p]), 'v');
	for (int p = 0; p < NPROC; p++) {
		dt_go(&c[p], 'q');
		assert_int_equal(dt_reap(&c[p]), 0);
	}
	if (!engine) {
		t_ksm_set("run", "2");
		t_ksm_set("run", "0");
	}
}

static void print(const char *who, const struct t_ksm_counters *c)
{
	printf("  %-9s pages_shared %5ld pages_sharing %5ld chains %3ld dups %3ld ksm_zero_pages %4ld\n", who,
	       c->shared, c->sharing, c->chains, c->dups, c->zero);
}

static void run_config(const char *mps, const char *zero)
{
	struct t_ksm_counters k, e;
	struct dt_daemon d;

	printf("3 processes, max_page_sharing=%s use_zero_pages=%s\n", mps, zero);
	t_ksm_set("run", "2");
	t_ksm_set("run", "0");
	assert_int_equal(t_ksm_set("max_page_sharing", mps), 0);
	assert_int_equal(t_ksm_set("use_zero_pages", zero), 0);
	t_ksm_set("smart_scan", "0");
	t_ksm_set("advisor_mode", "none");
	assert_int_equal(t_ksm_set("pages_to_scan", "5000"), 0);
	assert_int_equal(t_ksm_set("sleep_millisecs", "1"), 0);
	unsetenv("SAMEPAGE_DAEMON");
	run_side(0, NULL, &k);

	dt_start(&d, NULL);
	assert_int_equal(dt_set(&d, "", "max_page_sharing", mps), 0);
	assert_int_equal(dt_set(&d, "", "use_zero_pages", zero), 0);
	assert_int_equal(dt_set(&d, "", "smart_scan", "0"), 0);
	assert_int_equal(dt_set(&d, "", "pages_to_scan", "5000"), 0);
	assert_int_equal(dt_set(&d, "", "sleep_millisecs", "1"), 0);
	setenv("SAMEPAGE_DAEMON", d.sock, 1);
	run_side(1, &d, &e);
	unsetenv("SAMEPAGE_DAEMON");
	assert_true(dt_stop(&d));
	dt_cleanup(&d);

	print("kernel", &k);
	print("samepaged", &e);
	assert_int_equal(e.shared, k.shared);
	assert_int_equal(e.sharing, k.sharing);
	assert_int_equal(e.chains, k.chains);
	assert_int_equal(e.dups, k.dups);
	assert_int_equal(e.zero, k.zero);
}

struct config {
	const char *mps, *zero;
};

static void diff(void **state)
{
	const struct config *cfg = *state;

	run_config(cfg->mps, cfg->zero);
}

static int setup(void **state)
{
	(void)state;
	t_ksm_save();
	t_diff_layout(tags);
	return 0;
}

int main(void)
{
	static struct config cfg[] = {{"256", "0"}, {"2", "0"}, {"100", "1"}};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_prestate(diff, &cfg[0]),
		cmocka_unit_test_prestate(diff, &cfg[1]),
		cmocka_unit_test_prestate(diff, &cfg[2]),
	};

	if (!t_ksm_available()) {
		printf("the kernel's KSM is not writable here (not root, or no KSM): skipped\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, NULL);
}
