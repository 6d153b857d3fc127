/* SPDX-License-Identifier: MIT */
/*
 * unit_zero.c - use_zero_pages: all-zero pages go to the kernel's zero page.
 *
 * Proves that with use_zero_pages=1 verified all-zero pages are dropped
 * (one zap per run), counted in ksm_zero_pages and not as rmap items, never
 * use a store page, read zeros afterwards, and leave the count when written;
 * with use_zero_pages=0 zero pages merge like any content.
 */
#include "coretest.h"

static void layout(struct tcore *t)
{
	for (size_t i = 0; i < 100; i++)
		tc_fill(t, i, 0);
	for (size_t i = 100; i < 200; i++)
		tc_fill(t, i, 5);
	tc_fill(t, 200, 555);
	tc_track(t, 0, 201);
}

static void test_zero_pages_on(void **state)
{
	struct tcore t;
	struct samepage_stats s;

	(void)state;
	tc_init(&t, 201, 64);
	t.c.knobs.use_zero_pages = 1;
	layout(&t);
	tc_passes(&t, 2);
	tc_print("use_zero_pages=1", &t);
	s = tc_stats(&t);
	assert_int_equal(s.ksm_zero_pages, 100);
	assert_int_equal(s.pages_shared, 1);
	assert_int_equal(s.pages_sharing, 99);
	assert_int_equal(s.rmap_items, 101);
	assert_int_equal(s.pages_volatile, 0);
	assert_int_equal(t.f.n_zap, 2); /* pages 0-63 and 64-99: one run per batch */
	assert_int_equal(t.f.store_pages_used, 1);
	tc_consistent(&t);

	tc_passes(&t, 2); /* dropped pages stay dropped, uncounted */
	s = tc_stats(&t);
	assert_int_equal(s.ksm_zero_pages, 100);
	assert_int_equal(t.f.n_zap, 2);

	tc_poke(&t, 10, 5, 1); /* a write gives the page back */
	tc_fill(&t, 11, 0);    /* a write of zeros too (the page is private) */
	tc_pass(&t);
	s = tc_stats(&t);
	assert_int_equal(s.ksm_zero_pages, 98);
	assert_int_equal(s.rmap_items, 103);
	assert_int_equal(s.pages_volatile, 2);
	tc_consistent(&t);
	tc_pass(&t); /* page 11 is zero again and unchanged: dropped again */
	s = tc_stats(&t);
	assert_int_equal(s.ksm_zero_pages, 99);
	assert_int_equal(s.pages_unshared, 2);
	tc_consistent(&t);
	tc_destroy(&t);
}

static void test_zero_pages_off(void **state)
{
	struct tcore t;
	struct samepage_stats s;

	(void)state;
	tc_init(&t, 201, 64);
	layout(&t);
	tc_passes(&t, 2);
	s = tc_stats(&t);
	assert_int_equal(s.ksm_zero_pages, 0);
	assert_int_equal(s.pages_shared, 2);
	assert_int_equal(s.pages_sharing, 198);
	assert_int_equal(t.f.n_zap, 0);
	tc_consistent(&t);
	tc_destroy(&t);
}

/* A page hashing like zeros but not all zero is never dropped: only
 * verified zeros are (the hash only nominates). Here: a zap that fails. */
static void test_zap_fails(void **state)
{
	struct tcore t;
	struct samepage_stats s;

	(void)state;
	tc_init(&t, 201, 64);
	t.c.knobs.use_zero_pages = 1;
	t.f.fail_zap = 1;
	layout(&t);
	tc_passes(&t, 2);
	s = tc_stats(&t);
	assert_int_equal(s.ksm_zero_pages, 36); /* the first run (64 pages) failed */
	tc_consistent(&t);
	tc_pass(&t);
	s = tc_stats(&t);
	assert_int_equal(s.ksm_zero_pages, 100);
	tc_consistent(&t);
	tc_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zero_pages_on),
		cmocka_unit_test(test_zero_pages_off),
		cmocka_unit_test(test_zap_fails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
