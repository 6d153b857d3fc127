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
#include "testlib.h"

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

/* 128 pairs of twins at shuffled places (every merged page its own store
 * mapping, as bench_settle's "pairs"), smart_scan on, merged and settled;
 * then one more full scan in which nothing happens, after which the space
 * is trusted (scan.c). */
#define TW_N 256

static void twins_settled(struct tcore *t)
{
	uint32_t tag[TW_N];
	uint64_t s = 88172645463325252ull;
	struct samepage_stats st;

	tc_init(t, TW_N, TW_N);
	t->c.knobs.smart_scan = 1;
	for (size_t i = 0; i < TW_N; i++)
		tag[i] = 1 + (uint32_t)(i / 2);
	t_shuffle(tag, TW_N, &s);
	for (size_t i = 0; i < TW_N; i++)
		tc_fill(t, i, tag[i]);
	tc_track(t, 0, TW_N);
	tc_read_all(t);
	for (int k = 0; k < 4; k++)
		sp_core_scan(&t->c, 1000000, 0);
	st = tc_stats(t);
	assert_int_equal(st.pages_shared, TW_N / 2);
	assert_int_equal(st.pages_sharing, TW_N / 2);
	tc_read_all(t); /* merged pages faulted in, as the engine's are */
	sp_core_scan(&t->c, 1000000, 0);
	sp_core_scan(&t->c, 1000000, 0); /* nothing happened in this one */
	assert_true(t->c.trust[0].trusted);
	tc_consistent(t);
}

/* Pages queried over n full scans. */
static uint64_t queried_over(struct tcore *t, int n)
{
	uint64_t q0 = t->f.n_queried;

	while (n--)
		sp_core_scan(&t->c, 1000000, 0);
	return t->f.n_queried - q0;
}

/* Settled and trusted, merged pages are queried once every SP_VERIFY_SCANS
 * full scans instead of at every one; a write by the application (a page
 * fault: ops->writes grows) is seen at the very next scan all the same. */
static void test_trusted_write_seen(void **state)
{
	struct tcore t;
	struct samepage_stats s;
	uint64_t q;
	int64_t pg;

	(void)state;
	twins_settled(&t);
	q = queried_over(&t, SP_VERIFY_SCANS);
	print_message("queried %llu pages in %d scans of %d\n", (unsigned long long)q, SP_VERIFY_SCANS, TW_N);
	assert_true(q >= TW_N && q <= TW_N + TW_N / 2);
	tc_consistent(&t);

	pg = t.f.maps[5];
	tc_poke(&t, 5, 7, 0x5a); /* copy-on-write */
	sp_core_scan(&t.c, 1000000, 0);
	s = tc_stats(&t);
	assert_int_equal(s.pages_sharing, TW_N / 2 - 1);
	assert_true(t.f.maps[5] < 0 && pg >= 0);
	tc_consistent(&t);
	/* the write ended trust: that scan queried every page, all of them
	 * after the write, and nothing happened since: trusted again */
	assert_true(t.c.trust[0].trusted);
	assert_true(queried_over(&t, 1) <= SP_BATCH_MAX + 1); /* page 5 is not merged */
	tc_consistent(&t);
	tc_destroy(&t);
}

/* A write landing in the middle of a full scan, behind the cursor and ahead
 * of it: the one ahead is seen in that scan, the one behind at the next. */
static void test_trusted_write_mid_scan(void **state)
{
	struct tcore t;
	struct samepage_stats s;

	(void)state;
	twins_settled(&t);
	sp_core_scan(&t.c, 100, 0); /* the cursor is past page 100 now */
	assert_true(t.c.cur_page > 10 && t.c.cur_page < TW_N - 10);
	tc_poke(&t, 3, 0, 1);
	tc_poke(&t, TW_N - 3, 0, 1);
	sp_core_scan(&t.c, 1000000, 0); /* the rest of the scan */
	s = tc_stats(&t);
	assert_int_equal(s.pages_sharing, TW_N / 2 - 1);
	assert_false(t.c.trust[0].trusted);
	sp_core_scan(&t.c, 1000000, 0);
	s = tc_stats(&t);
	assert_int_equal(s.pages_sharing, TW_N / 2 - 2);
	tc_consistent(&t);
	tc_destroy(&t);
}

/* A write ops->writes does not count (another process's): seen by the
 * periodic query, within SP_VERIFY_SCANS full scans. */
static void test_trusted_foreign_write(void **state)
{
	struct tcore t;
	struct samepage_stats s;
	int scans = 0;

	(void)state;
	twins_settled(&t);
	t.f.foreign = 1;
	tc_poke(&t, 77, 0, 1);
	t.f.foreign = 0;
	do {
		sp_core_scan(&t.c, 1000000, 0);
		s = tc_stats(&t);
		scans++;
	} while (s.pages_sharing == TW_N / 2 && scans <= SP_VERIFY_SCANS);
	print_message("seen after %d scans\n", scans);
	assert_true(scans <= SP_VERIFY_SCANS);
	assert_int_equal(s.pages_sharing, TW_N / 2 - 1);
	tc_consistent(&t);
	tc_destroy(&t);
}

/* Without smart_scan, or when the core changed mappings, every merged page
 * is queried at every visit, as ksmd visits every page. */
static void test_untrusted_queries_all(void **state)
{
	struct tcore t;

	(void)state;
	twins_settled(&t);
	t.c.knobs.smart_scan = 0;
	assert_int_equal(queried_over(&t, 3), 3 * TW_N);
	assert_false(t.c.trust[0].trusted);
	t.c.knobs.smart_scan = 1;
	assert_int_equal(queried_over(&t, 1), TW_N); /* a clean scan ... */
	assert_true(t.c.trust[0].trusted);	     /* ... gives trust  */
	/* the core unmerges a range: the next scan queries every page */
	assert_int_equal(sp_core_remove_range(&t.c, 0, sp_fake_addr(&t.f, 0), 2), 0);
	memcpy(t.shadow, sp_fake_page(&t.f, 0), 2 * SP_PAGE_SIZE);
	assert_int_equal(queried_over(&t, 1), TW_N - 2);
	assert_true(t.c.trust[0].trusted); /* nothing happened during it */
	/* ... and in the middle of a scan: the region's walk restarts, every
	 * page of it queried after the change */
	sp_core_scan(&t.c, 100, 0);
	assert_int_equal(sp_core_remove_range(&t.c, 0, sp_fake_addr(&t.f, TW_N - 2), 2), 0);
	memcpy(t.shadow + (TW_N - 2) * SP_PAGE_SIZE, sp_fake_page(&t.f, TW_N - 2), 2 * SP_PAGE_SIZE);
	assert_int_equal(queried_over(&t, 1), TW_N - 4);
	assert_true(t.c.trust[0].trusted);
	tc_consistent(&t);
	tc_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_broken_cow),
		cmocka_unit_test(test_broken_cow_in_chain),
		cmocka_unit_test(test_trusted_write_seen),
		cmocka_unit_test(test_trusted_write_mid_scan),
		cmocka_unit_test(test_trusted_foreign_write),
		cmocka_unit_test(test_untrusted_queries_all),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
