/* SPDX-License-Identifier: MIT */
/* testlib.h - helpers shared by the tests (page patterns, deadlines, KSM knobs). */
#ifndef SP_TESTLIB_H
#define SP_TESTLIB_H

#include <stddef.h>
#include <stdint.h>

#define TPAGE 4096ul

/* Fills a page with a pattern derived from tag (0: zeros). */
void t_fill(void *page, uint32_t tag);
/* 1 if the page holds t_fill(tag)'s pattern. */
int t_check(const void *page, uint32_t tag);
uint64_t t_now_ms(void);
/* An anonymous private mapping of n pages (aborts on failure). */
void *t_map(size_t npages);

/* The kernel's KSM knobs: save all, restore all (run=2 then run=0 first,
 * which undoes merges). t_ksm_restore is also registered with atexit.
 * t_ksm_save first takes an exclusive flock on T_KSM_LOCK, held until the
 * process exits, so tests and benchmarks never drive KSM at the same time
 * (shell tests: flock /tmp/samepage-ksm.lock CMD). */
#define T_KSM_LOCK "/tmp/samepage-ksm.lock"
int t_ksm_available(void);
void t_ksm_save(void);
void t_ksm_restore(void);
int t_ksm_set(const char *knob, const char *value);
long t_ksm_get(const char *knob);

/* The differential tests' workload (ksm_diff, daemon_ksm_diff): duplicate
 * groups of 1000, 300, 257, 256 and 2 copies of a content (around the
 * max_page_sharing boundaries), zero pages and unique pages, shuffled with
 * a fixed seed. Writes T_DIFF_NPAGES tags (0: zeros, for t_fill). */
#define T_DIFF_NZERO   700
#define T_DIFF_NUNIQUE 400
#define T_DIFF_NPAGES  (1000 + 300 + 257 + 256 + 2 + T_DIFF_NZERO + T_DIFF_NUNIQUE)
void t_diff_layout(uint32_t *tags);
/* Shuffles a[0..n) in place (Fisher-Yates, xorshift64 from *seed). */
void t_shuffle(uint32_t *a, size_t n, uint64_t *seed);

/* The kernel's KSM counters the differential tests compare. */
struct t_ksm_counters {
	long shared, sharing, chains, dups, zero;
};
void t_ksm_counters(struct t_ksm_counters *c);

/* ksmd: its pid (-1 if none), and its CPU seconds (utime + stime). */
int t_ksmd_pid(void);
double t_ksmd_cpu(int pid);
/* Pss of pid in KiB, from /proc/PID/smaps_rollup (each page's size divided
 * by the number of processes mapping it, so a sum over processes counts a
 * page once; the shared zero page counts nowhere); 0 if unreadable. */
long long t_pss_kib(int pid);

#endif
