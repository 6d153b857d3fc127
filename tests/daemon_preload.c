/* SPDX-License-Identifier: MIT */
/*
 * daemon_preload.c - unmodified programs on samepaged through
 * libsamepage-preload.so (LD_PRELOAD).
 *
 * tests/fixtures/preload_prog.c knows nothing of samepage: it maps pages
 * with duplicate contents and calls madvise(MADV_MERGEABLE) or
 * prctl(PR_SET_MEMORY_MERGE), then munmaps, mremaps, mprotects, drops
 * (MADV_DONTNEED, MADV_FREE), maps over (MAP_FIXED), forks and execs, and
 * checks every page it can read after each step. The daemon's counters
 * must show the merges, and the program's content must always be right.
 *
 *   madvise     MADV_MERGEABLE regions merge (within the process and with a
 *               second one); every unregistering call keeps the content;
 *               UFFDIO_REGISTER on registered memory is EBUSY with a line
 *   merge_any   PR_SET_MEMORY_MERGE: memory mapped before and after merges,
 *               PR_GET_MEMORY_MERGE says 1, none of the library's own
 *               memory is registered (in a sanitizer build, none of the
 *               sanitizer runtime's either: its shadow, its heap);
 *               PR_SET_MEMORY_MERGE 0 unmerges all
 *   fork_exec   the kernel's rules: merge-any and MADV_MERGEABLE regions are
 *               registered in a fork child (which reads zeros after
 *               MADV_DONTNEED on an inherited merged page), merge-any
 *               survives execve (also with an environment of the program's
 *               own making), MADV_MERGEABLE does not
 *   no_daemon   no samepaged: the program runs unmerged, one line on
 *               stderr, exit 0; SAMEPAGE_REQUIRE=1 makes madvise fail
 *               (EAGAIN) and a merge-any start exit with status 4
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemontest.h"
#include "preloadtest.h"
#include "testlib.h"

#define DOM "domain user:0"

static void start_daemon(struct dt_daemon *d)
{
	dt_start(d, NULL);
	assert_int_equal(dt_set(d, "", "pages_to_scan", "5000"), 0);
	assert_int_equal(dt_set(d, "", "sleep_millisecs", "5"), 0);
}

#define ok(reply) ok_(&(reply)[0], __LINE__)
static struct pt_prog *last_prog;
static void ok_(const char *reply, int line)
{
	if (strncmp(reply, "ok", 2)) {
		pt_show_err(last_prog); /* a sanitizer's report, ... */
		fail_msg("line %d: the program answered \"%s\" to \"%s\"", line, reply,
			 last_prog ? last_prog->last : "?");
	}
}

/* Waits for n more full scans of the domain (the counters to settle). */
static void scans(struct dt_daemon *d, int n)
{
	long long now = dt_value(dt_status(d), DOM, "full_scans");

	dt_wait(d, DOM, "full_scans", now + n);
}

