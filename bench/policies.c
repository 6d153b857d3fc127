/* SPDX-License-Identifier: MIT */
/*
 * policies.c - what smart_scan and the advisor do, engine and kernel side by
 * side.
 *
 * 1. smart_scan: CPU per full scan once the workload has settled, with
 *    smart_scan 0 and 1, for the engine (its scanner thread's CPU time) and
 *    for ksmd (utime+stime of its /proc/PID/stat). Workload: SIZE MiB of
 *    which 90% unique pages, 10% copies of 64 contents; pages_to_scan 20000,
 *    sleep_millisecs 5 on both.
 * 2. advisor_mode=scan-time on a workload that grows: the engine starts with
 *    SIZE/4 MiB, gets another SIZE/4 every few full scans; for every full scan
 *    it prints the scan time, the scanner's CPU and the pages_to_scan the
 *    advisor chose, with advisor_target_scan_time TARGET seconds and
 *    sleep_millisecs 100. (The kernel's algorithm keeps the scanner between
 *    10% and advisor_max_cpu of a CPU: a scanner fast enough to beat the
 *    target at 10% settles there.)
 *
 *   bench_policies [-s SIZE_MIB] [-t TARGET_S] [-n SCANS]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "samepage.h"
#include "../tests/testlib.h"
#include "util/clock.h"

static uint8_t *workload(size_t pages, uint32_t seed)
{
	uint8_t *m = t_map(pages);

	madvise(m, pages * TPAGE, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < pages; i++)
		t_fill(m + i * TPAGE, i % 10 ? seed + (uint32_t)i : 1 + (uint32_t)(i % 64));
	return m;
}

static double engine_cpu(void)
{
	struct samepage_stats st;

	samepage_stats(&st);
	return st.scan_cpu_ns / 1e9;
}

static long engine_scans(void)
{
	struct samepage_stats st;

	samepage_stats(&st);
	return (long)st.full_scans;
}

/* CPU per full scan over `scans` full scans, after `warm` to settle. */
static double engine_cpu_per_scan(int warm, int scans)
{
	double c0;

	samepage_wait_scans((unsigned)warm, 600000);
	c0 = engine_cpu();
	samepage_wait_scans((unsigned)scans, 600000);
	return (engine_cpu() - c0) / scans;
}

static double kernel_cpu_per_scan(int pid, int warm, int scans)
{
	long f0 = t_ksm_get("full_scans");
	double c0 = 0;
	int phase = 0;
	uint64_t deadline = t_now_ms() + 600000;

	while (t_now_ms() < deadline) {
		long f = t_ksm_get("full_scans");

		if (!phase && f >= f0 + warm) {
			c0 = t_ksmd_cpu(pid);
			f0 = f;
			phase = 1;
		} else if (phase && f >= f0 + scans) {
			return (t_ksmd_cpu(pid) - c0) / (double)(f - f0);
		}
		usleep(5000); /* polling a counter, with a deadline */
	}
	return -1;
}

static void smart_scan(size_t pages)
{
	double e[2], k[2] = {-1, -1};
	int pid = t_ksmd_pid();
	uint8_t *m;

	printf("== smart_scan: CPU per full scan after settling (%zu MiB: 90%% unique pages) ==\n", pages / 256);
	samepage_set("pages_to_scan", "20000");
	samepage_set("sleep_millisecs", "5");
	m = workload(pages, 1000000);
	samepage_madvise(m, pages * TPAGE, SAMEPAGE_MERGEABLE);
	for (int on = 0; on < 2; on++) {
		samepage_set("smart_scan", on ? "1" : "0");
		samepage_set("run", "1");
		e[on] = engine_cpu_per_scan(12, 6);
		samepage_set("run", "0");
	}
	samepage_munmap(m, pages * TPAGE);

	if (t_ksm_available() && pid > 0) {
		t_ksm_save();
		m = workload(pages, 2000000);
		madvise(m, pages * TPAGE, MADV_MERGEABLE);
		t_ksm_set("advisor_mode", "none");
		t_ksm_set("pages_to_scan", "20000");
		t_ksm_set("sleep_millisecs", "5");
		for (int on = 0; on < 2; on++) {
			t_ksm_set("smart_scan", on ? "1" : "0");
			t_ksm_set("run", "1");
			k[on] = kernel_cpu_per_scan(pid, 12, 6);
			t_ksm_set("run", "0");
		}
		t_ksm_restore();
		munmap(m, pages * TPAGE);
	}
	printf("%-10s %16s %16s %10s\n", "", "smart_scan=0", "smart_scan=1", "saving");
	printf("%-10s %14.1f ms %14.1f ms %9.0f%%\n", "engine", e[0] * 1e3, e[1] * 1e3, 100 * (1 - e[1] / e[0]));
	if (k[0] > 0)
		printf("%-10s %14.1f ms %14.1f ms %9.0f%%\n", "ksmd", k[0] * 1e3, k[1] * 1e3, 100 * (1 - k[1] / k[0]));
	else
		printf("ksmd       not measured (needs root and KSM)\n");
	if (k[0] > 0)
		printf("engine/ksmd CPU per full scan: %.2f (smart_scan=0), %.2f (smart_scan=1)\n\n", e[0] / k[0],
		       e[1] / k[1]);
}

