/* SPDX-License-Identifier: MIT */
/*
 * unit_counters.c - the core's counters are exact for known workloads.
 *
 * Proves, against the fake backend, that the scan reaches the kernel's
 * numbers for workloads whose answer is known (the kernel's own KSM gives
 * the same ones): 16 contents x 1024 pages at max_page_sharing 256 settle
 * at 64 shared / 16320 sharing in 16 chains of 4 dups; 257 copies at 256
 * leave one page unshared; pairs; unique pages; volatility (a page that
 * changed between two visits is not merged and counts as volatile, even
 * when it equals a stable page, as in Linux 6.11+). After every workload the counters also equal what the fake
 * really maps (tc_consistent) and every page still reads its own content.
 */
#include "coretest.h"

#define SENTINEL_TAG 0xdead0000u

static void test_16_contents_1024_each(void **state)
{
	const size_t n = 16 * 1024 + 1;
	struct tcore t;
	struct samepage_stats s;

	(void)state;
	tc_init(&t, n, 1024);
	for (size_t i = 0; i + 1 < n; i++)
		tc_fill(&t, i, (uint32_t)(i % 16) + 1);
	tc_fill(&t, n - 1, SENTINEL_TAG);
	tc_track(&t, 0, n);

	tc_pass(&t); /* the first visit records hashes only */
	s = tc_stats(&t);
	tc_print("16x1024 after pass 1", &t);
	assert_int_equal(s.pages_shared, 0);
	assert_int_equal(s.pages_volatile, n);
	assert_int_equal(s.rmap_items, n);
	assert_int_equal(s.pages_scanned, n);

	tc_pass(&t);
	tc_print("16x1024 after pass 2", &t);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, 64);
	assert_int_equal(s.pages_sharing, 16320);
	assert_int_equal(s.stable_node_chains, 16);
	assert_int_equal(s.stable_node_dups, 64);
	assert_int_equal(s.pages_unshared, 1); /* the sentinel */
	assert_int_equal(s.pages_volatile, 0);
	tc_consistent(&t);

	/* settled: more passes (pages now read in, present + file) change nothing */
	tc_read_all(&t);
	tc_passes(&t, 2);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, 64);
	assert_int_equal(s.pages_sharing, 16320);
	assert_int_equal(s.stable_node_chains, 16);
	assert_int_equal(s.stable_node_dups, 64);
	assert_int_equal(s.pages_unshared, 1);
	assert_int_equal(s.full_scans, 3);
	tc_consistent(&t);
	tc_destroy(&t);
}

/* copies identical pages (+ a sentinel) at max_page_sharing max */
static struct samepage_stats copies(size_t ncopies, uint32_t max, int sentinel)
{
	struct tcore t;
	struct samepage_stats s;
	size_t n = ncopies + (sentinel ? 1 : 0);

	tc_init(&t, n, 256);
	t.c.knobs.max_page_sharing = max;
	for (size_t i = 0; i < ncopies; i++)
		tc_fill(&t, i, 7);
	if (sentinel)
		tc_fill(&t, n - 1, SENTINEL_TAG);
	tc_track(&t, 0, n);
	tc_passes(&t, 2);
	tc_read_all(&t);
	tc_passes(&t, 2);
	s = tc_stats(&t);
	printf("  %zu copies at max_page_sharing %u: shared %llu sharing %llu unshared %llu chains %llu dups %llu\n",
	       ncopies, max, (unsigned long long)s.pages_shared, (unsigned long long)s.pages_sharing,
	       (unsigned long long)s.pages_unshared, (unsigned long long)s.stable_node_chains,
	       (unsigned long long)s.stable_node_dups);
	tc_consistent(&t);
	tc_destroy(&t);
	return s;
}

static void test_257_copies_at_256(void **state)
{
	struct samepage_stats s = copies(257, 256, 0);

	(void)state;
	assert_int_equal(s.pages_shared, 1);
	assert_int_equal(s.pages_sharing, 255);
	assert_int_equal(s.pages_unshared, 1);
	assert_int_equal(s.pages_volatile, 0);
	assert_int_equal(s.stable_node_chains, 0);
	assert_int_equal(s.stable_node_dups, 0);
}

