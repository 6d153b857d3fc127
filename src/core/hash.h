/* SPDX-License-Identifier: MIT */
/*
 * hash.h - the content hash of a page: XXH3 64-bit (libxxhash).
 *
 * One pass serves as the volatility checksum and as the index key. The
 * widest vector unit the CPU has is chosen once, at first use; every variant
 * returns the same value (XXH3 is defined independently of the SIMD width).
 */
#ifndef SP_HASH_H
#define SP_HASH_H

#include <stdint.h>

uint64_t sp_hash_page(const void *page);
/* the hash of an all-zero page */
uint64_t sp_hash_zero(void);

/* The index key of a page on NUMA node nid (merge_across_nodes=0). */
static inline uint64_t sp_node_key(uint64_t hash, int nid)
{
	return hash ^ ((uint64_t)(nid + 1) * 0x9E3779B97F4A7C15ull);
}

/* internal: the AVX2 and AVX-512 builds of the same function */
uint64_t sp_hash_page_avx2(const void *page);
uint64_t sp_hash_page_avx512(const void *page);

#endif /* SP_HASH_H */
