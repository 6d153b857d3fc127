/* SPDX-License-Identifier: MIT */
/*
 * local.h - the backend for this process's own memory.
 *
 *   store.c    memfd page store: offsets handed out and punched back
 *   uffd.c     userfaultfd: open with the right features, register, freeze
 *   budget.c   vm.max_map_count budget for the mappings merges create
 *   maps.c     lines of /proc/self/maps
 *   numa.c     where store pages are allocated (merge_across_nodes=0)
 *   local.c    the backend operations built from those, and the readers
 *              every process has (reader.h: pagemap, content, nodes)
 */
#ifndef SP_LOCAL_H
#define SP_LOCAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "core/memory.h"
#include "mem/reader.h"

struct sp_store {
	int fd;
	uint8_t *view;	  /* the whole store mapped shared, for the engine */
	uint64_t reserve; /* pages of address space reserved for view      */
	uint64_t size;	  /* pages the memfd is truncated to               */
	uint64_t next;	  /* bump allocator                                */
	uint64_t *free;	  /* punched pages ready for reuse (a stack)       */
	uint64_t nfree, free_cap;
	uint64_t used; /* pages holding content                         */
};

int sp_store_init(struct sp_store *s, uint64_t reserve_pages);
void sp_store_destroy(struct sp_store *s);
int sp_store_alloc(struct sp_store *s, size_t n, uint64_t *pg);
void sp_store_free(struct sp_store *s, uint64_t pg);

struct sp_uffd {
	int fd;
	uint64_t features;
	int user_mode_only;
};

/* Opens a userfaultfd able to write-protect anonymous and memfd memory.
 * On failure returns -errno and writes the reason to why. */
int sp_uffd_open(struct sp_uffd *u, char *why, size_t whylen);
/* The same from a descriptor of /dev/userfaultfd (USERFAULTFD_IOC_NEW), as
 * samepaged hands one to clients without privileges; dev < 0: as above. */
int sp_uffd_open_dev(struct sp_uffd *u, int dev, char *why, size_t whylen);
void sp_uffd_close(struct sp_uffd *u);
int sp_uffd_register(struct sp_uffd *u, uintptr_t addr, size_t len);
/* The same in write-protect and minor mode, for store mappings. */
int sp_uffd_register_store(struct sp_uffd *u, uintptr_t addr, size_t len);
int sp_uffd_continue(struct sp_uffd *u, uintptr_t addr, size_t len);
int sp_uffd_unregister(struct sp_uffd *u, uintptr_t addr, size_t len);
int sp_uffd_protect(struct sp_uffd *u, uintptr_t addr, size_t len, int on);
int sp_uffd_wake(struct sp_uffd *u, uintptr_t addr, size_t len);

struct sp_budget {
	long max_map_count;
	long reserve; /* kept free for the application                */
	long counted; /* mappings in the process at the last count     */
	long added;   /* upper bound of mappings added since          */
	uint64_t counted_at_ns;
};

void sp_budget_init(struct sp_budget *bg);
long sp_budget_left(const struct sp_budget *bg);
void sp_budget_recount(struct sp_budget *bg, uint64_t now_ns);
/* The same in two steps, so the slow count can run without the engine's
 * lock: due? then count (no lock), then set with the `added` value read
 * before counting (mappings added during the count stay counted). */
int sp_budget_due(const struct sp_budget *bg, uint64_t now_ns);
void sp_budget_set(struct sp_budget *bg, long counted, long added_before, uint64_t now_ns);
/* mappings in /proc/self/maps, or -errno */
long sp_count_mappings(void);

/* maps.c: one line of /proc/self/maps */
struct sp_maps_line {
	uintptr_t start, end;
	int prot;		  /* PROT_* */
	int private;		  /* 'p' */
	unsigned long long inode; /* 0: anonymous */
};
/* 0, or -1 when the line is not a mapping line */
int sp_maps_parse(const char *line, struct sp_maps_line *v);
/* The mapping covering addr: 0, -ENOMEM none, or -errno */
int sp_maps_find(uintptr_t addr, struct sp_maps_line *v);

