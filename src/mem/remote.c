/* SPDX-License-Identifier: MIT */
/*
 * remote.c - the read-only backend over another process (see remote.h).
 *
 * Which pages: ksmd looks at a page of a mergeable VMA only if it maps an
 * anonymous folio (a KSM page counts: it is anonymous too); page-cache pages
 * of a private file mapping and the shared zero page are passed over.
 * PAGEMAP_SCAN reports exactly those categories (PAGE_IS_PRESENT,
 * PAGE_IS_FILE = "not anonymous", PAGE_IS_PFNZERO), without needing
 * CAP_SYS_ADMIN, and PAGE_IS_HUGE tells the pages of a PMD-mapped THP
 * (the estimate's model treats their all-zero subpages apart). The
 * fallback reads pagemap entries: bit 63 present, bit 61
 * file-or-shared-anon, and the zero page is recognised by its frame number
 * when PFNs are visible (root).
 */
#include <errno.h>
#include <fcntl.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "mem/remote.h"
#include "mem/zeropfn.h"
#include "util/clock.h"

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

#define PM_PRESENT (1ull << 63)
#define PM_FILE	   (1ull << 61)
#define PM_PFN	   ((1ull << 55) - 1)
#define SCAN_CHUNK 512 /* fallback: pagemap entries read at once */

