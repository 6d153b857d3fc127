/* SPDX-License-Identifier: MIT */
/*
 * unit_policies.c - the kernel's policies in the core, with exact numbers:
 * smart_scan skip counts, the scan-time advisor's arithmetic,
 * merge_across_nodes with an injected page->node map, knob parsing and
 * formatting with the kernel's errno, and per-range (ksm_stat) figures.
 * Everything runs against the fake backend: no kernel involved.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"
#include "fake.h"
#include "samepage.h"

struct env {
	struct sp_fake f;
	struct sp_core c;
};

static struct env *env_new(size_t npages)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	assert_int_equal(sp_fake_init(&e->f, npages, npages), 0);
	assert_int_equal(sp_core_init(&e->c, &e->f.host), 0);
	assert_int_equal(sp_core_add_space(&e->c, &e->f.space), 0);
	assert_int_equal(sp_core_add_range(&e->c, 0, sp_fake_addr(&e->f, 0), npages), 0);
	return e;
}

static void env_free(struct env *e)
{
	sp_core_destroy(&e->c);
	sp_fake_destroy(&e->f);
	free(e);
}

/* One full scan: every page once (a scan call ends at a full scan). */
static void full_scan(struct env *e)
{
	uint64_t before = e->c.cnt.full_scans;

	while (e->c.cnt.full_scans == before)
		sp_core_scan(&e->c, 1000000, 0);
	assert_int_equal(e->c.cnt.full_scans, before + 1);
}

static void stats(struct env *e, struct samepage_stats *st)
{
	sp_core_stats(&e->c, st);
}

/* 100 unique pages, smart_scan on: visits 1-3 (ages 0-2) are real; from
 * age 3 the kernel's pattern is: real (sets 1 skip), skip, real (sets 2),
 * skip, skip, real (sets 4), four skips, real (sets 8), ... */
static void smart_scan_skips_unique_pages(void **state)
{
	static const int expect_skipped[] = {0, 0, 0, 0, 1, 1, 2, 3, 3, 4, 5, 6, 7, 7, 8};
	struct env *e = env_new(100);
	struct samepage_stats st;

	(void)state;
	for (size_t i = 0; i < 100; i++)
		sp_fake_fill(&e->f, i, 1000 + (uint32_t)i);
	for (size_t v = 0; v < sizeof(expect_skipped) / sizeof(expect_skipped[0]); v++) {
		full_scan(e);
		stats(e, &st);
		/* per page, cumulative skips after visit v+1 */
		assert_int_equal(st.pages_skipped, (uint64_t)expect_skipped[v] * 100);
	}
	/* nothing merged, and skipped pages still count as tracked */
	assert_int_equal(st.pages_shared, 0);
	assert_int_equal(st.rmap_items, 100);
	env_free(e);
}

static void smart_scan_off_never_skips(void **state)
{
	struct env *e = env_new(50);
	struct samepage_stats st;

	(void)state;
	e->c.knobs.smart_scan = 0;
	for (size_t i = 0; i < 50; i++)
		sp_fake_fill(&e->f, i, 7 + (uint32_t)i);
	for (int v = 0; v < 12; v++)
		full_scan(e);
	stats(e, &st);
	assert_int_equal(st.pages_skipped, 0);
	assert_int_equal(st.pages_scanned, 12 * 50);
	assert_int_equal(st.pages_unshared, 50);
	env_free(e);
}

/* Merged pages are never skipped; a duplicate that appears late still
 * merges once its skips run out. */
static void smart_scan_keeps_merging(void **state)
{
	struct env *e = env_new(64);
	struct samepage_stats st;

	(void)state;
	for (size_t i = 0; i < 64; i++)
		sp_fake_fill(&e->f, i, 500 + (uint32_t)i);
	for (int v = 0; v < 10; v++)
		full_scan(e);
	sp_fake_fill(&e->f, 63, 500); /* page 63 becomes a copy of page 0 */
	for (int v = 0; v < 40; v++)
		full_scan(e);
	stats(e, &st);
	assert_int_equal(st.pages_shared, 1);
	assert_int_equal(st.pages_sharing, 1);
	assert_memory_equal(sp_fake_page(&e->f, 63), sp_fake_page(&e->f, 0), 4096);
	env_free(e);
}

