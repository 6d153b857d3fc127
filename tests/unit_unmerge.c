/* SPDX-License-Identifier: MIT */
/*
 * unit_unmerge.c - run=2 and unregistering undo merges without losing data.
 *
 * Proves that sp_core_unmerge_all (run=2) makes every merged and zero page
 * private with its content, frees every store page and zeroes the merge
 * counters, after which scanning merges the same way again; that removing
 * a range (unregistering) restores it, keeps the sharers outside it merged,
 * splits a region cleanly when cut in the middle, and that re-adding it
 * merges again; and that store pages pinned for fork() survive run=2.
 */
#include "coretest.h"

#define NP 1025 /* 16 contents x 64 pages, zero pages, a sentinel */

static void layout(struct tcore *t)
{
	t->c.knobs.use_zero_pages = 1;
	t->c.knobs.max_page_sharing = 16;
	for (size_t i = 0; i < 1024; i++)
		tc_fill(t, i, (i % 17) == 16 ? 0 : (uint32_t)(i % 17) + 1);
	tc_fill(t, 1024, 31337);
	tc_track(t, 0, NP);
}

static void all_private(const struct tcore *t, size_t first, size_t n)
{
	for (size_t i = first; i < first + n; i++)
		assert_true(t->f.maps[i] < 0);
}

static void test_unmerge_all(void **state)
{
	struct tcore t;
	struct samepage_stats a, b;

	(void)state;
	tc_init(&t, NP, 1024);
	layout(&t);
	tc_passes(&t, 2);
	a = tc_stats(&t);
	tc_print("merged", &t);
	assert_int_equal(a.pages_sharing, 900);
	assert_true(a.ksm_zero_pages > 50);
	assert_true(a.stable_node_chains > 0);
	tc_consistent(&t);

	assert_int_equal(sp_core_unmerge_all(&t.c), 0);
	b = tc_stats(&t);
	assert_int_equal(b.pages_shared, 0);
	assert_int_equal(b.pages_sharing, 0);
	assert_int_equal(b.ksm_zero_pages, 0);
	assert_int_equal(b.stable_node_chains, 0);
	assert_int_equal(b.stable_node_dups, 0);
	assert_int_equal(b.pages_unshared, 0);
	assert_int_equal(t.f.store_pages_used, 0);
	all_private(&t, 0, NP);
	tc_consistent(&t);

	tc_passes(&t, 2); /* and it all merges again, the same way */
	b = tc_stats(&t);
	assert_int_equal(b.pages_shared, a.pages_shared);
	assert_int_equal(b.pages_sharing, a.pages_sharing);
	assert_int_equal(b.ksm_zero_pages, a.ksm_zero_pages);
	assert_int_equal(b.stable_node_dups, a.stable_node_dups);
	tc_consistent(&t);
	tc_destroy(&t);
}

static void test_remove_ranges(void **state)
{
	struct tcore t;
	struct samepage_stats s;

	(void)state;
	tc_init(&t, NP, 1024);
	layout(&t);
	tc_passes(&t, 2);
	tc_consistent(&t);

	/* a hole in the middle: the region splits, the hole is restored */
	assert_int_equal(sp_core_remove_range(&t.c, 0, sp_fake_addr(&t.f, 300), 200), 0);
	assert_int_equal(t.c.rmap.nregions, 2);
	assert_int_equal(t.c.rmap.tracked, NP - 200);
	all_private(&t, 300, 200);
	tc_consistent(&t);
	tc_passes(&t, 2);
	tc_consistent(&t);

	/* the head, then re-adding everything: merges again */
	assert_int_equal(sp_core_remove_range(&t.c, 0, sp_fake_addr(&t.f, 0), 300), 0);
	all_private(&t, 0, 300);
	tc_consistent(&t);
	tc_track(&t, 0, NP);
	assert_int_equal(t.c.rmap.tracked, NP);
	tc_passes(&t, 2);
	s = tc_stats(&t);
	assert_int_equal(s.pages_sharing, 900);
	tc_consistent(&t);

	/* everything: nothing left merged, no store page left */
	assert_int_equal(sp_core_remove_range(&t.c, 0, sp_fake_addr(&t.f, 0), NP), 0);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, 0);
	assert_int_equal(s.ksm_zero_pages, 0);
	assert_int_equal(s.rmap_items, 0);
	assert_int_equal(s.pages_unshared, 0);
	assert_int_equal(t.c.rmap.nregions, 0);
	assert_int_equal(t.f.store_pages_used, 0);
	all_private(&t, 0, NP);
	tc_consistent(&t);
	tc_pass(&t); /* scanning nothing is harmless */
	tc_destroy(&t);
}

/* Removing one side of merged pairs keeps the other side merged (a store
 * page with one sharer, as the kernel keeps a KSM page with one mapping). */
static void test_remove_one_side(void **state)
{
	struct tcore t;
	struct samepage_stats s;

	(void)state;
	tc_init(&t, 129, 256);
	for (size_t i = 0; i < 64; i++) {
		tc_fill(&t, i, (uint32_t)i + 1);
		tc_fill(&t, 64 + i, (uint32_t)i + 1);
	}
	tc_fill(&t, 128, 4711);
	tc_track(&t, 0, 64);
	tc_track(&t, 64, 65);
	tc_passes(&t, 2);
	assert_int_equal(tc_stats(&t).pages_sharing, 64);
	assert_int_equal(sp_core_remove_range(&t.c, 0, sp_fake_addr(&t.f, 64), 64), 0);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, 64);
	assert_int_equal(s.pages_sharing, 0);
	all_private(&t, 64, 64);
	tc_consistent(&t);
	tc_destroy(&t);
}

/* After a fork the child may map any store page: run=2 must not free them. */
static void test_pinned_pages_survive(void **state)
{
	struct tcore t;
	uint64_t used;

	(void)state;
	tc_init(&t, NP, 1024);
	layout(&t);
	tc_passes(&t, 2);
	used = t.f.store_pages_used;
	assert_true(used > 0);
	sp_core_pin_for_fork(&t.c);
	assert_int_equal(sp_core_unmerge_all(&t.c), 0);
	assert_int_equal(t.f.store_pages_used, used);
	assert_int_equal(tc_stats(&t).pages_shared, 0);
	assert_int_equal(tc_mismatches(&t), 0);
	tc_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unmerge_all),
		cmocka_unit_test(test_remove_ranges),
		cmocka_unit_test(test_remove_one_side),
		cmocka_unit_test(test_pinned_pages_survive),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
