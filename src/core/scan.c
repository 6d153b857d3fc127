/* SPDX-License-Identifier: MIT */
/*
 * scan.c - the scan cursor and what happens to each page it visits.
 *
 * The cursor walks every region page by page, in batches of up to
 * SP_BATCH_MAX pages: one query (present? still mapping the store?), one
 * read of the pages that need hashing, one XXH3 pass per page. Then each page
 * is classified, in the kernel's order:
 *
 *   1. already merged and still mapping its store page: nothing to do
 *      (with smart_scan, known without a query while the process took no
 *      page fault: "Trust" below); merged but written since (copy-on-write
 *      broken): drop the sharer;
 *   2. smart_scan: a page that stayed unmerged for a while is skipped on
 *      some visits (1, 2, 4 then 8 of them as it ages);
 *   3. changed since the previous visit: volatile, remember the new hash;
 *   4. all zeros and use_zero_pages: drop it to the kernel's zero page;
 *   5. equal to a stable page with room for a sharer: join it;
 *   6. equal to a page already in the unstable index: merge the two;
 *   7. otherwise: put it in the unstable index.
 *
 * With merge_across_nodes=0 the index key is the content hash mixed with
 * the page's NUMA node, which gives every node its own stable and unstable
 * index without keeping separate tables.
 *
 * Consecutive pages that merge the same way become one run (merge.h).
 * Classification never changes state; applying it does, so a page can be
 * classified again after the pending run was executed.
 *
 * Reaching the end of the last region completes a full scan: full_scans
 * grows, the unstable index is emptied, and the mapping budget is recounted.
 * The count of extra mappings is taken batch by batch behind the cursor, so
 * the end of a scan costs no walk over every page (it took 0.5 ms at 1 GiB,
 * half of a batch's time bound).
 */
#include <string.h>

#include "core/core.h"
#include "core/hash.h"
#include "core/merge.h"
#include "samepage.h"

#define PAGE SP_PAGE_SIZE

enum cls { CLS_VOLATILE, CLS_INSERT, CLS_STABLE, CLS_PAIR, CLS_ZERO };

struct verdict {
	enum cls cls;
	uint32_t node;	  /* CLS_STABLE: node to join; CLS_PAIR: full group or 0 */
	uint64_t pg;	  /* CLS_STABLE: its store page                          */
	uint32_t partner; /* CLS_PAIR                                            */
};

/* Forgets a page that is gone (not present): the kernel frees its rmap item. */
static void forget(struct sp_core *c, uint32_t id, struct sp_item *it)
{
	sp_core_leave_unstable(c, id, it);
	sp_core_unseen(c, it);
}

static struct verdict classify(struct sp_core *c, uint32_t idx, uint32_t id)
{
	const struct sp_item *it = sp_rmap_item(&c->rmap, id);
	const uint8_t *d = c->buf + (size_t)idx * PAGE;
	uint64_t h = c->keys[idx];
	struct verdict v = {.cls = CLS_INSERT};
	uint32_t g;
	int64_t j;

	if (!(it->flags & SP_IT_CHECKED) || it->hash != h) {
		v.cls = CLS_VOLATILE;
		return v;
	}
	/* only an anonymous page can be dropped: in a store mapping (one that
	 * was merged before) MADV_DONTNEED would bring back the store page at
	 * that offset, not zeros. Such a page merges like any content. */
	if (c->knobs.use_zero_pages && !(it->flags & SP_IT_FILEMAP) && sp_page_zero(d, c->content[idx])) {
		v.cls = CLS_ZERO;
		return v;
	}
	for (g = sp_stable_first(&c->stable, h); g; g = sp_stable_next(&c->stable, g, h)) {
		uint32_t pg = sp_stable_group_page(&c->stable, g);

		if (memcmp(d, sp_core_store_page(c, pg), PAGE))
			continue; /* a hash collision */
		v.node = sp_stable_pick(&c->stable, g, c->knobs.max_page_sharing);
		if (v.node) {
			v.cls = CLS_STABLE;
			v.pg = c->stable.nodes[v.node].pg;
			return v;
		}
		v.node = g; /* full: a new page of this content joins the group */
		break;
	}
	j = sp_unstable_find(&c->unstable, &c->rmap, h, id);
	if (j >= 0) {
		v.cls = CLS_PAIR;
		v.partner = (uint32_t)j;
	}
	return v;
}

