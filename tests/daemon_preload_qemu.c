/* SPDX-License-Identifier: MIT */
/*
 * daemon_preload_qemu.c - three QEMU guests, unmodified, under
 * `samepage run --engine` (libsamepage-preload.so, samepaged): they share
 * pages across processes, and every guest checks its own memory the whole
 * time. Then the same three guests under the kernel's KSM (`samepage run`,
 * PR_SET_MEMORY_MERGE), for the savings and the scanner's CPU side by side.
 *
 * Each guest boots the newest kernel in /boot with a busybox initramfs
 * (qemuguest.h) whose /init fills a tmpfs (four copies of busybox, 16 MiB of
 * zeros, a 4 MiB pattern made of one 64 KiB block), then checks it in a loop
 * and prints one line per round on the serial console:
 * SAMEPAGE-CHECK-OK N, or SAMEPAGE-CHECK-BAD N and what differed. A round
 * first writes over one block of the pattern with the same bytes (a write
 * into memory that is merged on the host), writes a file of new content,
 * then compares checksums of all of it with what they were at boot.
 *
 * On the engine, in turn: merging until settled, run=2 (everything
 * unmerged) and run=1 again, kill -9 of samepaged while the guests run and
 * its restart (the clients register again). After each step every guest
 * must have passed two more rounds, none failed, none exited.
 *
 * Both sides boot the guests unmerged (run=0), then merge with the same
 * knobs until settled (under 1% change over two full scans after at least
 * three). The engine must save at least 90% of what the kernel saves, by
 * two measures: pages_sharing + ksm_zero_pages, as the issue asks, and the
 * memory itself, the Pss of the three QEMU processes (plus samepaged's
 * own: its metadata and its share of the store) before and after. The
 * counters alone would flatter the engine: ksmd splits the guests'
 * transparent huge pages and the kernel maps their all-zero subpages to the
 * zero page without counting them in ksm_zero_pages, while the engine
 * counts each one it maps.
 *
 * Skipped (77) without root, on sanitizer builds (the instrumented preload
 * library needs ASan's runtime loaded first, which QEMU does not load), and
 * without QEMU, a static busybox or a kernel image (qemuguest.h names the
 * package).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemontest.h"
#include "qemuguest.h"
#include "testlib.h"

#ifndef SP_SAMEPAGE
#error "SP_SAMEPAGE: the samepage command, from tests/CMakeLists.txt"
#endif

#define NGUEST	  3
#define GUEST_MIB 256
#define DOM	  "domain user:0"
#define READY	  "SAMEPAGE-GUEST-READY"
#define BAD	  "SAMEPAGE-CHECK-BAD"
#define BOOT_MS	  300000
#define ROUNDS_MS 180000
#define SETTLE_MS 600000
#define PAGES	  "5000"
#define SLEEP_MS  "20"

#define GUEST_INIT                                                                                       \
	"#!/bin/busybox sh\n"                                                                            \
	"/bin/busybox --install -s /bin\n"                                                               \
	"mount -t proc proc /proc\n"                                                                     \
	"mount -t tmpfs tmpfs /tmp\n"                                                                    \
	"for i in 1 2 3 4; do cp /bin/busybox /tmp/b$i; done\n"                                          \
	"dd if=/dev/zero of=/tmp/zero bs=1M count=16 2>/dev/null\n"                                      \
	"i=0; while [ $i -lt 4096 ]; do printf '%015d\\n' $i; i=$((i+1)); done >/tmp/block\n"            \
	"i=0; while [ $i -lt 64 ]; do cat /tmp/block; i=$((i+1)); done >/tmp/pat\n"                      \
	"pat=$(md5sum </tmp/pat); bb=$(md5sum </bin/busybox); zero=$(md5sum </tmp/zero)\n"               \
	"echo " READY "\n"                                                                               \
	"n=0\n"                                                                                          \
	"while :; do\n"                                                                                  \
	"  dd if=/tmp/block of=/tmp/pat bs=65536 seek=$((n % 64)) conv=notrunc 2>/dev/null\n"            \
	"  seq $n $((n + 3000)) >/tmp/new\n"                                                             \
	"  bad=\n"                                                                                       \
	"  [ \"$(md5sum </tmp/pat)\" = \"$pat\" ] || bad=\"$bad pattern\"\n"                             \
	"  [ \"$(md5sum </tmp/new)\" = \"$(seq $n $((n + 3000)) | md5sum)\" ] || bad=\"$bad new\"\n"     \
	"  for i in 1 2 3 4; do [ \"$(md5sum </tmp/b$i)\" = \"$bb\" ] || bad=\"$bad busybox$i\"; done\n" \
	"  [ $((n % 8)) != 0 ] || [ \"$(md5sum </tmp/zero)\" = \"$zero\" ] || bad=\"$bad zero\"\n"       \
	"  if [ -z \"$bad\" ]; then echo SAMEPAGE-CHECK-OK $n; else echo " BAD " $n$bad; fi\n"           \
	"  n=$((n + 1))\n"                                                                               \
	"  sleep 1\n"                                                                                    \
	"done\n"

static char dir[] = "/tmp/samepage-qemu-engine-XXXXXX";
static pid_t guests[NGUEST];

/* the number of the last round guest g passed, -1 if none */
static long last_round(int g)
{
	static char buf[4096];
	const char *p = qg_console(dir, g, buf, sizeof(buf)), *ok;
	long n = -1;

	while ((ok = strstr(p, "SAMEPAGE-CHECK-OK ")) != NULL) {
		n = atol(ok + 18);
		p = ok + 18;
	}
	return n;
}

