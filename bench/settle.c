/* SPDX-License-Identifier: MIT */
/*
 * settle.c - the engine against ksmd on the same workloads, side by side.
 *
 * For each workload the same memory is built twice, in two child processes:
 * one registers it with libsamepage, the other with madvise(MADV_MERGEABLE)
 * for the kernel's ksmd. Both scan flat out with the same knobs
 * (pages_to_scan 100000, sleep_millisecs 0, smart_scan 0, max_page_sharing
 * 256, use_zero_pages 1) until settled: pages_sharing + ksm_zero_pages
 * unchanged over two full scans after at least three. Reported per side:
 *
 *   settle_s      wall seconds from run=1 to settled
 *   cpu_s         scanner CPU seconds to settle (engine: its scanner thread;
 *                 ksmd: utime+stime from /proc/PID/stat)
 *   kpages/cpu_s  pages scanned per CPU-second while settling (for the
 *                 unique workload: over three full scans, nothing to merge)
 *   meta_B/page   tracking metadata per registered page (engine: all of its
 *                 metadata; kernel: 64-byte rmap items from ksm_stat)
 *   batch_ms      the engine's longest uninterrupted batch (ksmd: n/a)
 *   saved_MiB     pages_sharing + ksm_zero_pages, in MiB
 *   CAL/kpg TLB/kpg  function-call and TLB-shootdown interrupts (the CAL and
 *                 TLB lines of /proc/interrupts, all CPUs) while settling,
 *                 per 1000 merged pages (pages_shared + pages_sharing +
 *                 ksm_zero_pages): what page-table changes cost the other
 *                 CPUs. Machine-wide counts: anything else running adds in.
 *   sent/kpg      TLB-flush requests this side itself sent to other CPUs
 *                 (csd:csd_queue_cpu events for flush_tlb_func, counted by
 *                 perf_event_open on the engine's process, or on ksmd), per
 *                 1000 merged pages: the same cost, not blurred by whatever
 *                 else runs on the machine (-1: no tracefs or kallsyms)
 *   steady_ms     once settled: CPU milliseconds per full scan of the same
 *                 memory, merged and no longer changing, with smart_scan=1
 *                 on both sides (after STEADY_WARM full scans for the skip
 *                 cycles to build up, averaged over STEADY_SCANS)
 *
 * Workloads (SIZE MiB each, default 1024):
 *   unique   every page different
 *   pairs    every page has exactly one twin, at a random place
 *   runs     64 contents in long runs: the region repeats one 64-page block
 *   zero     every page zero
 *   mix      25% zero runs, 35% copies of 64 blocks of 32 pages, 10% popular
 *            single pages, 30% unique (like `samepage demo`)
 *
 * Merged pages that do not continue their neighbour's store page cost the
 * engine a kernel mapping each; "pairs" needs one per page, so the engine
 * side runs with vm.max_map_count raised to 1,000,000 (restored afterwards)
 * and a second engine row shows what happens at the default limit.
 *
 * With -b the workload process keeps a thread busy on CPU 1 while it is
 * merged (an application computing, as a VM's vCPU thread does), and the
 * scanner (the engine's threads; ksmd, its affinity restored afterwards)
 * runs on CPU 0: every page-table change in the application's address
 * space must then reach CPU 1 with an IPI, on both sides. Without -b the
 * application sleeps, its CPU is idle (lazy TLB) and most flushes stay
 * local, or not, as the scheduler happens to place the threads.
 *
 *   bench_settle [-s SIZE_MIB] [-w unique,pairs,runs,zero,mix] [-q] [-v] [-b]
 *   (-v prints every full scan of both sides on stderr)
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "samepage.h"
#include "../tests/testlib.h"
#include "util/clock.h"

#define TIMEOUT_MS   (20 * 60 * 1000)
#define STEADY_WARM  8 /* full scans for smart_scan's ages to build up */
#define STEADY_SCANS 4 /* full scans measured */

