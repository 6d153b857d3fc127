/* SPDX-License-Identifier: MIT */
/*
 * unmerge.c - undoing merges: run=2, unregistering memory, fork, and pages
 * the application dropped (MADV_DONTNEED).
 *
 * Memory always comes first, bookkeeping second: a page is made private
 * (or plain anonymous) before the sharer it was is dropped, because dropping
 * the last sharer punches the store page, and a page still mapping a punched
 * store page would read zeros.
 */
#include <errno.h>
#include <string.h>

#include "core/core.h"
#include "core/merge.h"

/* Pages [off, off + n) of region r were just made plain anonymous memory
 * again: their merges end in the bookkeeping at once, so that a later
 * failure leaves counters that match memory. */
static void merges_ended(struct sp_core *c, uint32_t r, uint64_t off, uint64_t n)
{
	const struct sp_region *reg = &c->rmap.regions[r];

	for (uint64_t i = off; i < off + n; i++) {
		struct sp_item *it = &c->rmap.items[reg->first_id + i];

		if (it->flags & SP_IT_STABLE)
			sp_merge_drop_sharer(c, it);
		if (it->flags & SP_IT_ZERO) {
			it->flags &= ~SP_IT_ZERO;
			c->cnt.ksm_zero_pages--;
		}
		it->flags &= ~SP_IT_FILEMAP;
	}
}

/* Calls fn on each run of pages of region r in [off, off + n) whose items
 * have any of `mask`, and ends the merges of each run it made private.
 * Stops at the first error. */
static int for_runs(struct sp_core *c, uint32_t r, uint64_t off, uint64_t n, uint8_t mask,
		    int (*fn)(struct sp_backend *, uintptr_t, size_t))
{
	const struct sp_region *reg = &c->rmap.regions[r];
	uint64_t i = off, j, end = off + n;
	int err;

	while (i < end) {
		if (!(c->rmap.items[reg->first_id + i].flags & mask)) {
			i++;
			continue;
		}
		for (j = i; j < end && (c->rmap.items[reg->first_id + j].flags & mask); j++)
			;
		err = fn(c->be, reg->start + (uintptr_t)(i << SP_PAGE_SHIFT), j - i);
		if (err)
			return err;
		merges_ended(c, r, i, j - i);
		i = j;
	}
	return 0;
}

/* Calls fn(r, off, n) on the part of each region inside [start, start + npages pages). */
static void for_regions(struct sp_core *c, uintptr_t start, uint64_t npages,
			void (*fn)(struct sp_core *c, uint32_t r, uint64_t off, uint64_t n, void *arg), void *arg)
{
	uintptr_t end = start + (uintptr_t)(npages << SP_PAGE_SHIFT);

	for (uint32_t r = 0; r < c->rmap.nregions; r++) {
		const struct sp_region *g = &c->rmap.regions[r];
		uintptr_t gs = g->start, ge = gs + (uintptr_t)(g->npages << SP_PAGE_SHIFT);
		uintptr_t lo = gs > start ? gs : start, hi = ge < end ? ge : end;

		if (lo < hi)
			fn(c, r, (lo - gs) >> SP_PAGE_SHIFT, (hi - lo) >> SP_PAGE_SHIFT, arg);
	}
}

static void anon_part(struct sp_core *c, uint32_t r, uint64_t off, uint64_t n, void *arg)
{
	const struct sp_region *reg = &c->rmap.regions[r];

	(void)arg;
	for (uint64_t i = off; i < off + n; i++)
		if (c->rmap.items[reg->first_id + i].flags & SP_IT_FILEMAP) {
			c->mapcount.stale = 1;
			merges_ended(c, r, i, 1);
		}
}

void sp_core_pages_anon(struct sp_core *c, uintptr_t start, uint64_t npages)
{
	for_regions(c, start, npages, anon_part, NULL);
}

struct filemap_arg {
	int (*fn)(void *ctx, uintptr_t addr, size_t n, uint8_t *done);
	void *ctx;
};

static void filemap_part(struct sp_core *c, uint32_t r, uint64_t off, uint64_t n, void *arg)
{
	const struct sp_region *reg = &c->rmap.regions[r];
	const struct filemap_arg *fa = arg;
	uint64_t i = off, j, end = off + n;
	uint8_t done[SP_BATCH_MAX];

	while (i < end) {
		if (!(c->rmap.items[reg->first_id + i].flags & SP_IT_FILEMAP)) {
			i++;
			continue;
		}
		for (j = i; j < end && j - i < SP_BATCH_MAX && (c->rmap.items[reg->first_id + j].flags & SP_IT_FILEMAP);
		     j++)
			;
		memset(done, 0, sizeof(done));
		if (!fa->fn(fa->ctx, reg->start + (uintptr_t)(i << SP_PAGE_SHIFT), j - i, done))
			for (uint64_t k = i; k < j; k++)
				if (done[k - i]) {
					c->mapcount.stale = 1;
					merges_ended(c, r, k, 1);
				}
		i = j;
	}
}

void sp_core_filemap_runs(struct sp_core *c, uintptr_t start, uint64_t npages,
			  int (*fn)(void *ctx, uintptr_t addr, size_t n, uint8_t *done), void *ctx)
{
	struct filemap_arg fa = {.fn = fn, .ctx = ctx};

	for_regions(c, start, npages, filemap_part, &fa);
}

