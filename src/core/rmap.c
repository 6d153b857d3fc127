/* SPDX-License-Identifier: MIT */
/*
 * rmap.c - regions and their page ids.
 *
 * Ids are handed out first-fit from a list of freed ranges, else from the
 * end of the item array, so registering and unregistering memory reuses
 * metadata instead of growing it. A region that is cut in the middle keeps
 * its ids: the two pieces simply own the two remaining sub-ranges.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/rmap.h"

int sp_rmap_init(struct sp_rmap *rm)
{
	memset(rm, 0, sizeof(*rm));
	return 0;
}

void sp_rmap_destroy(struct sp_rmap *rm)
{
	free(rm->items);
	free(rm->regions);
	free(rm->free);
	memset(rm, 0, sizeof(*rm));
}

static int grow(void **p, uint32_t *cap, uint32_t need, size_t elem)
{
	uint32_t ncap;
	void *np;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap : 16;
	while (ncap < need) {
		if (ncap > UINT32_MAX / 2)
			return -ENOMEM;
		ncap *= 2;
	}
	np = realloc(*p, (size_t)ncap * elem);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}

/* Gives back ids [first, first + n): zeroes their items, merges free ranges. */
static int free_ids(struct sp_rmap *rm, uint32_t first, uint32_t n)
{
	uint32_t i, pos;

	if (!n)
		return 0;
	memset(&rm->items[first], 0, (size_t)n * sizeof(struct sp_item));
	if (first + n == rm->nids) { /* at the end: shrink the high-water mark */
		rm->nids = first;
		/* the last free range may now touch the end too */
		while (rm->nfree && rm->free[rm->nfree - 1].first + rm->free[rm->nfree - 1].n == rm->nids) {
			rm->nids = rm->free[rm->nfree - 1].first;
			rm->nfree--;
		}
		return 0;
	}
	for (pos = 0; pos < rm->nfree && rm->free[pos].first < first; pos++)
		;
	if (pos > 0 && rm->free[pos - 1].first + rm->free[pos - 1].n == first) {
		rm->free[pos - 1].n += n;
		if (pos < rm->nfree && first + n == rm->free[pos].first) {
			rm->free[pos - 1].n += rm->free[pos].n;
			memmove(&rm->free[pos], &rm->free[pos + 1], (rm->nfree - pos - 1) * sizeof(*rm->free));
			rm->nfree--;
		}
		return 0;
	}
	if (pos < rm->nfree && first + n == rm->free[pos].first) {
		rm->free[pos].first = first;
		rm->free[pos].n += n;
		return 0;
	}
	if (grow((void **)&rm->free, &rm->free_cap, rm->nfree + 1, sizeof(*rm->free)))
		return -ENOMEM;
	for (i = rm->nfree; i > pos; i--)
		rm->free[i] = rm->free[i - 1];
	rm->free[pos].first = first;
	rm->free[pos].n = n;
	rm->nfree++;
	return 0;
}

static int alloc_ids(struct sp_rmap *rm, uint64_t n, uint32_t *first)
{
	uint32_t i;

	for (i = 0; i < rm->nfree; i++) {
		if (rm->free[i].n >= n) {
			*first = rm->free[i].first;
			rm->free[i].first += n;
			rm->free[i].n -= n;
			if (!rm->free[i].n) {
				memmove(&rm->free[i], &rm->free[i + 1], (rm->nfree - i - 1) * sizeof(*rm->free));
				rm->nfree--;
			}
			return 0;
		}
	}
	if (n > (uint64_t)UINT32_MAX - 1 - rm->nids)
		return -ERANGE; /* more than 16 TiB tracked */
	if (grow((void **)&rm->items, &rm->cap, rm->nids + (uint32_t)n, sizeof(struct sp_item)))
		return -ENOMEM;
	*first = rm->nids;
	memset(&rm->items[rm->nids], 0, (size_t)n * sizeof(struct sp_item));
	rm->nids += n;
	return 0;
}

static int insert_region(struct sp_rmap *rm, struct sp_region reg)
{
	uint32_t pos, i;

	if (grow((void **)&rm->regions, &rm->regions_cap, rm->nregions + 1, sizeof(reg)))
		return -ENOMEM;
	for (pos = 0; pos < rm->nregions && rm->regions[pos].first_id < reg.first_id; pos++)
		;
	for (i = rm->nregions; i > pos; i--)
		rm->regions[i] = rm->regions[i - 1];
	rm->regions[pos] = reg;
	rm->nregions++;
	return (int)pos;
}

int sp_rmap_add(struct sp_rmap *rm, uint32_t space, uintptr_t start, uint64_t npages)
{
	struct sp_region reg = {.start = start, .npages = npages, .space = space};
	int err, pos;

	if (!npages)
		return -EINVAL;
	/* reserve the region slot first so a failure leaves nothing behind */
	if (grow((void **)&rm->regions, &rm->regions_cap, rm->nregions + 1, sizeof(reg)))
		return -ENOMEM;
	err = alloc_ids(rm, npages, &reg.first_id);
	if (err)
		return err;
	pos = insert_region(rm, reg);
	rm->tracked += npages;
	return pos;
}

int sp_rmap_cut(struct sp_rmap *rm, uint32_t r, uint64_t off, uint64_t n, int *delta)
{
	struct sp_region reg = rm->regions[r], right;
	int err;

	if (off + n > reg.npages || !n)
		return -EINVAL;
	if (off > 0 && off + n < reg.npages) { /* a hole in the middle: split */
		if (grow((void **)&rm->regions, &rm->regions_cap, rm->nregions + 1, sizeof(reg)))
			return -ENOMEM;
		err = free_ids(rm, reg.first_id + (uint32_t)off, (uint32_t)n);
		if (err)
			return err;
		right = reg;
		right.start = reg.start + ((off + n) << 12);
		right.first_id = reg.first_id + (uint32_t)(off + n);
		right.npages = reg.npages - off - n;
		rm->regions[r].npages = off;
		insert_region(rm, right);
		rm->tracked -= n;
		*delta = 1;
		return 0;
	}
	err = free_ids(rm, reg.first_id + (uint32_t)off, (uint32_t)n);
	if (err)
		return err;
	rm->tracked -= n;
	*delta = 0;
	if (n == reg.npages) {
		memmove(&rm->regions[r], &rm->regions[r + 1], (rm->nregions - r - 1) * sizeof(reg));
		rm->nregions--;
		*delta = -1;
		return 0;
	}
	if (off == 0) {
		rm->regions[r].start += n << 12;
		rm->regions[r].first_id += (uint32_t)n;
	}
	rm->regions[r].npages -= n;
	return 0;
}

int sp_rmap_region_of(const struct sp_rmap *rm, uint32_t id)
{
	uint32_t lo = 0, hi = rm->nregions;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct sp_region *g = &rm->regions[mid];

		if (id < g->first_id)
			hi = mid;
		else if (id >= g->first_id + g->npages)
			lo = mid + 1;
		else
			return (int)mid;
	}
	return -1;
}