static void fail_guest(int g, const char *why)
{
	static char buf[2048];

	fail_msg("guest %d %s; its console ends:\n%s", g, why, qg_console(dir, g, buf, sizeof(buf)));
}

/* Every guest still runs, none reported a bad round, and each passes two
 * more rounds (deadline). what: the step, for the messages. */
static void guests_ok(const char *what)
{
	long from[NGUEST];
	uint64_t deadline = t_now_ms() + ROUNDS_MS;
	int done = 0;

	for (int g = 0; g < NGUEST; g++)
		from[g] = last_round(g);
	while (!done) {
		done = 1;
		for (int g = 0; g < NGUEST; g++) {
			if (waitpid(guests[g], NULL, WNOHANG) != 0)
				fail_guest(g, "exited");
			if (qg_printed(dir, g, BAD))
				fail_guest(g, "reported a bad round");
			if (last_round(g) < from[g] + 2)
				done = 0;
		}
		if (!done && t_now_ms() > deadline)
			fail_msg("%s: a guest passed no two rounds in %d s", what, ROUNDS_MS / 1000);
		if (!done)
			usleep(200000);
	}
	printf("  %-34s every guest passed 2 more rounds (now at %ld, %ld, %ld)\n", what, last_round(0), last_round(1),
	       last_round(2));
}

static void start_guests(const char *const *wrap)
{
	uint64_t t0 = t_now_ms(), deadline = t0 + BOOT_MS;
	int up = 0;

	for (int g = 0; g < NGUEST; g++)
		guests[g] = qg_start(dir, g, GUEST_MIB, wrap);
	while (up < NGUEST) {
		up = 0;
		for (int g = 0; g < NGUEST; g++) {
			if (waitpid(guests[g], NULL, WNOHANG) != 0)
				fail_guest(g, "exited while booting");
			up += qg_printed(dir, g, READY);
		}
		if (up < NGUEST && t_now_ms() > deadline)
			fail_msg("%d of %d guests up after %d s", up, NGUEST, BOOT_MS / 1000);
		usleep(100000);
	}
	printf("  %d guests of %d MiB up after %.1f s\n", NGUEST, GUEST_MIB, (double)(t_now_ms() - t0) / 1000);
}

/* Pss of the three QEMU processes (the wrappers' children), in MiB */
static double guests_pss_mib(void)
{
	long long kib = 0;

	for (int g = 0; g < NGUEST; g++) {
		char path[64], buf[64] = "";
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)guests[g], (int)guests[g]);
		f = fopen(path, "r");
		if (f && fgets(buf, sizeof(buf), f))
			kib += t_pss_kib((pid_t)atoi(buf));
		if (f)
			fclose(f);
	}
	return (double)kib / 1024;
}

static double daemon_pss_mib(const struct dt_daemon *d)
{
	return (double)t_pss_kib(d->pid) / 1024;
}

static void stop_guests(void)
{
	for (int g = 0; g < NGUEST; g++) {
		if (guests[g] > 0) {
			kill(-guests[g], SIGKILL); /* the wrapper and QEMU */
			waitpid(guests[g], NULL, 0);
		}
		guests[g] = 0;
	}
}