/* Forgets pages [off, off + n) of region r: their memory is already private. */
static void forget_pages(struct sp_core *c, uint32_t r, uint64_t off, uint64_t n, int keep_filemap)
{
	const struct sp_region *reg = &c->rmap.regions[r];
	uint64_t i;

	for (i = off; i < off + n; i++) {
		uint32_t id = reg->first_id + (uint32_t)i;
		struct sp_item *it = &c->rmap.items[id];

		sp_core_leave_unstable(c, id, it);
		if (it->flags & SP_IT_STABLE)
			sp_merge_drop_sharer(c, it);
		if (it->flags & SP_IT_ZERO)
			c->cnt.ksm_zero_pages--;
		sp_core_unseen(c, it);
		it->flags &= keep_filemap ? SP_IT_FILEMAP : 0;
		it->hash = 0;
	}
}

int sp_core_add_range(struct sp_core *c, uintptr_t start, uint64_t npages)
{
	uintptr_t end = start + (uintptr_t)(npages << SP_PAGE_SHIFT), a = start;
	uint32_t r;
	int pos;

	/* add the pieces not tracked yet (regions may be in any address order) */
	while (a < end) {
		uintptr_t next_start = end, gap_end = end;
		int inside = 0;

		for (r = 0; r < c->rmap.nregions; r++) {
			const struct sp_region *g = &c->rmap.regions[r];
			uintptr_t gs = g->start, ge = gs + (uintptr_t)(g->npages << SP_PAGE_SHIFT);

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
		pos = sp_rmap_add(&c->rmap, a, (gap_end - a) >> SP_PAGE_SHIFT);
		if (pos < 0)
			return pos;
		if ((uint32_t)pos <= c->cur_region && c->rmap.nregions > 1)
			c->cur_region++;
		a = gap_end;
	}
	return 0;
}

int sp_core_remove_range(struct sp_core *c, uintptr_t start, uint64_t npages)
{
	uintptr_t end = start + (uintptr_t)(npages << SP_PAGE_SHIFT);
	uint32_t r = 0;
	int err, delta;

	while (r < c->rmap.nregions) {
		const struct sp_region *g = &c->rmap.regions[r];
		uintptr_t gs = g->start, ge = gs + (uintptr_t)(g->npages << SP_PAGE_SHIFT);
		uintptr_t lo = gs > start ? gs : start, hi = ge < end ? ge : end;
		uint64_t off, n;

		if (lo >= hi) {
			r++;
			continue;
		}
		off = (lo - gs) >> SP_PAGE_SHIFT;
		n = (hi - lo) >> SP_PAGE_SHIFT;
		c->mapcount.stale = 1;
		err = for_runs(c, r, off, n, SP_IT_FILEMAP, c->be->ops->restore);
		if (err)
			return err;
		forget_pages(c, r, off, n, 0);
		err = sp_rmap_cut(&c->rmap, r, off, n, &delta);
		if (err)
			return err;
		if (r < c->cur_region) {
			c->cur_region += delta;
		} else if (r == c->cur_region) {
			c->cur_page = 0; /* restart this region's walk */
			if (delta < 0 && c->cur_region >= c->rmap.nregions)
				c->cur_region = c->rmap.nregions;
		}
		if (delta >= 0)
			r++;
		/* ids may be handed out again: no index may point at them */
		sp_unstable_reset(&c->unstable, c->rmap.tracked);
		c->cnt.pages_unshared = 0;
		for (uint32_t id = 0; id < c->rmap.nids; id++)
			c->rmap.items[id].flags &= ~(SP_IT_UNSTABLE | SP_IT_PARKED);
	}
	return 0;
}

static void release(void *ctx, uint32_t pg)
{
	struct sp_core *c = ctx;

	c->be->ops->store_free(c->be, pg);
}

int sp_core_unmerge_all(struct sp_core *c)
{
	uint32_t r;
	int err;

	c->mapcount.stale = 1;
	for (r = 0; r < c->rmap.nregions; r++) {
		/* every page in a store mapping (merged, or merged once and
		 * written since) and every zero page becomes plain memory */
		err = for_runs(c, r, 0, c->rmap.regions[r].npages, SP_IT_FILEMAP | SP_IT_ZERO, c->be->ops->unmerge);
		if (err)
			return err; /* later scans see the broken merges and tidy up */
	}
	for (r = 0; r < c->rmap.nregions; r++) {
		const struct sp_region *g = &c->rmap.regions[r];

		for (uint64_t i = 0; i < g->npages; i++) {
			struct sp_item *it = &c->rmap.items[g->first_id + i];

			it->flags = 0;
			it->link = 0;
			it->hash = 0;
		}
	}
	sp_stable_clear(&c->stable, release, c);
	sp_unstable_reset(&c->unstable, c->rmap.tracked);
	c->cnt.pages_unshared = 0;
	c->cnt.ksm_zero_pages = 0;
	c->cnt.rmap_items = 0;
	c->cnt.mappings = 0; /* every page is anonymous again */
	return 0;
}

void sp_core_pin_for_fork(struct sp_core *c)
{
	sp_stable_pin_all(&c->stable);
}
