/* SPDX-License-Identifier: MIT */
/*
 * kernel_readers.c - the readers of src/kernel/ (KSM sysfs, ksm_stat, /proc
 * stat and status, meminfo, vmstat, NUMA, isolated CPUs, mounts) on the
 * recorded trees in tests/fixtures/doctor/, and the knob checker against
 * the kernel's ranges; then hostile trees made in a temporary directory
 * (issue 15): FIFOs and directories in place of files, values that are not
 * what the kernel writes, a comm holding newlines, counters at LLONG_MAX.
 * No root, no kernel state touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kernel/cpulist.h"
#include "kernel/host.h"
#include "kernel/ksm.h"
#include "kernel/ksmstat.h"
#include "kernel/procs.h"
#include "kernel/readfile.h"

static char fix[1024];

/* "<tests>/fixtures/doctor/<name>/<sub>" */
static const char *tree(const char *name, const char *sub)
{
	static char buf[4][1200];
	static int i;
	char *b = buf[i++ % 4];

	snprintf(b, sizeof(buf[0]), "%s/%s/%s", fix, name, sub);
	return b;
}

static void test_ksm_snapshot(void **state)
{
	struct sp_ksm k;

	(void)state;
	assert_int_equal(sp_ksm_read(tree("healthy", "sys"), &k), 0);
	for (int i = 0; i < SP_KNOB_COUNT; i++)
		assert_int_equal(k.present[i], !!(sp_knob_table[i].flags & SP_KF_KERNEL));
	assert_int_equal(sp_ksm_get(&k, "pages_sharing", -1), 16320);
	assert_int_equal(sp_ksm_get(&k, "run", -1), 1);
	assert_int_equal(sp_ksm_get(&k, "advisor_mode", -1), 0);
	assert_int_equal(sp_ksm_get(&k, "no_such", -7), -7);
	assert_int_equal(k.nextra, 0);
	assert_int_equal(sp_ksm_read(tree("no-ksm", "sys"), &k), -ENOENT);
}

static void knob_is(const char *name, const char *value, int err, const char *canon)
{
	const char *why;
	char out[48] = "";

	assert_int_equal(sp_knob_check(name, value, out, sizeof(out), &why), err);
	if (!err)
		assert_string_equal(out, canon);
}

/* Each rule as Linux 6.18 answered it on a running kernel (tests/ksm_knobs.c
 * asks the kernel again where there is one). */
