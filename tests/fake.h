/* SPDX-License-Identifier: MIT */
/*
 * fake.h - an in-memory backend for testing the core without the kernel.
 *
 * It models one contiguous area of pages (a real buffer, so addresses are
 * real) plus a store. Each page is either private (its own bytes) or maps a
 * store page; writing a page that maps the store copies it first (COW), and
 * writing a frozen page is a test failure. Failures can be injected into
 * every operation that can fail for real.
 */
#ifndef SP_FAKE_H
#define SP_FAKE_H

#include <stddef.h>
#include <stdint.h>

#include "core/memory.h"

struct sp_fake {
	struct sp_mem space; /* the area, as the core's one address space */
	struct sp_host host; /* the store and a clock                      */
	uint8_t *mem;	     /* npages private pages                    */
	size_t npages;
	int64_t *maps; /* per page: store page it maps, or -1     */
	uint8_t *frozen;
	uint8_t *absent; /* not present (never touched / zapped)    */
	uint8_t *store;	 /* store pages                             */
	uint8_t *store_used;
	size_t store_cap, store_next;
	long budget;	   /* mappings left                            */
	uint64_t clock_ns; /* advanced by clock_step_ns per now() call */
	uint64_t clock_step_ns;
	/* failure injection: the Nth next call fails (0: never) */
	int fail_freeze, fail_remap, fail_alloc, fail_zap, fail_unmerge, fail_restore;
	/* the Nth next remap returns 0 but is not done: the run is thawed as
	 * it was and reported by failed_remaps, as the daemon learns of a
	 * client's refusal after the fact */
	int fail_remap_late;
	uintptr_t late_addr[64];
	uint32_t late_n[64];
	size_t nlate;
	/* page faults of the application (ops->writes): every sp_fake_write
	 * and tc_read_all count one, unless foreign is set (a write by
	 * another process, which the kernel counts to that process) */
	uint64_t writes;
	int foreign;
	/* statistics for assertions */
	uint64_t n_queried; /* pages asked about by query()        */
	uint64_t n_freeze, n_thaw, n_remap, n_zap, n_frozen_now, n_write_while_frozen, n_wake_blocked, n_joins;
	uint64_t store_pages_used;
	int *node_of;	    /* optional (malloc'd): NUMA node of each page */
	int shares_store;   /* the store is another fake's (sp_fake_init_sharing) */
	int last_alloc_nid; /* node asked for by the last store_alloc       */
};

int sp_fake_init(struct sp_fake *f, size_t npages, size_t store_pages);
/* A second address space whose remaps map owner's store: the core then
 * uses owner's host for store pages (several processes, one domain). */
int sp_fake_init_sharing(struct sp_fake *f, size_t npages, const struct sp_fake *owner);
void sp_fake_destroy(struct sp_fake *f);
uintptr_t sp_fake_addr(const struct sp_fake *f, size_t page);
/* Application write of len bytes at page/offset (COW if merged). */
void sp_fake_write(struct sp_fake *f, size_t page, size_t off, const void *data, size_t len);
/* Fills a page with a byte pattern derived from tag (tag 0: zeros). */
void sp_fake_fill(struct sp_fake *f, size_t page, uint32_t tag);
/* What the application reads at a page. */
const uint8_t *sp_fake_page(const struct sp_fake *f, size_t page);

#endif /* SP_FAKE_H */
