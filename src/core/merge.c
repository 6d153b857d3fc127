/* SPDX-License-Identifier: MIT */
/*
 * merge.c - executing merge runs (see merge.h).
 *
 * Order of operations for every run, and why:
 *   1. freeze the run(s): from here on nobody can change the content (a
 *      run the scan froze before reading it, scan.c, is frozen already);
 *   2. re-read and compare: hashes only nominated the pages, memcmp of the
 *      frozen copies decides (a run frozen before its read is not read
 *      again: the batch buffer holds its frozen content);
 *   3. remap the matching sub-runs, thaw the rest; writers that blocked on
 *      remapped pages are woken once per batch (wake_blocked in scan.c),
 *      when nothing is frozen any more.
 * Counters change only after the backend confirmed the remap, so a failed
 * remap leaves both the memory and the statistics as they were; every page
 * that was not merged counts once in merge_failures (not_merged()).
 */
#include <errno.h>
#include <string.h>

#include "core/hash.h"
#include "core/merge.h"

#define PAGE SP_PAGE_SIZE

static void release_page(struct sp_core *c, uint32_t pg)
{
	if (pg != SP_NO_PAGE)
		sp_core_store_free(c, pg);
}

void sp_merge_drop_sharer(struct sp_core *c, struct sp_item *it)
{
	release_page(c, sp_stable_put(&c->stable, it->link));
	it->flags &= ~SP_IT_STABLE;
	it->link = 0;
}

static void thaw(struct sp_mem *m, uintptr_t addr, size_t n)
{
	if (n)
		m->ops->thaw(m, addr, n);
}

/* Remaps a frozen run of m; its blocked writers are woken at the batch's
 * end. 0 or -errno. */
static int remap(struct sp_core *c, uint32_t region, uintptr_t addr, size_t n, uint64_t pg, int joins)
{
	uint32_t space = c->rmap.regions[region].space;
	struct sp_mem *m = c->spaces[space];

	c->remapped = 1;
	c->space_remapped[space] = 1;
	c->changes++; /* ends trust (scan.c) */
	return m->ops->remap(m, addr, n, pg, joins);
}

/* Pages [i, j) of ok[] that are all set, starting at i: returns j. */
static uint32_t span(const uint8_t *ok, uint32_t i, uint32_t n)
{
	uint32_t j = i;

	while (j < n && ok[j] == ok[i])
		j++;
	return j;
}

/* The NUMA node new store pages of the run belong on (-1: anywhere). */
static int run_node(const struct sp_core *c, const struct sp_run *r)
{
	return c->knobs.merge_across_nodes ? -1 : c->nodes[r->i0];
}

/* Would pages [id, id + n) of region r, mapped to store pages from pg,
 * continue a neighbour's store mapping? SP_JOIN_LEFT: the page before maps
 * pg - 1; SP_JOIN_RIGHT: the page after maps pg + n. */
static int joins(const struct sp_core *c, uint32_t r, uint32_t id, uint32_t n, uint64_t pg)
{
	const struct sp_region *g = &c->rmap.regions[r];
	const struct sp_item *it;
	int j = 0;

	if (id > g->first_id) {
		it = &c->rmap.items[id - 1];
		if ((it->flags & SP_IT_STABLE) && c->stable.nodes[it->link].pg + 1 == pg)
			j |= SP_JOIN_LEFT;
	}
	if (id + n < g->first_id + g->npages) {
		it = &c->rmap.items[id + n];
		if ((it->flags & SP_IT_STABLE) && c->stable.nodes[it->link].pg == pg + n)
			j |= SP_JOIN_RIGHT;
	}
	return j;
}

static int have_budget(struct sp_core *c, struct sp_mem *m)
{
	if (m->ops->map_budget(m) > 0)
		return 1;
	c->recount_wanted = 1; /* the estimate may be too pessimistic */
	return 0;
}

/* Pages [k, j) of run r were not merged (mapping budget, freeze, changed
 * content, no store page or node, remap): every such page counts once in
 * merge_failures, whatever the reason and the kind of run. The partners of
 * a pair run left the unstable index when the run was formed; those still
 * unmerged go back, as the kernel leaves the tree page in its unstable tree
 * when merging two pages fails. */