static void test_knob_ranges(void **state)
{
	(void)state;
	knob_is("run", "2", 0, "2");
	knob_is("run", "3", -EINVAL, NULL);
	knob_is("run", "-1", -EINVAL, NULL);
	knob_is("run", "+0\n", 0, "0");
	knob_is("run", "on", -EINVAL, NULL);
	knob_is("max_page_sharing", "1", -EINVAL, NULL);
	knob_is("max_page_sharing", "2", 0, "2");
	knob_is("max_page_sharing", "+300", 0, "300");
	knob_is("max_page_sharing", "-5", -EINVAL, NULL);
	knob_is("max_page_sharing", "-+5", -EINVAL, NULL);
	knob_is("max_page_sharing", "0x100", -EINVAL, NULL);
	knob_is("max_page_sharing", "2147483647", 0, "2147483647");
	/* kstrtoint's own error: the store passes it on */
	knob_is("max_page_sharing", "2147483648", -ERANGE, NULL);
	knob_is("max_page_sharing", "-2147483649", -ERANGE, NULL);
	knob_is("max_page_sharing", "99999999999999999999", -ERANGE, NULL);
	knob_is("pages_to_scan", "0", 0, "0");
	knob_is("pages_to_scan", "+100\n", 0, "100");
	knob_is("pages_to_scan", "010", 0, "10");
	knob_is("pages_to_scan", "4294967295", 0, "4294967295");
	/* kstrtouint's ERANGE, turned into EINVAL by the store */
	knob_is("pages_to_scan", "4294967296", -EINVAL, NULL);
	knob_is("pages_to_scan", "99999999999999999999999", -EINVAL, NULL);
	knob_is("pages_to_scan", "0x10", -EINVAL, NULL);
	knob_is("pages_to_scan", "100\n\n", -EINVAL, NULL);
	knob_is("pages_to_scan", " 100", -EINVAL, NULL);
	knob_is("pages_to_scan", "100 ", -EINVAL, NULL);
	knob_is("pages_to_scan", "1e3", -EINVAL, NULL);
	knob_is("pages_to_scan", "+-1", -EINVAL, NULL);
	knob_is("pages_to_scan", "\n", -EINVAL, NULL);
	knob_is("pages_to_scan", "12abc", -EINVAL, NULL);
	knob_is("pages_to_scan", "", -EINVAL, NULL);
	knob_is("sleep_millisecs", "4294967296", -EINVAL, NULL);
	knob_is("merge_across_nodes", "2", -EINVAL, NULL);
	knob_is("merge_across_nodes", "+1", 0, "1");
	knob_is("merge_across_nodes", "1\n", 0, "1");
	knob_is("merge_across_nodes", "on", -EINVAL, NULL);
	knob_is("merge_across_nodes", "18446744073709551616", -ERANGE, NULL); /* kstrtoul's */
	/* kstrtobool: the first character, or 'o' and the second */
	knob_is("use_zero_pages", "yes", 0, "1");
	knob_is("use_zero_pages", "off", 0, "0");
	knob_is("use_zero_pages", "ON", 0, "1");
	knob_is("use_zero_pages", "of", 0, "0");
	knob_is("use_zero_pages", "true", 0, "1");
	knob_is("use_zero_pages", "f", 0, "0");
	knob_is("use_zero_pages", "enable", 0, "1");
	knob_is("use_zero_pages", "disable", 0, "0");
	knob_is("use_zero_pages", "10", 0, "1");
	knob_is("use_zero_pages", "1\n", 0, "1");
	knob_is("use_zero_pages", "o", -EINVAL, NULL);
	knob_is("use_zero_pages", "oxx", -EINVAL, NULL);
	knob_is("use_zero_pages", "2", -EINVAL, NULL);
	knob_is("use_zero_pages", " 1", -EINVAL, NULL);
	knob_is("smart_scan", "maybe", -EINVAL, NULL);
	/* sysfs_streq: one trailing newline, nothing else */
	knob_is("advisor_mode", "scan-time", 0, "scan-time");
	knob_is("advisor_mode", "scan-time\n", 0, "scan-time");
	knob_is("advisor_mode", "none \n", -EINVAL, NULL);
	knob_is("advisor_mode", "scan", -EINVAL, NULL);
	knob_is("advisor_target_scan_time", "0", -EINVAL, NULL);
	knob_is("advisor_target_scan_time", "18446744073709551615", 0, "18446744073709551615");
	knob_is("advisor_min_pages_to_scan", "4294967297", 0, "4294967297");
	knob_is("advisor_max_cpu", "18446744073709551616", -EINVAL, NULL);
	/* parsed as unsigned long, kept in an unsigned int */
	knob_is("advisor_max_cpu", "4294967297", 0, "1");
	knob_is("advisor_max_cpu", "18446744073709551615", 0, "4294967295");
	knob_is("full_scans", "1", -EROFS, NULL);
	knob_is("general_profit", "1", -EROFS, NULL);
	knob_is("bogus", "1", -ENOENT, NULL);
	knob_is("batch_usecs", "1000", -ENOENT, NULL); /* the engine's, not a kernel file */
}

