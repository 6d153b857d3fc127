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

/* internal: the AVX2 build of the same function */
uint64_t sp_hash_page_avx2(const void *page);

#endif /* SP_HASH_H */
