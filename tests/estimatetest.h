/* SPDX-License-Identifier: MIT */
/*
 * estimatetest.h - helpers for ksm_estimate*.c: run `samepage estimate` on a
 * workload of NPROC processes (kids[]), then let the kernel's KSM merge the
 * same processes until it settles, and compare.
 *
 * The samepage binary is found next to the tests directory of the build
 * (or in $SAMEPAGE_BIN). Each test program includes this once.
 */
#ifndef SP_ESTIMATETEST_H
#define SP_ESTIMATETEST_H

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testlib.h"

#define NPROC	  3
#define SETTLE_MS 90000

struct counters {
	long shared, sharing, chains, dups, zero, volatile_;
	/* estimate only: pages scanned, all-zero subpages of THPs (model.h) */
	long scanned, thp_zero;
	/* kernel only: summed over the workload's /proc/PID/ksm_stat */
	long mine_merging, mine_zero;
};

static char samepage[PATH_MAX];
static pid_t kids[NPROC];

/* --- helpers --------------------------------------------------------------- */

static void find_samepage(void)
{
	char exe[PATH_MAX];
	ssize_t n;

	if (getenv("SAMEPAGE_BIN")) {
		snprintf(samepage, sizeof(samepage), "%s", getenv("SAMEPAGE_BIN"));
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return;
	exe[n] = 0;
	snprintf(samepage, sizeof(samepage), "%s/../samepage", dirname(exe));
}

static void kill_kids(void)
{
	for (int i = 0; i < NPROC; i++) {
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
		}
		kids[i] = 0;
	}
}

/* "name":number inside the "predicted" object of the JSON */
static long json_num(const char *json, const char *name)
{
	const char *p = strstr(json, "\"predicted\"");
	char key[64];

	assert_non_null(p);
	snprintf(key, sizeof(key), "\"%s\":", name);
	p = strstr(p, key);
	assert_non_null(p);
	return strtol(p + strlen(key), NULL, 10);
}

/* Runs samepage estimate --json on the kids with extra args; returns its
 * prediction. */
static void estimate(const char *const *extra, struct counters *c)
{
	char *argv[32], pids[128], *out = malloc(1 << 22);
	size_t len = 0;
	int fd[2], st, n = 0;
	pid_t pid;
	ssize_t got;

	snprintf(pids, sizeof(pids), "%d,%d,%d", kids[0], kids[1], kids[2]);
	argv[n++] = samepage;
	argv[n++] = "estimate";
	argv[n++] = "--json";
	argv[n++] = "--pid";
	argv[n++] = pids;
	while (extra && *extra)
		argv[n++] = (char *)*extra++;
	argv[n] = NULL;
	assert_int_equal(pipe(fd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fd[1], 1);
		close(fd[0]);
		execv(samepage, argv);
		_exit(127);
	}
	close(fd[1]);
	while ((got = read(fd[0], out + len, (1 << 22) - 1 - len)) > 0)
		len += (size_t)got;
	out[len] = 0;
	close(fd[0]);
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	c->shared = json_num(out, "pages_shared");
	c->sharing = json_num(out, "pages_sharing");
	c->chains = json_num(out, "stable_node_chains");
	c->dups = json_num(out, "stable_node_dups");
	c->zero = json_num(out, "ksm_zero_pages");
	c->volatile_ = json_num(out, "pages_volatile");
	c->scanned = json_num(out, "pages_scanned");
	c->thp_zero = json_num(out, "thp_zero_pages"); /* after "predicted" too */
	free(out);
}

/* ksm_merging_pages and ksm_zero_pages of the workload's processes: the
 * kernel's result for them alone, whatever else on the host uses KSM */
static void mine(long *merging, long *zero)
{
	*merging = *zero = 0;
	for (int i = 0; i < NPROC; i++) {
		char path[64], line[128];
		FILE *f;
		long v;

		snprintf(path, sizeof(path), "/proc/%d/ksm_stat", kids[i]);
		f = fopen(path, "r");
		assert_non_null(f);
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "ksm_merging_pages %ld", &v) == 1)
				*merging += v;
			else if (sscanf(line, "ksm_zero_pages %ld", &v) == 1)
				*zero += v;
		}
		fclose(f);
	}
}

/* 1 when the global counters are all the workload's own */
static int alone(const struct counters *k)
{
	return k->shared + k->sharing == k->mine_merging && k->zero == k->mine_zero;
}

static void kernel_counters(struct counters *c)
{
	mine(&c->mine_merging, &c->mine_zero);
	c->shared = t_ksm_get("pages_shared");
	c->sharing = t_ksm_get("pages_sharing");
	c->chains = t_ksm_get("stable_node_chains");
	c->dups = t_ksm_get("stable_node_dups");
	c->zero = t_ksm_get("ksm_zero_pages");
	c->volatile_ = t_ksm_get("pages_volatile");
}