/* The refusals are data: which state, which errno. */
static void test_knob_refusals(void **state)
{
	struct sp_knob_state idle = {0, 0}, shared = {1, 0}, advisor = {0, 1};
	const struct sp_knob *mps = sp_knob_find("max_page_sharing"), *man = sp_knob_find("merge_across_nodes");
	const struct sp_knob *pts = sp_knob_find("pages_to_scan"), *slp = sp_knob_find("sleep_millisecs");

	(void)state;
	assert_int_equal(sp_knob_refused(mps, &shared, 1), -EBUSY);
	assert_int_equal(sp_knob_refused(mps, &shared, 0), 0); /* the same value: accepted */
	assert_int_equal(sp_knob_refused(man, &shared, 1), -EBUSY);
	assert_int_equal(sp_knob_refused(mps, &idle, 1), 0);
	assert_int_equal(sp_knob_refused(pts, &advisor, 0), -EINVAL); /* even the same value */
	assert_int_equal(sp_knob_refused(pts, &shared, 1), 0);
	assert_int_equal(sp_knob_refused(slp, &advisor, 1), 0);
	assert_int_equal(sp_knob_find("advisor_mode")->effect, SP_EFFECT_ADVISOR_RESET);
	assert_int_equal(sp_knob_find("run")->effect, SP_EFFECT_UNMERGE);
	for (size_t i = 0; i < sp_knob_count; i++) {
		const struct sp_knob *k = &sp_knob_table[i];

		assert_true(k->flags & (SP_KF_KERNEL | SP_KF_ENGINE));
		assert_true(k->help && *k->help);
		assert_true((k->type == SP_KNOB_ENUM) == (k->words != NULL));
		assert_ptr_equal(sp_knob_find(k->name), k);
		assert_int_equal(sp_knob_index(k->name), k->flags & SP_KF_KERNEL ? (int)i : -1);
	}
}

static void test_cpulist(void **state)
{
	struct sp_cpus a, b, c;
	char buf[64];

	(void)state;
	assert_int_equal(sp_cpus_parse("0-3,8,10-11\n", &a), 0);
	assert_int_equal(sp_cpus_count(&a), 7);
	assert_string_equal(sp_cpus_format(&a, buf, sizeof(buf)), "0-3,8,10-11");
	assert_int_equal(sp_cpus_parse("2-3", &b), 0);
	sp_cpus_andnot(&a, &b, &c);
	assert_string_equal(sp_cpus_format(&c, buf, sizeof(buf)), "0-1,8,10-11");
	assert_int_equal(sp_cpus_parse("", &c), 0);
	assert_int_equal(sp_cpus_count(&c), 0);
	assert_int_equal(sp_cpus_parse("3-1", &c), -EINVAL);
	assert_int_equal(sp_cpus_parse("1,x", &c), -EINVAL);
	assert_int_equal(sp_cpus_parse("5000", &c), -EINVAL);
}

static void test_host(void **state)
{
	struct sp_cpus c;
	struct sp_task t;
	char buf[64];

	(void)state;
	assert_int_equal(sp_host_numa_nodes(tree("numa-vm", "sys")), 2);
	assert_int_equal(sp_host_numa_nodes(tree("healthy", "sys")), 1);
	assert_int_equal(sp_numa_balancing(tree("numa-vm", "proc")), 1);
	assert_int_equal(sp_kvm_guests(tree("numa-vm", "proc")), 2);
	assert_int_equal(sp_kvm_guests(tree("healthy", "proc")), 0);
	assert_int_equal(sp_sysfs_readonly(tree("container", "proc")), 1);
	assert_int_equal(sp_sysfs_readonly(tree("healthy", "proc")), 0);
	sp_cpus_isolated(tree("isolated", "sys"), &c);
	assert_string_equal(sp_cpus_format(&c, buf, sizeof(buf)), "2-3");
	sp_cpus_nohz_full(tree("healthy", "sys"), &c);
	assert_int_equal(sp_cpus_count(&c), 0);
	assert_int_equal(sp_mem_available_kb(tree("healthy", "proc")), 24283452);
	assert_int_equal(sp_cow_ksm(tree("healthy", "proc")), 3913932);
	assert_int_equal(sp_ksmd_pid(tree("healthy", "proc")), 37);
	assert_int_equal(sp_task_read(tree("isolated", "proc"), 37, &t), 0);
	assert_string_equal(t.comm, "ksmd");
	assert_int_equal(t.nice, 5);
	assert_true(t.cpu_s > 0);
	assert_string_equal(sp_cpus_format(&t.allowed, buf, sizeof(buf)), "0-3");
	assert_int_equal(sp_task_read(tree("healthy", "proc"), 99999, &t), -ESRCH);
}

