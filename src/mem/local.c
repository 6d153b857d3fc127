/* SPDX-License-Identifier: MIT */
/*
 * local.c - the backend operations for this process's own memory.
 *
 * Reads go through process_vm_readv on ourselves rather than plain loads:
 * if the application violates the contract and makes registered memory
 * unreadable (mprotect PROT_NONE, munmap), the scanner gets EFAULT instead
 * of crashing the application with SIGSEGV.
 *
 * A remap is mmap(MAP_PRIVATE|MAP_FIXED) of the store pages over the frozen
 * run, then UFFDIO_REGISTER of the new mapping (so the page can be frozen
 * again after a write breaks its copy-on-write; registering also lets the
 * kernel merge it with a neighbouring mapping of the preceding store page),
 * then UFFDIO_WAKE for writers that blocked during the merge.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "mem/local.h"

#define PAGE		    4096ul
#define STORE_RESERVE_PAGES (1ull << 28) /* 1 TiB of address space */
#define RESTORE_CHUNK	    512		 /* pages copied per restore step */

static struct sp_local *L(struct sp_backend *b)
{
	return (struct sp_local *)b;
}

/* The PROCMAP_QUERY ioctl of /proc/PID/maps (Linux 6.11, uapi linux/fs.h),
 * declared here for older headers. */
struct sp_procmap_query {
	uint64_t size, query_flags, query_addr, vma_start, vma_end, vma_flags, vma_page_size, vma_offset, inode;
	uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
	uint64_t vma_name_addr, build_id_addr;
};
#define SP_PROCMAP_QUERY _IOWR('f', 17, struct sp_procmap_query)

/* One mapping: its protection (PROT_*) and end, by the ioctl or, where
 * that is missing, by reading /proc/self/maps. 0 or -errno. */
static int vma_at(struct sp_local *l, uintptr_t addr, int *prot, uintptr_t *end)
{
	struct sp_procmap_query q = {.size = sizeof(q), .query_addr = addr};
	char line[512];
	FILE *f;

	if (l->maps_fd < 0)
		l->maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (l->maps_fd >= 0 && !ioctl(l->maps_fd, SP_PROCMAP_QUERY, &q)) {
		*prot = (q.vma_flags & 1 ? PROT_READ : 0) | (q.vma_flags & 2 ? PROT_WRITE : 0) |
			(q.vma_flags & 4 ? PROT_EXEC : 0);
		*end = (uintptr_t)q.vma_end;
		return 0;
	}
	if (l->maps_fd >= 0 && errno != ENOTTY && errno != EINVAL)
		return -errno;
	f = fopen("/proc/self/maps", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s, e;
		char p[8];

		if (sscanf(line, "%llx-%llx %7s", &s, &e, p) != 3 || addr < s || addr >= e)
			continue;
		*prot = (p[0] == 'r' ? PROT_READ : 0) | (p[1] == 'w' ? PROT_WRITE : 0) | (p[2] == 'x' ? PROT_EXEC : 0);
		*end = (uintptr_t)e;
		fclose(f);
		return 0;
	}
	fclose(f);
	return -ENOMEM;
}

/* Bytes from addr (up to len) mapped with one protection, which goes to
 * *prot: the application may have mprotect()ed registered memory, and a
 * remap or restore must keep what it chose. 0 or -errno. */
static int same_prot(struct sp_local *l, uintptr_t addr, size_t len, int *prot, size_t *span)
{
	uintptr_t a = addr, end;
	int p, err;

	err = vma_at(l, a, prot, &end);
	while (!err && end < addr + len) {
		a = end;
		err = vma_at(l, a, &p, &end);
		if (!err && p != *prot)
			break;
	}
	if (err)
		return err;
	*span = (end < addr + len ? end : addr + len) - addr;
	return 0;
}

/* At most this many pages per process_vm_readv (a whole batch): the copy is
 * not preemptible on every kernel, so a thread sharing the scanner's CPU may
 * wait for one call (about 50 us for 64 pages); smaller calls cost more in
 * pinning overhead than they give back. */
#define READ_CHUNK 64

