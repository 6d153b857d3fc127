/* SPDX-License-Identifier: MIT */
/*
 * engine_dontneed.c - MADV_DONTNEED on merged pages reads zeros, as on
 * anonymous memory under the kernel's KSM, without unregistering first.
 *
 * Proves: a merged page written since (a private copy inside a store
 * mapping) and dropped reads zeros, its neighbours keep their content, and
 * the bookkeeping follows (the page stops counting as a sharer, it is plain
 * anonymous memory again); a merged page never written and dropped reads
 * zeros, touched at once or never touched (the engine converts it when the
 * range retires), and data written after the drop stays; glibc's heap
 * trimming in a thread arena (MADV_DONTNEED in shrink_heap) followed by
 * calloc, which trusts trimmed memory to be zero, gives zeros; writers,
 * droppers and readers racing the scanner (merging, zero pages, run=2)
 * never see a byte they did not expect, shadow-checked; madvise(MADV_DONTNEED)
 * on registered memory returns while the scanner is stopped (run=0);
 * MADV_FREE on a merged page fails with EINVAL and leaves its content.
 */
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "enginetest.h"

#define NP 64

static int all_bytes(const char *p, size_t len, char c)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != c)
			return 0;
	return 1;
}

/* NP pages of 'A', registered and merged into one store page. */
static char *merged_a(void)
{
	char *m = t_map(NP);

	memset(m, 'A', NP * TPAGE);
	assert_int_equal(samepage_madvise(m, NP * TPAGE, SAMEPAGE_MERGEABLE), 0);
	assert_true(et_wait_merged(1, NP - 1, 10000));
	assert_true(all_bytes(m, NP * TPAGE, 'A')); /* read in: all map the store */
	assert_int_equal(et_file_pages(m, NP), NP);
	return m;
}

/* Waits until the range has `merging` pages mapping a store page. */
static int wait_merging(void *m, size_t n, uint64_t merging, int timeout_ms)
{
	uint64_t end = t_now_ms() + (uint64_t)timeout_ms;
	struct samepage_region_stats rs;

	do {
		if (!samepage_region_stats(m, n * TPAGE, &rs) && rs.merging_pages == merging)
			return 1;
		usleep(1000);
	} while (t_now_ms() < end);
	return 0;
}

/* (a) merged, written (copy-on-write broken), dropped: zeros. */
static void test_written_then_dropped(void **state)
{
	char *m = merged_a();

	(void)state;
	memcpy(m, "SECRET", 6);
	assert_memory_equal(m, "SECRET", 6);
	assert_int_equal(madvise(m, TPAGE, MADV_DONTNEED), 0);
	assert_true(all_bytes(m, TPAGE, 0));
	assert_true(all_bytes(m + TPAGE, (NP - 1) * TPAGE, 'A'));
	/* plain anonymous memory now, and it stops counting as merged */
	assert_true(et_maps_are(m, TPAGE, "rw-p", 1));
	assert_true(et_wait_merged(1, NP - 2, 10000));
	assert_true(wait_merging(m, NP, NP - 1, 10000));
	m[100] = 'w';
	assert_int_equal(m[100], 'w');
	assert_true(all_bytes(m + TPAGE, (NP - 1) * TPAGE, 'A'));
	assert_int_equal(samepage_munmap(m, NP * TPAGE), 0);
	assert_true(et_wait_merged(0, 0, 10000));
}