/* Does verdict v for batch index idx continue the pending run? */
static int extends(struct sp_core *c, const struct sp_run *r, uint32_t idx, const struct verdict *v)
{
	uint32_t k;

	if (r->kind == SP_RUN_NONE || idx != r->i0 + r->n)
		return 0;
	switch (v->cls) {
	case CLS_STABLE:
		return r->kind == SP_RUN_STABLE && v->pg == r->pg0 + r->n;
	case CLS_ZERO:
		return r->kind == SP_RUN_ZERO;
	case CLS_PAIR:
		if (r->kind != SP_RUN_PAIR || v->partner != r->partner0 + r->n)
			return 0;
		if (sp_rmap_region_of(&c->rmap, v->partner) != (int)r->partner_region)
			return 0;
		/* two pages of one content in one run would make two store
		 * pages where the kernel makes one */
		for (k = 0; k < r->n; k++)
			if (c->keys[r->i0 + k] == c->keys[idx])
				return 0;
		return 1;
	default:
		return 0;
	}
}

static void start_or_extend(struct sp_core *c, struct sp_run *r, uint32_t idx, const struct verdict *v)
{
	if (r->kind == SP_RUN_NONE) {
		r->i0 = idx;
		r->n = 0;
		switch (v->cls) {
		case CLS_STABLE:
			r->kind = SP_RUN_STABLE;
			r->pg0 = v->pg;
			break;
		case CLS_ZERO:
			r->kind = SP_RUN_ZERO;
			break;
		default:
			r->kind = SP_RUN_PAIR;
			r->partner0 = v->partner;
			r->partner_region = (uint32_t)sp_rmap_region_of(&c->rmap, v->partner);
			break;
		}
	}
	if (v->cls == CLS_PAIR) {
		struct sp_item *pt = sp_rmap_item(&c->rmap, v->partner);

		/* the partner is taken: later pages must not pick it too */
		sp_core_leave_unstable(c, v->partner, pt);
		/* a partner in this batch that was frozen ahead belongs to
		 * this run now, which remaps or thaws it */
		if (v->partner >= r->id0 && v->partner - r->id0 < SP_BATCH_MAX &&
		    sp_rmap_region_of(&c->rmap, v->partner) == (int)r->region)
			c->frozen[v->partner - r->id0] = 0;
	}
	r->nodes[r->n++] = v->node;
}

static void apply(struct sp_core *c, struct sp_run *r, uint32_t idx, uint32_t id, const struct verdict *v)
{
	struct sp_item *it = sp_rmap_item(&c->rmap, id);

	it->hash = c->keys[idx];
	it->flags |= SP_IT_CHECKED;
	switch (v->cls) {
	case CLS_VOLATILE:
		return;
	case CLS_INSERT:
		sp_unstable_insert(&c->unstable, &c->rmap, id);
		c->cnt.pages_unshared++;
		return;
	default:
		start_or_extend(c, r, idx, v);
		return;
	}
}

/* Reads and hashes the pages of the batch marked in need[]. Pages that
 * could not be read are unmarked. */
void sp_core_read_hash(struct sp_core *c, struct sp_mem *m, uintptr_t addr, uint32_t lo, uint32_t hi, uint8_t *need)
{
	uint32_t i = lo, j;

	while (i < hi) {
		long got;

		if (!need[i]) {
			i++;
			continue;
		}
		for (j = i; j < hi && need[j]; j++)
			;
		got = m->ops->read(m, addr + ((uintptr_t)i << SP_PAGE_SHIFT), j - i, c->buf + (size_t)i * PAGE);
		if (got < 0)
			got = 0;
		for (uint32_t k = i; k < j; k++) {
			if ((long)(k - i) < got)
				c->content[k] = c->keys[k] = sp_hash_page(c->buf + (size_t)k * PAGE);
			else
				need[k] = 0;
		}
		i = j;
	}
}

/* Would page id, unchanged since its last visit, merge? Then it is frozen
 * before it is read: the one read serves as hash and as the verified
 * content a merge compares (a second read under freeze was a fifth of a
 * merging scan's copying). A guess: the indexes change as the batch goes,
 * and the content may have changed since the last visit; a page frozen in
 * vain is thawed at the batch's end. */
static int likely_merges(struct sp_core *c, uint32_t id, const struct sp_item *it)
{
	if (!(it->flags & SP_IT_CHECKED))
		return 0;
	if (c->knobs.use_zero_pages && !(it->flags & SP_IT_FILEMAP) && it->hash == sp_hash_zero())
		return 1;
	return sp_stable_first(&c->stable, it->hash) || sp_unstable_find(&c->unstable, &c->rmap, it->hash, id) >= 0;
}

