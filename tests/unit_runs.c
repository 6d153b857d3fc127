/* SPDX-License-Identifier: MIT */
/*
 * unit_runs.c - consecutive pages that merge the same way merge together.
 *
 * Proves run coalescing: a region copied page for page from another pairs
 * in runs of a whole batch (one freeze and one remap per side per batch),
 * a third copy joins the new store pages in runs too, the result is one
 * mapping per region (no extra mappings), and a broken COW or a re-merge in
 * the middle does not split it. Pages in a scrambled order merge one by one,
 * which is the contrast (unit_counters.c: 100 pairs, 200 remaps).
 */
#include "coretest.h"

#define N 256

static void test_copied_regions(void **state)
{
	struct tcore t;
	struct samepage_stats s;

	(void)state;
	tc_init(&t, 3 * N + 1, 4 * N);
	for (size_t r = 0; r < 3; r++)
		for (size_t i = 0; i < N; i++)
			tc_fill(&t, r * N + i, (uint32_t)i + 1);
	tc_fill(&t, 3 * N, 99999);
	for (size_t r = 0; r < 3; r++)
		tc_track(&t, r * N, N);
	tc_track(&t, 3 * N, 1);
	tc_passes(&t, 2);
	tc_print("3 copies of 256 pages", &t);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, N);
	assert_int_equal(s.pages_sharing, 2 * N);
	/* B pairs with A: 4 runs x 2 remaps; C joins: 4 runs x 1 remap */
	assert_int_equal(t.f.n_remap, 12);
	assert_int_equal(t.f.n_freeze, 12);
	assert_int_equal(sp_core_count_mappings(&t.c), 0);
	tc_consistent(&t);

	/* a write in the middle of C and the page's return */
	tc_poke(&t, 2 * N + 100, 7, 7);
	tc_pass(&t);
	assert_int_equal(tc_stats(&t).pages_sharing, 2 * N - 1);
	assert_int_equal(sp_core_count_mappings(&t.c), 0);
	tc_fill(&t, 2 * N + 100, 101);
	tc_passes(&t, 2);
	assert_int_equal(tc_stats(&t).pages_sharing, 2 * N);
	assert_int_equal(t.f.n_remap, 13);
	assert_int_equal(sp_core_count_mappings(&t.c), 0);
	tc_consistent(&t);
	tc_destroy(&t);
}

/* The same 64 contents in a shuffled order: every page is its own run. */
static void test_shuffled_copy(void **state)
{
	struct tcore t;
	struct samepage_stats s;

	(void)state;
	tc_init(&t, 129, 256);
	for (size_t i = 0; i < 64; i++) {
		tc_fill(&t, i, (uint32_t)i + 1);
		tc_fill(&t, 64 + (i * 37) % 64, (uint32_t)i + 1);
	}
	tc_fill(&t, 128, 99999);
	tc_track(&t, 0, 129);
	tc_passes(&t, 2);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, 64);
	assert_int_equal(s.pages_sharing, 64);
	assert_true(t.f.n_remap > 64);
	assert_true(sp_core_count_mappings(&t.c) > 64);
	/* the count taken behind the cursor: a full scan with nothing new
	 * to merge ends with the same figure as the walk over every page */
	tc_passes(&t, 2); /* the second publishes the first's count */
	assert_int_equal(tc_stats(&t).mappings, sp_core_count_mappings(&t.c));
	/* unregistering half of it mid-scan: exact again at the end */
	sp_core_scan(&t.c, 40, 0);
	assert_int_equal(sp_core_remove_range(&t.c, 0, (uintptr_t)t.f.mem, 64), 0);
	tc_passes(&t, 2);
	assert_int_equal(tc_stats(&t).mappings, sp_core_count_mappings(&t.c));
	tc_consistent(&t);
	tc_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copied_regions),
		cmocka_unit_test(test_shuffled_copy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
