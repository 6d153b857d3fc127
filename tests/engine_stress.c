/* SPDX-License-Identifier: MIT */
/*
 * engine_stress.c - concurrent writers against the merging engine, checked
 * against a shadow copy.
 *
 * Proves that no write is ever lost or misplaced while the engine merges,
 * unmerges and restores memory under the writers' feet. Every merge path is
 * live at once: pair runs and stable-run joins (pages take one of a few
 * contents), chains (max_page_sharing 4), zero pages (use_zero_pages 1),
 * run=2 (toggled with run=1 from another thread) and unregister/restore
 * (chunks unregistered and registered again while written). Writers do
 * whole-page writes, single-byte writes and kernel-mode writes (pread(2)
 * from a file into the page); each keeps a shadow copy of the page under a
 * per-page lock, and a checker compares page and shadow under the same
 * lock. At least a million operations, zero mismatches, and proof that
 * merging really happened meanwhile (peak pages_sharing, zero pages).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "enginetest.h"

#define NP	4096
#define NTMPL	7 /* template 0 is zeros */
#define WRITERS 3
#define MIN_OPS 1000000ul
#define MAX_MS	300000 /* a deadline for a stuck engine, not a time budget: a busy machine takes longer */
#define CHUNK	256
#define HOT	512  /* most writes go to a window of pages that moves */
#define MIN_MS	3000 /* and run long enough for the scanner to merge a lot */

static char *mem;
static uint8_t *shadow;
static uint8_t *tmpl;
static int tmpl_fd;
static pthread_mutex_t *locks;
static atomic_ulong ops, checks, mismatches, kernel_writes, byte_writes, page_writes;
static atomic_ulong toggles, reregisters;
static atomic_int stop;
static atomic_size_t hot_base;
static uint64_t peak_sharing, peak_zero, peak_shared, peak_chains;
static uint64_t merged_seen, last_merged; /* sum of increases of sharing + zero */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void check_page(size_t i)
{
	if (memcmp(mem + i * TPAGE, shadow + i * TPAGE, TPAGE)) {
		if (atomic_fetch_add(&mismatches, 1) < 5) {
			size_t d = 0, first = TPAGE, zero = 0;

			for (size_t b = 0; b < TPAGE; b++) {
				if (mem[i * TPAGE + b] != (char)shadow[i * TPAGE + b]) {
					d++;
					first = first < b ? first : b;
				}
				zero += !mem[i * TPAGE + b];
			}
			fprintf(stderr,
				"  MISMATCH at page %zu: %zu bytes differ from %zu on, page has %zu zero bytes\n", i, d,
				first, zero);
		}
	}
}

static void *writer(void *arg)
{
	uint64_t s = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;

	while (!atomic_load(&stop)) {
		uint64_t r = rnd(&s);
		size_t i = (r >> 8) % 10 ? (atomic_load(&hot_base) + (size_t)(r % HOT)) % NP : (size_t)(r % NP);
		size_t t = (size_t)((r >> 20) % NTMPL);
		unsigned op = (unsigned)((r >> 32) % 100);
		char *p = mem + i * TPAGE;
		uint8_t *sh = shadow + i * TPAGE;

		pthread_mutex_lock(&locks[i]);
		if (op < 45) { /* whole page, user mode */
			memcpy(p, tmpl + t * TPAGE, TPAGE);
			memcpy(sh, tmpl + t * TPAGE, TPAGE);
			atomic_fetch_add(&page_writes, 1);
		} else if (op < 65) { /* one byte */
			size_t off = (size_t)((r >> 40) % TPAGE);
			uint8_t v = (uint8_t)(r >> 56);

			p[off] = (char)v;
			sh[off] = v;
			atomic_fetch_add(&byte_writes, 1);
		} else if (op < 85) { /* kernel mode: the write happens in pread(2) */
			ssize_t n = pread(tmpl_fd, p, TPAGE, (off_t)(t * TPAGE));

			if (n != (ssize_t)TPAGE) {
				fprintf(stderr, "  pread into page %zu: %zd (%s)\n", i, n, strerror(errno));
				atomic_fetch_add(&mismatches, 1);
			}
			memcpy(sh, tmpl + t * TPAGE, TPAGE);
			atomic_fetch_add(&kernel_writes, 1);
		} else if (op < 88) { /* kernel mode, 100 bytes in the middle */
			size_t off = 1000 + (size_t)((r >> 40) % 2000);

			if (pread(tmpl_fd, p + off, 100, (off_t)(t * TPAGE + off)) != 100)
				atomic_fetch_add(&mismatches, 1);
			memcpy(sh + off, tmpl + t * TPAGE + off, 100);
			atomic_fetch_add(&kernel_writes, 1);
		} else {
			check_page(i);
			atomic_fetch_add(&checks, 1);
		}
		pthread_mutex_unlock(&locks[i]);
		/* pause now and then: the scanner runs at nice 5 and the
		 * machine may have 2 cores for 5 busy threads */
		if (!(atomic_fetch_add(&ops, 1) & 127))
			usleep(200);
	}
	return NULL;
}

