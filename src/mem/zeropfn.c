/* SPDX-License-Identifier: MIT */
/*
 * zeropfn.c - learning the zero page's frame, and proving it.
 *
 * A read fault on private anonymous memory normally maps the shared zero
 * page, but not always (architectures and configurations that forbid it, a
 * hypervisor's MMU that does its own thing): then the frame read back is an
 * ordinary page, which munmap frees and the allocator hands out again at
 * once, typically to the application's next page. Taking that frame for the
 * zero page made that page invisible to the scan for ever. So a candidate is
 * accepted only with proof: the kernel's own flag for it in
 * /proc/kpageflags (KPF_ZERO_PAGE), or, where that file cannot be read, two
 * separate mappings faulted at the same time reading the same frame (two
 * private anonymous pages alive together cannot share an ordinary frame).
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mem/zeropfn.h"

#define PM_PRESENT    (1ull << 63)
#define PM_PFN	      ((1ull << 55) - 1)
#define KPF_ZERO_PAGE 24 /* include/uapi/linux/kernel-page-flags.h */

static uint64_t frame_of(int pm, const volatile uint8_t *p)
{
	uint64_t e = 0;

	(void)p[0]; /* a read fault: maps the zero page where the kernel can */
	if (pread(pm, &e, 8, (off_t)(((uintptr_t)p >> 12) * 8)) != 8)
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

uint64_t sp_zero_pfn(void)
{
	volatile uint8_t *a = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	volatile uint8_t *b = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
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
		munmap((void *)a, 4096);
	if (b != MAP_FAILED)
		munmap((void *)b, 4096);
	return pfn;
}
