/* SPDX-License-Identifier: MIT */
/*
 * unit_bound.c - scan calls bounded by a deadline still get everything done.
 *
 * A call ends a batch early when time runs out between merges; the pages
 * left go first in the next call. The fake clock advances a fixed
 * step at every reading, so deadlines bite after a few readings. Proves
 * that every call makes progress (the cursor moves, or a full scan ends),
 * also when the deadline has passed before the call starts, and that
 * memory settles to the same counters as with unbounded calls: pairs at
 * random places (one merge per page), runs and zero pages.
 */
#include "coretest.h"

#define NP 700

static void layout(struct tcore *t)
{
	uint32_t perm[256];
	uint64_t x = 88172645463325252ull;

	for (uint32_t i = 0; i < 256; i++)
		perm[i] = i;
	for (uint32_t i = 255; i > 0; i--) { /* shuffled twins */
		uint32_t j, tmp;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		j = (uint32_t)(x % (i + 1));
		tmp = perm[i], perm[i] = perm[j], perm[j] = tmp;
	}
	for (uint32_t i = 0; i < 256; i++) {
		tc_fill(t, i, 1000 + i);
		tc_fill(t, 256 + perm[i], 1000 + i);
	}
	for (uint32_t i = 512; i < 640; i++) /* a 64-page block, twice */
		tc_fill(t, i, 5000 + (i - 512) % 64);
	for (uint32_t i = 640; i < NP - 1; i++)
		tc_fill(t, i, 0);
	tc_fill(t, NP - 1, 99999); /* sentinel */
	tc_track(t, 0, NP);
}

/* Scans with calls bounded by `bound_ns` of the fake clock (0: unbounded,
 * a full pass per loop) until nothing changes for two full scans. */
static struct samepage_stats settle(struct tcore *t, uint64_t step_ns, uint64_t bound_ns, int late)
{
	struct samepage_stats s, prev = {0};
	int same = 0, calls = 0;

	t->f.clock_step_ns = step_ns;
	while (same < 2) {
		uint64_t fs = t->c.cnt.full_scans;

		if (bound_ns) {
			uint32_t r = t->c.cur_region;
			uint64_t p = t->c.cur_page;
			uint64_t now = sp_core_now(&t->c);
			/* late: the deadline passed before the call */
			uint64_t deadline = late ? now - 1 : now + bound_ns;

			sp_core_scan(&t->c, 1000000, deadline);
			calls++;
			assert_true(calls < 200000);
			/* progress: the cursor moved or a full scan ended */
			assert_true(t->c.cnt.full_scans != fs || t->c.cur_region != r || t->c.cur_page != p);
		} else {
			tc_pass(t);
		}
		if (t->c.cnt.full_scans == fs)
			continue;
		s = tc_stats(t);
		same = s.pages_sharing == prev.pages_sharing && s.ksm_zero_pages == prev.ksm_zero_pages &&
				       s.pages_shared == prev.pages_shared && s.full_scans > 3
			       ? same + 1
			       : 0;
		prev = s;
	}
	return prev;
}

static void check(uint64_t step_ns, uint64_t bound_ns, int late)
{
	struct tcore a, b;
	struct samepage_stats sa, sb;

	tc_init(&a, NP, 1024);
	a.c.knobs.use_zero_pages = 1;
	layout(&a);
	sa = settle(&a, 0, 0, 0);
	tc_consistent(&a);

	tc_init(&b, NP, 1024);
	b.c.knobs.use_zero_pages = 1;
	layout(&b);
	sb = settle(&b, step_ns, bound_ns, late);
	tc_print("bounded", &b);
	tc_consistent(&b);
	assert_int_equal(sb.pages_shared, sa.pages_shared);
	assert_int_equal(sb.pages_sharing, sa.pages_sharing);
	assert_int_equal(sb.ksm_zero_pages, sa.ksm_zero_pages);
	assert_int_equal(sb.pages_shared, 256 + 64);
	assert_int_equal(sb.ksm_zero_pages, NP - 1 - 640);
	tc_destroy(&a);
	tc_destroy(&b);
}

/* 1 ms calls, 20 us per clock reading: a few merges per call */
static void test_bounded_calls(void **state)
{
	(void)state;
	check(20000, 1000000, 0);
}

/* every reading past the deadline: one step of work per call */
static void test_tight_calls(void **state)
{
	(void)state;
	check(300000, 1000000, 0);
}

static void test_late_calls(void **state)
{
	(void)state;
	check(1000, 1000000, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounded_calls),
		cmocka_unit_test(test_tight_calls),
		cmocka_unit_test(test_late_calls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