/* Two pages that become equal at different moments age out of step: with
 * the kernel's skip pattern each may be skipped exactly on the scans where
 * the other is visited, so a pair that needs both in one scan's unstable
 * index would never form (the engine tests' "one pair short" timeouts). A
 * skipped page stays findable in the index by the hash of its last visit
 * (the merge compares frozen contents, never the hash), so the pair forms
 * within one skip cycle, and skip counts stay the kernel's. */
static void smart_scan_twins_out_of_step_merge(void **state)
{
	for (int lag = 1; lag <= 12; lag++) {
		struct env *e = env_new(16);
		struct samepage_stats st;

		(void)state;
		for (size_t i = 0; i < 16; i++)
			sp_fake_fill(&e->f, i, 900 + (uint32_t)(i % 8)); /* page i and i + 8 equal */
		for (int v = 0; v < 4; v++)
			full_scan(e); /* merged: merged pages do not age */
		stats(e, &st);
		assert_int_equal(st.pages_sharing, 8);
		sp_fake_fill(&e->f, 3, 7777); /* breaks its merge, starts ageing */
		for (int v = 0; v < lag; v++)
			full_scan(e);
		sp_fake_fill(&e->f, 12, 7777); /* the twin, lag scans later */
		for (int v = 0; v < 40; v++)
			full_scan(e);
		stats(e, &st);
		/* 6 pairs untouched, 2 store pages left with one sharer each, the twins */
		if (st.pages_shared != 9 || st.pages_sharing != 7)
			fail_msg("lag %d: twins never merged (shared %llu sharing %llu skipped %llu)", lag,
				 (unsigned long long)st.pages_shared, (unsigned long long)st.pages_sharing,
				 (unsigned long long)st.pages_skipped);
		assert_int_equal(st.pages_unshared + st.pages_volatile + 16, st.rmap_items);
		assert_memory_equal(sp_fake_page(&e->f, 3), sp_fake_page(&e->f, 12), 4096);
		assert_int_equal(e->f.n_frozen_now, 0);
		env_free(e);
	}
}

/* The advisor's arithmetic, step by step, with a fake clock. */
static void advisor_arithmetic(void **state)
{
	struct env *e = env_new(8);
	struct sp_core *c = &e->c;

	(void)state;
	c->knobs.advisor_mode = SP_ADVISOR_SCAN_TIME;
	sp_core_advisor_reset(c);
	assert_int_equal(c->knobs.pages_to_scan, 500); /* advisor_min_pages_to_scan */

	/* scan 1: 10 s, 1 s of CPU (10%), target 200 s:
	 * factor = 200*100/10 = 2000; change = ewma(0, 100) = 30;
	 * pages = 500*100/2000 * 30/100 = 7; cost = 500/10 = 50;
	 * pages = max(7, 50*10) = 500, min(500, 50*70) = 500 */
	e->f.clock_step_ns = 0;
	e->f.clock_ns = 0;
	sp_core_advisor_start(c);
	e->f.clock_ns = 10000000000ull;	   /* now: 10 s; cpu also reads this clock */
	c->advisor.cpu_ns = 9000000000ull; /* so the CPU used is 1 s */
	sp_core_advisor_stop(c);
	assert_int_equal(c->knobs.pages_to_scan, 500);
	assert_int_equal(c->advisor.change, 30);
	assert_int_equal(c->advisor.scan_time, 10);

	/* scan 2: 400 s (too slow), 40 s CPU (10%):
	 * factor = 200*100/400 = 50; change = (70*30 + 30*4000)/100 = 1221;
	 * pages = 500*100/50 = 1000 * 1221/100 = 12210; cost = 500/10 = 50;
	 * capped at 50*70 = 3500 */
	sp_core_advisor_start(c);
	c->advisor.cpu_ns = e->f.clock_ns + 400000000000ull - 40000000000ull;
	e->f.clock_ns += 400000000000ull;
	sp_core_advisor_stop(c);
	assert_int_equal(c->advisor.change, 1221);
	assert_int_equal(c->knobs.pages_to_scan, 3500);

	/* advisor_max_pages_to_scan caps it */
	c->knobs.advisor_max_pages_to_scan = 2000;
	sp_core_advisor_start(c);
	c->advisor.cpu_ns = e->f.clock_ns + 400000000000ull - 40000000000ull;
	e->f.clock_ns += 400000000000ull;
	sp_core_advisor_stop(c);
	assert_int_equal(c->knobs.pages_to_scan, 2000);

	/* back to none: pages_to_scan returns to the default */
	c->knobs.advisor_mode = SP_ADVISOR_NONE;
	sp_core_advisor_reset(c);
	assert_int_equal(c->knobs.pages_to_scan, 100);
	env_free(e);
}

