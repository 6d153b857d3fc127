/* SPDX-License-Identifier: MIT */
/*
 * pagemap.c - page state from /proc/PID/pagemap (see reader.h).
 *
 * One 64-bit entry per page: bit 63 present, bit 62 swapped, bit 61 "file
 * page or shared anonymous", bits 0-54 the page frame (0 unless the reader
 * has CAP_SYS_ADMIN). A merged page that still shares its store page reads
 * as present+file; once written it reads as present without the file bit.
 * The kernel's shared zero page is recognised by its frame number (below);
 * without CAP_SYS_ADMIN it cannot be told apart and reads as an ordinary
 * present page.
 *
 * Which pages ksmd scans: in a mergeable VMA, a page that maps an anonymous
 * folio (a KSM page counts: it is anonymous too); page-cache pages of a
 * private file mapping and the shared zero page are passed over.
 * PAGEMAP_SCAN reports exactly those categories (PAGE_IS_PRESENT,
 * PAGE_IS_FILE = "not anonymous", PAGE_IS_PFNZERO), without needing
 * CAP_SYS_ADMIN, and PAGE_IS_HUGE tells the pages of a PMD-mapped THP (the
 * estimate's model treats their all-zero subpages apart). Without the
 * ioctl the same pages are found from the entries, one per page.
 *
 * The zero page's frame, proved. A read fault on private anonymous memory
 * normally maps the shared zero page, but not always (architectures and
 * configurations that forbid it, a hypervisor's MMU that does its own
 * thing): then the frame read back is an ordinary page, which munmap frees
 * and the allocator hands out again at once, typically to the application's
 * next page. Taking that frame for the zero page made that page invisible
 * to the scan for ever. So a candidate is accepted only with proof: the
 * kernel's own flag for it in /proc/kpageflags (KPF_ZERO_PAGE), or, where
 * that file cannot be read, two separate mappings faulted at the same time
 * reading the same frame (two private anonymous pages alive together cannot
 * share an ordinary frame).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mem/reader.h"

/* PAGEMAP_SCAN (include/uapi/linux/fs.h, Linux 6.7); Debian 12's headers
 * predate it. */