static int verbose;	  /* -v: one line per full scan on stderr */
static pid_t ksmd_pinned; /* -b: ksmd runs on CPU 0 until ksmd_unpin() */
static cpu_set_t ksmd_cpus;

static void ksmd_unpin(void)
{
	if (ksmd_pinned > 0)
		sched_setaffinity(ksmd_pinned, sizeof(ksmd_cpus), &ksmd_cpus);
	ksmd_pinned = 0;
}
static int busy; /* -b: an application thread computes while merged */
static volatile int busy_stop;

/* The application at work: a loop over its own stack, never over the
 * registered memory (its content is checked afterwards). */
static void *busy_thread(void *arg)
{
	volatile uint64_t x = 0;

	(void)arg;
	while (!busy_stop)
		x = x * 6364136223846793005ull + 1;
	return NULL;
}

static void pin(pid_t tid, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(tid, sizeof(set), &set);
}

/* The application's thread on CPU 1; the caller (and the threads it
 * creates from now on) on CPU 0. */
static void busy_start(pthread_t *t)
{
	cpu_set_t one;

	busy_stop = 0;
	if (!busy)
		return;
	CPU_ZERO(&one);
	CPU_SET(1, &one);
	pin(0, 0);
	if (pthread_create(t, NULL, busy_thread, NULL))
		busy = 0;
	else
		pthread_setaffinity_np(*t, sizeof(one), &one);
}

static void busy_end(pthread_t t)
{
	busy_stop = 1;
	if (busy)
		pthread_join(t, NULL);
}

struct result {
	int ok;
	double settle_s, cpu_s, kpages_per_cpu_s, meta_per_page, batch_ms, saved_mib;
	double cal_per_kpage, tlb_per_kpage; /* IPIs while settling, per 1000 merged pages */
	double sent_per_kpage;		     /* flush requests this side sent, per 1000 merged */
	double steady_ms;		     /* CPU per full scan once settled, smart_scan=1 */
	unsigned long long sharing, zero, shared;
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* content tag of every page; 0 means zeros */
static uint32_t *layout(const char *w, size_t n)
{
	uint32_t *t = calloc(n, sizeof(*t));
	uint64_t s = 88172645463325252ull;

	if (!strcmp(w, "unique")) {
		for (size_t i = 0; i < n; i++)
			t[i] = 1 + (uint32_t)i;
	} else if (!strcmp(w, "pairs")) {
		for (size_t i = 0; i < n; i++)
			t[i] = 1 + (uint32_t)(i / 2);
		for (size_t i = n - 1; i > 0; i--) {
			size_t j = rnd(&s) % (i + 1);
			uint32_t x = t[i];

			t[i] = t[j];
			t[j] = x;
		}
	} else if (!strcmp(w, "runs")) {
		for (size_t i = 0; i < n; i++)
			t[i] = 1 + (uint32_t)(i % 64);
	} else if (!strcmp(w, "mix")) {
		uint32_t uniq = 10000000;

		for (size_t i = 0; i < n;) {
			uint64_t r = rnd(&s) % 100;
			size_t len = r < 25 ? 1 + rnd(&s) % 64 : r < 60 ? 32 : r < 70 ? 1 : 1 + rnd(&s) % 64;
			uint32_t block = (uint32_t)(rnd(&s) % 64);

			for (size_t j = 0; j < len && i < n; j++, i++)
				t[i] = r < 25	? 0
				       : r < 60 ? 1000 + block * 32 + (uint32_t)j
				       : r < 70 ? 1 + (uint32_t)(rnd(&s) % 128)
						: uniq++;
		}
	} /* zero: all 0 */
	return t;
}

static uint8_t *build(const uint32_t *t, size_t n)
{
	uint8_t *m = t_map(n);

	madvise(m, n * TPAGE, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < n; i++)
		t_fill(m + i * TPAGE, t[i]);
	return m;
}

static long read_long(const char *path)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return -1;
	if (read(fd, buf, sizeof(buf) - 1) < 0)
		buf[0] = 0;
	close(fd);
	return strtol(buf, NULL, 10);
}

