/* SPDX-License-Identifier: MIT */
/*
 * ksm_estimate.c - `samepage estimate` against the kernel's own KSM.
 *
 * For each workload: start it, run `samepage estimate --json` on its
 * processes (KSM stopped), then let ksmd merge the same processes until its
 * counters settle, and compare. Workloads:
 *
 *   synthetic  three processes forked from this test, MADV_MERGEABLE
 *              memory with contents shared across them (chains at
 *              max_page_sharing), zero pages, small groups, a group one
 *              page over a dup boundary, and unique pages. Static, so the
 *              prediction must equal the kernel's counters exactly; run for
 *              (max_page_sharing 256, use_zero_pages 0) and (64, 1).
 *   redis      three redis-server processes (Debian's redis-server, started
 *              with prctl(PR_SET_MEMORY_MERGE), which survives exec) loaded
 *              with the same 1500 keys of 16 KiB values through their unix
 *              sockets; estimated with --samples 2 (serverCron keeps
 *              touching a few pages). pages_sharing + ksm_zero_pages must be
 *              within 3% of the kernel's. Skipped if redis-server is absent.
 *
 * The samepage binary is found next to the tests directory of the build
 * (or in $SAMEPAGE_BIN). Needs root and a writable /sys/kernel/mm/ksm
 * (exit 77 = skipped otherwise). t_ksm_save() takes the shared KSM lock and
 * restores every knob at exit; each workload's processes are killed at the
 * end of their test.
 */
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
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testlib.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif

#define NPROC	  3
#define SETTLE_MS 90000

struct counters {
	long shared, sharing, chains, dups, zero, volatile_;
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

/* --- synthetic workload ---------------------------------------------------- */

#define SYN_PAGES 6000

/* content tag of page i of process c (0: zeros) */
static uint32_t syn_tag(int c, size_t i)
{
	if (i < 1200)
		return 1; /* 3600 copies: chains   */
	if (i < 1500)
		return 2 + (uint32_t)(c % 2); /* 600 and 300 copies   */
	if (i < 2500)
		return 0; /* zero pages           */
	if (i < 4000)
		return 1000 + (uint32_t)(i % 500); /* 9 copies each         */
	if (i < 4257 && c == 0)
		return 5;				   /* 257: one left over   */
	return 100000 + (uint32_t)c * 10000 + (uint32_t)i; /* unique */
}

static void syn_child(int c, int ready)
{
	uint8_t *m = t_map(SYN_PAGES);
	size_t *perm = malloc(SYN_PAGES * sizeof(*perm));
	uint64_t s = 77 + (uint64_t)c;

	madvise(m, SYN_PAGES * TPAGE, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < SYN_PAGES; i++)
		perm[i] = i;
	for (size_t i = SYN_PAGES - 1; i > 0; i--) { /* scatter the kinds */
		size_t j, t;

		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		j = s % (i + 1);
		t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (size_t i = 0; i < SYN_PAGES; i++)
		t_fill(m + perm[i] * TPAGE, syn_tag(c, i));
	if (madvise(m, SYN_PAGES * TPAGE, MADV_MERGEABLE))
		_exit(2);
	if (write(ready, "r", 1) != 1)
		_exit(3);
	for (;;)
		pause();
}

static void syn_start(void)
{
	int fd[2];
	char b;

	assert_int_equal(pipe(fd), 0);
	for (int c = 0; c < NPROC; c++) {
		kids[c] = fork();
		assert_true(kids[c] >= 0);
		if (kids[c] == 0) {
			close(fd[0]);
			syn_child(c, fd[1]);
		}
	}
	close(fd[1]);
	for (int c = 0; c < NPROC; c++)
		assert_int_equal(read(fd[0], &b, 1), 1);
	close(fd[0]);
}

static void syn_case(const char *mps, const char *uzp)
{
	const char *extra[] = {"--max-page-sharing", mps, "--use-zero-pages", uzp, "--merge-across-nodes", "1", NULL};
	struct counters p, k;
	char title[64];

	syn_start();
	assert_int_equal(t_ksm_set("run", "2"), 0);
	estimate(extra, &p);
	kernel_run(mps, uzp, 0, &k);
	snprintf(title, sizeof(title), "synthetic mps=%s uzp=%s", mps, uzp);
	show(title, &p, &k);
	kill_kids();
	assert_int_equal(p.shared + p.sharing, k.mine_merging);
	assert_int_equal(p.zero, k.mine_zero);
	if (alone(&k)) {
		assert_int_equal(p.shared, k.shared);
		assert_int_equal(p.sharing, k.sharing);
		assert_int_equal(p.zero, k.zero);
		assert_int_equal(p.chains, k.chains);
		assert_int_equal(p.dups, k.dups);
	}
	assert_true(t_ksm_set("run", "2") == 0);
}

static void test_synthetic_default(void **state)
{
	(void)state;
	syn_case("256", "0");
}

static void test_synthetic_zero_pages(void **state)
{
	(void)state;
	syn_case("64", "1");
}

/* --- redis-server ---------------------------------------------------------- */

#define REDIS_KEYS  1500
#define REDIS_VALUE 16384

static const char *redis_bin(void)
{
	static const char *const paths[] = {"/usr/bin/redis-server", "/usr/local/bin/redis-server"};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	return NULL;
}

static int redis_connect(const char *path, uint64_t deadline)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	while (t_now_ms() < deadline) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		usleep(20000);
	}
	return -1;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		assert_true(w > 0);
		p += w;
		n -= (size_t)w;
	}
}

