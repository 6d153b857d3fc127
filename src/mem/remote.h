/* SPDX-License-Identifier: MIT */
/*
 * remote.h - another process's memory, read-only: what the estimator reads.
 *
 * Page content comes from process_vm_readv, many ranges per call; the pages
 * to read are found with sp_pagemap_present (reader.h). Nothing is ever
 * written to the target.
 *
 * Permission: the caller needs ptrace read access to the target (same user
 * and ptrace_scope allows it, or CAP_SYS_PTRACE). Errors are -errno:
 * -ESRCH the process is gone, -EACCES/-EPERM access refused.
 */
#ifndef SP_REMOTE_H
#define SP_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "mem/reader.h"

struct sp_remote {
	int pid;
	void *iov; /* struct iovec scratch for process_vm_readv          */
	size_t iov_cap;
	uint64_t bytes_read;
};

void sp_remote_open(struct sp_remote *r, int pid);
void sp_remote_close(struct sp_remote *r);

/* Copies the pages of rg[0..nr) into buf, in order, with as few
 * process_vm_readv calls as possible. ok[i] says whether page i (counting
 * through all ranges) could be read: a page unmapped since it was found
 * reads as not ok. Returns pages read, or -ESRCH when the process is gone,
 * or another -errno when nothing could be read. */
long sp_remote_read(struct sp_remote *r, const struct sp_range *rg, size_t nr, void *buf, uint8_t *ok);

/* NUMA node of each page (move_pages with no target): -1 when unknown.
 * 0 or -errno. */
int sp_remote_nodes(struct sp_remote *r, const struct sp_range *rg, size_t nr, int *nodes);

#endif /* SP_REMOTE_H */