static void test_madvise(void **state)
{
	char sock[160];
	const char *env[] = {sock, "SAMEPAGE_SWEEP_MS=50", "SAMEPAGE_MERGE_ANY=", NULL};
	struct dt_daemon d;
	struct pt_prog a, b;
	long long sharing;

	(void)state;
	start_daemon(&d);
	snprintf(sock, sizeof(sock), "SAMEPAGE_DAEMON=%s", d.sock);
	pt_start(&a, env);
	pt_start(&b, env);
	/* a: 512 pages of 64 contents, and 256 more of the same 64; b: 256 */
	ok(pt_cmd((last_prog = &a), "map 0 512 64 1000"));
	ok(pt_cmd((last_prog = &a), "map 1 256 64 1000"));
	ok(pt_cmd((last_prog = &b), "map 0 256 64 1000"));
	ok(pt_cmd((last_prog = &a), "adv 0"));
	ok(pt_cmd((last_prog = &a), "adv 1"));
	ok(pt_cmd((last_prog = &b), "adv 0"));
	/* one KSM page per content, every other mapping a sharer */
	sharing = dt_wait(&d, DOM, "pages_sharing", 1024 - 64);
	printf("  2 processes, 1024 pages of 64 contents: pages_sharing %lld\n", sharing);
	assert_int_equal(sharing, 1024 - 64);
	assert_int_equal(dt_value(dt_status(&d), DOM, "pages_shared"), 64);
	ok(pt_cmd((last_prog = &a), "check 0"));
	ok(pt_cmd((last_prog = &a), "check 1"));
	ok(pt_cmd((last_prog = &b), "check 0"));

	/* every call that touches registered memory, content checked after */
	ok(pt_cmd((last_prog = &a), "write 0 5 99999"));
	ok(pt_cmd((last_prog = &a), "check 0"));
	ok(pt_cmd((last_prog = &a), "dontneed 0 10 4")); /* merged pages dropped: zeros */
	ok(pt_cmd((last_prog = &a), "check 0"));
	ok(pt_cmd((last_prog = &a), "free 0 20 4")); /* MADV_FREE on merged pages: no EINVAL */
	ok(pt_cmd((last_prog = &a), "check 0"));
	ok(pt_cmd((last_prog = &a), "munmap 0 100 50"));
	ok(pt_cmd((last_prog = &a), "check 0"));
	ok(pt_cmd((last_prog = &a), "mprotect 0 200 10 none"));
	ok(pt_cmd((last_prog = &a), "check 0"));
	ok(pt_cmd((last_prog = &a), "mprotect 0 200 10 rw"));
	ok(pt_cmd((last_prog = &a), "mprotect 0 220 10 r"));
	ok(pt_cmd((last_prog = &a), "check 0"));
	ok(pt_cmd((last_prog = &a), "mprotect 0 220 10 rw"));
	ok(pt_cmd((last_prog = &a), "fixed 0 300 8"));
	ok(pt_cmd((last_prog = &a), "check 0"));
	ok(pt_cmd((last_prog = &a), "mremap 1 512")); /* grown (maybe moved): still mergeable */
	ok(pt_cmd((last_prog = &a), "check 1"));
	scans(&d, 3);
	ok(pt_cmd((last_prog = &a), "check 0"));
	ok(pt_cmd((last_prog = &a), "check 1"));
	ok(pt_cmd((last_prog = &a), "write 1 0 12345"));
	ok(pt_cmd((last_prog = &a), "check 1"));
	/* the region moved by mremap merges again: its 256 old pages */
	assert_true(dt_value(dt_status(&d), DOM, "pages_sharing") >= 512);

	/* read-only and back, page after page, while the daemon merges
	 * them: a write to a read-only page always faults */
	ok(pt_cmd((last_prog = &b), "map 2 512 4 7000"));
	ok(pt_cmd((last_prog = &b), "adv 2"));
	ok(pt_cmd((last_prog = &b), "protstress 2 3000"));
	ok(pt_cmd((last_prog = &b), "check 2"));
	/* threads writing while the daemon merges their neighbours */
	ok(pt_cmd((last_prog = &b), "map 1 2048 16 5000"));
	ok(pt_cmd((last_prog = &b), "adv 1"));
	ok(pt_cmd((last_prog = &b), "hammer 1 2000 3"));
	ok(pt_cmd((last_prog = &b), "check 1"));

	/* a program's own userfaultfd: refused on registered memory (EBUSY,
	 * one line), and registered memory refused to madvise (EBUSY) */
	assert_string_equal(pt_cmd((last_prog = &a), "uffd 1"), "err 16");
	assert_non_null(strstr(a.errtext, "UFFDIO_REGISTER"));
	assert_string_equal(pt_cmd((last_prog = &a), "uffdfirst 2 16"), "err 16");
	assert_non_null(strstr(a.errtext, "another userfaultfd"));

	/* part of region 0 is unmapped: ENOMEM, as the kernel says, after
	 * the rest was unmerged */
	assert_string_equal(pt_cmd((last_prog = &a), "unadv 0"), "err 12");
	ok(pt_cmd((last_prog = &a), "check 0"));
	ok(pt_cmd((last_prog = &a), "unadv 1"));
	ok(pt_cmd((last_prog = &a), "check 1"));
	ok(pt_cmd((last_prog = &b), "check 0"));
	assert_int_equal(pt_end(&a), 0);
	assert_int_equal(pt_end(&b), 0);
	printf("  stderr of a:\n%s", a.errtext);
	assert_int_equal(pt_lines(b.errtext), 0);
	assert_int_equal(dt_wait(&d, DOM, "clients", DT_EQ(0)), 0);
	assert_int_equal(dt_wait(&d, DOM, "pages_shared", DT_EQ(0)), 0);
	assert_true(dt_stop(&d));
	dt_cleanup(&d);
}