/* SET key:i <16 KiB of a pattern of i%300>: the same data in every server,
 * 300 distinct values, each stored under 5 keys */
static void redis_load(int fd)
{
	static char cmd[REDIS_VALUE + 128], val[REDIS_VALUE];
	char reply[4096];
	size_t replies = 0;

	for (int i = 0; i < REDIS_KEYS; i++) {
		char key[32];
		int hl;

		for (size_t j = 0; j < REDIS_VALUE / 4; j++)
			((uint32_t *)val)[j] = (uint32_t)(i % 300 + 1) * 2654435761u + (uint32_t)j * 40503u;
		snprintf(key, sizeof(key), "key:%d", i);
		hl = snprintf(cmd, sizeof(cmd), "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$%d\r\n", strlen(key), key,
			      REDIS_VALUE);
		memcpy(cmd + hl, val, REDIS_VALUE);
		memcpy(cmd + hl + REDIS_VALUE, "\r\n", 2);
		send_all(fd, cmd, (size_t)hl + REDIS_VALUE + 2);
	}
	/* every SET answers "+OK\r\n" */
	while (replies < (size_t)REDIS_KEYS * 5) {
		ssize_t r = read(fd, reply, sizeof(reply));

		assert_true(r > 0);
		replies += (size_t)r;
	}
}

static void redis_start(const char *bin, const char *dir)
{
	for (int c = 0; c < NPROC; c++) {
		char sock[108]; /* sun_path */
		int fd;

		snprintf(sock, sizeof(sock), "%.80s/redis%d.sock", dir, c);
		unlink(sock);
		kids[c] = fork();
		assert_true(kids[c] >= 0);
		if (kids[c] == 0) {
			int null = open("/dev/null", O_WRONLY);

			dup2(null, 1);
			dup2(null, 2);
			/* KSM for the whole process, inherited across exec */
			if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
				_exit(2);
			execl(bin, bin, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no",
			      "--daemonize", "no", "--dir", dir, (char *)NULL);
			_exit(127);
		}
		fd = redis_connect(sock, t_now_ms() + 20000);
		assert_true(fd >= 0);
		redis_load(fd);
		close(fd);
	}
}

static void test_redis(void **state)
{
	const char *extra[] = {"--samples", "2", "--interval", "2", NULL};
	const char *bin = redis_bin();
	char dir[] = "/tmp/samepage-estimate-XXXXXX";
	struct counters p, k;
	double ep, ek;

	(void)state;
	if (!bin) {
		printf("  redis-server not installed: skipped (apt-get install redis-server)\n");
		skip();
	}
	assert_non_null(mkdtemp(dir));
	redis_start(bin, dir);
	sleep(1); /* let the servers finish their start-up work */
	assert_int_equal(t_ksm_set("run", "2"), 0);
	assert_int_equal(t_ksm_set("max_page_sharing", "256"), 0);
	assert_int_equal(t_ksm_set("use_zero_pages", "0"), 0);
	estimate(extra, &p);
	kernel_run("256", "0", 2, &k);
	show("redis-server x3", &p, &k);
	kill_kids();
	for (int c = 0; c < NPROC; c++) {
		char sock[300];

		snprintf(sock, sizeof(sock), "%s/redis%d.sock", dir, c);
		unlink(sock);
	}
	rmdir(dir);
	/* the workload's merged pages (ksm_stat), immune to other KSM users */
	ep = (double)(p.shared + p.sharing + p.zero);
	ek = (double)(k.mine_merging + k.mine_zero);
	printf("  merged pages: predicted %.0f, kernel %.0f: %+.2f%%\n", ep, ek, ek > 0 ? 100.0 * (ep - ek) / ek : 0);
	assert_true(ek > 1000);
	assert_true(ep >= ek * 0.97 && ep <= ek * 1.03);
	if (alone(&k)) { /* the criterion, on the global counters */
		ep = (double)(p.sharing + p.zero);
		ek = (double)(k.sharing + k.zero);
		printf("  pages_sharing + ksm_zero_pages: predicted %.0f, kernel %.0f: %+.2f%%\n", ep, ek,
		       ek > 0 ? 100.0 * (ep - ek) / ek : 0);
		assert_true(ep >= ek * 0.97 && ep <= ek * 1.03);
	}
	assert_true(t_ksm_set("run", "2") == 0);
}

static int setup(void **state)
{
	(void)state;
	find_samepage();
	return 0;
}

static int teardown_test(void **state)
{
	(void)state;
	kill_kids();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_synthetic_default, teardown_test),
		cmocka_unit_test_teardown(test_synthetic_zero_pages, teardown_test),
		cmocka_unit_test_teardown(test_redis, teardown_test),
	};

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
	return cmocka_run_group_tests(tests, setup, NULL);
}
