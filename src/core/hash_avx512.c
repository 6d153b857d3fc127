/* SPDX-License-Identifier: MIT */
/* hash_avx512.c - the same XXH3, compiled with -mavx512f (see CMakeLists.txt). */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/hash.h"

uint64_t sp_hash_page_avx512(const void *page)
{
	return XXH3_64bits(page, 4096);
}