/* (b) merged, never written, dropped: zeros, touched or not. */
static void test_unwritten_dropped(void **state)
{
	char *m = merged_a();

	(void)state;
	/* page 5: dropped, then read at once */
	assert_int_equal(madvise(m + 5 * TPAGE, TPAGE, MADV_DONTNEED), 0);
	assert_true(all_bytes(m + 5 * TPAGE, TPAGE, 0));
	/* page 6: dropped, then written: the write stays */
	assert_int_equal(madvise(m + 6 * TPAGE, TPAGE, MADV_DONTNEED), 0);
	m[6 * TPAGE + 7] = 'z';
	/* pages 10..19: dropped and not touched until the range retires and
	 * the engine has converted them (the counters say so) */
	assert_int_equal(madvise(m + 10 * TPAGE, 10 * TPAGE, MADV_DONTNEED), 0);
	assert_true(wait_merging(m, NP, NP - 12, 10000));
	assert_true(et_wait_merged(1, NP - 13, 10000));
	assert_true(et_maps_are(m + 10 * TPAGE, 10 * TPAGE, "rw-p", 1));
	assert_true(all_bytes(m + 10 * TPAGE, 10 * TPAGE, 0));
	assert_int_equal(m[6 * TPAGE + 7], 'z');
	assert_true(all_bytes(m + 6 * TPAGE, 7, 0));
	assert_true(all_bytes(m + 6 * TPAGE + 8, TPAGE - 8, 0));
	for (size_t i = 0; i < NP; i++)
		if (i != 5 && i != 6 && (i < 10 || i >= 20))
			assert_true(all_bytes(m + i * TPAGE, TPAGE, 'A'));
	/* dropped pages merge again once they hold equal content */
	memset(m + 5 * TPAGE, 'A', TPAGE);
	memset(m + 6 * TPAGE, 'A', TPAGE);
	for (size_t i = 10; i < 20; i++)
		memset(m + i * TPAGE, 'A', TPAGE);
	assert_true(et_wait_merged(1, NP - 1, 10000));
	assert_true(all_bytes(m, NP * TPAGE, 'A'));
	assert_int_equal(samepage_munmap(m, NP * TPAGE), 0);
	assert_true(et_wait_merged(0, 0, 10000));
}

/* (c) glibc: a thread arena's heap is trimmed with MADV_DONTNEED
 * (shrink_heap), and calloc then skips clearing the trimmed part, trusting
 * it to read zeros. */
#define HEAP_BLOCK (1024 * 1024)

static void *arena_thread(void *arg)
{
	char *p = malloc(HEAP_BLOCK), *q, *lo, *hi;
	size_t n;
	int *bad = arg;

	*bad = 1;
	if (!p)
		return NULL;
	memset(p, 'A', HEAP_BLOCK);
	lo = (char *)(((uintptr_t)p + TPAGE - 1) & ~(TPAGE - 1));
	hi = (char *)(((uintptr_t)p + HEAP_BLOCK) & ~(TPAGE - 1));
	n = (size_t)(hi - lo) / TPAGE;
	if (samepage_madvise(lo, (size_t)(hi - lo), SAMEPAGE_MERGEABLE) || !et_wait_merged(1, n - 1, 10000))
		return NULL;
	if (!all_bytes(lo, n * TPAGE, 'A') || et_file_pages(lo, n) != n)
		return NULL;
	free(p);		   /* top chunk over M_TRIM_THRESHOLD: MADV_DONTNEED */
	q = calloc(1, HEAP_BLOCK); /* from the same place */
	if (!q)
		return NULL;
	*bad = !all_bytes(q, HEAP_BLOCK, 0) ? 2 : (q > hi || q + HEAP_BLOCK < lo) ? 3 : 0;
	samepage_madvise(lo, (size_t)(hi - lo), SAMEPAGE_UNMERGEABLE);
	free(q);
	return NULL;
}

