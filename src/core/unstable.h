/* SPDX-License-Identifier: MIT */
/*
 * unstable.h - the unstable index: pages seen unchanged for two visits that
 * have no duplicate yet, keyed by content hash.
 *
 * Like the kernel's unstable tree it is rebuilt on every full scan: reset()
 * empties it in O(buckets) by bumping a generation, without touching items.
 * Buckets hold item ids + 1; an item chains to the next through its link
 * field, so the index costs 4 bytes per bucket and nothing per entry. A hit
 * is confirmed by the caller with memcmp under freeze, never trusted.
 */
#ifndef SP_UNSTABLE_H
#define SP_UNSTABLE_H

#include <stdint.h>

#include "core/rmap.h"

struct sp_unstable {
	uint32_t *buckets;
	uint32_t mask;	/* buckets - 1; buckets is a power of two */
	uint8_t gen;	/* items with this gen and SP_IT_UNSTABLE are linked */
	uint64_t count; /* entries linked now */
};

int sp_unstable_init(struct sp_unstable *u);
void sp_unstable_destroy(struct sp_unstable *u);
/* Empties the index, sized for up to `expect` entries. 0 or -ENOMEM (the
 * index is then empty at its old size, still usable). */
int sp_unstable_reset(struct sp_unstable *u, uint64_t expect);
/* First linked id (other than self) whose item hash equals hash; -1 none. */
int64_t sp_unstable_find(const struct sp_unstable *u, const struct sp_rmap *rm, uint64_t hash, uint32_t self);
void sp_unstable_insert(struct sp_unstable *u, struct sp_rmap *rm, uint32_t id);
/* Unlinks id if linked in this generation. */
void sp_unstable_remove(struct sp_unstable *u, struct sp_rmap *rm, uint32_t id);

static inline int sp_unstable_linked(const struct sp_unstable *u, const struct sp_item *it)
{
	return (it->flags & SP_IT_UNSTABLE) && it->gen == u->gen;
}

uint64_t sp_unstable_bytes(const struct sp_unstable *u);

/* Starts loading the bucket of hash into the cache. */
static inline void sp_unstable_prefetch(const struct sp_unstable *u, uint64_t hash)
{
	__builtin_prefetch(&u->buckets[(uint32_t)(hash ^ (hash >> 32)) & u->mask]);
}

#endif /* SP_UNSTABLE_H */