static long local_read(struct sp_backend *b, uintptr_t addr, size_t n, void *buf)
{
	size_t done = 0;

	while (done < n) {
		size_t k = n - done < READ_CHUNK ? n - done : READ_CHUNK;
		struct iovec mine = {.iov_base = (char *)buf + done * PAGE, .iov_len = k * PAGE};
		struct iovec theirs = {.iov_base = (void *)(addr + done * PAGE), .iov_len = k * PAGE};
		ssize_t got = process_vm_readv(L(b)->pid, &mine, 1, &theirs, 1, 0);

		if (got < 0)
			return errno == EFAULT ? (long)done : -errno;
		done += (size_t)got / PAGE;
		if ((size_t)got < k * PAGE)
			break; /* stopped at an unreadable page */
	}
	return (long)done;
}

static long local_read2(struct sp_backend *b, uintptr_t a1, void *buf1, uintptr_t a2, void *buf2, size_t n, long *got2)
{
	struct iovec mine[2] = {{.iov_base = buf1, .iov_len = n * PAGE}, {.iov_base = buf2, .iov_len = n * PAGE}};
	struct iovec theirs[2] = {{.iov_base = (void *)a1, .iov_len = n * PAGE},
				  {.iov_base = (void *)a2, .iov_len = n * PAGE}};
	ssize_t got;

	if (n > READ_CHUNK) { /* keep each call short, as local_read does */
		*got2 = local_read(b, a2, n, buf2);
		return local_read(b, a1, n, buf1);
	}
	got = process_vm_readv(L(b)->pid, mine, 2, theirs, 2, 0);
	if (got < 0)
		got = 0; /* EFAULT on the first page: nothing read */
	got /= (ssize_t)PAGE;
	*got2 = got > (ssize_t)n ? got - (ssize_t)n : 0;
	return got > (ssize_t)n ? (long)n : (long)got;
}

static int local_query(struct sp_backend *b, uintptr_t addr, size_t n, uint8_t *flags)
{
	return sp_pagemap_query(&L(b)->pm, addr, n, flags);
}

static int local_freeze(struct sp_backend *b, uintptr_t addr, size_t n)
{
	return sp_uffd_protect(&L(b)->uffd, addr, n * PAGE, 1);
}

static int local_thaw(struct sp_backend *b, uintptr_t addr, size_t n)
{
	return sp_uffd_protect(&L(b)->uffd, addr, n * PAGE, 0);
}

static int local_remap(struct sp_backend *b, uintptr_t addr, size_t n, uint64_t pg, int joins)
{
	struct sp_local *l = L(b);
	size_t span;
	int prot, err;
	void *p;

	err = same_prot(l, addr, n * PAGE, &prot, &span);
	if (err)
		return err;
	if (span < n * PAGE)
		return -EAGAIN; /* protections differ within the run */
	p = mmap((void *)addr, n * PAGE, prot, MAP_PRIVATE | MAP_FIXED, l->store.fd, (off_t)(pg * PAGE));
	if (p == MAP_FAILED)
		return -errno; /* Linux restores the old mapping on failure */
	l->budget.added += 2;
	/* Registration (needed to freeze it again, and for the kernel to merge
	 * it with a neighbouring store mapping: the userfaultfd context must
	 * match) is done now for runs and for pages that continue a
	 * neighbour, with the neighbour's page included so that a lone page
	 * left unregistered joins too. A lone page that continues nothing is
	 * registered on its first freeze, if one ever comes (sp_uffd_protect):
	 * one system call less per scattered merge. */
	if (n > 1 || joins) {
		uintptr_t lo = addr - ((joins & SP_JOIN_LEFT) ? PAGE : 0);
		uintptr_t hi = addr + n * PAGE + ((joins & SP_JOIN_RIGHT) ? PAGE : 0);

		sp_uffd_register(&l->uffd, lo, hi - lo);
	}
	return 0; /* blocked writers: wake_blocked() */
}

static void local_wake_blocked(struct sp_backend *b)
{
	sp_uffd_wake_pending(&L(b)->uffd);
}

static int local_zap(struct sp_backend *b, uintptr_t addr, size_t n)
{
	if (madvise((void *)addr, n * PAGE, MADV_DONTNEED))
		return -errno;
	/* unprotect (nothing is left to protect) and wake blocked writers */
	sp_uffd_protect(&L(b)->uffd, addr, n * PAGE, 0);
	return 0;
}