static void test_chain_boundaries(void **state)
{
	struct samepage_stats s;

	(void)state;
	s = copies(256, 256, 1); /* exactly full: one page, no chain */
	assert_int_equal(s.pages_shared, 1);
	assert_int_equal(s.pages_sharing, 255);
	assert_int_equal(s.stable_node_chains, 0);
	assert_int_equal(s.pages_unshared, 1);

	s = copies(258, 256, 1); /* one more pair: a chain of two dups */
	assert_int_equal(s.pages_shared, 2);
	assert_int_equal(s.pages_sharing, 256);
	assert_int_equal(s.stable_node_chains, 1);
	assert_int_equal(s.stable_node_dups, 2);
	assert_int_equal(s.pages_unshared, 1);

	s = copies(100, 2, 1); /* max 2: 50 dups of 2 */
	assert_int_equal(s.pages_shared, 50);
	assert_int_equal(s.pages_sharing, 50);
	assert_int_equal(s.stable_node_chains, 1);
	assert_int_equal(s.stable_node_dups, 50);

	s = copies(101, 2, 1); /* an odd one out stays unshared */
	assert_int_equal(s.pages_shared, 50);
	assert_int_equal(s.pages_sharing, 50);
	assert_int_equal(s.pages_unshared, 2);
}

/* 100 contents, each twice, the second copies in reverse order so that no
 * two pairs can form one run: 100 separate pair merges of 2 remaps each. */
static void test_pairs(void **state)
{
	const size_t n = 201;
	struct tcore t;
	struct samepage_stats s;

	(void)state;
	tc_init(&t, n, 256);
	for (size_t i = 0; i < 100; i++) {
		tc_fill(&t, i, (uint32_t)i + 1);
		tc_fill(&t, 199 - i, (uint32_t)i + 1);
	}
	tc_fill(&t, 200, SENTINEL_TAG);
	tc_track(&t, 0, n);
	tc_passes(&t, 2);
	tc_print("pairs", &t);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, 100);
	assert_int_equal(s.pages_sharing, 100);
	assert_int_equal(s.pages_unshared, 1);
	assert_int_equal(s.pages_volatile, 0);
	assert_int_equal(s.stable_node_chains, 0);
	assert_int_equal(t.f.n_remap, 200);
	tc_consistent(&t);
	tc_destroy(&t);
}

static void test_unique_pages(void **state)
{
	const size_t n = 300;
	struct tcore t;
	struct samepage_stats s;

	(void)state;
	tc_init(&t, n, 16);
	for (size_t i = 0; i < n; i++)
		tc_fill(&t, i, (uint32_t)i + 1);
	tc_track(&t, 0, n);
	tc_pass(&t);
	s = tc_stats(&t);
	assert_int_equal(s.pages_volatile, n);
	assert_int_equal(s.pages_unshared, 0);
	tc_passes(&t, 2);
	s = tc_stats(&t);
	assert_int_equal(s.pages_unshared, n);
	assert_int_equal(s.pages_volatile, 0);
	assert_int_equal(s.pages_shared, 0);
	assert_int_equal(s.pages_scanned, 3 * n);
	assert_int_equal(s.rmap_items, n);
	assert_int_equal(t.f.n_freeze, 0); /* nothing was even tried */
	tc_consistent(&t);
	tc_destroy(&t);
}

/* Page 1 changes to page 0's content between two visits: it is volatile
 * for one pass and merges on the next. */