static void *checker(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		for (size_t i = 0; i < NP && !atomic_load(&stop); i++) {
			pthread_mutex_lock(&locks[i]);
			check_page(i);
			pthread_mutex_unlock(&locks[i]);
			atomic_fetch_add(&checks, 1);
		}
		usleep(2000);
	}
	return NULL;
}

static void note_stats(void)
{
	struct samepage_stats s = et_stats();
	uint64_t merged = s.pages_sharing + s.ksm_zero_pages;

	if (merged > last_merged)
		__atomic_add_fetch(&merged_seen, merged - last_merged, __ATOMIC_RELAXED);
	last_merged = merged;
	if (s.pages_sharing > peak_sharing)
		peak_sharing = s.pages_sharing;
	if (s.pages_shared > peak_shared)
		peak_shared = s.pages_shared;
	if (s.ksm_zero_pages > peak_zero)
		peak_zero = s.ksm_zero_pages;
	if (s.stable_node_chains > peak_chains)
		peak_chains = s.stable_node_chains;
}

/* run 1 / run 2 toggles and chunks unregistered and registered again */
static void *toggler(void *arg)
{
	uint64_t s = 12345;
	unsigned k = 0;

	(void)arg;
	while (!atomic_load(&stop)) {
		uint64_t end = t_now_ms() + 50, scans = et_stats().full_scans;

		atomic_store(&hot_base, (size_t)(rnd(&s) % NP));
		/* 50 ms, and at least two full scans: on a slow or busy machine
		 * the scanner still gets to merge between two undoings */
		while ((t_now_ms() < end || et_stats().full_scans < scans + 2) && !atomic_load(&stop)) {
			note_stats();
			usleep(1000);
		}
		if (k++ % 4 == 1 && !getenv("STRESS_NO_RUN2")) {
			if (samepage_set("run", "2") || samepage_set("run", "1")) {
				fprintf(stderr, "  run toggle failed: %s\n", strerror(errno));
				atomic_fetch_add(&mismatches, 1);
			}
			atomic_fetch_add(&toggles, 1);
		} else if (k % 4 == 0 && !getenv("STRESS_NO_REREG")) {
			char *c = mem + (size_t)(rnd(&s) % (NP / CHUNK)) * CHUNK * TPAGE;

			if (samepage_madvise(c, CHUNK * TPAGE, SAMEPAGE_UNMERGEABLE) ||
			    samepage_madvise(c, CHUNK * TPAGE, SAMEPAGE_MERGEABLE)) {
				fprintf(stderr, "  re-register failed: %s\n", strerror(errno));
				atomic_fetch_add(&mismatches, 1);
			}
			atomic_fetch_add(&reregisters, 1);
		}
	}
	return NULL;
}