#ifndef PAGEMAP_SCAN
struct page_region {
	uint64_t start, end, categories;
};
struct pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN	_IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_FILE	(1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE	(1 << 6)
#endif

#define PM_PRESENT    (1ull << 63)
#define PM_SWAPPED    (1ull << 62)
#define PM_FILE	      (1ull << 61)
#define PM_PFN	      ((1ull << 55) - 1)
#define KPF_ZERO_PAGE 24  /* include/uapi/linux/kernel-page-flags.h */
#define SCAN_CHUNK    512 /* entries read at once by the walk without PAGEMAP_SCAN */

static uint64_t frame_of(int pm, const volatile uint8_t *p)
{
	uint64_t e = 0;

	(void)p[0]; /* a read fault: maps the zero page where the kernel can */
	if (pread(pm, &e, 8, (off_t)(((uintptr_t)p >> SP_PAGE_SHIFT) * 8)) != 8)
		return 0;
	return (e & PM_PRESENT) ? (e & PM_PFN) : 0;
}

/* 1 the kernel flags pfn as its zero page, 0 it does not, -1 unknown */
static int flagged_zero(uint64_t pfn)
{
	uint64_t flags = 0;
	int fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	ssize_t got;

	if (fd < 0)
		return -1;
	got = pread(fd, &flags, 8, (off_t)(pfn * 8));
	close(fd);
	if (got != 8)
		return -1;
	return (int)((flags >> KPF_ZERO_PAGE) & 1);
}

/* The zero page's frame number, or 0 when it cannot be known for certain
 * (frames are hidden, or the kernel did not map the zero page on a read
 * fault). */
static uint64_t zero_pfn(void)
{
	volatile uint8_t *a = mmap(NULL, SP_PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	volatile uint8_t *b = mmap(NULL, SP_PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t pfn = 0, other = 0;
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (pm >= 0 && a != MAP_FAILED && b != MAP_FAILED) {
		pfn = frame_of(pm, a);
		other = frame_of(pm, b);
	}
	if (pfn) {
		switch (flagged_zero(pfn)) {
		case 1:
			break;
		case 0:
			pfn = 0;
			break;
		default:
			if (other != pfn)
				pfn = 0;
			break;
		}
	}
	if (pm >= 0)
		close(pm);
	if (a != MAP_FAILED)
		munmap((void *)a, SP_PAGE_SIZE);
	if (b != MAP_FAILED)
		munmap((void *)b, SP_PAGE_SIZE);
	return pfn;
}

int sp_pagemap_open(struct sp_pagemap *pm, int pid)
{
	char path[64];

	memset(pm, 0, sizeof(*pm));
	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/pagemap");
	pm->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (pm->fd < 0) {
		int e = errno;

		return pid && e == ENOENT ? -ESRCH : -e;
	}
	pm->zero_pfn = zero_pfn();
	return 0;
}

void sp_pagemap_close(struct sp_pagemap *pm)
{
	if (pm->fd >= 0)
		close(pm->fd);
	free(pm->raw);
	memset(pm, 0, sizeof(*pm));
	pm->fd = -1;
}

uint8_t sp_pagemap_flags(const struct sp_pagemap *pm, uint64_t e)
{
	uint8_t f = 0;

	if (e & PM_PRESENT)
		f |= SP_PG_PRESENT;
	if (e & PM_SWAPPED)
		f |= SP_PG_SWAPPED;
	if (e & PM_FILE)
		f |= SP_PG_FILE;
	if (pm->zero_pfn && (e & PM_PRESENT) && (e & PM_PFN) == pm->zero_pfn)
		f |= SP_PG_ZEROPFN;
	return f;
}

long sp_pagemap_raw(struct sp_pagemap *pm, uintptr_t addr, size_t n, uint64_t *raw)
{
	ssize_t got = pread(pm->fd, raw, n * 8, (off_t)((addr >> SP_PAGE_SHIFT) * 8));

	return got < 0 ? -errno : (long)((size_t)got / 8);
}

/* Reads the entries of n pages at addr into pm->raw. Returns the number of
 * entries read (fewer at the end of the address space), or -errno. */
static long read_entries(struct sp_pagemap *pm, uintptr_t addr, size_t n)
{
	if (n > pm->raw_cap) {
		uint64_t *r = realloc(pm->raw, n * 8);

		if (!r)
			return -ENOMEM;
		pm->raw = r;
		pm->raw_cap = n;
	}
	return sp_pagemap_raw(pm, addr, n, pm->raw);
}

int sp_pagemap_query(struct sp_pagemap *pm, uintptr_t addr, size_t n, uint8_t *flags)
{
	long got = read_entries(pm, addr, n);

	if (got < 0)
		return (int)got;
	for (size_t i = 0; i < n; i++)
		flags[i] = (long)i < got ? sp_pagemap_flags(pm, pm->raw[i]) : 0;
	return 0;
}

/* sp_pagemap_present with the PAGEMAP_SCAN ioctl */
static long present_ioctl(struct sp_pagemap *pm, uintptr_t *pos, uintptr_t end, struct sp_range *out, size_t max,
			  uint64_t max_pages)
{
	struct page_region reg[256];
	struct pm_scan_arg a;
	long n;

	if (max > 256)
		max = 256;
	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.start = *pos;
	a.end = end;
	a.vec = (uintptr_t)reg;
	a.vec_len = max;
	a.max_pages = max_pages;
	a.category_mask = PAGE_IS_PRESENT | PAGE_IS_FILE | PAGE_IS_PFNZERO;
	a.category_inverted = PAGE_IS_FILE | PAGE_IS_PFNZERO;
	a.return_mask = PAGE_IS_PRESENT | PAGE_IS_HUGE;
	n = ioctl(pm->fd, PAGEMAP_SCAN, &a);
	if (n < 0)
		return -errno;
	for (long i = 0; i < n; i++) {
		out[i].start = reg[i].start;
		out[i].npages = (reg[i].end - reg[i].start) >> SP_PAGE_SHIFT;
		out[i].huge = !!(reg[i].categories & PAGE_IS_HUGE);
	}
	*pos = a.walk_end ? a.walk_end : end;
	return n;
}

/* sp_pagemap_present from the entries: present, not file, not the zero
 * page (which is only known when frames are visible) */
static long present_entries(struct sp_pagemap *pm, uintptr_t *pos, uintptr_t end, struct sp_range *out, size_t max,
			    uint64_t max_pages)
{
	uint64_t found = 0;
	size_t nr = 0;
	uintptr_t a = *pos;

	while (a < end && nr < max && found < max_pages) {
		size_t n = (end - a) >> SP_PAGE_SHIFT, i;
		long got;

		if (n > SCAN_CHUNK)
			n = SCAN_CHUNK;
		if (n > max_pages - found)
			n = max_pages - found;
		got = read_entries(pm, a, n);
		if (got < 0)
			return nr ? (long)nr : got;
		if (got == 0)
			break;
		n = (size_t)got;
		for (i = 0; i < n; i++) {
			uintptr_t pa = a + (i << SP_PAGE_SHIFT);

			if ((sp_pagemap_flags(pm, pm->raw[i]) & (SP_PG_PRESENT | SP_PG_FILE | SP_PG_ZEROPFN)) !=
			    SP_PG_PRESENT)
				continue;
			if (nr && out[nr - 1].start + (out[nr - 1].npages << SP_PAGE_SHIFT) == pa) {
				out[nr - 1].npages++;
			} else {
				if (nr == max)
					break;
				out[nr].start = pa;
				out[nr].npages = 1;
				out[nr].huge = 0; /* not told by pagemap */
				nr++;
			}
			found++;
		}
		a += i << SP_PAGE_SHIFT;
		if (i < n)
			break;
	}
	*pos = a < end ? a : end;
	return (long)nr;
}

long sp_pagemap_present(struct sp_pagemap *pm, uintptr_t *pos, uintptr_t end, struct sp_range *out, size_t max,
			uint64_t max_pages)
{
	if (!pm->scan) { /* probe PAGEMAP_SCAN on an empty range of address space */
		uintptr_t p = 0;
		struct sp_range rg;

		pm->scan = present_ioctl(pm, &p, SP_PAGE_SIZE, &rg, 1, 1) < 0 ? -1 : 1;
	}
	if (pm->scan > 0) {
		long n = present_ioctl(pm, pos, end, out, max, max_pages);

		if (n != -ENOTTY && n != -EINVAL)
			return n;
		pm->scan = -1; /* an older kernel: read entries instead */
	}
	return present_entries(pm, pos, end, out, max, max_pages);
}
