/* SPDX-License-Identifier: MIT */
/*
 * unit_spaces.c - one core, several address spaces: the shape of a merge
 * domain in samepaged (one sp_mem per client process, one store).
 *
 * Two fake processes A and B with the same 16 contents (and a unique page
 * each) merge across each other, page for page, onto one store; a write in
 * B breaks only B's copy; B then goes away (sp_core_drop_space): its pages
 * leave every index without its memory being touched, A keeps reading its
 * own content from the store, and when A unregisters, every store page is
 * freed. Counters are checked against what the fakes really map.
 */
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

#define NP 17 /* 16 shared contents and one unique page per process */

static void fill(struct sp_fake *f, uint32_t unique)
{
	for (size_t i = 0; i < NP - 1; i++)
		sp_fake_fill(f, i, 100 + (uint32_t)i);
	sp_fake_fill(f, NP - 1, unique);
}

static void full_scan(struct sp_core *c)
{
	uint64_t before = c->cnt.full_scans;

	while (c->cnt.full_scans == before)
		sp_core_scan(c, 1000000, 0);
}

static struct samepage_stats stats(const struct sp_core *c)
{
	struct samepage_stats s;

	sp_core_stats(c, &s);
	return s;
}

static int reads(const struct sp_fake *f, size_t page, uint32_t tag)
{
	struct sp_fake ref;
	int same;

	assert_int_equal(sp_fake_init(&ref, 1, 1), 0);
	sp_fake_fill(&ref, 0, tag);
	same = !memcmp(sp_fake_page(f, page), sp_fake_page(&ref, 0), SP_PAGE_SIZE);
	sp_fake_destroy(&ref);
	return same;
}

static void test_two_spaces(void **state)
{
	struct sp_fake a, b;
	struct sp_core c;
	int sa, sb;

	(void)state;
	assert_int_equal(sp_fake_init(&a, NP, 64), 0);
	assert_int_equal(sp_fake_init_sharing(&b, NP, &a), 0);
	fill(&a, 7001);
	fill(&b, 7002);
	assert_int_equal(sp_core_init(&c, &a.host), 0);
	c.knobs.smart_scan = 0;
	sa = sp_core_add_space(&c, &a.space);
	sb = sp_core_add_space(&c, &b.space);
	assert_int_equal(sa, 0);
	assert_int_equal(sb, 1);
	/* each process registers its own memory, as a region of its space */
	assert_int_equal(sp_core_add_range(&c, (uint32_t)sa, sp_fake_addr(&a, 0), NP), 0);
	assert_int_equal(sp_core_add_range(&c, (uint32_t)sb, sp_fake_addr(&b, 0), NP), 0);
	for (int i = 0; i < 3; i++)
		full_scan(&c);

	/* merged across the two: every content one store page, both map it */
	assert_int_equal(stats(&c).pages_shared, NP - 1);
	assert_int_equal(stats(&c).pages_sharing, NP - 1);
	assert_int_equal(a.store_pages_used, NP - 1);
	for (size_t i = 0; i < NP - 1; i++) {
		assert_true(a.maps[i] >= 0);
		assert_int_equal(a.maps[i], b.maps[i]);
		assert_true(reads(&a, i, 100 + (uint32_t)i));
		assert_true(reads(&b, i, 100 + (uint32_t)i));
	}
	assert_true(a.maps[NP - 1] < 0 && b.maps[NP - 1] < 0);
	assert_true(b.n_wake_blocked > 0); /* B's blocked writers were woken too */

	/* a write in B breaks only B's copy */
	sp_fake_fill(&b, 3, 4242);
	full_scan(&c);
	assert_int_equal(stats(&c).pages_sharing, NP - 2);
	assert_true(reads(&a, 3, 103));
	assert_true(reads(&b, 3, 4242));

	/* B's process is gone: its items leave, nothing of its memory is
	 * touched, A still maps every store page and reads its content */
	sp_core_drop_space(&c, (uint32_t)sb);
	assert_int_equal(stats(&c).pages_sharing, 0);
	assert_int_equal(stats(&c).pages_shared, NP - 1);
	assert_int_equal(stats(&c).rmap_items, NP);
	assert_int_equal(a.store_pages_used, NP - 1);
	for (size_t i = 0; i < NP - 1; i++)
		assert_true(reads(&a, i, 100 + (uint32_t)i));
	for (int i = 0; i < 2; i++)
		full_scan(&c); /* and scanning goes on with A alone */
	assert_int_equal(stats(&c).pages_shared, NP - 1);

	/* the index of a dropped space is handed out again */
	assert_int_equal(sp_core_add_space(&c, &b.space), sb);

	/* A unregisters: private again, and the store is empty */
	assert_int_equal(sp_core_remove_range(&c, (uint32_t)sa, sp_fake_addr(&a, 0), NP), 0);
	assert_int_equal(stats(&c).pages_shared, 0);
	assert_int_equal(a.store_pages_used, 0);
	for (size_t i = 0; i < NP - 1; i++)
		assert_true(reads(&a, i, 100 + (uint32_t)i));
	assert_int_equal(a.n_frozen_now + b.n_frozen_now, 0);
	assert_int_equal(a.n_write_while_frozen + b.n_write_while_frozen, 0);

	sp_core_destroy(&c);
	sp_fake_destroy(&b);
	sp_fake_destroy(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_spaces),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