/* merge_across_nodes=0: pages 0-3 on node 0, 4-7 on node 1, all with the
 * same content: two store pages (one per node), each asked for on its node. */
static void merge_across_nodes_off_splits_by_node(void **state)
{
	struct env *e = env_new(8);
	struct samepage_stats st;

	(void)state;
	e->f.node_of = calloc(8, sizeof(int));
	for (int i = 4; i < 8; i++)
		e->f.node_of[i] = 1;
	e->c.knobs.merge_across_nodes = 0;
	for (size_t i = 0; i < 8; i++)
		sp_fake_fill(&e->f, i, 42);
	for (int v = 0; v < 3; v++)
		full_scan(e);
	stats(e, &st);
	assert_int_equal(st.pages_shared, 2);
	assert_int_equal(st.pages_sharing, 6);
	assert_int_equal(e->f.last_alloc_nid, 1);
	for (size_t i = 0; i < 8; i++)
		assert_memory_equal(sp_fake_page(&e->f, i), sp_fake_page(&e->f, 0), 4096);
	env_free(e);
}

static void merge_across_nodes_on_merges_all(void **state)
{
	struct env *e = env_new(8);
	struct samepage_stats st;

	(void)state;
	e->f.node_of = calloc(8, sizeof(int));
	for (int i = 4; i < 8; i++)
		e->f.node_of[i] = 1;
	for (size_t i = 0; i < 8; i++)
		sp_fake_fill(&e->f, i, 42);
	for (int v = 0; v < 3; v++)
		full_scan(e);
	stats(e, &st);
	assert_int_equal(st.pages_shared, 1);
	assert_int_equal(st.pages_sharing, 7);
	assert_int_equal(e->f.last_alloc_nid, -1);
	env_free(e);
}

