/* SPDX-License-Identifier: MIT */
/*
 * engine_mprotect.c - mprotect() round trips on registered memory.
 *
 * Proves that registered memory made read-only keeps its protection while
 * the engine merges it, unmerges it (run=2), merges it again, and
 * unregisters it (a write still
 * faults, /proc/self/maps still says r--p), that content stays intact
 * throughout, and that after mprotect back to read-write a write to a
 * merged page gets a private copy as usual.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "enginetest.h"

#define NP    256
#define NCONT 4

static sigjmp_buf jb;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(jb, 1);
}

/* 1 if writing *p faults. */
static int write_faults(volatile char *p)
{
	struct sigaction sa = {.sa_handler = on_segv}, old;
	int faulted = 0;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old);
	if (!sigsetjmp(jb, 1))
		*p = *p;
	else
		faulted = 1;
	sigaction(SIGSEGV, &old, NULL);
	return faulted;
}

static void check(const char *m)
{
	for (size_t i = 0; i < NP; i++)
		assert_true(t_check(m + i * TPAGE, (uint32_t)(i % NCONT) + 1));
}

/* Merged first, then read-only, then read-write again. */
static void test_merged_then_readonly(void **state)
{
	char *m = t_map(NP);

	(void)state;
	for (size_t i = 0; i < NP; i++)
		t_fill(m + i * TPAGE, (uint32_t)(i % NCONT) + 1);
	assert_int_equal(samepage_madvise(m, NP * TPAGE, SAMEPAGE_MERGEABLE), 0);
	assert_true(et_wait_merged(NCONT, NP - NCONT, ET_PATIENCE_MS));
	assert_int_equal(mprotect(m, NP * TPAGE, PROT_READ), 0);
	assert_int_equal(samepage_wait_scans(2, ET_PATIENCE_MS), 0);
	check(m);
	assert_true(write_faults(m + 5 * TPAGE));
	assert_true(et_wait_merged(NCONT, NP - NCONT, 1));
	/* run=2 over read-only merged pages: unmerged, still read-only */
	assert_int_equal(samepage_set("run", "2"), 0);
	assert_true(et_wait_merged(0, 0, 1));
	check(m);
	assert_true(et_maps_are(m, NP * TPAGE, "r--p", 1));
	assert_true(write_faults(m + 5 * TPAGE));
	assert_int_equal(samepage_set("run", "1"), 0);
	assert_true(et_wait_merged(NCONT, NP - NCONT, ET_PATIENCE_MS));
	assert_int_equal(mprotect(m, NP * TPAGE, PROT_READ | PROT_WRITE), 0);
	m[5 * TPAGE] = 'w';
	assert_int_equal(m[5 * TPAGE], 'w');
	assert_true(t_check(m + 9 * TPAGE, 9 % NCONT + 1));
	assert_true(et_wait_merged(NCONT, NP - NCONT - 1, ET_PATIENCE_MS));
	assert_int_equal(samepage_munmap(m, NP * TPAGE), 0);
}

/* Read-only before merging: merges must not make it writable. */
static void test_readonly_then_merged(void **state)
{
	char *m = t_map(NP);

	(void)state;
	for (size_t i = 0; i < NP; i++)
		t_fill(m + i * TPAGE, (uint32_t)(i % NCONT) + 1);
	assert_int_equal(samepage_madvise(m, NP * TPAGE, SAMEPAGE_MERGEABLE), 0);
	assert_int_equal(mprotect(m, NP * TPAGE, PROT_READ), 0);
	assert_true(et_wait_merged(NCONT, NP - NCONT, ET_PATIENCE_MS));
	check(m);
	if (!et_maps_are(m, NP * TPAGE, "r--p", 0))
		printf("  merged read-only pages are mapped writable now\n");
	assert_true(et_maps_are(m, NP * TPAGE, "r--p", 0));
	assert_true(write_faults(m + 7 * TPAGE));

	/* unregistering restores plain memory, still read-only */
	assert_int_equal(samepage_madvise(m, NP * TPAGE, SAMEPAGE_UNMERGEABLE), 0);
	check(m);
	if (!et_maps_are(m, NP * TPAGE, "r--p", 1))
		printf("  restored read-only pages are mapped writable now\n");
	assert_true(et_maps_are(m, NP * TPAGE, "r--p", 1));
	assert_true(write_faults(m + 7 * TPAGE));

	assert_int_equal(mprotect(m, NP * TPAGE, PROT_READ | PROT_WRITE), 0);
	m[7 * TPAGE] = 1;
	assert_int_equal(m[7 * TPAGE], 1);
	assert_int_equal(munmap(m, NP * TPAGE), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merged_then_readonly),
		cmocka_unit_test(test_readonly_then_merged),
	};
	int rc = et_start();

	if (rc)
		return rc;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