/* What a side saved, read once: full scans and pages_sharing +
 * ksm_zero_pages. */
struct reading {
	long long scans, sharing, zero;
};

static void read_daemon(void *ctx, struct reading *r)
{
	const char *st = dt_status(ctx);

	r->scans = dt_value(st, DOM, "full_scans");
	r->sharing = dt_value(st, DOM, "pages_sharing");
	r->zero = dt_value(st, DOM, "ksm_zero_pages");
}

static void read_kernel(void *ctx, struct reading *r)
{
	(void)ctx;
	r->scans = t_ksm_get("full_scans");
	r->sharing = t_ksm_get("pages_sharing");
	r->zero = t_ksm_get("ksm_zero_pages");
}

/* Waits until the savings settle: at least three full scans from now, and
 * under 1% change over the last two. Returns the last reading; *secs the
 * time it took. */
static struct reading settle(void (*rd)(void *, struct reading *), void *ctx, double *secs)
{
	uint64_t t0 = t_now_ms(), deadline = t0 + SETTLE_MS;
	struct reading start, r, at[3] = {0}; /* the savings at the last full scans */
	long long seen = -1;

	rd(ctx, &start);
	for (;;) {
		rd(ctx, &r);
		if (r.scans != seen) {
			at[0] = at[1];
			at[1] = at[2];
			at[2] = r;
			seen = r.scans;
			if (r.scans >= start.scans + 3 && at[0].scans >= start.scans) {
				long long a = at[0].sharing + at[0].zero, b = r.sharing + r.zero;

				if (b > 0 && llabs(b - a) * 100 <= b)
					break;
			}
		}
		if (t_now_ms() > deadline)
			fail_msg("not settled in %d s (full scans %lld -> %lld, saved %lld pages)", SETTLE_MS / 1000,
				 start.scans, r.scans, r.sharing + r.zero);
		usleep(100000);
	}
	*secs = (double)(t_now_ms() - t0) / 1000;
	return r;
}

static void set_knobs(struct dt_daemon *d)
{
	assert_int_equal(dt_set(d, "", "pages_to_scan", PAGES), 0);
	assert_int_equal(dt_set(d, "", "sleep_millisecs", SLEEP_MS), 0);
	assert_int_equal(dt_set(d, "", "use_zero_pages", "1"), 0);
	assert_int_equal(dt_set(d, "", "max_page_sharing", "256"), 0);
}

/* One side's outcome: counters when settled, time and scanner CPU from
 * run=1 to settled, memory of the guests (and of samepaged) before and
 * after. */
struct side {
	struct reading r;
	double secs, cpu, before, after;
};

static void show(const char *who, const struct side *s)
{
	printf("  %s: settled in %.1f s, pages_sharing %lld + ksm_zero_pages %lld, scanner CPU %.2f s; Pss %.1f -> "
	       "%.1f MiB\n",
	       who, s->secs, s->r.sharing, s->r.zero, s->cpu, s->before, s->after);
}

static void engine_side(struct dt_daemon *d, struct side *s)
{
	long long want;
	double cpu0;

	/* the guests boot unmerged (run=0), then merge */
	dt_start(d, NULL);
	set_knobs(d);
	assert_int_equal(dt_set(d, "", "run", "0"), 0);
	start_guests(
		(const char *const[]){SP_SAMEPAGE, "run", "--engine", "--require", "--socket", d->sock, "--", NULL});
	assert_int_equal(dt_value(dt_status(d), DOM, "clients"), NGUEST);
	s->before = guests_pss_mib() + daemon_pss_mib(d);
	cpu0 = t_ksmd_cpu(d->pid);
	assert_int_equal(dt_set(d, "", "run", "1"), 0);
	s->r = settle(read_daemon, d, &s->secs);
	s->cpu = t_ksmd_cpu(d->pid) - cpu0;
	s->after = guests_pss_mib() + daemon_pss_mib(d);
	show("engine (QEMUs and samepaged)", s);
	guests_ok("merged:");

	assert_int_equal(dt_set(d, "", "run", "2"), 0);
	assert_int_equal(dt_wait(d, DOM, "pages_sharing", DT_EQ(0)), 0);
	assert_int_equal(dt_wait(d, DOM, "ksm_zero_pages", DT_EQ(0)), 0);
	guests_ok("run=2, all unmerged:");
	assert_int_equal(dt_set(d, "", "run", "1"), 0);
	want = s->r.sharing / 2;
	assert_true(dt_wait(d, DOM, "pages_sharing", want) >= want);
	guests_ok("run=1, merging again:");

	dt_kill9(d);
	guests_ok("samepaged killed (kill -9):");
	dt_restart(d);
	set_knobs(d);
	assert_int_equal(dt_wait(d, DOM, "clients", NGUEST), NGUEST);
	assert_true(dt_wait(d, DOM, "pages_sharing", want) >= want);
	guests_ok("samepaged restarted, merging:");

	stop_guests();
	assert_int_equal(dt_wait(d, DOM, "clients", DT_EQ(0)), 0);
	assert_int_equal(dt_wait(d, DOM, "pages_shared", DT_EQ(0)), 0);
	assert_true(dt_stop(d));
}

