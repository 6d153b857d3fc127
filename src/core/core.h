/* SPDX-License-Identifier: MIT */
/*
 * core.h - the merging algorithm, over the memory interface it owns.
 *
 * Nothing under src/core issues a system call: it sees memory only through
 * memory.h (struct sp_mem for each address space, struct sp_host for the
 * store and clocks), so the same code drives the engine (this process, one
 * address space), a daemon (one address space per client, one core per
 * merge domain) and the tests (fake memory).
 *
 * The core is not thread safe: the engine serialises every call with its own
 * lock.
 */
#ifndef SP_CORE_H
#define SP_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/knobs.h"
#include "core/rmap.h"
#include "core/stable.h"
#include "core/unstable.h"
#include "core/memory.h"

/* Counters kept by the scan; the rest of struct samepage_stats is derived. */
struct sp_counters {
	uint64_t pages_scanned;
	uint64_t pages_skipped;
	uint64_t full_scans;
	uint64_t pages_unshared;
	uint64_t ksm_zero_pages;
	uint64_t longest_batch_ns;
	uint64_t batches, batches_over;
	uint64_t merge_failures; /* merges abandoned: content changed, ENOMEM, ... */
	uint64_t rmap_items;	 /* items with SP_IT_SEEN                           */
	uint64_t mappings;	 /* extra mappings, counted at full-scan ends      */
};

#define SP_BATCH_MAX 64 /* pages read, hashed and merged together */
#define SP_PAR_CHUNK 16 /* pages one scanner thread reads and hashes at a time */

/* advisor_mode=scan-time state (advisor.c) */
struct sp_advisor {
	int started;
	uint64_t start_ns;
	uint64_t scan_time; /* seconds, previous full scan */
	uint64_t change;    /* percent, smoothed            */
	uint64_t cpu_ns;    /* scanner CPU at the previous scan's end */
};

/* The mapping count of the pages the cursor has passed in this full scan
 * (sp_core_count_behind): the walk that counting takes is spread over the
 * scan's batches instead of running at once when the scan ends. */
struct sp_mapcount {
	int active;	 /* a region is being counted           */
	uint32_t region; /* which one                           */
	uint64_t next;	 /* the page its count has reached      */
	int64_t prev;	 /* the previous page's mapping state   */
	uint64_t segs;	 /* mappings of that region so far      */
	uint64_t total;	 /* extra mappings of the regions done  */
	int stale;	 /* regions changed or were unmerged during the scan:
			  * count them all when it ends */
};

/* Per address space: may merged pages go unqueried (scan.c, "trust")? */
struct sp_trust {
	uint64_t writes;      /* ops->writes() when trust was established     */
	uint64_t scan_writes; /* ops->writes() when this full scan began      */
	uint8_t trusted;      /* every merged page's record was true at writes */
	uint8_t scan_clean;   /* this full scan began with scan_writes and has
			       * seen no change since                      */
};

/* A merged page is queried at least every SP_VERIFY_SCANS full scans even
 * while trusted: writes that ops->writes() cannot count (another process's)
 * are seen that late at worst, as smart_scan sees a skipped page's. */
#define SP_VERIFY_SCANS 8

struct sp_core {
	struct sp_host *host;	 /* store and clocks                        */
	struct sp_mem **spaces;	 /* address spaces by index (NULL: removed) */
	uint32_t nspaces;	 /* indices handed out                      */
	uint8_t *space_remapped; /* per space: remapped in this batch       */
	struct sp_trust *trust;	 /* per space (scan.c)                      */
	uint64_t changes;	 /* mapping changes the core made (merges,
				  * unmerges, ranges): any ends all trust  */
	uint64_t trust_changes;	 /* changes when trust was established      */
	uint64_t scan_changes;	 /* changes when this full scan began       */
	struct sp_knobs knobs;
	struct sp_rmap rmap;	     /* regions and per-page items        */
	struct sp_stable stable;     /* store pages and their index       */
	struct sp_unstable unstable; /* this scan's unique pages          */
	struct sp_counters cnt;
	struct sp_advisor advisor;

	/* scan cursor */
	uint32_t cur_region; /* index into rmap.regions            */
	uint64_t cur_page;   /* next page of that region           */
	uint8_t seq;	     /* full_scans, low bits: unstable gen */