static void knob_parsing_like_sysfs(void **state)
{
	const struct sp_knob *run = sp_knob_find("run"), *mps = sp_knob_find("max_page_sharing");
	const struct sp_knob *zero = sp_knob_find("use_zero_pages"), *adv = sp_knob_find("advisor_mode");
	const struct sp_knob *pts = sp_knob_find("pages_to_scan"), *tst = sp_knob_find("advisor_target_scan_time");
	uint32_t v = 0;
	char buf[64];

	(void)state;
	assert_null(sp_knob_find("no_such_knob"));
	assert_int_equal(sp_knob_parse(run, "1\n", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(sp_knob_parse(run, "+2", &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(sp_knob_parse(run, "3", &v), -EINVAL);
	assert_int_equal(sp_knob_parse(run, "1 ", &v), -EINVAL);
	assert_int_equal(sp_knob_parse(run, "", &v), -EINVAL);
	assert_int_equal(sp_knob_parse(run, "-1", &v), -EINVAL);
	assert_int_equal(sp_knob_parse(pts, "4294967295", &v), 0);
	assert_int_equal(sp_knob_parse(pts, "4294967296", &v), -EINVAL);
	assert_int_equal(sp_knob_parse(mps, "1", &v), -EINVAL);
	assert_int_equal(sp_knob_parse(mps, "2", &v), 0);
	assert_int_equal(sp_knob_parse(mps, "2147483648", &v), -ERANGE);
	assert_int_equal(sp_knob_parse(mps, "-5", &v), -EINVAL);
	assert_int_equal(sp_knob_parse(zero, "y", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(sp_knob_parse(zero, "off", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(sp_knob_parse(zero, "maybe", &v), -EINVAL);
	assert_int_equal(sp_knob_parse(adv, "scan-time\n", &v), 0);
	assert_int_equal(v, SP_ADVISOR_SCAN_TIME);
	assert_int_equal(sp_knob_parse(adv, "scan", &v), -EINVAL);
	assert_int_equal(sp_knob_parse(tst, "0", &v), -EINVAL);
	/* the rest of the kernel's rules, as Linux 6.18 answered them */
	assert_int_equal(sp_knob_parse(pts, "0x10", &v), -EINVAL);
	assert_int_equal(sp_knob_parse(pts, "010", &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(sp_knob_parse(pts, "100\n\n", &v), -EINVAL);
	assert_int_equal(sp_knob_parse(pts, "99999999999999999999999", &v), -EINVAL);
	assert_int_equal(sp_knob_parse(mps, "99999999999999999999", &v), -ERANGE);
	assert_int_equal(sp_knob_parse(mps, "-+5", &v), -EINVAL);
	assert_int_equal(sp_knob_parse(sp_knob_find("merge_across_nodes"), "18446744073709551616", &v), -ERANGE);
	assert_int_equal(sp_knob_parse(sp_knob_find("merge_across_nodes"), "2", &v), -EINVAL);
	assert_int_equal(sp_knob_parse(zero, "true", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(sp_knob_parse(zero, "disable", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(sp_knob_parse(zero, "E", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(sp_knob_parse(zero, "10", &v), 0); /* only the first character counts */
	assert_int_equal(v, 1);
	assert_int_equal(sp_knob_parse(zero, "o", &v), -EINVAL);
	assert_int_equal(sp_knob_parse(adv, "none \n", &v), -EINVAL);
	/* advisor_max_cpu: an unsigned long kept in an unsigned int */
	assert_int_equal(sp_knob_parse(sp_knob_find("advisor_max_cpu"), "4294967297", &v), 0);
	assert_int_equal(v, 1);
	/* the kernel keeps 64 bits here, the engine 32: EINVAL */
	assert_int_equal(sp_knob_parse(sp_knob_find("advisor_min_pages_to_scan"), "4294967296", &v), -EINVAL);
	assert_int_equal(sp_knob_parse(sp_knob_find("full_scans"), "0", &v), -EACCES);
	sp_knob_format(adv, SP_ADVISOR_NONE, buf, sizeof(buf));
	assert_string_equal(buf, "[none] scan-time");
	sp_knob_format(adv, SP_ADVISOR_SCAN_TIME, buf, sizeof(buf));
	assert_string_equal(buf, "none [scan-time]");
}

/* ksm_stat-like figures for a part of the memory. */
static void range_stats(void **state)
{
	struct env *e = env_new(16);
	struct samepage_region_stats rs;

	(void)state;
	e->c.knobs.use_zero_pages = 1;
	for (size_t i = 0; i < 8; i++)
		sp_fake_fill(&e->f, i, 9); /* 8 copies */
	for (size_t i = 8; i < 12; i++)
		sp_fake_fill(&e->f, i, 0); /* 4 zero pages */
	for (size_t i = 12; i < 16; i++)
		sp_fake_fill(&e->f, i, 100 + (uint32_t)i);
	for (int v = 0; v < 3; v++)
		full_scan(e);
	sp_core_range_stats(&e->c, 0, sp_fake_addr(&e->f, 0), 16, &rs);
	assert_int_equal(rs.registered_pages, 16);
	assert_int_equal(rs.merging_pages, 8);
	assert_int_equal(rs.zero_pages, 4);
	assert_int_equal(rs.rmap_items, 12); /* zero pages have no item */
	assert_int_equal(rs.profit, 12 * 4096 - 12 * 16);
	sp_core_range_stats(&e->c, 0, sp_fake_addr(&e->f, 4), 6, &rs);
	assert_int_equal(rs.registered_pages, 6);
	assert_int_equal(rs.merging_pages, 4);
	assert_int_equal(rs.zero_pages, 2);
	env_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(smart_scan_skips_unique_pages),
		cmocka_unit_test(smart_scan_off_never_skips),
		cmocka_unit_test(smart_scan_keeps_merging),
		cmocka_unit_test(smart_scan_twins_out_of_step_merge),
		cmocka_unit_test(advisor_arithmetic),
		cmocka_unit_test(merge_across_nodes_off_splits_by_node),
		cmocka_unit_test(merge_across_nodes_on_merges_all),
		cmocka_unit_test(knob_parsing_like_sysfs),
		cmocka_unit_test(range_stats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