static void test_users_by_profit(void **state)
{
	struct sp_ksm_users u;

	(void)state;
	assert_int_equal(sp_ksm_users_read(tree("numa-vm", "proc"), &u), 0);
	assert_int_equal(u.n, 2);
	assert_int_equal(u.p[0].pid, 100); /* larger profit first */
	assert_int_equal(u.p[0].ksm_process_profit, 65536000);
	assert_int_equal(u.p[0].ksm_merging_pages, 16320);
	assert_true(u.p[0].merge_any);
	assert_true(u.p[0].mergeable);
	assert_int_equal(u.merging_pages, 24320);
	sp_ksm_users_free(&u);
	assert_int_equal(sp_ksm_users_read(tree("idle", "proc"), &u), 0);
	assert_int_equal(u.n, 0); /* ksmd is a kernel thread, never a user */
	sp_ksm_users_free(&u);
}

/* --- hostile trees ------------------------------------------------------- */

static char hostile[256];

static void put(const char *rel, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", hostile, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static const char *at(const char *rel)
{
	static char path[4][512];
	static int i;
	char *p = path[i++ % 4];

	snprintf(p, sizeof(path[0]), "%s/%s", hostile, rel);
	return p;
}

static int make_hostile(void **state)
{
	(void)state;
	snprintf(hostile, sizeof(hostile), "/tmp/sp-readers.XXXXXX");
	if (!mkdtemp(hostile))
		return -1;
	mkdir(at("sys"), 0755);
	mkdir(at("sys/kernel"), 0755);
	mkdir(at("sys/kernel/mm"), 0755);
	mkdir(at("sys/kernel/mm/ksm"), 0755);
	mkdir(at("proc"), 0755);
	mkdir(at("proc/100"), 0755);
	return 0;
}

static int remove_hostile(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", hostile);
	return system(cmd) == 0 ? 0 : -1;
}

/* a FIFO in place of a file: refused at once, never waited on */
static void test_fifo_refused(void **state)
{
	char buf[64];
	FILE *f;

	(void)state;
	assert_int_equal(mkfifo(at("fifo"), 0600), 0);
	assert_int_equal(sp_read_small(at("fifo"), buf, sizeof(buf)), -EINVAL);
	f = sp_fopen_small(at("fifo"));
	assert_null(f);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_read_small(at("sys"), buf, sizeof(buf)), -EINVAL); /* a directory */
	assert_int_equal(sp_read_small(at("nothing"), buf, sizeof(buf)), -ENOENT);
	put("plain", "12345\n");
	assert_int_equal(sp_read_small(at("plain"), buf, 4), 3); /* cut to fit, terminated */
	assert_string_equal(buf, "123");
}

