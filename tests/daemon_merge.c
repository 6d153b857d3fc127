/* SPDX-License-Identifier: MIT */
/*
 * daemon_merge.c - samepaged merges pages across processes with the
 * kernel's counters, and a process that leaves takes its pages along.
 *
 * Three client processes in one domain (the per-user default) each map the
 * same workload: pages equal across the processes, pages unique to each,
 * zero pages. The daemon's counters must come out exactly as the kernel's
 * KSM would count them (one KSM page per content, every further mapping a
 * sharer), every page must read its own content, a write must break only
 * its own copy, and when the processes exit the domain must be empty again
 * (no tracked page, no store page). A client out of mappings merges again
 * once it has some back. Then 700 clients at once: the daemon's
 * status has every one of them although it takes several messages.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemontest.h"
#include "proto/wire.h"
#include "samepage.h"
#include "testlib.h"

#define NPROC	3
#define NSHARED 512 /* equal across processes, unique inside each */
#define NUNIQ	512 /* unique everywhere */
#define NZERO	64  /* 3 x 64 sharers: below max_page_sharing, one KSM page */
#define NP	(NSHARED + NUNIQ + NZERO)

static uint32_t tag_of(int proc, size_t i)
{
	if (i < NSHARED)
		return 1000 + (uint32_t)i;
	if (i < NSHARED + NUNIQ)
		return 100000u * (uint32_t)(proc + 1) + (uint32_t)i;
	return 0;
}

static int check_all(const char *m, int proc, size_t skip)
{
	for (size_t i = 0; i < NP; i++)
		if (i != skip && !t_check(m + i * TPAGE, tag_of(proc, i)))
			return 0;
	return 1;
}

/* child: map, fill, register ('r'); on 'c' check and write page 0 ('v' or
 * 'x'); on 'q' leave */
static int client(void *arg, int wr, int rd)
{
	int proc = (int)(intptr_t)arg;
	char *m = t_map(NP), b;
	struct samepage_region_stats rs;

	for (size_t i = 0; i < NP; i++)
		t_fill(m + i * TPAGE, tag_of(proc, i));
	if (samepage_madvise(m, NP * TPAGE, SAMEPAGE_MERGEABLE))
		return perror("samepage_madvise"), 1;
	if (write(wr, "r", 1) != 1 || read(rd, &b, 1) != 1)
		return 1;
	b = 'v';
	if (!check_all(m, proc, NP))
		b = 'x';
	if (samepage_region_stats(m, NP * TPAGE, &rs) || rs.registered_pages != NP ||
	    rs.merging_pages + rs.zero_pages != NSHARED + NZERO) {
		fprintf(stderr, "client %d: region stats %llu registered, %llu merging, %llu zero\n", proc,
			(unsigned long long)rs.registered_pages, (unsigned long long)rs.merging_pages,
			(unsigned long long)rs.zero_pages);
		b = 'x';
	}
	t_fill(m, 7777); /* a write breaks this process's copy only */
	if (!t_check(m, 7777) || !check_all(m, proc, 0))
		b = 'x';
	if (write(wr, &b, 1) != 1 || read(rd, &b, 1) != 1)
		return 1;
	return samepage_munmap(m, NP * TPAGE) ? 1 : 0;
}

