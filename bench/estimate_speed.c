/* SPDX-License-Identifier: MIT */
/*
 * estimate_speed.c - how fast `samepage estimate` reads and models a large
 * target, and how much memory it needs per scanned page.
 *
 * A child process fills a region (default 4 GiB) with a VM-like mix - a
 * quarter zero pages, a third copies of 4096 shared contents, the rest
 * unique - marks it MADV_MERGEABLE and waits. The estimator runs on it
 * once (after one untimed warm-up run) with --normal-priority; the figures
 * are its CPU time (user + system, from wait4), wall time, and peak
 * resident memory above that of an estimate of a small (16 MiB) target:
 * the per-page cost, without fixed costs such as the 2 MiB read buffer.
 *
 *   bench_estimate_speed [GiB] [path/to/samepage]
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include "util/clock.h"

#define BASE_PAGES 4096

static pid_t target(size_t npages)
{
	int fd[2];
	pid_t pid;
	char b;

	if (pipe(fd))
		exit(1);
	pid = fork();
	if (pid == 0) {
		uint8_t *m = mmap(NULL, npages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		uint64_t s = 1;

		if (m == MAP_FAILED)
			_exit(1);
		madvise(m, npages * 4096, MADV_NOHUGEPAGE);
		for (size_t i = 0; i < npages; i++) {
			uint64_t *w = (uint64_t *)(m + i * 4096), tag;
			unsigned kind = (unsigned)(i * 2654435761u >> 7) % 12;

			s ^= s << 13;
			s ^= s >> 7;
			s ^= s << 17;
			if (kind < 3) {
				w[0] = 0; /* touch: a zero page of its own */
				continue;
			}
			tag = kind < 7 ? s % 4096 + 1 : s | (1ull << 63);
			for (size_t j = 0; j < 512; j++)
				w[j] = tag * 0x9E3779B97F4A7C15ull + j;
		}
		madvise(m, npages * 4096, MADV_MERGEABLE);
		if (write(fd[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(fd[1]);
	if (read(fd[0], &b, 1) != 1)
		exit(1);
	close(fd[0]);
	return pid;
}

/* runs the estimator; returns CPU seconds, sets wall and peak RSS (KiB) */
static double run(const char *bin, pid_t pid, double *wall, long *maxrss)
{
	char p[32];
	struct rusage ru;
	pid_t c;
	int st;
	double t0 = sp_mono_s();

	snprintf(p, sizeof(p), "%d", pid);
	c = fork();
	if (c == 0) {
		if (!freopen("/dev/null", "w", stdout))
			_exit(126);
		execl(bin, bin, "estimate", "--pid", p, "--json", "--normal-priority", "--no-progress", (char *)NULL);
		_exit(127);
	}
	wait4(c, &st, 0, &ru);
	*wall = sp_mono_s() - t0;
	*maxrss = ru.ru_maxrss;
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "estimate failed (status %d)\n", st);
		exit(1);
	}
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	double gib = argc > 1 ? atof(argv[1]) : 4;
	size_t npages = (size_t)(gib * 262144);
	char bin[PATH_MAX], exe[PATH_MAX];
	double cpu, wall, w0;
	long rss, rss0;
	pid_t empty, big;
	ssize_t n;

	if (argc > 2) {
		snprintf(bin, sizeof(bin), "%s", argv[2]);
	} else {
		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		exe[n > 0 ? n : 0] = 0;
		snprintf(bin, sizeof(bin), "%s/../samepage", dirname(exe));
	}
	empty = target(BASE_PAGES);
	run(bin, empty, &w0, &rss0);
	big = target(npages);
	run(bin, big, &wall, &rss); /* warm-up: page tables, caches */
	cpu = run(bin, big, &wall, &rss);
	kill(empty, SIGKILL);
	kill(big, SIGKILL);
	waitpid(empty, NULL, 0);
	waitpid(big, NULL, 0);
	printf("target            %.2f GiB, %zu pages\n", gib, npages);
	printf("wall              %.3f s  (%.2f M pages/s)\n", wall, (double)npages / wall / 1e6);
	printf("cpu               %.3f s  (%.2f M pages per CPU-second)\n", cpu, (double)npages / cpu / 1e6);
	printf("peak rss          %ld KiB (16 MiB target: %ld KiB)\n", rss, rss0);
	printf("memory per page   %.1f bytes\n", (double)(rss - rss0) * 1024.0 / (double)(npages - BASE_PAGES));
	return 0;
}