static void write_long(const char *path, long v)
{
	char buf[32];
	int fd = open(path, O_WRONLY);

	if (fd < 0)
		return;
	snprintf(buf, sizeof(buf), "%ld", v);
	if (write(fd, buf, strlen(buf)) < 0)
		perror(path);
	close(fd);
}

/* The machine-wide count of one line of /proc/interrupts ("CAL", "TLB"),
 * summed over CPUs; -1 where the line does not exist. */
static long long interrupts(const char *name)
{
	char line[4096];
	long long sum = -1;
	size_t len = strlen(name);
	FILE *f = fopen("/proc/interrupts", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *p = line, *end;

		while (*p == ' ')
			p++;
		if (strncmp(p, name, len) || p[len] != ':')
			continue;
		p += len + 1;
		sum = 0;
		for (;;) {
			long long v = strtoll(p, &end, 10);

			if (end == p)
				break;
			sum += v;
			p = end;
		}
		break;
	}
	fclose(f);
	return sum;
}

/* Counts the TLB-flush requests task pid (0: this process, and with
 * inherit the threads it creates from now on) queues for other CPUs: the
 * csd:csd_queue_cpu tracepoint filtered on flush_tlb_func. A descriptor, or
 * -1 where tracefs or kallsyms cannot tell. */
static int flush_counter(pid_t pid, int inherit)
{
	struct perf_event_attr a = {.type = PERF_TYPE_TRACEPOINT, .size = sizeof(a), .inherit = (unsigned)inherit};
	char line[256], filter[64] = "";
	long id = read_long("/sys/kernel/tracing/events/csd/csd_queue_cpu/id");
	FILE *f = fopen("/proc/kallsyms", "re");
	int fd;

	while (f && fgets(line, sizeof(line), f)) {
		unsigned long long addr;
		char type, name[128];

		if (sscanf(line, "%llx %c %127s", &addr, &type, name) == 3 && !strcmp(name, "flush_tlb_func") && addr) {
			snprintf(filter, sizeof(filter), "func == 0x%llx", addr);
			break;
		}
	}
	if (f)
		fclose(f);
	if (id <= 0 || !filter[0])
		return -1;
	a.config = (unsigned long long)id;
	fd = (int)syscall(SYS_perf_event_open, &a, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd >= 0 && ioctl(fd, PERF_EVENT_IOC_SET_FILTER, filter)) {
		close(fd);
		return -1;
	}
	return fd;
}

static long long counter_value(int fd)
{
	unsigned long long v;

	return fd >= 0 && read(fd, &v, sizeof(v)) == sizeof(v) ? (long long)v : -1;
}

/* Settling, as both sides see it: a snapshot per full scan. */
struct snap {
	long long scans, sharing, zero, shared, scanned;
	double cpu;
};

typedef void (*snap_fn)(struct snap *s, void *ctx);

/* Waits until sharing+zero held for two full scans after three (or, with
 * fixed_scans, for that many full scans), filling r; flushes: a
 * flush_counter() of the scanning side, or -1. */