/* Freezes the pages of the batch that likely_merges(), in runs. */
static void freeze_likely(struct sp_core *c, struct sp_mem *m, uintptr_t addr, uint32_t id0, uint32_t n,
			  const uint8_t *need)
{
	uint32_t i, j;

	for (i = 0; i < n; i++) {
		c->frozen[i] = 0;
		if (need[i])
			c->frozen[i] = (uint8_t)likely_merges(c, id0 + i, sp_rmap_item(&c->rmap, id0 + i));
	}
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && c->frozen[j] == c->frozen[i]; j++)
			;
		if (c->frozen[i] && m->ops->freeze(m, addr + ((uintptr_t)i << SP_PAGE_SHIFT), j - i))
			memset(c->frozen + i, 0, j - i);
	}
}

/* Thaws what freeze_likely() froze and no run took. */
static void thaw_unused(struct sp_core *c, struct sp_mem *m, uintptr_t addr, uint32_t n)
{
	uint32_t i, j;

	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && c->frozen[j] == c->frozen[i]; j++)
			;
		if (c->frozen[i])
			m->ops->thaw(m, addr + ((uintptr_t)i << SP_PAGE_SHIFT), j - i);
	}
	memset(c->frozen, 0, n);
}

static void read_and_hash(struct sp_core *c, struct sp_mem *m, uintptr_t addr, uint32_t n, uint8_t *need)
{
	uint32_t i;

	if (c->parallel && n >= 2 * SP_PAR_CHUNK)
		c->parallel(c->parallel_ctx, c, m, addr, n, need);
	else
		sp_core_read_hash(c, m, addr, 0, n, need);
	/* the index buckets of the batch are cache misses: start them all */
	for (i = 0; i < n; i++) {
		if (need[i]) {
			sp_unstable_prefetch(&c->unstable, c->keys[i]);
			sp_stable_prefetch(&c->stable, c->keys[i]);
		}
	}
	if (c->knobs.merge_across_nodes || !m->ops->node)
		return;
	if (m->ops->node(m, addr, n, c->nodes))
		return;
	for (i = 0; i < n; i++)
		if (need[i] && c->nodes[i] >= 0)
			c->keys[i] = sp_node_key(c->content[i], c->nodes[i]);
}

/* Smart scan, as the kernel ages its rmap items: every visit of a page that
 * is not merged ages it; from age 3 on it may be skipped, 1, 2, 4 and then
 * 8 visits in a row as it ages, with a real visit in between. Unlike the
 * kernel, a skipped page stays in the unstable index (parked, below). */
static int smart_skip(struct sp_core *c, uint32_t id, struct sp_item *it)
{
	uint8_t age = it->age;

	if (!c->knobs.smart_scan)
		return 0;
	if (age != UINT8_MAX)
		it->age++;
	if (age < 3)
		return 0;
	if (!it->skip) {
		it->skip = age <= 3 ? 1 : age <= 5 ? 2 : age <= 8 ? 4 : 8;
		return 0;
	}
	it->skip--;
	c->cnt.pages_skipped++;
	sp_core_leave_unstable(c, id, it);
	/* Parked: findable in this scan's unstable index by the hash of its
	 * last visit, though not read now. Without this, two equal pages
	 * whose skip cycles are out of step (they became equal at different
	 * scans) could each be skipped whenever the other is visited, and
	 * never meet in one scan's index. A hit is verified under freeze as
	 * any other; the page counts as volatile, as a skipped one in the
	 * kernel, and is not read, so skipping saves what it saved before. */
	if (it->flags & SP_IT_CHECKED) {
		sp_unstable_insert(&c->unstable, &c->rmap, id);
		it->flags |= SP_IT_PARKED;
	}
	return 1;
}