static void test_stress(void **state)
{
	pthread_t w[WRITERS], ck, tg;
	uint64_t t0, ms;
	char path[] = "/tmp/samepage-stress-XXXXXX";

	(void)state;
	assert_int_equal(samepage_set("use_zero_pages", getenv("STRESS_NO_ZERO") ? "0" : "1"), 0);
	assert_int_equal(samepage_set("max_page_sharing", "4"), 0);
	mem = t_map(NP);
	shadow = malloc(NP * TPAGE);
	tmpl = malloc(NTMPL * TPAGE);
	locks = calloc(NP, sizeof(*locks));
	assert_non_null(shadow);
	assert_non_null(tmpl);
	assert_non_null(locks);
	for (size_t t = 0; t < NTMPL; t++)
		t_fill(tmpl + t * TPAGE, (uint32_t)t * 11);
	tmpl_fd = mkstemp(path);
	assert_true(tmpl_fd >= 0);
	unlink(path);
	assert_int_equal(write(tmpl_fd, tmpl, NTMPL * TPAGE), NTMPL * TPAGE);
	for (size_t i = 0; i < NP; i++) {
		pthread_mutex_init(&locks[i], NULL);
		memcpy(mem + i * TPAGE, tmpl + (i % NTMPL) * TPAGE, TPAGE);
		memcpy(shadow + i * TPAGE, tmpl + (i % NTMPL) * TPAGE, TPAGE);
	}
	assert_int_equal(samepage_madvise(mem, NP * TPAGE, SAMEPAGE_MERGEABLE), 0);
	assert_int_equal(samepage_wait_scans(3, ET_PATIENCE_MS), 0);
	note_stats();
	printf("  before the writers: pages_sharing %llu, zero pages %llu\n", (unsigned long long)peak_sharing,
	       (unsigned long long)peak_zero);
	peak_sharing = peak_zero = peak_shared = peak_chains = merged_seen = 0; /* count the stress only */

	t0 = t_now_ms();
	for (uintptr_t k = 0; k < WRITERS; k++)
		assert_int_equal(pthread_create(&w[k], NULL, writer, (void *)(k + 1)), 0);
	assert_int_equal(pthread_create(&ck, NULL, checker, NULL), 0);
	assert_int_equal(pthread_create(&tg, NULL, toggler, NULL), 0);
	/* run until every goal is reached (not for a fixed time: a slow or busy
	 * machine just takes longer), within MAX_MS */
	while (t_now_ms() - t0 < MAX_MS && (atomic_load(&ops) < MIN_OPS || t_now_ms() - t0 < MIN_MS ||
					    __atomic_load_n(&merged_seen, __ATOMIC_RELAXED) <= NP ||
					    atomic_load(&toggles) <= 3 || atomic_load(&reregisters) <= 3))
		usleep(10000);
	atomic_store(&stop, 1);
	for (int k = 0; k < WRITERS; k++)
		pthread_join(w[k], NULL);
	pthread_join(ck, NULL);
	pthread_join(tg, NULL);
	ms = t_now_ms() - t0;

	/* quiet now: let it merge once more, then everything still right */
	assert_int_equal(samepage_set("run", "1"), 0);
	assert_int_equal(samepage_wait_scans(2, ET_PATIENCE_MS), 0);
	for (size_t i = 0; i < NP; i++)
		check_page(i);
	assert_int_equal(samepage_munmap(mem, NP * TPAGE) == 0 ? 0 : -1, 0);
	printf("  %lu operations in %llu ms (%lu page, %lu byte, %lu kernel-mode writes, %lu checks), "
	       "%lu run toggles, %lu re-registrations\n",
	       (unsigned long)atomic_load(&ops), (unsigned long long)ms, (unsigned long)atomic_load(&page_writes),
	       (unsigned long)atomic_load(&byte_writes), (unsigned long)atomic_load(&kernel_writes),
	       (unsigned long)atomic_load(&checks), (unsigned long)atomic_load(&toggles),
	       (unsigned long)atomic_load(&reregisters));
	printf("  merging during the stress: peak pages_shared %llu, pages_sharing %llu, ksm_zero_pages %llu, "
	       "chains %llu; %llu pages merged in all; mismatches %lu\n",
	       (unsigned long long)peak_shared, (unsigned long long)peak_sharing, (unsigned long long)peak_zero,
	       (unsigned long long)peak_chains, (unsigned long long)merged_seen,
	       (unsigned long)atomic_load(&mismatches));
	assert_int_equal(atomic_load(&mismatches), 0);
	assert_true(atomic_load(&ops) >= MIN_OPS);
	assert_true(atomic_load(&toggles) > 3);
	assert_true(atomic_load(&reregisters) > 3);
	assert_true(peak_sharing > NP / 4);
	assert_true(merged_seen > NP); /* merged again and again */
	assert_true(peak_zero > 0);
	assert_true(peak_chains > 0);
	close(tmpl_fd);
	free(shadow);
	free(tmpl);
	free(locks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stress),
	};
	int rc = et_start();

	if (rc)
		return rc;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