static void test_ksm_invalid(void **state)
{
	struct sp_ksm k;

	(void)state;
	put("sys/kernel/mm/ksm/run", "abc\n");
	put("sys/kernel/mm/ksm/pages_sharing", "-1\n");
	put("sys/kernel/mm/ksm/full_scans", "12x\n");
	put("sys/kernel/mm/ksm/pages_shared", "9223372036854775807\n");
	put("sys/kernel/mm/ksm/pages_unshared", "9223372036854775807\n");
	put("sys/kernel/mm/ksm/general_profit", "-4096\n");
	put("sys/kernel/mm/ksm/max_page_sharing", "1\n"); /* below the kernel's 2 */
	put("sys/kernel/mm/ksm/advisor_mode", "\xff[none]\n");
	put("sys/kernel/mm/ksm/pages_to_scan", "100\n");
	mkdir(at("sys/kernel/mm/ksm/pages_volatile"), 0755);
	assert_int_equal(mkfifo(at("sys/kernel/mm/ksm/sleep_millisecs"), 0600), 0);
	assert_int_equal(sp_ksm_read(at("sys"), &k), 0);
	assert_int_equal(sp_ksm_get(&k, "run", -7), -7);
	assert_non_null(k.invalid[sp_knob_index("run")]);
	assert_non_null(k.invalid[sp_knob_index("pages_sharing")]);
	assert_non_null(k.invalid[sp_knob_index("full_scans")]);
	assert_non_null(k.invalid[sp_knob_index("max_page_sharing")]);
	assert_non_null(k.invalid[sp_knob_index("advisor_mode")]);
	assert_string_equal(k.invalid[sp_knob_index("pages_volatile")], "not a regular file");
	assert_string_equal(k.invalid[sp_knob_index("sleep_millisecs")], "not a regular file");
	assert_int_equal(k.ninvalid, 7);
	assert_string_equal(k.text[sp_knob_index("run")], "abc");
	assert_int_equal(sp_ksm_get(&k, "general_profit", 0), -4096); /* the one signed file */
	assert_int_equal(sp_ksm_get(&k, "pages_to_scan", 0), 100);
	assert_null(k.invalid[sp_knob_index("pages_to_scan")]);
	/* shared + unshared at LLONG_MAX each: saturated, not wrapped */
	assert_true(sp_ksm_pages_tracked(&k) == LLONG_MAX);
	assert_true(sp_add_sat(LLONG_MIN, -1) == LLONG_MIN);
	assert_int_equal(sp_add_sat(2, 3), 5);
}

static void test_comm_newline(void **state)
{
	struct sp_pid_list l = {0};
	struct sp_proc p;
	struct sp_task t;

	(void)state;
	put("proc/100/comm", "a) (b\nc \"x\\\n");
	put("proc/100/stat", "100 (a) (b\nc \"x\\) S 1 100 100 0 -1 4194560 100 0 0 0 50 20 0 0 20 0 4 0 964026 "
			     "3133440 383 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n");
	put("proc/100/ksm_stat", "ksm_rmap_items 99999999999999999999999\nksm_merging_pages 5\n");
	assert_int_equal(sp_proc_info(at("proc"), 100, &p), 0);
	assert_string_equal(p.comm, "a) (b\nc \"x\\");
	assert_true(p.ksm_rmap_items == LONG_MAX); /* saturated, no undefined sscanf */
	assert_int_equal(p.ksm_merging_pages, 5);
	assert_int_equal(sp_task_read(at("proc"), 100, &t), 0);
	assert_string_equal(t.comm, "a) (b\nc \"x\\");
	assert_int_equal(sp_procs_by_comm(at("proc"), "a) (b\nc \"x\\", &l), 1);
	assert_int_equal(sp_procs_by_comm(at("proc"), "a) (b", &l), 0);
	sp_pids_free(&l);
}

static void test_keyfile_junk(void **state)
{
	(void)state;
	put("proc/vmstat", "cow_ksm abc\nnr_x 5\n");
	assert_int_equal(sp_cow_ksm(at("proc")), -1);
	put("proc/vmstat", "cow_ksm 12\n");
	assert_int_equal(sp_cow_ksm(at("proc")), 12);
	unlink(at("proc/meminfo"));
	assert_int_equal(mkfifo(at("proc/meminfo"), 0600), 0);
	assert_int_equal(sp_mem_available_kb(at("proc")), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ksm_snapshot),  cmocka_unit_test(test_knob_ranges),
		cmocka_unit_test(test_knob_refusals), cmocka_unit_test(test_cpulist),
		cmocka_unit_test(test_host),	      cmocka_unit_test(test_users_by_profit),
	};
	const struct CMUnitTest hostile_tests[] = {
		cmocka_unit_test(test_fifo_refused),
		cmocka_unit_test(test_ksm_invalid),
		cmocka_unit_test(test_comm_newline),
		cmocka_unit_test(test_keyfile_junk),
	};
	int failed;
	const char *slash = strrchr(__FILE__, '/');

	snprintf(fix, sizeof(fix), "%.*s/fixtures/doctor", slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
	failed = cmocka_run_group_tests(tests, NULL, NULL);
	return failed + cmocka_run_group_tests(hostile_tests, make_hostile, remove_hostile);
}