static void test_calloc_after_trim(void **state)
{
	pthread_t t;
	int bad = -1;

	(void)state;
	/* the block comes from the heap, and freeing it trims (glibc's
	 * malloc only: a sanitizer's allocator has no mallopt) */
	if (mallopt(M_MMAP_THRESHOLD, 16 * HEAP_BLOCK) != 1 || mallopt(M_TRIM_THRESHOLD, 64 * 1024) != 1) {
		printf("  not glibc's malloc: skipped\n");
		skip();
	}
	assert_int_equal(pthread_create(&t, NULL, arena_thread, &bad), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(bad, 0);
	assert_true(et_wait_merged(0, 0, 10000));
}

/* (d) droppers, writers and readers against the scanner, shadow-checked. */
#define SP	   1024
#define NTMPL	   4 /* template 0 is zeros */
#define THREADS	   3
#define MIN_OPS	   200000ul
#define MIN_MS	   3000
#define MIN_MERGED 100	  /* drops of pages that mapped a store page */
#define MAX_MS	   300000 /* a deadline for a stuck engine, not a time budget */

static char *smem;
static uint8_t *sshadow;
static pthread_mutex_t slocks[SP];
static atomic_ulong sops, smismatch, sdrops, sdrops_merged, swrites, sreads;
/* operations allowed so far: PER_SCAN more after each full scan, so the
 * writers never outrun a scanner that a busy machine slows down (and the
 * test's goals are reached at whatever speed the machine has) */
static atomic_ulong sallowed;
#define PER_SCAN (4 * SP)
static atomic_int sstop;
static atomic_size_t shot; /* drops go to SHOT pages from here, which move */
#define SHOT 64

static void fill_tmpl(void *p, unsigned t)
{
	if (t)
		t_fill(p, 1000 + t);
	else
		memset(p, 0, TPAGE);
}

static const uint8_t zero_page[TPAGE];

static void *stress_worker(void *arg)
{
	uint64_t s = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;

	while (!atomic_load(&sstop)) {
		size_t i;
		unsigned op;

		if (atomic_load(&sops) >= atomic_load(&sallowed)) {
			usleep(500); /* waiting for the scanner */
			continue;
		}
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		i = (size_t)(s % SP);
		op = (unsigned)((s >> 20) % 8);
		/* drops and most writes stay in two windows, which move: the
		 * rest merges meanwhile, and the drop window moves onto it */
		if (op < 2)
			i = (atomic_load(&shot) + i % SHOT) % SP;
		else if (op < 5 && (s >> 58) != 0)
			i = (atomic_load(&shot) + SP / 2 + i % (2 * SHOT)) % SP;
		pthread_mutex_lock(&slocks[i]);
		if (op < 2) { /* drop */
			if (et_file_pages(smem + i * TPAGE, 1) == 1)
				atomic_fetch_add(&sdrops_merged, 1);
			if (madvise(smem + i * TPAGE, TPAGE, MADV_DONTNEED)) {
				fprintf(stderr, "  page %zu: MADV_DONTNEED failed: %s\n", i, strerror(errno));
				atomic_fetch_add(&smismatch, 1);
			}
			memset(sshadow + i * TPAGE, 0, TPAGE);
			atomic_fetch_add(&sdrops, 1);
		} else if (op < 4) { /* whole page: one of the templates */
			fill_tmpl(smem + i * TPAGE, (unsigned)((s >> 40) % NTMPL));
			memcpy(sshadow + i * TPAGE, smem + i * TPAGE, TPAGE);
			atomic_fetch_add(&swrites, 1);
		} else if (op == 4) { /* one byte */
			size_t off = (size_t)((s >> 32) % TPAGE);
			char v = (char)(s >> 48);

			smem[i * TPAGE + off] = v;
			sshadow[i * TPAGE + off] = (uint8_t)v;
			atomic_fetch_add(&swrites, 1);
		} else { /* read */
			atomic_fetch_add(&sreads, 1);
		}
		if (memcmp(smem + i * TPAGE, sshadow + i * TPAGE, TPAGE)) {
			size_t off = 0;

			while (off < TPAGE && smem[i * TPAGE + off] == (char)sshadow[i * TPAGE + off])
				off++;
			/* what went wrong, for whoever has to find out why */
			fprintf(stderr,
				"  page %zu after op %u: byte %zu reads %#x, expected %#x; maps a store page: %zu; "
				"all zero: %d\n",
				i, op, off, (unsigned)(uint8_t)smem[i * TPAGE + off],
				(unsigned)sshadow[i * TPAGE + off], et_file_pages(smem + i * TPAGE, 1),
				!memcmp(smem + i * TPAGE, zero_page, TPAGE));
			atomic_fetch_add(&smismatch, 1);
		}
		pthread_mutex_unlock(&slocks[i]);
		if (atomic_fetch_add(&sops, 1) % 16 == 0)
			usleep(100); /* leave the (nice 5) scanner some CPU */
	}
	return NULL;
}

static void test_stress(void **state)
{
	pthread_t th[THREADS];
	uint64_t t0 = t_now_ms(), peak = 0, toggles = 0, scans = 0, toggled_at = 0;

	(void)state;
	smem = t_map(SP);
	sshadow = malloc(SP * TPAGE);
	assert_non_null(sshadow);
	for (size_t i = 0; i < SP; i++) {
		pthread_mutex_init(&slocks[i], NULL);
		fill_tmpl(smem + i * TPAGE, (unsigned)(i % NTMPL));
	}
	memcpy(sshadow, smem, SP * TPAGE);
	assert_int_equal(samepage_set("use_zero_pages", "1"), 0);
	assert_int_equal(samepage_madvise(smem, SP * TPAGE, SAMEPAGE_MERGEABLE), 0);
	atomic_store(&sallowed, PER_SCAN);
	for (long k = 0; k < THREADS; k++)
		assert_int_equal(pthread_create(&th[k], NULL, stress_worker, (void *)k), 0);
	while ((atomic_load(&sops) < MIN_OPS || t_now_ms() - t0 < MIN_MS || atomic_load(&sdrops_merged) < MIN_MERGED) &&
	       t_now_ms() - t0 < MAX_MS) {
		struct samepage_stats st = et_stats();

		if (st.pages_sharing > peak)
			peak = st.pages_sharing;
		if (st.full_scans != scans) {
			scans = st.full_scans;
			atomic_store(&sallowed, atomic_load(&sops) + PER_SCAN);
		}
		usleep(20000);
		if (++toggles % 9 == 0)
			atomic_store(&shot, (atomic_load(&shot) + 3 * SHOT + 7) % SP);
		/* now and then run=2 (restores), then merge again; two full
		 * scans at least in between, or nothing would stay merged */
		if (toggles % 60 == 0 && st.full_scans >= toggled_at + 2) {
			assert_int_equal(samepage_set("run", "2"), 0);
			assert_int_equal(samepage_set("run", "1"), 0);
			toggled_at = et_stats().full_scans;
		}
	}
	atomic_store(&sstop, 1);
	for (int k = 0; k < THREADS; k++)
		pthread_join(th[k], NULL);
	for (size_t i = 0; i < SP; i++)
		if (memcmp(smem + i * TPAGE, sshadow + i * TPAGE, TPAGE))
			atomic_fetch_add(&smismatch, 1);
	printf("  %lu ops in %llu ms: %lu drops (%lu of pages mapping a store page), %lu writes, %lu reads; peak "
	       "pages_sharing "
	       "%llu; %lu mismatches\n",
	       atomic_load(&sops), (unsigned long long)(t_now_ms() - t0), atomic_load(&sdrops),
	       atomic_load(&sdrops_merged), atomic_load(&swrites), atomic_load(&sreads), (unsigned long long)peak,
	       atomic_load(&smismatch));
	assert_int_equal(atomic_load(&smismatch), 0);
	assert_true(atomic_load(&sops) >= MIN_OPS);
	assert_true(peak > 0);
	assert_true(atomic_load(&sdrops_merged) >= MIN_MERGED);
	assert_int_equal(samepage_munmap(smem, SP * TPAGE), 0);
	assert_int_equal(samepage_set("use_zero_pages", "0"), 0);
	assert_true(et_wait_merged(0, 0, 10000));
	free(sshadow);
}

/* (e) with the scanner stopped, MADV_DONTNEED on registered memory
 * returns (someone reads the events) and merged pages still read zeros. */
struct dn_arg {
	char *p;
	size_t len;
	atomic_int done;
	int rc;
};

static void *dontneed_thread(void *arg)
{
	struct dn_arg *a = arg;

	a->rc = madvise(a->p, a->len, MADV_DONTNEED);
	atomic_store(&a->done, 1);
	return NULL;
}

static int dontneed_within(char *p, size_t len, int timeout_ms)
{
	struct dn_arg a = {.p = p, .len = len};
	uint64_t end = t_now_ms() + (uint64_t)timeout_ms;
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, dontneed_thread, &a), 0);
	while (!atomic_load(&a.done) && t_now_ms() < end)
		usleep(1000);
	if (!atomic_load(&a.done))
		return 0; /* hung: the thread is left behind, the test fails */
	pthread_join(t, NULL);
	return a.rc == 0;
}

