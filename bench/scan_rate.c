/* SPDX-License-Identifier: MIT */
/*
 * scan_rate.c - the engine's unique-page scan rate, and what scan_threads
 * changes (no kernel side: bench_settle has the ksmd comparison).
 *
 * 1 GiB of unique pages, smart_scan 0, pages_to_scan 100000,
 * sleep_millisecs 0; after two full scans (the first only hashes), pages
 * scanned per wall second and per CPU-second (scanner plus helper threads)
 * over the next four.
 *
 *   bench_scan_rate [THREADS...]     default: 1 2
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "samepage.h"
#include "util/clock.h"

#define PAGES 262144ul

static int measure(const char *threads)
{
	char *m = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct samepage_stats a, b;
	double t0, t1;

	if (m == MAP_FAILED)
		return 1;
	madvise(m, PAGES * 4096, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < PAGES; i++) {
		unsigned long *w = (void *)(m + i * 4096);

		for (int k = 0; k < 512; k++)
			w[k] = i * 1000003 + (unsigned long)k;
	}
	if (samepage_set("scan_threads", threads) || samepage_set("pages_to_scan", "100000") ||
	    samepage_set("sleep_millisecs", "0") || samepage_set("smart_scan", "0") ||
	    samepage_madvise(m, PAGES * 4096, SAMEPAGE_MERGEABLE) || samepage_set("run", "1")) {
		perror("samepage");
		return 1;
	}
	samepage_wait_scans(2, 60000);
	samepage_stats(&a);
	t0 = sp_mono_s();
	samepage_wait_scans(4, 60000);
	t1 = sp_mono_s();
	samepage_stats(&b);
	printf("scan_threads %-3s %6.0f k pages/s wall %6.0f k pages/CPU-s\n", threads,
	       (double)(b.pages_scanned - a.pages_scanned) / (t1 - t0) / 1e3,
	       (double)(b.pages_scanned - a.pages_scanned) / ((double)(b.scan_cpu_ns - a.scan_cpu_ns) / 1e9) / 1e3);
	return 0;
}

int main(int argc, char **argv)
{
	const char *def[] = {"1", "2"};
	int n = argc > 1 ? argc - 1 : 2;

	printf("1 GiB of unique pages, smart_scan 0, pages_to_scan 100000, sleep_millisecs 0\n");
	for (int i = 0; i < n; i++) {
		pid_t pid;

		fflush(stdout);
		pid = fork(); /* one engine per process: a fresh one per run */
		if (pid == 0) {
			int rc = measure(argc > 1 ? argv[i + 1] : def[i]);

			fflush(stdout);
			_exit(rc);
		}
		waitpid(pid, NULL, 0);
	}
	return 0;
}
