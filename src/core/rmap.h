/* SPDX-License-Identifier: MIT */
/*
 * rmap.h - tracked regions and one compact item per tracked page.
 *
 * Every tracked page owns a 16-byte struct sp_item (the kernel's rmap_item is
 * 64 bytes). Items live in one array indexed by a 32-bit page id; a region
 * owns the contiguous ids [first_id, first_id + npages), so a page's address
 * is implicit (start + (id - first_id) pages) and is never stored. The
 * unstable index links items by id, which keeps its entries at 4 bytes.
 *
 * Invariants:
 *   - regions[] is sorted by first_id; their id ranges never overlap;
 *   - ids not owned by a region are in the free list and their items are 0;
 *   - an item with SP_IT_STABLE has link = its stable node id and counts one
 *     sharer of that node; otherwise, with SP_IT_UNSTABLE and gen equal to
 *     the unstable index's generation, link chains the index's bucket.
 */
#ifndef SP_RMAP_H
#define SP_RMAP_H

#include <stdint.h>

enum {
	SP_IT_SEEN = 1 << 0,	 /* visited while present: an rmap item          */
	SP_IT_CHECKED = 1 << 1,	 /* hash holds the content of the last visit     */
	SP_IT_STABLE = 1 << 2,	 /* merged: link = stable node id                */
	SP_IT_UNSTABLE = 1 << 3, /* in the unstable index (counted in pages_unshared
				  * unless SP_IT_PARKED)                       */
	SP_IT_FILEMAP = 1 << 4,	 /* the page sits in a store mapping (ever remapped) */
	SP_IT_ZERO = 1 << 5,	 /* dropped to the kernel's zero page            */
	SP_IT_PARKED = 1 << 6,	 /* with SP_IT_UNSTABLE: skipped by smart_scan,
				  * indexed by its last hash, not counted     */
	SP_IT_ABSENT = 1 << 7,	 /* with SP_IT_STABLE: not present at its last
				  * query (store page not faulted in)          */
};

struct sp_item {
	uint64_t hash; /* index key of the content at the last visit:
			* XXH3, mixed with the NUMA node when
			* merge_across_nodes=0                       */
	uint32_t link; /* stable node id, or next id + 1 in a bucket */
	uint8_t flags; /* SP_IT_*                                    */
	uint8_t gen;   /* unstable index generation it was put in    */
	uint8_t age;   /* smart scan: consecutive unique visits      */
	uint8_t skip;  /* smart scan: visits left to skip            */
};
_Static_assert(sizeof(struct sp_item) == 16, "sp_item must stay 16 bytes");

struct sp_region {
	uintptr_t start;
	uint64_t npages;
	uint32_t first_id;
	uint32_t space; /* the address space it belongs to (sp_core_add_space) */
};

struct sp_idrange {
	uint32_t first, n;
};

struct sp_rmap {
	struct sp_item *items;
	uint32_t nids; /* ids handed out so far (high-water mark) */
	uint32_t cap;  /* items allocated                          */
	struct sp_region *regions;
	uint32_t nregions, regions_cap;
	struct sp_idrange *free;
	uint32_t nfree, free_cap;
	uint64_t tracked; /* pages in all regions                     */
};

int sp_rmap_init(struct sp_rmap *rm);
void sp_rmap_destroy(struct sp_rmap *rm);

/* Adds a region of address space `space`; returns its index in regions[]
 * (>= 0) or -ENOMEM/-ERANGE. */
int sp_rmap_add(struct sp_rmap *rm, uint32_t space, uintptr_t start, uint64_t npages);
/* Removes pages [off, off + n) of region r, splitting it if needed; frees
 * their ids (items are zeroed). *delta gets the change in the number of
 * regions (-1, 0 or +1). Returns 0 or -ENOMEM / -EINVAL. */
int sp_rmap_cut(struct sp_rmap *rm, uint32_t r, uint64_t off, uint64_t n, int *delta);

/* Region owning id, or -1. */
int sp_rmap_region_of(const struct sp_rmap *rm, uint32_t id);

static inline struct sp_item *sp_rmap_item(struct sp_rmap *rm, uint32_t id)
{
	return &rm->items[id];
}

static inline uintptr_t sp_rmap_addr(const struct sp_rmap *rm, uint32_t r, uint32_t id)
{
	return rm->regions[r].start + ((uintptr_t)(id - rm->regions[r].first_id) << 12);
}

#endif /* SP_RMAP_H */
