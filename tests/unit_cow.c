/* SPDX-License-Identifier: MIT */
/*
 * unit_cow.c - a write to a merged page (broken copy-on-write) is noticed.
 *
 * Proves that the scan drops a sharer whose page was written (present
 * without the file bit), keeps sharers that are not present or still map
 * the store, frees (punches) the store page when its last sharer is gone,
 * and lets a page that got the same content back join again; counters and
 * contents stay exact throughout.
 */
#include "coretest.h"

static int store_page_is_zero(struct tcore *t, uint64_t pg)
{
	static const uint8_t zero[SP_PAGE_SIZE];

	return !memcmp(t->f.host.ops->store_page(&t->f.host, pg), zero, SP_PAGE_SIZE);
}

static void test_broken_cow(void **state)
{
	struct tcore t;
	struct samepage_stats s;
	int64_t pg;

	(void)state;
	tc_init(&t, 4, 16);
	for (size_t i = 0; i < 3; i++)
		tc_fill(&t, i, 42);
	tc_fill(&t, 3, 4242);
	tc_track(&t, 0, 4);
	tc_passes(&t, 2);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, 1);
	assert_int_equal(s.pages_sharing, 2);
	assert_int_equal(t.f.store_pages_used, 1);
	pg = t.f.maps[0];
	assert_true(pg >= 0);
	tc_consistent(&t);

	/* not faulted in, or read in: both still share, nothing changes */
	tc_pass(&t);
	tc_read_all(&t);
	tc_pass(&t);
	s = tc_stats(&t);
	assert_int_equal(s.pages_sharing, 2);

	tc_poke(&t, 1, 100, 0xab); /* copy-on-write */
	assert_true(t.f.maps[1] < 0);
	tc_pass(&t);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, 1);
	assert_int_equal(s.pages_sharing, 1);
	assert_int_equal(s.pages_volatile, 1); /* it just changed */
	tc_consistent(&t);

	tc_fill(&t, 1, 42); /* same content again: volatile once, then joins */
	tc_pass(&t);
	tc_pass(&t);
	s = tc_stats(&t);
	assert_int_equal(s.pages_sharing, 2);
	tc_consistent(&t);

	/* every sharer writes: the store page is freed and punched */
	tc_poke(&t, 0, 0, 1);
	tc_poke(&t, 1, 0, 2);
	tc_poke(&t, 2, 0, 3);
	tc_pass(&t);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, 0);
	assert_int_equal(s.pages_sharing, 0);
	assert_int_equal(t.f.store_pages_used, 0);
	assert_true(store_page_is_zero(&t, (uint64_t)pg));
	tc_consistent(&t);
	tc_destroy(&t);
}

/* The last sharer of a chain dup goes: the dup is freed, the chain stays
 * while other dups live and goes with the last one. */
static void test_broken_cow_in_chain(void **state)
{
	const size_t n = 9;
	struct tcore t;
	struct samepage_stats s;

	(void)state;
	tc_init(&t, n, 16);
	t.c.knobs.max_page_sharing = 2;
	for (size_t i = 0; i < 8; i++)
		tc_fill(&t, i, 77);
	tc_fill(&t, 8, 7777);
	tc_track(&t, 0, n);
	tc_passes(&t, 2);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, 4);
	assert_int_equal(s.stable_node_chains, 1);
	assert_int_equal(s.stable_node_dups, 4);
	for (size_t i = 0; i < 6; i++)
		tc_poke(&t, i, 1, (uint8_t)(9 + i)); /* six different contents */
	tc_pass(&t);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, 1);
	assert_int_equal(s.pages_sharing, 1);
	assert_int_equal(s.stable_node_chains, 1);
	assert_int_equal(s.stable_node_dups, 1);
	assert_int_equal(t.f.store_pages_used, 1);
	tc_consistent(&t);
	tc_poke(&t, 6, 1, 20);
	tc_poke(&t, 7, 1, 21);
	tc_pass(&t);
	s = tc_stats(&t);
	assert_int_equal(s.pages_shared, 0);
	assert_int_equal(s.stable_node_chains, 0);
	assert_int_equal(s.stable_node_dups, 0);
	assert_int_equal(t.f.store_pages_used, 0);
	tc_consistent(&t);
	tc_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_broken_cow),
		cmocka_unit_test(test_broken_cow_in_chain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
