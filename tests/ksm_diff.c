/* SPDX-License-Identifier: MIT */
/*
 * ksm_diff.c - the engine against the kernel's KSM, counter for counter.
 *
 * One static workload with known duplicate groups (1000, 300, 257, 256 and 2
 * copies of a content, zero pages and unique pages, all interleaved) is
 * merged twice in this process: by the kernel's ksmd (madvise MADV_MERGEABLE
 * on one copy) and by libsamepage (samepage_madvise on another copy). Once
 * each side has settled, pages_shared, pages_sharing, stable_node_chains,
 * stable_node_dups and ksm_zero_pages must be equal, for use_zero_pages 0
 * and 1 and for several max_page_sharing values (the chain boundaries).
 * The engine then unmerges everything (run=2) and merges again, and must
 * reach the same counters.
 *
 * Needs root and a writable /sys/kernel/mm/ksm (skipped otherwise). Every
 * knob is restored at exit (testlib), and the flock in t_ksm_save keeps
 * other users of KSM out while this runs.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "samepage.h"
#include "testlib.h"

#define NPAGES	  T_DIFF_NPAGES
#define SETTLE_MS 90000

static uint32_t *layout(void)
{
	uint32_t *tags = malloc(NPAGES * sizeof(*tags));

	t_diff_layout(tags);
	return tags;
}

static uint8_t *build(const uint32_t *tags)
{
	uint8_t *m = t_map(NPAGES);

	madvise(m, NPAGES * TPAGE, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < NPAGES; i++)
		t_fill(m + i * TPAGE, tags[i]);
	return m;
}

static void engine_counters(struct t_ksm_counters *c)
{
	struct samepage_stats st;

	assert_int_equal(samepage_stats(&st), 0);
	c->shared = (long)st.pages_shared;
	c->sharing = (long)st.pages_sharing;
	c->chains = (long)st.stable_node_chains;
	c->dups = (long)st.stable_node_dups;
	c->zero = (long)st.ksm_zero_pages;
}

static int same(const struct t_ksm_counters *a, const struct t_ksm_counters *b)
{
	return !memcmp(a, b, sizeof(*a));
}

/* The kernel has settled when its counters held through two more full
 * scans after at least three. */
static int kernel_settle(struct t_ksm_counters *out)
{
	uint64_t deadline = t_now_ms() + SETTLE_MS;
	long start = t_ksm_get("full_scans"), seen = start;
	struct t_ksm_counters prev = {-1, -1, -1, -1, -1};
	int still = 0;

	while (t_now_ms() < deadline) {
		long fs = t_ksm_get("full_scans");

		if (fs == seen) {
			usleep(2000); /* polling a counter, with a deadline */
			continue;
		}
		seen = fs;
		t_ksm_counters(out);
		if (fs - start >= 3 && same(out, &prev))
			still++;
		else
			still = 0;
		prev = *out;
		if (still >= 2)
			return 0;
	}
	return -1;
}

static int engine_settle(struct t_ksm_counters *out)
{
	uint64_t deadline = t_now_ms() + SETTLE_MS;
	struct t_ksm_counters prev = {-1, -1, -1, -1, -1};
	int still = 0, scans = 0;

	while (t_now_ms() < deadline) {
		if (samepage_wait_scans(1, 5000))
			continue;
		scans++;
		engine_counters(out);
		if (scans >= 3 && same(out, &prev))
			still++;
		else
			still = 0;
		prev = *out;
		if (still >= 2)
			return 0;
	}
	return -1;
}

static void print(const char *who, const struct t_ksm_counters *c)
{
	printf("  %-7s pages_shared %5ld pages_sharing %5ld chains %3ld dups %3ld ksm_zero_pages %4ld\n", who,
	       c->shared, c->sharing, c->chains, c->dups, c->zero);
}

static void run_config(const char *mps, const char *zero)
{
	uint32_t *tags = layout();
	uint8_t *km, *em;
	struct t_ksm_counters k, e, e2;

	printf("max_page_sharing=%s use_zero_pages=%s\n", mps, zero);

	/* the kernel */
	t_ksm_set("run", "2");
	t_ksm_set("run", "0");
	assert_int_equal(t_ksm_set("max_page_sharing", mps), 0);
	assert_int_equal(t_ksm_set("use_zero_pages", zero), 0);
	t_ksm_set("smart_scan", "0");
	t_ksm_set("advisor_mode", "none");
	assert_int_equal(t_ksm_set("pages_to_scan", "5000"), 0);
	assert_int_equal(t_ksm_set("sleep_millisecs", "1"), 0);
	km = build(tags);
	assert_int_equal(madvise(km, NPAGES * TPAGE, MADV_MERGEABLE), 0);
	assert_int_equal(t_ksm_set("run", "1"), 0);
	assert_int_equal(kernel_settle(&k), 0);
	t_ksm_set("run", "2");
	t_ksm_set("run", "0");
	munmap(km, NPAGES * TPAGE);

	/* the engine, same knobs */
	assert_int_equal(samepage_set("run", "2"), 0);
	assert_int_equal(samepage_set("run", "0"), 0);
	assert_int_equal(samepage_set("max_page_sharing", mps), 0);
	assert_int_equal(samepage_set("use_zero_pages", zero), 0);
	assert_int_equal(samepage_set("smart_scan", "0"), 0);
	assert_int_equal(samepage_set("pages_to_scan", "5000"), 0);
	assert_int_equal(samepage_set("sleep_millisecs", "1"), 0);
	em = build(tags);
	assert_int_equal(samepage_madvise(em, NPAGES * TPAGE, SAMEPAGE_MERGEABLE), 0);
	assert_int_equal(samepage_set("run", "1"), 0);
	assert_int_equal(engine_settle(&e), 0);
	/* run=2 undoes everything; merging again reaches the same state */
	assert_int_equal(samepage_set("run", "2"), 0);
	engine_counters(&e2);
	assert_int_equal(e2.shared + e2.sharing + e2.chains + e2.dups + e2.zero, 0);
	assert_int_equal(samepage_set("run", "1"), 0);
	assert_int_equal(engine_settle(&e2), 0);
	assert_true(same(&e, &e2));
	assert_int_equal(samepage_set("run", "0"), 0);
	/* and the memory still holds what was written */
	for (size_t i = 0; i < NPAGES; i++)
		assert_true(t_check(em + i * TPAGE, tags[i]));
	assert_int_equal(samepage_munmap(em, NPAGES * TPAGE), 0);

	print("kernel", &k);
	print("engine", &e);
	assert_int_equal(e.shared, k.shared);
	assert_int_equal(e.sharing, k.sharing);
	assert_int_equal(e.chains, k.chains);
	assert_int_equal(e.dups, k.dups);
	assert_int_equal(e.zero, k.zero);
	free(tags);
}

struct config {
	const char *mps, *zero;
};

static void diff(void **state)
{
	const struct config *cfg = *state;

	run_config(cfg->mps, cfg->zero);
}

static int setup(void **state)
{
	(void)state;
	t_ksm_save();
	return 0;
}

int main(void)
{
	static struct config cfg[] = {{"256", "0"}, {"256", "1"}, {"2", "0"}, {"100", "1"}, {"1000", "0"}};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_prestate(diff, &cfg[0]), cmocka_unit_test_prestate(diff, &cfg[1]),
		cmocka_unit_test_prestate(diff, &cfg[2]), cmocka_unit_test_prestate(diff, &cfg[3]),
		cmocka_unit_test_prestate(diff, &cfg[4]),
	};

	if (!t_ksm_available()) {
		printf("the kernel's KSM is not writable here (not root, or no KSM): skipped\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, NULL);
}
