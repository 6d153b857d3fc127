/* SPDX-License-Identifier: MIT */
/*
 * remote.c - the read-only backend over another process (see remote.h).
 */
#include <errno.h>
#include <numaif.h>
#include <string.h>

#include "mem/remote.h"

int sp_remote_nodes(struct sp_remote *r, const struct sp_range *rg, size_t nr, int *nodes)
{
	void *pages[256];
	size_t k = 0, out = 0;

	for (size_t i = 0; i < nr; i++) {
		for (uint64_t j = 0; j < rg[i].npages; j++) {
			pages[k++] = (void *)(rg[i].start + (j << SP_PAGE_SHIFT));
			if (k == 256) {
				if (move_pages(r->pid, k, pages, NULL, nodes + out, 0))
					return -errno;
				out += k;
				k = 0;
			}
		}
	}
	if (k && move_pages(r->pid, k, pages, NULL, nodes + out, 0))
		return -errno;
	out += k;
	for (size_t i = 0; i < out; i++)
		if (nodes[i] < 0)
			nodes[i] = -1;
	return 0;
}

void sp_remote_open(struct sp_remote *r, int pid)
{
	memset(r, 0, sizeof(*r));
	r->pid = pid;
}

void sp_remote_close(struct sp_remote *r)
{
	memset(r, 0, sizeof(*r));
}
