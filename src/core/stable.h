/* SPDX-License-Identifier: MIT */
/*
 * stable.h - the stable index: store pages that have sharers.
 *
 * A stable node is one store page (a KSM page) and counts the items merged
 * into it. The index maps a content hash to a group of nodes with that
 * content. Normally a group is a single node. When one content has more
 * sharers than max_page_sharing allows on one page, the group becomes a
 * chain, as in the kernel: a chain head (no page of its own) listing the
 * dups, each a store page with at most max_page_sharing sharers. This bounds
 * the work of breaking or moving one page, which is what keeps a content
 * with millions of sharers from stalling anything.
 *
 * Invariants:
 *   - every node reachable from the index has at least one sharer, except a
 *     node being built by the merge that is creating it;
 *   - a chain head has pg == SP_NO_PAGE, sharers == 0 and at least one dup;
 *   - pages_shared == nodes with a page; stable_node_dups == nodes in chains.
 */
#ifndef SP_STABLE_H
#define SP_STABLE_H

#include <stdint.h>

#define SP_NO_PAGE UINT32_MAX
#define SP_NONE	   0 /* node id 0 is never used, so 0 means "no node" */

enum {
	SP_SN_CHAIN = 1 << 0,  /* a chain head                         */
	SP_SN_DUP = 1 << 1,    /* a dup inside a chain                  */
	SP_SN_PINNED = 1 << 2, /* existed at a fork: page never freed   */
	SP_SN_FREE = 1 << 3,   /* on the free list                      */
};

struct sp_snode {
	uint64_t hash;
	uint32_t pg;	   /* store page number, SP_NO_PAGE for a chain head */
	uint32_t sharers;  /* items merged into this page                   */
	uint32_t next;	   /* next group in the bucket, or next free node   */
	uint32_t dup_next; /* chain head: first dup; dup: next dup          */
	uint32_t head;	   /* dup: its chain head                           */
	uint16_t flags;	   /* SP_SN_*                                       */
	uint16_t nid;	   /* NUMA node of the page                         */
};

struct sp_stable {
	struct sp_snode *nodes; /* nodes[0] unused */
	uint32_t n, cap, free_head;
	uint32_t *buckets;
	uint32_t mask;
	/* Growing: the table being left, and how many of its buckets were
	 * moved to `buckets` already (NULL when not growing). See stable.c. */
	uint32_t *old;
	uint32_t old_mask, moved;
	uint64_t groups;  /* entries in the index               */
	uint64_t pages;	  /* pages_shared                       */
	uint64_t sharers; /* sum of sharers                     */
	uint64_t chains;  /* stable_node_chains                 */
	uint64_t dups;	  /* stable_node_dups                   */
};

int sp_stable_init(struct sp_stable *st);
void sp_stable_destroy(struct sp_stable *st);

/* Groups with this hash: first, then next after `after`. SP_NONE at end.
 * The index must not change between the two. */
uint32_t sp_stable_first(const struct sp_stable *st, uint64_t hash);
uint32_t sp_stable_next(const struct sp_stable *st, uint32_t after, uint64_t hash);

/* A page of a group, to compare content with (any dup of a chain). */
uint32_t sp_stable_group_page(const struct sp_stable *st, uint32_t group);

/* The node of a group a new sharer should join: the fullest one with room
 * (packs sharers like the kernel), or SP_NONE when all have max sharers. */
uint32_t sp_stable_pick(const struct sp_stable *st, uint32_t group, uint32_t max_sharing);

/* Adds a node for store page pg with no sharers yet. group: the existing
 * group with the same content (becomes or grows a chain), or SP_NONE.
 * Returns the node id, or SP_NONE when out of memory. */
uint32_t sp_stable_add(struct sp_stable *st, uint64_t hash, uint32_t pg, uint32_t group, uint16_t nid);

static inline void sp_stable_get(struct sp_stable *st, uint32_t id)
{
	st->nodes[id].sharers++;
	st->sharers++;
}

/* Drops one sharer. When it was the last, the node leaves the index and is
 * freed; returns its page to release (SP_NO_PAGE if none or pinned). */
uint32_t sp_stable_put(struct sp_stable *st, uint32_t id);

/* Removes a node with no sharers (one whose merge failed, or whose last
 * sharer left); returns its page, which the caller releases. */
uint32_t sp_stable_discard(struct sp_stable *st, uint32_t id);

/* Marks every node pinned (fork). */
void sp_stable_pin_all(struct sp_stable *st);

/* Chains left with a single dup become a plain node again, for nodes
 * [*from, *from + count): a pass over every node is taken in steps (a
 * pass over 131 thousand nodes took 1.3 ms). *from moves on, to 0 when
 * the pass is done (at once with no chains). Returns the number of chains
 * collapsed. */
uint64_t sp_stable_prune(struct sp_stable *st, uint32_t *from, uint32_t count);

/* Forgets everything (run=2); calls release(pg) for each unpinned page. */
void sp_stable_clear(struct sp_stable *st, void (*release)(void *ctx, uint32_t pg), void *ctx);

uint64_t sp_stable_bytes(const struct sp_stable *st);

/* The index bucket of hash: in the old table while growing, until it was
 * moved (stable.c). */
static inline uint32_t *sp_stable_bucket(const struct sp_stable *st, uint64_t hash)
{
	uint32_t k = (uint32_t)(hash ^ (hash >> 29));

	if (st->old && (k & st->old_mask) >= st->moved)
		return &st->old[k & st->old_mask];
	return &st->buckets[k & st->mask];
}

/* Starts loading the index bucket of hash into the cache. */
static inline void sp_stable_prefetch(const struct sp_stable *st, uint64_t hash)
{
	__builtin_prefetch(sp_stable_bucket(st, hash));
}

#endif /* SP_STABLE_H */
