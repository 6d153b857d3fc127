/* SPDX-License-Identifier: MIT */
/*
 * engine_merge.c - libsamepage merges real memory and keeps it correct.
 *
 * Proves on real memory (userfaultfd, memfd, pagemap): registered pages
 * with equal content are merged (exact pages_shared / pages_sharing, pages
 * really map the store per pagemap) and read their own content; a write to
 * a merged page gets a private copy and leaves the others alone; read(2)
 * from a pipe and recv(2) from a socket write into merged pages correctly;
 * run=2 makes every page private at once with content intact and run=1
 * merges again; use_zero_pages drops zero pages, but a merged page
 * written with zeros keeps reading zeros; unregistering restores
 * plain anonymous memory, so MADV_DONTNEED afterwards reads zeros (not the
 * store's content, as a still-mapped store page would).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "enginetest.h"

#define NP    1024
#define NCONT 8

static char *merged_area(void)
{
	char *m = t_map(NP);

	for (size_t i = 0; i < NP; i++)
		t_fill(m + i * TPAGE, (uint32_t)(i % NCONT) + 1);
	assert_int_equal(samepage_madvise(m, NP * TPAGE, SAMEPAGE_MERGEABLE), 0);
	assert_true(et_wait_merged(NCONT, NP - NCONT, ET_PATIENCE_MS));
	return m;
}

static void check_area(const char *m, size_t skip)
{
	for (size_t i = 0; i < NP; i++)
		if (i != skip)
			assert_true(t_check(m + i * TPAGE, (uint32_t)(i % NCONT) + 1));
}

static void test_merge(void **state)
{
	struct samepage_region_stats rs;
	uint64_t t0 = t_now_ms();
	char *m = merged_area();

	(void)state;
	printf("  %d pages of %d contents merged in %llu ms\n", NP, NCONT, (unsigned long long)(t_now_ms() - t0));
	check_area(m, NP);
	assert_int_equal(et_file_pages(m, NP), NP); /* read in: all map the store */
	assert_int_equal(samepage_region_stats(m, NP * TPAGE, &rs), 0);
	assert_int_equal(rs.registered_pages, NP);
	assert_int_equal(rs.merging_pages, NP);
	/* settled: more scans change nothing */
	assert_int_equal(samepage_wait_scans(2, ET_PATIENCE_MS), 0);
	assert_true(et_wait_merged(NCONT, NP - NCONT, 1));
	assert_int_equal(samepage_munmap(m, NP * TPAGE), 0);
	assert_true(et_wait_merged(0, 0, 1));
}

static void test_cow_after_merge(void **state)
{
	char *m = merged_area();

	(void)state;
	m[5 * TPAGE + 17] = 'x'; /* user-mode write */
	assert_int_equal(m[5 * TPAGE + 17], 'x');
	check_area(m, 5);
	assert_int_equal(et_file_pages(m + 5 * TPAGE, 1), 0);
	assert_int_equal(et_file_pages(m + 13 * TPAGE, 1), 1); /* same content, untouched */
	assert_true(et_wait_merged(NCONT, NP - NCONT - 1, ET_PATIENCE_MS));
	m[5 * TPAGE + 17] = 0;
	t_fill(m + 5 * TPAGE, 6); /* back to its content: merges again */
	assert_true(et_wait_merged(NCONT, NP - NCONT, ET_PATIENCE_MS));
	check_area(m, NP);
	assert_int_equal(samepage_munmap(m, NP * TPAGE), 0);
}