/* Sets the model knobs (run=2 first: max_page_sharing needs no KSM pages),
 * starts ksmd and waits until pages_sharing + ksm_zero_pages held through
 * two full scans after at least three; tolerance in per mille of change
 * allowed between those scans (0: exact). */
static void kernel_run(const char *mps, const char *uzp, long tolerance_pm, struct counters *out)
{
	uint64_t deadline = t_now_ms() + SETTLE_MS;
	long start, seen, prev = -1;
	int still = 0;

	assert_int_equal(t_ksm_set("run", "2"), 0);
	assert_int_equal(t_ksm_set("max_page_sharing", mps), 0);
	assert_int_equal(t_ksm_set("use_zero_pages", uzp), 0);
	assert_int_equal(t_ksm_set("merge_across_nodes", "1"), 0);
	assert_int_equal(t_ksm_set("pages_to_scan", "5000"), 0);
	assert_int_equal(t_ksm_set("sleep_millisecs", "10"), 0);
	start = seen = t_ksm_get("full_scans");
	assert_int_equal(t_ksm_set("run", "1"), 0);
	while (t_now_ms() < deadline) {
		long fs = t_ksm_get("full_scans");

		if (fs != seen) {
			long now;

			seen = fs;
			kernel_counters(out);
			now = out->mine_merging + out->mine_zero;
			if (fs - start >= 3 && prev >= 0 && labs(now - prev) * 1000 <= tolerance_pm * (prev ? prev : 1))
				still++;
			else
				still = 0;
			prev = now;
			if (still >= 2)
				break;
		}
		usleep(20000);
	}
	assert_true(still >= 2); /* settled before the deadline */
	assert_int_equal(t_ksm_set("run", "0"), 0);
}

static void show(const char *what, const struct counters *p, const struct counters *k)
{
	printf("  %-28s %10s %10s %10s %8s %8s %8s\n", what, "shared", "sharing", "zero", "chains", "dups", "volatile");
	printf("  %-28s %10ld %10ld %10ld %8ld %8ld %8ld\n", "  samepage estimate", p->shared, p->sharing, p->zero,
	       p->chains, p->dups, p->volatile_);
	printf("  %-28s %10ld %10ld %10ld %8ld %8ld %8ld\n", "  kernel KSM (settled)", k->shared, k->sharing, k->zero,
	       k->chains, k->dups, k->volatile_);
	printf("  merged pages of the workload: predicted %ld + %ld zero, kernel (ksm_stat) %ld + %ld zero%s\n",
	       p->shared + p->sharing, p->zero, k->mine_merging, k->mine_zero,
	       alone(k) ? "" : "\n  (other processes use KSM now: global counters not comparable)");
	fflush(stdout);
}

/* The comparison of the issue for workloads that are not fully static: the
 * workload's merged pages (ksm_stat, immune to other KSM users) and, when
 * the workload is the only KSM user, pages_sharing + ksm_zero_pages, each
 * within 3% of the kernel's; at least min_pages merged. */
static void expect_close(const struct counters *p, const struct counters *k, long min_pages)
{
	double ep = (double)(p->shared + p->sharing + p->zero), ek = (double)(k->mine_merging + k->mine_zero);

	printf("  merged pages: predicted %.0f, kernel %.0f: %+.2f%%\n", ep, ek, ek > 0 ? 100.0 * (ep - ek) / ek : 0);
	assert_true(ek > (double)min_pages);
	assert_true(ep >= ek * 0.97 && ep <= ek * 1.03);
	if (alone(k)) { /* the criterion, on the global counters */
		ep = (double)(p->sharing + p->zero);
		ek = (double)(k->sharing + k->zero);
		printf("  pages_sharing + ksm_zero_pages: predicted %.0f, kernel %.0f: %+.2f%%\n", ep, ek,
		       ek > 0 ? 100.0 * (ep - ek) / ek : 0);
		assert_true(ep >= ek * 0.97 && ep <= ek * 1.03);
	}
	fflush(stdout);
}

/* main(): skips (77) without root, a writable KSM or the samepage binary;
 * saves every KSM knob for restoring at exit. */
static int estimate_main(const struct CMUnitTest *tests, size_t n)
{
	if (geteuid() != 0 || !t_ksm_available()) {
		printf("needs root and a writable /sys/kernel/mm/ksm: skipped\n");
		return 77;
	}
	find_samepage();
	if (access(samepage, X_OK)) {
		printf("samepage binary not found at %s (set SAMEPAGE_BIN): skipped\n", samepage);
		return 77;
	}
	t_ksm_save();
	return _cmocka_run_group_tests("tests", tests, n, NULL, NULL);
}

static int teardown_test(void **state)
{
	(void)state;
	kill_kids();
	return 0;
}

#endif