static void not_merged(struct sp_core *c, const struct sp_run *r, uint32_t k, uint32_t j)
{
	c->cnt.merge_failures += j - k;
	if (r->kind != SP_RUN_PAIR)
		return;
	for (uint32_t m = k; m < j; m++) {
		struct sp_item *pt = sp_rmap_item(&c->rmap, r->partner0 + m);

		if (!(pt->flags & (SP_IT_STABLE | SP_IT_UNSTABLE))) {
			sp_unstable_insert(&c->unstable, &c->rmap, r->partner0 + m);
			c->cnt.pages_unshared++;
		}
	}
}

/* Were all pages of the run frozen before the scan read them (scan.c)?
 * Then c->buf holds their content as it is and stays: it is compared
 * without reading them again. */
static int frozen_ahead(const struct sp_core *c, const struct sp_run *r)
{
	for (uint32_t k = 0; k < r->n; k++)
		if (!c->frozen[r->i0 + k])
			return 0;
	return 1;
}

/* Item of batch page i0 + m of the run, and of its partner. */
static struct sp_item *run_item(struct sp_core *c, const struct sp_run *r, uint32_t m)
{
	return sp_rmap_item(&c->rmap, r->id0 + r->i0 + m);
}

/* The item becomes a sharer of node. */
static void join_node(struct sp_core *c, struct sp_item *it, uint32_t node)
{
	sp_stable_get(&c->stable, node);
	sp_core_seen(c, it);
	it->flags |= SP_IT_STABLE | SP_IT_FILEMAP;
	it->link = node;
}

/* Freezes the run (unless the scan froze it before reading it) and returns
 * its frozen content: the batch buffer then, else c->verify read under
 * freeze, *got pages of it. NULL, with nothing frozen and the failure
 * counted, when it cannot be frozen or, with budget, when no mapping may be
 * added. */
static const uint8_t *freeze_run(struct sp_core *c, struct sp_run *r, int budget, long *got)
{
	struct sp_mem *m = sp_core_mem(c, r->region);
	uintptr_t addr = r->addr0 + ((uintptr_t)r->i0 << SP_PAGE_SHIFT);
	int ahead = frozen_ahead(c, r);

	*got = r->n;
	if (budget && !have_budget(c, m)) {
		if (ahead)
			thaw(m, addr, r->n);
		not_merged(c, r, 0, r->n);
		return NULL;
	}
	if (ahead)
		return c->buf + (size_t)r->i0 * PAGE;
	if (m->ops->freeze(m, addr, r->n)) {
		not_merged(c, r, 0, r->n);
		return NULL;
	}
	*got = m->ops->read(m, addr, r->n, c->verify);
	return c->verify;
}

static void merge_stable(struct sp_core *c, struct sp_run *r)
{
	struct sp_mem *m = sp_core_mem(c, r->region);
	uintptr_t addr = r->addr0 + ((uintptr_t)r->i0 << SP_PAGE_SHIFT);
	uint8_t ok[SP_BATCH_MAX];
	const uint8_t *own;
	uint32_t k, j;
	long got;

	own = freeze_run(c, r, 1, &got);
	if (!own)
		return;
	for (k = 0; k < r->n; k++)
		ok[k] = (long)k < got && !memcmp(own + (size_t)k * PAGE, sp_core_store_page(c, r->pg0 + k), PAGE);
	for (k = 0; k < r->n; k = j) {
		uintptr_t a = addr + ((uintptr_t)k << SP_PAGE_SHIFT);

		j = span(ok, k, r->n);
		if (!ok[k] || remap(c, r->region, a, j - k, r->pg0 + k,
				    joins(c, r->region, r->id0 + r->i0 + k, j - k, r->pg0 + k))) {
			thaw(m, a, j - k);
			not_merged(c, r, k, j);
			continue;
		}
		for (uint32_t x = k; x < j; x++)
			join_node(c, run_item(c, r, x), r->nodes[x]);
	}
}

/* Makes the stable nodes for pages [k, j) of a pair run, whose new store
 * pages start at pg; r->nodes[] turns from "group to join" into "the node".
 * All or nothing: 0, or -ENOMEM with no node left and the pages freed. */
