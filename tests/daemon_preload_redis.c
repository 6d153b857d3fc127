/* SPDX-License-Identifier: MIT */
/*
 * daemon_preload_redis.c - three redis-server instances, unmodified, under
 * `samepage run --engine` (libsamepage-preload.so, samepaged), loaded with
 * the same data: every key reads back, and the daemon merges across them
 * (pages_sharing). Then the same three under the kernel's KSM
 * (`samepage run`, prctl PR_SET_MEMORY_MERGE) for the savings to compare.
 *
 * Values are 1000 bytes: jemalloc puts four in a page (its 1024-byte
 * class), in the order they are set, so pages of values come out the same
 * in every instance (larger values would not: jemalloc starts each large
 * block at a random cache line of its first page). NDISTINCT different
 * values over NKEYS keys. Skipped (77) without redis-server or root.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemontest.h"
#include "testlib.h"

#ifndef SP_SAMEPAGE
#error "SP_SAMEPAGE: the samepage command, from tests/CMakeLists.txt"
#endif

#define NINST	  3
#define NKEYS	  20000
#define NDISTINCT 500
#define VLEN	  1000
#define DOM	  "domain user:0"
/* pages of values (4 a page) beyond one copy of each distinct page, less a
 * fifth for slack */
#define WANT_SHARING ((long long)(NINST * NKEYS / 4 - NDISTINCT / 4) * 4 / 5)

struct inst {
	pid_t run; /* `samepage run` (redis-server is its child) */
	pid_t redis;
	int port, fd;
};

static char value_buf[VLEN];

static const char *value_of(int key)
{
	uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(key % NDISTINCT + 1);

	for (size_t i = 0; i < VLEN; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		value_buf[i] = (char)('a' + x % 26);
	}
	return value_buf;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || getsockname(fd, (struct sockaddr *)&a, &len))
		return -1;
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static void start(struct inst *in, const char *sock, const char *log)
{
	char port[16];

	in->port = free_port();
	assert_true(in->port > 0);
	snprintf(port, sizeof(port), "%d", in->port);
	in->run = fork();
	assert_true(in->run >= 0);
	if (!in->run) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (sock)
			execl(SP_SAMEPAGE, "samepage", "run", "--engine", "--require", "--socket", sock, "--",
			      "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			      (char *)NULL);
		else
			execl(SP_SAMEPAGE, "samepage", "run", "--", "redis-server", "--port", port, "--bind",
			      "127.0.0.1", "--save", "", "--appendonly", "no", (char *)NULL);
		_exit(127);
	}
}