/* Trust: leaving merged pages unqueried.
 *
 * In settled memory nearly every page is merged, and a merged page's visit
 * is nothing but the query that it still maps its store page. With one
 * store mapping per merged page (twins at random places), that query walks
 * one kernel mapping per page, which cost as much as ksmd's whole visit.
 * A merged page stops mapping its store page only through something the
 * core does itself (counted in c->changes) or through its process: a write
 * (copy-on-write) is a page fault of one of its threads, a system call
 * writing into it too, and MADV_DONTNEED is seen by the backend; all of
 * them grow ops->writes(). So, with smart_scan:
 *
 *   - a full scan that began and ended with the same writes() and no change
 *     by the core, every batch of it queried or trusted, leaves every merged
 *     page's record true: the space is trusted from then on;
 *   - a trusted space's merged pages keep their record without a query
 *     while writes() and c->changes stay as they were when trust began; a
 *     batch seeing either moved queries all its pages, and the space needs
 *     a clean full scan again;
 *   - even trusted, a merged page is queried every SP_VERIFY_SCANS full
 *     scans (by groups of SP_BATCH_MAX ids, spread over the scans), for
 *     writers writes() does not count: another process's process_vm_writev
 *     or ptrace, seen that late at worst.
 * A write that lands between the writes() read and the batch's use of it
 * is seen at the next full scan: its count is read at the scan's end. */
static void trust_scan_start(struct sp_core *c)
{
	c->scan_changes = c->changes;
	for (uint32_t s = 0; s < c->nspaces; s++) {
		struct sp_mem *m = c->spaces[s];
		struct sp_trust *t = &c->trust[s];

		t->scan_clean = m && m->ops->writes && c->knobs.smart_scan;
		if (t->scan_clean)
			t->scan_writes = m->ops->writes(m);
	}
}

static void trust_scan_end(struct sp_core *c)
{
	for (uint32_t s = 0; s < c->nspaces; s++) {
		struct sp_mem *m = c->spaces[s];
		struct sp_trust *t = &c->trust[s];
		uint64_t w;

		t->trusted = 0;
		if (!t->scan_clean || !m || !m->ops->writes || !c->knobs.smart_scan || c->changes != c->scan_changes)
			continue;
		w = m->ops->writes(m);
		if (w != t->scan_writes)
			continue;
		t->trusted = 1;
		t->writes = w;
	}
	c->trust_changes = c->scan_changes;
}

/* May merged pages of space s go unqueried in the batch about to start? */
static int trusted(struct sp_core *c, uint32_t s, struct sp_mem *m)
{
	struct sp_trust *t = &c->trust[s];
	uint64_t w;

	if (!t->scan_clean && !t->trusted)
		return 0;
	if (!m->ops->writes || !c->knobs.smart_scan || c->changes != c->scan_changes) {
		t->scan_clean = t->trusted = 0;
		return 0;
	}
	w = m->ops->writes(m);
	if (w != t->scan_writes)
		t->scan_clean = 0;
	if (t->trusted && (w != t->writes || c->changes != c->trust_changes))
		t->trusted = 0;
	return t->trusted;
}

/* Is the merged page id due for its periodic query in this full scan? */
static int verify_due(const struct sp_core *c, uint32_t id)
{
	return ((id / SP_BATCH_MAX) + c->seq) % SP_VERIFY_SCANS == 0;
}

/* Fills c->flags[0..n) for the batch at addr: queried, except the merged
 * pages a trusted space keeps as recorded (outside the queried span). */
static int query_batch(struct sp_core *c, struct sp_mem *m, uint32_t s, uintptr_t addr, uint32_t id0, uint32_t n)
{
	uint32_t lo = n, hi = 0, i;

	if (c->trust[s].scan_clean || c->trust[s].trusted) {
		for (i = 0; i < n; i++) {
			const struct sp_item *it = sp_rmap_item(&c->rmap, id0 + i);

			if ((it->flags & (SP_IT_STABLE | SP_IT_ZERO)) && !verify_due(c, id0 + i))
				continue;
			if (i < lo)
				lo = i;
			hi = i + 1;
		}
	}
	/* writes() is read only when it may save a query */
	if ((lo == 0 && hi == n) || !trusted(c, s, m))
		return m->ops->query(m, addr, n, c->flags);
	for (i = 0; i < n; i++) {
		const struct sp_item *it = sp_rmap_item(&c->rmap, id0 + i);

		if (i >= lo && i < hi)
			continue;
		/* as last queried: still mapping its store page (present
		 * or not), or the zero page */
		c->flags[i] =
			(it->flags & SP_IT_STABLE) && !(it->flags & SP_IT_ABSENT) ? SP_PG_PRESENT | SP_PG_FILE : 0;
	}
	if (lo >= hi)
		return 0;
	return m->ops->query(m, addr + ((uintptr_t)lo << SP_PAGE_SHIFT), hi - lo, c->flags + lo);
}

