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
 * run, MADV_POPULATE_READ, then UFFDIO_REGISTER of the new mapping in
 * write-protect and minor mode (so the page can be frozen again after a
 * write breaks its copy-on-write, and MADV_DONTNEED on it is seen, below;
 * registering also lets the kernel merge it with a neighbouring mapping of
 * the preceding store page), then UFFDIO_WAKE for writers that blocked
 * during the merge.
 *
 * The event thread: MADV_DONTNEED on a merged page
 *
 * The kernel's MADV_DONTNEED on a page of a private file mapping drops the
 * private copy and shows the file page again: on a merged page the old
 * content would come back where anonymous memory reads zeros. Three kernel
 * mechanisms, used together, make it read zeros:
 *
 *   - UFFD_EVENT_REMOVE: madvise(MADV_DONTNEED/MADV_FREE/MADV_REMOVE) on a
 *     registered range queues the range and waits until it has been read,
 *     then zaps. The range is recorded ("removed") before anything can be
 *     zapped, and stays recorded for RETIRE_NS.
 *   - minor mode on store mappings, which are populated when mapped: a page
 *     of a store mapping whose page table entry was zapped takes a minor
 *     fault on its next access, read or write, and its thread blocks. The
 *     event thread answers: inside a recorded range, the page is replaced
 *     by anonymous memory (zeros) before the thread is woken; elsewhere
 *     (the kernel reclaimed the store page) UFFDIO_CONTINUE maps the store
 *     page again. So nobody ever reads the old content of a dropped page.
 *   - no merge into a recorded range: the remap checks the ranges under the
 *     events lock, and reading an event takes that lock, so a remap is
 *     either before the event is read (the zap then hits the store mapping:
 *     minor fault, zeros) or refused.
 * When a range retires, its store-mapped pages that were zapped and never
 * touched become anonymous too; the engine does the bookkeeping (sharers,
 * counters) under its lock (sp_local_events_process). A MADV_DONTNEED whose
 * caller is stalled between the event being read and its zap for longer
 * than RETIRE_NS can still bring old content back on a page that was
 * merged in between (samepage.h states it).
 *
 * Messages must be read at all times, since every madvise(MADV_DONTNEED) on
 * registered memory waits for it, including the engine's own (local_zap)
 * and glibc's heap trimming: a thread does nothing else, and never waits
 * for the engine lock. It also takes the write-protect fault messages of
 * writers blocked on frozen pages, which wake_blocked() wakes. It allocates
 * with mmap only: a malloc could trim a heap with MADV_DONTNEED, which would
 * wait for this very thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mem/local.h"
#include "util/clock.h"

#define PAGE		    4096ul
#define STORE_RESERVE_PAGES (1ull << 28) /* 1 TiB of address space */
#define RESTORE_CHUNK	    512		 /* pages copied per restore step */
/* A removed range stays recorded this long: merges into it are refused and
 * its dropped pages read zeros, until its MADV_DONTNEED has surely zapped. */
#define RETIRE_NS (1000ull * 1000000ull)

static struct sp_local *L(struct sp_mem *m)
{
	return (struct sp_local *)((char *)m - offsetof(struct sp_local, mem));
}

