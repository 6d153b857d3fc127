/* SPDX-License-Identifier: MIT */
/*
 * stable.c - store pages with sharers, grouped by content (see stable.h).
 *
 * Nodes live in one array and are named by index (0 is "none"); freed nodes
 * go on a free list threaded through `next`. The index is a chained hash
 * table of groups that doubles when it holds more groups than buckets.
 *
 * Doubling moves its groups a few old buckets per insert, not all at once:
 * moving 131 thousand groups (1 GiB of pages in pairs) in one go took 1.7 to
 * 4.8 ms of one scan call, measured on AMD EPYC/KVM, where the batch bound is
 * 1 ms. Meanwhile an old bucket below `moved` lives on in the new table (as
 * old bucket i splits into new buckets i and i + old size), the others are
 * still in the old one: sp_stable_bucket() picks. Each insert moves
 * MOVE_STEP old buckets, so the move ends long before the new table is full
 * (that takes as many inserts as the old table has buckets).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/stable.h"

int sp_stable_init(struct sp_stable *st)
{
	memset(st, 0, sizeof(*st));
	st->cap = 64;
	st->nodes = calloc(st->cap, sizeof(*st->nodes));
	st->buckets = calloc(64, sizeof(uint32_t));
	if (!st->nodes || !st->buckets) {
		sp_stable_destroy(st);
		return -ENOMEM;
	}
	st->n = 1; /* node 0 is never handed out */
	st->mask = 63;
	return 0;
}

void sp_stable_destroy(struct sp_stable *st)
{
	free(st->nodes);
	free(st->buckets);
	free(st->old);
	memset(st, 0, sizeof(*st));
}

#define MOVE_STEP 4 /* old buckets moved per insert while growing */

static inline uint32_t *bucket(const struct sp_stable *st, uint64_t hash)
{
	return sp_stable_bucket(st, hash);
}

uint32_t sp_stable_first(const struct sp_stable *st, uint64_t hash)
{
	uint32_t id = *bucket(st, hash);

	while (id && st->nodes[id].hash != hash)
		id = st->nodes[id].next;
	return id;
}

uint32_t sp_stable_next(const struct sp_stable *st, uint32_t after, uint64_t hash)
{
	uint32_t id = st->nodes[after].next;

	while (id && st->nodes[id].hash != hash)
		id = st->nodes[id].next;
	return id;
}

uint32_t sp_stable_group_page(const struct sp_stable *st, uint32_t group)
{
	const struct sp_snode *g = &st->nodes[group];

	if (g->flags & SP_SN_CHAIN)
		return st->nodes[g->dup_next].pg;
	return g->pg;
}

uint32_t sp_stable_pick(const struct sp_stable *st, uint32_t group, uint32_t max_sharing)
{
	const struct sp_snode *g = &st->nodes[group];
	uint32_t id, best = SP_NONE;

	if (!(g->flags & SP_SN_CHAIN))
		return g->sharers < max_sharing ? group : SP_NONE;
	for (id = g->dup_next; id; id = st->nodes[id].dup_next) {
		uint32_t s = st->nodes[id].sharers;

		if (s < max_sharing && (!best || s > st->nodes[best].sharers))
			best = id;
	}
	return best;
}

static uint32_t node_alloc(struct sp_stable *st)
{
	uint32_t id;

	if (st->free_head) {
		id = st->free_head;
		st->free_head = st->nodes[id].next;
	} else {
		if (st->n == st->cap) {
			struct sp_snode *nn;

			if (st->cap > UINT32_MAX / 2)
				return SP_NONE;
			nn = realloc(st->nodes, (size_t)st->cap * 2 * sizeof(*nn));
			if (!nn)
				return SP_NONE;
			st->nodes = nn;
			st->cap *= 2;
		}
		id = st->n++;
	}
	memset(&st->nodes[id], 0, sizeof(st->nodes[id]));
	return id;
}

