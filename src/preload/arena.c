/* SPDX-License-Identifier: MIT */
/*
 * arena.c - the library's own memory.
 *
 * Under PR_SET_MEMORY_MERGE every private anonymous mapping of the program
 * is registered, and samepaged write-protects ("freezes") a page for the
 * few microseconds of its merge. A thread of the library that wrote to a
 * frozen page would block until the merge ends, and the merge needs the
 * library's agent thread (it maps the store page): if the blocked thread
 * is the agent, or holds what the agent needs, nothing moves again. So
 * nothing the library's threads write may ever be registered.
 *
 * Everything the engine and this library allocate comes from one
 * reservation made before anything is registered, never unmapped, and
 * excluded from every registration: malloc/calloc/realloc/free of the
 * engine's objects (linked with -Wl,--wrap), their anonymous mmaps (arrays,
 * scratch copies), and the stacks (with their static TLS) of the engine's
 * threads. A range of the program that was registered and is unmapped
 * behind the library's back (glibc frees large blocks with its internal
 * munmap) can therefore never come back as engine memory.
 *
 * Page runs: a bump pointer over the reservation (committed, that is made
 * read-write, 4 MiB at a time) and an address-ordered list of freed runs,
 * first fit, coalesced; a freed run is given back to the kernel
 * (MADV_DONTNEED), so it is zeros when reused. Small blocks: power-of-two
 * classes from 32 to 32768 bytes carved from 256 KiB slabs as they are
 * needed (untouched pages cost nothing), each with a 16-byte header and a
 * free list per class; bigger ones are page runs with the same header.
 *
 * Built with AddressSanitizer, the arena tells it what is allocated (ASan
 * knows only its own malloc's blocks): the bytes of a block past the size
 * asked for, freed blocks and the unused part of slabs are poisoned, so an
 * overflow or a use after free in the library's or the engine's memory is
 * reported as in ASan's heap (headers stay addressable).
 */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "preload/preload.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define ARENA_SIZE  (64ull << 30) /* address space only */
#define COMMIT_STEP (4ull << 20)
#define SLAB_SIZE   (256u << 10)
#define NCLASS	    11 /* 32 << 0 .. 32 << 10 */
#define MAX_FREE    8192
#define MAGIC	    0x5350414cu /* "SPAL" */

#ifndef PR_SET_VMA
#define PR_SET_VMA	     0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

enum { K_BIG = 100, K_ALIGNED = 101 };

struct hdr {
	uint32_t magic;
	uint32_t kind; /* class, K_BIG, K_ALIGNED */
	uint64_t size; /* K_BIG: bytes of the run; K_ALIGNED: offset to the block */
};

struct run {
	uintptr_t start;
	size_t len;
};

static struct {
	uintptr_t base, end;
	uintptr_t next, committed;
	pthread_mutex_t pages_lock, small_lock;
	struct run free_runs[MAX_FREE];
	size_t nfree;
	void *free_list[NCLASS];
	char *bump[NCLASS], *bump_end[NCLASS]; /* the rest of each class's slab */
	int ready;
} A = {
	.pages_lock = PTHREAD_MUTEX_INITIALIZER,
	.small_lock = PTHREAD_MUTEX_INITIALIZER,
};

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

/* The arena's locks held: whatever this thread calls of the interposed
 * functions meanwhile passes straight through (a sanitizer's report
 * symbolizes in-process, and maps memory with the program's mmap). */
#define LOCK(m)	  (pl_inside++, pthread_mutex_lock(m))
#define UNLOCK(m) (pthread_mutex_unlock(m), pl_inside--)