static long scan_ioctl(struct sp_remote *r, uintptr_t *pos, uintptr_t end, struct sp_range *out, size_t max,
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
	n = ioctl(r->pm_fd, PAGEMAP_SCAN, &a);
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

static long scan_read(struct sp_remote *r, uintptr_t *pos, uintptr_t end, struct sp_range *out, size_t max,
		      uint64_t max_pages)
{
	uint64_t found = 0;
	size_t nr = 0;
	uintptr_t a = *pos;

	if (!r->raw) {
		r->raw = malloc(SCAN_CHUNK * 8);
		if (!r->raw)
			return -ENOMEM;
	}
	while (a < end && nr < max && found < max_pages) {
		size_t n = (end - a) >> SP_PAGE_SHIFT, i;
		ssize_t got;

		if (n > SCAN_CHUNK)
			n = SCAN_CHUNK;
		if (n > max_pages - found)
			n = max_pages - found;
		got = pread(r->pm_fd, r->raw, n * 8, (off_t)((a >> SP_PAGE_SHIFT) * 8));
		if (got < 0)
			return nr ? (long)nr : -errno;
		if (got == 0)
			break;
		n = (size_t)got / 8;
		for (i = 0; i < n; i++) {
			uint64_t e = r->raw[i];
			uintptr_t pa = a + (i << SP_PAGE_SHIFT);
			int want = (e & PM_PRESENT) && !(e & PM_FILE) && !(r->zero_pfn && (e & PM_PFN) == r->zero_pfn);

			if (!want)
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

long sp_remote_present(struct sp_remote *r, uintptr_t *pos, uintptr_t end, struct sp_range *out, size_t max,
		       uint64_t max_pages)
{
	if (r->have_scan) {
		long n = scan_ioctl(r, pos, end, out, max, max_pages);

		if (n != -ENOTTY && n != -EINVAL)
			return n;
		r->have_scan = 0; /* an older kernel: read entries instead */
	}
	return scan_read(r, pos, end, out, max, max_pages);
}

static int grow_iov(struct sp_remote *r, size_t n)
{
	void *p;

	if (n <= r->iov_cap)
		return 0;
	p = realloc(r->iov, n * sizeof(struct iovec));
	if (!p)
		return -ENOMEM;
	r->iov = p;
	r->iov_cap = n;
	return 0;
}

/* One process_vm_readv over ranges rg[0..nr) (nr <= IOV_MAX). Returns bytes
 * read (stops at the first failing range) or -errno. */
static ssize_t readv_ranges(struct sp_remote *r, const struct sp_range *rg, size_t nr, uint8_t *buf)
{
	struct iovec *iov = r->iov, mine;
	size_t len = 0;
	ssize_t got;

	for (size_t i = 0; i < nr; i++) {
		iov[i].iov_base = (void *)rg[i].start;
		iov[i].iov_len = rg[i].npages << SP_PAGE_SHIFT;
		len += iov[i].iov_len;
	}
	mine.iov_base = buf;
	mine.iov_len = len;
	got = process_vm_readv(r->pid, &mine, 1, iov, nr, 0);
	if (got < 0)
		return -errno;
	r->bytes_read += (uint64_t)got;
	return got;
}

long sp_remote_read(struct sp_remote *r, const struct sp_range *rg, size_t nr, void *buf, uint8_t *ok)
{
	uint8_t *out = buf;
	uint64_t total = 0, done = 0, good = 0;
	struct sp_range one;
	size_t i = 0;
	int err = 0;

	for (size_t k = 0; k < nr; k++)
		total += rg[k].npages;
	memset(ok, 0, total);
	if (grow_iov(r, nr < 1024 ? nr : 1024))
		return -ENOMEM;
	/* Whole ranges at a time; after a short read, resume one page past
	 * the failure (that page went away since it was found). */
	one.npages = 0;
	one.start = 0;
	while (i < nr) {
		const struct sp_range *cur = rg + i;
		size_t n = nr - i < 1024 ? nr - i : 1024;
		uint64_t want = 0, pages;
		ssize_t got;

		if (one.npages) { /* the rest of a range cut by a failure */
			cur = &one;
			n = 1;
		}
		for (size_t k = 0; k < n; k++)
			want += cur[k].npages;
		got = readv_ranges(r, cur, n, out + (done << SP_PAGE_SHIFT));
		if (got == -ESRCH || got == -EPERM || got == -EACCES || got == -ENOMEM)
			return got; /* gone, refused, or the target's mm is being torn down */
		if (got < 0) {
			err = (int)got;
			got = 0;
		}
		pages = (uint64_t)got >> SP_PAGE_SHIFT;
		memset(ok + done, 1, pages);
		good += pages;
		if (pages == want) {
			done += want;
			if (one.npages)
				one.npages = 0, i++;
			else
				i += n;
			continue;
		}
		/* skip the page that failed, then go on inside its range */
		{
			uint64_t left = pages;
			size_t k = 0;

			while (left >= cur[k].npages) {
				left -= cur[k].npages;
				k++;
			}
			done += pages + 1; /* ok[] stays 0 for the failed page */
			if (cur == &one) {
				one.start += (left + 1) << SP_PAGE_SHIFT;
				one.npages -= left + 1;
				if (!one.npages)
					i++;
			} else {
				i += k;
				one.start = rg[i].start + ((left + 1) << SP_PAGE_SHIFT);
				one.npages = rg[i].npages - (left + 1);
				if (!one.npages)
					i++;
			}
		}
	}
	if (!good && err && total)
		return err;
	return (long)good;
}

int sp_remote_nodes(struct sp_remote *r, const struct sp_range *rg, size_t nr, int *nodes)
{
	void *pages[256];
	size_t k = 0, out = 0;

	for (size_t i = 0; i < nr; i++) {
		for (uint64_t j = 0; j < rg[i].npages; j++) {
			pages[k++] = (void *)(rg[i].start + (j << SP_PAGE_SHIFT));
			if (k == 256) {
				if (move_pages(r->pid, k, pages, NULL, nodes + out, 0))
					return -errno;
				out += k;
				k = 0;
			}
		}
	}
	if (k && move_pages(r->pid, k, pages, NULL, nodes + out, 0))
		return -errno;
	out += k;
	for (size_t i = 0; i < out; i++)
		if (nodes[i] < 0)
			nodes[i] = -1;
	return 0;
}

int sp_remote_open(struct sp_remote *r, int pid)
{
	char path[64];
	uintptr_t pos = 0;
	struct sp_range rg;

	memset(r, 0, sizeof(*r));
	r->pid = pid;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	r->pm_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->pm_fd < 0) {
		int e = errno;

		return e == ENOENT ? -ESRCH : -e;
	}
	r->zero_pfn = sp_zero_pfn();
	/* probe PAGEMAP_SCAN on an empty range of address space */
	r->have_scan = 1;
	if (scan_ioctl(r, &pos, 4096, &rg, 1, 1) < 0)
		r->have_scan = 0;
	return 0;
}

void sp_remote_close(struct sp_remote *r)
{
	if (r->pm_fd > 0)
		close(r->pm_fd);
	free(r->raw);
	free(r->iov);
	memset(r, 0, sizeof(*r));
	r->pm_fd = -1;
}
