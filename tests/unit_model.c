/* SPDX-License-Identifier: MIT */
/*
 * unit_model.c - the estimator's model of KSM (core/model.c), number for
 * number: the outcome of one content at the max_page_sharing boundaries,
 * whole workloads whose kernel counters are known (16 contents x 1024 pages
 * at max_page_sharing 256 settle at 64 shared, 16320 sharing, 16 chains,
 * 64 dups on Linux 6.18), zero pages, NUMA keys, and the in-place sort.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/hash.h"
#include "core/model.h"

static void group(uint64_t k, int zero, uint32_t m, int uzp, uint64_t shared, uint64_t sharing, uint64_t unshared,
		  uint64_t zp, int chain)
{
	struct sp_model_knobs kn = {m, uzp, 0};
	struct sp_model_group g;

	sp_model_group(k, zero, &kn, &g);
	assert_int_equal(g.shared, shared);
	assert_int_equal(g.sharing, sharing);
	assert_int_equal(g.unshared, unshared);
	assert_int_equal(g.zero, zp);
	assert_int_equal(g.chain, chain);
}

static void test_group_boundaries(void **state)
{
	(void)state;
	group(1, 0, 256, 0, 0, 0, 1, 0, 0);
	group(2, 0, 256, 0, 1, 1, 0, 0, 0);
	group(256, 0, 256, 0, 1, 255, 0, 0, 0);
	/* a single page left when the only dup is full stays unshared */
	group(257, 0, 256, 0, 1, 255, 1, 0, 0);
	group(258, 0, 256, 0, 2, 256, 0, 0, 1);
	group(512, 0, 256, 0, 2, 510, 0, 0, 1);
	group(513, 0, 256, 0, 2, 510, 1, 0, 1);
	group(1024, 0, 256, 0, 4, 1020, 0, 0, 1);
	group(1000, 0, 256, 0, 4, 996, 0, 0, 1); /* 256 * 3 + 232 */
	group(300, 0, 256, 0, 2, 298, 0, 0, 1);
	/* max_page_sharing 2: pairs */
	group(5, 0, 2, 0, 2, 2, 1, 0, 1);
	group(2, 0, 2, 0, 1, 1, 0, 0, 0);
	/* zero pages: with use_zero_pages each goes to the zero page alone */
	group(1, 1, 256, 1, 0, 0, 0, 1, 0);
	group(700, 1, 256, 1, 0, 0, 0, 700, 0);
	/* without, they are an ordinary content */
	group(700, 1, 256, 0, 3, 697, 0, 0, 1);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void shuffle(struct sp_model_page *p, size_t n, uint64_t seed)
{
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = rnd(&seed) % (i + 1);
		struct sp_model_page t = p[i];

		p[i] = p[j];
		p[j] = t;
	}
}

static uint64_t fake_hash(uint32_t tag)
{
	uint64_t s = tag * 0x9E3779B97F4A7C15ull + 1;

	rnd(&s);
	return rnd(&s);
}

/* the kernel's own result for this workload (DESIGN.md) */
static void test_16x1024(void **state)
{
	struct sp_model_knobs kn = {256, 0, 0};
	struct sp_model_result r;
	size_t n = 16 * 1024;
	struct sp_model_page *p = calloc(n, sizeof(*p));

	(void)state;
	for (size_t i = 0; i < n; i++) {
		p[i].key = sp_model_key(fake_hash((uint32_t)(i % 16) + 1), 0, -1, &kn);
		p[i].vma = (uint32_t)(i / 4096);
		p[i].off = (uint32_t)i;
	}
	shuffle(p, n, 7);
	sp_model_run(p, n, &kn, &r, NULL, NULL);
	assert_int_equal(r.pages_shared, 64);
	assert_int_equal(r.pages_sharing, 16320);
	assert_int_equal(r.stable_node_chains, 16);
	assert_int_equal(r.stable_node_dups, 64);
	assert_int_equal(r.ksm_zero_pages, 0);
	assert_int_equal(r.pages_scanned, n);
	assert_int_equal(r.contents, 16);
	assert_int_equal(r.general_profit, (int64_t)16320 * 4096 - (int64_t)n * 64);
	free(p);
}

/* ksm_diff.c's workload: groups of 1000, 300, 257, 256, 2 copies, 700 zero
 * pages, 400 unique ones */
