/* SPDX-License-Identifier: MIT */
/*
 * core.c - a core's life: its state made and freed (core.h).
 *
 * A core is one address space's worth of KSM state: its regions and page
 * items (rmap), stable and unstable indexes, counters and scan cursor, and
 * the backend it reaches memory through.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define PAGE SP_PAGE_SIZE

int sp_core_init(struct sp_core *c, struct sp_backend *be)
{
	memset(c, 0, sizeof(*c));
	c->be = be;
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
	sp_rmap_destroy(&c->rmap);
	if (c->stable.nodes)
		sp_stable_destroy(&c->stable);
	if (c->unstable.buckets)
		sp_unstable_destroy(&c->unstable);
	memset(c, 0, sizeof(*c));
}
