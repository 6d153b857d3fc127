/* SPDX-License-Identifier: MIT */
/*
 * reader.h - reading a process's memory without changing it: this process
 * (the engine, local.c), a client of samepaged (daemon/peer.c) or any
 * process (the estimator, cli/estimate_scan.c). One reader of each kind:
 *
 *   pagemap.c  page state from /proc/PID/pagemap: SP_PG_* flags page by
 *              page (what the core's query operation reports), or the runs
 *              of pages ksmd would scan, found range by range; the kernel's
 *              shared zero page is told by its frame number, proved
 *   vmread.c   page content with process_vm_readv: a run of pages, two runs
 *              in one call, many ranges in one call with a verdict per
 *              page, a few bytes
 *   numa.c     the NUMA node of pages (move_pages with no target)
 *
 * Permission: reading another process needs ptrace read access to it (same
 * user and ptrace_scope allows it, or CAP_SYS_PTRACE); frame numbers, and
 * with them the zero page, are visible with CAP_SYS_ADMIN only. Errors are
 * -errno: -ESRCH the process is gone, -EACCES/-EPERM access refused.
 */
#ifndef SP_MEM_READER_H
#define SP_MEM_READER_H

#include <stddef.h>
#include <stdint.h>

#include "core/memory.h"

/* a run of pages [start, start + npages * 4096) */
struct sp_range {
	uintptr_t start;
	uint64_t npages;
	int huge; /* mapped by a transparent huge page (PAGEMAP_SCAN only) */
};

/* pagemap.c */

struct sp_pagemap {
	int fd;
	uint64_t zero_pfn; /* 0 when PFNs are hidden (no CAP_SYS_ADMIN) */
	int scan;	   /* PAGEMAP_SCAN: 0 not tried yet, 1 works, -1 absent */
	uint64_t *raw;	   /* pagemap entries read                          */
	size_t raw_cap;
};

/* Opens the pagemap of pid (0: this process). 0, or -errno (-ESRCH: no
 * such process, -EACCES, -EPERM, ...). */
int sp_pagemap_open(struct sp_pagemap *pm, int pid);
void sp_pagemap_close(struct sp_pagemap *pm);

/* flags[i] = SP_PG_* for n pages at addr. 0 or -errno. */
int sp_pagemap_query(struct sp_pagemap *pm, uintptr_t addr, size_t n, uint8_t *flags);

/* The raw entries of n pages at addr into raw[]: how many were read (fewer
 * past the end of the address space), or -errno. sp_pagemap_flags decodes
 * one entry into SP_PG_*: the one place an entry is decoded. For a caller
 * that keeps a window of entries (daemon/peer.c). */
long sp_pagemap_raw(struct sp_pagemap *pm, uintptr_t addr, size_t n, uint64_t *raw);
uint8_t sp_pagemap_flags(const struct sp_pagemap *pm, uint64_t e);

/* Finds pages in [*pos, end) that are present, anonymous (not file-backed
 * page cache) and not the shared zero page: what ksmd would scan in a
 * mergeable VMA. Writes at most max ranges holding at most max_pages pages
 * in all (a range is all inside or all outside PMD-mapped THPs), and moves
 * *pos to where the walk stopped (end when done). The PAGEMAP_SCAN ioctl
 * (Linux 6.7+) does it in one call; older kernels read one entry per page.
 * Returns the number of ranges, or -errno. */
long sp_pagemap_present(struct sp_pagemap *pm, uintptr_t *pos, uintptr_t end, struct sp_range *out, size_t max,
			uint64_t max_pages);

/* vmread.c: memory made unreadable gives a short count, never a SIGSEGV */

/* Copies n pages at addr of process pid into buf, at most 64 pages per
 * system call. Returns pages copied (a short count stops at the first
 * unreadable page), or -errno. */
long sp_vm_read(int pid, uintptr_t addr, size_t n, void *buf);
/* Two runs of n pages in one call; *got2 gets the second run's count. */
long sp_vm_read2(int pid, uintptr_t a1, void *buf1, uintptr_t a2, void *buf2, size_t n, long *got2);
/* Copies the pages of rg[0..nr) into buf, in order, with as few
 * process_vm_readv calls as possible. ok[i] says whether page i (counting
 * through all ranges) could be read: a page unmapped since it was found
 * reads as not ok, and the pages after it are read still. Returns pages
 * read, or -ESRCH when the process is gone, or another -errno when nothing
 * could be read. */
long sp_vm_read_ranges(int pid, const struct sp_range *rg, size_t nr, void *buf, uint8_t *ok);
/* Copies len bytes at addr of process pid into buf with one call. Returns
 * bytes copied, or -errno. */
long sp_vm_read_bytes(int pid, uintptr_t addr, void *buf, size_t len);

/* numa.c: the node of each page of rg[0..nr) (pid 0: this process), -1 when
 * not present or unknown. 0 or -errno. */
int sp_numa_nodes(int pid, const struct sp_range *rg, size_t nr, int *nodes);

#endif /* SP_MEM_READER_H */
