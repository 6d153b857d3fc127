/* SPDX-License-Identifier: MIT */
/*
 * remote.h - the NUMA nodes of another process's pages, for the estimator
 * (its pages are found and read with reader.h).
 */
#ifndef SP_REMOTE_H
#define SP_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "mem/reader.h"

struct sp_remote {
	int pid;
};

void sp_remote_open(struct sp_remote *r, int pid);
void sp_remote_close(struct sp_remote *r);

/* NUMA node of each page (move_pages with no target): -1 when unknown.
 * 0 or -errno. */
int sp_remote_nodes(struct sp_remote *r, const struct sp_range *rg, size_t nr, int *nodes);

#endif /* SP_REMOTE_H */
