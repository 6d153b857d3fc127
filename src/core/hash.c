/* SPDX-License-Identifier: MIT */
/* hash.c - XXH3 of a page, dispatched to the best SIMD build at first use. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/hash.h"

static uint64_t hash_generic(const void *page)
{
	return XXH3_64bits(page, 4096);
}

static uint64_t (*hash_impl)(const void *);

uint64_t sp_hash_page(const void *page)
{
	uint64_t (*f)(const void *) = __atomic_load_n(&hash_impl, __ATOMIC_RELAXED);

	if (__builtin_expect(!f, 0)) {
		__builtin_cpu_init();
		f = __builtin_cpu_supports("avx2") ? sp_hash_page_avx2 : hash_generic;
		__atomic_store_n(&hash_impl, f, __ATOMIC_RELAXED);
	}
	return f(page);
}

uint64_t sp_hash_zero(void)
{
	static const unsigned char zero[4096];

	return hash_generic(zero);
}