int pl_arena_init(void)
{
	void *p;

	if (__atomic_load_n(&A.ready, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&init_lock);
	if (!A.ready) {
		p = pl_sys_mmap(NULL, ARENA_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED) {
			int err = errno;

			pthread_mutex_unlock(&init_lock);
			return -err;
		}
		A.base = A.next = A.committed = (uintptr_t)p;
		A.end = A.base + ARENA_SIZE;
		__atomic_store_n(&A.ready, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&init_lock);
	return 0;
}

int pl_arena_has(uintptr_t lo, uintptr_t hi)
{
	return A.ready && lo < A.end && A.base < hi;
}

void pl_arena_bounds(uintptr_t *lo, uintptr_t *hi)
{
	*lo = A.base;
	*hi = A.end;
}

/* [start, start + len) is free again; pages lock held */
static void runs_insert(uintptr_t start, size_t len)
{
	size_t i = 0;

	while (i < A.nfree && A.free_runs[i].start < start)
		i++;
	/* joins the one before and/or the one after */
	if (i > 0 && A.free_runs[i - 1].start + A.free_runs[i - 1].len == start) {
		A.free_runs[i - 1].len += len;
		if (i < A.nfree && start + len == A.free_runs[i].start) {
			A.free_runs[i - 1].len += A.free_runs[i].len;
			memmove(&A.free_runs[i], &A.free_runs[i + 1], (A.nfree - i - 1) * sizeof(A.free_runs[0]));
			A.nfree--;
		}
		return;
	}
	if (i < A.nfree && start + len == A.free_runs[i].start) {
		A.free_runs[i].start = start;
		A.free_runs[i].len += len;
		return;
	}
	if (A.nfree == MAX_FREE)
		return; /* lost to reuse (never happens in practice) */
	memmove(&A.free_runs[i + 1], &A.free_runs[i], (A.nfree - i) * sizeof(A.free_runs[0]));
	A.free_runs[i] = (struct run){start, len};
	A.nfree++;
}

void *pl_pages(size_t len)
{
	uintptr_t p = 0;

	if (pl_arena_init())
		return NULL;
	len = (len + PL_PAGE - 1) & ~(PL_PAGE - 1);
	if (!len)
		len = PL_PAGE;
	LOCK(&A.pages_lock);
	for (size_t i = 0; i < A.nfree; i++) {
		if (A.free_runs[i].len < len)
			continue;
		p = A.free_runs[i].start;
		A.free_runs[i].start += len;
		A.free_runs[i].len -= len;
		if (!A.free_runs[i].len) {
			memmove(&A.free_runs[i], &A.free_runs[i + 1], (A.nfree - i - 1) * sizeof(A.free_runs[0]));
			A.nfree--;
		}
		break;
	}
	if (!p && A.next + len <= A.end) {
		if (A.next + len > A.committed) {
			uintptr_t want = (A.next + len - A.committed + COMMIT_STEP - 1) & ~(COMMIT_STEP - 1);

			if (want > A.end - A.committed)
				want = A.end - A.committed;
			if (!pl_sys_mprotect((void *)A.committed, want, PROT_READ | PROT_WRITE)) {
				if (A.committed == A.base) /* shows in /proc/PID/maps */
					pl_sys_prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, A.base, ARENA_SIZE,
						     (unsigned long)"samepage");
				A.committed += want;
			}
		}
		if (A.next + len <= A.committed) {
			p = A.next;
			A.next += len;
		}
	}
	UNLOCK(&A.pages_lock);
	if (!p)
		errno = ENOMEM;
	else
		UNPOISON((void *)p, len);
	return (void *)p;
}

void pl_pages_free(void *ptr, size_t len)
{
	uintptr_t p = (uintptr_t)ptr;

	len = (len + PL_PAGE - 1) & ~(PL_PAGE - 1);
	if (!ptr || !len)
		return;
	pl_sys_madvise(ptr, len, MADV_DONTNEED);
	POISON(ptr, len);
	LOCK(&A.pages_lock);
	runs_insert(p, len);
	UNLOCK(&A.pages_lock);
}

static int class_of(size_t n)
{
	size_t sz = 32;

	for (int k = 0; k < NCLASS; k++, sz <<= 1)
		if (n + sizeof(struct hdr) <= sz)
			return k;
	return -1;
}

static void *small_alloc(int k)
{
	size_t sz = (size_t)32 << k;
	struct hdr *h;

	LOCK(&A.small_lock);
	if (A.free_list[k]) {
		h = A.free_list[k];
		A.free_list[k] = *(void **)h;
	} else {
		/* carved as needed: a slab's pages are touched only when used */
		if (A.bump[k] + sz > A.bump_end[k]) {
			char *slab = pl_pages(SLAB_SIZE);

			if (!slab) {
				UNLOCK(&A.small_lock);
				return NULL;
			}
			POISON(slab, SLAB_SIZE); /* blocks made addressable as given out */
			A.bump[k] = slab;
			A.bump_end[k] = slab + SLAB_SIZE;
		}
		h = (struct hdr *)(void *)A.bump[k];
		A.bump[k] += sz;
		UNPOISON(h, sizeof(*h));
	}
	UNLOCK(&A.small_lock);
	h->magic = MAGIC;
	h->kind = (uint32_t)k;
	h->size = sz;
	return h + 1;
}

void *pl_malloc(size_t n)
{
	int k = class_of(n);
	struct hdr *h;
	size_t len;

	if (k >= 0) {
		void *p = small_alloc(k);

		if (p)
			UNPOISON(p, n); /* the rest of the block stays poisoned */
		return p;
	}
	if (n > ARENA_SIZE) {
		errno = ENOMEM;
		return NULL;
	}
	len = (n + sizeof(*h) + PL_PAGE - 1) & ~(PL_PAGE - 1);
	h = pl_pages(len);
	if (!h)
		return NULL;
	h->magic = MAGIC;
	h->kind = K_BIG;
	h->size = len;
	POISON((char *)(h + 1) + n, len - sizeof(*h) - n);
	return h + 1;
}

static struct hdr *hdr_of(void *p)
{
	struct hdr *h = (struct hdr *)p - 1;

	if (!A.ready || (uintptr_t)p < A.base || (uintptr_t)p >= A.end || h->magic != MAGIC)
		return NULL;
	return h;
}

extern void __libc_free(void *p);

void pl_free(void *p)
{
	struct hdr *h;
	uint32_t k;

	if (!p)
		return;
	h = hdr_of(p);
	if (!h) {
		__libc_free(p); /* not ours (never expected) */
		return;
	}
	if (h->kind == K_ALIGNED) {
		pl_free((char *)p - h->size);
		return;
	}
	h->magic = 0;
	if (h->kind == K_BIG) {
		pl_pages_free(h, h->size);
		return;
	}
	/* the class read before the free list's link overwrites the header */
	k = h->kind;
	POISON(p, h->size - sizeof(*h));
	LOCK(&A.small_lock);
	*(void **)h = A.free_list[k];
	A.free_list[k] = h;
	UNLOCK(&A.small_lock);
}

void *pl_calloc(size_t n, size_t k)
{
	size_t bytes;
	void *p;

	if (__builtin_mul_overflow(n, k, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	p = pl_malloc(bytes);
	if (p)
		memset(p, 0, bytes);
	return p;
}

int pl_reserve(void **v, size_t *cap, size_t n, size_t elem)
{
	size_t c = *cap ? *cap : 16;
	void *p;

	if (n <= *cap)
		return 0;
	while (c < n)
		c *= 2;
	p = pl_realloc(*v, c * elem);
	if (!p)
		return -ENOMEM;
	*v = p;
	*cap = c;
	return 0;
}

void *pl_realloc(void *p, size_t n)
{
	struct hdr *h;
	size_t cap;
	void *q;

	if (!p)
		return pl_malloc(n);
	if (!n) {
		pl_free(p);
		return NULL;
	}
	h = hdr_of(p);
	if (!h || h->kind == K_ALIGNED) {
		errno = EINVAL; /* never handed out to realloc by the engine */
		return NULL;
	}
	cap = h->size - sizeof(*h);
#ifdef __SANITIZE_ADDRESS__
	{ /* the size asked for: where the poisoned tail starts */
		char *tail = __asan_region_is_poisoned(p, cap);

		if (tail)
			cap = (size_t)(tail - (char *)p);
	}
#endif
	if (n <= h->size - sizeof(*h) && (h->kind != K_BIG || n > (h->size - sizeof(*h)) / 2)) {
		POISON(p, h->size - sizeof(*h));
		UNPOISON(p, n);
		return p;
	}
	q = pl_malloc(n);
	if (!q)
		return NULL;
	memcpy(q, p, n < cap ? n : cap);
	pl_free(p);
	return q;
}

static void *aligned(size_t align, size_t n)
{
	char *base, *p;
	struct hdr *h;

	if (align <= 16)
		return pl_malloc(n);
	if (align & (align - 1)) {
		errno = EINVAL;
		return NULL;
	}
	base = pl_malloc(n + align + sizeof(struct hdr));
	if (!base)
		return NULL;
	p = (char *)(((uintptr_t)base + sizeof(struct hdr) + align - 1) & ~(uintptr_t)(align - 1));
	h = (struct hdr *)p - 1;
	h->magic = MAGIC;
	h->kind = K_ALIGNED;
	h->size = (uint64_t)(p - base);
	return p;
}

void pl_arena_lock_all(void)
{
	pthread_mutex_lock(&A.small_lock);
	pthread_mutex_lock(&A.pages_lock);
}

void pl_arena_unlock_all(void)
{
	pthread_mutex_unlock(&A.pages_lock);
	pthread_mutex_unlock(&A.small_lock);
}

void pl_arena_reinit_locks(void)
{
	pthread_mutex_init(&A.pages_lock, NULL);
	pthread_mutex_init(&A.small_lock, NULL);
}

/* ---- what the engine's objects call (-Wl,--wrap=SYMBOL) -------------------- */

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t k);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
void *__wrap_aligned_alloc(size_t align, size_t n);
int __wrap_posix_memalign(void **out, size_t align, size_t n);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_munmap(void *addr, size_t len);
void *__wrap_mremap(void *old, size_t oldlen, size_t newlen, int flags, ...);
int __wrap_madvise(void *addr, size_t len, int advice);
int __wrap_mprotect(void *addr, size_t len, int prot);
int __wrap_ioctl(int fd, unsigned long req, ...);

void *__wrap_malloc(size_t n)
{
	return pl_malloc(n);
}

void *__wrap_calloc(size_t n, size_t k)
{
	return pl_calloc(n, k);
}

void *__wrap_realloc(void *p, size_t n)
{
	return pl_realloc(p, n);
}

void __wrap_free(void *p)
{
	pl_free(p);
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
	return aligned(align, n);
}

int __wrap_posix_memalign(void **out, size_t align, size_t n)
{
	void *p = aligned(align, n);

	if (!p)
		return errno;
	*out = p;
	return 0;
}

/* Anonymous private memory the engine maps for itself (arrays, scratch
 * copies) comes from the arena; everything else (store mappings, MAP_FIXED
 * remaps over registered memory) is the kernel's call as asked. */
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (!addr && (flags & MAP_ANONYMOUS) && (flags & MAP_TYPE) == MAP_PRIVATE &&
	    !(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_HUGETLB | MAP_GROWSDOWN)) &&
	    prot == (PROT_READ | PROT_WRITE)) {
		void *p = pl_pages(len);

		return p ? p : MAP_FAILED;
	}
	return pl_sys_mmap(addr, len, prot, flags, fd, off);
}

