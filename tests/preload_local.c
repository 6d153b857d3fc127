/* SPDX-License-Identifier: MIT */
/*
 * preload_local.c - an unmodified program on the in-process engine through
 * libsamepage-preload.so (no SAMEPAGE_DAEMON; `samepage run --engine
 * --local`): its scanner thread merges the program's own pages.
 *
 *   madvise    MADV_MERGEABLE merges; munmap, mremap, mprotect, MADV_FREE,
 *              MADV_DONTNEED and MAP_FIXED keep every page right; threads
 *              writing while the engine merges never read a wrong byte
 *   merge_any  PR_SET_MEMORY_MERGE: none of the library's memory (its
 *              threads' stacks, the arena, libraries' data) registered; a
 *              fork child gets plain copies of the merged pages (zeros
 *              after MADV_DONTNEED), exec keeps the setting
 *   run        `samepage run --engine --local` reports the engine serving;
 *              without samepaged CMD runs unmerged, or (--require) not at
 *              all; bad option combinations are usage errors
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "preloadtest.h"
#include "testlib.h"

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

static const char *const env[] = {"SAMEPAGE_DAEMON=",
				  "SAMEPAGE_MERGE_ANY=",
				  "SAMEPAGE_RUN=1",
				  "SAMEPAGE_PAGES_TO_SCAN=5000",
				  "SAMEPAGE_SLEEP_MILLISECS=5",
				  "SAMEPAGE_SWEEP_MS=50",
				  NULL};

/* pages_sharing of the program's engine, once it is at least want */
static long long sharing(struct pt_prog *p, long long want)
{
	uint64_t deadline = t_now_ms() + PT_PATIENCE_MS;
	long long v = -1;

	while (t_now_ms() < deadline) {
		const char *r = pt_cmd(p, "stats");

		if (strncmp(r, "ok ", 3))
			fail_msg("stats: %s", r);
		v = atoll(r + 3);
		if (v >= want)
			break;
		usleep(20000);
	}
	return v;
}

static void test_madvise(void **state)
{
	struct pt_prog a;
	long long v;

	(void)state;
	pt_start(&a, env);
	last_prog = &a;
	ok(pt_cmd(&a, "map 0 512 64 1000"));
	ok(pt_cmd(&a, "map 1 256 64 1000"));
	ok(pt_cmd(&a, "adv 0"));
	if (strstr(a.errtext, "runs unmerged")) { /* no userfaultfd for us here */
		printf("  %s", a.errtext);
		pt_end(&a);
		skip();
	}
	ok(pt_cmd(&a, "adv 1"));
	v = sharing(&a, 768 - 64);
	printf("  in-process: pages_sharing %lld\n", v);
	assert_int_equal(v, 768 - 64);
	ok(pt_cmd(&a, "check 0"));
	ok(pt_cmd(&a, "check 1"));
	ok(pt_cmd(&a, "dontneed 0 10 4"));
	ok(pt_cmd(&a, "free 0 20 4"));
	ok(pt_cmd(&a, "munmap 0 100 50"));
	ok(pt_cmd(&a, "mprotect 0 200 10 none"));
	ok(pt_cmd(&a, "check 0"));
	ok(pt_cmd(&a, "mprotect 0 200 10 rw"));
	ok(pt_cmd(&a, "fixed 0 300 8"));
	ok(pt_cmd(&a, "mremap 1 400"));
	ok(pt_cmd(&a, "check 0"));
	ok(pt_cmd(&a, "check 1"));
	/* writers racing the merges of their neighbours */
	ok(pt_cmd(&a, "map 2 2048 16 5000"));
	ok(pt_cmd(&a, "adv 2"));
	ok(pt_cmd(&a, "hammer 2 2000 2"));
	ok(pt_cmd(&a, "check 2"));
	ok(pt_cmd(&a, "check 0"));
	ok(pt_cmd(&a, "check 1"));
	assert_int_equal(pt_end(&a), 0);
	assert_int_equal(pt_lines(a.errtext), 0);
}