static void node_free(struct sp_stable *st, uint32_t id)
{
	memset(&st->nodes[id], 0, sizeof(st->nodes[id]));
	st->nodes[id].flags = SP_SN_FREE;
	st->nodes[id].next = st->free_head;
	st->free_head = id;
}

/* Moves up to `count` more buckets of the old table to the new one; the
 * old table is freed after its last. */
static void index_move(struct sp_stable *st, uint32_t count)
{
	uint32_t id, next;

	while (st->old && count--) {
		for (id = st->old[st->moved]; id; id = next) {
			uint64_t h = st->nodes[id].hash;
			uint32_t *b = &st->buckets[(uint32_t)(h ^ (h >> 29)) & st->mask];

			next = st->nodes[id].next;
			st->nodes[id].next = *b;
			*b = id;
		}
		st->old[st->moved] = 0;
		if (st->moved++ == st->old_mask) {
			free(st->old);
			st->old = NULL;
			st->old_mask = st->moved = 0;
		}
	}
}

/* Starts doubling the table (index_move() does the moving). */
static void index_grow(struct sp_stable *st)
{
	uint32_t nmask = st->mask * 2 + 1;
	uint32_t *nb;

	index_move(st, UINT32_MAX); /* a move under way ends first */
	nb = calloc((size_t)nmask + 1, sizeof(uint32_t));
	if (!nb)
		return; /* keep the old table: chains get longer, nothing breaks */
	st->old = st->buckets;
	st->old_mask = st->mask;
	st->moved = 0;
	st->buckets = nb;
	st->mask = nmask;
}

static void index_insert(struct sp_stable *st, uint32_t id)
{
	uint32_t *b;

	index_move(st, MOVE_STEP);
	if (st->groups >= (uint64_t)st->mask + 1 && st->mask < (1u << 30))
		index_grow(st);
	b = bucket(st, st->nodes[id].hash);
	st->nodes[id].next = *b;
	*b = id;
	st->groups++;
}

/* Puts `with` in the index where `id` was (with SP_NONE: just removes). */
static void index_replace(struct sp_stable *st, uint32_t id, uint32_t with)
{
	uint32_t *ref;

	for (ref = bucket(st, st->nodes[id].hash); *ref; ref = &st->nodes[*ref].next) {
		if (*ref == id) {
			if (with) {
				st->nodes[with].next = st->nodes[id].next;
				*ref = with;
			} else {
				*ref = st->nodes[id].next;
				st->groups--;
			}
			st->nodes[id].next = 0;
			return;
		}
	}
}

static void dup_link(struct sp_stable *st, uint32_t head, uint32_t id)
{
	st->nodes[id].flags |= SP_SN_DUP;
	st->nodes[id].head = head;
	st->nodes[id].dup_next = st->nodes[head].dup_next;
	st->nodes[head].dup_next = id;
	st->dups++;
}

uint32_t sp_stable_add(struct sp_stable *st, uint64_t hash, uint32_t pg, uint32_t group, uint16_t nid)
{
	uint32_t id = node_alloc(st), head;

	if (!id)
		return SP_NONE;
	st->nodes[id].hash = hash;
	st->nodes[id].pg = pg;
	st->nodes[id].nid = nid;
	st->pages++;
	if (!group) {
		index_insert(st, id);
		return id;
	}
	if (st->nodes[group].flags & SP_SN_CHAIN) {
		dup_link(st, group, id);
		return id;
	}
	/* a plain node gets company: turn the group into a chain */
	head = node_alloc(st);
	if (!head) {
		st->pages--;
		node_free(st, id);
		return SP_NONE;
	}
	st->nodes[head].hash = hash;
	st->nodes[head].pg = SP_NO_PAGE;
	st->nodes[head].flags = SP_SN_CHAIN;
	st->nodes[head].nid = st->nodes[group].nid;
	index_replace(st, group, head);
	dup_link(st, head, group);
	dup_link(st, head, id);
	st->chains++;
	return id;
}