static void kernel_side(struct side *s)
{
	double cpu0;

	t_ksm_save(); /* (restored at exit too) */
	assert_int_equal(t_ksm_set("run", "0"), 0);
	assert_int_equal(t_ksm_set("pages_to_scan", PAGES), 0);
	assert_int_equal(t_ksm_set("sleep_millisecs", SLEEP_MS), 0);
	assert_int_equal(t_ksm_set("max_page_sharing", "256"), 0);
	assert_int_equal(t_ksm_set("use_zero_pages", "1"), 0);
	start_guests((const char *const[]){SP_SAMEPAGE, "run", "--", NULL});
	s->before = guests_pss_mib();
	cpu0 = t_ksmd_cpu(t_ksmd_pid());
	assert_int_equal(t_ksm_set("run", "1"), 0);
	s->r = settle(read_kernel, NULL, &s->secs);
	s->cpu = t_ksmd_cpu(t_ksmd_pid()) - cpu0;
	s->after = guests_pss_mib();
	show("kernel (QEMUs)", s);
	guests_ok("kernel's KSM merged:");
	stop_guests();
	t_ksm_restore();
}

static void test_three_guests(void **state)
{
	struct dt_daemon d;
	struct side e, k;
	long long es, ks;

	(void)state;
	assert_non_null(mkdtemp(dir));
	qg_make_initramfs(dir, GUEST_INIT);
	printf("  kernel %s, TCG, pages_to_scan " PAGES ", sleep_millisecs " SLEEP_MS
	       ", use_zero_pages 1, max_page_sharing 256 on both sides\n",
	       qg_kernel());
	engine_side(&d, &e);
	dt_cleanup(&d);
	if (!t_ksm_available()) {
		printf("  kernel's KSM: not available here, no comparison\n");
		qg_cleanup(dir);
		return;
	}
	kernel_side(&k);
	qg_cleanup(dir);

	es = e.r.sharing + e.r.zero;
	ks = k.r.sharing + k.r.zero;
	printf("  engine / kernel: saved by the counters %.3f (%lld / %lld pages), saved by Pss %.3f (%.1f / %.1f "
	       "MiB), scanner CPU to settle %.2f, time to settle %.2f\n",
	       (double)es / (double)ks, es, ks, (e.before - e.after) / (k.before - k.after), e.before - e.after,
	       k.before - k.after, k.cpu > 0 ? e.cpu / k.cpu : 0, e.secs / k.secs);
	assert_true(es * 10 >= ks * 9);
	assert_true((e.before - e.after) * 10 >= (k.before - k.after) * 9);
}

static int teardown(void **state)
{
	(void)state;
	stop_guests();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_three_guests, teardown),
	};

#ifdef SP_SANITIZED
	/* The sanitizer build's library is instrumented: ASan's runtime must
	 * be loaded before it, and QEMU is not built with it. `samepage run
	 * --engine` puts its library first in LD_PRELOAD, so the runtime
	 * refuses to start; preloading the runtime ahead of it would replace
	 * QEMU's allocator with ASan's (another QEMU than the one measured
	 * against the kernel's KSM here), for no check of QEMU's own code. */
	printf("sanitizer build: the instrumented preload library needs ASan's runtime loaded first, which the "
	       "uninstrumented QEMU does not load: skipped; it runs on the plain build\n");
	return 77;
#endif
	if (geteuid()) {
		printf("needs root (samepaged reads other processes' memory)\n");
		return 77;
	}
	if (qg_missing()) {
		printf("%s: skipped\n", qg_missing());
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
