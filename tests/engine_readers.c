/* SPDX-License-Identifier: MIT */
/*
 * engine_readers.c - src/mem's readers of a process's memory (reader.h) on
 * a real one: the engine, samepaged and the estimator read through them.
 *
 * A child process lays out 64 pages: written (anonymous), never touched,
 * read only (the kernel's zero page), page cache of a private file mapping,
 * one of those written (a private anonymous copy). Proves that pagemap
 * flags say which is which; that the walk for the pages ksmd would scan
 * finds exactly the anonymous ones, the same with PAGEMAP_SCAN and with
 * the entry-by-entry fallback, under any limit on ranges and pages per
 * call; that the many-ranges content reader reads every page it is given
 * across several system calls and marks exactly the pages unmapped since;
 * and that a process gone reads as -ESRCH.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "enginetest.h"
#include "mem/reader.h"

#define NP	 64
#define GONE	 35 /* unmapped by the child when asked */
#define ZERO0	 16 /* [16, 24): read only: the zero page */
#define FILE0	 40 /* [40, 48): private file mapping, read */
#define FILE_COW 44 /* ... and this one written */

struct child {
	pid_t pid;
	char *m;
	int cmd; /* write end: 'u' unmaps page GONE, then answers on ack */
	int ack;
};

/* The tag written in page i (0: not written). */
static uint32_t tag_of(size_t i)
{
	if (i < 8 || (i >= 24 && i < 40))
		return (uint32_t)i + 1;
	return i == FILE_COW ? 1000 : 0;
}

static void child_main(char *m, int cmd, int ack)
{
	char path[] = "/tmp/engine_readers.XXXXXX", c;
	int fd = mkstemp(path);
	char *f;

	if (fd < 0 || ftruncate(fd, 8 * TPAGE))
		_exit(1);
	unlink(path);
	for (size_t i = 0; i < 8; i++)
		if (pwrite(fd, "file", 4, (off_t)(i * TPAGE)) != 4)
			_exit(1);
	f = mmap(m + FILE0 * TPAGE, 8 * TPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0);
	if (f == MAP_FAILED)
		_exit(1);
	for (size_t i = 0; i < NP; i++) {
		volatile char *p = m + i * TPAGE;

		if (tag_of(i))
			t_fill((char *)p, tag_of(i));
		else if ((i >= ZERO0 && i < ZERO0 + 8) || (i >= FILE0 && i < FILE0 + 8))
			(void)p[0];
	}
	if (write(ack, "r", 1) != 1)
		_exit(1);
	while (read(cmd, &c, 1) == 1) {
		if (c == 'u')
			munmap(m + GONE * TPAGE, TPAGE);
		if (write(ack, "k", 1) != 1)
			_exit(1);
	}
	_exit(0);
}

