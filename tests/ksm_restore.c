/* SPDX-License-Identifier: MIT */
/*
 * ksm_restore.c - a test that changes the kernel's KSM knobs puts them back
 * when it is killed, not only when it exits: a child saves the knobs
 * (t_ksm_save), changes four of them and waits; it is then killed with
 * SIGTERM (ctest's timeout), SIGINT (^C), SIGHUP (a closed terminal) and
 * SIGQUIT in turn, and every knob must read as before. The child must
 * still die of that signal. Needs root and a writable /sys/kernel/mm/ksm
 * (skipped otherwise).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testlib.h"

static const char *const changed[] = {"pages_to_scan", "sleep_millisecs", "use_zero_pages", "smart_scan"};
#define NCHANGED (sizeof(changed) / sizeof(changed[0]))

static void killed_by(int sig)
{
	long before[NCHANGED], during[NCHANGED];
	int ready[2], st;
	char c;
	pid_t pid;

	for (size_t i = 0; i < NCHANGED; i++)
		before[i] = t_ksm_get(changed[i]);
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(ready[0]);
		t_ksm_save();
		t_ksm_set("pages_to_scan", before[0] == 4321 ? "4322" : "4321");
		t_ksm_set("sleep_millisecs", before[1] == 7 ? "8" : "7");
		t_ksm_set("use_zero_pages", before[2] ? "0" : "1");
		t_ksm_set("smart_scan", before[3] ? "0" : "1");
		if (write(ready[1], "r", 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	for (size_t i = 0; i < NCHANGED; i++)
		during[i] = t_ksm_get(changed[i]);
	assert_int_equal(kill(pid, sig), 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), sig);
	for (size_t i = 0; i < NCHANGED; i++) {
		long now = t_ksm_get(changed[i]);

		printf("  %-16s before %ld, in the child %ld, after %s %ld\n", changed[i], before[i], during[i],
		       strsignal(sig), now);
		assert_true(during[i] != before[i]);
		assert_int_equal(now, before[i]);
	}
}

static void restored_on_sigterm(void **state)
{
	(void)state;
	killed_by(SIGTERM);
}

static void restored_on_sigint(void **state)
{
	(void)state;
	killed_by(SIGINT);
}

static void restored_on_sighup(void **state)
{
	(void)state;
	killed_by(SIGHUP);
}

static void restored_on_sigquit(void **state)
{
	(void)state;
	killed_by(SIGQUIT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(restored_on_sigterm),
		cmocka_unit_test(restored_on_sigint),
		cmocka_unit_test(restored_on_sighup),
		cmocka_unit_test(restored_on_sigquit),
	};

	if (!t_ksm_available()) {
		printf("the kernel's KSM is not writable here (not root, or no KSM): skipped\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