static void test_kernel_writes(void **state)
{
	char *m = merged_area();
	char buf[TPAGE];
	int p[2], sv[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	t_fill(buf, 777);
	/* read(2) into a whole merged page and into the middle of one */
	assert_int_equal(write(p[1], buf, TPAGE), TPAGE);
	assert_int_equal(read(p[0], m + 8 * TPAGE, TPAGE), TPAGE);
	assert_true(t_check(m + 8 * TPAGE, 777));
	assert_int_equal(write(p[1], "hello", 5), 5);
	assert_int_equal(read(p[0], m + 9 * TPAGE + 100, 5), 5);
	assert_memory_equal(m + 9 * TPAGE + 100, "hello", 5);
	/* recv(2) */
	assert_int_equal(send(sv[0], buf, TPAGE, 0), TPAGE);
	assert_int_equal(recv(sv[1], m + 10 * TPAGE, TPAGE, MSG_WAITALL), TPAGE);
	assert_true(t_check(m + 10 * TPAGE, 777));
	for (size_t i = 0; i < NP; i++)
		if (i < 8 || i > 10)
			assert_true(t_check(m + i * TPAGE, (uint32_t)(i % NCONT) + 1));
	/* the scanner sees the three new private pages: 777 x2 merges */
	assert_true(et_wait_merged(NCONT + 1, NP - NCONT - 2, ET_PATIENCE_MS));
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(samepage_munmap(m, NP * TPAGE), 0);
}

static void test_run2_unmerges(void **state)
{
	char *m = merged_area();
	struct samepage_stats s;

	(void)state;
	assert_int_equal(samepage_set("run", "2"), 0);
	s = et_stats(); /* synchronous: done when set returns */
	assert_int_equal(s.pages_shared, 0);
	assert_int_equal(s.pages_sharing, 0);
	assert_int_equal(et_file_pages(m, NP), 0);
	check_area(m, NP);
	/* stopped: nothing merges, wait_scans times out */
	assert_int_equal(samepage_wait_scans(1, 50), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_true(et_wait_merged(0, 0, 1));
	assert_int_equal(samepage_set("run", "1"), 0);
	assert_true(et_wait_merged(NCONT, NP - NCONT, ET_PATIENCE_MS));
	check_area(m, NP);
	assert_int_equal(samepage_munmap(m, NP * TPAGE), 0);
}

static void test_zero_pages(void **state)
{
	char *m = t_map(NP);
	struct samepage_stats s;
	uint64_t end;

	(void)state;
	for (size_t i = 0; i < NP; i++)
		t_fill(m + i * TPAGE, i < NP / 2 ? 0 : 3);
	assert_int_equal(samepage_set("use_zero_pages", "1"), 0);
	assert_int_equal(samepage_madvise(m, NP * TPAGE, SAMEPAGE_MERGEABLE), 0);
	end = t_now_ms() + ET_PATIENCE_MS;
	do {
		s = et_stats();
		usleep(1000);
	} while ((s.ksm_zero_pages != NP / 2 || s.pages_sharing != NP / 2 - 2) && t_now_ms() < end);
	/* 512 pages of content 3 at max_page_sharing 256: two dups of 256 */
	assert_int_equal(s.ksm_zero_pages, NP / 2);
	assert_int_equal(s.pages_shared, 2);
	assert_int_equal(s.pages_sharing, NP / 2 - 2);
	assert_int_equal(s.stable_node_chains, 1);
	assert_int_equal(s.rmap_items, NP / 2); /* dropped pages are not items */
	for (size_t i = 0; i < NP; i++)
		assert_true(t_check(m + i * TPAGE, i < NP / 2 ? 0 : 3));
	m[7] = 1; /* a dropped page is writable memory as before */
	assert_int_equal(m[7], 1);
	m[7] = 0;
	assert_int_equal(samepage_munmap(m, NP * TPAGE), 0);
	assert_int_equal(samepage_set("use_zero_pages", "0"), 0);
	s = et_stats();
	assert_int_equal(s.ksm_zero_pages, 0);
}

/* A merged page written full of zeros is private memory inside a store
 * mapping: with use_zero_pages it must still read zeros afterwards (dropping
 * it with MADV_DONTNEED would bring the store page back). */
static void test_zero_write_to_merged_page(void **state)
{
	char *m = merged_area();

	(void)state;
	assert_int_equal(samepage_set("use_zero_pages", "1"), 0);
	for (size_t i = 0; i < 64; i++)
		memset(m + i * TPAGE, 0, TPAGE);
	assert_int_equal(samepage_wait_scans(4, ET_PATIENCE_MS), 0);
	for (size_t i = 0; i < NP; i++)
		assert_true(t_check(m + i * TPAGE, i < 64 ? 0 : (uint32_t)(i % NCONT) + 1));
	assert_int_equal(samepage_munmap(m, NP * TPAGE), 0);
	assert_int_equal(samepage_set("use_zero_pages", "0"), 0);
}

static void test_unregister_then_dontneed(void **state)
{
	char *m = merged_area();

	(void)state;
	assert_int_equal(samepage_madvise(m, NP * TPAGE, SAMEPAGE_UNMERGEABLE), 0);
	assert_true(et_wait_merged(0, 0, 1));
	check_area(m, NP);
	assert_true(et_maps_are(m, NP * TPAGE, "rw-p", 1));
	assert_int_equal(madvise(m, NP * TPAGE, MADV_DONTNEED), 0);
	for (size_t i = 0; i < NP; i++)
		assert_true(t_check(m + i * TPAGE, 0));
	/* unregistering twice, or memory never registered, is not an error */
	assert_int_equal(samepage_madvise(m, NP * TPAGE, SAMEPAGE_UNMERGEABLE), 0);
	assert_int_equal(munmap(m, NP * TPAGE), 0);
}

/* Part of a region is unregistered while merged; the rest stays merged. */
static void test_unregister_part(void **state)
{
	char *m = merged_area();

	(void)state;
	assert_int_equal(samepage_madvise(m + 256 * TPAGE, 512 * TPAGE, SAMEPAGE_UNMERGEABLE), 0);
	check_area(m, NP);
	assert_int_equal(et_file_pages(m + 256 * TPAGE, 512), 0);
	assert_true(et_wait_merged(NCONT, 512 - NCONT, ET_PATIENCE_MS));
	assert_int_equal(madvise(m + 256 * TPAGE, 512 * TPAGE, MADV_DONTNEED), 0);
	assert_true(t_check(m + 300 * TPAGE, 0));
	assert_true(t_check(m + 255 * TPAGE, 255 % NCONT + 1));
	assert_true(t_check(m + 768 * TPAGE, 768 % NCONT + 1));
	assert_int_equal(samepage_munmap(m, NP * TPAGE), 0);
	assert_true(et_wait_merged(0, 0, 1));
}

/* Full scans until pages_sharing is `sharing`, at most `most` of them;
 * -1 if it was not reached. */
static int scans_until_sharing(uint64_t sharing, int most)
{
	uint64_t f0 = et_stats().full_scans;

	for (;;) {
		struct samepage_stats s = et_stats();

		if (s.pages_sharing == sharing)
			return (int)(s.full_scans - f0);
		if (s.full_scans - f0 > (uint64_t)most)
			return -1;
		usleep(1000);
	}
}

/* Settled memory, smart_scan on: after a few full scans in which nothing
 * happens the scanner stops querying merged pages (only every 8th scan
 * each), trusting the process's page-fault count. A write by the process,
 * from user space or a system call, is a fault: seen at the next scan or
 * the one after (a fault in flight while a batch starts); another
 * process's write, which the count does not see, by the periodic query. */
static void test_writes_after_settling(void **state)
{
	char *m = merged_area();
	char buf[TPAGE];
	int p[2], sv[2], n;
	uint64_t sharing = NP - NCONT;
	pid_t child;

	(void)state;
	assert_int_equal(samepage_set("smart_scan", "1"), 0);
	assert_int_equal(samepage_wait_scans(4, ET_PATIENCE_MS), 0);
	m[5 * TPAGE + 17] = 'x'; /* user-mode write */
	n = scans_until_sharing(--sharing, 2);
	print_message("user write seen after %d scans\n", n);
	assert_true(n >= 0);
	assert_int_equal(samepage_wait_scans(3, ET_PATIENCE_MS), 0);

	assert_int_equal(pipe(p), 0);
	t_fill(buf, 777);
	assert_int_equal(write(p[1], buf, TPAGE), TPAGE);
	assert_int_equal(read(p[0], m + 8 * TPAGE, TPAGE), TPAGE); /* a kernel write */
	n = scans_until_sharing(--sharing, 2);
	print_message("read(2) seen after %d scans\n", n);
	assert_true(n >= 0);

	/* another process writes page 20 once this one is trusted again */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		char go, x = 'y';
		struct iovec l = {.iov_base = &x, .iov_len = 1};
		struct iovec r = {.iov_base = m + 20 * TPAGE + 3, .iov_len = 1};

		close(sv[0]);
		if (read(sv[1], &go, 1) != 1 || process_vm_writev(getppid(), &l, 1, &r, 1, 0) != 1)
			_exit(1);
		_exit(write(sv[1], &go, 1) == 1 ? 0 : 1);
	}
	close(sv[1]);
	assert_int_equal(samepage_wait_scans(4, ET_PATIENCE_MS), 0);
	assert_int_equal(write(sv[0], "g", 1), 1);
	assert_int_equal(read(sv[0], buf, 1), 1);
	n = scans_until_sharing(--sharing, 8 + 2);
	print_message("another process's write seen after %d scans\n", n);
	assert_true(n >= 0);
	assert_int_equal(m[20 * TPAGE + 3], 'y');
	{
		int st;

		assert_int_equal(waitpid(child, &st, 0), child);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	for (size_t i = 0; i < NP; i++)
		if (i != 5 && i != 8 && i != 20)
			assert_true(t_check(m + i * TPAGE, (uint32_t)(i % NCONT) + 1));
	assert_true(t_check(m + 8 * TPAGE, 777));
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	assert_int_equal(samepage_munmap(m, NP * TPAGE), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_cow_after_merge),
		cmocka_unit_test(test_kernel_writes),
		cmocka_unit_test(test_run2_unmerges),
		cmocka_unit_test(test_zero_pages),
		cmocka_unit_test(test_zero_write_to_merged_page),
		cmocka_unit_test(test_unregister_then_dontneed),
		cmocka_unit_test(test_unregister_part),
		cmocka_unit_test(test_writes_after_settling),
	};
	int rc = et_start();

	if (rc)
		return rc;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