static void advisor(size_t pages, int target, int nscans)
{
	size_t quarter = pages / 4;
	uint8_t *parts[4];
	char t[32];
	int added = 1;
	double t0 = sp_mono_s(), c0 = engine_cpu();
	long scans0;

	printf("== advisor_mode=scan-time, advisor_target_scan_time=%d s, memory growing %zu MiB at a time ==\n",
	       target, quarter / 256);
	samepage_set("run", "2");
	samepage_set("run", "0");
	samepage_set("smart_scan", "1");
	samepage_set("sleep_millisecs", "100");
	snprintf(t, sizeof(t), "%d", target);
	samepage_set("advisor_target_scan_time", t);
	samepage_set("advisor_mode", "scan-time");
	for (int i = 0; i < 4; i++)
		parts[i] = workload(quarter, 3000000 + (uint32_t)(i * quarter));
	samepage_madvise(parts[0], quarter * TPAGE, SAMEPAGE_MERGEABLE);
	samepage_set("run", "1");
	scans0 = engine_scans();
	printf("%5s %10s %12s %10s %8s %14s\n", "scan", "memory", "scan_time_s", "cpu_pct", "pages", "pages_to_scan");
	for (int s = 1; s <= nscans; s++) {
		char pts[32];
		double t1, c1;

		if (samepage_wait_scans(1, (target * 20 + 60) * 1000)) {
			printf("timed out waiting for a full scan\n");
			break;
		}
		t1 = sp_mono_s();
		c1 = engine_cpu();
		samepage_get("pages_to_scan", pts, sizeof(pts));
		printf("%5ld %7zu MiB %12.1f %10.1f %8zu %14s\n", engine_scans() - scans0, added * quarter / 256,
		       t1 - t0, 100 * (c1 - c0) / (t1 - t0), added * quarter, pts);
		fflush(stdout);
		t0 = t1;
		c0 = c1;
		if (s % 4 == 0 && added < 4) {
			samepage_madvise(parts[added], quarter * TPAGE, SAMEPAGE_MERGEABLE);
			added++;
		}
	}
	samepage_set("advisor_mode", "none");
	samepage_set("run", "0");
	for (int i = 0; i < 4; i++)
		samepage_munmap(parts[i], quarter * TPAGE);
}

int main(int argc, char **argv)
{
	long size = 256;
	int target = 3, nscans = 16, c, only = 0;

	while ((c = getopt(argc, argv, "s:t:n:o:h")) != -1) {
		switch (c) {
		case 's':
			size = atol(optarg);
			break;
		case 't':
			target = atoi(optarg);
			break;
		case 'n':
			nscans = atoi(optarg);
			break;
		case 'o':
			only = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-s SIZE_MIB] [-t TARGET_S] [-n SCANS] [-o 1|2]\n", argv[0]);
			return 2;
		}
	}
	if (only != 2)
		smart_scan((size_t)size * 256);
	if (only != 1)
		advisor((size_t)size * 256, target, nscans);
	return 0;
}
