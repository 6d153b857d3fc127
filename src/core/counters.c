/* SPDX-License-Identifier: MIT */
/*
 * counters.c - the kernel's counters, computed from the core's state.
 *
 * pages_shared and pages_sharing come from the stable index, so they cannot
 * drift from what is merged. pages_volatile is derived the kernel's way:
 * rmap items that are neither merged nor waiting in the unstable index.
 * general_profit is the kernel's formula with the engine's real costs: bytes
 * saved by sharing and zero pages, minus every byte of engine metadata, minus
 * the kernel memory of the extra mappings the engine made.
 */
#include <string.h>

#include "core/core.h"
#include "samepage.h"

uint64_t sp_core_metadata_bytes(const struct sp_core *c)
{
	return (uint64_t)c->rmap.cap * sizeof(struct sp_item) +
	       (uint64_t)c->rmap.regions_cap * sizeof(struct sp_region) +
	       (uint64_t)c->rmap.free_cap * sizeof(struct sp_idrange) + sp_stable_bytes(&c->stable) +
	       sp_unstable_bytes(&c->unstable);
}

void sp_core_stats(const struct sp_core *c, struct samepage_stats *out)
{
	const struct sp_stable *st = &c->stable;
	int64_t vol, profit;
	long budget = 0;

	for (uint32_t i = 0; i < c->nspaces; i++)
		if (c->spaces[i])
			budget += c->spaces[i]->ops->map_budget(c->spaces[i]);

	memset(out, 0, sizeof(*out));
	out->pages_shared = st->pages;
	out->pages_sharing = st->sharers - st->pages;
	out->pages_unshared = c->cnt.pages_unshared;
	vol = (int64_t)c->cnt.rmap_items - (int64_t)st->sharers - (int64_t)c->cnt.pages_unshared;
	out->pages_volatile = vol > 0 ? (uint64_t)vol : 0;
	out->pages_scanned = c->cnt.pages_scanned;
	out->pages_skipped = c->cnt.pages_skipped;
	out->full_scans = c->cnt.full_scans;
	out->ksm_zero_pages = c->cnt.ksm_zero_pages;
	out->stable_node_chains = st->chains;
	out->stable_node_dups = st->dups;
	out->rmap_items = c->cnt.rmap_items;
	out->metadata_bytes = sp_core_metadata_bytes(c);
	out->mappings = c->cnt.mappings;
	out->mappings_budget = budget > 0 ? (uint64_t)budget : 0;
	out->longest_batch_ns = c->cnt.longest_batch_ns;
	out->batches = c->cnt.batches;
	out->batches_over = c->cnt.batches_over;
	profit = (int64_t)((out->pages_sharing + out->ksm_zero_pages) * SP_PAGE_SIZE) - (int64_t)out->metadata_bytes -
		 (int64_t)(out->mappings * SP_MAPPING_COST);
	out->general_profit = profit;
}

void sp_core_range_stats(const struct sp_core *c, uint32_t space, uintptr_t start, uint64_t npages,
			 struct samepage_region_stats *out)
{
	uintptr_t end = start + (uintptr_t)(npages << SP_PAGE_SHIFT);

	memset(out, 0, sizeof(*out));
	for (uint32_t r = 0; r < c->rmap.nregions; r++) {
		const struct sp_region *g = &c->rmap.regions[r];
		uintptr_t gs = g->start, ge = gs + (uintptr_t)(g->npages << SP_PAGE_SHIFT);
		uintptr_t lo = gs > start ? gs : start, hi = ge < end ? ge : end;

		if (g->space != space)
			continue;
		for (uintptr_t a = lo; a < hi; a += SP_PAGE_SIZE) {
			const struct sp_item *it = &c->rmap.items[g->first_id + ((a - gs) >> SP_PAGE_SHIFT)];

			out->registered_pages++;
			out->rmap_items += !!(it->flags & SP_IT_SEEN);
			out->merging_pages += !!(it->flags & SP_IT_STABLE);
			out->zero_pages += !!(it->flags & SP_IT_ZERO);
		}
	}
	out->profit = (int64_t)((out->merging_pages + out->zero_pages) * SP_PAGE_SIZE) -
		      (int64_t)(out->rmap_items * sizeof(struct sp_item));
}
