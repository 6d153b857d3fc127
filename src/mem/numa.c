/* SPDX-License-Identifier: MIT */
/*
 * numa.c - NUMA placement for merge_across_nodes=0 (libnuma's numaif.h).
 *
 * The node of a page comes from move_pages(2) with no target nodes, which
 * only reports where each page is. A store page is placed on its node with
 * an MPOL_PREFERRED policy on the engine's view of the store: the memfd is
 * shmem, and a policy set through a shared mapping becomes the file's own
 * policy for that range, so the page is allocated there when first written.
 */
#include <errno.h>
#include <numaif.h>
#include <stdlib.h>

#include "mem/local.h"

int sp_numa_nodes(uintptr_t addr, size_t n, int *nodes)
{
	void *pages[64];
	size_t done = 0;

	while (done < n) {
		size_t k = n - done < 64 ? n - done : 64;

		for (size_t i = 0; i < k; i++)
			pages[i] = (void *)(addr + (done + i) * 4096);
		if (move_pages(0, (unsigned long)k, pages, NULL, nodes + done, 0))
			return -errno;
		for (size_t i = 0; i < k; i++)
			if (nodes[done + i] < 0)
				nodes[done + i] = -1; /* -ENOENT etc.: not present */
		done += k;
	}
	return 0;
}

void sp_numa_prefer(void *addr, size_t len, int nid)
{
	unsigned long mask[16] = {0};

	if (nid < 0 || nid >= (int)(sizeof(mask) * 8))
		return;
	mask[nid / (8 * sizeof(long))] |= 1ul << (nid % (8 * sizeof(long)));
	mbind(addr, len, MPOL_PREFERRED, mask, sizeof(mask) * 8, 0);
}