	uint64_t last_prune_ns;
	uint32_t prune_next; /* next stable node of a prune pass, 0: none under way */
	struct sp_mapcount mapcount;
	struct sp_mapcount recount; /* a walk over every page, a slice per call (mapcount.c) */
	/* optional: reads and hashes a batch with several threads, each
	 * calling sp_core_read_hash on disjoint ranges (the engine's pool) */
	void (*parallel)(void *ctx, struct sp_core *c, struct sp_mem *m, uintptr_t addr, uint32_t n, uint8_t *need);
	void *parallel_ctx;
	uint64_t slow_page_ns; /* slowest recent cost per page, decaying: sizes batches */
	int recount_wanted;    /* a full scan ended: mappings should be recounted */
	int remapped;	       /* this batch remapped pages: wake_blocked() at its end */

	/* scratch for one batch */
	uint8_t flags[SP_BATCH_MAX];
	uint64_t keys[SP_BATCH_MAX];	/* index keys: content hash, mixed with the node */
	uint64_t content[SP_BATCH_MAX]; /* content hashes (XXH3)                         */
	int nodes[SP_BATCH_MAX];
	uint8_t frozen[SP_BATCH_MAX]; /* frozen before its read (scan.c): buf is verified content */
	uint8_t *buf;		      /* SP_BATCH_MAX pages: the batch's content */
	uint8_t *verify;	      /* SP_BATCH_MAX pages: re-read under freeze */
	uint8_t *partner;	      /* SP_BATCH_MAX pages: partner pages      */
};

/* Stats as struct samepage_stats fields, computed from the core. */
struct samepage_stats;

/* Returns 0 or -ENOMEM. */
int sp_core_init(struct sp_core *c, struct sp_host *host);
void sp_core_destroy(struct sp_core *c);

/* Adds an address space; returns its index (>= 0) or -ENOMEM. */
int sp_core_add_space(struct sp_core *c, struct sp_mem *m);
/* Forgets an address space that is gone (its process exited): its pages
 * leave every index without touching its memory, store pages that lose
 * their last sharer are freed. */
void sp_core_drop_space(struct sp_core *c, uint32_t space);

/* Tracks [start, start + npages pages) of address space `space`; pieces
 * already tracked are left as they are. 0 or -errno. */
int sp_core_add_range(struct sp_core *c, uint32_t space, uintptr_t start, uint64_t npages);
/* Breaks merges in [start, ...) of `space` and stops tracking it. 0 or
 * -errno. */
int sp_core_remove_range(struct sp_core *c, uint32_t space, uintptr_t start, uint64_t npages);

/* Pages of [start, start + npages pages) of `space` that were made plain
 * anonymous memory behind the core's back (MADV_DONTNEED on merged pages):
 * their merges end (sharers dropped, store pages freed when unused). */
void sp_core_pages_anon(struct sp_core *c, uint32_t space, uintptr_t start, uint64_t npages);
/* Remaps of address space `space` that its backend reports as not done
 * (ops->failed_remaps): their merges end at once, before any later batch
 * can visit the pages again (a report applied after the scanner merged a
 * page anew would end the new merge and lose track of a mapped store
 * page). The pages stay marked as lying in a store mapping, which they
 * may (a page whose copy-on-write had been broken): restoring them later
 * costs a copy, forgetting one would leave it out of the restore. */
void sp_core_collect_failed_remaps(struct sp_core *c, uint32_t space);
void sp_core_remap_undone(struct sp_core *c, uint32_t space, uintptr_t start, uint64_t npages);
/* Calls fn(ctx, addr, n, done) on each run (up to SP_BATCH_MAX pages) of
 * pages of [start, ...) of `space` that sit in store mappings; fn sets
 * done[i] for the pages it made plain anonymous memory, and returns 0.
 * Their merges end. */
void sp_core_filemap_runs(struct sp_core *c, uint32_t space, uintptr_t start, uint64_t npages,
			  int (*fn)(void *ctx, uintptr_t addr, size_t n, uint8_t *done), void *ctx);

/* Scans up to max_pages present pages, stopping early when deadline_ns
 * (backend clock, 0: none) passes or a full scan completes (as a ksmd batch
 * does). Returns pages scanned. */
uint64_t sp_core_scan(struct sp_core *c, uint64_t max_pages, uint64_t deadline_ns);

/* run=2: breaks every merge, forgets every stable page. 0 or -errno. */
int sp_core_unmerge_all(struct sp_core *c);

