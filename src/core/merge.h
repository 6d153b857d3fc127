/* SPDX-License-Identifier: MIT */
/*
 * merge.h - merging runs of pages (internal to src/core).
 *
 * The scan collects consecutive pages of a batch that merge "the same way"
 * into one pending run, and merge.c executes it with one freeze, one
 * re-read and one remap per side (no re-read of the scanned side when the
 * scan froze it before reading it):
 *
 *   SP_RUN_STABLE  page k of the run joins store page pg0 + k
 *   SP_RUN_PAIR    page k pairs with the unstable page partner0 + k: both
 *                  sides are remapped onto new consecutive store pages
 *   SP_RUN_ZERO    every page is all zeros and is dropped to the zero page
 *
 * Because a run's store pages are consecutive, the run becomes one mapping
 * (and extends its neighbour's mapping when that one ends at pg0 - 1).
 * Pages whose content changed between hashing and freezing are thawed and
 * left alone; the rest of the run still merges.
 */
#ifndef SP_MERGE_H
#define SP_MERGE_H

#include "core/core.h"

enum sp_run_kind { SP_RUN_NONE, SP_RUN_STABLE, SP_RUN_PAIR, SP_RUN_ZERO };

struct sp_run {
	enum sp_run_kind kind;
	uint32_t region;	      /* region of the scanned pages                */
	uint32_t i0, n;		      /* batch indices i0 .. i0 + n - 1             */
	uint32_t id0;		      /* item id of batch index 0                   */
	uintptr_t addr0;	      /* address of batch index 0                   */
	uint64_t pg0;		      /* SP_RUN_STABLE: store page of the first page */
	uint32_t nodes[SP_BATCH_MAX]; /* SP_RUN_STABLE: node per page          */
	uint32_t partner0;	      /* SP_RUN_PAIR: partner id of the first page   */
	uint32_t partner_region;
};

/* Executes and empties the run. */
void sp_merge_run(struct sp_core *c, struct sp_run *run);

/* Drops one sharer of item id (merged) and frees the store page if it was
 * the last. */
void sp_merge_drop_sharer(struct sp_core *c, struct sp_item *it);

#endif /* SP_MERGE_H */
