/* SPDX-License-Identifier: MIT */
/*
 * model.c - the kernel's KSM outcome from per-page content keys.
 *
 * The records are sorted by key in place, so every content becomes one run
 * and its page count is the run's length: no hash table, no memory beyond
 * the 16-byte records. The sort is an in-place MSD radix pass on the top
 * byte of the key (keys are hashes: uniform), then an introsort of each
 * bucket on (key, vma, off), which are distinct for distinct pages. The
 * rules of the outcome are in model.h.
 */
#include <string.h>

#include "core/hash.h"
#include "core/model.h"

static inline int page_less(const struct sp_model_page *a, const struct sp_model_page *b)
{
	if (a->key != b->key)
		return a->key < b->key;
	if (a->vma != b->vma)
		return a->vma < b->vma;
	return a->off < b->off;
}

static inline void page_swap(struct sp_model_page *a, struct sp_model_page *b)
{
	struct sp_model_page t = *a;

	*a = *b;
	*b = t;
}

static void insertion_sort(struct sp_model_page *p, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct sp_model_page v = p[i];
		size_t j = i;

		while (j > 0 && page_less(&v, &p[j - 1])) {
			p[j] = p[j - 1];
			j--;
		}
		p[j] = v;
	}
}

static void sift_down(struct sp_model_page *p, size_t root, size_t n)
{
	for (;;) {
		size_t c = 2 * root + 1;

		if (c >= n)
			return;
		if (c + 1 < n && page_less(&p[c], &p[c + 1]))
			c++;
		if (!page_less(&p[root], &p[c]))
			return;
		page_swap(&p[root], &p[c]);
		root = c;
	}
}

static void heap_sort(struct sp_model_page *p, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift_down(p, i, n);
	for (size_t i = n; i-- > 1;) {
		page_swap(&p[0], &p[i]);
		sift_down(p, 0, i);
	}
}

/* Introsort: quicksort with a median-of-three pivot, heapsort when the
 * recursion gets too deep, insertion sort for small ranges. */
static void intro_sort(struct sp_model_page *p, size_t n, int depth)
{
	while (n > 24) {
		size_t i, j, mid = n / 2;
		struct sp_model_page pivot;

		if (depth-- == 0) {
			heap_sort(p, n);
			return;
		}
		if (page_less(&p[mid], &p[0]))
			page_swap(&p[mid], &p[0]);
		if (page_less(&p[n - 1], &p[0]))
			page_swap(&p[n - 1], &p[0]);
		if (page_less(&p[n - 1], &p[mid]))
			page_swap(&p[n - 1], &p[mid]);
		pivot = p[mid];
		/* Hoare partition */
		i = 0;
		j = n - 1;
		for (;;) {
			while (page_less(&p[i], &pivot))
				i++;
			while (page_less(&pivot, &p[j]))
				j--;
			if (i >= j)
				break;
			page_swap(&p[i], &p[j]);
			i++;
			j--;
		}
		/* [0, j] <= pivot <= [j+1, n): recurse on the smaller side */
		if (j + 1 < n - (j + 1)) {
			intro_sort(p, j + 1, depth);
			p += j + 1;
			n -= j + 1;
		} else {
			intro_sort(p + j + 1, n - (j + 1), depth);
			n = j + 1;
		}
	}
	insertion_sort(p, n);
}

static int log2_floor(size_t n)
{
	int l = 0;

	while (n >>= 1)
		l++;
	return l;
}

