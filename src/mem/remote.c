/* SPDX-License-Identifier: MIT */
/*
 * remote.c - the read-only backend over another process (see remote.h).
 */
#include <errno.h>
#include <numaif.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "mem/remote.h"

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

void sp_remote_open(struct sp_remote *r, int pid)
{
	memset(r, 0, sizeof(*r));
	r->pid = pid;
}

void sp_remote_close(struct sp_remote *r)
{
	free(r->iov);
	memset(r, 0, sizeof(*r));
}