static void mixed(uint32_t m, int uzp, struct sp_model_result *r)
{
	static const size_t sizes[] = {1000, 300, 257, 256, 2};
	struct sp_model_knobs kn = {m, uzp, 0};
	size_t n = 1000 + 300 + 257 + 256 + 2 + 700 + 400, k = 0;
	struct sp_model_page *p = calloc(n, sizeof(*p));
	uint64_t zh = sp_hash_zero();

	for (int g = 0; g < 5; g++)
		for (size_t i = 0; i < sizes[g]; i++, k++)
			p[k].key = sp_model_key(fake_hash((uint32_t)g + 1), 0, -1, &kn);
	for (size_t i = 0; i < 700; i++, k++)
		p[k].key = sp_model_key(zh, 1, -1, &kn);
	for (size_t i = 0; i < 400; i++, k++)
		p[k].key = sp_model_key(fake_hash(100 + (uint32_t)i), 0, -1, &kn);
	for (size_t i = 0; i < n; i++)
		p[i].off = (uint32_t)i;
	shuffle(p, n, 12345);
	sp_model_run(p, n, &kn, r, NULL, NULL);
	free(p);
}

static void test_mixed(void **state)
{
	struct sp_model_result r;

	(void)state;
	mixed(256, 0, &r);
	/* 1000: 4 dups (996); 300: 2 (298); 257: 1 (255) + 1 left; 256: 1
	 * (255); 2: 1 (1); zeros 700: 3 dups (697) */
	assert_int_equal(r.pages_shared, 4 + 2 + 1 + 1 + 1 + 3);
	assert_int_equal(r.pages_sharing, 996 + 298 + 255 + 255 + 1 + 697);
	assert_int_equal(r.stable_node_chains, 3);
	assert_int_equal(r.stable_node_dups, 4 + 2 + 3);
	assert_int_equal(r.pages_unshared, 1 + 400);
	mixed(256, 1, &r);
	assert_int_equal(r.ksm_zero_pages, 700);
	assert_int_equal(r.pages_shared, 4 + 2 + 1 + 1 + 1);
	assert_int_equal(r.pages_sharing, 996 + 298 + 255 + 255 + 1);
	assert_int_equal(r.stable_node_chains, 2);
	mixed(2, 0, &r);
	/* pairs: 500 + 150 + 128 (+1) + 128 + 1 + 350 */
	assert_int_equal(r.pages_shared, 500 + 150 + 128 + 128 + 1 + 350);
	assert_int_equal(r.pages_sharing, 500 + 150 + 128 + 128 + 1 + 350);
	assert_int_equal(r.pages_unshared, 1 + 400);
}

/* merge_across_nodes=0: the same content on two nodes is two contents */
static void test_nodes(void **state)
{
	struct sp_model_knobs kn = {256, 0, 0};
	struct sp_model_page p[6];
	struct sp_model_result r;
	uint64_t h = fake_hash(3), zh = sp_hash_zero();

	(void)state;
	for (int i = 0; i < 6; i++) {
		p[i].key = sp_model_key(h, 0, i < 3 ? 0 : 1, &kn);
		p[i].vma = 0;
		p[i].off = (uint32_t)i;
	}
	sp_model_run(p, 6, &kn, &r, NULL, NULL);
	assert_int_equal(r.pages_shared, 2);
	assert_int_equal(r.pages_sharing, 4);
	assert_int_equal(r.stable_node_chains, 0); /* one per node's tree */
	kn.use_zero_pages = 1;
	assert_int_equal(sp_model_key(zh, 1, 0, &kn), SP_MODEL_ZERO);
	assert_int_equal(sp_model_key(zh, 1, 1, &kn), SP_MODEL_ZERO);
	assert_int_not_equal(sp_model_key(h, 0, 0, &kn), sp_model_key(h, 0, 1, &kn));
	assert_int_not_equal(sp_model_key(0, 0, -1, &kn), SP_MODEL_ZERO);
}

struct visit_sum {
	uint64_t pages, saved, calls;
};

static void sum_visit(void *ctx, const struct sp_model_page *pg, uint64_t k, const struct sp_model_group *g)
{
	struct visit_sum *s = ctx;

	for (uint64_t i = 1; i < k; i++) {
		assert_true(pg[i].key == pg[0].key);
		assert_true(pg[i - 1].vma < pg[i].vma || (pg[i - 1].vma == pg[i].vma && pg[i - 1].off < pg[i].off));
	}
	s->pages += k;
	s->saved += g->sharing + g->zero;
	s->calls++;
}