static void test_three_processes(void **state)
{
	struct dt_daemon d;
	struct dt_child c[NPROC];
	const char *st;
	char block[32];
	long long shared, sharing;

	(void)state;
	dt_start(&d, "[daemon]\nper_user_domains = yes\n");
	assert_int_equal(dt_set(&d, "", "pages_to_scan", "5000"), 0);
	assert_int_equal(dt_set(&d, "", "sleep_millisecs", "5"), 0);
	/* smart_scan would count unique pages skipped on a scan as volatile
	 * (the kernel does too): pages_unshared is exact only without it */
	assert_int_equal(dt_set(&d, "", "smart_scan", "0"), 0);
	setenv("SAMEPAGE_DAEMON", d.sock, 1);
	for (int i = 0; i < NPROC; i++)
		dt_spawn(&c[i], client, (void *)(intptr_t)i);
	for (int i = 0; i < NPROC; i++)
		assert_int_equal(dt_step(&c[i]), 'r');
	/* one KSM page per content, every other mapping a sharer */
	sharing = dt_wait(&d, "domain user:0", "pages_sharing", (NPROC - 1) * NSHARED + NPROC * NZERO - 1);
	st = dt_status(&d);
	shared = dt_value(st, "domain user:0", "pages_shared");
	printf("  %d processes: pages_shared %lld pages_sharing %lld\n", NPROC, shared, sharing);
	assert_int_equal(sharing, (NPROC - 1) * NSHARED + NPROC * NZERO - 1);
	assert_int_equal(shared, NSHARED + 1);
	assert_int_equal(dt_value(st, "domain user:0", "pages_unshared"), NPROC * NUNIQ);
	assert_int_equal(dt_value(st, "domain user:0", "clients"), NPROC);
	snprintf(block, sizeof(block), "client %d", (int)c[1].pid);
	assert_int_equal(dt_value(st, block, "ksm_merging_pages"), NSHARED + NZERO);
	for (int i = 0; i < NPROC; i++)
		dt_go(&c[i], 'c');
	for (int i = 0; i < NPROC; i++)
		assert_int_equal(dt_step(&c[i]), 'v');
	for (int i = 0; i < NPROC; i++) {
		dt_go(&c[i], 'q');
		assert_int_equal(dt_reap(&c[i]), 0);
	}
	/* gone: nothing tracked, every store page freed */
	assert_int_equal(dt_wait(&d, "domain user:0", "clients", DT_EQ(0)), 0);
	assert_int_equal(dt_wait(&d, "domain user:0", "pages_shared", DT_EQ(0)), 0);
	st = dt_status(&d);
	assert_int_equal(dt_value(st, "domain user:0", "pages_unshared"), 0);
	assert_int_equal(dt_value(st, "domain user:0", "pages_sharing"), 0);
	assert_int_equal(dt_value(st, "domain user:0", "registered_bytes"), 0);
	assert_true(dt_stop(&d));
	dt_cleanup(&d);
}

/* A killed client leaves no trace either. */
static int victim(void *arg, int wr, int rd)
{
	char *m = t_map(NP), b;

	(void)arg;
	for (size_t i = 0; i < NP; i++)
		t_fill(m + i * TPAGE, tag_of(0, i));
	if (samepage_madvise(m, NP * TPAGE, SAMEPAGE_MERGEABLE))
		return 1;
	if (write(wr, "r", 1) != 1)
		return 1;
	if (read(rd, &b, 1) != 1) /* killed here */
		return 1;
	return 0;
}

static void test_killed_client(void **state)
{
	struct dt_daemon d;
	struct dt_child a, b;

	(void)state;
	dt_start(&d, NULL);
	assert_int_equal(dt_set(&d, "", "pages_to_scan", "5000"), 0);
	setenv("SAMEPAGE_DAEMON", d.sock, 1);
	dt_spawn(&a, victim, NULL);
	dt_spawn(&b, victim, NULL);
	assert_int_equal(dt_step(&a), 'r');
	assert_int_equal(dt_step(&b), 'r');
	dt_wait(&d, "domain user:0", "pages_sharing", NSHARED + 2 * NZERO - 1);
	kill(a.pid, SIGKILL);
	assert_int_equal(dt_reap(&a), 128 + SIGKILL);
	/* its pages left the indexes: the other's are no longer shared with
	 * anybody but themselves (zeros still merge inside it) */
	assert_int_equal(dt_wait(&d, "domain user:0", "pages_sharing", DT_EQ(NZERO - 1)), NZERO - 1);
	assert_int_equal(dt_value(dt_status(&d), "domain user:0", "clients"), 1);
	kill(b.pid, SIGKILL);
	assert_int_equal(dt_reap(&b), 128 + SIGKILL);
	assert_int_equal(dt_wait(&d, "domain user:0", "pages_shared", DT_EQ(0)), 0);
	assert_int_equal(dt_value(dt_status(&d), "domain user:0", "registered_bytes"), 0);
	assert_true(dt_stop(&d));
	dt_cleanup(&d);
}

