/* SPDX-License-Identifier: MIT */
/*
 * core.c - a core's life: its state made and freed, its address spaces
 * (core.h).
 *
 * A core is the KSM state of one set of pages that may share: its regions
 * and page items (rmap), stable and unstable indexes, counters and scan
 * cursor, the host it takes store pages and time from, and the address
 * spaces (struct sp_mem) its regions belong to — one for the in-process
 * engine, one per client process in a merge domain of a daemon.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define PAGE SP_PAGE_SIZE

int sp_core_init(struct sp_core *c, struct sp_host *host)
{
	memset(c, 0, sizeof(*c));
	c->host = host;
	sp_knobs_defaults(&c->knobs);
	c->buf = malloc(3 * SP_BATCH_MAX * PAGE);
	if (!c->buf || sp_rmap_init(&c->rmap) || sp_stable_init(&c->stable) || sp_unstable_init(&c->unstable)) {
		sp_core_destroy(c);
		return -ENOMEM;
	}
	c->verify = c->buf + SP_BATCH_MAX * PAGE;
	c->partner = c->verify + SP_BATCH_MAX * PAGE;
	return 0;
}

void sp_core_destroy(struct sp_core *c)
{
	free(c->buf);
	free(c->spaces);
	free(c->space_remapped);
	free(c->trust);
	sp_rmap_destroy(&c->rmap);
	if (c->stable.nodes)
		sp_stable_destroy(&c->stable);
	if (c->unstable.buckets)
		sp_unstable_destroy(&c->unstable);
	memset(c, 0, sizeof(*c));
}

int sp_core_add_space(struct sp_core *c, struct sp_mem *m)
{
	struct sp_mem **ns;
	struct sp_trust *nt;
	uint8_t *nr;
	uint32_t i;

	c->changes++;
	for (i = 0; i < c->nspaces; i++) /* reuse the index of a dropped space */
		if (!c->spaces[i]) {
			c->spaces[i] = m;
			memset(&c->trust[i], 0, sizeof(c->trust[i]));
			return (int)i;
		}
	if (c->nspaces >= INT32_MAX)
		return -ENOMEM;
	ns = realloc(c->spaces, (c->nspaces + 1) * sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	c->spaces = ns;
	nr = realloc(c->space_remapped, c->nspaces + 1);
	if (!nr)
		return -ENOMEM;
	c->space_remapped = nr;
	nt = realloc(c->trust, (c->nspaces + 1) * sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	c->trust = nt;
	memset(&c->trust[c->nspaces], 0, sizeof(*nt));
	c->spaces[c->nspaces] = m;
	c->space_remapped[c->nspaces] = 0;
	return (int)c->nspaces++;
}
