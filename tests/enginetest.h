/* SPDX-License-Identifier: MIT */
/*
 * enginetest.h - helpers for engine_*.c: libsamepage on real memory.
 *
 * The engine is one per process, so each engine_* program is one process
 * and its tests share it; every test unregisters what it registered. Waits
 * are bounded by deadlines (polling samepage_stats), never sleeps.
 */
#ifndef SP_ENGINETEST_H
#define SP_ENGINETEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "samepage.h"
#include "testlib.h"

/* How long a test waits for the engine to reach a count before calling it
 * stuck. Long on purpose: on a busy machine (both CPUs taken, sanitizers)
 * the scanner is slow, and only a real defect may fail a test; a healthy
 * engine ends every wait early. */
#define ET_PATIENCE_MS 120000

/* Fast scanning for tests. Returns 0, or 77 (skip) if the engine cannot
 * run here (no userfaultfd), printing why. */
static inline int et_start(void)
{
	void *probe = t_map(1);

	if (samepage_madvise(probe, TPAGE, SAMEPAGE_MERGEABLE)) {
		fprintf(stderr, "engine unavailable (%s): skipping\n", strerror(errno));
		return 77;
	}
	samepage_munmap(probe, TPAGE);
	if (samepage_set("pages_to_scan", "100000") || samepage_set("sleep_millisecs", "1") || samepage_set("run", "1"))
		return 1;
	return 0;
}

static inline struct samepage_stats et_stats(void)
{
	struct samepage_stats s;

	memset(&s, 0, sizeof(s));
	samepage_stats(&s);
	return s;
}

/* Waits until pages_shared and pages_sharing have the given values.
 * Returns 1 when they do, 0 after timeout_ms. */
static inline int et_wait_merged(uint64_t shared, uint64_t sharing, int timeout_ms)
{
	uint64_t end = t_now_ms() + (uint64_t)timeout_ms;

	do {
		struct samepage_stats s = et_stats();

		if (s.pages_shared == shared && s.pages_sharing == sharing)
			return 1;
		usleep(1000);
	} while (t_now_ms() < end);
	return 0;
}

/* Pages of [addr, addr + n pages) that map a file page (the store), from
 * /proc/self/pagemap bit 61 (present or swapped entries only). */
static inline size_t et_file_pages(const void *addr, size_t n)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	size_t file = 0;

	if (fd < 0)
		return (size_t)-1;
	for (size_t i = 0; i < n; i++) {
		uint64_t e = 0;
		off_t off = (off_t)((((uintptr_t)addr >> 12) + i) * 8);

		if (pread(fd, &e, 8, off) == 8 && (e & (3ull << 62)) && (e & (1ull << 61)))
			file++;
	}
	close(fd);
	return file;
}

/* 1 if every mapping overlapping [addr, addr + len) is anonymous (no
 * file, inode 0) and has the permissions perms ("rw-p", "r--p"). */
static inline int et_maps_are(const void *addr, size_t len, const char *perms, int anon)
{
	uintptr_t lo = (uintptr_t)addr, hi = lo + len;
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");
	int ok = 1;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s, e, off, ino;
		char p[8];
		unsigned maj, mnr;

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu", &s, &e, p, &off, &maj, &mnr, &ino) != 7)
			continue;
		if (e <= lo || s >= hi)
			continue;
		if (strcmp(p, perms) || (anon && ino != 0))
			ok = 0;
	}
	fclose(f);
	return ok;
}

#endif /* SP_ENGINETEST_H */
