/* SPDX-License-Identifier: MIT */
/*
 * ksm_estimate_qemu.c - `samepage estimate` against the kernel's KSM on the
 * workload KSM was built for: virtual machines.
 *
 * Three QEMU guests (Debian's qemu-system-x86, mem-merge=on, so guest RAM is
 * MADV_MERGEABLE) boot the newest kernel in /boot with a small initramfs made
 * here from Debian's static busybox; its /init fills a tmpfs with four copies
 * of busybox and 16 MiB of zeros, prints a marker on the serial console and
 * sleeps. Once every guest is up and idle, the estimate (two samples, two
 * seconds apart) is compared with what ksmd then merges in the same three
 * processes: within 3%, as for the other non-synthetic workloads. The
 * guests' RAM is mostly transparent huge pages, so the test also checks the
 * model's THP rule (model.h): the all-zero subpages it predicts must leave
 * the scan, mapped to the shared zero page when ksmd splits their THPs.
 *
 * The guests run under TCG (qemuguest.h says why).
 *
 * Skipped (with the reason) without qemu-system-x86_64, a static busybox or
 * a kernel image in /boot.
 */
#include "estimatetest.h"
#include "qemuguest.h"

#define GUEST_MIB 256
#define MARKER	  "SAMEPAGE-GUEST-READY"
#define BOOT_MS	  180000
#define SPLIT_MS  90000
#define GUEST_INIT                                                               \
	"#!/bin/busybox sh\n"                                                    \
	"/bin/busybox mount -t proc proc /proc\n"                                \
	"/bin/busybox mount -t tmpfs tmpfs /tmp\n"                               \
	"for i in 1 2 3 4; do /bin/busybox cp /bin/busybox /tmp/b$i; done\n"     \
	"/bin/busybox dd if=/dev/zero of=/tmp/zero bs=1M count=16 2>/dev/null\n" \
	"echo " MARKER "\n"                                                      \
	"exec /bin/busybox sleep 1000000\n"

static char dir[] = "/tmp/samepage-qemu-XXXXXX";

static void wait_guests(void)
{
	uint64_t t0 = t_now_ms(), deadline = t0 + BOOT_MS;
	int up = 0;

	while (up < NPROC && t_now_ms() < deadline) {
		up = 0;
		for (int g = 0; g < NPROC; g++) {
			assert_int_equal(waitpid(kids[g], NULL, WNOHANG), 0); /* still running */
			up += qg_printed(dir, g, MARKER);
		}
		usleep(100000);
	}
	printf("  %d of %d guests up after %.1f s\n", up, NPROC, (double)(t_now_ms() - t0) / 1000);
	assert_int_equal(up, NPROC);
}

static void test_qemu_guests(void **state)
{
	const char *extra[] = {"--samples", "2", "--interval", "2", NULL};
	const char *kernel = qg_kernel(), *missing = qg_missing();
	struct counters p = {0}, k = {0}, after = {0};

	(void)state;
	if (missing) {
		printf("  %s: skipped\n", missing);
		skip();
	}
	assert_non_null(mkdtemp(dir));
	qg_make_initramfs(dir, GUEST_INIT);
	printf("  3 guests of %d MiB booting %s\n", GUEST_MIB, kernel);
	for (int g = 0; g < NPROC; g++)
		kids[g] = qg_start(dir, g, GUEST_MIB, NULL);
	wait_guests();
	assert_int_equal(t_ksm_set("run", "2"), 0);
	assert_int_equal(t_ksm_set("max_page_sharing", "256"), 0);
	assert_int_equal(t_ksm_set("use_zero_pages", "0"), 0);
	estimate(extra, &p);
	kernel_run("256", "0", 2, &k);
	show("qemu guests x3", &p, &k);
	/* The all-zero subpages of THPs count in no KSM counter: they leave
	 * the scan once ksmd split their THP (the zero page is not scanned).
	 * ksmd splits them over more full scans than its counters take to
	 * settle (a zero page waiting in the unstable tree survives its
	 * scan), so let it go on until the estimate misses as many pages as
	 * were predicted, or a deadline passes. */
	assert_int_equal(t_ksm_set("run", "1"), 0);
	for (uint64_t end = t_now_ms() + SPLIT_MS;;) {
		estimate(NULL, &after);
		if (p.scanned - after.scanned >= p.thp_zero || t_now_ms() > end)
			break;
		usleep(500000);
	}
	assert_int_equal(t_ksm_set("run", "0"), 0);
	printf("  THP zero subpages: predicted %ld, gone from the scan after ksmd %ld (%ld -> %ld pages)\n", p.thp_zero,
	       p.scanned - after.scanned, p.scanned, after.scanned);
	kill_kids();
	qg_cleanup(dir);
	expect_close(&p, &k, 10000);
	if (p.thp_zero > 0) {
		double got = (double)(p.scanned - after.scanned), want = (double)p.thp_zero;

		assert_true(got >= want * 0.97 && got <= want * 1.03);
	}
	assert_true(t_ksm_set("run", "2") == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_qemu_guests, teardown_test),
	};

	return estimate_main(tests, sizeof(tests) / sizeof(tests[0]));
}