static void test_run0_no_hang(void **state)
{
	char *m = merged_a();
	char *plain = t_map(4);

	(void)state;
	memset(plain, 'p', 4 * TPAGE);
	assert_int_equal(samepage_madvise(plain, 4 * TPAGE, SAMEPAGE_MERGEABLE), 0);
	assert_int_equal(samepage_set("run", "0"), 0);
	m[3 * TPAGE] = 'S';
	assert_true(dontneed_within(m, 8 * TPAGE, 5000));
	assert_true(dontneed_within(plain, 4 * TPAGE, 5000));
	assert_true(all_bytes(m, 8 * TPAGE, 0));
	assert_true(all_bytes(plain, 4 * TPAGE, 0));
	assert_true(all_bytes(m + 8 * TPAGE, (NP - 8) * TPAGE, 'A'));
	/* the bookkeeping follows with the scanner stopped */
	assert_true(et_wait_merged(1, NP - 9, 10000));
	assert_int_equal(samepage_set("run", "1"), 0);
	assert_int_equal(samepage_munmap(plain, 4 * TPAGE), 0);
	assert_int_equal(samepage_munmap(m, NP * TPAGE), 0);
	assert_true(et_wait_merged(0, 0, 10000));
}

/* MADV_FREE on a merged page: the store mapping is file-backed, so the
 * kernel refuses (EINVAL) and the content stays; on a page not merged it
 * works as on anonymous memory. */