static void test_merge_any(void **state)
{
	struct pt_prog a;
	const char *r;

	(void)state;
	pt_start(&a, env);
	last_prog = &a;
	ok(pt_cmd(&a, "map 0 512 64 2000"));
	ok(pt_cmd(&a, "prctl 1"));
	ok(pt_cmd(&a, "map 1 256 64 2000"));
	assert_true(sharing(&a, 768 - 64) >= 768 - 64);
	r = pt_cmd(&a, "selfcheck");
	printf("  selfcheck: %s\n", r);
	ok(r);
	assert_true(atoi(strchr(r + 3, ' ') + 1) >= 3); /* scanner, event, sweeper */
	ok(pt_cmd(&a, "fork 0"));
	ok(pt_cmd(&a, "release"));
	assert_string_equal(pt_cmd(&a, "exec env"), "ok 1");
	ok(pt_cmd(&a, "hammer 1 1000 3"));
	ok(pt_cmd(&a, "check 0"));
	ok(pt_cmd(&a, "check 1"));
	assert_int_equal(pt_end(&a), 0);
	assert_int_equal(pt_lines(a.errtext), 0);
}

/* `samepage run --engine` puts its library first in LD_PRELOAD, ahead of
 * anything there: in a sanitizer build, ahead of ASan's runtime, which then
 * refuses to start. The runtime's check of its place is turned off for
 * these commands: preload_prog is instrumented, so the runtime is started
 * first anyway (by the program's .preinit_array) and comes before libc
 * (the program's first dependency); only its interceptors of the
 * library's exports (mmap, prctl, ...) are passed over. */
#ifdef SP_SANITIZED
#define RUN_ENV "ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0\" "
#else
#define RUN_ENV ""
#endif

/* `samepage run --engine --local -v`: the library's report */
static void test_run(void **state)
{
	char cmd[1024];
	FILE *f;
	char line[512];
	int found = 0;

	(void)state;
	snprintf(cmd, sizeof(cmd),
		 RUN_ENV "SAMEPAGE_PRELOAD=%s %s run --engine --local -v -- %s --getmerge 2>&1; echo rc=$?",
		 SP_PRELOAD_SO, SP_SAMEPAGE, SP_PRELOAD_PROG);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		printf("  %s", line);
		found |= strstr(line, "merged by its in-process engine") != NULL;
		if (!strncmp(line, "rc=", 3))
			assert_int_equal(atoi(line + 3), 1); /* PR_GET_MEMORY_MERGE said 1 */
	}
	pclose(f);
	assert_true(found);
}

/* `samepage run --engine` without a daemon: CMD runs unmerged (one line),
 * or with --require does not (status 4); options checked (status 2) */
static int run_status(const char *args, char *out, size_t len)
{
	char cmd[1024];
	size_t got;
	FILE *f;
	int st;

	snprintf(cmd, sizeof(cmd), RUN_ENV "SAMEPAGE_PRELOAD=%s %s run %s 2>&1", SP_PRELOAD_SO, SP_SAMEPAGE, args);
	f = popen(cmd, "r");
	assert_non_null(f);
	got = fread(out, 1, len - 1, f);
	out[got] = 0;
	st = pclose(f);
	printf("  samepage run %s: status %d\n%s", args, WEXITSTATUS(st), out);
	return WEXITSTATUS(st);
}

static void test_run_no_daemon(void **state)
{
	char args[600], out[4096];

	(void)state;
	snprintf(args, sizeof(args), "--engine --socket /nonexistent/sock -- %s --getmerge", SP_PRELOAD_PROG);
	assert_int_equal(run_status(args, out, sizeof(out)), 1); /* CMD ran: PR_GET_MEMORY_MERGE 1 */
	assert_int_equal(pt_lines(out), 1);
	assert_non_null(strstr(out, "runs unmerged"));
	snprintf(args, sizeof(args), "--engine --require --socket /nonexistent/sock -- %s --getmerge", SP_PRELOAD_PROG);
	assert_int_equal(run_status(args, out, sizeof(out)), 4);
	assert_non_null(strstr(out, "SAMEPAGE_REQUIRE=1"));
	assert_int_equal(run_status("--socket /x -- true", out, sizeof(out)), 2);
	assert_int_equal(run_status("--engine --ksmd -- true", out, sizeof(out)), 2);
	assert_int_equal(run_status("--engine --local --domain x -- true", out, sizeof(out)), 2);
	assert_int_equal(run_status("--engine -- /nonexistent/cmd", out, sizeof(out)), 127);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_madvise),
		cmocka_unit_test(test_merge_any),
		cmocka_unit_test(test_run),
		cmocka_unit_test(test_run_no_daemon),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
