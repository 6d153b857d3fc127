/* SPDX-License-Identifier: MIT */
/*
 * numa.c - NUMA nodes of pages, and placement for merge_across_nodes=0
 * (libnuma's numaif.h).
 *
 * The node of a page comes from move_pages(2) with no target nodes, which
 * only reports where each page is (reader.h). A store page is placed on its
 * node with an MPOL_PREFERRED policy on the engine's view of the store: the
 * memfd is shmem, and a policy set through a shared mapping becomes the
 * file's own policy for that range, so the page is allocated there when
 * first written.
 */
#include <errno.h>
#include <numaif.h>
#include <stdlib.h>

#include "mem/local.h"

#define NODES_CHUNK 256 /* pages asked about per move_pages */

/* move_pages over pages[0..k): 0 or -errno */
static int ask(int pid, void **pages, size_t k, int *nodes)
{
	if (move_pages(pid, (unsigned long)k, pages, NULL, nodes, 0))
		return -errno;
	for (size_t i = 0; i < k; i++)
		if (nodes[i] < 0)
			nodes[i] = -1; /* -ENOENT etc.: not present */
	return 0;
}

int sp_numa_nodes(int pid, const struct sp_range *rg, size_t nr, int *nodes)
{
	void *pages[NODES_CHUNK];
	size_t k = 0, out = 0;
	int err;

	for (size_t i = 0; i < nr; i++) {
		for (uint64_t j = 0; j < rg[i].npages; j++) {
			pages[k++] = (void *)(rg[i].start + (j << SP_PAGE_SHIFT));
			if (k == NODES_CHUNK) {
				err = ask(pid, pages, k, nodes + out);
				if (err)
					return err;
				out += k;
				k = 0;
			}
		}
	}
	return k ? ask(pid, pages, k, nodes + out) : 0;
}

void sp_numa_prefer(void *addr, size_t len, int nid)
{
	unsigned long mask[16] = {0};

	if (nid < 0 || nid >= (int)(sizeof(mask) * 8))
		return;
	mask[nid / (8 * sizeof(long))] |= 1ul << (nid % (8 * sizeof(long)));
	mbind(addr, len, MPOL_PREFERRED, mask, sizeof(mask) * 8, 0);
}