/* numa.c: a preference for where the pages of a range get allocated (the
 * node of a page is read with sp_numa_nodes, reader.h). */
void sp_numa_prefer(void *addr, size_t len, int nid);

/* A range MADV_DONTNEED (or MADV_FREE, MADV_REMOVE) was called on, as a
 * UFFD_EVENT_REMOVE reported it. */
struct sp_removed {
	uintptr_t start, end;
	uint64_t seq;  /* events.seq when it was read */
	uint64_t t_ns; /* when it was read */
};

/* The userfaultfd's messages (local.c): read by the event thread at all
 * times, and by wake_blocked; everything here is guarded by lock. Arrays
 * grow with mmap, never malloc (see local.c). */
struct sp_events {
	pthread_mutex_t lock;
	int started;
	int maps_fd; /* the event thread's own /proc/self/maps */
	uint64_t seq;
	struct sp_removed *removed; /* ranges not retired yet */
	size_t nremoved, removed_cap;
	uintptr_t *converted; /* pages turned anonymous, bookkeeping pending */
	size_t nconverted, converted_cap;
	uintptr_t *blocked; /* writers blocked on frozen pages, to wake */
	size_t nblocked, blocked_cap;
	int work;	   /* removed or converted is not empty (read without the lock) */
	uint64_t messages; /* messages read, ever (read without the lock) */
};

struct sp_local {
	struct sp_mem mem;   /* this process's memory                 */
	struct sp_host host; /* the store (a memfd) and the clocks    */
	struct sp_events ev;
	struct sp_store store;
	struct sp_uffd uffd;
	struct sp_pagemap pm;
	struct sp_budget budget;
	int pid;
	int maps_fd; /* /proc/self/maps, for protections (PROCMAP_QUERY) */
};

/* Wires the operations with nothing opened yet (every fd -1): the engine's
 * core holds them from its start; sp_local_init opens them. */
void sp_local_prepare(struct sp_local *l);
/* Sets up the store, userfaultfd, pagemap and the event thread, which runs
 * until the process ends (or forks: the child has none). On failure returns
 * -errno and explains in why. */
int sp_local_init(struct sp_local *l, char *why, size_t whylen);
/* The same for a client of samepaged: the store is the daemon's (store_fd,
 * read-only; nothing is ever allocated or written in it here) and the
 * userfaultfd comes from devuffd when it is >= 0. Takes store_fd. */
int sp_local_init_client(struct sp_local *l, int store_fd, int devuffd, char *why, size_t whylen);
void sp_local_destroy(struct sp_local *l);

/* Registers the private anonymous parts of [addr, addr + len) for freezing
 * and reports them through add(ctx, start, len). -ENOMEM when part of the
 * range is not mapped. */
int sp_local_register(struct sp_local *l, uintptr_t addr, size_t len,
		      int (*add)(void *ctx, uintptr_t start, size_t len), void *ctx);
int sp_local_unregister(struct sp_local *l, uintptr_t addr, size_t len);

/* 1 if the event thread left bookkeeping to do (no lock needed). */
int sp_local_events_pending(struct sp_local *l);
/* The bookkeeping of MADV_DONTNEED on merged pages, with the engine lock
 * held. anon(ctx, addr, n): these pages are plain anonymous memory now.
 * filemap(ctx, addr, n, fn, fctx): calls fn(fctx, a, k, done) on each run of
 * pages of [addr, addr + n) in store mappings; fn sets done[i] for the pages
 * it made anonymous, whose merges then end. Returns the nanoseconds until
 * more remains to do (0: nothing pending). */
uint64_t sp_local_events_process(struct sp_local *l, uint64_t now_ns, void (*anon)(void *ctx, uintptr_t addr, size_t n),
				 void (*filemap)(void *ctx, uintptr_t addr, size_t n,
						 int (*fn)(void *fctx, uintptr_t a, size_t k, uint8_t *done),
						 void *fctx),
				 void *ctx);

#endif /* SP_LOCAL_H */