static void chain_unlink(struct sp_stable *st, uint32_t id)
{
	uint32_t head = st->nodes[id].head, *ref;

	for (ref = &st->nodes[head].dup_next; *ref; ref = &st->nodes[*ref].dup_next) {
		if (*ref == id) {
			*ref = st->nodes[id].dup_next;
			break;
		}
	}
	st->dups--;
	if (!st->nodes[head].dup_next) { /* last dup gone: so is the chain */
		index_replace(st, head, SP_NONE);
		node_free(st, head);
		st->chains--;
	}
}

uint32_t sp_stable_put(struct sp_stable *st, uint32_t id)
{
	struct sp_snode *n = &st->nodes[id];
	uint32_t pg;
	int pinned;

	n->sharers--;
	st->sharers--;
	if (n->sharers)
		return SP_NO_PAGE;
	pinned = n->flags & SP_SN_PINNED;
	pg = sp_stable_discard(st, id);
	return pinned ? SP_NO_PAGE : pg;
}

uint32_t sp_stable_discard(struct sp_stable *st, uint32_t id)
{
	uint32_t pg = st->nodes[id].pg;

	if (st->nodes[id].flags & SP_SN_DUP)
		chain_unlink(st, id);
	else
		index_replace(st, id, SP_NONE);
	st->pages--;
	node_free(st, id);
	return pg;
}

void sp_stable_pin_all(struct sp_stable *st)
{
	uint32_t id;

	for (id = 1; id < st->n; id++)
		if (!(st->nodes[id].flags & SP_SN_FREE))
			st->nodes[id].flags |= SP_SN_PINNED;
}

uint64_t sp_stable_prune(struct sp_stable *st, uint32_t *from, uint32_t count)
{
	uint64_t collapsed = 0;
	uint32_t id = *from ? *from : 1, end;

	if (!st->chains || id >= st->n) { /* (cleared meanwhile) */
		*from = 0;
		return 0;
	}
	end = st->n - id > count ? id + count : st->n;
	*from = end < st->n ? end : 0;
	for (; id < end; id++) {
		struct sp_snode *h = &st->nodes[id];
		uint32_t only;

		if (!(h->flags & SP_SN_CHAIN) || st->nodes[h->dup_next].dup_next)
			continue;
		only = h->dup_next;
		index_replace(st, id, only);
		st->nodes[only].flags &= ~SP_SN_DUP;
		st->nodes[only].head = 0;
		st->nodes[only].dup_next = 0;
		node_free(st, id);
		st->chains--;
		st->dups--;
		collapsed++;
	}
	return collapsed;
}

void sp_stable_clear(struct sp_stable *st, void (*release)(void *ctx, uint32_t pg), void *ctx)
{
	uint32_t id;

	for (id = 1; id < st->n; id++) {
		struct sp_snode *n = &st->nodes[id];

		if ((n->flags & (SP_SN_FREE | SP_SN_CHAIN | SP_SN_PINNED)) || n->pg == SP_NO_PAGE)
			continue;
		release(ctx, n->pg);
	}
	memset(st->nodes, 0, (size_t)st->cap * sizeof(*st->nodes));
	memset(st->buckets, 0, ((size_t)st->mask + 1) * sizeof(uint32_t));
	free(st->old);
	st->old = NULL;
	st->old_mask = st->moved = 0;
	st->n = 1;
	st->free_head = 0;
	st->groups = st->pages = st->sharers = st->chains = st->dups = 0;
}

uint64_t sp_stable_bytes(const struct sp_stable *st)
{
	return (uint64_t)st->cap * sizeof(struct sp_snode) + ((uint64_t)st->mask + 1) * sizeof(uint32_t) +
	       (st->old ? ((uint64_t)st->old_mask + 1) * sizeof(uint32_t) : 0);
}
