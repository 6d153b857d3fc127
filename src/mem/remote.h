/* SPDX-License-Identifier: MIT */
/*
 * remote.h - another process's memory, read-only: what the estimator scans.
 *
 * Page state comes from /proc/PID/pagemap: the PAGEMAP_SCAN ioctl (Linux
 * 6.7+) returns whole ranges of the pages the kernel's KSM would look at
 * (present, anonymous, not the shared zero page) in one call; older kernels
 * fall back to reading one 64-bit entry per page. Page content comes from
 * process_vm_readv, many ranges per call. Nothing is ever written to the
 * target.
 *
 * Permission: the caller needs ptrace read access to the target (same user
 * and ptrace_scope allows it, or CAP_SYS_PTRACE). Errors are -errno:
 * -ESRCH the process is gone, -EACCES/-EPERM access refused.
 */
#ifndef SP_REMOTE_H
#define SP_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "core/memory.h"

/* a run of pages [start, start + npages * 4096) */
struct sp_range {
	uintptr_t start;
	uint64_t npages;
	int huge; /* mapped by a transparent huge page (PAGEMAP_SCAN only) */
};

struct sp_remote {
	int pid;
	int pm_fd;	   /* /proc/PID/pagemap                                  */
	int have_scan;	   /* PAGEMAP_SCAN works on it                           */
	uint64_t zero_pfn; /* fallback only: 0 when PFNs are hidden (not root)   */
	uint64_t *raw;	   /* fallback: pagemap entries                          */
	size_t raw_cap;
	void *iov; /* struct iovec scratch for process_vm_readv          */
	size_t iov_cap;
	uint64_t bytes_read;
};

/* Opens pid's pagemap. 0, or -errno (-ESRCH, -EACCES, -EPERM, ...). */
int sp_remote_open(struct sp_remote *r, int pid);
void sp_remote_close(struct sp_remote *r);

/* Finds pages in [*pos, end) that are present, anonymous (not file-backed
 * page cache) and not the shared zero page: what ksmd would scan in a
 * mergeable VMA. Writes at most max ranges holding at most max_pages pages
 * in all (a range is all inside or all outside PMD-mapped THPs), and moves *pos to where the walk stopped (end when done). Returns
 * the number of ranges, or -errno. */
long sp_remote_present(struct sp_remote *r, uintptr_t *pos, uintptr_t end, struct sp_range *out, size_t max,
		       uint64_t max_pages);

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
