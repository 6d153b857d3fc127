/* SPDX-License-Identifier: MIT */
/*
 * mapcount.c - how many extra kernel mappings the merges made.
 *
 * A region is one mapping until pages in it map the store; each change
 * between anonymous memory and store pages, and each break in store
 * offsets, starts another. The count is taken behind the scan cursor, batch
 * by batch (sp_core_count_behind), so that the end of a full scan costs no
 * walk over every page; a full walk is left for scans during which regions
 * changed. That walk is taken a slice per scan call too (sp_core_recount_step):
 * in one go it took 0.7-1.1 ms of the call that ended a full scan at 1 GiB,
 * measured on AMD EPYC/KVM (bench_settle, pairs and mix), over the batch
 * bound of 1 ms. Until it ends, cnt.mappings keeps its previous figure.
 */
#include <string.h>

#include "core/core.h"

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
	memset(&c->recount, 0, sizeof(c->recount));
	if (c->mapcount.stale) {
		total = c->cnt.mappings; /* until the walk ends */
		c->recount.active = 1;
	} else {
		total = c->mapcount.total;
	}
	memset(&c->mapcount, 0, sizeof(c->mapcount));
	return total;
}

void sp_core_recount_step(struct sp_core *c, uint64_t pages)
{
	struct sp_mapcount *m = &c->recount;

	while (m->active && pages) {
		const struct sp_region *g;
		uint64_t end;

		if (m->region >= c->rmap.nregions) {
			c->cnt.mappings = m->total;
			memset(m, 0, sizeof(*m));
			return;
		}
		g = &c->rmap.regions[m->region];
		if (m->next > g->npages)
			m->next = g->npages;
		if (!m->next) {
			m->prev = -1;
			m->segs = 1;
		}
		/* regions may change under the walk: it stays inside them
		 * (the count is then off until the next scan's) */
		end = g->npages - m->next < pages ? g->npages : m->next + pages;
		for (uint64_t i = m->next; i < end; i++)
			count_page(c, m, g, i);
		pages -= end - m->next;
		m->next = end;
		if (m->next >= g->npages) {
			m->total += m->segs - 1;
			m->region++;
			m->next = 0;
		}
	}
}