int __wrap_munmap(void *addr, size_t len)
{
	if (pl_arena_has((uintptr_t)addr, (uintptr_t)addr + len)) {
		pl_pages_free(addr, len);
		return 0;
	}
	return pl_sys_munmap(addr, len);
}

void *__wrap_mremap(void *old, size_t oldlen, size_t newlen, int flags, ...)
{
	uintptr_t o = (uintptr_t)old;
	void *new_addr = NULL, *p;
	va_list ap;

	va_start(ap, flags);
	if (flags & MREMAP_FIXED)
		new_addr = va_arg(ap, void *);
	va_end(ap);
	if (!pl_arena_has(o, o + oldlen))
		return pl_sys_mremap(old, oldlen, newlen, flags, new_addr);
	if (!(flags & MREMAP_FIXED)) {
		/* growing an array of the arena: a new run, copied */
		if (!(flags & MREMAP_MAYMOVE)) {
			errno = ENOMEM;
			return MAP_FAILED;
		}
		p = pl_pages(newlen);
		if (!p)
			return MAP_FAILED;
		memcpy(p, old, oldlen < newlen ? oldlen : newlen);
		pl_pages_free(old, oldlen);
		return p;
	}
	/* a scratch copy moved over registered memory (restoring plain memory):
	 * the kernel moves the pages out; the hole left in the arena is mapped
	 * again at once (zeros), and the run is free */
	p = pl_sys_mremap(old, oldlen, newlen, flags, new_addr);
	if (p != MAP_FAILED) {
		size_t len = (oldlen + PL_PAGE - 1) & ~(PL_PAGE - 1);

		pl_sys_mmap(old, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
			    -1, 0);
		pl_pages_free(old, len);
	}
	return p;
}

int __wrap_madvise(void *addr, size_t len, int advice)
{
	return pl_sys_madvise(addr, len, advice);
}

int __wrap_mprotect(void *addr, size_t len, int prot)
{
	return pl_sys_mprotect(addr, len, prot);
}

int __wrap_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (req == (unsigned long)USERFAULTFD_IOC_NEW)
		return pl_fds_ioctl_new(fd, req, arg); /* a descriptor of the engine's */
	return pl_sys_ioctl(fd, req, arg);
}