/* One batch: pages [p0, p0 + n) of region r. Returns pages scanned; *used
 * gets how many pages of the batch were dealt with. When merging runs late
 * (deadline_ns passed) the batch ends early and the rest of it is put back
 * as it was, for the next call. */
static uint32_t scan_batch(struct sp_core *c, uint32_t r, uint64_t p0, uint32_t n, uint64_t deadline_ns, uint32_t *used)
{
	const struct sp_region *reg = &c->rmap.regions[r];
	struct sp_mem *m = sp_core_mem(c, r);
	uintptr_t addr = reg->start + (uintptr_t)(p0 << SP_PAGE_SHIFT);
	uint32_t id0 = reg->first_id + (uint32_t)p0, i, scanned = 0;
	uint8_t need[SP_BATCH_MAX], counted[SP_BATCH_MAX], skipped[SP_BATCH_MAX];
	uint8_t age[SP_BATCH_MAX], skip[SP_BATCH_MAX];
	struct sp_run run = {.kind = SP_RUN_NONE, .region = r, .id0 = id0, .addr0 = addr};

	*used = n;
	if (query_batch(c, m, reg->space, addr, id0, n))
		return 0;
	for (i = 0; i < n; i++) {
		struct sp_item *it = sp_rmap_item(&c->rmap, id0 + i);
		uint8_t f = c->flags[i];
		int present = (f & (SP_PG_PRESENT | SP_PG_SWAPPED)) && !(f & SP_PG_ZEROPFN);

		need[i] = counted[i] = skipped[i] = 0;
		age[i] = it->age;
		skip[i] = it->skip;
		if (it->flags & SP_IT_ZERO) {
			if (present && !(f & SP_PG_FILE)) { /* written since */
				it->flags &= ~SP_IT_ZERO;
				c->cnt.ksm_zero_pages--;
			} else {
				continue;
			}
		}
		if (it->flags & SP_IT_STABLE) {
			if (!present || (f & SP_PG_FILE)) {
				/* still mapping its store page (or not
				 * faulted in yet, which maps it too) */
				it->flags = (uint8_t)(present ? it->flags & ~SP_IT_ABSENT : it->flags | SP_IT_ABSENT);
				counted[i] = (uint8_t)present;
				scanned += present;
				continue;
			}
			sp_merge_drop_sharer(c, it); /* copy-on-write was broken */
		}
		if (!present) {
			if (it->flags & SP_IT_SEEN)
				forget(c, id0 + i, it);
			continue;
		}
		sp_core_seen(c, it);
		if (smart_skip(c, id0 + i, it)) {
			skipped[i] = 1;
			continue;
		}
		sp_core_leave_unstable(c, id0 + i, it); /* last scan's entry ends here */
		need[i] = counted[i] = 1;
		scanned++;
	}
	freeze_likely(c, m, addr, id0, n, need);
	read_and_hash(c, m, addr, n, need);
	for (i = 0; i < n; i++) {
		struct verdict v;

		if (!need[i])
			continue;
		v = classify(c, i, id0 + i);
		if (run.kind != SP_RUN_NONE && !extends(c, &run, i, &v)) {
			sp_merge_run(c, &run);
			if (deadline_ns && sp_core_now(c) >= deadline_ns)
				break; /* out of time: page i onwards wait */
			v = classify(c, i, id0 + i);
		}
		apply(c, &run, i, id0 + i, &v);
	}
	sp_merge_run(c, &run);
	thaw_unused(c, m, addr, n);
	if (c->remapped) { /* nothing is frozen now: release blocked writers */
		for (uint32_t sp = 0; sp < c->nspaces; sp++)
			if (c->space_remapped[sp]) {
				c->space_remapped[sp] = 0;
				if (c->spaces[sp]) {
					c->spaces[sp]->ops->wake_blocked(c->spaces[sp]);
					sp_core_collect_failed_remaps(c, sp);
				}
			}
		c->remapped = 0;
	}
	if (i < n) {
		*used = i;
		for (; i < n; i++) {
			struct sp_item *it = sp_rmap_item(&c->rmap, id0 + i);

			it->age = age[i];
			it->skip = skip[i];
			c->cnt.pages_skipped -= skipped[i];
			scanned -= counted[i];
		}
	}
	return scanned;
}

