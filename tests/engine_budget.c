/* SPDX-License-Identifier: MIT */
/*
 * engine_budget.c - the mapping budget (src/mem/budget.c): when the engine
 * counts this process's mappings again, and that a count follows the
 * mappings the process makes and gives back.
 *
 * A budget that ran out must be counted again even when the engine added
 * nothing since its last count: the application's own mappings took it and
 * may be gone (samepaged's clients then merged nothing more, ever).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "mem/local.h"

#define MS 1000000ull

static struct sp_budget budget(long counted, long added, uint64_t at_ns)
{
	struct sp_budget bg = {
		.max_map_count = 65530, .reserve = 8191, .counted = counted, .added = added, .counted_at_ns = at_ns};

	return bg;
}

static void test_when_due(void **state)
{
	const uint64_t t = 100000 * MS;
	struct sp_budget bg;

	(void)state;
	/* plenty left, nothing added: no count, however long ago */
	bg = budget(1000, 0, 0);
	assert_false(sp_budget_due(&bg, t));
	/* under a quarter left by the estimate: counted, not within 250 ms */
	bg = budget(1000, 45000, t - 100 * MS);
	assert_false(sp_budget_due(&bg, t));
	bg = budget(1000, 45000, t - 300 * MS);
	assert_true(sp_budget_due(&bg, t));
	/* something added, plenty left: every 10 s */
	bg = budget(1000, 10, t - 9000 * MS);
	assert_false(sp_budget_due(&bg, t));
	bg = budget(1000, 10, t - 10000 * MS);
	assert_true(sp_budget_due(&bg, t));
	/* out, by the application's mappings alone: counted again (at most
	 * every 250 ms), so that mappings it gives back come back */
	bg = budget(60000, 0, t - 300 * MS);
	assert_true(sp_budget_left(&bg) <= 0);
	assert_true(sp_budget_due(&bg, t));
	bg = budget(60000, 0, t - 100 * MS);
	assert_false(sp_budget_due(&bg, t));
}

static void test_count_follows_mappings(void **state)
{
	struct sp_budget bg;
	long before, split, after;
	char *m;

	(void)state;
	sp_budget_init(&bg);
	before = sp_count_mappings();
	assert_true(before > 0);
	assert_true(sp_budget_left(&bg) > 0);
	/* 64 pages, every other one read-only: 64 mappings */
	m = mmap(NULL, 64 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	for (int i = 1; i < 64; i += 2)
		assert_int_equal(mprotect(m + i * 4096, 4096, PROT_READ | PROT_WRITE), 0);
	split = sp_count_mappings();
	assert_true(split >= before + 63);
	sp_budget_set(&bg, split, 0, 1);
	assert_int_equal(sp_budget_left(&bg), bg.max_map_count - bg.reserve - split);
	munmap(m, 64 * 4096);
	after = sp_count_mappings();
	assert_true(after <= split - 63);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_when_due),
		cmocka_unit_test(test_count_follows_mappings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
