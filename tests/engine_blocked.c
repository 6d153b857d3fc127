/* SPDX-License-Identifier: MIT */
/*
 * engine_blocked.c - writers that hit pages while they are being merged.
 *
 * Every page has exactly one twin. Writer threads keep rewriting pages with
 * the bytes they already hold, from user space and through read(2) (a
 * kernel-mode write), so content never changes but every write breaks a
 * merge and the page merges again moments later: writes land on frozen
 * pages all the time. Proves that every such writer is released (each thread
 * keeps making progress; a writer left blocked would stop the test), that
 * content never changes, and that merging really happens meanwhile.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "enginetest.h"

#define NP	1024
#define WRITERS 3
#define SECONDS 3

static char *mem;
static int stop; /* read and written with __atomic builtins */
static unsigned long writes[WRITERS];

static uint32_t tag_of(size_t page)
{
	return 1 + (uint32_t)(page % (NP / 2)); /* pages p and p + NP/2 are twins */
}

static void *writer(void *arg)
{
	long id = (long)arg;
	uint64_t s = 0x9E3779B97F4A7C15ull * (uint64_t)(id + 1);
	int pfd[2];

	if (pipe(pfd))
		return NULL;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		size_t p, off;

		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		/* each writer owns every WRITERS-th page: writers race the
		 * engine, not each other */
		p = (s % (NP / WRITERS)) * WRITERS + (size_t)id;
		off = (s >> 20) % (TPAGE - 8);
		if (s & 1) {
			/* user-mode write of the bytes already there */
			char *c = mem + p * TPAGE + off;

			__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
		} else {
			/* kernel-mode write: read(2) into the page */
			char buf[8];

			memcpy(buf, mem + p * TPAGE + off, sizeof(buf));
			if (write(pfd[1], buf, sizeof(buf)) != sizeof(buf) ||
			    read(pfd[0], mem + p * TPAGE + off, sizeof(buf)) != sizeof(buf))
				break;
		}
		__atomic_add_fetch(&writes[id], 1, __ATOMIC_RELAXED);
	}
	close(pfd[0]);
	close(pfd[1]);
	return NULL;
}

static void test_writers_on_frozen_pages(void **state)
{
	pthread_t t[WRITERS];
	unsigned long before[WRITERS];
	uint64_t peak = 0, t0, end;

	(void)state;
	mem = t_map(NP);
	for (size_t i = 0; i < NP; i++)
		t_fill(mem + i * TPAGE, tag_of(i));
	assert_int_equal(samepage_madvise(mem, NP * TPAGE, SAMEPAGE_MERGEABLE), 0);
	assert_true(et_wait_merged(NP / 2, NP / 2, ET_PATIENCE_MS));
	for (long i = 0; i < WRITERS; i++)
		pthread_create(&t[i], NULL, writer, (void *)i);
	/* SECONDS of writers racing the merges, and on until merging was seen
	 * during them (a busy machine's scanner is slow, not broken) */
	t0 = t_now_ms();
	end = t0 + SECONDS * 1000;
	while (t_now_ms() < end || (!peak && t_now_ms() - t0 < ET_PATIENCE_MS)) {
		struct samepage_stats st = et_stats();

		if (st.pages_sharing > peak)
			peak = st.pages_sharing;
		for (int i = 0; i < WRITERS; i++)
			before[i] = __atomic_load_n(&writes[i], __ATOMIC_RELAXED);
		usleep(100000); /* sampling progress */
		/* nobody is stuck: a writer left blocked never moves again, a
		 * merely descheduled one moves within seconds */
		for (int i = 0; i < WRITERS; i++) {
			uint64_t give_up = t_now_ms() + ET_PATIENCE_MS;

			while (__atomic_load_n(&writes[i], __ATOMIC_RELAXED) == before[i] && t_now_ms() < give_up)
				usleep(1000);
			assert_true(__atomic_load_n(&writes[i], __ATOMIC_RELAXED) > before[i]);
		}
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(t[i], NULL);
	for (size_t i = 0; i < NP; i++)
		assert_true(t_check(mem + i * TPAGE, tag_of(i)));
	printf("  %lu + %lu + %lu writes into merging pages, peak pages_sharing %llu, content intact\n", writes[0],
	       writes[1], writes[2], (unsigned long long)peak);
	assert_true(peak > 0);
	assert_int_equal(samepage_munmap(mem, NP * TPAGE), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writers_on_frozen_pages),
	};
	int rc = et_start();

	if (rc)
		return rc;
	samepage_set("sleep_millisecs", "0");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