/* the sort: radix pass plus introsort, with many equal keys */
static void test_sort_and_visit(void **state)
{
	struct sp_model_knobs kn = {256, 1, 0};
	size_t n = 200000;
	struct sp_model_page *p = calloc(n, sizeof(*p));
	struct sp_model_result r;
	struct visit_sum s = {0, 0, 0};
	uint64_t seed = 99;

	(void)state;
	for (size_t i = 0; i < n; i++) {
		uint64_t x = rnd(&seed);

		/* a third zero, a third in 1000 contents, a third unique */
		p[i].key = x % 3 == 0 ? SP_MODEL_ZERO : x % 3 == 1 ? fake_hash((uint32_t)(x % 1000)) : x | 1;
		p[i].vma = (uint32_t)(i % 7);
		p[i].off = (uint32_t)i;
	}
	sp_model_run(p, n, &kn, &r, sum_visit, &s);
	for (size_t i = 1; i < n; i++)
		assert_true(p[i - 1].key < p[i].key ||
			    (p[i - 1].key == p[i].key &&
			     (p[i - 1].vma < p[i].vma || (p[i - 1].vma == p[i].vma && p[i - 1].off < p[i].off))));
	assert_int_equal(s.pages, n);
	assert_int_equal(s.calls, r.contents);
	assert_int_equal(s.saved, r.pages_sharing + r.ksm_zero_pages);
	free(p);
}

/* all-zero subpages of THPs (Linux 6.12+): freed by the split, in no KSM
 * counter, without rmap items; the rest of the THP merges as 4 KiB pages */
static void thp_case(int uzp, int split, struct sp_model_result *r)
{
	struct sp_model_knobs kn = {256, uzp, split};
	struct sp_model_page p[119];
	uint64_t zh = sp_hash_zero();
	size_t k = 0;

	for (int i = 0; i < 10; i++) /* zero subpages of a THP */
		p[k++].key = sp_model_key(zh, SP_MODEL_ALL_ZERO_THP, -1, &kn);
	for (int i = 0; i < 5; i++) /* zero pages outside THPs */
		p[k++].key = sp_model_key(zh, SP_MODEL_ALL_ZERO, -1, &kn);
	for (int i = 0; i < 4; i++) /* one content four times, in a THP */
		p[k++].key = sp_model_key(fake_hash(7), SP_MODEL_NOT_ZERO, -1, &kn);
	while (k < 119) /* unique */
		p[k].key = sp_model_key(fake_hash(1000 + (uint32_t)k), SP_MODEL_NOT_ZERO, -1, &kn), k++;
	for (size_t i = 0; i < k; i++) {
		p[i].vma = 0;
		p[i].off = (uint32_t)i;
	}
	sp_model_run(p, k, &kn, r, NULL, NULL);
	assert_int_equal(r->pages_scanned, 119);
}

static void test_thp_zero(void **state)
{
	struct sp_model_result r;
	struct sp_model_knobs on = {256, 0, 1}, off = {256, 0, 0};
	uint64_t zh = sp_hash_zero();

	(void)state;
	/* the THP kind only matters while the rule is on */
	assert_int_equal(sp_model_key(zh, SP_MODEL_ALL_ZERO_THP, -1, &on), SP_MODEL_THP_ZERO);
	assert_int_equal(sp_model_key(zh, SP_MODEL_ALL_ZERO_THP, -1, &off),
			 sp_model_key(zh, SP_MODEL_ALL_ZERO, -1, &off));
	assert_int_not_equal(sp_model_key(SP_MODEL_THP_ZERO, SP_MODEL_NOT_ZERO, -1, &on), SP_MODEL_THP_ZERO);

	thp_case(0, 1, &r); /* zero pages outside THPs merge as one content */
	assert_int_equal(r.thp_zero_pages, 10);
	assert_int_equal(r.pages_shared, 2);
	assert_int_equal(r.pages_sharing, 4 + 3);
	assert_int_equal(r.ksm_zero_pages, 0);
	assert_int_equal(r.pages_unshared, 100);
	assert_int_equal(r.general_profit, 7 * 4096 - 109 * SP_MODEL_RMAP_ITEM);

	thp_case(1, 1, &r); /* use_zero_pages: those go to the zero page */
	assert_int_equal(r.thp_zero_pages, 10);
	assert_int_equal(r.ksm_zero_pages, 5);
	assert_int_equal(r.pages_shared, 1);
	assert_int_equal(r.pages_sharing, 3);
	assert_int_equal(r.general_profit, (3 + 5) * 4096 - 109 * SP_MODEL_RMAP_ITEM);

	thp_case(0, 0, &r); /* before 6.12: all fifteen zero pages merge */
	assert_int_equal(r.thp_zero_pages, 0);
	assert_int_equal(r.pages_shared, 2);
	assert_int_equal(r.pages_sharing, 14 + 3);
	assert_int_equal(r.general_profit, 17 * 4096 - 119 * SP_MODEL_RMAP_ITEM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_group_boundaries),
		cmocka_unit_test(test_16x1024),
		cmocka_unit_test(test_mixed),
		cmocka_unit_test(test_nodes),
		cmocka_unit_test(test_sort_and_visit),
		cmocka_unit_test(test_thp_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