static int new_nodes(struct sp_core *c, struct sp_run *r, uint32_t k, uint32_t j, uint64_t pg)
{
	for (uint32_t m = k; m < j; m++) {
		uint32_t idx = r->i0 + m;
		uint32_t node = sp_stable_add(&c->stable, c->keys[idx], (uint32_t)(pg + m - k), r->nodes[m],
					      (uint16_t)(run_node(c, r) + 1));

		if (!node) {
			while (m-- > k)
				sp_stable_discard(&c->stable, r->nodes[m]);
			for (m = k; m < j; m++)
				sp_core_store_free(c, pg + m - k);
			return -ENOMEM;
		}
		r->nodes[m] = node;
	}
	return 0;
}

/* Freezes both sides of a pair run and reads them; ok[k]: page k and its
 * partner are equal and still what was hashed. *own gets the run's frozen
 * content (c->verify, or c->buf when the scan froze the run before reading
 * it). 0, or -1 with nothing frozen. The partner may be in another address
 * space. */
static int freeze_and_compare(struct sp_core *c, struct sp_run *r, uintptr_t addr, uintptr_t paddr, uint8_t *ok,
			      const uint8_t **own)
{
	struct sp_mem *m = sp_core_mem(c, r->region), *pm = sp_core_mem(c, r->partner_region);
	int ahead = frozen_ahead(c, r);
	long got = r->n, pgot;

	*own = ahead ? c->buf + (size_t)r->i0 * PAGE : c->verify;
	if (!have_budget(c, m) || !have_budget(c, pm) || (!ahead && m->ops->freeze(m, addr, r->n))) {
		if (ahead)
			thaw(m, addr, r->n);
		return -1;
	}
	if (pm->ops->freeze(pm, paddr, r->n)) {
		thaw(m, addr, r->n);
		return -1;
	}
	if (ahead) {
		pgot = pm->ops->read(pm, paddr, r->n, c->partner);
	} else if (m == pm && m->ops->read2) {
		got = m->ops->read2(m, addr, c->verify, paddr, c->partner, r->n, &pgot);
	} else {
		got = m->ops->read(m, addr, r->n, c->verify);
		pgot = pm->ops->read(pm, paddr, r->n, c->partner);
	}
	for (uint32_t k = 0; k < r->n; k++) {
		size_t off = (size_t)k * PAGE;

		ok[k] = (long)k < got && (long)k < pgot && !memcmp(*own + off, c->partner + off, PAGE) &&
			!memcmp(*own + off, c->buf + (size_t)(r->i0 + k) * PAGE, PAGE);
	}
	return 0;
}

/* Pages [k, j) of a frozen pair run, all verified equal (own: the run's
 * frozen content): new store pages, their nodes, then both sides remapped.
 * Unfreezes both sides. */
static void merge_pair_span(struct sp_core *c, struct sp_run *r, uintptr_t addr, uintptr_t paddr, uint32_t k,
			    uint32_t j, const uint8_t *own)
{
	struct sp_mem *m = sp_core_mem(c, r->region), *pm = sp_core_mem(c, r->partner_region);
	uintptr_t a = addr + ((uintptr_t)k << SP_PAGE_SHIFT), pa = paddr + ((uintptr_t)k << SP_PAGE_SHIFT);
	uint64_t pg;
	int mine, theirs;

	/* the nodes exist before anything maps the pages: if one cannot be
	 * made, nothing is remapped */
	if (c->host->ops->store_alloc(c->host, j - k, run_node(c, r), &pg) || new_nodes(c, r, k, j, pg)) {
		thaw(m, a, j - k);
		thaw(pm, pa, j - k);
		not_merged(c, r, k, j);
		return;
	}
	for (uint32_t x = k; x < j; x++)
		memcpy(sp_core_store_page(c, pg + x - k), own + (size_t)x * PAGE, PAGE);
	mine = remap(c, r->region, a, j - k, pg, joins(c, r->region, r->id0 + r->i0 + k, j - k, pg));
	if (mine)
		thaw(m, a, j - k);
	theirs = remap(c, r->partner_region, pa, j - k, pg, joins(c, r->partner_region, r->partner0 + k, j - k, pg));
	if (theirs)
		thaw(pm, pa, j - k);
	for (uint32_t x = k; x < j; x++) {
		uint32_t node = r->nodes[x];

		if (mine && theirs) { /* nobody maps it */
			sp_core_store_free(c, sp_stable_discard(&c->stable, node));
			continue;
		}
		if (!mine)
			join_node(c, run_item(c, r, x), node);
		if (!theirs)
			join_node(c, sp_rmap_item(&c->rmap, r->partner0 + x), node);
	}
	if (mine || theirs)
		not_merged(c, r, k, j); /* one side (or both) stays as it was */
}