static void test_merge_any(void **state)
{
	char sock[160];
	const char *env[] = {sock, "SAMEPAGE_SWEEP_MS=50", "SAMEPAGE_MERGE_ANY=", NULL};
	struct dt_daemon d;
	struct pt_prog a;
	const char *r;
	long long sharing;
	long regs[3];

	(void)state;
	start_daemon(&d);
	snprintf(sock, sizeof(sock), "SAMEPAGE_DAEMON=%s", d.sock);
	pt_start(&a, env);
	assert_string_equal(pt_cmd((last_prog = &a), "getmerge"), "ok 0");
	ok(pt_cmd((last_prog = &a), "map 0 512 64 2000")); /* present at the prctl */
	ok(pt_cmd((last_prog = &a), "prctl 1"));
	assert_string_equal(pt_cmd((last_prog = &a), "getmerge"), "ok 1");
	ok(pt_cmd((last_prog = &a), "map 1 256 64 2000")); /* mapped after it */
	sharing = dt_wait(&d, DOM, "pages_sharing", 768 - 64);
	printf("  merge-any: pages_sharing %lld (at least %d)\n", sharing, 768 - 64);
	assert_true(sharing >= 768 - 64);
	ok(pt_cmd((last_prog = &a), "check 0"));
	ok(pt_cmd((last_prog = &a), "check 1"));
	/* none of the library's memory registered; the heap is (in a
	 * sanitizer build malloc is ASan's, whose memory is never registered:
	 * no [heap], or none of it registered, and selfcheck checks a block) */
	r = pt_cmd((last_prog = &a), "selfcheck");
	printf("  selfcheck: %s\n", r);
	ok(r);
#ifdef SP_SANITIZED
	assert_true(atol(r + 3) <= 0);
#else
	assert_true(atol(r + 3) > 0);
#endif
	assert_true(atoi(strchr(r + 3, ' ') + 1) >= 3); /* event, agent, sweeper */
	ok(pt_cmd((last_prog = &a), "write 1 3 31337"));
	ok(pt_cmd((last_prog = &a), "munmap 0 0 16"));
	ok(pt_cmd((last_prog = &a), "mremap 1 300"));
	ok(pt_cmd((last_prog = &a), "check 0"));
	ok(pt_cmd((last_prog = &a), "check 1"));
	/* threads writing while the daemon merges their neighbours; glibc's
	 * malloc mapping, unmapping and trimming on its own (calloc must
	 * read zeros); the program closing every descriptor */
	ok(pt_cmd((last_prog = &a), "map 2 2048 16 5000"));
	ok(pt_cmd((last_prog = &a), "hammer 2 2000 3"));
	ok(pt_cmd((last_prog = &a), "check 2"));
	ok(pt_cmd((last_prog = &a), "mallocstress 3000 3"));
	/* closed over and over for 1.5 s while the sweeper reads
	 * /proc/self/maps every 50 ms: none of the library's descriptors,
	 * those it holds or those it is opening, may be taken (a truncated
	 * read of the maps made every merged range look unmapped) */
	for (int i = 0; i < 3; i++) {
		r = pt_cmd((last_prog = &a), "regpages %d", i);
		ok(r);
		regs[i] = atol(r + 3);
	}
	ok(pt_cmd((last_prog = &a), "closeall 1500"));
	for (int i = 0; i < 3; i++) {
		r = pt_cmd((last_prog = &a), "regpages %d", i);
		printf("  region %d: %ld pages registered before the closes, %s after\n", i, regs[i], r);
		assert_int_equal(atol(r + 3), regs[i]);
	}
	assert_true(regs[0] >= 512 - 16); /* (glibc may map the unmapped 16 again) */
	assert_int_equal(regs[1], 300);
	assert_int_equal(regs[2], 2048);
	ok(pt_cmd((last_prog = &a), "map 3 256 64 2000"));
	sharing = dt_value(dt_status(&d), DOM, "pages_sharing");
	assert_true(dt_wait(&d, DOM, "pages_sharing", sharing + 256) >= sharing + 256);
	ok(pt_cmd((last_prog = &a), "check 3"));
	ok(pt_cmd((last_prog = &a), "fdcheck"));
	/* PR_SET_MEMORY_MERGE 0: everything unmerged, as the kernel does */
	ok(pt_cmd((last_prog = &a), "prctl 0"));
	assert_string_equal(pt_cmd((last_prog = &a), "getmerge"), "ok 0");
	assert_int_equal(dt_wait(&d, DOM, "pages_sharing", DT_EQ(0)), 0);
	ok(pt_cmd((last_prog = &a), "check 0"));
	ok(pt_cmd((last_prog = &a), "check 1"));
	ok(pt_cmd((last_prog = &a), "check 2"));
	ok(pt_cmd((last_prog = &a), "check 3"));
	assert_int_equal(pt_end(&a), 0);
	assert_int_equal(pt_lines(a.errtext), 0);
	assert_int_equal(dt_wait(&d, DOM, "pages_shared", DT_EQ(0)), 0);
	assert_true(dt_stop(&d));
	dt_cleanup(&d);
}

