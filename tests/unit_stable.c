/* SPDX-License-Identifier: MIT */
/*
 * unit_stable.c - the stable index grows and prunes in steps.
 *
 * Doubling the index moves its groups a few buckets per insert (moving them
 * all at once took up to 4.8 ms of one scan call with 131 thousand groups),
 * and a prune pass over the nodes is taken in slices. Proves that every
 * group stays findable, exactly once, at every step of a move, with groups
 * added and removed during it; that a move is spread over many inserts and
 * ends; and that a prune pass in slices collapses every chain left with one
 * dup, as a pass in one go does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/stable.h"

#define N 20000

static uint64_t key(uint32_t i)
{
	uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15ull + 12345;

	x ^= x >> 31;
	x *= 0xBF58476D1CE4E5B9ull;
	return x ^ (x >> 29);
}

/* Group of hash, by walking first/next: exactly one, with that hash. */
static uint32_t find_once(const struct sp_stable *st, uint64_t hash)
{
	uint32_t g = sp_stable_first(st, hash), found = g;

	if (!g)
		return SP_NONE;
	assert_true(st->nodes[g].hash == hash);
	assert_int_equal(sp_stable_next(st, g, hash), SP_NONE);
	return found;
}

static void test_growth_is_spread(void **state)
{
	struct sp_stable st;
	static uint32_t id[N];
	uint32_t i, inserts_while_moving = 0, grows = 0, longest = 0, cur = 0;

	(void)state;
	assert_int_equal(sp_stable_init(&st), 0);
	for (i = 0; i < N; i++) {
		int was = st.old != NULL;
		uint32_t mask = st.mask;

		id[i] = sp_stable_add(&st, key(i), i, SP_NONE, 0);
		assert_int_not_equal(id[i], SP_NONE);
		sp_stable_get(&st, id[i]);
		if (st.mask != mask)
			grows++;
		if (st.old) {
			inserts_while_moving++;
			cur = was ? cur + 1 : 1;
			longest = cur > longest ? cur : longest;
		}
		/* every third group added goes again, some of them mid-move */
		if (i % 3 == 2)
			assert_int_equal(sp_stable_put(&st, id[i - 1]), i - 1);
		if (i % 997 == 0 || (st.old && i % 7 == 0)) {
			for (uint32_t j = 0; j <= i; j++) {
				uint32_t g = find_once(&st, key(j));

				if (j % 3 == 1 && j + 1 <= i)
					assert_int_equal(g, SP_NONE);
				else
					assert_int_equal(g, id[j]);
			}
		}
	}
	assert_true(grows >= 8);
	/* the last doubling moves thousands of buckets, a few per insert */
	assert_true(longest >= 1000);
	assert_true(inserts_while_moving > 0);
	assert_int_equal(st.groups, N - N / 3);
	for (i = 0; i < N; i++) {
		if (i % 3 == 1)
			continue;
		assert_int_equal(find_once(&st, key(i)), id[i]);
	}
	sp_stable_destroy(&st);
}

static void release(void *ctx, uint32_t pg)
{
	(void)ctx;
	(void)pg;
}

static void test_clear_mid_move(void **state)
{
	struct sp_stable st;
	uint32_t i;

	(void)state;
	assert_int_equal(sp_stable_init(&st), 0);
	for (i = 0; !st.old || st.moved < 2; i++)
		sp_stable_get(&st, sp_stable_add(&st, key(i), i, SP_NONE, 0));
	sp_stable_clear(&st, release, NULL);
	assert_null(st.old);
	for (i = 0; i < 1000; i++)
		assert_int_equal(sp_stable_first(&st, key(i)), SP_NONE);
	for (i = 0; i < 1000; i++)
		sp_stable_get(&st, sp_stable_add(&st, key(i), i, SP_NONE, 0));
	for (i = 0; i < 1000; i++)
		assert_int_not_equal(find_once(&st, key(i)), SP_NONE);
	sp_stable_destroy(&st);
}

/* Chains of two dups each; one dup of every other chain goes. A prune in
 * slices of 7 nodes collapses exactly those chains. */
static void test_prune_in_slices(void **state)
{
	struct sp_stable st;
	enum { CHAINS = 500 };
	uint32_t a[CHAINS], b[CHAINS], from = 0, calls = 0;
	uint64_t collapsed = 0;

	(void)state;
	assert_int_equal(sp_stable_init(&st), 0);
	for (uint32_t i = 0; i < CHAINS; i++) {
		a[i] = sp_stable_add(&st, key(i), 2 * i, SP_NONE, 0);
		sp_stable_get(&st, a[i]);
		b[i] = sp_stable_add(&st, key(i), 2 * i + 1, a[i], 0);
		sp_stable_get(&st, b[i]);
	}
	assert_int_equal(st.chains, CHAINS);
	for (uint32_t i = 0; i < CHAINS; i += 2)
		assert_int_equal(sp_stable_put(&st, b[i]), 2 * i + 1);
	do {
		collapsed += sp_stable_prune(&st, &from, 7);
		calls++;
	} while (from);
	assert_int_equal(collapsed, CHAINS / 2);
	assert_true(calls > 100);
	assert_int_equal(st.chains, CHAINS / 2);
	assert_int_equal(st.dups, CHAINS);
	for (uint32_t i = 0; i < CHAINS; i++) {
		uint32_t g = find_once(&st, key(i));

		if (i % 2 == 0) {
			assert_int_equal(g, a[i]); /* a plain node again */
		} else {
			assert_true(st.nodes[g].flags & SP_SN_CHAIN);
			assert_int_equal(sp_stable_group_page(&st, g) / 2, i);
		}
	}
	/* no chains: a pass ends at once */
	sp_stable_clear(&st, release, NULL);
	from = 0;
	assert_int_equal(sp_stable_prune(&st, &from, 7), 0);
	assert_int_equal(from, 0);
	sp_stable_destroy(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_growth_is_spread),
		cmocka_unit_test(test_clear_mid_move),
		cmocka_unit_test(test_prune_in_slices),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