/* Reads pages [lo, hi) of the batch at addr of m that need[] marks and
 * hashes them; unreadable pages are unmarked. Safe to call from several
 * threads on disjoint ranges of one batch. */
void sp_core_read_hash(struct sp_core *c, struct sp_mem *m, uintptr_t addr, uint32_t lo, uint32_t hi, uint8_t *need);

/* advisor.c: mode switch, start and end of a full scan */
void sp_core_advisor_reset(struct sp_core *c);
void sp_core_advisor_start(struct sp_core *c);
void sp_core_advisor_stop(struct sp_core *c);

/* Called in the parent before fork(): pins every current store page. */
void sp_core_pin_for_fork(struct sp_core *c);

void sp_core_stats(const struct sp_core *c, struct samepage_stats *out);
struct samepage_region_stats;
void sp_core_range_stats(const struct sp_core *c, uint32_t space, uintptr_t start, uint64_t npages,
			 struct samepage_region_stats *out);

/* extra kernel mappings the merges created (walks every item) */
uint64_t sp_core_count_mappings(const struct sp_core *c);
/* the same count, taken as the cursor passes pages [from, to) of region r;
 * sp_core_count_done() ends it at the end of a full scan and returns it.
 * Exact for a scan in which nothing behind the cursor changed; a pair merge
 * with a page already passed is seen by the next scan's count. */
void sp_core_count_behind(struct sp_core *c, uint32_t r, uint64_t from, uint64_t to);
uint64_t sp_core_count_done(struct sp_core *c);
/* Goes on with a walk over every page that a scan with stale counts asked
 * for, up to `pages` pages; at its end the count becomes cnt.mappings. */
void sp_core_recount_step(struct sp_core *c, uint64_t pages);

/* bytes of engine metadata right now */
uint64_t sp_core_metadata_bytes(const struct sp_core *c);

/* The host's clocks and store, shorter. */
static inline uint64_t sp_core_now(const struct sp_core *c)
{
	return c->host->ops->now_ns(c->host);
}

static inline uint64_t sp_core_cpu(const struct sp_core *c)
{
	return c->host->ops->cpu_ns(c->host);
}

static inline void *sp_core_store_page(const struct sp_core *c, uint64_t pg)
{
	return c->host->ops->store_page(c->host, pg);
}

static inline void sp_core_store_free(const struct sp_core *c, uint64_t pg)
{
	c->host->ops->store_free(c->host, pg);
}

/* The address space of region r. */
static inline struct sp_mem *sp_core_mem(const struct sp_core *c, uint32_t r)
{
	return c->spaces[c->rmap.regions[r].space];
}

/* Calls fn(c, r, off, n, arg) on the part of each region of `space` inside
 * [start, start + npages pages) (range.c). */
void sp_core_for_regions(struct sp_core *c, uint32_t space, uintptr_t start, uint64_t npages,
			 void (*fn)(struct sp_core *c, uint32_t r, uint64_t off, uint64_t n, void *arg), void *arg);

/* Item bookkeeping shared by scan.c, merge.c and unmerge.c. */
static inline void sp_core_seen(struct sp_core *c, struct sp_item *it)
{
	if (!(it->flags & SP_IT_SEEN)) {
		it->flags |= SP_IT_SEEN;
		c->cnt.rmap_items++;
	}
}

static inline void sp_core_unseen(struct sp_core *c, struct sp_item *it)
{
	if (it->flags & SP_IT_SEEN)
		c->cnt.rmap_items--;
	it->flags &= ~(SP_IT_SEEN | SP_IT_CHECKED);
}

static inline void sp_core_leave_unstable(struct sp_core *c, uint32_t id, struct sp_item *it)
{
	if (!(it->flags & SP_IT_UNSTABLE))
		return;
	sp_unstable_remove(&c->unstable, &c->rmap, id);
	if (!(it->flags & SP_IT_PARKED))
		c->cnt.pages_unshared--;
	it->flags &= ~(SP_IT_UNSTABLE | SP_IT_PARKED);
}

/* Kernel memory one extra mapping costs (vm_area_struct, its share of the
 * maple tree, anon_vma chains), counted against general_profit. Measured
 * with bench/mapping_cost.c on Linux 6.18: 280-302 bytes of slab each. */
#define SP_MAPPING_COST 300

#endif /* SP_CORE_H */
