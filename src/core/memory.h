/* SPDX-License-Identifier: MIT */
/*
 * memory.h - what the merging algorithm needs from the system, stated by the
 * core, implemented outside it.
 *
 * src/core decides what to merge; it reaches memory only through these two
 * interfaces, so it issues no system call and runs unchanged against this
 * process (src/mem/local.c), against a fake (tests/fake.c) and, one
 * address space per client, inside a daemon:
 *
 *   struct sp_mem   one address space: its pages by address, in runs of
 *                   whole pages (one call freezes, remaps or thaws a run);
 *                   a core holds any number of them, one per process
 *   struct sp_host  what the core's address spaces share: the page store
 *                   (store pages are numbered, and every sp_mem of a core
 *                   can map any of them) and the clocks
 *
 * Protocol for a merge of the run [addr, addr + n pages) of one sp_mem:
 *   freeze(addr, n)            writes to the run now block
 *   read(addr, n)              content is now stable; the caller verifies it
 *   remap(addr, n, pg, joins)  points the run at store pages pg..pg+n-1, or
 *   thaw(addr, n)              gives up: unprotects and wakes blocked writers
 *   wake_blocked()             (once per batch) wakes writers that blocked on
 *                              pages since remapped
 * A frozen page is always either remapped or thawed, and blocked writers
 * woken, before the core returns.
 */
#ifndef SP_CORE_MEMORY_H
#define SP_CORE_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#define SP_PAGE_SIZE  4096UL
#define SP_PAGE_SHIFT 12

enum { SP_JOIN_LEFT = 1, SP_JOIN_RIGHT = 2 };

/* What query() reports about each page. */
enum {
	SP_PG_PRESENT = 1 << 0, /* mapped to a page frame                         */
	SP_PG_SWAPPED = 1 << 1, /* swapped out                                     */
	SP_PG_FILE = 1 << 2,	/* maps a file page: still shares the store page   */
	SP_PG_ZEROPFN = 1 << 3, /* maps the kernel's shared zero page              */
};

struct sp_mem;

struct sp_mem_ops {
	/* Copies n pages at addr into buf. Returns pages copied (a short count
	 * stops at the first unreadable page), or -errno. */
	long (*read)(struct sp_mem *m, uintptr_t addr, size_t n, void *buf);
	/* The same for two runs at once (one system call); *got2 gets the
	 * second run's count. May be NULL. */
	long (*read2)(struct sp_mem *m, uintptr_t a1, void *buf1, uintptr_t a2, void *buf2, size_t n, long *got2);
	/* Fills flags[0..n) with SP_PG_* for the pages at addr. 0 or -errno. */
	int (*query)(struct sp_mem *m, uintptr_t addr, size_t n, uint8_t *flags);
	/* Write-protects the run. 0 or -errno (nothing is frozen on error). */
	int (*freeze)(struct sp_mem *m, uintptr_t addr, size_t n);
	/* Unprotects the run and wakes its blocked writers. 0 or -errno. */
	int (*thaw)(struct sp_mem *m, uintptr_t addr, size_t n);
	/* Replaces the frozen run with private mappings of store pages
	 * pg..pg+n-1. Writers that blocked on the run stay blocked until
	 * wake_blocked(). On error the run is unchanged and still frozen.
	 * joins (SP_JOIN_*): the page before the run maps store page pg - 1,
	 * or the page after it maps pg + n, so the new mapping can become one
	 * with that neighbour's. 0 or -errno. */
	int (*remap)(struct sp_mem *m, uintptr_t addr, size_t n, uint64_t pg, int joins);
	/* Wakes every writer still blocked on a page that was remapped. The
	 * core calls it once per batch, when nothing is frozen any more. */
	void (*wake_blocked)(struct sp_mem *m);
	/* A backend that maps asynchronously (remap returned 0 and the
	 * mapping is made later: the daemon's clients) reports here the runs
	 * it could not map after all; they are still the plain memory they
	 * were, thawed. The core calls it right after wake_blocked, when no
	 * remap is in flight, and again while it fills all max slots.
	 * Returns the number of runs written to addr[] and n[]. May be NULL
	 * (remap's result is final). */
	size_t (*failed_remaps)(struct sp_mem *m, uintptr_t *addr, uint32_t *n, size_t max);
	/* Replaces the frozen run, verified all zeros, with the kernel's zero
	 * page, and wakes. */
	int (*zap)(struct sp_mem *m, uintptr_t addr, size_t n);
	/* Breaks every merge in the run (run=2): plain anonymous memory again,
	 * content and protection kept, still registered. 0 or -errno. */
	int (*unmerge)(struct sp_mem *m, uintptr_t addr, size_t n);
	/* Makes the run plain private anonymous memory again, same content,
	 * without a window where a reader could see anything else (used when
	 * memory is unregistered). 0 or -errno. */
	int (*restore)(struct sp_mem *m, uintptr_t addr, size_t n);
	/* Mappings this address space may still get (the vm.max_map_count
	 * budget). */
	long (*map_budget)(struct sp_mem *m);
	/* NUMA node of each page (-1 unknown). May be NULL: node 0. */
	int (*node)(struct sp_mem *m, uintptr_t addr, size_t n, int *nodes);
	/* A count that grows with every event of the address space's own
	 * threads that can change what query() says of a page the core did
	 * not change itself: every page fault its threads take (a write that
	 * breaks a merge's copy-on-write is one, also when a system call
	 * writes), every MADV_DONTNEED the backend saw. Writes by other
	 * processes (process_vm_writev, ptrace) need not count. While it
	 * stays the same, smart_scan leaves merged pages unqueried between
	 * periodic checks (scan.c). May be NULL: every visit queries. */
	uint64_t (*writes)(struct sp_mem *m);
};

struct sp_mem {
	const struct sp_mem_ops *ops;
};

struct sp_host;

struct sp_host_ops {
	/* n consecutive store pages (on NUMA node nid, -1 any). 0 or -errno. */
	int (*store_alloc)(struct sp_host *h, size_t n, int nid, uint64_t *pg);
	/* A store page's content, readable (and, for the core, writable
	 * until a mapping of it exists). */
	void *(*store_page)(struct sp_host *h, uint64_t pg);
	void (*store_free)(struct sp_host *h, uint64_t pg);
	/* Monotonic nanoseconds and the calling thread's CPU nanoseconds. */
	uint64_t (*now_ns)(struct sp_host *h);
	uint64_t (*cpu_ns)(struct sp_host *h);
};

struct sp_host {
	const struct sp_host_ops *ops;
};

#endif /* SP_CORE_MEMORY_H */
