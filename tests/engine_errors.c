/* SPDX-License-Identifier: MIT */
/*
 * engine_errors.c - every errno of the public API, as sysfs and madvise
 * would give it.
 *
 * Proves: EINVAL for a bad knob value (syntax, range), an unaligned
 * address, a bad advice, NULL arguments; ENOENT for an unknown knob or
 * counter; ENOMEM for a range that is not (entirely) mapped; EACCES for
 * writing a counter; EBUSY for changing max_page_sharing or
 * merge_across_nodes while pages are shared (and not when the value is
 * unchanged, or once nothing is shared); ERANGE for a short buffer;
 * ETIMEDOUT from samepage_wait_scans. A failed call changes nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "enginetest.h"

#define expect_errno(call, err)                 \
	do {                                    \
		errno = 0;                      \
		assert_int_equal((call), -1);   \
		assert_int_equal(errno, (err)); \
	} while (0)

static void test_einval(void **state)
{
	char *m = t_map(4), buf[64];

	(void)state;
	expect_errno(samepage_set("pages_to_scan", "abc"), EINVAL);
	expect_errno(samepage_set("pages_to_scan", "-1"), EINVAL);
	expect_errno(samepage_set("pages_to_scan", "1 "), EINVAL);
	expect_errno(samepage_set("pages_to_scan", ""), EINVAL);
	expect_errno(samepage_set("pages_to_scan", "4294967296"), EINVAL);
	expect_errno(samepage_set("run", "3"), EINVAL);
	expect_errno(samepage_set("max_page_sharing", "1"), EINVAL);
	expect_errno(samepage_set("use_zero_pages", "maybe"), EINVAL);
	expect_errno(samepage_set("advisor_mode", "fast"), EINVAL);
	expect_errno(samepage_set(NULL, "1"), EINVAL);
	expect_errno(samepage_set("run", NULL), EINVAL);
	expect_errno(samepage_get(NULL, buf, sizeof(buf)), EINVAL);
	expect_errno(samepage_madvise(m + 1, TPAGE, SAMEPAGE_MERGEABLE), EINVAL);
	expect_errno(samepage_madvise(m + 100, TPAGE, SAMEPAGE_UNMERGEABLE), EINVAL);
	expect_errno(samepage_madvise(m, TPAGE, 0), EINVAL);
	expect_errno(samepage_madvise(m, TPAGE, 3), EINVAL);
	expect_errno(samepage_madvise(m, SIZE_MAX, SAMEPAGE_MERGEABLE), EINVAL);
	expect_errno(samepage_stats(NULL), EINVAL);
	expect_errno(samepage_region_stats(m + 8, TPAGE, &(struct samepage_region_stats){0}), EINVAL);
	/* a length that wraps around the address space: EINVAL, as madvise
	 * (it used to round to 0 pages and answer "nothing registered") */
	expect_errno(samepage_region_stats(m, SIZE_MAX, &(struct samepage_region_stats){0}), EINVAL);
	expect_errno(samepage_region_stats(m, SIZE_MAX - TPAGE, &(struct samepage_region_stats){0}), EINVAL);
	expect_errno(samepage_region_stats(m + TPAGE, (size_t)0 - (uintptr_t)m, &(struct samepage_region_stats){0}),
		     EINVAL);
	/* nothing changed; accepted syntax still works */
	assert_int_equal(samepage_get("pages_to_scan", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "100000");
	assert_int_equal(samepage_set("pages_to_scan", "+100000\n"), 0);
	assert_int_equal(samepage_madvise(m, 0, 7 - 6), 0); /* empty range: nothing to do */
	munmap(m, 4 * TPAGE);
}