static void test_fork_exec(void **state)
{
	char sock[160], block[32];
	const char *env[] = {sock, "SAMEPAGE_SWEEP_MS=50", "SAMEPAGE_MERGE_ANY=1", NULL};
	struct dt_daemon d;
	struct pt_prog a;
	const char *r;
	int child;

	(void)state;
	start_daemon(&d);
	snprintf(sock, sizeof(sock), "SAMEPAGE_DAEMON=%s", d.sock);
	pt_start(&a, env); /* merge-any inherited through exec (env) */
	assert_string_equal(pt_cmd((last_prog = &a), "getmerge"), "ok 1");
	ok(pt_cmd((last_prog = &a), "map 0 256 32 3000"));  /* merges */
	ok(pt_cmd((last_prog = &a), "map 2 128 128 5000")); /* unique: stays anonymous */
	dt_wait(&d, DOM, "pages_sharing", 256 - 32);
	/* fork: the child's anonymous memory is registered again (merge-any
	 * is inherited); its inherited merged pages stay merged, and one
	 * dropped with MADV_DONTNEED reads zeros */
	r = pt_cmd((last_prog = &a), "fork 0");
	ok(r);
	child = atoi(r + 3);
	snprintf(block, sizeof(block), "client %d", child);
	assert_true(dt_wait(&d, block, "registered_pages", 128) >= 128);
	ok(pt_cmd((last_prog = &a), "release"));
	/* exec keeps merge-any, with environ or an empty environment */
	assert_string_equal(pt_cmd((last_prog = &a), "exec environ"), "ok 1");
	assert_string_equal(pt_cmd((last_prog = &a), "exec env"), "ok 1");
	/* LD_PRELOAD already naming us: the program's other entries kept */
	assert_string_equal(pt_cmd((last_prog = &a), "exec preload"), "ok 11");
	ok(pt_cmd((last_prog = &a), "prctl 0"));
	assert_string_equal(pt_cmd((last_prog = &a), "exec environ"), "ok 0");
	assert_string_equal(pt_cmd((last_prog = &a), "exec env"), "ok 0");
	/* MADV_MERGEABLE: kept in a fork child, gone after exec */
	ok(pt_cmd((last_prog = &a), "map 1 128 128 4000"));
	ok(pt_cmd((last_prog = &a), "adv 1"));
	r = pt_cmd((last_prog = &a), "fork 1");
	ok(r);
	child = atoi(r + 3);
	snprintf(block, sizeof(block), "client %d", child);
	assert_true(dt_wait(&d, block, "registered_pages", 128) >= 128);
	ok(pt_cmd((last_prog = &a), "release"));
	ok(pt_cmd((last_prog = &a), "check 0"));
	ok(pt_cmd((last_prog = &a), "check 1"));
	assert_int_equal(pt_end(&a), 0);
	printf("  stderr:\n%s", a.errtext);
	assert_int_equal(pt_lines(a.errtext), 0);
	assert_int_equal(dt_wait(&d, DOM, "clients", DT_EQ(0)), 0);
	assert_true(dt_stop(&d));
	dt_cleanup(&d);
}

