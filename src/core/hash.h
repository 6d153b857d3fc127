/* SPDX-License-Identifier: MIT */
/*
 * hash.h - what a page's content is, as every scan of pages sees it (the
 * core's scan.c, and the estimator through model.h's key): its content hash,
 * XXH3 64-bit (libxxhash), and whether it is all zeros.
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
/* 1 if the page is all zeros, by its bytes */
int sp_page_zero_bytes(const void *page);
/* 1 if the page, whose sp_hash_page is hash, is all zeros: how a scan
 * classifies a page (any other hash answers at once, the zero page's hash
 * is proved by the bytes) */
static inline int sp_page_zero(const void *page, uint64_t hash)
{
	return hash == sp_hash_zero() && sp_page_zero_bytes(page);
}

/* The index key of a page on NUMA node nid (merge_across_nodes=0). */
static inline uint64_t sp_node_key(uint64_t hash, int nid)
{
	return hash ^ ((uint64_t)(nid + 1) * 0x9E3779B97F4A7C15ull);
}

/* internal: the AVX2 and AVX-512 builds of the same function */
uint64_t sp_hash_page_avx2(const void *page);
uint64_t sp_hash_page_avx512(const void *page);

#endif /* SP_HASH_H */
