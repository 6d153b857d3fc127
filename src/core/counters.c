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

/* Extra kernel mappings the merges split the regions into: a region is one
 * mapping until pages in it map the store; then every change between
 * anonymous memory and store pages, and every break in store offsets, starts
 * another. A page whose copy-on-write was broken stays in its store mapping
 * (its offset is no longer known; it is taken to continue its neighbour). */
static void count_page(const struct sp_core *c, struct sp_mapcount *m, const struct sp_region *g, uint64_t i)
{
	const struct sp_item *it = &c->rmap.items[g->first_id + i];
	int64_t cur = -1; /* -1 anonymous, else store page minus index */

	if (it->flags & SP_IT_STABLE)
		cur = (int64_t)c->stable.nodes[it->link].pg - (int64_t)i;
	else if (it->flags & SP_IT_FILEMAP)
		cur = m->prev >= 0 || m->prev < -1 ? m->prev : -2; /* store, offset unknown */
	if (i && cur != m->prev && !(cur == -2 && m->prev != -1))
		m->segs++;
	m->prev = cur;
}

static void count_start(struct sp_mapcount *m, uint32_t r, uint64_t from)
{
	m->active = 1;
	m->region = r;
	m->next = from;
	m->prev = -1;
	m->segs = 1;
}

static void count_close(struct sp_mapcount *m)
{
	if (m->active)
		m->total += m->segs - 1;
	m->active = 0;
}

uint64_t sp_core_count_mappings(const struct sp_core *c)
{
	struct sp_mapcount m = {0};

	for (uint32_t r = 0; r < c->rmap.nregions; r++) {
		const struct sp_region *g = &c->rmap.regions[r];

		count_start(&m, r, 0);
		for (uint64_t i = 0; i < g->npages; i++)
			count_page(c, &m, g, i);
		count_close(&m);
	}
	return m.total;
}

void sp_core_count_behind(struct sp_core *c, uint32_t r, uint64_t from, uint64_t to)
{
	struct sp_mapcount *m = &c->mapcount;
	const struct sp_region *g;

	if (r >= c->rmap.nregions)
		return;
	g = &c->rmap.regions[r];
	if (to > g->npages)
		to = g->npages;
	if (!m->active || m->region != r || m->next != from) {
		/* a new region, or the regions changed under the cursor */
		count_close(m);
		count_start(m, r, from);
	}
	for (uint64_t i = from; i < to; i++)
		count_page(c, m, g, i);
	m->next = to;
}

uint64_t sp_core_count_done(struct sp_core *c)
{
	uint64_t total;

	count_close(&c->mapcount);
	total = c->mapcount.stale ? sp_core_count_mappings(c) : c->mapcount.total;
	memset(&c->mapcount, 0, sizeof(c->mapcount));
	return total;
}

void sp_core_stats(const struct sp_core *c, struct samepage_stats *out)
{
	const struct sp_stable *st = &c->stable;
	int64_t vol, profit;
	long budget = c->be && c->be->ops ? c->be->ops->map_budget(c->be) : 0;

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

void sp_core_range_stats(const struct sp_core *c, uintptr_t start, uint64_t npages, struct samepage_region_stats *out)
{
	uintptr_t end = start + (uintptr_t)(npages << SP_PAGE_SHIFT);

	memset(out, 0, sizeof(*out));
	for (uint32_t r = 0; r < c->rmap.nregions; r++) {
		const struct sp_region *g = &c->rmap.regions[r];
		uintptr_t gs = g->start, ge = gs + (uintptr_t)(g->npages << SP_PAGE_SHIFT);
		uintptr_t lo = gs > start ? gs : start, hi = ge < end ? ge : end;

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
