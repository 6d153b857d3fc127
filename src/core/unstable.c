/* SPDX-License-Identifier: MIT */
/*
 * unstable.c - chained hash index of unique pages, rebuilt every full scan.
 *
 * Bucket count is the power of two at or above 3/4 of the expected entries,
 * so chains average at most 1.33 items and the index costs 3 to 6 bytes per
 * tracked page. A removed or re-generated item is never reachable: reset()
 * clears the buckets and moves to a new generation, and every walk stops at
 * items of another generation.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/unstable.h"

#define MIN_BUCKETS 64u

int sp_unstable_init(struct sp_unstable *u)
{
	memset(u, 0, sizeof(*u));
	u->buckets = calloc(MIN_BUCKETS, sizeof(uint32_t));
	if (!u->buckets)
		return -ENOMEM;
	u->mask = MIN_BUCKETS - 1;
	return 0;
}

void sp_unstable_destroy(struct sp_unstable *u)
{
	free(u->buckets);
	memset(u, 0, sizeof(*u));
}

int sp_unstable_reset(struct sp_unstable *u, uint64_t expect)
{
	uint64_t want = MIN_BUCKETS, have = (uint64_t)u->mask + 1;
	uint32_t *nb;

	u->gen++;
	u->count = 0;
	while (want < expect * 3 / 4 && want < (1ull << 31))
		want <<= 1;
	/* resize when too small, or more than 4x too large (memory comes back) */
	if (want > have || want * 4 < have) {
		nb = calloc(want, sizeof(uint32_t));
		if (nb) {
			free(u->buckets);
			u->buckets = nb;
			u->mask = (uint32_t)(want - 1);
			return 0;
		}
		memset(u->buckets, 0, have * sizeof(uint32_t));
		return -ENOMEM;
	}
	memset(u->buckets, 0, have * sizeof(uint32_t));
	return 0;
}

/* keep in step with sp_unstable_prefetch() */
static inline uint32_t bucket_of(const struct sp_unstable *u, uint64_t hash)
{
	return (uint32_t)(hash ^ (hash >> 32)) & u->mask;
}

int64_t sp_unstable_find(const struct sp_unstable *u, const struct sp_rmap *rm, uint64_t hash, uint32_t self)
{
	uint32_t ref = u->buckets[bucket_of(u, hash)];

	while (ref) {
		uint32_t id = ref - 1;
		const struct sp_item *it = &rm->items[id];

		if (!sp_unstable_linked(u, it))
			break; /* stale chain: cannot happen, but never walk into it */
		if (it->hash == hash && id != self)
			return id;
		ref = it->link;
	}
	return -1;
}

void sp_unstable_insert(struct sp_unstable *u, struct sp_rmap *rm, uint32_t id)
{
	struct sp_item *it = &rm->items[id];
	uint32_t *b = &u->buckets[bucket_of(u, it->hash)];

	it->link = *b;
	it->gen = u->gen;
	it->flags |= SP_IT_UNSTABLE;
	*b = id + 1;
	u->count++;
}

void sp_unstable_remove(struct sp_unstable *u, struct sp_rmap *rm, uint32_t id)
{
	struct sp_item *it = &rm->items[id];
	uint32_t *ref;

	if (!sp_unstable_linked(u, it))
		return;
	for (ref = &u->buckets[bucket_of(u, it->hash)]; *ref; ref = &rm->items[*ref - 1].link) {
		if (*ref == id + 1) {
			*ref = it->link;
			it->link = 0;
			it->gen = (uint8_t)(u->gen - 1); /* no longer linked */
			u->count--;
			return;
		}
	}
}

uint64_t sp_unstable_bytes(const struct sp_unstable *u)
{
	return ((uint64_t)u->mask + 1) * sizeof(uint32_t);
}