static int connect_wait(int port)
{
	struct sockaddr_in a = {
		.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	uint64_t deadline = t_now_ms() + DT_PATIENCE_MS;

	while (t_now_ms() < deadline) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (fd >= 0 && !connect(fd, (struct sockaddr *)&a, sizeof(a)))
			return fd;
		if (fd >= 0)
			close(fd);
		usleep(20000);
	}
	return -1;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int recv_exact(int fd, char *p, size_t n)
{
	while (n) {
		ssize_t r = read(fd, p, n);

		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* one line of a reply, without \r\n */
static int recv_line(int fd, char *line, size_t len)
{
	size_t k = 0;

	while (k < len - 1) {
		if (recv_exact(fd, line + k, 1))
			return -1;
		if (line[k] == '\n') {
			line[k && line[k - 1] == '\r' ? k - 1 : k] = 0;
			return 0;
		}
		k++;
	}
	return -1;
}

/* one write per command (with Nagle's algorithm, pieces would wait for
 * the server's delayed acknowledgement: 40 ms a command) */
static int command(int fd, int argc, const char **argv, const size_t *lens)
{
	static char buf[VLEN + 256];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "*%d\r\n", argc);

	for (int i = 0; i < argc; i++) {
		if (n + lens[i] + 32 > sizeof(buf))
			return -1;
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "$%zu\r\n", lens[i]);
		memcpy(buf + n, argv[i], lens[i]);
		n += lens[i];
		memcpy(buf + n, "\r\n", 2);
		n += 2;
	}
	return send_all(fd, buf, n);
}

static void load(struct inst *in)
{
	char key[32], line[64];

	for (int i = 0; i < NKEYS; i++) {
		const char *argv[3] = {"SET", key, value_of(i)}; /* (value_of's buffer) */
		size_t lens[3] = {3, 0, VLEN};

		snprintf(key, sizeof(key), "key:%d", i);
		lens[1] = strlen(key);
		assert_int_equal(command(in->fd, 3, argv, lens), 0);
		assert_int_equal(recv_line(in->fd, line, sizeof(line)), 0);
		assert_string_equal(line, "+OK");
	}
}

/* every key reads back its value */
static int check(struct inst *in)
{
	static char got[VLEN + 2];
	char key[32], line[64];

	for (int i = 0; i < NKEYS; i++) {
		const char *argv[2] = {"GET", key};
		size_t lens[2] = {3, 0};

		snprintf(key, sizeof(key), "key:%d", i);
		lens[1] = strlen(key);
		if (command(in->fd, 2, argv, lens) || recv_line(in->fd, line, sizeof(line)) || atoi(line + 1) != VLEN ||
		    recv_exact(in->fd, got, VLEN + 2) || memcmp(got, value_of(i), VLEN))
			return i;
	}
	return -1;
}

static pid_t redis_pid(struct inst *in)
{
	const char *argv[2] = {"INFO", "server"};
	size_t lens[2] = {4, 6};
	char line[64], *text, *p;
	long n;
	pid_t pid = -1;

	if (command(in->fd, 2, argv, lens) || recv_line(in->fd, line, sizeof(line)))
		return -1;
	n = atol(line + 1);
	text = calloc(1, (size_t)n + 3);
	if (!text || recv_exact(in->fd, text, (size_t)n + 2))
		return -1;
	p = strstr(text, "process_id:");
	if (p)
		pid = atoi(p + 11);
	free(text);
	return pid;
}

static void stop(struct inst *in)
{
	const char *argv[2] = {"SHUTDOWN", "NOSAVE"};
	size_t lens[2] = {8, 6};
	int st = 0;

	command(in->fd, 2, argv, lens);
	close(in->fd);
	waitpid(in->run, &st, 0);
}

/* Starts, loads and checks three instances; returns the sum of their Pss
 * (KiB) once want() says the merging has settled. */
static long long run_three(struct inst *in, const char *sock, const char *log, long long (*want)(void *), void *ctx,
			   long long *sharing)
{
	long long pss = 0;

	for (int i = 0; i < NINST; i++)
		start(&in[i], sock, log);
	for (int i = 0; i < NINST; i++) {
		in[i].fd = connect_wait(in[i].port);
		assert_true(in[i].fd >= 0);
		in[i].redis = redis_pid(&in[i]);
		assert_true(in[i].redis > 0);
	}
	for (int i = 0; i < NINST; i++)
		load(&in[i]);
	*sharing = want(ctx);
	for (int i = 0; i < NINST; i++) {
		int bad = check(&in[i]);

		if (bad >= 0)
			fail_msg("instance %d: key:%d does not read back", i, bad);
		pss += t_pss_kib(in[i].redis);
	}
	return pss;
}

/* the threshold, then three more full scans (settled) */
static long long daemon_want(void *ctx)
{
	long long scans;

	dt_wait(ctx, DOM, "pages_sharing", WANT_SHARING);
	scans = dt_value(dt_status(ctx), DOM, "full_scans");
	dt_wait(ctx, DOM, "full_scans", scans + 3);
	return dt_value(dt_status(ctx), DOM, "pages_sharing");
}

static long long kernel_want(void *ctx)
{
	uint64_t deadline = t_now_ms() + DT_PATIENCE_MS;
	long long v = 0;

	long scans;

	(void)ctx;
	while (t_now_ms() < deadline && (v = t_ksm_get("pages_sharing")) < WANT_SHARING)
		usleep(50000);
	scans = t_ksm_get("full_scans");
	while (t_now_ms() < deadline && t_ksm_get("full_scans") < scans + 3)
		usleep(50000);
	return t_ksm_get("pages_sharing");
}

static void test_three_redis(void **state)
{
	char log[200];
	struct dt_daemon d;
	struct inst in[NINST];
	long long sharing, ksharing;
	long long pss, kpss;

	(void)state;
	dt_start(&d, NULL);
	snprintf(log, sizeof(log), "%s/redis.log", d.dir);
	assert_int_equal(dt_set(&d, "", "pages_to_scan", "5000"), 0);
	assert_int_equal(dt_set(&d, "", "sleep_millisecs", "5"), 0);
	pss = run_three(in, d.sock, log, daemon_want, &d, &sharing);
	printf("  engine (samepaged): pages_sharing %lld (%lld MiB saved), pages_shared %lld; Pss of the redis "
	       "%lld MiB, of samepaged %lld MiB\n",
	       sharing, sharing * 4 / 1024, dt_value(dt_status(&d), DOM, "pages_shared"), pss / 1024,
	       t_pss_kib(d.pid) / 1024);
	assert_true(sharing >= WANT_SHARING);
	assert_int_equal(dt_value(dt_status(&d), DOM, "clients"), NINST);
	for (int i = 0; i < NINST; i++)
		stop(&in[i]);
	assert_int_equal(dt_wait(&d, DOM, "clients", DT_EQ(0)), 0);
	assert_int_equal(dt_wait(&d, DOM, "pages_shared", DT_EQ(0)), 0);
	assert_true(dt_stop(&d));

	if (!t_ksm_available()) {
		printf("  kernel's KSM: not available here, no comparison\n");
		dt_cleanup(&d);
		return;
	}
	t_ksm_save(); /* (restored at exit) */
	assert_int_equal(t_ksm_set("run", "1"), 0);
	t_ksm_set("pages_to_scan", "5000");
	t_ksm_set("sleep_millisecs", "5");
	kpss = run_three(in, NULL, log, kernel_want, NULL, &ksharing);
	printf("  kernel's KSM:       pages_sharing %lld (%lld MiB saved), pages_shared %ld; Pss of the redis "
	       "%lld MiB\n",
	       ksharing, ksharing * 4 / 1024, t_ksm_get("pages_shared"), kpss / 1024);
	assert_true(ksharing > 0);
	for (int i = 0; i < NINST; i++)
		stop(&in[i]);
	t_ksm_restore();
	dt_cleanup(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_three_redis),
	};

#ifdef SP_SANITIZED
	/* The sanitizer build's library is instrumented: ASan's runtime must
	 * be loaded before it, and redis-server is not built with it. `samepage
	 * run --engine` puts its library first in LD_PRELOAD, so the runtime
	 * refuses to start (or, with verify_asan_link_order=0, is found after
	 * libc and redis-server's malloc is not the one the library's code
	 * expects); preloading the runtime ahead of it would replace
	 * redis-server's allocator with ASan's: another program than the one
	 * whose savings are compared with the kernel's KSM here. */
	printf("sanitizer build: the instrumented preload library needs ASan's runtime loaded first, which the "
	       "uninstrumented redis-server does not load (and preloading it would swap redis-server's allocator "
	       "for ASan's): skipped; it runs on the plain build\n");
	return 77;
#endif
	if (geteuid()) {
		printf("needs root (samepaged reads other processes' memory)\n");
		return 77;
	}
	if (system("command -v redis-server >/dev/null 2>&1")) {
		printf("redis-server is not installed\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