static void start(struct child *ch)
{
	int cmd[2], ack[2];
	char c;

	ch->m = mmap(NULL, NP * TPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(ch->m != MAP_FAILED);
	madvise(ch->m, NP * TPAGE, MADV_NOHUGEPAGE);
	assert_int_equal(pipe(cmd), 0);
	assert_int_equal(pipe(ack), 0);
	ch->pid = fork();
	assert_true(ch->pid >= 0);
	if (ch->pid == 0) {
		close(cmd[1]);
		close(ack[0]);
		child_main(ch->m, cmd[0], ack[1]);
	}
	close(cmd[0]);
	close(ack[1]);
	ch->cmd = cmd[1];
	ch->ack = ack[0];
	assert_int_equal(read(ch->ack, &c, 1), 1);
}

static void ask(struct child *ch, char what)
{
	char c;

	assert_int_equal(write(ch->cmd, &what, 1), 1);
	assert_int_equal(read(ch->ack, &c, 1), 1);
}

static void stop(struct child *ch)
{
	int st;

	close(ch->cmd);
	close(ch->ack);
	assert_int_equal(waitpid(ch->pid, &st, 0), ch->pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	munmap(ch->m, NP * TPAGE);
}

/* Pages ksmd would scan: anonymous and present, not the zero page (known
 * to PAGEMAP_SCAN always, to the fallback only by a visible frame). */
static int wanted(size_t i, int zero_known)
{
	if (i >= ZERO0 && i < ZERO0 + 8)
		return !zero_known;
	return tag_of(i) != 0; /* every written page */
}

/* Walks [m, m + NP pages) with the given limits; marks found pages. */
static void walk(struct sp_pagemap *pm, char *m, size_t max, uint64_t max_pages, uint8_t *found)
{
	uintptr_t pos = (uintptr_t)m, end = (uintptr_t)m + NP * TPAGE;
	struct sp_range rg[256];
	int calls = 0;

	memset(found, 0, NP);
	while (pos < end) {
		uintptr_t before = pos;
		long nr = sp_pagemap_present(pm, &pos, end, rg, max, max_pages);
		uint64_t pages = 0;

		assert_true(nr >= 0 && (size_t)nr <= max);
		assert_true(pos > before || nr > 0);
		for (long k = 0; k < nr; k++) {
			assert_true(rg[k].start >= before && rg[k].start + rg[k].npages * TPAGE <= pos);
			assert_int_equal(rg[k].huge, 0); /* MADV_NOHUGEPAGE */
			for (uint64_t j = 0; j < rg[k].npages; j++) {
				size_t i = (rg[k].start - (uintptr_t)m) / TPAGE + j;

				assert_int_equal(found[i], 0);
				found[i] = 1;
			}
			pages += rg[k].npages;
		}
		assert_true(pages <= max_pages);
		assert_true(++calls < 1000);
	}
}

static void test_query_flags(void **state)
{
	struct child ch;
	struct sp_pagemap pm;
	uint8_t f[NP];

	(void)state;
	start(&ch);
	assert_int_equal(sp_pagemap_open(&pm, ch.pid), 0);
	assert_int_equal(sp_pagemap_query(&pm, (uintptr_t)ch.m, NP, f), 0);
	print_message("zero page frame %s\n", pm.zero_pfn ? "known" : "hidden");
	assert_int_equal(f[0], SP_PG_PRESENT);
	assert_int_equal(f[8], 0);
	assert_int_equal(f[ZERO0], SP_PG_PRESENT | (pm.zero_pfn ? SP_PG_ZEROPFN : 0));
	assert_int_equal(f[FILE0], SP_PG_PRESENT | SP_PG_FILE);
	assert_int_equal(f[FILE_COW], SP_PG_PRESENT);
	sp_pagemap_close(&pm);
	stop(&ch);
}

static void test_present_walk(void **state)
{
	static const size_t maxes[] = {256, 3, 1};
	static const uint64_t max_pages[] = {512, 5, 1};
	struct child ch;
	struct sp_pagemap pm;
	uint8_t found[NP];

	(void)state;
	start(&ch);
	assert_int_equal(sp_pagemap_open(&pm, ch.pid), 0);
	for (int fallback = 0; fallback < 2; fallback++) {
		int zero_known = !fallback || pm.zero_pfn;

		for (size_t l = 0; l < 3; l++) {
			walk(&pm, ch.m, maxes[l], max_pages[l], found);
			if (!fallback)
				assert_int_equal(pm.scan, 1); /* Linux 6.7+ */
			for (size_t i = 0; i < NP; i++)
				if (found[i] != wanted(i, zero_known))
					fail_msg("%s, limits %zu/%llu: page %zu %s",
						 fallback ? "fallback" : "PAGEMAP_SCAN", maxes[l],
						 (unsigned long long)max_pages[l], i, found[i] ? "found" : "missed");
		}
		pm.scan = -1; /* the walk of an older kernel */
	}
	/* one call finds the three runs whole: [0, 8), [24, 40), page 44 */
	{
		uintptr_t pos = (uintptr_t)ch.m;
		struct sp_range rg[8];
		long nr;

		pm.scan = 0;
		nr = sp_pagemap_present(&pm, &pos, pos + NP * TPAGE, rg, 8, 512);
		assert_int_equal(nr, 3);
		assert_int_equal(rg[1].start, (uintptr_t)ch.m + 24 * TPAGE);
		assert_int_equal(rg[1].npages, 16);
		assert_int_equal(pos, (uintptr_t)ch.m + NP * TPAGE);
	}
	sp_pagemap_close(&pm);
	stop(&ch);
}

static void test_read_ranges(void **state)
{
	enum { NR = 600 }; /* ranges: more than one process_vm_readv takes */
	struct child ch;
	struct sp_range *rg = calloc(NR, sizeof(*rg));
	uint8_t *buf = malloc((NR + 16) * TPAGE), ok[NR + 16];
	size_t *page = calloc(NR + 16, sizeof(*page)), n = 0;
	long got;

	(void)state;
	assert_true(rg && buf && page);
	start(&ch);
	ask(&ch, 'u'); /* page GONE went away since it was "found" */
	/* single pages, the gone one among them three times (first, inside,
	 * last), then one range of 16 pages across it */
	for (size_t k = 0; k < NR - 1; k++) {
		size_t i = k == 0 || k == 300 || k == NR - 2 ? GONE : k % 8;

		rg[k].start = (uintptr_t)ch.m + i * TPAGE;
		rg[k].npages = 1;
		page[n++] = i;
	}
	rg[NR - 1].start = (uintptr_t)ch.m + 24 * TPAGE;
	rg[NR - 1].npages = 16;
	for (size_t i = 24; i < 40; i++)
		page[n++] = i;
	got = sp_vm_read_ranges(ch.pid, rg, NR, buf, ok);
	assert_int_equal(got, (long)n - 4);
	for (size_t k = 0; k < n; k++) {
		assert_int_equal(ok[k], page[k] != GONE);
		if (ok[k])
			assert_true(t_check(buf + k * TPAGE, tag_of(page[k])));
	}
	/* the scanner's reader stops at the gone page */
	assert_int_equal(sp_vm_read(ch.pid, (uintptr_t)ch.m + 32 * TPAGE, 8, buf), GONE - 32);
	assert_true(t_check(buf, tag_of(32)));
	{
		uint32_t w = 0;

		assert_int_equal(sp_vm_read_bytes(ch.pid, (uintptr_t)ch.m + 7 * TPAGE, &w, sizeof(w)), sizeof(w));
		assert_int_equal(sp_vm_read_bytes(ch.pid, (uintptr_t)ch.m + GONE * TPAGE, &w, sizeof(w)), -EFAULT);
	}
	stop(&ch);
	/* gone: every reader says so */
	{
		struct sp_pagemap pm;

		assert_int_equal(sp_vm_read_ranges(ch.pid, rg, 1, buf, ok), -ESRCH);
		assert_int_equal(sp_vm_read(ch.pid, rg[1].start, 1, buf), -ESRCH);
		assert_int_equal(sp_pagemap_open(&pm, ch.pid), -ESRCH);
	}
	free(rg);
	free(buf);
	free(page);
}

static void test_numa_nodes(void **state)
{
	struct child ch;
	struct sp_range rg[2];
	int nodes[NP];
	char *own = t_map(4);

	(void)state;
	start(&ch);
	rg[0] = (struct sp_range){.start = (uintptr_t)ch.m, .npages = 16};
	rg[1] = (struct sp_range){.start = (uintptr_t)ch.m + 24 * TPAGE, .npages = 8};
	assert_int_equal(sp_numa_nodes(ch.pid, rg, 2, nodes), 0);
	for (size_t i = 0; i < 8; i++)
		assert_true(nodes[i] >= 0);
	for (size_t i = 8; i < 16; i++)
		assert_int_equal(nodes[i], -1); /* not present */
	for (size_t i = 16; i < 24; i++)
		assert_true(nodes[i] >= 0);
	stop(&ch);
	/* this process (pid 0), as the engine asks */
	memset(own, 1, TPAGE);
	rg[0] = (struct sp_range){.start = (uintptr_t)own, .npages = 4};
	assert_int_equal(sp_numa_nodes(0, rg, 1, nodes), 0);
	assert_true(nodes[0] >= 0);
	assert_int_equal(nodes[1], -1);
	munmap(own, 4 * TPAGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_flags),
		cmocka_unit_test(test_present_walk),
		cmocka_unit_test(test_read_ranges),
		cmocka_unit_test(test_numa_nodes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