static void test_enoent_eacces_erange(void **state)
{
	char buf[64], tiny[2];
	static const char *const counters[] = {"pages_shared",	   "pages_sharing",  "pages_unshared",
					       "pages_volatile",   "pages_scanned",  "pages_skipped",
					       "full_scans",	   "ksm_zero_pages", "stable_node_chains",
					       "stable_node_dups", "general_profit"};

	(void)state;
	expect_errno(samepage_set("no_such_knob", "1"), ENOENT);
	expect_errno(samepage_get("no_such_knob", buf, sizeof(buf)), ENOENT);
	expect_errno(samepage_get("", buf, sizeof(buf)), ENOENT);
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		expect_errno(samepage_set(counters[i], "0"), EACCES);
		assert_int_equal(samepage_get(counters[i], buf, sizeof(buf)), 0);
	}
	expect_errno(samepage_get("pages_to_scan", tiny, sizeof(tiny)), ERANGE);
	expect_errno(samepage_get("advisor_mode", buf, 5), ERANGE);
	assert_int_equal(samepage_get("advisor_mode", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "[none] scan-time");
}

static void test_enomem(void **state)
{
	char *m = t_map(8);

	(void)state;
	assert_int_equal(munmap(m + 4 * TPAGE, 2 * TPAGE), 0); /* a hole */
	expect_errno(samepage_madvise(m, 8 * TPAGE, SAMEPAGE_MERGEABLE), ENOMEM);
	expect_errno(samepage_madvise(m + 4 * TPAGE, TPAGE, SAMEPAGE_MERGEABLE), ENOMEM);
	expect_errno(samepage_madvise(m + 4 * TPAGE, TPAGE, SAMEPAGE_UNMERGEABLE), ENOMEM);
	/* nothing got registered by the failed call */
	{
		struct samepage_region_stats rs;

		assert_int_equal(samepage_region_stats(m, 8 * TPAGE, &rs), 0);
		assert_int_equal(rs.registered_pages, 0);
	}
	munmap(m, 4 * TPAGE);
	munmap(m + 6 * TPAGE, 2 * TPAGE);
}

static void test_ebusy(void **state)
{
	char *m = t_map(64);

	(void)state;
	assert_int_equal(samepage_set("max_page_sharing", "128"), 0); /* nothing shared: fine */
	for (size_t i = 0; i < 64; i++)
		t_fill(m + i * TPAGE, 1);
	assert_int_equal(samepage_madvise(m, 64 * TPAGE, SAMEPAGE_MERGEABLE), 0);
	assert_true(et_wait_merged(1, 63, ET_PATIENCE_MS));
	expect_errno(samepage_set("max_page_sharing", "256"), EBUSY);
	expect_errno(samepage_set("merge_across_nodes", "0"), EBUSY);
	assert_int_equal(samepage_set("max_page_sharing", "128"), 0); /* unchanged: fine */
	{
		char buf[16];

		assert_int_equal(samepage_get("max_page_sharing", buf, sizeof(buf)), 0);
		assert_string_equal(buf, "128");
	}
	assert_int_equal(samepage_set("run", "2"), 0); /* unmerged: allowed again */
	assert_int_equal(samepage_set("max_page_sharing", "256"), 0);
	assert_int_equal(samepage_set("run", "1"), 0);
	assert_int_equal(samepage_munmap(m, 64 * TPAGE), 0);
}

static void test_etimedout(void **state)
{
	uint64_t t0;

	(void)state;
	assert_int_equal(samepage_set("run", "0"), 0);
	t0 = t_now_ms();
	expect_errno(samepage_wait_scans(1, 100), ETIMEDOUT);
	assert_true(t_now_ms() - t0 >= 100);
	assert_true(t_now_ms() - t0 < ET_PATIENCE_MS);
	assert_int_equal(samepage_set("run", "1"), 0);
	assert_int_equal(samepage_wait_scans(0, 0), 0); /* zero scans: at once */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_einval),	  cmocka_unit_test(test_enoent_eacces_erange),
		cmocka_unit_test(test_enomem),	  cmocka_unit_test(test_ebusy),
		cmocka_unit_test(test_etimedout),
	};
	int rc = et_start();

	if (rc)
		return rc;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
