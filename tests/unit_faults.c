/* SPDX-License-Identifier: MIT */
/*
 * unit_faults.c - SQLite-style fault injection through the fake backend.
 *
 * For each operation that can fail for real (freeze, remap, store
 * allocation, zap, the mapping budget, unmerge for run=2, restore for
 * unregistering), the Nth call is made to fail, for N = 1, 2, ... until a
 * whole workload runs without reaching it. After every failure: no page
 * reads anything but its own content, nothing stays frozen, and the
 * counters equal what the fake really maps (tc_consistent). Once the fault
 * is gone, scanning settles at exactly the counters of a run without
 * faults. The workload has every merge path: pair runs, stable-run joins,
 * chains (max_page_sharing 4), zero pages (use_zero_pages 1).
 */
#include "coretest.h"

#define NA 128
#define NZ 32
#define NX 20
#define NP (3 * NA + NZ + NX + 1)

enum fault { F_FREEZE, F_REMAP, F_ALLOC, F_ZAP, F_BUDGET, F_UNMERGE, F_RESTORE, F_REMAP_LATE };
static const char *const fault_name[] = {"freeze", "remap",   "store alloc", "zap",
					 "budget", "unmerge", "restore",     "late remap"};

static void setup(struct tcore *t)
{
	tc_init(t, NP, 1024);
	t->c.knobs.use_zero_pages = 1;
	t->c.knobs.max_page_sharing = 4;
	for (size_t r = 0; r < 3; r++)
		for (size_t i = 0; i < NA; i++)
			tc_fill(t, r * NA + i, (uint32_t)i + 1);
	for (size_t i = 0; i < NZ; i++)
		tc_fill(t, 3 * NA + i, 0);
	for (size_t i = 0; i < NX; i++)
		tc_fill(t, 3 * NA + NZ + i, 5000);
	tc_fill(t, NP - 1, 31337);
	tc_track(t, 0, NA);
	tc_track(t, NA, NA);
	tc_track(t, 2 * NA, NA);
	tc_track(t, 3 * NA, NZ + NX + 1);
}

static int *counter(struct tcore *t, enum fault f)
{
	switch (f) {
	case F_FREEZE:
		return &t->f.fail_freeze;
	case F_REMAP:
		return &t->f.fail_remap;
	case F_ALLOC:
		return &t->f.fail_alloc;
	case F_ZAP:
		return &t->f.fail_zap;
	case F_UNMERGE:
		return &t->f.fail_unmerge;
	case F_RESTORE:
		return &t->f.fail_restore;
	case F_REMAP_LATE:
		return &t->f.fail_remap_late;
	default:
		return NULL;
	}
}

static void same_counters(const struct samepage_stats *a, const struct samepage_stats *b)
{
	assert_int_equal(a->pages_shared, b->pages_shared);
	assert_int_equal(a->pages_sharing, b->pages_sharing);
	assert_int_equal(a->ksm_zero_pages, b->ksm_zero_pages);
	assert_int_equal(a->stable_node_chains, b->stable_node_chains);
	assert_int_equal(a->stable_node_dups, b->stable_node_dups);
	assert_int_equal(a->pages_unshared, b->pages_unshared);
	assert_int_equal(a->pages_volatile, b->pages_volatile);
}

static struct samepage_stats baseline(void)
{
	struct tcore t;
	struct samepage_stats s;

	setup(&t);
	tc_passes(&t, 4);
	s = tc_stats(&t);
	tc_consistent(&t);
	tc_destroy(&t);
	return s;
}