static void test_no_daemon(void **state)
{
	const char *env[] = {"SAMEPAGE_DAEMON=/nonexistent/samepaged.sock", "SAMEPAGE_MERGE_ANY=", NULL};
	const char *env_req[] = {"SAMEPAGE_DAEMON=/nonexistent/samepaged.sock", "SAMEPAGE_REQUIRE=1",
				 "SAMEPAGE_MERGE_ANY=", NULL};
	const char *env_req_any[] = {"SAMEPAGE_DAEMON=/nonexistent/samepaged.sock", "SAMEPAGE_REQUIRE=1",
				     "SAMEPAGE_MERGE_ANY=1", NULL};
	struct pt_prog a;

	(void)state;
	pt_start(&a, env);
	ok(pt_cmd((last_prog = &a), "map 0 64 8 1"));
	ok(pt_cmd((last_prog = &a), "adv 0"));
	ok(pt_cmd((last_prog = &a), "map 1 64 8 1"));
	ok(pt_cmd((last_prog = &a), "adv 1"));
	ok(pt_cmd((last_prog = &a), "prctl 1"));
	ok(pt_cmd((last_prog = &a), "check 0"));
	ok(pt_cmd((last_prog = &a), "munmap 0 0 8"));
	ok(pt_cmd((last_prog = &a), "fork 1"));
	ok(pt_cmd((last_prog = &a), "release"));
	assert_int_equal(pt_end(&a), 0);
	printf("  stderr: %s", a.errtext);
	assert_int_equal(pt_lines(a.errtext), 1);
	assert_non_null(strstr(a.errtext, "runs unmerged"));
	assert_non_null(strstr(a.errtext, "/nonexistent/samepaged.sock"));

	pt_start(&a, env_req);
	ok(pt_cmd((last_prog = &a), "map 0 64 8 1"));
	assert_string_equal(pt_cmd((last_prog = &a), "adv 0"), "err 11"); /* EAGAIN */
	ok(pt_cmd((last_prog = &a), "check 0"));
	assert_int_equal(pt_end(&a), 0);
	assert_int_equal(pt_lines(a.errtext), 1);

	pt_start(&a, env_req_any);
	assert_int_equal(pt_end(&a), 4);
	assert_int_equal(pt_lines(a.errtext), 1);
	assert_non_null(strstr(a.errtext, "SAMEPAGE_REQUIRE=1"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_daemon),
		cmocka_unit_test(test_madvise),
		cmocka_unit_test(test_merge_any),
		cmocka_unit_test(test_fork_exec),
	};

	if (geteuid()) {
		printf("daemon tests need root (the daemon reads other processes' memory)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
