/* SPDX-License-Identifier: MIT */
/*
 * coretest.h - the core driven against the fake backend, for unit_*.c.
 *
 * struct tcore is a fake memory area, a core scanning it and a shadow copy
 * of what every page must read. Helpers fill pages (memory and shadow),
 * run whole scan passes, and check the two promises every test makes:
 * no page ever reads anything but its shadow, and the counters equal what
 * the fake backend really maps.
 *
 * Pass boundaries: sp_core_scan() only ends a full scan when it is called
 * again after the cursor passed the last page, and a call returns once it
 * counted a scanned page. So tc_pass() calls it until the cursor stands
 * after the last page, and layouts end with a page that is always counted
 * (a unique "sentinel" page): no call can then run past the boundary.
 */
#ifndef SP_CORETEST_H
#define SP_CORETEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"
#include "fake.h"
#include "samepage.h"

struct tcore {
	struct sp_fake f;
	struct sp_core c;
	uint8_t *shadow; /* what each page must read */
	size_t npages;
};

/* A fake area of npages with a store of store_pages, default knobs except
 * smart_scan 0 (so every visit counts and counters are exact). The area is
 * not tracked yet: call tc_track(). */
static inline void tc_init(struct tcore *t, size_t npages, size_t store_pages)
{
	memset(t, 0, sizeof(*t));
	assert_int_equal(sp_fake_init(&t->f, npages, store_pages), 0);
	assert_int_equal(sp_core_init(&t->c, &t->f.host), 0);
	assert_int_equal(sp_core_add_space(&t->c, &t->f.space), 0); /* space 0 */
	t->c.knobs.smart_scan = 0;
	t->npages = npages;
	t->shadow = calloc(npages, SP_PAGE_SIZE);
	assert_non_null(t->shadow);
}

static inline void tc_destroy(struct tcore *t)
{
	sp_core_destroy(&t->c);
	sp_fake_destroy(&t->f);
	free(t->shadow);
}

/* Tracks pages [first, first + n) of the area as one region. */
static inline void tc_track(struct tcore *t, size_t first, size_t n)
{
	assert_int_equal(sp_core_add_range(&t->c, 0, sp_fake_addr(&t->f, first), n), 0);
}

/* The application writes tag's pattern over page i (tag 0: zeros). */
static inline void tc_fill(struct tcore *t, size_t i, uint32_t tag)
{
	sp_fake_fill(&t->f, i, tag);
	memcpy(t->shadow + i * SP_PAGE_SIZE, sp_fake_page(&t->f, i), SP_PAGE_SIZE);
}

/* The application writes one byte. */
static inline void tc_poke(struct tcore *t, size_t i, size_t off, uint8_t v)
{
	sp_fake_write(&t->f, i, off, &v, 1);
	t->shadow[i * SP_PAGE_SIZE + off] = v;
}

static inline int tc_at_end(const struct sp_core *c)
{
	uint32_t last;

	if (!c->rmap.nregions)
		return 1;
	last = c->rmap.nregions - 1;
	return c->cur_region > last || (c->cur_region == last && c->cur_page >= c->rmap.regions[last].npages);
}

/* One full pass over every tracked page (see the top of this file). */
static inline void tc_pass(struct tcore *t)
{
	uint64_t fs = t->c.cnt.full_scans;
	int at_end = tc_at_end(&t->c);

	do
		sp_core_scan(&t->c, 1, 0);
	while (!tc_at_end(&t->c));
	/* only the boundary before this pass may have been crossed */
	assert_int_equal(t->c.cnt.full_scans, fs + (at_end && t->c.rmap.nregions ? 1 : 0));
}

static inline void tc_passes(struct tcore *t, int n)
{
	while (n--)
		tc_pass(t);
}

static inline struct samepage_stats tc_stats(const struct tcore *t)
{
	struct samepage_stats s;

	sp_core_stats(&t->c, &s);
	return s;
}