/* Freeze, copy into a fresh anonymous mapping, move it over the run in one
 * mremap (readers see old or new, both with the same content), wake. */
static int restore_chunk(struct sp_local *l, uintptr_t addr, size_t n, int prot)
{
	size_t len = n * PAGE;
	void *scratch = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void *moved;
	int err;

	if (scratch == MAP_FAILED)
		return -errno;
	/* Write-protection only covers present pages (anonymous ones without
	 * UFFD_FEATURE_WP_UNPOPULATED): map every page first (zero pages map
	 * the kernel's zero page, read-only), or a write into a not-present
	 * page during the copy would be lost with the old mapping. */
	madvise((void *)addr, len, MADV_POPULATE_READ);
	err = sp_uffd_protect(&l->uffd, addr, len, 1);
	if (err) {
		munmap(scratch, len);
		return err;
	}
	/* process_vm_readv, not memcpy: memory made unreadable against the
	 * contract gives an error, not a SIGSEGV in the application */
	if (local_read(&l->be, addr, n, scratch) != (long)n) {
		sp_uffd_protect(&l->uffd, addr, len, 0);
		munmap(scratch, len);
		return -EFAULT;
	}
	if (prot != (PROT_READ | PROT_WRITE) && mprotect(scratch, len, prot)) {
		err = -errno;
		sp_uffd_protect(&l->uffd, addr, len, 0);
		munmap(scratch, len);
		return err;
	}
	moved = mremap(scratch, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)addr);
	if (moved == MAP_FAILED) {
		err = -errno;
		sp_uffd_protect(&l->uffd, addr, len, 0);
		munmap(scratch, len);
		return err;
	}
	sp_uffd_wake(&l->uffd, addr, len);
	return 0;
}

static int local_restore(struct sp_backend *b, uintptr_t addr, size_t n)
{
	while (n) {
		size_t k = n < RESTORE_CHUNK ? n : RESTORE_CHUNK, span;
		int prot, err = same_prot(L(b), addr, k * PAGE, &prot, &span);

		if (err)
			return err;
		k = span / PAGE;
		err = restore_chunk(L(b), addr, k, prot);

		if (err)
			return err;
		addr += k * PAGE;
		n -= k;
	}
	return 0;
}

/* run=2: the same as unregistering (plain anonymous memory, content kept,
 * any protection kept), then registered again so the pages can be merged
 * later. Unlike MADV_POPULATE_WRITE this works on read-only memory and
 * leaves no store mapping behind (a later MADV_DONTNEED there would bring
 * the store page back). */
static int local_unmerge(struct sp_backend *b, uintptr_t addr, size_t n)
{
	int err = local_restore(b, addr, n);

	if (!err)
		err = sp_uffd_register(&L(b)->uffd, addr, n * PAGE);
	return err;
}

static int local_store_alloc(struct sp_backend *b, size_t n, int nid, uint64_t *pg)
{
	struct sp_local *l = L(b);
	int err = sp_store_alloc(&l->store, n, pg);

	if (!err && nid >= 0)
		sp_numa_prefer(l->store.view + *pg * PAGE, n * PAGE, nid);
	return err;
}

static int local_node(struct sp_backend *b, uintptr_t addr, size_t n, int *nodes)
{
	(void)b;
	return sp_numa_nodes(addr, n, nodes);
}

static void *local_store_page(struct sp_backend *b, uint64_t pg)
{
	return L(b)->store.view + pg * PAGE;
}

static void local_store_free(struct sp_backend *b, uint64_t pg)
{
	sp_store_free(&L(b)->store, pg);
}