static void test_madv_free(void **state)
{
	char *m = merged_a();

	(void)state;
	errno = 0;
	assert_int_equal(madvise(m + 2 * TPAGE, TPAGE, MADV_FREE), -1);
	assert_int_equal(errno, EINVAL);
	assert_true(all_bytes(m, NP * TPAGE, 'A'));
	m[0] = 'B'; /* still a store mapping (copy-on-write broken) */
	assert_int_equal(madvise(m, TPAGE, MADV_FREE), -1);
	/* old content or zeros, never another page's */
	assert_true(m[0] == 'B' || m[0] == 0);
	/* merges into the range wait until it retires: page 0 merging again
	 * shows it has, and the pages it refused to free are as they were */
	memset(m, 'A', TPAGE);
	assert_true(et_wait_merged(1, NP - 1, 10000));
	assert_true(all_bytes(m, NP * TPAGE, 'A'));
	assert_int_equal(samepage_munmap(m, NP * TPAGE), 0);
	assert_true(et_wait_merged(0, 0, 10000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_written_then_dropped),
		cmocka_unit_test(test_unwritten_dropped),
		cmocka_unit_test(test_calloc_after_trim),
		cmocka_unit_test(test_run0_no_hang),
		cmocka_unit_test(test_madv_free),
		cmocka_unit_test(test_stress),
	};
	int rc = et_start();

	if (rc)
		return rc;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