/* Pages whose content differs from the shadow. */
static inline size_t tc_mismatches(const struct tcore *t)
{
	size_t bad = 0;

	for (size_t i = 0; i < t->npages; i++)
		bad += memcmp(sp_fake_page(&t->f, i), t->shadow + i * SP_PAGE_SIZE, SP_PAGE_SIZE) != 0;
	return bad;
}

/*
 * The counters against the fake's real state. Valid when no page was
 * written since the last pass (a write breaks COW in the fake at once, the
 * core learns it at its next visit):
 *   pages_shared  == store pages mapped by at least one page
 *   pages_sharing == pages mapping the store - pages_shared
 *   store pages allocated == pages_shared (no leak, nothing punched in use)
 *   no store page has more than max_page_sharing mappers
 *   ksm_zero_pages == pages the core marked zero, each reading zeros
 *   nothing frozen, nothing written while frozen
 */
static inline void tc_consistent(const struct tcore *t)
{
	const struct sp_fake *f = &t->f;
	struct samepage_stats s = tc_stats(t);
	uint32_t *users = calloc(f->store_cap, sizeof(*users));
	uint64_t shared = 0, mapping = 0, zero = 0;

	assert_non_null(users);
	for (size_t i = 0; i < f->npages; i++) {
		if (f->maps[i] >= 0) {
			assert_true(f->store_used[f->maps[i]]); /* never a punched page */
			users[f->maps[i]]++;
			mapping++;
		}
	}
	for (size_t pg = 0; pg < f->store_cap; pg++) {
		shared += users[pg] > 0;
		assert_true(users[pg] <= t->c.knobs.max_page_sharing);
	}
	for (uint32_t r = 0; r < t->c.rmap.nregions; r++) {
		const struct sp_region *g = &t->c.rmap.regions[r];

		for (uint64_t i = 0; i < g->npages; i++) {
			const struct sp_item *it = &t->c.rmap.items[g->first_id + i];
			size_t p = (g->start - sp_fake_addr(f, 0)) / SP_PAGE_SIZE + i;

			if (it->flags & SP_IT_ZERO) {
				zero++;
				assert_true(f->maps[p] < 0);
			}
			if (it->flags & SP_IT_STABLE) /* its node's page is the one it maps */
				assert_int_equal(f->maps[p], t->c.stable.nodes[it->link].pg);
		}
	}
	free(users);
	assert_int_equal(s.pages_shared, shared);
	assert_int_equal(s.pages_sharing, mapping - shared);
	assert_int_equal(f->store_pages_used, shared);
	assert_int_equal(s.ksm_zero_pages, zero);
	assert_int_equal(f->n_frozen_now, 0);
	assert_int_equal(f->n_write_while_frozen, 0);
	assert_int_equal(tc_mismatches(t), 0);
}

/* Makes merged pages "faulted in" (a read maps the store page): present and
 * file-mapped, as pagemap shows a merged page that has been read. */
static inline void tc_read_all(struct tcore *t)
{
	for (size_t i = 0; i < t->npages; i++)
		if (t->f.maps[i] >= 0)
			t->f.absent[i] = 0;
	t->f.writes++; /* the read faults */
}

static inline void tc_print(const char *what, const struct tcore *t)
{
	struct samepage_stats s = tc_stats(t);

	printf("  %-28s shared %llu sharing %llu unshared %llu volatile %llu chains %llu dups %llu zero %llu "
	       "remaps %llu\n",
	       what, (unsigned long long)s.pages_shared, (unsigned long long)s.pages_sharing,
	       (unsigned long long)s.pages_unshared, (unsigned long long)s.pages_volatile,
	       (unsigned long long)s.stable_node_chains, (unsigned long long)s.stable_node_dups,
	       (unsigned long long)s.ksm_zero_pages, (unsigned long long)t->f.n_remap);
}

#endif /* SP_CORETEST_H */