static void settle(struct result *r, snap_fn get, void *ctx, int fixed_scans, int flushes)
{
	struct snap s0, s, prev = {-1, -1, -1, -1, -1, 0};
	double t0 = sp_mono_s();
	int still = 0;

	long long cal0 = interrupts("CAL"), tlb0 = interrupts("TLB"), sent0 = counter_value(flushes);

	get(&s0, ctx);
	s = s0; /* the deadline may pass before the first sample */
	prev = s0;
	while ((sp_mono_s() - t0) * 1000 < TIMEOUT_MS) {
		get(&s, ctx);
		if (s.scans == prev.scans) {
			usleep(2000); /* polling counters, with a deadline */
			continue;
		}
		if (verbose)
			fprintf(stderr,
				"  scan %3lld  t %6.3f s  cpu %6.3f s  sharing %8lld  zero %8lld  scanned %10lld\n",
				s.scans - s0.scans, sp_mono_s() - t0, s.cpu - s0.cpu, s.sharing, s.zero,
				s.scanned - s0.scanned);
		if (fixed_scans) {
			if (s.scans - s0.scans >= fixed_scans)
				break;
		} else {
			if (s.scans - s0.scans >= 3 && s.sharing == prev.sharing && s.zero == prev.zero)
				still++;
			else
				still = 0;
			if (still >= 2)
				break;
		}
		prev = s;
	}
	r->ok = (sp_mono_s() - t0) * 1000 < TIMEOUT_MS;
	r->settle_s = sp_mono_s() - t0;
	r->cpu_s = s.cpu - s0.cpu;
	r->kpages_per_cpu_s = r->cpu_s > 0 ? (double)(s.scanned - s0.scanned) / r->cpu_s / 1e3 : 0;
	r->sharing = (unsigned long long)s.sharing;
	r->zero = (unsigned long long)s.zero;
	r->shared = (unsigned long long)s.shared;
	r->saved_mib = (double)(s.sharing + s.zero) * 4096 / (1 << 20);
	{
		double merged = (double)(s.shared + s.sharing + s.zero) / 1000.0;
		long long cal = interrupts("CAL"), tlb = interrupts("TLB"), sent = counter_value(flushes);

		r->cal_per_kpage = merged > 0 && cal0 >= 0 ? (double)(cal - cal0) / merged : -1;
		r->tlb_per_kpage = merged > 0 && tlb0 >= 0 ? (double)(tlb - tlb0) / merged : -1;
		r->sent_per_kpage = merged > 0 && sent0 >= 0 && sent >= 0 ? (double)(sent - sent0) / merged : -1;
	}
}

/* Settled memory, smart_scan on: CPU milliseconds per full scan. */
static double steady(snap_fn get, void *ctx)
{
	struct result w = {0}, m = {0};

	settle(&w, get, ctx, STEADY_WARM, -1);
	settle(&m, get, ctx, STEADY_SCANS, -1);
	return w.ok && m.ok ? m.cpu_s * 1e3 / STEADY_SCANS : -1;
}

static void engine_snap(struct snap *s, void *ctx)
{
	struct samepage_stats st;

	(void)ctx;
	samepage_stats(&st);
	s->scans = (long long)st.full_scans;
	s->sharing = (long long)st.pages_sharing;
	s->zero = (long long)st.ksm_zero_pages;
	s->shared = (long long)st.pages_shared;
	s->scanned = (long long)st.pages_scanned;
	s->cpu = st.scan_cpu_ns / 1e9;
}

static void kernel_snap(struct snap *s, void *ctx)
{
	int pid = *(int *)ctx;

	s->scans = t_ksm_get("full_scans");
	s->sharing = t_ksm_get("pages_sharing");
	s->zero = t_ksm_get("ksm_zero_pages");
	s->shared = t_ksm_get("pages_shared");
	s->scanned = t_ksm_get("pages_scanned");
	s->cpu = t_ksmd_cpu(pid);
}

static void run_engine(const uint32_t *t, size_t n, int unique, struct result *r)
{
	struct samepage_stats st;
	uint8_t *m = build(t, n);
	int flushes = flush_counter(0, 1); /* before the engine's threads exist */
	pthread_t app;

	samepage_set("pages_to_scan", "100000");
	samepage_set("sleep_millisecs", "0");
	samepage_set("smart_scan", "0");
	samepage_set("use_zero_pages", "1");
	busy_start(&app); /* before the engine's threads exist: they stay on CPU 0 */
	if (samepage_madvise(m, n * TPAGE, SAMEPAGE_MERGEABLE)) {
		perror("samepage_madvise");
		return;
	}
	samepage_set("run", "1");
	if (unique)
		samepage_wait_scans(2, TIMEOUT_MS); /* first visits only hash */
	settle(r, engine_snap, NULL, unique ? 3 : 0, flushes);
	busy_end(app);
	samepage_stats(&st);
	r->meta_per_page = (double)st.metadata_bytes / (double)n;
	r->batch_ms = st.longest_batch_ns / 1e6;
	samepage_set("smart_scan", "1");
	r->steady_ms = steady(engine_snap, NULL);
	/* the content is still what was written */
	for (size_t i = 0; i < n; i += 7)
		if (!t_check(m + i * TPAGE, t[i])) {
			fprintf(stderr, "engine: page %zu has the wrong content\n", i);
			r->ok = 0;
			break;
		}
}