static void test_volatile(void **state)
{
	struct tcore t;
	struct samepage_stats s;

	(void)state;
	tc_init(&t, 3, 16);
	tc_fill(&t, 0, 1);
	tc_fill(&t, 1, 2);
	tc_fill(&t, 2, SENTINEL_TAG);
	tc_track(&t, 0, 3);
	tc_pass(&t);
	tc_fill(&t, 1, 1); /* now equal to page 0, but it just changed */
	tc_pass(&t);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, 0);
	assert_int_equal(s.pages_unshared, 2);
	assert_int_equal(s.pages_volatile, 1);
	assert_int_equal(t.f.n_freeze, 0);
	tc_pass(&t);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, 1);
	assert_int_equal(s.pages_sharing, 1);
	assert_int_equal(s.pages_unshared, 1);
	assert_int_equal(s.pages_volatile, 0);
	tc_consistent(&t);

	/* a page that changes on every visit never merges */
	for (int k = 0; k < 5; k++) {
		tc_fill(&t, 2, SENTINEL_TAG + 1 + (uint32_t)(k & 1));
		tc_pass(&t);
		s = tc_stats(&t);
		assert_int_equal(s.pages_volatile, 1);
	}
	tc_consistent(&t);
	tc_destroy(&t);
}

/* After a content is stable, a page that becomes equal to it joins it on
 * its next unchanged visit, like two new equal pages pair then: Linux 6.11+
 * checks the checksum before searching the stable tree ("mm/ksm: don't
 * waste time searching stable tree for fast changing page"), and 6.18 is
 * the reference. Within one pass, pages after the first merge of a content
 * join the new stable page at once (pass 2 of the 16x1024 test settles). */
static void test_changed_page_joins_next_visit(void **state)
{
	struct tcore t;
	struct samepage_stats s;

	(void)state;
	tc_init(&t, 6, 16);
	tc_fill(&t, 0, 1);
	tc_fill(&t, 1, 1);
	tc_fill(&t, 2, 2);
	tc_fill(&t, 3, 3);
	tc_fill(&t, 4, 4);
	tc_fill(&t, 5, SENTINEL_TAG);
	tc_track(&t, 0, 6);
	tc_passes(&t, 2);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, 1);
	assert_int_equal(s.pages_sharing, 1);

	tc_fill(&t, 2, 1); /* equal to the stable page */
	tc_fill(&t, 3, 9); /* two new equal pages */
	tc_fill(&t, 4, 9);
	tc_pass(&t);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, 1);
	assert_int_equal(s.pages_sharing, 1);
	assert_int_equal(s.pages_volatile, 3);
	tc_pass(&t);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, 2);
	assert_int_equal(s.pages_sharing, 3); /* page 2 joined, 3 and 4 paired */
	assert_int_equal(s.pages_volatile, 0);
	assert_int_equal(s.pages_unshared, 1);
	tc_consistent(&t);
	tc_destroy(&t);
}

/* Memory tracked as several regions, added in descending address order,
 * merges as one: ids, cursor and partner regions stay right. */
static void test_regions_any_order(void **state)
{
	const size_t n = 64 * 6 + 1;
	struct tcore t;
	struct samepage_stats s;

	(void)state;
	tc_init(&t, n, 512);
	for (size_t i = 0; i + 1 < n; i++)
		tc_fill(&t, i, (uint32_t)(i % 64) + 1);
	tc_fill(&t, n - 1, SENTINEL_TAG);
	tc_track(&t, n - 1, 1);
	for (int r = 5; r >= 0; r--)
		tc_track(&t, (size_t)r * 64, 64);
	tc_track(&t, 0, n); /* all tracked already: no change */
	assert_int_equal(t.c.rmap.nregions, 7);
	assert_int_equal(t.c.rmap.tracked, n);
	tc_passes(&t, 2);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, 64);
	assert_int_equal(s.pages_sharing, 64 * 5);
	assert_int_equal(s.pages_unshared, 1);
	tc_consistent(&t);
	tc_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_16_contents_1024_each),
		cmocka_unit_test(test_257_copies_at_256),
		cmocka_unit_test(test_chain_boundaries),
		cmocka_unit_test(test_pairs),
		cmocka_unit_test(test_unique_pages),
		cmocka_unit_test(test_volatile),
		cmocka_unit_test(test_changed_page_joins_next_visit),
		cmocka_unit_test(test_regions_any_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