/* Faults during merging. Returns how many values of N made a call fail. */
static int merge_faults(enum fault f, const struct samepage_stats *base)
{
	int hit = 0;

	for (int n = f == F_BUDGET ? 0 : 1; n < 400; n++) {
		struct tcore t;
		int fired;

		setup(&t);
		if (f == F_BUDGET)
			t.f.budget = n;
		else
			*counter(&t, f) = n;
		tc_passes(&t, 2);
		fired = f == F_BUDGET ? t.f.budget == 0 : *counter(&t, f) == 0;
		tc_consistent(&t);
		if (f == F_BUDGET)
			assert_true(t.f.n_remap <= (uint64_t)n);
		if (f != F_BUDGET)
			*counter(&t, f) = 0;
		t.f.budget = 1 << 30;
		tc_passes(&t, 3);
		tc_consistent(&t);
		{
			struct samepage_stats s = tc_stats(&t);

			same_counters(&s, base);
		}
		tc_destroy(&t);
		if (!fired)
			break;
		hit++;
	}
	printf("  %-12s failed at call 1..%d: contents intact, counters true, settled as without faults\n",
	       fault_name[f], hit);
	return hit;
}

static void test_merge_faults(void **state)
{
	struct samepage_stats base = baseline();

	(void)state;
	printf("  baseline: shared %llu sharing %llu zero %llu chains %llu dups %llu\n",
	       (unsigned long long)base.pages_shared, (unsigned long long)base.pages_sharing,
	       (unsigned long long)base.ksm_zero_pages, (unsigned long long)base.stable_node_chains,
	       (unsigned long long)base.stable_node_dups);
	assert_int_equal(base.pages_shared, NA + NX / 4);
	assert_int_equal(base.pages_sharing, 2 * NA + NX - NX / 4);
	assert_int_equal(base.ksm_zero_pages, NZ);
	assert_true(merge_faults(F_FREEZE, &base) > 5);
	assert_true(merge_faults(F_REMAP, &base) > 5);
	/* a remap refused after the fact (samepaged's client): the merge
	 * ends in the batch that made it */
	assert_true(merge_faults(F_REMAP_LATE, &base) > 5);
	assert_true(merge_faults(F_ALLOC, &base) > 3);
	assert_true(merge_faults(F_ZAP, &base) >= 1);
	assert_true(merge_faults(F_BUDGET, &base) > 5);
}

/* run=2 whose unmerge fails part way: what it did is accounted for. */
static void test_unmerge_fails(void **state)
{
	struct samepage_stats base = baseline();
	int hit = 0;

	(void)state;
	for (int n = 1; n < 100; n++) {
		struct tcore t;
		int err;

		setup(&t);
		tc_passes(&t, 3);
		t.f.fail_unmerge = n;
		err = sp_core_unmerge_all(&t.c);
		tc_consistent(&t);
		t.f.fail_unmerge = 0;
		if (err) {
			hit++;
			assert_int_equal(sp_core_unmerge_all(&t.c), 0); /* and again */
		}
		tc_consistent(&t);
		assert_int_equal(tc_stats(&t).pages_shared, 0);
		tc_passes(&t, 2);
		{
			struct samepage_stats s = tc_stats(&t);

			same_counters(&s, &base);
		}
		tc_destroy(&t);
		if (!err)
			break;
	}
	printf("  unmerge      failed at call 1..%d: contents intact, counters true\n", hit);
	assert_true(hit > 3);
}

/* Unregistering whose restore fails part way: one region holding three
 * runs of merged pages with unique pages between them, so the failure
 * comes after part of the region was restored. */
static void test_restore_fails(void **state)
{
	int hit = 0;

	(void)state;
	for (int n = 1; n < 100; n++) {
		struct tcore t;
		int err;

		tc_init(&t, 61, 64);
		for (size_t i = 0; i < 60; i++)
			tc_fill(&t, i, (i / 10) % 2 ? 1000 + (uint32_t)i : (uint32_t)(i % 10) + 1);
		tc_fill(&t, 60, 31337);
		tc_track(&t, 0, 61);
		tc_passes(&t, 2);
		assert_int_equal(tc_stats(&t).pages_sharing, 20);
		t.f.fail_restore = n;
		err = sp_core_remove_range(&t.c, 0, sp_fake_addr(&t.f, 0), 61);
		tc_consistent(&t);
		t.f.fail_restore = 0;
		if (err)
			hit++;
		assert_int_equal(sp_core_remove_range(&t.c, 0, sp_fake_addr(&t.f, 0), 61), 0);
		tc_consistent(&t);
		assert_int_equal(tc_stats(&t).pages_shared, 0);
		assert_int_equal(t.f.store_pages_used, 0);
		tc_destroy(&t);
		if (!err)
			break;
	}
	printf("  restore      failed at call 1..%d: contents intact, counters true\n", hit);
	assert_int_equal(hit, 3);
}