static long ksm_stat(const char *key)
{
	char line[128];
	long v = -1;
	FILE *f = fopen("/proc/self/ksm_stat", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtol(line + strlen(key) + 1, NULL, 10);
	fclose(f);
	return v;
}

static void run_kernel(const uint32_t *t, size_t n, int unique, struct result *r)
{
	int pid = t_ksmd_pid();
	uint8_t *m = build(t, n);
	int flushes = flush_counter(pid, 0);
	pthread_t app;

	t_ksm_set("run", "2");
	t_ksm_set("run", "0");
	t_ksm_set("advisor_mode", "none");
	t_ksm_set("pages_to_scan", "100000");
	t_ksm_set("sleep_millisecs", "0");
	t_ksm_set("smart_scan", "0");
	t_ksm_set("max_page_sharing", "256");
	t_ksm_set("use_zero_pages", "1");
	madvise(m, n * TPAGE, MADV_MERGEABLE);
	busy_start(&app);
	if (busy) {
		sched_getaffinity(pid, sizeof(ksmd_cpus), &ksmd_cpus);
		ksmd_pinned = pid;
		pin(pid, 0);
	}
	t_ksm_set("run", "1");
	if (unique) {
		long f = t_ksm_get("full_scans");

		while (t_ksm_get("full_scans") < f + 2)
			usleep(2000); /* polling a counter; the settle below has the deadline */
	}
	settle(r, kernel_snap, &pid, unique ? 3 : 0, flushes);
	busy_end(app);
	ksmd_unpin();
	r->meta_per_page = 64.0 * (double)ksm_stat("ksm_rmap_items") / (double)n;
	r->batch_ms = -1;
	t_ksm_set("smart_scan", "1");
	r->steady_ms = steady(kernel_snap, &pid);
	t_ksm_set("run", "2");
	t_ksm_set("run", "0");
}

/* Runs fn in a child (each side needs its own process) and returns its result. */
static struct result in_child(void (*fn)(const uint32_t *, size_t, int, struct result *), const uint32_t *t, size_t n,
			      int unique)
{
	struct result r = {0};
	int fds[2];
	pid_t pid;

	if (pipe(fds))
		return r;
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		fn(t, n, unique, &r);
		if (write(fds[1], &r, sizeof(r)) != sizeof(r))
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	if (read(fds[0], &r, sizeof(r)) != sizeof(r))
		r.ok = 0;
	close(fds[0]);
	waitpid(pid, NULL, 0);
	return r;
}

static void row(const char *who, const struct result *r)
{
	char batch[16];

	if (r->batch_ms >= 0)
		snprintf(batch, sizeof(batch), "%.2f", r->batch_ms);
	else
		snprintf(batch, sizeof(batch), "n/a");
	printf("  %-16s %9.2f %8.2f %13.0f %12.1f %9s %10.1f %8.1f %8.1f %8.1f %10.1f%s\n", who, r->settle_s, r->cpu_s,
	       r->kpages_per_cpu_s, r->meta_per_page, batch, r->saved_mib, r->cal_per_kpage, r->tlb_per_kpage,
	       r->sent_per_kpage, r->steady_ms, r->ok ? "" : "  (DID NOT SETTLE / FAILED)");
}

static void ratio(const struct result *e, const struct result *k, int unique)
{
	printf("  %-16s %8.2fx %7.2fx %12.2fx %11.2fx %9s %9.2fx %7.2fx %7.2fx %7.2fx %9.2fx\n", "engine / ksmd",
	       e->settle_s / k->settle_s, e->cpu_s / k->cpu_s, e->kpages_per_cpu_s / k->kpages_per_cpu_s,
	       e->meta_per_page / k->meta_per_page, "", k->saved_mib > 0 ? e->saved_mib / k->saved_mib : 0.0,
	       k->cal_per_kpage > 0 ? e->cal_per_kpage / k->cal_per_kpage : 0.0,
	       k->tlb_per_kpage > 0 ? e->tlb_per_kpage / k->tlb_per_kpage : 0.0,
	       k->sent_per_kpage > 0 ? e->sent_per_kpage / k->sent_per_kpage : 0.0,
	       k->steady_ms > 0 ? e->steady_ms / k->steady_ms : 0.0);
	if (unique)
		printf("  target: unique-page scan rate >= 5x ksmd: %s (%.1fx)\n",
		       e->kpages_per_cpu_s >= 5 * k->kpages_per_cpu_s ? "MET" : "NOT MET",
		       e->kpages_per_cpu_s / k->kpages_per_cpu_s);
}

static long saved_maps = -1;

static void restore_maps(void)
{
	if (saved_maps > 0)
		write_long("/proc/sys/vm/max_map_count", saved_maps);
}

static void on_signal(int sig)
{
	ksmd_unpin();
	restore_maps();
	t_ksm_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

int main(int argc, char **argv)
{
	const char *list = "unique,pairs,runs,zero,mix";
	long size = 1024, old_maps;
	char *ws, *w, *save;
	int c;

	while ((c = getopt(argc, argv, "s:w:qvbh")) != -1) {
		switch (c) {
		case 's':
			size = atol(optarg);
			break;
		case 'w':
			list = optarg;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'b':
			busy = 1;
			break;
		case 'q':
			size = 128;
			break;
		default:
			fprintf(stderr, "usage: %s [-s SIZE_MIB] [-w unique,pairs,runs,zero,mix] [-q] [-v] [-b]\n",
				argv[0]);
			return 2;
		}
	}
	if (!t_ksm_available() || t_ksmd_pid() < 0) {
		fprintf(stderr, "needs root and the kernel's KSM (the anchor of every ratio)\n");
		return 2;
	}
	t_ksm_save();
	old_maps = saved_maps = read_long("/proc/sys/vm/max_map_count");
	atexit(restore_maps);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("engine vs ksmd, %ld MiB per workload; both: pages_to_scan 100000, sleep_millisecs 0, smart_scan 0,\n"
	       "max_page_sharing 256, use_zero_pages 1. Settled: pages_sharing+ksm_zero_pages unchanged for 2 full "
	       "scans.%s\n\n",
	       size, busy ? "\nWith an application thread computing (-b) while the memory is merged." : "");
	printf("  %-16s %9s %8s %13s %12s %9s %10s %8s %8s %8s %10s\n", "", "settle_s", "cpu_s", "kpages/cpu_s",
	       "meta_B/page", "batch_ms", "saved_MiB", "CAL/kpg", "TLB/kpg", "sent/kpg", "steady_ms");
	ws = strdup(list);
	for (w = strtok_r(ws, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		size_t n = (size_t)size * 256;
		uint32_t *t = layout(w, n);
		int unique = !strcmp(w, "unique");
		struct result e, k, e0 = {0};

		printf("%s\n", w);
		fflush(stdout);
		write_long("/proc/sys/vm/max_map_count", 1000000);
		e = in_child(run_engine, t, n, unique);
		write_long("/proc/sys/vm/max_map_count", old_maps);
		if (!strcmp(w, "pairs"))
			e0 = in_child(run_engine, t, n, unique);
		k = in_child(run_kernel, t, n, unique);
		row("engine", &e);
		if (!strcmp(w, "pairs"))
			row("engine@65530", &e0);
		row("ksmd", &k);
		ratio(&e, &k, unique);
		fflush(stdout);
		free(t);
	}
	write_long("/proc/sys/vm/max_map_count", old_maps);
	free(ws);
	return 0;
}
