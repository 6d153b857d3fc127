/* SPDX-License-Identifier: MIT */
/*
 * daemon_settle.c - samepaged against ksmd on the same three processes.
 *
 * Three processes each map SIZE MiB (default 512) of mixed content, built
 * the same way for both sides:
 *
 *   25% zero pages, in runs
 *   25% copies of 64 blocks of 32 pages, the same blocks in every process
 *   25% pages equal across the processes (page i of process 0 == page i of
 *       processes 1 and 2), unique inside each
 *   25% unique everywhere
 *
 * Once merged by the kernel (each process madvise MADV_MERGEABLE, ksmd with
 * pages_to_scan 100000, sleep_millisecs 0, smart_scan 0, use_zero_pages 1,
 * max_page_sharing 256) and once by samepaged (the three processes clients of
 * one domain, the same knobs), one after the other on the same machine, until
 * settled: pages_sharing + ksm_zero_pages unchanged over two full scans after
 * at least three. Reported per side:
 *
 *   settle_s    wall seconds from the last registration to settled
 *   cpu_s       the scanner's CPU seconds to settle (ksmd: its utime+stime;
 *               samepaged: the whole daemon's utime+stime)
 *   client_cpu_s  CPU the three client processes spent meanwhile (their agent
 *               threads doing remaps; ksmd side: what the kernel charged them)
 *   saved_MiB   pages_sharing + ksm_zero_pages
  *   B/page      the daemon's anonymous resident memory growth per registered page
 *               (samepaged only: its tracking metadata)
 * and the ratios samepaged / ksmd. Then the clients idle for 2 s with both
 * sides still running: client CPU while idle.
 *
 *   bench_daemon_settle [-s SIZE_MIB] [-v]
 * Needs root (the kernel's KSM knobs; restored at exit).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tests/testlib.h"
#include "proto/wire.h"
#include "samepage.h"
#include "util/clock.h"

#define NPROC	   3
#define TIMEOUT_MS (20 * 60 * 1000)

static int verbose;
static size_t npages;
static char sock[108];
static pid_t daemon_pid;

static uint32_t tag_of(int p, size_t i)
{
	size_t q = i % 1024; /* quarters in 256-page stripes */

	if (q < 256)
		return 0;
	if (q < 512)
		return 1000 + (uint32_t)((i / 1024 * 7) % 64) * 32 + (uint32_t)(q % 32);
	if (q < 768)
		return 1u << 20 | (uint32_t)i;
	return (uint32_t)(p + 1) << 26 | (uint32_t)i;
}

/* child: build, register, report ('r'), idle until told to go */
static void client(int p, int engine, int wr, int rd)
{
	uint8_t *m = t_map(npages);
	char b;

	madvise(m, npages * TPAGE, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < npages; i++)
		t_fill(m + i * TPAGE, tag_of(p, i));
	if (engine ? samepage_madvise(m, npages * TPAGE, SAMEPAGE_MERGEABLE)
		   : madvise(m, npages * TPAGE, MADV_MERGEABLE)) {
		perror("register");
		_exit(1);
	}
	if (write(wr, "r", 1) != 1 || read(rd, &b, 1) != 1)
		_exit(1);
	for (size_t i = 0; i < npages; i += 5)
		if (!t_check(m + i * TPAGE, tag_of(p, i))) {
			fprintf(stderr, "process %d: page %zu has the wrong content\n", p, i);
			_exit(1);
		}
	_exit(0);
}

static double proc_cpu(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return 0;
	}
	fclose(f);
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static const char *status(void)
{
	static char text[SP_MSG_MAX];
	size_t got = 0;
	int fd = sp_wire_connect(sock), err;

	if (fd < 0)
		return "";
	err = sp_wire_call(fd, SP_M_STATUS, NULL, 0, NULL, 0, text, sizeof(text) - 1, &got, NULL, NULL, 10000, NULL);
	close(fd);
	text[err ? 0 : got] = 0;
	return text;
}