/* Every page a merge gives up on counts once in merge_failures, whatever
 * the reason and the kind of run; the partners of a failed pair go back to
 * the unstable index (pages_unshared), whichever step failed. Layout: 8
 * pages, their 8 twins, 4 zero pages, 4 copies of page 0 (they join its
 * stable page once it exists), a sentinel. */
static void count_failures(enum fault f, uint64_t want_failures, uint64_t want_unshared)
{
	struct tcore t;

	tc_init(&t, 25, 64);
	t.c.knobs.use_zero_pages = 1;
	for (size_t i = 0; i < 16; i++)
		tc_fill(&t, i, (uint32_t)(i % 8) + 1);
	for (size_t i = 16; i < 20; i++)
		tc_fill(&t, i, 0);
	for (size_t i = 20; i < 24; i++)
		tc_fill(&t, i, 1);
	tc_fill(&t, 24, 31337);
	tc_track(&t, 0, 25);
	tc_pass(&t); /* first visits: hashes only */
	if (f == F_BUDGET)
		t.f.budget = 0;
	else if (f == F_FREEZE) /* the first freezes the zero pages ahead of their read (scan.c) */
		*counter(&t, f) = 2;
	else
		*counter(&t, f) = 1; /* the first call fails */
	tc_pass(&t);
	tc_consistent(&t);
	printf("  %-12s merge_failures %llu, pages_unshared %llu\n", fault_name[f],
	       (unsigned long long)t.c.cnt.merge_failures, (unsigned long long)tc_stats(&t).pages_unshared);
	assert_int_equal(t.c.cnt.merge_failures, want_failures);
	assert_int_equal(tc_stats(&t).pages_unshared, want_unshared);
	if (f != F_BUDGET)
		*counter(&t, f) = 0;
	t.f.budget = 1 << 30;
	tc_passes(&t, 2);
	tc_consistent(&t);
	assert_int_equal(tc_stats(&t).pages_shared, 8);
	assert_int_equal(tc_stats(&t).pages_sharing, 12);
	assert_int_equal(tc_stats(&t).ksm_zero_pages, 4);
	tc_destroy(&t);
}

static void test_failures_counted_per_page(void **state)
{
	(void)state;
	/* pass 2: the pair run of 8 (pages 8-15 with 0-7) fails as a whole:
	 * 8 failures, partners 0-7 back in the index; then the copies of
	 * page 0 pair with it (it is back) and join that stable page one by
	 * one: unshared = pages 1-7 + the sentinel */
	count_failures(F_ALLOC, 8, 8);
	count_failures(F_FREEZE, 8, 8);
	/* this side's remap failed, the partners' side is merged (stable
	 * pages with one sharer each), so the copies join page 0's */
	count_failures(F_REMAP, 8, 1);
	/* no mapping may be made: the pair run, then each copy of page 0 in
	 * turn pairing with page 0 (4), fail; zero pages need no mapping */
	count_failures(F_BUDGET, 8 + 4, 8 + 1);
	/* the zero run fails; zero pages never enter the unstable index */
	count_failures(F_ZAP, 4, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge_faults),
		cmocka_unit_test(test_unmerge_fails),
		cmocka_unit_test(test_restore_fails),
		cmocka_unit_test(test_failures_counted_per_page),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
