/* SPDX-License-Identifier: MIT */
/*
 * range.c - which memory the core tracks: ranges of an address space
 * becoming regions (registering), and walking the regions a range covers.
 * Unregistering undoes merges first and lives in unmerge.c.
 */
#include <errno.h>

#include "core/core.h"

void sp_core_for_regions(struct sp_core *c, uint32_t space, uintptr_t start, uint64_t npages,
			 void (*fn)(struct sp_core *c, uint32_t r, uint64_t off, uint64_t n, void *arg), void *arg)
{
	uintptr_t end = start + (uintptr_t)(npages << SP_PAGE_SHIFT);

	for (uint32_t r = 0; r < c->rmap.nregions; r++) {
		const struct sp_region *g = &c->rmap.regions[r];
		uintptr_t gs = g->start, ge = gs + (uintptr_t)(g->npages << SP_PAGE_SHIFT);
		uintptr_t lo = gs > start ? gs : start, hi = ge < end ? ge : end;

		if (g->space == space && lo < hi)
			fn(c, r, (lo - gs) >> SP_PAGE_SHIFT, (hi - lo) >> SP_PAGE_SHIFT, arg);
	}
}

int sp_core_add_range(struct sp_core *c, uint32_t space, uintptr_t start, uint64_t npages)
{
	uintptr_t end = start + (uintptr_t)(npages << SP_PAGE_SHIFT), a = start;
	uint32_t r;
	int pos;

	if (space >= c->nspaces || !c->spaces[space])
		return -EINVAL;
	/* add the pieces not tracked yet (regions may be in any address order) */
	while (a < end) {
		uintptr_t next_start = end, gap_end = end;
		int inside = 0;

		for (r = 0; r < c->rmap.nregions; r++) {
			const struct sp_region *g = &c->rmap.regions[r];
			uintptr_t gs = g->start, ge = gs + (uintptr_t)(g->npages << SP_PAGE_SHIFT);

			if (g->space != space)
				continue;
			if (gs <= a && a < ge) {
				inside = 1;
				next_start = ge < end ? ge : end;
				break;
			}
			if (gs > a && gs < gap_end)
				gap_end = gs;
		}
		if (inside) {
			a = next_start;
			continue;
		}
		c->mapcount.stale = 1;
		c->changes++; /* ends trust (scan.c) */
		pos = sp_rmap_add(&c->rmap, space, a, (gap_end - a) >> SP_PAGE_SHIFT);
		if (pos < 0)
			return pos;
		if ((uint32_t)pos <= c->cur_region && c->rmap.nregions > 1)
			c->cur_region++;
		a = gap_end;
	}
	return 0;
}