static long long value(const char *st, const char *key)
{
	char pat[80];
	const char *p;

	snprintf(pat, sizeof(pat), "\n%s ", key);
	p = strstr(st, pat);
	return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

static void set(const char *knob, const char *v)
{
	struct sp_knob_msg m;
	int fd = sp_wire_connect(sock);

	memset(&m, 0, sizeof(m));
	snprintf(m.name, sizeof(m.name), "%s", knob);
	snprintf(m.value, sizeof(m.value), "%s", v);
	if (fd < 0 || sp_wire_call(fd, SP_M_SET, &m, sizeof(m), NULL, 0, NULL, 0, NULL, NULL, NULL, 10000, NULL))
		fprintf(stderr, "samepaged: cannot set %s=%s\n", knob, v);
	if (fd >= 0)
		close(fd);
}

struct snap {
	long long scans, sharing, zero;
	double cpu;
};

static void snap(int engine, struct snap *s)
{
	if (engine) {
		const char *st = status();

		s->scans = value(st, "full_scans");
		s->sharing = value(st, "pages_sharing");
		s->zero = value(st, "ksm_zero_pages");
		s->cpu = proc_cpu(daemon_pid);
	} else {
		s->scans = t_ksm_get("full_scans");
		s->sharing = t_ksm_get("pages_sharing");
		s->zero = t_ksm_get("ksm_zero_pages");
		s->cpu = t_ksmd_cpu(t_ksmd_pid());
	}
}

struct result {
	int ok;
	double settle_s, cpu_s, client_cpu_s, idle_client_cpu_s, saved_mib, bytes_per_page;
};

static void run_side(int engine, struct result *r)
{
	pid_t kids[NPROC];
	int up[NPROC][2], down[NPROC][2];
	struct snap s0, s, prev;
	double t0, c0 = 0, c1 = 0, c2 = 0;
	long rss0 = engine ? proc_rss_kb(daemon_pid) : 0;
	int still = 0;
	char b;

	memset(r, 0, sizeof(*r));
	for (int p = 0; p < NPROC; p++) {
		if (pipe(up[p]) || pipe(down[p]))
			exit(1);
		kids[p] = fork();
		if (!kids[p]) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			close(up[p][0]);
			close(down[p][1]);
			client(p, engine, up[p][1], down[p][0]);
		}
		close(up[p][1]);
		close(down[p][0]);
	}
	for (int p = 0; p < NPROC; p++)
		if (read(up[p][0], &b, 1) != 1)
			return;
	if (!engine)
		t_ksm_set("run", "1");
	t0 = sp_mono_s();
	for (int p = 0; p < NPROC; p++)
		c0 += proc_cpu(kids[p]);
	snap(engine, &s0);
	s = prev = s0;
	while ((sp_mono_s() - t0) * 1000 < TIMEOUT_MS) {
		snap(engine, &s);
		if (s.scans == prev.scans) {
			usleep(20000); /* polling counters, with a deadline (STATUS costs the daemon CPU) */
			continue;
		}
		if (verbose)
			fprintf(stderr, "  %s scan %lld t %.3f s sharing %lld zero %lld\n",
				engine ? "samepaged" : "ksmd", s.scans - s0.scans, sp_mono_s() - t0, s.sharing, s.zero);
		if (s.scans - s0.scans >= 3 && s.sharing == prev.sharing && s.zero == prev.zero)
			still++;
		else
			still = 0;
		prev = s;
		if (still >= 2)
			break;
	}
	r->ok = still >= 2;
	r->settle_s = sp_mono_s() - t0;
	r->cpu_s = s.cpu - s0.cpu;
	for (int p = 0; p < NPROC; p++)
		c1 += proc_cpu(kids[p]);
	r->client_cpu_s = c1 - c0;
	r->saved_mib = (double)(s.sharing + s.zero) * 4096 / (1 << 20);
	if (engine)
		r->bytes_per_page = (double)(proc_rss_kb(daemon_pid) - rss0) * 1024 / (double)(NPROC * npages);
	/* idle: both sides keep scanning, the clients do nothing */
	usleep(2000000);
	for (int p = 0; p < NPROC; p++)
		c2 += proc_cpu(kids[p]);
	r->idle_client_cpu_s = c2 - c1;
	for (int p = 0; p < NPROC; p++) {
		int st;

		if (write(down[p][1], "q", 1) != 1)
			r->ok = 0;
		waitpid(kids[p], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			r->ok = 0;
		close(up[p][0]);
		close(down[p][1]);
	}
	if (!engine) {
		t_ksm_set("run", "2");
		t_ksm_set("run", "0");
	}
}

static void row(const char *who, const struct result *r)
{
	printf("%-10s %9.2f %8.2f %13.2f %11.1f %9.3f %8.1f%s\n", who, r->settle_s, r->cpu_s, r->client_cpu_s,
	       r->saved_mib, r->idle_client_cpu_s, r->bytes_per_page, r->ok ? "" : "  (FAILED)");
}

static char dir[] = "/tmp/samepaged-bench.XXXXXX";

static void start_daemon(const char *exe)
{

	if (!mkdtemp(dir))
		exit(1);
	snprintf(sock, sizeof(sock), "%s/sock", dir);
	daemon_pid = fork();
	if (!daemon_pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(exe, "samepaged", "--socket", sock, "--config", "/dev/null", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 5000 && !*status(); i++)
		usleep(1000);
	if (!*status()) {
		fprintf(stderr, "samepaged did not start (%s)\n", exe);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	struct result k, e;
	size_t mib = 512;
	int c;

	while ((c = getopt(argc, argv, "s:v")) != -1) {
		if (c == 's')
			mib = strtoul(optarg, NULL, 10);
		else if (c == 'v')
			verbose = 1;
		else
			return fprintf(stderr, "usage: bench_daemon_settle [-s SIZE_MIB] [-v]\n"), 2;
	}
	if (!t_ksm_available()) {
		fprintf(stderr, "needs root and the kernel's KSM\n");
		return 77;
	}
	npages = mib << 8;
	t_ksm_save();
	t_ksm_set("run", "2");
	t_ksm_set("run", "0");
	t_ksm_set("advisor_mode", "none");
	t_ksm_set("pages_to_scan", "100000");
	t_ksm_set("sleep_millisecs", "0");
	t_ksm_set("smart_scan", "0");
	t_ksm_set("max_page_sharing", "256");
	t_ksm_set("use_zero_pages", "1");
	printf("3 processes x %zu MiB: 25%% zero, 25%% shared blocks, 25%% equal across processes, 25%% unique\n", mib);
	run_side(0, &k);

	start_daemon(SAMEPAGED);
	set("pages_to_scan", "100000");
	set("sleep_millisecs", "0");
	set("smart_scan", "0");
	set("max_page_sharing", "256");
	set("use_zero_pages", "1");
	setenv("SAMEPAGE_DAEMON", sock, 1);
	run_side(1, &e);
	kill(daemon_pid, SIGTERM);
	waitpid(daemon_pid, NULL, 0);
	unlink(sock); /* (the daemon removes it on SIGTERM; a crash would not) */
	rmdir(dir);

	printf("\n%-10s %9s %8s %13s %11s %9s %8s\n", "side", "settle_s", "cpu_s", "client_cpu_s", "saved_MiB",
	       "idle_cpu", "B/page");
	row("ksmd", &k);
	row("samepaged", &e);
	printf("\nsamepaged / ksmd: settle %.2fx, scanner CPU %.2fx (with the clients' CPU %.2fx), saved %.3fx\n",
	       e.settle_s / k.settle_s, e.cpu_s / k.cpu_s, (e.cpu_s + e.client_cpu_s) / (k.cpu_s + k.client_cpu_s),
	       e.saved_mib / k.saved_mib);
	return k.ok && e.ok ? 0 : 1;
}