static void merge_pair(struct sp_core *c, struct sp_run *r)
{
	struct sp_mem *m = sp_core_mem(c, r->region), *pm = sp_core_mem(c, r->partner_region);
	uintptr_t addr = r->addr0 + ((uintptr_t)r->i0 << SP_PAGE_SHIFT);
	uintptr_t paddr = sp_rmap_addr(&c->rmap, r->partner_region, r->partner0);
	uint8_t ok[SP_BATCH_MAX];
	const uint8_t *own;
	uint32_t k, j;

	if (freeze_and_compare(c, r, addr, paddr, ok, &own)) {
		not_merged(c, r, 0, r->n);
		return;
	}
	for (k = 0; k < r->n; k = j) {
		j = span(ok, k, r->n);
		if (ok[k]) {
			merge_pair_span(c, r, addr, paddr, k, j, own);
			continue;
		}
		thaw(m, addr + ((uintptr_t)k << SP_PAGE_SHIFT), j - k);
		thaw(pm, paddr + ((uintptr_t)k << SP_PAGE_SHIFT), j - k);
		not_merged(c, r, k, j);
	}
}

static void merge_zero(struct sp_core *c, struct sp_run *r)
{
	struct sp_mem *m = sp_core_mem(c, r->region);
	uintptr_t addr = r->addr0 + ((uintptr_t)r->i0 << SP_PAGE_SHIFT);
	uint8_t ok[SP_BATCH_MAX];
	const uint8_t *own;
	uint32_t k, j;
	long got;

	own = freeze_run(c, r, 0, &got);
	if (!own)
		return;
	for (k = 0; k < r->n; k++)
		ok[k] = (long)k < got && sp_page_zero_bytes(own + (size_t)k * PAGE);
	for (k = 0; k < r->n; k = j) {
		uintptr_t a = addr + ((uintptr_t)k << SP_PAGE_SHIFT);

		j = span(ok, k, r->n);
		c->changes++; /* ends trust (scan.c) */
		if (!ok[k] || m->ops->zap(m, a, j - k)) {
			thaw(m, a, j - k);
			not_merged(c, r, k, j);
			continue;
		}
		for (uint32_t x = k; x < j; x++) {
			struct sp_item *it = run_item(c, r, x);

			/* the zero page is not tracked, as the kernel drops its item */
			sp_core_unseen(c, it);
			it->flags |= SP_IT_ZERO;
		}
		c->cnt.ksm_zero_pages += j - k;
	}
}

void sp_merge_run(struct sp_core *c, struct sp_run *r)
{
	if (r->kind != SP_RUN_NONE && !frozen_ahead(c, r)) {
		/* some pages frozen ahead, not all (the guess missed the
		 * others): thawed, the whole run goes the usual way (freeze,
		 * read again, compare) */
		struct sp_mem *m = sp_core_mem(c, r->region);

		for (uint32_t k = 0; k < r->n; k++)
			if (c->frozen[r->i0 + k]) {
				c->frozen[r->i0 + k] = 0;
				m->ops->thaw(m, r->addr0 + ((uintptr_t)(r->i0 + k) << SP_PAGE_SHIFT), 1);
			}
	}
	switch (r->kind) {
	case SP_RUN_STABLE:
		merge_stable(c, r);
		break;
	case SP_RUN_PAIR:
		merge_pair(c, r);
		break;
	case SP_RUN_ZERO:
		merge_zero(c, r);
		break;
	case SP_RUN_NONE:
		break;
	}
	if (r->kind != SP_RUN_NONE) /* remapped or thawed: the scan's no more */
		memset(c->frozen + r->i0, 0, r->n);
	r->kind = SP_RUN_NONE;
	r->n = 0;
}
