/* SPDX-License-Identifier: MIT */
/*
 * merge.c - the smallest complete use of libsamepage.
 *
 * Allocates 64 MiB in which every page is one of 16 contents, registers it,
 * waits for two full scans and prints what was merged. Then writes to a
 * merged page, which simply gets a private copy.
 *
 *   cc merge.c $(pkg-config --cflags --libs samepage) && ./a.out
 */
#include <samepage.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

int main(void)
{
	size_t pages = 16384, len = pages * 4096;
	struct samepage_stats st;
	char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (mem == MAP_FAILED)
		return 1;
	for (size_t i = 0; i < pages; i++)
		memset(mem + i * 4096, 'a' + (int)(i % 16), 4096);

	if (samepage_madvise(mem, len, SAMEPAGE_MERGEABLE)) {
		perror("samepage_madvise");
		return 1;
	}
	samepage_set("pages_to_scan", "10000");
	samepage_set("run", "1");
	if (samepage_wait_scans(3, 30000)) { /* first visit hashes, second merges */
		perror("samepage_wait_scans");
		return 1;
	}
	samepage_stats(&st);
	printf("pages_shared %llu pages_sharing %llu (saved %.1f MiB)\n", (unsigned long long)st.pages_shared,
	       (unsigned long long)st.pages_sharing, st.pages_sharing * 4096.0 / (1 << 20));

	mem[0] = 'z'; /* copy-on-write: this page alone becomes private */
	printf("page 0 starts with '%c', page 16 with '%c'\n", mem[0], mem[16 * 4096]);
	return samepage_munmap(mem, len) ? 1 : 0;
}