static struct sp_local *LH(struct sp_host *h)
{
	return (struct sp_local *)((char *)h - offsetof(struct sp_local, host));
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
static int vma_query(int *fd, uintptr_t addr, int *prot, uintptr_t *end)
{
	struct sp_procmap_query q = {.size = sizeof(q), .query_addr = addr};

	if (*fd < 0)
		*fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (*fd >= 0 && !ioctl(*fd, SP_PROCMAP_QUERY, &q)) {
		*prot = (q.vma_flags & 1 ? PROT_READ : 0) | (q.vma_flags & 2 ? PROT_WRITE : 0) |
			(q.vma_flags & 4 ? PROT_EXEC : 0);
		*end = (uintptr_t)q.vma_end;
		return 0;
	}
	return *fd < 0 || errno == ENOTTY || errno == EINVAL ? -ENOTTY : -errno;
}

#define SP_PROCMAP_COVERING_OR_NEXT 0x10
#define SP_PROCMAP_SHARED	    0x08

static uint64_t store_ino(struct sp_local *l)
{
	struct stat st;

	return l->store.fd >= 0 && !fstat(l->store.fd, &st) ? (uint64_t)st.st_ino : 0;
}

/* The mapping covering addr, or the next one (*start > addr: a hole
 * before it), with its protection. Returns 1 when the engine may remap or
 * restore it: private anonymous memory, or a private mapping of its store;
 * 0 for anything else, -ENOENT when nothing is mapped at or after addr, or
 * -errno. Registered memory can only hold something else if the
 * application unmapped it behind the engine's back (against the contract;
 * glibc's own munmap of a freed block, which LD_PRELOAD cannot see, under
 * libsamepage-preload.so) and mapped a file or shared memory there: that
 * is never replaced by a store page, nor copied over. */
static int vma_ours(struct sp_local *l, uintptr_t addr, uintptr_t *start, uintptr_t *end, int *prot)
{
	struct sp_procmap_query q = {.size = sizeof(q), .query_flags = SP_PROCMAP_COVERING_OR_NEXT, .query_addr = addr};
	struct sp_maps_line v;
	int err;

	if (l->maps_fd < 0)
		l->maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (l->maps_fd >= 0 && !ioctl(l->maps_fd, SP_PROCMAP_QUERY, &q)) {
		*start = (uintptr_t)q.vma_start;
		*end = (uintptr_t)q.vma_end;
		*prot = (q.vma_flags & 1 ? PROT_READ : 0) | (q.vma_flags & 2 ? PROT_WRITE : 0) |
			(q.vma_flags & 4 ? PROT_EXEC : 0);
		return !(q.vma_flags & SP_PROCMAP_SHARED) && (!q.inode || q.inode == store_ino(l));
	}
	if (l->maps_fd >= 0 && errno != ENOTTY && errno != EINVAL)
		return -errno; /* ENOENT: nothing at or after addr */
	err = sp_maps_find(addr, &v);
	if (err == -ENOMEM) { /* a hole, skipped a page at a time */
		*start = *end = addr + PAGE;
		*prot = 0;
		return 0;
	}
	if (err)
		return err;
	*start = v.start;
	*end = v.end;
	*prot = v.prot;
	return v.private && (!v.inode || v.inode == store_ino(l));
}

/* From addr (up to len): *ours = 1 and the bytes the engine may touch with
 * one protection, which goes to *prot (the application may have
 * mprotect()ed registered memory, and a remap or restore must keep what it
 * chose); or *ours = 0 and the bytes to leave alone (a hole, or a mapping
 * that is not the engine's). 0 or -errno. */
static int ours_span(struct sp_local *l, uintptr_t addr, size_t len, int *ours, int *prot, size_t *span)
{
	uintptr_t end = addr + len, s, e, s2, e2;
	int r = vma_ours(l, addr, &s, &e, prot), p;

	*ours = 0;
	if (r == -ENOENT) {
		*span = len;
		return 0;
	}
	if (r < 0)
		return r;
	if (s > addr || !r) {
		e = s > addr ? s : e;
		*span = (e < end ? e : end) - addr;
		return 0;
	}
	*ours = 1;
	while (e < end && vma_ours(l, e, &s2, &e2, &p) == 1 && s2 == e && p == *prot)
		e = e2;
	*span = (e < end ? e : end) - addr;
	return 0;
}

static long local_read(struct sp_mem *b, uintptr_t addr, size_t n, void *buf)
{
	return sp_vm_read(L(b)->pid, addr, n, buf);
}

static long local_read2(struct sp_mem *b, uintptr_t a1, void *buf1, uintptr_t a2, void *buf2, size_t n, long *got2)
{
	return sp_vm_read2(L(b)->pid, a1, buf1, a2, buf2, n, got2);
}

static int local_query(struct sp_mem *b, uintptr_t addr, size_t n, uint8_t *flags)
{
	return sp_pagemap_query(&L(b)->pm, addr, n, flags);
}

static int local_freeze(struct sp_mem *b, uintptr_t addr, size_t n)
{
	return sp_uffd_protect(&L(b)->uffd, addr, n * PAGE, 1);
}

static int local_thaw(struct sp_mem *b, uintptr_t addr, size_t n)
{
	return sp_uffd_protect(&L(b)->uffd, addr, n * PAGE, 0);
}

/* ---- the event thread (see the top of this file) ---------------------- */

/* Grows an array by mmap (never malloc: see the top). 0 or -ENOMEM. */
static int grow(void **arr, size_t *cap, size_t elem)
{
	size_t ncap = *cap ? *cap * 2 : PAGE / elem;
	void *p = *arr ? mremap(*arr, *cap * elem, ncap * elem, MREMAP_MAYMOVE)
		       : mmap(NULL, ncap * elem, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

static void drop_array(void **arr, size_t *cap, size_t elem)
{
	if (*arr)
		munmap(*arr, *cap * elem);
	*arr = NULL;
	*cap = 0;
}

/* Is part of [lo, hi) in a range recorded after seq? Events lock held. */
static int removed_overlap(const struct sp_local *l, uintptr_t lo, uintptr_t hi, uint64_t after)
{
	for (size_t i = 0; i < l->ev.nremoved; i++) {
		const struct sp_removed *r = &l->ev.removed[i];

		if (r->seq > after && r->start < hi && lo < r->end)
			return 1;
	}
	return 0;
}

static void record_removed(struct sp_local *l, uintptr_t start, uintptr_t end)
{
	struct sp_events *ev = &l->ev;
	uint64_t now = sp_mono_ns();
	struct sp_removed *r;

	ev->seq++;
	__atomic_store_n(&ev->work, 1, __ATOMIC_RELEASE);
	/* a range touching a recorded one joins it (allocators drop the same
	 * places again and again): the union is exact, and recorded anew */
	for (size_t i = 0; i < ev->nremoved; i++) {
		r = &ev->removed[i];
		if (r->t_ns && r->start <= end && start <= r->end) {
			r->start = start < r->start ? start : r->start;
			r->end = end > r->end ? end : r->end;
			r->seq = ev->seq;
			r->t_ns = now;
			return;
		}
	}
	if (ev->nremoved == ev->removed_cap && grow((void **)&ev->removed, &ev->removed_cap, sizeof(*ev->removed))) {
		/* out of memory: widen the newest range, so that nothing
		 * removed goes unrecorded */
		r = &ev->removed[ev->nremoved - 1];
		r->start = start < r->start ? start : r->start;
		r->end = end > r->end ? end : r->end;
		r->seq = ev->seq;
		r->t_ns = now;
		return;
	}
	r = &ev->removed[ev->nremoved++];
	r->start = start;
	r->end = end;
	r->seq = ev->seq;
	r->t_ns = now;
}

/* Makes [addr, addr + n pages) of a store mapping plain anonymous memory
 * reading zeros, with the protection it had, registered again, and wakes
 * whoever waits on it. Events lock held. 0 or -errno. */
static int to_anon(struct sp_local *l, int *maps_fd, uintptr_t addr, size_t n)
{
	uintptr_t end = addr + n * PAGE;
	int prot = PROT_READ | PROT_WRITE;

	if (vma_query(maps_fd, addr, &prot, &end))
		prot = PROT_READ | PROT_WRITE; /* no PROCMAP_QUERY: what the contract requires */
	if (end < addr + n * PAGE && n > 1)
		return -EAGAIN; /* protections may differ: page by page */
	if (mmap((void *)addr, n * PAGE, prot, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, -1, 0) == MAP_FAILED)
		return -errno;
	sp_uffd_register(&l->uffd, addr, n * PAGE);
	sp_uffd_wake(&l->uffd, addr, n * PAGE);
	return 0;
}

/* A thread touched a store page whose page table entry is gone. */
static void minor_fault(struct sp_local *l, uintptr_t a)
{
	struct sp_events *ev = &l->ev;

	if (removed_overlap(l, a, a + PAGE, 0)) {
		/* dropped by MADV_DONTNEED: zeros, as anonymous memory */
		if (!to_anon(l, &ev->maps_fd, a, 1)) {
			if (ev->nconverted < ev->converted_cap ||
			    !grow((void **)&ev->converted, &ev->converted_cap, sizeof(*ev->converted)))
				ev->converted[ev->nconverted++] = a;
			/* else: the scan sees the page written and drops its sharer */
			__atomic_store_n(&ev->work, 1, __ATOMIC_RELEASE);
			return;
		}
	} else if (!sp_uffd_continue(&l->uffd, a, PAGE)) {
		return; /* reclaimed: the store page again (UFFDIO_CONTINUE wakes) */
	}
	/* mapped meanwhile (EEXIST), or a remove event is queued (EAGAIN):
	 * the thread faults again, and this is decided again */
	sp_uffd_wake(&l->uffd, a, PAGE);
}

/* Reads every message queued. Events lock held. */
static void drain(struct sp_local *l)
{
	struct sp_events *ev = &l->ev;
	struct uffd_msg msg[16];
	ssize_t got;

	while ((got = read(l->uffd.fd, msg, sizeof(msg))) > 0) {
		for (ssize_t i = 0; i < got / (ssize_t)sizeof(msg[0]); i++) {
			const struct uffd_msg *m = &msg[i];
			uintptr_t a;

			/* before it is acted on: local_writes() */
			__atomic_add_fetch(&ev->messages, 1, __ATOMIC_SEQ_CST);
			if (m->event == UFFD_EVENT_REMOVE) {
				record_removed(l, (uintptr_t)m->arg.remove.start, (uintptr_t)m->arg.remove.end);
				continue;
			}
			if (m->event != UFFD_EVENT_PAGEFAULT)
				continue;
			a = (uintptr_t)m->arg.pagefault.address & ~(PAGE - 1);
			if (m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR) {
				minor_fault(l, a);
			} else if (ev->nblocked < ev->blocked_cap ||
				   !grow((void **)&ev->blocked, &ev->blocked_cap, sizeof(*ev->blocked))) {
				ev->blocked[ev->nblocked++] = a; /* woken by wake_blocked() */
			} else {
				sp_uffd_wake(&l->uffd, a, PAGE); /* faults again if still frozen */
			}
		}
	}
}

static void *event_thread(void *arg)
{
	struct sp_local *l = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_setname_np(pthread_self(), "samepage-event");
	for (;;) {
		struct pollfd p = {.fd = l->uffd.fd, .events = POLLIN};

		if (poll(&p, 1, -1) < 0)
			continue;
		if (p.revents & (POLLERR | POLLNVAL | POLLHUP))
			break;
		pthread_mutex_lock(&l->ev.lock);
		drain(l);
		pthread_mutex_unlock(&l->ev.lock);
	}
	return NULL;
}

static int start_events(struct sp_local *l)
{
	pthread_attr_t a;
	pthread_t t;
	int err;

	if (l->ev.started)
		return 0;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&t, &a, event_thread, l);
	pthread_attr_destroy(&a);
	if (err)
		return -err;
	l->ev.started = 1;
	return 0;
}

int sp_local_events_pending(struct sp_local *l)
{
	return __atomic_load_n(&l->ev.work, __ATOMIC_ACQUIRE);
}

/* For sp_local_events_process: of the run [a, a + k pages) of store-mapped
 * pages in a retiring range, those zapped and never touched since become
 * anonymous (zeros). Engine lock held. */
static int retire_run(void *fctx, uintptr_t a, size_t k, uint8_t *done)
{
	struct sp_local *l = fctx;
	uint8_t flags[64];

	if (k > 64)
		return -EINVAL;
	pthread_mutex_lock(&l->ev.lock);
	if (!sp_pagemap_query(&l->pm, a, k, flags))
		for (size_t i = 0; i < k; i++)
			if (!(flags[i] & (SP_PG_PRESENT | SP_PG_SWAPPED)) &&
			    !to_anon(l, &l->maps_fd, a + i * PAGE, 1)) {
				done[i] = 1;
				l->budget.added += 2;
			}
	pthread_mutex_unlock(&l->ev.lock);
	return 0;
}

uint64_t sp_local_events_process(struct sp_local *l, uint64_t now_ns, void (*anon)(void *ctx, uintptr_t addr, size_t n),
				 void (*filemap)(void *ctx, uintptr_t addr, size_t n,
						 int (*fn)(void *fctx, uintptr_t a, size_t k, uint8_t *done),
						 void *fctx),
				 void *ctx)
{
	struct sp_events *ev = &l->ev;
	uint64_t next = 0;
	uintptr_t take[64];
	size_t n, i;

	/* retire ranges old enough: their pages still zapped become
	 * anonymous first, while the range still makes faults read zeros */
	pthread_mutex_lock(&ev->lock);
	for (i = 0; i < ev->nremoved; i++) {
		struct sp_removed r = ev->removed[i];

		if (!r.t_ns)
			continue;
		if (r.t_ns + RETIRE_NS > now_ns) {
			uint64_t left = r.t_ns + RETIRE_NS - now_ns;

			next = next && next < left ? next : left;
			continue;
		}
		pthread_mutex_unlock(&ev->lock);
		filemap(ctx, r.start, (r.end - r.start) / PAGE, retire_run, l);
		pthread_mutex_lock(&ev->lock);
		if (ev->removed[i].seq == r.seq) /* (not widened meanwhile) */
			ev->removed[i].t_ns = 0; /* retired: entries only move below */
	}
	for (i = n = 0; i < ev->nremoved; i++)
		if (ev->removed[i].t_ns)
			ev->removed[n++] = ev->removed[i];
	ev->nremoved = n;
	/* pages the event thread made anonymous: their merges end (after the
	 * retiring, so that none made before it stays behind) */
	for (;;) {
		n = ev->nconverted < 64 ? ev->nconverted : 64;
		if (!n)
			break;
		ev->nconverted -= n;
		memcpy(take, ev->converted + ev->nconverted, n * sizeof(*take));
		l->budget.added += 2 * (long)n;
		pthread_mutex_unlock(&ev->lock);
		for (i = 0; i < n; i++)
			anon(ctx, take[i], 1);
		pthread_mutex_lock(&ev->lock);
	}
	if (!ev->nremoved)
		drop_array((void **)&ev->removed, &ev->removed_cap, sizeof(*ev->removed));
	__atomic_store_n(&ev->work, ev->nremoved != 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&ev->lock);
	return next;
}

static int local_remap(struct sp_mem *b, uintptr_t addr, size_t n, uint64_t pg, int joins)
{
	struct sp_local *l = L(b);
	size_t span;
	int prot, ours, err;
	void *p;

	/* under the events lock, so that no MADV_DONTNEED event is read
	 * between the check and the remap (see the top), nor a protection
	 * change made under it (libsamepage-preload.so's mprotect) */
	pthread_mutex_lock(&l->ev.lock);
	err = ours_span(l, addr, n * PAGE, &ours, &prot, &span);
	if (err || !ours || span < n * PAGE) {
		pthread_mutex_unlock(&l->ev.lock);
		/* not anonymous memory any more; protections differ */
		return err ? err : !ours ? -EINVAL : -EAGAIN;
	}
	if (removed_overlap(l, addr, addr + n * PAGE, 0)) {
		pthread_mutex_unlock(&l->ev.lock);
		return -EAGAIN; /* dropped lately: not merged before it retires */
	}
	p = mmap((void *)addr, n * PAGE, prot, MAP_PRIVATE | MAP_FIXED, l->store.fd, (off_t)(pg * PAGE));
	if (p == MAP_FAILED) {
		err = -errno; /* Linux restores the old mapping on failure */
		pthread_mutex_unlock(&l->ev.lock);
		return err;
	}
	l->budget.added += 2;
	/* Populated before registering (no minor faults): in a store mapping
	 * a missing page table entry then means the page was zapped or
	 * reclaimed, and a merged page costs no fault on its next access. */
	madvise(p, n * PAGE, MADV_POPULATE_READ);
	/* Registered at once in write-protect and minor mode: to freeze it
	 * again, to see MADV_DONTNEED on it, and for the kernel to merge it
	 * with a neighbouring store mapping (the userfaultfd context must
	 * match; the neighbour's page is included). */
	{
		uintptr_t lo = addr - ((joins & SP_JOIN_LEFT) ? PAGE : 0);
		uintptr_t hi = addr + n * PAGE + ((joins & SP_JOIN_RIGHT) ? PAGE : 0);

		if (sp_uffd_register_store(&l->uffd, lo, hi - lo) && hi - lo != n * PAGE)
			sp_uffd_register_store(&l->uffd, addr, n * PAGE);
	}
	pthread_mutex_unlock(&l->ev.lock);
	return 0; /* blocked writers: wake_blocked() */
}

/* Writers that blocked on a frozen page left a message: read now (nothing
 * is frozen any more) or already by the event thread. One read(2) that
 * usually finds nothing, instead of one UFFDIO_WAKE per remapped run. */
static void local_wake_blocked(struct sp_mem *b)
{
	struct sp_local *l = L(b);

	pthread_mutex_lock(&l->ev.lock);
	drain(l);
	for (size_t i = 0; i < l->ev.nblocked; i++)
		sp_uffd_wake(&l->uffd, l->ev.blocked[i], PAGE);
	l->ev.nblocked = 0;
	pthread_mutex_unlock(&l->ev.lock);
}

/* The frozen run, verified all zeros, becomes a fresh anonymous mapping:
 * it reads the kernel's zero page, as after MADV_DONTNEED, but raises no
 * remove event. An event would wake the event thread, on another CPU,
 * which then takes part in every later TLB flush of the process. Measured
 * with bench_settle -s 256 (AMD EPYC, KVM): function-call interrupts per
 * 1000 merged pages, zero workload 7.9 with this, 261 with MADV_DONTNEED
 * (ksmd 64-74); mix 12.9 and 183 (ksmd 76). Writers blocked on the frozen
 * pages are woken and write into the new mapping. */
static int local_zap(struct sp_mem *b, uintptr_t addr, size_t n)
{
	struct sp_local *l = L(b);
	size_t span;
	int prot, ours, err;

	pthread_mutex_lock(&l->ev.lock); /* (protection changes: see local_remap) */
	err = ours_span(l, addr, n * PAGE, &ours, &prot, &span);
	if (!err && (!ours || span < n * PAGE))
		err = !ours ? -EINVAL : -EAGAIN; /* not anonymous any more; protections differ */
	if (!err && mmap((void *)addr, n * PAGE, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
		err = -errno; /* the old mapping stays, still frozen: the caller thaws */
	pthread_mutex_unlock(&l->ev.lock);
	if (err)
		return err;
	l->budget.added += 2; /* until the kernel merges it with its neighbours */
	/* registered again, so the kernel can merge it with its neighbours
	 * (same userfaultfd context) and it can be frozen later */
	sp_uffd_register(&l->uffd, addr, n * PAGE);
	sp_uffd_wake(&l->uffd, addr, n * PAGE);
	return 0;
}

/* [addr, addr + len) is still the engine's, with protection prot. Events
 * lock held. */
static int prot_still(struct sp_local *l, uintptr_t addr, size_t len, int prot)
{
	size_t span;
	int ours, p;

	return !ours_span(l, addr, len, &ours, &p, &span) && ours && span == len && p == prot;
}

/* Freeze, copy into a fresh anonymous mapping, move it over the run in one
 * mremap (readers see old or new, both with the same content), wake. */
static int restore_chunk(struct sp_local *l, uintptr_t addr, size_t n, int prot)
{
	size_t len = n * PAGE;
	void *scratch = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void *moved = MAP_FAILED;
	uint64_t seq;
	int err;

	if (scratch == MAP_FAILED)
		return -errno;
	do {
		/* Write-protection only covers present pages (anonymous ones
		 * without UFFD_FEATURE_WP_UNPOPULATED): map every page first
		 * (zero pages map the kernel's zero page, read-only), or a
		 * write into a not-present page during the copy would be lost
		 * with the old mapping. */
		madvise((void *)addr, len, MADV_POPULATE_READ);
		err = sp_uffd_protect(&l->uffd, addr, len, 1);
		if (err) {
			munmap(scratch, len);
			return err;
		}
		pthread_mutex_lock(&l->ev.lock);
		seq = l->ev.seq;
		pthread_mutex_unlock(&l->ev.lock);
		/* process_vm_readv, not memcpy: memory made unreadable against
		 * the contract gives an error, not a SIGSEGV in the application */
		if (local_read(&l->mem, addr, n, scratch) != (long)n) {
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
		/* A MADV_DONTNEED read since the copy may zap the old pages
		 * after it: copy again (under the events lock, as a remap).
		 * A protection changed since it was read: start again. */
		pthread_mutex_lock(&l->ev.lock);
		if (!prot_still(l, addr, len, prot)) {
			err = -EAGAIN;
		} else if (!removed_overlap(l, addr, addr + len, seq)) {
			moved = mremap(scratch, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)addr);
			err = moved == MAP_FAILED ? -errno : 0;
		}
		pthread_mutex_unlock(&l->ev.lock);
		if (moved == MAP_FAILED) {
			sp_uffd_protect(&l->uffd, addr, len, 0);
			if (err) {
				munmap(scratch, len);
				return err;
			}
			if (prot != (PROT_READ | PROT_WRITE))
				mprotect(scratch, len, PROT_READ | PROT_WRITE);
		}
	} while (moved == MAP_FAILED);
	sp_uffd_wake(&l->uffd, addr, len);
	return 0;
}

/* Holes and mappings that are not the engine's are skipped (see vma_ours):
 * what is left of the range there is forgotten, not copied over. With
 * again, each restored span is registered again (run=2). */
static int restore_walk(struct sp_local *l, uintptr_t addr, size_t n, int again)
{
	while (n) {
		size_t k = n < RESTORE_CHUNK ? n : RESTORE_CHUNK, span;
		int prot, ours, err = ours_span(l, addr, k * PAGE, &ours, &prot, &span);

		if (err)
			return err;
		k = span / PAGE;
		if (ours) {
			err = restore_chunk(l, addr, k, prot);
			if (err == -EAGAIN)
				continue; /* its protection changed meanwhile: again */
			if (!err && again)
				err = sp_uffd_register(&l->uffd, addr, k * PAGE);
			if (err)
				return err;
		}
		addr += k * PAGE;
		n -= k;
	}
	return 0;
}

static int local_restore(struct sp_mem *b, uintptr_t addr, size_t n)
{
	return restore_walk(L(b), addr, n, 0);
}

/* run=2: the same as unregistering (plain anonymous memory, content kept,
 * any protection kept), then registered again so the pages can be merged
 * later. Unlike MADV_POPULATE_WRITE this works on read-only memory and
 * leaves no store mapping behind (a later MADV_DONTNEED there would bring
 * the store page back). */
static int local_unmerge(struct sp_mem *b, uintptr_t addr, size_t n)
{
	return restore_walk(L(b), addr, n, 1);
}

static int local_store_alloc(struct sp_host *h, size_t n, int nid, uint64_t *pg)
{
	struct sp_local *l = LH(h);
	int err = sp_store_alloc(&l->store, n, pg);

	if (!err && nid >= 0)
		sp_numa_prefer(l->store.view + *pg * PAGE, n * PAGE, nid);
	return err;
}

static int local_node(struct sp_mem *b, uintptr_t addr, size_t n, int *nodes)
{
	struct sp_range r = {.start = addr, .npages = n};

	(void)b;
	return sp_numa_nodes(0, &r, 1, nodes);
}

static void *local_store_page(struct sp_host *h, uint64_t pg)
{
	return LH(h)->store.view + pg * PAGE;
}

static void local_store_free(struct sp_host *h, uint64_t pg)
{
	sp_store_free(&LH(h)->store, pg);
}

static uint64_t local_now_ns(struct sp_host *h)
{
	(void)h;
	return sp_mono_ns();
}

static uint64_t local_cpu_ns(struct sp_host *h)
{
	(void)h;
	return sp_thread_cpu_ns();
}

static long local_map_budget(struct sp_mem *b)
{
	/* no recount here: it reads /proc/self/maps, and this runs under the
	 * engine lock; the engine recounts outside it (recount_wanted) */
	return sp_budget_left(&L(b)->budget);
}

/* Page faults of this process's threads (a write breaking a merge's
 * copy-on-write takes one, from user space or inside a system call; the
 * kernel counts it once the new page is mapped), plus the userfaultfd
 * messages read (MADV_DONTNEED, faults on dropped store pages). */
static uint64_t local_writes(struct sp_mem *b)
{
	struct rusage ru;
	uint64_t n = __atomic_load_n(&L(b)->ev.messages, __ATOMIC_SEQ_CST);

	if (getrusage(RUSAGE_SELF, &ru)) {
		static uint64_t failed;

		/* never the same answer twice: nothing is trusted */
		return (1ull << 63) + __atomic_add_fetch(&failed, 1, __ATOMIC_RELAXED);
	}
	return n + (uint64_t)ru.ru_minflt + (uint64_t)ru.ru_majflt;
}

static const struct sp_mem_ops local_mem_ops = {
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
	.map_budget = local_map_budget,
	.node = local_node,
	.writes = local_writes,
};

static const struct sp_host_ops local_host_ops = {
	.store_alloc = local_store_alloc,
	.store_page = local_store_page,
	.store_free = local_store_free,
	.now_ns = local_now_ns,
	.cpu_ns = local_cpu_ns,
};

void sp_local_prepare(struct sp_local *l)
{
	memset(l, 0, sizeof(*l));
	l->mem.ops = &local_mem_ops;
	l->host.ops = &local_host_ops;
	l->store.fd = -1;
	l->pm.fd = -1;
	l->uffd.fd = -1;
	l->maps_fd = -1;
	l->ev.maps_fd = -1;
}

static int init_common(struct sp_local *l, int store_fd, int devuffd, char *why, size_t whylen)
{
	int err;

	sp_local_prepare(l);
	l->pid = getpid();
	pthread_mutex_init(&l->ev.lock, NULL);
	l->store.fd = store_fd; /* a client's: the daemon's store, read-only */
	err = sp_uffd_open_dev(&l->uffd, devuffd, why, whylen);
	if (err)
		goto fail;
	if (store_fd < 0) {
		err = sp_store_init(&l->store, STORE_RESERVE_PAGES);
		if (err) {
			snprintf(why, whylen, "cannot create the page store (memfd): %s", strerror(-err));
			goto fail;
		}
	}
	err = sp_pagemap_open(&l->pm, 0);
	if (err) {
		snprintf(why, whylen, "cannot open /proc/self/pagemap: %s", strerror(-err));
		goto fail;
	}
	sp_budget_init(&l->budget);
	err = start_events(l);
	if (err) {
		snprintf(why, whylen, "cannot start the userfaultfd event thread: %s", strerror(-err));
		goto fail;
	}
	return 0;
fail:
	sp_local_destroy(l);
	return err;
}

int sp_local_init(struct sp_local *l, char *why, size_t whylen)
{
	return init_common(l, -1, -1, why, whylen);
}

int sp_local_init_client(struct sp_local *l, int store_fd, int devuffd, char *why, size_t whylen)
{
	return init_common(l, store_fd, devuffd, why, whylen);
}

void sp_local_destroy(struct sp_local *l)
{
	sp_uffd_close(&l->uffd);
	sp_store_destroy(&l->store);
	sp_pagemap_close(&l->pm);
	if (l->maps_fd >= 0)
		close(l->maps_fd);
	l->maps_fd = -1;
	/* (after fork, in the child, where no event thread runs) */
	if (l->ev.maps_fd >= 0)
		close(l->ev.maps_fd);
	l->ev.maps_fd = -1;
	drop_array((void **)&l->ev.removed, &l->ev.removed_cap, sizeof(*l->ev.removed));
	drop_array((void **)&l->ev.converted, &l->ev.converted_cap, sizeof(*l->ev.converted));
	drop_array((void **)&l->ev.blocked, &l->ev.blocked_cap, sizeof(*l->ev.blocked));
	l->ev.nremoved = l->ev.nconverted = l->ev.nblocked = 0;
}

int sp_local_register(struct sp_local *l, uintptr_t addr, size_t len,
		      int (*add)(void *ctx, uintptr_t start, size_t len), void *ctx)
{
	uintptr_t end = addr + len, covered = addr;
	char line[512];
	FILE *f;
	int err = 0;

	f = fopen("/proc/self/maps", "re");
	if (!f)
		return -errno;
	while (covered < end && fgets(line, sizeof(line), f)) {
		struct sp_maps_line v;
		uintptr_t lo, hi;

		if (sp_maps_parse(line, &v) || v.end <= covered)
			continue;
		if (v.start > covered) {
			err = -ENOMEM; /* a hole */
			break;
		}
		lo = covered;
		hi = v.end < end ? v.end : end;
		if (!v.inode && v.private && (v.prot & (PROT_READ | PROT_WRITE)) == (PROT_READ | PROT_WRITE)) {
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
