/* SPDX-License-Identifier: MIT */
/*
 * latency_probe.c - how much does a scanner delay a thread on its CPU?
 *
 * The operator's complaint about ksmd is that it takes long slices of a CPU
 * that a VM's vCPU thread needed. This benchmark puts a probe thread on the
 * scanner's CPU: it sleeps 1 ms in a loop and records how late each wake-up
 * is (oversleep). Three phases of equal length, same workload, same CPU:
 *
 *   idle    nothing scanning                    (the floor of this machine)
 *   engine  libsamepage scanning flat out       (pinned to the probe's CPU)
 *   engine-idle  the same with sched_idle=1     (scanner in SCHED_IDLE)
 *   ksmd    the kernel's ksmd scanning flat out (pinned to the probe's CPU)
 *
 * Both scanners get the same knobs: pages_to_scan 100000, sleep_millisecs 0,
 * smart_scan 0, over the same memory (half unique pages, half duplicates,
 * so both keep hashing and merging). Prints p50/p99/max oversleep per phase
 * and the engine's longest uninterrupted batch. Needs root for ksmd; every
 * knob and ksmd's affinity are restored afterwards.
 *
 *   bench_latency_probe [--size MIB] [--seconds S] [--cpu N]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "samepage.h"
#include "../tests/testlib.h"
#include "util/clock.h"

struct probe {
	int cpu;
	double seconds;
	double *lat_us;
	size_t n, cap;
};

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void *probe_thread(void *arg)
{
	struct probe *p = arg;
	uint64_t end;

	pin(p->cpu);
	end = sp_mono_ns() + (uint64_t)(p->seconds * 1e9);
	while (sp_mono_ns() < end && p->n < p->cap) {
		struct timespec d = {0, 1000000};
		uint64_t t0 = sp_mono_ns();

		clock_nanosleep(CLOCK_MONOTONIC, 0, &d, NULL);
		p->lat_us[p->n++] = (double)(sp_mono_ns() - t0 - 1000000) / 1000.0;
	}
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void run_probe(struct probe *p, const char *label)
{
	pthread_t t;

	p->n = 0;
	pthread_create(&t, NULL, probe_thread, p);
	pthread_join(t, NULL);
	qsort(p->lat_us, p->n, sizeof(double), cmp);
	printf("%-11s %8zu %10.0f %10.0f %10.0f\n", label, p->n, p->lat_us[p->n / 2], p->lat_us[p->n * 99 / 100],
	       p->lat_us[p->n - 1]);
	fflush(stdout);
}

static uint8_t *workload(size_t pages)
{
	uint8_t *m = t_map(pages);

	madvise(m, pages * TPAGE, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < pages; i++)
		t_fill(m + i * TPAGE, i % 2 ? 1000000 + (uint32_t)i : 1 + (uint32_t)(i % 512));
	return m;
}

int main(int argc, char **argv)
{
	struct probe p = {.cpu = 0, .seconds = 5};
	long size_mib = 512;
	size_t pages;
	uint8_t *mem, *kmem;
	struct samepage_stats st;
	cpu_set_t old_ksmd;
	int c, kpid;

	while ((c = getopt(argc, argv, "s:t:c:h")) != -1) {
		switch (c) {
		case 's':
			size_mib = atol(optarg);
			break;
		case 't':
			p.seconds = atof(optarg);
			break;
		case 'c':
			p.cpu = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-s MIB] [-t SECONDS] [-c CPU]\n", argv[0]);
			return 2;
		}
	}
	pages = (size_t)size_mib * 256;
	p.cap = (size_t)(p.seconds * 2000) + 16;
	p.lat_us = malloc(p.cap * sizeof(double));
	printf("latency probe: a thread on CPU %d sleeps 1 ms in a loop; oversleep in microseconds\n", p.cpu);
	printf("workload: %ld MiB, half unique pages, half copies of 512 contents; %.0f s per phase\n", size_mib,
	       p.seconds);
	printf("knobs on both sides: pages_to_scan 100000, sleep_millisecs 0, smart_scan 0\n\n");
	printf("%-11s %8s %10s %10s %10s\n", "phase", "wakeups", "p50_us", "p99_us", "max_us");

	run_probe(&p, "idle");

	/* the engine: its scanner is created by the first registration and
	 * inherits this thread's CPU */
	pin(p.cpu);
	mem = workload(pages);
	samepage_set("pages_to_scan", "100000");
	samepage_set("sleep_millisecs", "0");
	samepage_set("smart_scan", "0");
	if (samepage_madvise(mem, pages * TPAGE, SAMEPAGE_MERGEABLE)) {
		perror("samepage_madvise");
		return 1;
	}
	samepage_set("run", "1");
	run_probe(&p, "engine");
	samepage_stats(&st);
	samepage_set("sched_idle", "1");
	run_probe(&p, "engine-idle");
	samepage_set("sched_idle", "0");
	samepage_set("run", "0");
	samepage_munmap(mem, pages * TPAGE);

	/* ksmd */
	if (!t_ksm_available() || (kpid = t_ksmd_pid()) < 0) {
		printf("ksmd        (not available: needs root and KSM)\n");
		goto out;
	}
	t_ksm_save();
	sched_getaffinity(kpid, sizeof(old_ksmd), &old_ksmd);
	{
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(p.cpu, &set);
		sched_setaffinity(kpid, sizeof(set), &set);
	}
	kmem = workload(pages);
	t_ksm_set("smart_scan", "0");
	t_ksm_set("advisor_mode", "none");
	t_ksm_set("pages_to_scan", "100000");
	t_ksm_set("sleep_millisecs", "0");
	madvise(kmem, pages * TPAGE, MADV_MERGEABLE);
	t_ksm_set("run", "1");
	run_probe(&p, "ksmd");
	t_ksm_restore();
	sched_setaffinity(kpid, sizeof(old_ksmd), &old_ksmd);
	munmap(kmem, pages * TPAGE);
out:
	printf("\nengine: %llu batches, %llu (%.3f%%) longer than batch_usecs=1000; longest %.2f ms of scanner CPU "
	       "time\n(in this VM the CPU time of a thread includes time its vCPU was preempted by the host)\n"
	       "scanner CPU %.2f s, %llu pages scanned\n",
	       (unsigned long long)st.batches, (unsigned long long)st.batches_over,
	       st.batches ? 100.0 * st.batches_over / st.batches : 0.0, st.longest_batch_ns / 1e6, st.scan_cpu_ns / 1e9,
	       (unsigned long long)st.pages_scanned);
	return 0;
}