void sp_model_sort(struct sp_model_page *p, size_t n)
{
	size_t count[256] = {0}, start[257], next[256];

	if (n < 4096) {
		intro_sort(p, n, 2 * log2_floor(n + 1) + 2);
		return;
	}
	/* American flag sort on the top byte: each record is swapped
	 * straight into its bucket. */
	for (size_t i = 0; i < n; i++)
		count[p[i].key >> 56]++;
	start[0] = 0;
	for (int b = 0; b < 256; b++) {
		start[b + 1] = start[b] + count[b];
		next[b] = start[b];
	}
	for (int b = 0; b < 256; b++) {
		while (next[b] < start[b + 1]) {
			struct sp_model_page v = p[next[b]];
			unsigned d = (unsigned)(v.key >> 56);

			while (d != (unsigned)b) {
				page_swap(&v, &p[next[d]++]);
				d = (unsigned)(v.key >> 56);
			}
			p[next[b]++] = v;
		}
	}
	for (int b = 0; b < 256; b++) {
		size_t m = start[b + 1] - start[b];

		intro_sort(p + start[b], m, 2 * log2_floor(m + 1) + 2);
	}
}

void sp_model_group(uint64_t k, int zero, const struct sp_model_knobs *kn, struct sp_model_group *g)
{
	uint64_t m = kn->max_page_sharing < 2 ? 2 : kn->max_page_sharing;
	uint64_t full, rest, sharers;

	memset(g, 0, sizeof(*g));
	g->pages = k;
	if (zero == SP_MODEL_ALL_ZERO_THP) {
		g->thp_zero = k;
		return;
	}
	if (zero && kn->use_zero_pages) {
		g->zero = k;
		return;
	}
	if (k < 2) {
		g->unshared = k;
		return;
	}
	full = k / m;
	rest = k % m;
	g->shared = full + (rest >= 2);
	sharers = full * m + (rest >= 2 ? rest : 0);
	g->sharing = sharers - g->shared;
	g->unshared = rest == 1;
	g->chain = g->shared >= 2;
}

uint64_t sp_model_key(uint64_t hash, int is_zero, int nid, const struct sp_model_knobs *kn)
{
	uint64_t key;

	if (is_zero == SP_MODEL_ALL_ZERO_THP && kn->thp_split_zero)
		return SP_MODEL_THP_ZERO;
	if (is_zero && kn->use_zero_pages)
		return SP_MODEL_ZERO;
	key = nid >= 0 ? sp_node_key(hash, nid) : hash;
	/* SP_MODEL_ZERO and SP_MODEL_THP_ZERO are reserved: a content hashing
	 * to them moves next door (one more way to collide, at 2^-63) */
	return key <= SP_MODEL_THP_ZERO ? SP_MODEL_THP_ZERO + 1 : key;
}

void sp_model_run(struct sp_model_page *pages, size_t n, const struct sp_model_knobs *kn, struct sp_model_result *res,
		  sp_model_visit visit, void *ctx)
{
	size_t i = 0;

	memset(res, 0, sizeof(*res));
	sp_model_sort(pages, n);
	while (i < n) {
		size_t j = i + 1;
		struct sp_model_group g;

		while (j < n && pages[j].key == pages[i].key)
			j++;
		sp_model_group(j - i,
			       pages[i].key == SP_MODEL_ZERO	   ? SP_MODEL_ALL_ZERO
			       : pages[i].key == SP_MODEL_THP_ZERO ? SP_MODEL_ALL_ZERO_THP
								   : SP_MODEL_NOT_ZERO,
			       kn, &g);
		res->contents++;
		if (j - i >= 2)
			res->dup_contents++;
		res->pages_shared += g.shared;
		res->pages_sharing += g.sharing;
		res->pages_unshared += g.unshared;
		res->ksm_zero_pages += g.zero;
		res->thp_zero_pages += g.thp_zero;
		if (g.chain) {
			res->stable_node_chains++;
			res->stable_node_dups += g.shared;
		}
		if (visit)
			visit(ctx, pages + i, j - i, &g);
		i = j;
	}
	res->pages_scanned = n;
	res->general_profit = (int64_t)((res->pages_sharing + res->ksm_zero_pages) * 4096) -
			      (int64_t)((n - res->thp_zero_pages) * SP_MODEL_RMAP_ITEM);
}
