/* SPDX-License-Identifier: MIT */
/*
 * unmerge.c - undoing merges: run=2, unregistering memory, a process that
 * is gone, fork, and pages the application dropped (MADV_DONTNEED).
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
		    int (*fn)(struct sp_mem *, uintptr_t, size_t))
{
	const struct sp_region *reg = &c->rmap.regions[r];
	struct sp_mem *m = sp_core_mem(c, r);
	uint64_t i = off, j, end = off + n;
	int err;

	while (i < end) {
		if (!(c->rmap.items[reg->first_id + i].flags & mask)) {
			i++;
			continue;
		}
		for (j = i; j < end && (c->rmap.items[reg->first_id + j].flags & mask); j++)
			;
		err = fn(m, reg->start + (uintptr_t)(i << SP_PAGE_SHIFT), j - i);
		if (err)
			return err;
		merges_ended(c, r, i, j - i);
		i = j;
	}
	return 0;
}

static void anon_part(struct sp_core *c, uint32_t r, uint64_t off, uint64_t n, void *arg)
{
	const struct sp_region *reg = &c->rmap.regions[r];

	(void)arg;
	for (uint64_t i = off; i < off + n; i++)
		if (c->rmap.items[reg->first_id + i].flags & SP_IT_FILEMAP) {
			c->mapcount.stale = 1;
			c->changes++; /* ends trust (scan.c) */
			merges_ended(c, r, i, 1);
		}
}

void sp_core_pages_anon(struct sp_core *c, uint32_t space, uintptr_t start, uint64_t npages)
{
	sp_core_for_regions(c, space, start, npages, anon_part, NULL);
}

static void undone_part(struct sp_core *c, uint32_t r, uint64_t off, uint64_t n, void *arg)
{
	const struct sp_region *reg = &c->rmap.regions[r];

	(void)arg;
	for (uint64_t i = off; i < off + n; i++) {
		struct sp_item *it = &c->rmap.items[reg->first_id + i];

		if (it->flags & SP_IT_STABLE) {
			c->mapcount.stale = 1;
			c->changes++; /* ends trust (scan.c) */
			sp_merge_drop_sharer(c, it);
		}
	}
}

void sp_core_remap_undone(struct sp_core *c, uint32_t space, uintptr_t start, uint64_t npages)
{
	sp_core_for_regions(c, space, start, npages, undone_part, NULL);
}

void sp_core_collect_failed_remaps(struct sp_core *c, uint32_t space)
{
	struct sp_mem *m = c->spaces[space];
	uintptr_t addr[16];
	uint32_t n[16];
	size_t k;

	if (!m || !m->ops->failed_remaps)
		return;
	do {
		k = m->ops->failed_remaps(m, addr, n, 16);
		for (size_t i = 0; i < k; i++)
			sp_core_remap_undone(c, space, addr[i], n[i]);
	} while (k == 16);
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
					c->changes++; /* ends trust (scan.c) */
					merges_ended(c, r, k, 1);
				}
		i = j;
	}
}

void sp_core_filemap_runs(struct sp_core *c, uint32_t space, uintptr_t start, uint64_t npages,
			  int (*fn)(void *ctx, uintptr_t addr, size_t n, uint8_t *done), void *ctx)
{
	struct filemap_arg fa = {.fn = fn, .ctx = ctx};

	sp_core_for_regions(c, space, start, npages, filemap_part, &fa);
}

/* Forgets pages [off, off + n) of region r: their memory is already
 * private, or gone with its process. */
static void forget_pages(struct sp_core *c, uint32_t r, uint64_t off, uint64_t n)
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
		it->flags = 0;
		it->hash = 0;
	}
}

/* Cuts pages [off, off + n) of region r out of the rmap, keeping the scan
 * cursor on the page it was about to visit. 0 or -ENOMEM. */
static int cut(struct sp_core *c, uint32_t r, uint64_t off, uint64_t n, int *delta)
{
	int err = sp_rmap_cut(&c->rmap, r, off, n, delta);

	if (err)
		return err;
	if (r < c->cur_region) {
		c->cur_region += *delta;
	} else if (r == c->cur_region) {
		c->cur_page = 0; /* restart this region's walk */
		if (*delta < 0 && c->cur_region >= c->rmap.nregions)
			c->cur_region = c->rmap.nregions;
	}
	/* The freed ids need no index reset: forget_pages() unlinked each of
	 * them from the unstable index, and no stable node points at them. */
	return 0;
}

int sp_core_remove_range(struct sp_core *c, uint32_t space, uintptr_t start, uint64_t npages)
{
	uintptr_t end = start + (uintptr_t)(npages << SP_PAGE_SHIFT);
	uint32_t r = 0;
	int err, delta;

	while (r < c->rmap.nregions) {
		const struct sp_region *g = &c->rmap.regions[r];
		uintptr_t gs = g->start, ge = gs + (uintptr_t)(g->npages << SP_PAGE_SHIFT);
		uintptr_t lo = gs > start ? gs : start, hi = ge < end ? ge : end;
		uint64_t off, n;

		if (g->space != space || lo >= hi) {
			r++;
			continue;
		}
		off = (lo - gs) >> SP_PAGE_SHIFT;
		n = (hi - lo) >> SP_PAGE_SHIFT;
		c->mapcount.stale = 1;
		c->changes++; /* ends trust (scan.c) */
		err = for_runs(c, r, off, n, SP_IT_FILEMAP, sp_core_mem(c, r)->ops->restore);
		if (err)
			return err;
		forget_pages(c, r, off, n);
		err = cut(c, r, off, n, &delta);
		if (err)
			return err;
		if (delta >= 0)
			r++;
	}
	return 0;
}

void sp_core_drop_space(struct sp_core *c, uint32_t space)
{
	uint32_t r = 0;
	int delta;

	if (space >= c->nspaces)
		return;
	c->mapcount.stale = 1;
	c->changes++; /* ends trust (scan.c) */
	while (r < c->rmap.nregions) {
		const struct sp_region *g = &c->rmap.regions[r];

		if (g->space != space) {
			r++;
			continue;
		}
		forget_pages(c, r, 0, g->npages);
		if (cut(c, r, 0, g->npages, &delta))
			r++; /* no memory for the free list: the region stays, forgotten */
	}
	c->spaces[space] = NULL;
}

static void release(void *ctx, uint32_t pg)
{
	struct sp_core *c = ctx;

	c->host->ops->store_free(c->host, pg);
}

int sp_core_unmerge_all(struct sp_core *c)
{
	uint32_t r;
	int err;

	c->mapcount.stale = 1;
	c->changes++; /* ends trust (scan.c) */
	for (r = 0; r < c->rmap.nregions; r++) {
		/* every page in a store mapping (merged, or merged once and
		 * written since) and every zero page becomes plain memory */
		err = for_runs(c, r, 0, c->rmap.regions[r].npages, SP_IT_FILEMAP | SP_IT_ZERO,
			       sp_core_mem(c, r)->ops->unmerge);
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
