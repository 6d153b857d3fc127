/* SPDX-License-Identifier: MIT */
/*
 * engine_fork.c - fork() while pages are merged.
 *
 * Proves that a child inherits merged pages with their content, that writes
 * on either side stay on that side, that the parent unmerging (run=2) and
 * freeing its memory does not punch store pages the child still maps (they
 * were pinned at the fork), and that the child starts with a working engine
 * of its own: it can register and merge memory, and it can fork again (the
 * fork handlers must not be installed twice, or the grandchild's fork would
 * take the engine lock twice and hang).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "enginetest.h"

#define NP    1024
#define NCONT 8

/* exits the child with the line number of the first failed check */
#define CHILD_CHECK(x)                                                                 \
	do {                                                                           \
		if (!(x)) {                                                            \
			fprintf(stderr, "child: %s failed (line %d)\n", #x, __LINE__); \
			_exit(__LINE__ % 250 + 1);                                     \
		}                                                                      \
	} while (0)

static void child_engine(void)
{
	char *c = t_map(64);
	struct samepage_stats s;
	pid_t g;
	int st;

	/* a fresh engine: nothing registered, default knobs (run 0) */
	CHILD_CHECK(samepage_stats(&s) == 0);
	CHILD_CHECK(s.pages_shared == 0 && s.rmap_items == 0);
	for (size_t i = 0; i < 64; i++)
		t_fill(c + i * TPAGE, (uint32_t)(i % 2) + 100);
	CHILD_CHECK(samepage_madvise(c, 64 * TPAGE, SAMEPAGE_MERGEABLE) == 0);
	CHILD_CHECK(samepage_set("sleep_millisecs", "1") == 0);
	CHILD_CHECK(samepage_set("run", "1") == 0);
	CHILD_CHECK(et_wait_merged(2, 62, ET_PATIENCE_MS));
	for (size_t i = 0; i < 64; i++)
		CHILD_CHECK(t_check(c + i * TPAGE, (uint32_t)(i % 2) + 100));
	/* and fork again */
	alarm(10);
	g = fork();
	CHILD_CHECK(g >= 0);
	if (!g)
		_exit(t_check(c + 3 * TPAGE, 101) ? 0 : 1);
	CHILD_CHECK(waitpid(g, &st, 0) == g && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	alarm(0);
	CHILD_CHECK(samepage_munmap(c, 64 * TPAGE) == 0);
}

static void test_fork_while_merged(void **state)
{
	char *m = t_map(NP);
	int to_child[2], to_parent[2], st;
	char b = 0;
	pid_t pid;

	(void)state;
	for (size_t i = 0; i < NP; i++)
		t_fill(m + i * TPAGE, (uint32_t)(i % NCONT) + 1);
	assert_int_equal(samepage_madvise(m, NP * TPAGE, SAMEPAGE_MERGEABLE), 0);
	assert_true(et_wait_merged(NCONT, NP - NCONT, ET_PATIENCE_MS));
	assert_int_equal(pipe(to_child), 0);
	assert_int_equal(pipe(to_parent), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		alarm(30);
		for (size_t i = 0; i < NP; i++)
			CHILD_CHECK(t_check(m + i * TPAGE, (uint32_t)(i % NCONT) + 1));
		t_fill(m + 1 * TPAGE, 999); /* the child's own write */
		CHILD_CHECK(write(to_parent[1], "1", 1) == 1);
		CHILD_CHECK(read(to_child[0], &b, 1) == 1);
		/* the parent wrote page 2, unmerged everything and unmapped */
		for (size_t i = 0; i < NP; i++)
			CHILD_CHECK(t_check(m + i * TPAGE, i == 1 ? 999 : (uint32_t)(i % NCONT) + 1));
		child_engine();
		_exit(0);
	}
	assert_int_equal(read(to_parent[0], &b, 1), 1);
	assert_true(t_check(m + 1 * TPAGE, 2)); /* not the child's write */
	t_fill(m + 2 * TPAGE, 555);
	assert_int_equal(samepage_set("run", "2"), 0);
	for (size_t i = 0; i < NP; i++)
		assert_true(t_check(m + i * TPAGE, i == 2 ? 555 : (uint32_t)(i % NCONT) + 1));
	assert_int_equal(samepage_munmap(m, NP * TPAGE), 0);
	assert_int_equal(samepage_set("run", "1"), 0);
	assert_int_equal(write(to_child[1], "2", 1), 1);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		printf("  child killed by signal %d (hung?)\n", WTERMSIG(st));
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	close(to_child[0]);
	close(to_child[1]);
	close(to_parent[0]);
	close(to_parent[1]);
}

/* Forking over and over while the scanner merges must not hang or lose
 * data in the parent. */
static void test_fork_during_scans(void **state)
{
	char *m = t_map(NP);

	(void)state;
	for (size_t i = 0; i < NP; i++)
		t_fill(m + i * TPAGE, (uint32_t)(i % NCONT) + 1);
	assert_int_equal(samepage_madvise(m, NP * TPAGE, SAMEPAGE_MERGEABLE), 0);
	for (int k = 0; k < 50; k++) {
		int st;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (!pid)
			_exit(t_check(m + (size_t)k * TPAGE, (uint32_t)(k % NCONT) + 1) ? 0 : 1);
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		t_fill(m + (size_t)k * 7 * TPAGE, (uint32_t)((k * 7) % NCONT) + 1);
	}
	assert_true(et_wait_merged(NCONT, NP - NCONT, ET_PATIENCE_MS));
	assert_int_equal(samepage_munmap(m, NP * TPAGE), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fork_while_merged),
		cmocka_unit_test(test_fork_during_scans),
	};
	int rc = et_start();

	if (rc)
		return rc;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