/* A client of many: two pages registered (one content shared by all),
 * then it waits for 'q'. */
static int small_client(void *arg, int wr, int rd)
{
	char *m = t_map(2), b;

	t_fill(m, 42);
	t_fill(m + TPAGE, 5000000 + (uint32_t)(intptr_t)arg);
	if (samepage_madvise(m, 2 * TPAGE, SAMEPAGE_MERGEABLE))
		return 1;
	if (write(wr, "r", 1) != 1 || read(rd, &b, 1) != 1)
		return 1;
	return t_check(m, 42) && t_check(m + TPAGE, 5000000 + (uint32_t)(intptr_t)arg) ? 0 : 1;
}

/* More clients than one STATUS message holds: the status comes in pages
 * (sp_wire_status) and has every one of them. */
#define NMANY 700
static void test_many_clients(void **state)
{
	static struct dt_child c[NMANY];
	struct dt_daemon d;
	const char *st;
	char block[32];
	int blocks = 0;

	struct rlimit rl;

	(void)state;
	/* two pipe ends per client here */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	dt_start(&d, NULL);
	assert_int_equal(dt_set(&d, "", "pages_to_scan", "5000"), 0);
	setenv("SAMEPAGE_DAEMON", d.sock, 1);
	for (int i = 0; i < NMANY; i++)
		dt_spawn(&c[i], small_client, (void *)(intptr_t)i);
	for (int i = 0; i < NMANY; i++)
		assert_int_equal(dt_step(&c[i]), 'r');
	/* max_page_sharing 256: three KSM pages of the one content */
	assert_int_equal(dt_wait(&d, "domain user:0", "pages_sharing", NMANY - 3), NMANY - 3);
	st = dt_status(&d);
	for (const char *p = st; (p = strstr(p, "\nclient ")) != NULL; p++)
		blocks++;
	printf("  %d clients: status of %zu bytes (one message holds %d), %d client blocks\n", NMANY, strlen(st),
	       SP_MSG_MAX, blocks);
	assert_true(strlen(st) > SP_MSG_MAX);
	assert_int_equal(blocks, NMANY);
	assert_int_equal(dt_value(st, "domain user:0", "clients"), NMANY);
	for (int i = 0; i < NMANY; i++) {
		snprintf(block, sizeof(block), "client %d", (int)c[i].pid);
		assert_int_equal(dt_value(st, block, "registered_pages"), 2);
		assert_int_equal(dt_value(st, block, "ksm_merging_pages"), 1);
	}
	for (int i = 0; i < NMANY; i++)
		dt_go(&c[i], 'q');
	for (int i = 0; i < NMANY; i++)
		assert_int_equal(dt_reap(&c[i]), 0);
	assert_int_equal(dt_wait(&d, "domain user:0", "clients", DT_EQ(0)), 0);
	assert_true(dt_stop(&d));
	dt_cleanup(&d);
}

/* A client out of mappings (vm.max_map_count) gets none of its pages
 * merged; once it has mappings again, merging goes on. The daemon learns a
 * client's budget only from its answers, and a client left without
 * mappings gets no remaps to answer: the daemon must ask it. */
#define NPAIR 512 /* pages [0, NPAIR) equal to [NPAIR, 2 NPAIR) */