static uint64_t local_now_ns(struct sp_backend *b)
{
	struct timespec ts;

	(void)b;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t local_cpu_ns(struct sp_backend *b)
{
	struct timespec ts;

	(void)b;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static long local_map_budget(struct sp_backend *b)
{
	/* no recount here: it reads /proc/self/maps, and this runs under the
	 * engine lock; the engine recounts outside it (recount_wanted) */
	return sp_budget_left(&L(b)->budget);
}

static void local_map_recount(struct sp_backend *b)
{
	(void)b; /* the engine recounts outside its lock (engine.c) */
}

static const struct sp_backend_ops local_ops = {
	.read = local_read,
	.read2 = local_read2,
	.query = local_query,
	.freeze = local_freeze,
	.thaw = local_thaw,
	.remap = local_remap,
	.wake_blocked = local_wake_blocked,
	.zap = local_zap,
	.unmerge = local_unmerge,
	.restore = local_restore,
	.store_alloc = local_store_alloc,
	.store_page = local_store_page,
	.store_free = local_store_free,
	.map_budget = local_map_budget,
	.map_recount = local_map_recount,
	.node = local_node,
	.now_ns = local_now_ns,
	.cpu_ns = local_cpu_ns,
};

int sp_local_init(struct sp_local *l, char *why, size_t whylen)
{
	int err;

	memset(l, 0, sizeof(*l));
	l->be.ops = &local_ops;
	l->pid = getpid();
	l->store.fd = -1;
	l->pm.fd = -1;
	l->maps_fd = -1;
	err = sp_uffd_open(&l->uffd, why, whylen);
	if (err)
		return err;
	err = sp_store_init(&l->store, STORE_RESERVE_PAGES);
	if (err) {
		snprintf(why, whylen, "cannot create the page store (memfd): %s", strerror(-err));
		goto fail;
	}
	err = sp_pagemap_open(&l->pm, 0);
	if (err) {
		snprintf(why, whylen, "cannot open /proc/self/pagemap: %s", strerror(-err));
		goto fail;
	}
	sp_budget_init(&l->budget);
	return 0;
fail:
	sp_local_destroy(l);
	return err;
}

void sp_local_destroy(struct sp_local *l)
{
	sp_uffd_close(&l->uffd);
	sp_store_destroy(&l->store);
	sp_pagemap_close(&l->pm);
	if (l->maps_fd >= 0)
		close(l->maps_fd);
	l->maps_fd = -1;
}

/* One line of /proc/self/maps: does it cover addr, and what is it? */
struct vma {
	uintptr_t start, end;
	int anon_private_rw; /* private, rw, no file */
	int store;	     /* a mapping of our own store */
};

static int parse_maps_line(const char *line, struct vma *v, unsigned long store_ino)
{
	char perms[8];
	unsigned long long s, e, off, ino;
	unsigned maj, mnr;
	int n = 0;

	if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &s, &e, perms, &off, &maj, &mnr, &ino, &n) < 7)
		return -1;
	v->start = (uintptr_t)s;
	v->end = (uintptr_t)e;
	v->store = ino == store_ino && ino != 0;
	v->anon_private_rw = ino == 0 && perms[0] == 'r' && perms[1] == 'w' && perms[3] == 'p';
	return 0;
}

int sp_local_register(struct sp_local *l, uintptr_t addr, size_t len,
		      int (*add)(void *ctx, uintptr_t start, size_t len), void *ctx)
{
	uintptr_t end = addr + len, covered = addr;
	unsigned long store_ino = 0;
	struct stat st;
	char line[512];
	FILE *f;
	int err = 0;

	if (!fstat(l->store.fd, &st))
		store_ino = st.st_ino;
	f = fopen("/proc/self/maps", "re");
	if (!f)
		return -errno;
	while (covered < end && fgets(line, sizeof(line), f)) {
		struct vma v;
		uintptr_t lo, hi;

		if (parse_maps_line(line, &v, store_ino) || v.end <= covered)
			continue;
		if (v.start > covered) {
			err = -ENOMEM; /* a hole */
			break;
		}
		lo = covered;
		hi = v.end < end ? v.end : end;
		if (v.anon_private_rw) {
			err = sp_uffd_register(&l->uffd, lo, hi - lo);
			if (!err)
				err = add(ctx, lo, hi - lo);
			if (err)
				break;
		}
		covered = hi;
	}
	fclose(f);
	if (!err && covered < end)
		err = -ENOMEM;
	return err;
}

int sp_local_unregister(struct sp_local *l, uintptr_t addr, size_t len)
{
	return sp_uffd_unregister(&l->uffd, addr, len);
}
