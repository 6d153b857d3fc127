/* SPDX-License-Identifier: MIT */
/*
 * kernel_readers.c - the readers of src/kernel/ (KSM sysfs, ksm_stat, /proc
 * stat and status, meminfo, vmstat, NUMA, isolated CPUs, mounts) on the
 * recorded trees in tests/fixtures/doctor/, and the knob checker against
 * the kernel's ranges. No root, no kernel state touched.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kernel/cpulist.h"
#include "kernel/host.h"
#include "kernel/ksm.h"
#include "kernel/ksmstat.h"
#include "kernel/procs.h"

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
	for (int i = 0; i < SP_KSM_NKNOBS; i++)
		assert_true(k.present[i]);
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

static void test_knob_ranges(void **state)
{
	(void)state;
	knob_is("run", "2", 0, "2");
	knob_is("run", "3", -EINVAL, NULL);
	knob_is("run", "-1", -EINVAL, NULL);
	knob_is("max_page_sharing", "1", -EINVAL, NULL);
	knob_is("max_page_sharing", "2", 0, "2");
	knob_is("max_page_sharing", "2147483648", -EINVAL, NULL);
	knob_is("pages_to_scan", "0", 0, "0");
	knob_is("pages_to_scan", "4294967296", -EINVAL, NULL);
	knob_is("pages_to_scan", "12abc", -EINVAL, NULL);
	knob_is("pages_to_scan", "", -EINVAL, NULL);
	knob_is("merge_across_nodes", "2", -EINVAL, NULL);
	knob_is("use_zero_pages", "yes", 0, "1");
	knob_is("use_zero_pages", "off", 0, "0");
	knob_is("smart_scan", "maybe", -EINVAL, NULL);
	knob_is("advisor_mode", "scan-time", 0, "scan-time");
	knob_is("advisor_mode", "scan", -EINVAL, NULL);
	knob_is("advisor_target_scan_time", "0", -EINVAL, NULL);
	knob_is("full_scans", "1", -EROFS, NULL);
	knob_is("bogus", "1", -ENOENT, NULL);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ksm_snapshot),	cmocka_unit_test(test_knob_ranges),
		cmocka_unit_test(test_cpulist),		cmocka_unit_test(test_host),
		cmocka_unit_test(test_users_by_profit),
	};
	const char *slash = strrchr(__FILE__, '/');

	snprintf(fix, sizeof(fix), "%.*s/fixtures/doctor", slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
