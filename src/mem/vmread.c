/* SPDX-License-Identifier: MIT */
/*
 * vmread.c - process_vm_readv in calls of bounded length; see vmread.h.
 */
#include <errno.h>
#include <sys/uio.h>

#include "mem/vmread.h"

#define PAGE 4096ul

/* At most this many pages per process_vm_readv (a whole batch): the copy is
 * not preemptible on every kernel, so a thread sharing the scanner's CPU may
 * wait for one call (about 50 us for 64 pages); smaller calls cost more in
 * pinning overhead than they give back. */
#define READ_CHUNK 64

long sp_vm_read(int pid, uintptr_t addr, size_t n, void *buf)
{
	size_t done = 0;

	while (done < n) {
		size_t k = n - done < READ_CHUNK ? n - done : READ_CHUNK;
		struct iovec mine = {.iov_base = (char *)buf + done * PAGE, .iov_len = k * PAGE};
		struct iovec theirs = {.iov_base = (void *)(addr + done * PAGE), .iov_len = k * PAGE};
		ssize_t got = process_vm_readv(pid, &mine, 1, &theirs, 1, 0);

		if (got < 0)
			return errno == EFAULT ? (long)done : -errno;
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
