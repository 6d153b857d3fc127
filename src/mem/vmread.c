/* SPDX-License-Identifier: MIT */
/*
 * vmread.c - page content with process_vm_readv (see reader.h).
 *
 * The scanner's reads (sp_vm_read, sp_vm_read2) are calls of bounded
 * length: it shares CPUs with the application. The estimator's reads
 * (sp_vm_read_ranges) take whatever the caller asks for in one call, as
 * many ranges as one iovec array holds, and go on past a page that went
 * away since it was found.
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "mem/reader.h"

#define PAGE SP_PAGE_SIZE

/* At most this many pages per process_vm_readv (a whole batch): the copy is
 * not preemptible on every kernel, so a thread sharing the scanner's CPU may
 * wait for one call (about 50 us for 64 pages); smaller calls cost more in
 * pinning overhead than they give back. */
#define READ_CHUNK 64
/* ranges per process_vm_readv in sp_vm_read_ranges (UIO_MAXIOV is 1024) */
#define IOV_CHUNK 256

long sp_vm_read_bytes(int pid, uintptr_t addr, void *buf, size_t len)
{
	struct iovec mine = {.iov_base = buf, .iov_len = len};
	struct iovec theirs = {.iov_base = (void *)addr, .iov_len = len};
	ssize_t got = process_vm_readv(pid, &mine, 1, &theirs, 1, 0);

	return got < 0 ? -errno : (long)got;
}

long sp_vm_read(int pid, uintptr_t addr, size_t n, void *buf)
{
	size_t done = 0;

	while (done < n) {
		size_t k = n - done < READ_CHUNK ? n - done : READ_CHUNK;
		long got = sp_vm_read_bytes(pid, addr + done * PAGE, (char *)buf + done * PAGE, k * PAGE);

		if (got < 0)
			return got == -EFAULT ? (long)done : got;
		done += (size_t)got / PAGE;
		if ((size_t)got < k * PAGE)
			break; /* stopped at an unreadable page */
	}
	return (long)done;
}

long sp_vm_read2(int pid, uintptr_t a1, void *buf1, uintptr_t a2, void *buf2, size_t n, long *got2)
{
	struct iovec mine[2] = {{.iov_base = buf1, .iov_len = n * PAGE}, {.iov_base = buf2, .iov_len = n * PAGE}};
	struct iovec theirs[2] = {{.iov_base = (void *)a1, .iov_len = n * PAGE},
				  {.iov_base = (void *)a2, .iov_len = n * PAGE}};
	ssize_t got;

	if (n > READ_CHUNK) { /* keep each call short, as sp_vm_read does */
		*got2 = sp_vm_read(pid, a2, n, buf2);
		return sp_vm_read(pid, a1, n, buf1);
	}
	got = process_vm_readv(pid, mine, 2, theirs, 2, 0);
	if (got < 0) {
		if (errno == ESRCH)
			return -ESRCH;
		got = 0; /* EFAULT on the first page: nothing read */
	}
	got /= (ssize_t)PAGE;
	*got2 = got > (ssize_t)n ? got - (ssize_t)n : 0;
	return got > (ssize_t)n ? (long)n : (long)got;
}

/* One process_vm_readv over ranges rg[0..nr) (nr <= IOV_CHUNK) into buf.
 * Returns bytes read (it stops at the first page that fails) or -errno. */
static long readv_ranges(int pid, const struct sp_range *rg, size_t nr, uint8_t *buf)
{
	struct iovec iov[IOV_CHUNK], mine;
	size_t len = 0;
	ssize_t got;

	for (size_t i = 0; i < nr; i++) {
		iov[i].iov_base = (void *)rg[i].start;
		iov[i].iov_len = rg[i].npages << SP_PAGE_SHIFT;
		len += iov[i].iov_len;
	}
	mine.iov_base = buf;
	mine.iov_len = len;
	got = process_vm_readv(pid, &mine, 1, iov, nr, 0);
	return got < 0 ? -errno : (long)got;
}

long sp_vm_read_ranges(int pid, const struct sp_range *rg, size_t nr, void *buf, uint8_t *ok)
{
	uint8_t *out = buf;
	uint64_t total = 0, done = 0, good = 0;
	struct sp_range one;
	size_t i = 0;
	int err = 0;

	for (size_t k = 0; k < nr; k++)
		total += rg[k].npages;
	memset(ok, 0, total);
	/* Whole ranges at a time; after a short read, resume one page past
	 * the failure (that page went away since it was found). */
	one.npages = 0;
	one.start = 0;
	while (i < nr) {
		const struct sp_range *cur = rg + i;
		size_t n = nr - i < IOV_CHUNK ? nr - i : IOV_CHUNK;
		uint64_t want = 0, pages;
		long got;

		if (one.npages) { /* the rest of a range cut by a failure */
			cur = &one;
			n = 1;
		}
		for (size_t k = 0; k < n; k++)
			want += cur[k].npages;
		got = readv_ranges(pid, cur, n, out + (done << SP_PAGE_SHIFT));
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
