/* SPDX-License-Identifier: MIT */
/*
 * unit_hash.c - every SIMD build of the page hash gives XXH3's value.
 *
 * The index and the volatility filter compare hashes computed at different
 * times, possibly by different builds (the dispatcher picks one per
 * process), so the generic, AVX2 and AVX-512 builds must agree bit for bit
 * with libxxhash's XXH3_64bits; the cached zero-page hash too. The all-zero
 * test that the scan and the estimator classify pages with answers by the
 * bytes, whatever hash it is given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "core/hash.h"

#define PAGES 64

static uint8_t *pages(void)
{
	uint8_t *p = aligned_alloc(4096, PAGES * 4096);
	uint64_t x = 0x9E3779B97F4A7C15ull;

	assert_non_null(p);
	for (size_t i = 0; i < PAGES * 4096; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		p[i] = (uint8_t)x;
	}
	memset(p, 0, 4096);	      /* page 0: zeros */
	memset(p + 4096, 0xff, 4096); /* page 1: ones */
	p[2 * 4096 + 4095] = 1;	      /* page 2: differs from 3 in the last byte */
	memcpy(p + 3 * 4096, p + 2 * 4096, 4095);
	p[3 * 4096 + 4095] = 2;
	return p;
}

static void test_dispatched_is_xxh3(void **state)
{
	uint8_t *p = pages();

	(void)state;
	for (int i = 0; i < PAGES; i++)
		assert_int_equal(sp_hash_page(p + i * 4096), XXH3_64bits(p + i * 4096, 4096));
	assert_int_not_equal(sp_hash_page(p + 2 * 4096), sp_hash_page(p + 3 * 4096));
	free(p);
}

static void test_simd_builds_agree(void **state)
{
	uint8_t *p = pages();
	int avx2, avx512;

	(void)state;
	__builtin_cpu_init();
	avx2 = __builtin_cpu_supports("avx2");
	avx512 = __builtin_cpu_supports("avx512f");
	print_message("avx2 %s, avx512f %s\n", avx2 ? "checked" : "absent", avx512 ? "checked" : "absent");
	for (int i = 0; i < PAGES; i++) {
		uint64_t want = XXH3_64bits(p + i * 4096, 4096);

		if (avx2)
			assert_int_equal(sp_hash_page_avx2(p + i * 4096), want);
		if (avx512)
			assert_int_equal(sp_hash_page_avx512(p + i * 4096), want);
	}
	free(p);
}

static void test_zero_hash(void **state)
{
	static const uint8_t zero[4096];

	(void)state;
	assert_int_equal(sp_hash_zero(), XXH3_64bits(zero, 4096));
	assert_int_equal(sp_hash_zero(), sp_hash_page(zero)); /* cached: same again */
}

static void test_page_zero(void **state)
{
	uint8_t *p = pages();
	uint8_t *last = aligned_alloc(4096, 4096);

	(void)state;
	assert_non_null(last);
	memset(last, 0, 4096);
	last[4095] = 1; /* zeros but the last byte */
	assert_true(sp_page_zero_bytes(p));
	assert_true(sp_page_zero(p, sp_hash_page(p)));
	for (int i = 1; i < PAGES; i++) {
		assert_false(sp_page_zero_bytes(p + i * 4096));
		assert_false(sp_page_zero(p + i * 4096, sp_hash_page(p + i * 4096)));
	}
	assert_false(sp_page_zero_bytes(last));
	/* a page that is not all zeros is not, even under the zero hash */
	assert_false(sp_page_zero(last, sp_hash_zero()));
	assert_false(sp_page_zero(p, sp_hash_page(last))); /* another hash: no look */
	free(last);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dispatched_is_xxh3),
		cmocka_unit_test(test_simd_builds_agree),
		cmocka_unit_test(test_zero_hash),
		cmocka_unit_test(test_page_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
