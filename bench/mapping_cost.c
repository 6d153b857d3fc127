/* SPDX-License-Identifier: MIT */
/*
 * mapping_cost.c - kernel memory per extra mapping, the figure general_profit
 * charges for every mapping a merge creates (SP_MAPPING_COST).
 *
 * Remaps every other page of an anonymous region to a discontiguous memfd
 * offset (what an isolated merge does: one new file mapping plus a split of
 * the anonymous one) and reports the growth of Slab in /proc/meminfo per
 * extra mapping (vm_area_struct, maple tree nodes, anon_vma chains).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
static long slab_kb(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char l[256];
	long v = -1;
	while (fgets(l, sizeof l, f))
		if (!strncmp(l, "Slab:", 5))
			v = atol(l + 5);
	fclose(f);
	return v;
}
static long pt_kb(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char l[256];
	long v = -1;
	while (fgets(l, sizeof l, f))
		if (!strncmp(l, "PageTables:", 11))
			v = atol(l + 11);
	fclose(f);
	return v;
}
int main(void)
{
	int n = 30000;
	int fd = memfd_create("x", 0);
	ftruncate(fd, (off_t)n * 2 * 4096);
	char *base = mmap(0, (size_t)n * 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (size_t i = 0; i < (size_t)n * 2; i++)
		base[i * 4096] = 1;
	sync();
	long s0 = slab_kb(), p0 = pt_kb();
	for (int i = 0; i < n;
	     i++) { /* every other page remapped to a discontiguous file offset: one new VMA + split */
		if (mmap(base + (size_t)2 * i * 4096, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd,
			 (off_t)(n - 1 - i) * 2 * 4096) == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
	}
	long s1 = slab_kb(), p1 = pt_kb();
	FILE *m = fopen("/proc/self/maps", "r");
	int lines = 0;
	char l[512];
	while (fgets(l, sizeof l, m))
		lines++;
	printf("%d remaps -> %d maps lines; slab +%ld kB (%.0f B per extra mapping); pagetables +%ld kB\n", n, lines,
	       s1 - s0, (s1 - s0) * 1024.0 / (2.0 * n), p1 - p0);
	return 0;
}
