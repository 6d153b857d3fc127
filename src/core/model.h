/* SPDX-License-Identifier: MIT */
/*
 * model.h - what the kernel's KSM would make of a set of pages, computed
 * from their content hashes alone (the estimator's model; no syscalls).
 *
 * Input: one record per scanned page, {key, vma, off}. The key is the page's
 * 64-bit XXH3 content hash (hash.h), mixed with its NUMA node when
 * merge_across_nodes=0 (sp_node_key), or SP_MODEL_ZERO for an all-zero page
 * when use_zero_pages=1. vma/off only identify the page for the caller.
 *
 * The outcome of one content present on k pages, with max_page_sharing m,
 * is the one ksmd settles at on a static workload:
 *   - a KSM page ("dup") holds at most m sharers; dups fill one at a time;
 *   - creating a KSM page takes two pages, so a single page left over when
 *     every dup is full stays unshared;
 *   - pages_shared counts KSM pages, pages_sharing the other sharers
 *     (sharers - pages_shared);
 *   - the first KSM page of a content is a plain stable node; a second one
 *     turns the content into a chain: stable_node_chains += 1 and
 *     stable_node_dups += KSM pages of that content;
 *   - with use_zero_pages=1 every all-zero page is mapped to the kernel's
 *     zero page on its own (ksm_zero_pages), no partner needed;
 *   - an all-zero page inside a transparent huge page (THP) is freed
 *     without any KSM counter when thp_split_zero is set (Linux 6.12+):
 *     KSM splits a THP before merging one of its pages, and the split maps
 *     every all-zero subpage to the shared zero page, after which ksmd
 *     skips it and drops its rmap item. KSM tries such a merge as soon as
 *     another all-zero page exists (or at once with use_zero_pages=1); the
 *     model assumes it does (a lone zero page would stay);
 *   - general_profit = (pages_sharing + ksm_zero_pages) * 4096
 *                      - rmap_items * SP_MODEL_RMAP_ITEM,
 *     one rmap item per scanned page that is not freed by a THP split.
 *
 * Collisions. The kernel proves equality with memcmp; the model trusts the
 * 64-bit hash. Two different pages share a 64-bit XXH3 value with
 * probability about n^2 / 2^65 over n pages: 1e-8 for 16 GiB (4 M pages),
 * 3e-6 for 256 GiB. An undetected collision would count one page as shared
 * that the kernel keeps apart: an error of one page, far below any figure
 * the estimate reports. No second hash or byte sample is used, because
 * neither would be a proof either.
 *
 * Memory: 16 bytes per scanned page, sorted in place (no extra buffer).
 */
#ifndef SP_MODEL_H
#define SP_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* key of an all-zero page merged with the kernel's zero page */
#define SP_MODEL_ZERO 0ull
/* key of an all-zero page inside a THP, freed when KSM splits the THP */
#define SP_MODEL_THP_ZERO 1ull

/* what sp_model_key is told about a page's content */
enum sp_model_zero {
	SP_MODEL_NOT_ZERO = 0,
	SP_MODEL_ALL_ZERO = 1,	   /* an all-zero page                   */
	SP_MODEL_ALL_ZERO_THP = 2, /* an all-zero subpage of a mapped THP */
};
/* sizeof(struct ksm_rmap_item) on 64-bit kernels */
#define SP_MODEL_RMAP_ITEM 64

struct sp_model_page {
	uint64_t key;
	uint32_t vma; /* caller's VMA index */
	uint32_t off; /* caller's page index inside it */
};

struct sp_model_knobs {
	uint32_t max_page_sharing; /* >= 2 */
	int use_zero_pages;
	int thp_split_zero; /* a THP split maps all-zero subpages to the zero page */
};

/* The outcome for one content. */
struct sp_model_group {
	uint64_t pages;	   /* k: pages with this content            */
	uint64_t shared;   /* KSM pages made                        */
	uint64_t sharing;  /* pages freed: sharers - shared         */
	uint64_t unshared; /* pages left alone (0 or 1, or k if k=1)*/
	uint64_t zero;	   /* pages mapped to the zero page         */
	uint64_t thp_zero; /* freed by a THP split (no KSM counter) */
	int chain;	   /* 1 when shared >= 2                    */
};

struct sp_model_result {
	uint64_t pages_scanned;
	uint64_t pages_shared;
	uint64_t pages_sharing;
	uint64_t pages_unshared;
	uint64_t ksm_zero_pages;
	uint64_t thp_zero_pages; /* freed by THP splits, in no KSM counter */
	uint64_t stable_node_chains;
	uint64_t stable_node_dups;
	int64_t general_profit;
	uint64_t contents;     /* distinct keys                         */
	uint64_t dup_contents; /* keys on two or more pages              */
};

/* The kernel's outcome for one content on k pages; zero is the content's
 * kind (enum sp_model_zero) as its key says: SP_MODEL_ALL_ZERO for
 * SP_MODEL_ZERO, SP_MODEL_ALL_ZERO_THP for SP_MODEL_THP_ZERO. */
void sp_model_group(uint64_t k, int zero, const struct sp_model_knobs *kn, struct sp_model_group *g);

/* Called once per content, pages[0..k) all have its key, ordered by
 * (vma, off). */
typedef void (*sp_model_visit)(void *ctx, const struct sp_model_page *pages, uint64_t k,
			       const struct sp_model_group *g);

/* Sorts pages[0..n) by (key, vma, off) in place, walks every content, sums
 * the counters into res and calls visit (may be NULL) for each content. */
void sp_model_run(struct sp_model_page *pages, size_t n, const struct sp_model_knobs *kn, struct sp_model_result *res,
		  sp_model_visit visit, void *ctx);

/* The sort alone (exposed for tests and the benchmark). */
void sp_model_sort(struct sp_model_page *pages, size_t n);

/* The key of a page for the model, from its content hash, whether it is all
 * zeros (enum sp_model_zero), and its NUMA node (nid < 0: merging across
 * nodes). */
uint64_t sp_model_key(uint64_t hash, int is_zero, int nid, const struct sp_model_knobs *kn);

#endif /* SP_MODEL_H */
