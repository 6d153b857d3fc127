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
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "estimatetest.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif

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
	struct counters p = {0}, k = {0};
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
	struct counters p = {0}, k = {0};

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
	expect_close(&p, &k, 1000);
	assert_true(t_ksm_set("run", "2") == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_synthetic_default, teardown_test),
		cmocka_unit_test_teardown(test_synthetic_zero_pages, teardown_test),
		cmocka_unit_test_teardown(test_redis, teardown_test),
	};

	return estimate_main(tests, sizeof(tests) / sizeof(tests[0]));
}