static void end_full_scan(struct sp_core *c)
{
	sp_core_advisor_stop(c);
	c->cnt.full_scans++;
	trust_scan_end(c);
	c->seq++;
	c->cnt.mappings = sp_core_count_done(c);
	sp_unstable_reset(&c->unstable, c->rmap.tracked);
	c->recount_wanted = 1; /* the engine recounts mappings outside its lock */
}

#define RECOUNT_STEP 32768 /* pages of a full mapping count a call walks */
#define PRUNE_STEP   8192  /* stable nodes a call looks at: tens of microseconds */

/* Every stable_node_chains_prune_millisecs a pass over the stable nodes
 * starts, taken PRUNE_STEP nodes per call. */
static void maybe_prune(struct sp_core *c, uint64_t now)
{
	uint64_t period = (uint64_t)c->knobs.stable_node_chains_prune_millisecs * 1000000ull;

	if (!c->prune_next) {
		if (now - c->last_prune_ns < period)
			return;
		c->last_prune_ns = now;
	}
	sp_stable_prune(&c->stable, &c->prune_next, PRUNE_STEP);
}

uint64_t sp_core_scan(struct sp_core *c, uint64_t max_pages, uint64_t deadline_ns)
{
	uint64_t scanned = 0, t0 = sp_core_now(c), took, now = t0;
	uint64_t cpu0 = sp_core_cpu(c), cnow = cpu0;

	/* a batch has a fixed cost too (a pagemap read, a process_vm_readv:
	 * 20-50 us) that the per-page estimate below does not see: keep a
	 * sixteenth of the bound in hand so the last batch ends inside it */
	if (deadline_ns > t0)
		deadline_ns -= (deadline_ns - t0) / 16;
	maybe_prune(c, t0);
	sp_core_recount_step(c, RECOUNT_STEP);
	c->slow_page_ns -= c->slow_page_ns / 16; /* forget slow pages slowly */
	while (scanned < max_pages && c->rmap.nregions) {
		const struct sp_region *reg;
		uint64_t left, t;
		uint32_t n, used;

		if (c->cur_region >= c->rmap.nregions) {
			/* as ksmd's batch, this one ends with the full scan */
			c->cur_region = 0;
			c->cur_page = 0;
			end_full_scan(c);
			break;
		}
		reg = &c->rmap.regions[c->cur_region];
		if (c->cur_page >= reg->npages) {
			c->cur_region++;
			c->cur_page = 0;
			continue;
		}
		if (c->cur_region == 0 && c->cur_page == 0) {
			sp_core_advisor_start(c);
			trust_scan_start(c);
		}
		left = reg->npages - c->cur_page;
		n = left < SP_BATCH_MAX ? (uint32_t)left : SP_BATCH_MAX;
		if (deadline_ns) {
			/* as many pages as fit before the deadline at the
			 * slowest per-page cost seen lately (merging pages one
			 * by one costs 20x more than hashing them) */
			uint64_t room = deadline_ns > now ? deadline_ns - now : 0;
			uint64_t fit = c->slow_page_ns ? room / c->slow_page_ns : SP_BATCH_MAX;

			if (!fit && scanned)
				break;
			if (fit < n)
				n = fit ? (uint32_t)fit : 1;
		}
		scanned += scan_batch(c, c->cur_region, c->cur_page, n, deadline_ns, &used);
		sp_core_count_behind(c, c->cur_region, c->cur_page, c->cur_page + used);
		c->cur_page += used;
		/* the cost per page in CPU time: time the scanner was preempted
		 * (a busy host, the client threads it works for on a 2-CPU
		 * machine) is nothing the next batch will cost; counted in
		 * wall time, one preemption made batches of 1-4 pages for a
		 * while, each with its fixed cost, which kept the estimate up */
		t = sp_core_now(c);
		{
			uint64_t ct = sp_core_cpu(c);

			if (used && (ct - cnow) / used > c->slow_page_ns)
				c->slow_page_ns = (ct - cnow) / used;
			cnow = ct;
		}
		now = t;
		if (deadline_ns && now >= deadline_ns)
			break;
	}
	c->cnt.pages_scanned += scanned;
	/* CPU time: time the scanner was preempted did not keep anyone waiting */
	took = sp_core_cpu(c) - cpu0;
	c->cnt.batches++;
	c->cnt.batches_over += took > (uint64_t)c->knobs.batch_usecs * 1000;
	if (took > c->cnt.longest_batch_ns)
		c->cnt.longest_batch_ns = took;
	return scanned;
}
