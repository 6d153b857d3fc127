/* SPDX-License-Identifier: MIT */
/* hash_avx2.c - the same XXH3, compiled with -mavx2 (see CMakeLists.txt). */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/hash.h"

uint64_t sp_hash_page_avx2(const void *page)
{
	return XXH3_64bits(page, 4096);
}