static long sysctl_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static long count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int ch;

	if (!f)
		return -1;
	while ((ch = getc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

/* child: takes all the mappings but a few below the engine's reserve,
 * registers NPAIR pairs ('r'); on 'f' gives those mappings back ('f'); on
 * 'c' checks its pages ('v' or 'x'); on 'q' leaves */
static int hog(void *arg, int wr, int rd)
{
	long max = sysctl_long("/proc/sys/vm/max_map_count"), cur = count_maps();
	long reserve = max / 8 > 1024 ? max / 8 : 1024, extra = max - reserve - cur + 64;
	char *h, *m = t_map(2 * NPAIR), b;

	(void)arg;
	if (max < 0 || cur < 0)
		return 1;
	/* every other page read-only: one mapping per page */
	h = mmap(NULL, (size_t)extra * TPAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (h == MAP_FAILED)
		return perror("mmap"), 1;
	for (long i = 1; i < extra; i += 2)
		if (mprotect(h + i * TPAGE, TPAGE, PROT_READ | PROT_WRITE))
			return perror("mprotect"), 1;
	for (size_t i = 0; i < 2 * NPAIR; i++)
		t_fill(m + i * TPAGE, 5000 + (uint32_t)(i % NPAIR));
	if (samepage_madvise(m, 2 * NPAIR * TPAGE, SAMEPAGE_MERGEABLE))
		return perror("samepage_madvise"), 1;
	if (write(wr, "r", 1) != 1 || read(rd, &b, 1) != 1)
		return 1;
	munmap(h, (size_t)extra * TPAGE);
	if (write(wr, "f", 1) != 1 || read(rd, &b, 1) != 1)
		return 1;
	b = 'v';
	for (size_t i = 0; i < 2 * NPAIR; i++)
		if (!t_check(m + i * TPAGE, 5000 + (uint32_t)(i % NPAIR)))
			b = 'x';
	if (write(wr, &b, 1) != 1 || read(rd, &b, 1) != 1)
		return 1;
	return samepage_munmap(m, 2 * NPAIR * TPAGE) ? 1 : 0;
}

static void test_budget_comes_back(void **state)
{
	struct dt_daemon d;
	struct dt_child c;
	long long scans, stalled;
	long max = sysctl_long("/proc/sys/vm/max_map_count");

	(void)state;
	if (max < 0 || max > 1 << 20) {
		printf("  vm.max_map_count %ld: too many mappings to take, skipped\n", max);
		skip();
	}
	dt_start(&d, NULL);
	assert_int_equal(dt_set(&d, "", "pages_to_scan", "5000"), 0);
	assert_int_equal(dt_set(&d, "", "sleep_millisecs", "5"), 0);
	setenv("SAMEPAGE_DAEMON", d.sock, 1);
	dt_spawn(&c, hog, NULL);
	assert_int_equal(dt_step(&c), 'r');
	/* out of mappings: three full scans merge at most the batch that
	 * learnt it (the client's first answer) */
	scans = dt_value(dt_status(&d), "domain user:0", "full_scans");
	dt_wait(&d, "domain user:0", "full_scans", scans + 3);
	stalled = dt_value(dt_status(&d), "domain user:0", "pages_sharing");
	printf("  out of mappings: pages_sharing %lld of %d after 3 full scans\n", stalled, NPAIR);
	assert_true(stalled < NPAIR);
	dt_go(&c, 'f');
	assert_int_equal(dt_step(&c), 'f');
	assert_int_equal(dt_wait(&d, "domain user:0", "pages_sharing", NPAIR), NPAIR);
	dt_go(&c, 'c');
	assert_int_equal(dt_step(&c), 'v');
	dt_go(&c, 'q');
	assert_int_equal(dt_reap(&c), 0);
	assert_int_equal(dt_wait(&d, "domain user:0", "clients", DT_EQ(0)), 0);
	assert_true(dt_stop(&d));
	dt_cleanup(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_three_processes),
		cmocka_unit_test(test_killed_client),
		cmocka_unit_test(test_budget_comes_back),
		cmocka_unit_test(test_many_clients),
	};

	if (geteuid()) {
		printf("daemon tests need root (the daemon reads other processes' memory)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
