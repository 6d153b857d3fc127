/* SPDX-License-Identifier: MIT */
/*
 * pagemap.c - page state from /proc/PID/pagemap.
 *
 * One 64-bit entry per page: bit 63 present, bit 62 swapped, bit 61 "file
 * page or shared anonymous", bits 0-54 the page frame (0 unless the reader
 * has CAP_SYS_ADMIN). A merged page that still shares its store page reads
 * as present+file; once written it reads as present without the file bit.
 * The kernel's shared zero page is recognised by its frame number
 * (zeropfn.c); without CAP_SYS_ADMIN it cannot be told apart and reads as
 * an ordinary present page.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mem/local.h"
#include "mem/zeropfn.h"

#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_FILE	   (1ull << 61)
#define PM_PFN	   ((1ull << 55) - 1)

int sp_pagemap_open(struct sp_pagemap *pm, int pid)
{
	char path[64];

	memset(pm, 0, sizeof(*pm));
	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/pagemap");
	pm->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (pm->fd < 0)
		return -errno;
	pm->zero_pfn = sp_zero_pfn();
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
	ssize_t got = pread(pm->fd, raw, n * 8, (off_t)((addr >> 12) * 8));

	return got < 0 ? -errno : (long)((size_t)got / 8);
}

int sp_pagemap_query(struct sp_pagemap *pm, uintptr_t addr, size_t n, uint8_t *flags)
{
	long got;

	if (n > pm->raw_cap) {
		uint64_t *r = realloc(pm->raw, n * 8);

		if (!r)
			return -ENOMEM;
		pm->raw = r;
		pm->raw_cap = n;
	}
	got = sp_pagemap_raw(pm, addr, n, pm->raw);
	if (got < 0)
		return (int)got;
	for (size_t i = 0; i < n; i++)
		flags[i] = sp_pagemap_flags(pm, (long)i < got ? pm->raw[i] : 0);
	return 0;
}
