/* SPDX-License-Identifier: MIT */
/*
 * daemon_faults.c - samepaged when things go wrong.
 *
 *   test_kill9_writers     kill -9 of the daemon, three times, at random
 *                          moments while it merges as fast as it can and
 *                          writer threads of a client keep rewriting its
 *                          pages (the second and third time at a moment a
 *                          writer is blocked on a page the daemon froze,
 *                          made sure of by stopping the daemon first):
 *                          every writer moves again within a second (the
 *                          longest stall each one sees is measured), no
 *                          write is ever lost (each thread checks its pages
 *                          against a shadow copy before every write), and
 *                          once the daemon is back the client reconnects
 *                          (32 ranges to register again) and its pages
 *                          merge again, with no writer stalled meanwhile.
 *   test_unregister_middle a client unregisters the middle half of a merged
 *                          range: content intact, the daemon's counters and
 *                          registered bytes drop by exactly that half, and
 *                          MADV_DONTNEED there reads zeros (plain memory).
 *   test_protocol_abuse    malformed, oversized, out-of-order, unknown
 *                          messages, bad descriptors, a second HELLO, 2000
 *                          connections, a knob write by an unprivileged
 *                          user, a connection whose process exited before
 *                          it was accepted, a few thousand fuzzed messages:
 *                          only the offending connection goes, the daemon
 *                          keeps answering and a merged client stays
 *                          exactly as it was (counters and content).
 *   test_bad_config        a configuration with an error: samepaged exits 1
 *                          naming the file and the line, and never listens.
 *
 * Every wait has a deadline and ends as soon as its condition holds.
 * FAULTS_SEED=N repeats the kill moments of an earlier run (printed).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemontest.h"
#include "proto/wire.h"
#include "samepage.h"
#include "testlib.h"
#include "util/clock.h"

#define DOM "domain user:0" /* root's per-user domain: every client here */

static void pause_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Reads exactly n bytes from a pipe within timeout_ms. 0 or -1. */
static int read_full(int fd, void *buf, size_t n, int timeout_ms)
{
	uint64_t deadline = t_now_ms() + (uint64_t)timeout_ms;
	size_t got = 0;

	while (got < n) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		uint64_t now = t_now_ms();
		ssize_t r;

		if (now >= deadline || poll(&p, 1, (int)(deadline - now)) != 1)
			return -1;
		r = read(fd, (char *)buf + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int daemon_alive(const struct dt_daemon *d)
{
	return d->pid > 0 && waitpid(d->pid, NULL, WNOHANG) == 0 && kill(d->pid, 0) == 0;
}

/* ======================================================================
 * kill -9 with writers on frozen pages
 * ====================================================================== */

#define K_NP	  4096 /* pages, registered as K_RANGES ranges */
#define K_RANGES  32   /* many: each is one more REGISTER when reconnecting */
#define K_WRITERS 3    /* writer i owns the pages p % 4 == i; p % 4 == 3 stay as filled */
#define K_HOT \
	1 /* a writer's first K_HOT pages take half its writes, same content: \
			   merged again every full scan, often while being written */
#define K_NTAG	 32
#define K_CYCLES 3

struct k_report {
	uint32_t max_gap_us[K_WRITERS]; /* longest time between two writes, this window */
	uint64_t slow[K_WRITERS];	/* writes that took over 1 ms (blocked, or preempted) */
	uint64_t writes[K_WRITERS];
	uint64_t mismatches; /* a page not reading what its writer last wrote */
	uint64_t bad;	     /* at the end: pages not as last written */
	uint32_t moved;	     /* every writer wrote again after the window ended */
	int32_t killer;	     /* 'b': the writer blocked when the daemon was killed; -2 none seen, -1 'k' */
	uint32_t blocked_us; /* 'b': how long it had been inside that write */
	uint32_t release_us; /* 'b': from the kill to the end of that write */
};

struct k_writer {
	long id;
	pthread_t t;
	pid_t tid;
	uint64_t writes, last_ns, max_gap_ns, slow, mismatches; /* __atomic */
	uint64_t in_write;					/* start of the write under way, 0 none */
};

static char *k_mem;
static uint32_t k_shadow[K_NP];
static int k_stop;
static struct k_writer k_w[K_WRITERS];

static uint32_t k_tag0(size_t p)
{
	return 1 + (uint32_t)((p / 4) % K_NTAG);
}

static void *k_writer_fn(void *arg)
{
	struct k_writer *w = arg;
	uint64_t s = 0x9E3779B97F4A7C15ull * (uint64_t)(w->id + 1), gen = 0;
	const struct timespec pace = {.tv_sec = 0, .tv_nsec = 50000};

	__atomic_store_n(&w->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	__atomic_store_n(&w->last_ns, sp_mono_ns(), __ATOMIC_RELAXED);
	while (!__atomic_load_n(&k_stop, __ATOMIC_RELAXED)) {
		uint64_t x = xorshift(&s);
		int hot = x & 1;
		size_t p = (hot ? (x >> 1) % K_HOT : (x >> 1) % (K_NP / 4)) * 4 + (size_t)w->id;
		char *page = k_mem + p * TPAGE;
		uint64_t t0, t1, gap;
		uint32_t tag;

		if (!t_check(page, k_shadow[p])) {
			if (__atomic_add_fetch(&w->mismatches, 1, __ATOMIC_RELAXED) <= 5)
				fprintf(stderr, "writer %ld: page %zu does not read tag %u (first word %08x)\n", w->id,
					p, k_shadow[p], *(uint32_t *)page);
		}
		/* mostly the same content again (a write that breaks a merge,
		 * and the page merges again soon), now and then the next value
		 * of a counter */
		tag = hot || (xorshift(&s) & 3) ? k_shadow[p] : 1 + (uint32_t)(++gen % K_NTAG);
		t0 = sp_mono_ns();
		__atomic_store_n(&w->in_write, t0, __ATOMIC_RELAXED);
		t_fill(page, tag);
		__atomic_store_n(&w->in_write, 0, __ATOMIC_RELAXED);
		t1 = sp_mono_ns();
		k_shadow[p] = tag;
		if (t1 - t0 > 1000000)
			__atomic_add_fetch(&w->slow, 1, __ATOMIC_RELAXED);
		gap = t1 - __atomic_load_n(&w->last_ns, __ATOMIC_RELAXED);
		if (gap > __atomic_load_n(&w->max_gap_ns, __ATOMIC_RELAXED))
			__atomic_store_n(&w->max_gap_ns, gap, __ATOMIC_RELAXED);
		__atomic_store_n(&w->last_ns, t1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&w->writes, 1, __ATOMIC_RELAXED);
		nanosleep(&pace, NULL); /* pacing: pages stay put long enough to merge */
	}
	return NULL;
}

/* The scheduler state of a thread of ours ('S': asleep in the kernel). */
static char task_state(pid_t tid)
{
	char path[64], buf[256], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

/* A writer asleep inside a write (on a page the daemon froze: a writer
 * merely preempted is 'R', one waiting for mmap_lock 'D'), -1 none. Its
 * write's start goes to *since. */
static int k_blocked_writer(uint64_t min_ns, uint64_t *since)
{
	for (int i = 0; i < K_WRITERS; i++) {
		uint64_t t = __atomic_load_n(&k_w[i].in_write, __ATOMIC_RELAXED);

		if (t && sp_mono_ns() - t >= min_ns && task_state(k_w[i].tid) == 'S' &&
		    __atomic_load_n(&k_w[i].in_write, __ATOMIC_RELAXED) == t) {
			*since = t;
			return i;
		}
	}
	return -1;
}

/* Kills the daemon (pid) while a writer is blocked on a page it froze.
 * Blocks last a fraction of a millisecond, so: a writer seen blocked, the
 * daemon stopped at once (SIGSTOP: nothing it froze can be thawed or woken
 * now), the same writer still blocked in the same write 2 ms later, then
 * SIGKILL; else SIGCONT and look again. Then waits for that writer to be
 * released. 10 s without such a moment: -2 (the caller kills). */
static int k_kill_when_blocked(pid_t pid, uint32_t *blocked_us, uint32_t *release_us)
{
	uint64_t deadline = t_now_ms() + 10000, since, again, t;
	const struct timespec tick = {.tv_sec = 0, .tv_nsec = 20000};

	while (t_now_ms() < deadline) {
		int i = k_blocked_writer(30000, &since);

		if (i < 0) {
			nanosleep(&tick, NULL);
			continue;
		}
		kill(pid, SIGSTOP);
		pause_ms(2); /* (the stop takes effect meanwhile) */
		if (k_blocked_writer(0, &again) != i || again != since) {
			kill(pid, SIGCONT);
			continue;
		}
		kill(pid, SIGKILL);
		t = sp_mono_ns();
		*blocked_us = (uint32_t)((t - since) / 1000);
		while (__atomic_load_n(&k_w[i].in_write, __ATOMIC_RELAXED) == since &&
		       sp_mono_ns() - t < 10000000000ull)
			sched_yield();
		*release_us = (uint32_t)((sp_mono_ns() - t) / 1000);
		return i;
	}
	return -2;
}

/* The window ends: waits until every writer wrote 20 more times (10 s at
 * most), then reports the window. */
static void k_window_report(struct k_report *r)
{
	uint64_t snap[K_WRITERS], deadline = t_now_ms() + 10000;
	int all;

	for (int i = 0; i < K_WRITERS; i++)
		snap[i] = __atomic_load_n(&k_w[i].writes, __ATOMIC_RELAXED);
	do {
		all = 1;
		for (int i = 0; i < K_WRITERS; i++)
			if (__atomic_load_n(&k_w[i].writes, __ATOMIC_RELAXED) < snap[i] + 20)
				all = 0;
		if (!all)
			pause_ms(1);
	} while (!all && t_now_ms() < deadline);
	r->moved = (uint32_t)all;
	r->mismatches = 0;
	for (int i = 0; i < K_WRITERS; i++) {
		uint64_t gap = __atomic_load_n(&k_w[i].max_gap_ns, __ATOMIC_RELAXED);
		uint64_t open = sp_mono_ns() - __atomic_load_n(&k_w[i].last_ns, __ATOMIC_RELAXED);

		if (open > gap) /* still blocked: that stall counts too */
			gap = open;
		r->max_gap_us[i] = (uint32_t)(gap / 1000 < UINT32_MAX ? gap / 1000 : UINT32_MAX);
		r->slow[i] = __atomic_load_n(&k_w[i].slow, __ATOMIC_RELAXED);
		r->writes[i] = __atomic_load_n(&k_w[i].writes, __ATOMIC_RELAXED);
		r->mismatches += __atomic_load_n(&k_w[i].mismatches, __ATOMIC_RELAXED);
	}
}

static void k_open_window(void)
{
	for (int i = 0; i < K_WRITERS; i++)
		__atomic_store_n(&k_w[i].max_gap_ns, 0, __ATOMIC_RELAXED);
}

/* child: fill, register range by range, start the writers ('r'); then
 * 'k' opens a window (longest stalls from now), 'b' + a pid opens one and
 * kills that daemon the moment a writer is blocked, 'e' ends the window
 * (report), 'q' stops the writers, checks every page and reports */
static int k_client(void *arg, int wr, int rd)
{
	struct k_report rep;
	pid_t pid;
	char b;

	(void)arg;
	memset(&rep, 0, sizeof(rep));
	k_mem = t_map(K_NP);
	for (size_t p = 0; p < K_NP; p++) {
		k_shadow[p] = k_tag0(p);
		t_fill(k_mem + p * TPAGE, k_shadow[p]);
	}
	for (int r = 0; r < K_RANGES; r++)
		if (samepage_madvise(k_mem + (size_t)r * (K_NP / K_RANGES) * TPAGE, K_NP / K_RANGES * TPAGE,
				     SAMEPAGE_MERGEABLE))
			return perror("samepage_madvise"), 1;
	for (long i = 0; i < K_WRITERS; i++) {
		k_w[i].id = i;
		if (pthread_create(&k_w[i].t, NULL, k_writer_fn, &k_w[i]))
			return 1;
	}
	for (int i = 0; i < K_WRITERS; i++)
		while (!__atomic_load_n(&k_w[i].tid, __ATOMIC_ACQUIRE))
			pause_ms(1);
	if (write(wr, "r", 1) != 1)
		return 1;
	while (read(rd, &b, 1) == 1) {
		switch (b) {
		case 'k':
			k_open_window();
			rep.killer = -1;
			if (write(wr, "k", 1) != 1)
				return 1;
			break;
		case 'b':
			if (read_full(rd, &pid, sizeof(pid), 10000))
				return 1;
			k_open_window();
			rep.killer = k_kill_when_blocked(pid, &rep.blocked_us, &rep.release_us);
			if (write(wr, "b", 1) != 1)
				return 1;
			break;
		case 'e':
			k_window_report(&rep);
			if (write(wr, &rep, sizeof(rep)) != sizeof(rep))
				return 1;
			break;
		case 'q':
			k_window_report(&rep);
			__atomic_store_n(&k_stop, 1, __ATOMIC_RELAXED);
			for (int i = 0; i < K_WRITERS; i++)
				pthread_join(k_w[i].t, NULL);
			for (size_t p = 0; p < K_NP; p++)
				rep.bad += !t_check(k_mem + p * TPAGE, k_shadow[p]);
			if (write(wr, &rep, sizeof(rep)) != sizeof(rep))
				return 1;
			return samepage_munmap(k_mem, K_NP * TPAGE) ? 1 : 0;
		default:
			return 1;
		}
	}
	return 1;
}

static void k_get_report(struct dt_child *c, struct k_report *r, const char *what)
{
	uint32_t worst = 0;
	char line[128];

	assert_int_equal(read_full(c->rd, r, sizeof(*r), DT_PATIENCE_MS), 0);
	for (int i = 0; i < K_WRITERS; i++)
		worst = r->max_gap_us[i] > worst ? r->max_gap_us[i] : worst;
	if (r->killer >= 0)
		snprintf(line, sizeof(line), "%s writer %d blocked %.1f ms, released %.1f ms after the kill:", what,
			 r->killer, r->blocked_us / 1000.0, r->release_us / 1000.0);
	else if (r->killer == -2)
		snprintf(line, sizeof(line), "%s no writer seen blocked in 10 s:", what);
	else
		snprintf(line, sizeof(line), "%s", what);
	printf("  %-44s longest writer stall %6.1f ms (writers %.1f %.1f %.1f; writes over 1 ms so far %llu %llu "
	       "%llu)\n",
	       line, worst / 1000.0, r->max_gap_us[0] / 1000.0, r->max_gap_us[1] / 1000.0, r->max_gap_us[2] / 1000.0,
	       (unsigned long long)r->slow[0], (unsigned long long)r->slow[1], (unsigned long long)r->slow[2]);
	assert_true(r->moved);
	assert_int_equal(r->mismatches, 0);
	assert_true(worst < 1000000);
}

static void k_knobs(const struct dt_daemon *d)
{
	assert_int_equal(dt_set(d, "", "pages_to_scan", "10000"), 0);
	assert_int_equal(dt_set(d, "", "sleep_millisecs", "0"), 0);
}

static void test_kill9_writers(void **state)
{
	struct dt_daemon d;
	struct dt_child c;
	struct k_report r;
	unsigned seed = (unsigned)time(NULL);
	const char *env = getenv("FAULTS_SEED");
	char what[96];
	int caught = 0;

	(void)state;
	if (env)
		seed = (unsigned)strtoul(env, NULL, 10);
	printf("  FAULTS_SEED=%u\n", seed);
	dt_start(&d, NULL);
	k_knobs(&d);
	setenv("SAMEPAGE_DAEMON", d.sock, 1);
	dt_spawn(&c, k_client, NULL);
	assert_int_equal(dt_step(&c), 'r');
	for (int cycle = 0; cycle < K_CYCLES; cycle++) {
		long delay = (long)(rand_r(&seed) % 300);
		long long sharing = dt_wait(&d, DOM, "pages_sharing", 1);

		assert_true(sharing > 0);
		/* a random moment of the merging */
		pause_ms(delay);
		if (cycle == 0) {
			/* just any moment */
			dt_go(&c, 'k');
			assert_int_equal(dt_step(&c), 'k');
			dt_kill9(&d);
			snprintf(what, sizeof(what), "kill %d (+%ld ms):", cycle + 1, delay);
		} else {
			/* the moment a writer is blocked on a frozen page */
			dt_go(&c, 'b');
			assert_int_equal(write(c.wr, &d.pid, sizeof(d.pid)), (ssize_t)sizeof(d.pid));
			assert_int_equal(dt_step(&c), 'b');
			dt_kill9(&d); /* reaps it (kills it if no writer was seen blocked) */
			snprintf(what, sizeof(what), "kill %d (+%ld ms):", cycle + 1, delay);
		}
		dt_go(&c, 'e');
		k_get_report(&c, &r, what);
		caught += r.killer >= 0;

		/* back: the client reconnects, restores and registers again */
		dt_go(&c, 'k');
		assert_int_equal(dt_step(&c), 'k');
		dt_restart(&d);
		k_knobs(&d);
		assert_true(dt_wait(&d, DOM, "clients", 1) >= 1);
		/* every range registered again (one by one: merging may start
		 * before the last one is back) */
		assert_int_equal(dt_wait(&d, DOM, "registered_bytes", DT_EQ(K_NP * TPAGE)), K_NP * TPAGE);
		sharing = dt_wait(&d, DOM, "pages_sharing", K_NP / 2);
		assert_true(sharing >= K_NP / 2);
		dt_go(&c, 'e');
		snprintf(what, sizeof(what), "restart %d (pages_sharing %lld):", cycle + 1, sharing);
		k_get_report(&c, &r, what);
	}
	/* the point of it: a kill while a writer waited on the daemon */
	assert_true(caught >= 1);
	dt_go(&c, 'q');
	assert_int_equal(read_full(c.rd, &r, sizeof(r), DT_PATIENCE_MS), 0);
	printf("  %llu + %llu + %llu writes, %llu pages not as last written\n", (unsigned long long)r.writes[0],
	       (unsigned long long)r.writes[1], (unsigned long long)r.writes[2], (unsigned long long)r.bad);
	assert_int_equal(r.mismatches, 0);
	assert_int_equal(r.bad, 0);
	assert_int_equal(dt_reap(&c), 0);
	assert_int_equal(dt_wait(&d, DOM, "clients", DT_EQ(0)), 0);
	assert_int_equal(dt_wait(&d, DOM, "pages_shared", DT_EQ(0)), 0);
	assert_int_equal(dt_value(dt_status(&d), DOM, "registered_bytes"), 0);
	assert_true(dt_stop(&d));
	dt_cleanup(&d);
}

/* samepaged killed, restarted, and killed again while a writer waits on a
 * page the new daemon froze, most often while the client is still
 * registering its ranges with it (each REGISTER is answered after the
 * scanner's batch, which merges the ranges already back); then no daemon
 * at all. What that daemon froze must be thawed by the client alone: the
 * writers must go on within a second, every page as last written. */
static void test_kill9_reregister(void **state)
{
	static const char conf[] = "[domain fast]\nusers = root\npages_to_scan = 10000\nsleep_millisecs = 0\n";
	struct dt_daemon d;
	struct dt_child c;
	struct k_report r;
	char what[96];
	int caught = 0;

	(void)state;
	dt_start(&d, conf);
	setenv("SAMEPAGE_DAEMON", d.sock, 1);
	dt_spawn(&c, k_client, NULL);
	assert_int_equal(dt_step(&c), 'r');
	assert_true(dt_wait(&d, "domain fast", "pages_sharing", 1) > 0);
	for (int round = 0; round < 4; round++) {
		dt_go(&c, 'k');
		assert_int_equal(dt_step(&c), 'k');
		dt_kill9(&d);
		dt_go(&c, 'e');
		snprintf(what, sizeof(what), "kill %d:", round + 1);
		k_get_report(&c, &r, what);
		/* back, and gone again the moment a writer waits on it */
		dt_restart(&d);
		dt_go(&c, 'b');
		assert_int_equal(write(c.wr, &d.pid, sizeof(d.pid)), (ssize_t)sizeof(d.pid));
		assert_int_equal(dt_step(&c), 'b');
		dt_kill9(&d);
		dt_go(&c, 'e');
		snprintf(what, sizeof(what), "restart %d, killed again:", round + 1);
		k_get_report(&c, &r, what);
		caught += r.killer >= 0;
		if (round < 3) { /* (the next round starts from a daemon that merges) */
			dt_restart(&d);
			assert_true(dt_wait(&d, "domain fast", "pages_sharing", 1) > 0);
		}
	}
	assert_true(caught >= 1);
	dt_go(&c, 'q');
	assert_int_equal(read_full(c.rd, &r, sizeof(r), DT_PATIENCE_MS), 0);
	assert_int_equal(r.mismatches, 0);
	assert_int_equal(r.bad, 0);
	assert_int_equal(dt_reap(&c), 0);
	dt_cleanup(&d);
}

/* ======================================================================
 * unregistering the middle of a merged range
 * ====================================================================== */

#define U_NP	1024
#define U_NTAG	8 /* U_NP / U_NTAG copies of each content: one KSM page each */
#define U_FIRST (U_NP / 4)
#define U_MID	(U_NP / 2)

static uint32_t u_tag(size_t i)
{
	return 1 + (uint32_t)(i % U_NTAG);
}

static int u_report(int ok, const char *what)
{
	if (!ok)
		fprintf(stderr, "unregister client: %s\n", what);
	return ok;
}

/* child: fill, register ('r'); 'u' unregisters the middle half and checks
 * content and stats; 'z' drops the middle with MADV_DONTNEED; 'q' leaves */
static int u_client(void *arg, int wr, int rd)
{
	char *m = t_map(U_NP), *mid, b;
	struct samepage_region_stats all, ms;
	int ok = 1;

	(void)arg;
	mid = m + U_FIRST * TPAGE;
	for (size_t i = 0; i < U_NP; i++)
		t_fill(m + i * TPAGE, u_tag(i));
	if (samepage_madvise(m, U_NP * TPAGE, SAMEPAGE_MERGEABLE))
		return perror("samepage_madvise"), 1;
	if (write(wr, "r", 1) != 1 || read(rd, &b, 1) != 1 || b != 'u')
		return 1;

	ok &= u_report(!samepage_madvise(mid, U_MID * TPAGE, SAMEPAGE_UNMERGEABLE), "unregister failed");
	for (size_t i = 0; i < U_NP; i++)
		if (!t_check(m + i * TPAGE, u_tag(i)))
			ok = u_report(0, "content changed");
	ok &= u_report(!samepage_region_stats(m, U_NP * TPAGE, &all), "region stats");
	ok &= u_report(!samepage_region_stats(mid, U_MID * TPAGE, &ms), "region stats (middle)");
	ok &= u_report(all.registered_pages == U_NP - U_MID && all.merging_pages == U_NP - U_MID,
		       "whole range: not half registered and merged");
	ok &= u_report(ms.registered_pages == 0 && ms.merging_pages == 0 && ms.rmap_items == 0,
		       "middle: still registered or merged");
	if (write(wr, ok ? "v" : "x", 1) != 1 || read(rd, &b, 1) != 1 || b != 'z')
		return 1;

	/* plain anonymous memory now: dropped pages read zeros (a store
	 * mapping left behind would show the store page again) */
	ok &= u_report(!madvise(mid, U_MID * TPAGE, MADV_DONTNEED), "MADV_DONTNEED");
	for (size_t i = U_FIRST; i < U_FIRST + U_MID; i++)
		if (!t_check(m + i * TPAGE, 0))
			ok = u_report(0, "a dropped page does not read zeros");
	for (size_t i = 0; i < U_NP; i++)
		if ((i < U_FIRST || i >= U_FIRST + U_MID) && !t_check(m + i * TPAGE, u_tag(i)))
			ok = u_report(0, "a registered page changed");
	for (size_t i = U_FIRST; i < U_FIRST + U_MID; i++)
		t_fill(m + i * TPAGE, 5000 + (uint32_t)i);
	for (size_t i = U_FIRST; i < U_FIRST + U_MID; i++)
		if (!t_check(m + i * TPAGE, 5000 + (uint32_t)i))
			ok = u_report(0, "a write into the middle did not stay");
	if (write(wr, ok ? "v" : "x", 1) != 1 || read(rd, &b, 1) != 1 || b != 'q')
		return 1;
	return samepage_munmap(m, U_NP * TPAGE) ? 1 : 0;
}

static void test_unregister_middle(void **state)
{
	struct dt_daemon d;
	struct dt_child c;
	const char *st;
	char block[32];
	/* U_NTAG contents, each one KSM page and its other copies sharers */
	const long long sharing_all = U_NP - U_NTAG, sharing_half = U_NP - U_MID - U_NTAG;

	(void)state;
	dt_start(&d, NULL);
	assert_int_equal(dt_set(&d, "", "pages_to_scan", "5000"), 0);
	assert_int_equal(dt_set(&d, "", "sleep_millisecs", "5"), 0);
	setenv("SAMEPAGE_DAEMON", d.sock, 1);
	dt_spawn(&c, u_client, NULL);
	assert_int_equal(dt_step(&c), 'r');
	assert_int_equal(dt_wait(&d, DOM, "pages_sharing", sharing_all), sharing_all);
	st = dt_status(&d);
	assert_int_equal(dt_value(st, DOM, "pages_shared"), U_NTAG);
	assert_int_equal(dt_value(st, DOM, "registered_bytes"), U_NP * TPAGE);

	dt_go(&c, 'u');
	assert_int_equal(dt_step(&c), 'v');
	/* the unregister's answer came after the daemon's bookkeeping */
	st = dt_status(&d);
	snprintf(block, sizeof(block), "client %d", (int)c.pid);
	printf("  after unregistering the middle half: registered_bytes %lld pages_shared %lld pages_sharing %lld\n",
	       dt_value(st, DOM, "registered_bytes"), dt_value(st, DOM, "pages_shared"),
	       dt_value(st, DOM, "pages_sharing"));
	assert_int_equal(dt_value(st, DOM, "registered_bytes"), (U_NP - U_MID) * TPAGE);
	assert_int_equal(dt_value(st, DOM, "pages_shared"), U_NTAG);
	assert_int_equal(dt_value(st, DOM, "pages_sharing"), sharing_half);
	assert_int_equal(dt_value(st, DOM, "pages_unshared"), 0);
	assert_int_equal(dt_value(st, block, "registered_pages"), U_NP - U_MID);
	assert_int_equal(dt_value(st, block, "ksm_merging_pages"), U_NP - U_MID);

	dt_go(&c, 'z');
	assert_int_equal(dt_step(&c), 'v');
	st = dt_status(&d);
	assert_int_equal(dt_value(st, DOM, "pages_sharing"), sharing_half);
	assert_int_equal(dt_value(st, DOM, "registered_bytes"), (U_NP - U_MID) * TPAGE);

	dt_go(&c, 'q');
	assert_int_equal(dt_reap(&c), 0);
	assert_int_equal(dt_wait(&d, DOM, "clients", DT_EQ(0)), 0);
	assert_int_equal(dt_wait(&d, DOM, "pages_shared", DT_EQ(0)), 0);
	st = dt_status(&d);
	assert_int_equal(dt_value(st, DOM, "pages_sharing"), 0);
	assert_int_equal(dt_value(st, DOM, "registered_bytes"), 0);
	assert_true(dt_stop(&d));
	dt_cleanup(&d);
}

/* ======================================================================
 * protocol abuse
 * ====================================================================== */

#define G_NP   1024
#define G_NTAG 8

static uint32_t g_tag(size_t i)
{
	return 1 + (uint32_t)(i % G_NTAG);
}

/* the well-behaved client: fill, register ('r'); 'c' checks content and
 * its region stats ('v' or 'x'); 'q' leaves */
static int g_client(void *arg, int wr, int rd)
{
	char *m = t_map(G_NP), b;

	(void)arg;
	for (size_t i = 0; i < G_NP; i++)
		t_fill(m + i * TPAGE, g_tag(i));
	if (samepage_madvise(m, G_NP * TPAGE, SAMEPAGE_MERGEABLE))
		return perror("samepage_madvise"), 1;
	if (write(wr, "r", 1) != 1)
		return 1;
	while (read(rd, &b, 1) == 1) {
		struct samepage_region_stats rs;

		if (b == 'q')
			return samepage_munmap(m, G_NP * TPAGE) ? 1 : 0;
		b = 'v';
		for (size_t i = 0; i < G_NP; i++)
			if (!t_check(m + i * TPAGE, g_tag(i)))
				b = 'x';
		if (samepage_region_stats(m, G_NP * TPAGE, &rs) || rs.registered_pages != G_NP ||
		    rs.merging_pages != G_NP) {
			fprintf(stderr, "good client: %llu registered, %llu merging\n",
				(unsigned long long)rs.registered_pages, (unsigned long long)rs.merging_pages);
			b = 'x';
		}
		if (write(wr, &b, 1) != 1)
			return 1;
	}
	return 1;
}

static int connections(const struct dt_daemon *d)
{
	const char *st = dt_status(d);
	int pid, doms, n;

	if (!st || sscanf(st, "daemon pid %d domains %d connections %d", &pid, &doms, &n) != 3)
		return -1;
	return n;
}

/* The daemon answers, its connections are back to base (the abusers'
 * are gone), and the good client is exactly as it was. */
static void good_ok(const struct dt_daemon *d, struct dt_child *g, int base, const char *after)
{
	uint64_t deadline = t_now_ms() + DT_PATIENCE_MS;
	const char *st;
	int n;

	assert_true(daemon_alive(d));
	while ((n = connections(d)) != base && t_now_ms() < deadline)
		pause_ms(10);
	if (n != base)
		fprintf(stderr, "after %s: %d connections, %d before\n", after, n, base);
	assert_int_equal(n, base);
	st = dt_status(d);
	assert_non_null(st);
	assert_int_equal(dt_value(st, DOM, "clients"), 1);
	assert_int_equal(dt_value(st, DOM, "pages_shared"), G_NTAG);
	assert_int_equal(dt_value(st, DOM, "pages_sharing"), G_NP - G_NTAG);
	assert_int_equal(dt_value(st, DOM, "registered_bytes"), G_NP * TPAGE);
	assert_int_equal(dt_value(st, DOM, "pages_to_scan"), 5000);
	dt_go(g, 'c');
	assert_int_equal(dt_step(g), 'v');
	printf("  %-44s daemon answers, good client intact\n", after);
}

/* the lowest descriptor number pid does not use: with RLIMIT_NOFILE set
 * to it, pid can open nothing (the limit bounds the number, not the count) */
static int lowest_free_fd(pid_t pid)
{
	char path[64];
	static char used[1 << 16];
	struct dirent *e;
	DIR *dir;
	int n = 0;

	memset(used, 0, sizeof(used));
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	assert_non_null(dir);
	while ((e = readdir(dir)) != NULL)
		if (e->d_name[0] != '.' && atoi(e->d_name) < (int)sizeof(used))
			used[atoi(e->d_name)] = 1;
	closedir(dir);
	while (used[n])
		n++;
	return n;
}

/* How many of fds[0..n) the daemon closed (without sending anything):
 * waits until want of them are, or 10 s. */
static int hung_up(const int *fds, int n, int want)
{
	uint64_t deadline = t_now_ms() + 10000;
	char gone[4096] = {0};
	int closed = 0;

	assert_true(n <= (int)sizeof(gone));
	while (closed < want && t_now_ms() < deadline) {
		for (int i = 0; i < n; i++) {
			struct pollfd pf = {.fd = fds[i], .events = POLLIN};
			char b;

			if (!gone[i] && poll(&pf, 1, 0) == 1 &&
			    ((pf.revents & POLLHUP) || recv(fds[i], &b, 1, MSG_DONTWAIT) == 0)) {
				gone[i] = 1;
				closed++;
			}
		}
		pause_ms(10);
	}
	return closed;
}

/* 1 if a line of the daemon's log has text */
static int log_has(const struct dt_daemon *d, const char *text)
{
	char line[1024];
	FILE *f = fopen(d->log, "re");
	int found = 0;

	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, text) != NULL;
	if (f)
		fclose(f);
	return found;
}

static int raw_conn(const struct dt_daemon *d)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memcpy(a.sun_path, d->sock, strlen(d->sock) + 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* 1 when the daemon closes fd within 10 s (answers before that are
 * skipped, their descriptors closed), else 0. */
static int dropped(int fd)
{
	static char buf[SP_MSG_MAX];
	uint64_t deadline = t_now_ms() + 10000;

	for (;;) {
		int fds[4], nfds = 0;
		uint64_t now = t_now_ms();
		long n;

		if (now >= deadline)
			return 0;
		n = sp_wire_recv(fd, buf, sizeof(buf), fds, &nfds, (int)(deadline - now));
		while (nfds)
			close(fds[--nfds]);
		if (n == -ECONNRESET)
			return 1;
		if (n == -ETIMEDOUT)
			return 0;
	}
}

/* raw bytes as one packet; 0 or -errno (the daemon may have closed) */
static int send_raw(int fd, const void *buf, size_t len)
{
	return send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

static void expect_dropped(int fd, const char *what)
{
	int ok = dropped(fd);

	if (!ok)
		fprintf(stderr, "%s: the daemon kept the connection\n", what);
	assert_true(ok);
	close(fd);
}

/* a HELLO that the daemon accepts; its descriptors closed */
static void hello_ok(int fd)
{
	struct sp_hello h = {.version = SP_WIRE_VERSION};
	struct sp_hello_ok ok;
	int fds[4], nfds = 0;

	assert_int_equal(
		sp_wire_call(fd, SP_M_HELLO, &h, sizeof(h), NULL, 0, &ok, sizeof(ok), NULL, fds, &nfds, 10000, NULL),
		0);
	while (nfds)
		close(fds[--nfds]);
}

static int new_uffd(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	assert_true(fd >= 0);
	return fd;
}

/* an ATTACH with these descriptors on a fresh connection (after HELLO
 * when hello): must cost the connection */
static void attach_with(const struct dt_daemon *d, int hello, const int *fds, int nfds, const char *what)
{
	struct sp_attach a = {.work_addr = 0};
	int fd = raw_conn(d);

	if (hello)
		hello_ok(fd);
	assert_int_equal(sp_wire_send(fd, SP_M_ATTACH, &a, sizeof(a), fds, nfds), 0);
	expect_dropped(fd, what);
}

/* SET by an unprivileged user, before and after HELLO: EACCES both */
static int nobody_set(const char *sock)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct sp_knob_msg m;
	char why[128] = "";
	int fd, e1, e2;

	if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
		return 2;
	memset(&m, 0, sizeof(m));
	snprintf(m.name, sizeof(m.name), "pages_to_scan");
	snprintf(m.value, sizeof(m.value), "1");
	memcpy(a.sun_path, sock, strlen(sock) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)))
		return 3;
	e1 = sp_wire_call(fd, SP_M_SET, &m, sizeof(m), NULL, 0, why, sizeof(why) - 1, NULL, NULL, NULL, 10000, NULL);
	{
		struct sp_hello h = {.version = SP_WIRE_VERSION};
		struct sp_hello_ok ok;
		int fds[4], nfds = 0;

		if (sp_wire_call(fd, SP_M_HELLO, &h, sizeof(h), NULL, 0, &ok, sizeof(ok), NULL, fds, &nfds, 10000,
				 NULL))
			return 4;
		while (nfds)
			close(fds[--nfds]);
	}
	e2 = sp_wire_call(fd, SP_M_SET, &m, sizeof(m), NULL, 0, NULL, 0, NULL, NULL, NULL, 10000, NULL);
	close(fd);
	if (e1 != -EACCES || e2 != -EACCES) {
		fprintf(stderr, "unprivileged SET: %s / %s (\"%s\")\n", strerror(-e1), strerror(-e2), why);
		return 5;
	}
	return 0;
}

static int nobody_child(void *arg, int wr, int rd)
{
	(void)wr;
	(void)rd;
	return nobody_set(arg);
}

/* Types near the valid ones, each with the body size it should have. */
static const struct {
	uint32_t type;
	size_t len;
} fuzz_types[] = {
	{0, 0},
	{SP_M_HELLO, sizeof(struct sp_hello)},
	{SP_M_ATTACH, sizeof(struct sp_attach)},
	{SP_M_REGISTER, sizeof(struct sp_range_msg)},
	{SP_M_UNREGISTER, sizeof(struct sp_range_msg)},
	{SP_M_REGION_STATS, sizeof(struct sp_range_msg)},
	{SP_M_STATS, 0},
	{SP_M_GET, sizeof(struct sp_knob_msg)},
	{SP_M_SET, sizeof(struct sp_knob_msg)},
	{SP_M_STATUS, 0},
	{SP_M_FORK, 0},
	{SP_M_FORK + 1, 8},
	{SP_A_BATCH - 1, 8},
	{SP_A_BATCH, sizeof(struct sp_remap_msg)},
	{SP_A_ZAP, sizeof(struct sp_range_msg)},
	{SP_A_UNMERGE, sizeof(struct sp_range_msg)},
	{SP_A_RESTORE, sizeof(struct sp_range_msg)},
	{SP_A_EVENTS, 0},
	{SP_M_REPLY - 1, 0},
	{SP_M_REPLY, sizeof(struct sp_reply)},
	{SP_M_REPLY + 1, 0},
	{0xffffffffu, 16},
};
#define NFUZZ_TYPES (sizeof(fuzz_types) / sizeof(fuzz_types[0]))

/* knob names a GET may ask for (a SET gets garbage values only: the good
 * client's domain must keep its knobs) */
static const char *const fuzz_names[] = {"pages_to_scan",    "run", "pages_sharing", "general_profit",
					 "max_page_sharing", "",    "no_such_knob"};

/* A few thousand messages of types near the valid ones with random bodies
 * (mostly of the right size, so they reach the handlers; range and knob
 * messages made plausible now and then), connections that said HELLO
 * half the time, a pipe as a descriptor now and then. Each message must be
 * answered or cost its connection, nothing else. */
static void fuzz(const struct dt_daemon *d, int messages)
{
	static char buf[SP_MSG_MAX];
	static char body[1024];
	uint64_t s = 0x5EED5EED1234ull;
	int fd = -1, conns = 0, answered = 0, pfd[2];

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	for (int i = 0; i < messages; i++) {
		uint64_t r = xorshift(&s);
		uint32_t type = fuzz_types[r % NFUZZ_TYPES].type;
		size_t len = (r >> 8) % 4 ? fuzz_types[r % NFUZZ_TYPES].len : (size_t)((r >> 16) % sizeof(body));
		int fds[4], nfds = 0;
		long n;

		if (fd < 0) {
			fd = raw_conn(d);
			conns++;
			if (r >> 63)
				hello_ok(fd);
		}
		for (size_t k = 0; k < len; k += 8) {
			uint64_t v = xorshift(&s);

			memcpy(body + k, &v, len - k < 8 ? len - k : 8);
		}
		if (type == SP_M_HELLO && len == sizeof(struct sp_hello) && (r >> 32) % 2) {
			struct sp_hello *h = (struct sp_hello *)body;

			h->version = SP_WIRE_VERSION;
			if ((r >> 33) % 2)
				h->label[0] = 0;
		}
		if (len == sizeof(struct sp_range_msg) && (r >> 34) % 2) {
			struct sp_range_msg *m = (struct sp_range_msg *)body;

			m->start &= ~(TPAGE - 1) & ((1ull << 47) - 1);
			m->len = (m->len % 64) * TPAGE;
		}
		if (len == sizeof(struct sp_knob_msg) && (r >> 35) % 2) {
			struct sp_knob_msg *m = (struct sp_knob_msg *)body;
			const char *name = fuzz_names[(r >> 36) % (sizeof(fuzz_names) / sizeof(fuzz_names[0]))];

			snprintf(m->name, sizeof(m->name), "%s", type == SP_M_SET ? "pages_to_scan" : name);
			if (type == SP_M_SET)
				snprintf(m->value, sizeof(m->value), "x%u", (unsigned)(r >> 40));
			m->domain[(r >> 40) % sizeof(m->domain)] = 0;
		}
		if (!((r >> 44) % 16)) {
			fds[0] = pfd[0];
			nfds = 1;
		}
		if (!sp_wire_send(fd, type, body, len, fds, nfds)) {
			nfds = 0;
			n = sp_wire_recv(fd, buf, sizeof(buf), fds, &nfds, 10000);
			while (nfds)
				close(fds[--nfds]);
			if (n == -ETIMEDOUT)
				fail_msg("fuzz message %d (type %u, %zu bytes): neither an answer nor a close", i, type,
					 len);
			if (n >= 0) {
				answered++;
				continue;
			}
		}
		close(fd); /* dropped: a new connection */
		fd = -1;
		assert_true(daemon_alive(d));
	}
	if (fd >= 0)
		close(fd);
	close(pfd[0]);
	close(pfd[1]);
	printf("  fuzz: %d messages, %d answered, %d connections\n", messages, answered, conns);
}

static void test_protocol_abuse(void **state)
{
	struct dt_daemon d;
	struct dt_child g, nobody;
	struct rlimit rl;
	uint64_t s = 0xAB5E;
	int base, fd, uffd, sp[2], pp[2];
	static int flood[2000];
	static char big[70000];

	(void)state;
	dt_start(&d, NULL);
	assert_int_equal(dt_set(&d, "", "pages_to_scan", "5000"), 0);
	assert_int_equal(dt_set(&d, "", "sleep_millisecs", "5"), 0);
	setenv("SAMEPAGE_DAEMON", d.sock, 1);
	dt_spawn(&g, g_client, NULL);
	assert_int_equal(dt_step(&g), 'r');
	assert_int_equal(dt_wait(&d, DOM, "pages_sharing", G_NP - G_NTAG), G_NP - G_NTAG);
	base = connections(&d);
	assert_true(base >= 2); /* the good client's and this STATUS's */
	good_ok(&d, &g, base, "before:");

	/* random bytes of random lengths, one packet per connection */
	for (int i = 0; i < 64; i++) {
		size_t len = 1 + xorshift(&s) % 3000;

		fd = raw_conn(&d);
		for (size_t k = 0; k < len; k++)
			big[k] = (char)xorshift(&s);
		assert_int_equal(send_raw(fd, big, len), 0);
		expect_dropped(fd, "random bytes");
	}
	fd = raw_conn(&d); /* an empty packet */
	assert_int_equal(send_raw(fd, big, 0), 0);
	expect_dropped(fd, "empty packet");
	good_ok(&d, &g, base, "random bytes:");

	/* a header whose len is not the packet's */
	{
		struct {
			struct sp_msg h;
			char body[200];
		} m;

		memset(&m, 0, sizeof(m));
		m.h.type = SP_M_STATUS;
		m.h.len = 4; /* no body follows */
		fd = raw_conn(&d);
		assert_int_equal(send_raw(fd, &m, sizeof(m.h)), 0);
		expect_dropped(fd, "len 4, no body");
		m.h.type = SP_M_HELLO;
		m.h.len = sizeof(struct sp_hello);
		fd = raw_conn(&d);
		assert_int_equal(send_raw(fd, &m, sizeof(m.h) + sizeof(struct sp_hello) - 1), 0);
		expect_dropped(fd, "HELLO a byte short of its len");
		m.h.type = SP_M_STATUS;
		m.h.len = 0;
		fd = raw_conn(&d);
		assert_int_equal(send_raw(fd, &m, sizeof(m.h) + 16), 0);
		expect_dropped(fd, "len 0, 16 bytes of body");
		m.h.len = 0xffffffffu;
		fd = raw_conn(&d);
		assert_int_equal(send_raw(fd, &m, sizeof(m)), 0);
		expect_dropped(fd, "len 4G");
	}
	good_ok(&d, &g, base, "header len disagrees:");

	/* longer than SP_MSG_MAX */
	{
		struct sp_msg *h = (struct sp_msg *)big;

		memset(big, 0, sizeof(big));
		h->type = SP_M_STATUS;
		h->len = sizeof(big) - sizeof(*h);
		fd = raw_conn(&d);
		assert_int_equal(send_raw(fd, big, sizeof(big)), 0);
		expect_dropped(fd, "70000 bytes");
	}
	good_ok(&d, &g, base, "oversized packet:");

	/* unknown types, and the agent's own from a client */
	{
		const uint32_t types[] = {0, 11, 63, 999, SP_A_EVENTS, SP_M_REPLY, 0x80000001u};
		struct sp_remap_msg rm = {.addr = 0x10000, .npages = 1};

		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
			fd = raw_conn(&d);
			assert_int_equal(sp_wire_send(fd, types[i], NULL, 0, NULL, 0), 0);
			expect_dropped(fd, "unknown type");
		}
		fd = raw_conn(&d);
		hello_ok(fd);
		assert_int_equal(sp_wire_send(fd, SP_A_BATCH, &rm, sizeof(rm), NULL, 0), 0);
		expect_dropped(fd, "BATCH to the daemon");
	}
	good_ok(&d, &g, base, "unknown types:");

	/* out of order: before HELLO */
	{
		struct sp_range_msg r = {.start = 0x100000, .len = 0x1000};

		fd = raw_conn(&d);
		assert_int_equal(sp_wire_send(fd, SP_M_REGISTER, &r, sizeof(r), NULL, 0), 0);
		expect_dropped(fd, "REGISTER before HELLO");
		fd = raw_conn(&d);
		assert_int_equal(sp_wire_send(fd, SP_M_STATS, NULL, 0, NULL, 0), 0);
		expect_dropped(fd, "STATS before HELLO");
		fd = raw_conn(&d);
		hello_ok(fd); /* HELLO, but no ATTACH */
		assert_int_equal(sp_wire_send(fd, SP_M_REGISTER, &r, sizeof(r), NULL, 0), 0);
		expect_dropped(fd, "REGISTER before ATTACH");
	}
	good_ok(&d, &g, base, "REGISTER before HELLO:");

	/* ATTACH: right descriptors before HELLO; none, wrong ones, four */
	uffd = new_uffd();
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	{
		const int right[2] = {uffd, sp[1]}, pipe_uffd[2] = {pp[0], sp[1]}, pipe_agent[2] = {uffd, pp[1]};
		const int four[4] = {uffd, sp[1], pp[0], pp[1]}, swapped[2] = {sp[1], uffd};

		attach_with(&d, 0, right, 2, "ATTACH before HELLO");
		attach_with(&d, 1, NULL, 0, "ATTACH without descriptors");
		attach_with(&d, 1, right, 1, "ATTACH with one descriptor");
		attach_with(&d, 1, pipe_uffd, 2, "ATTACH with a pipe for the userfaultfd");
		attach_with(&d, 1, pipe_agent, 2, "ATTACH with a pipe for the agent");
		attach_with(&d, 1, swapped, 2, "ATTACH with swapped descriptors");
		attach_with(&d, 1, four, 4, "ATTACH with four descriptors");
	}
	close(uffd);
	close(sp[0]);
	close(sp[1]);
	close(pp[0]);
	close(pp[1]);
	good_ok(&d, &g, base, "ATTACH with bad descriptors:");

	/* HELLO twice */
	{
		struct sp_hello h = {.version = SP_WIRE_VERSION};

		fd = raw_conn(&d);
		hello_ok(fd);
		assert_int_equal(sp_wire_send(fd, SP_M_HELLO, &h, sizeof(h), NULL, 0), 0);
		expect_dropped(fd, "HELLO twice");
		h.version = 999;
		fd = raw_conn(&d); /* a refused HELLO is answered, the connection stays */
		assert_int_equal(
			sp_wire_call(fd, SP_M_HELLO, &h, sizeof(h), NULL, 0, NULL, 0, NULL, NULL, NULL, 10000, NULL),
			-EPROTONOSUPPORT);
		close(fd);
	}
	good_ok(&d, &g, base, "HELLO twice:");

	/* 2000 connections at once, then closed */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 2200 && rl.rlim_max >= 2200) {
		rl.rlim_cur = 2200;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	{
		int n = rl.rlim_cur >= 2200 ? 2000 : (int)rl.rlim_cur - 200;

		for (int i = 0; i < n; i++)
			flood[i] = raw_conn(&d);
		assert_true(connections(&d) >= base + n);
		assert_non_null(dt_status(&d));
		for (int i = 0; i < n; i++)
			close(flood[i]);
		printf("  %d connections at once\n", n);
	}
	good_ok(&d, &g, base, "connection flood:");

	/* out of descriptors, with none left at all (accept fails) and with
	 * at most two (the work after accept fails): connections are closed at once,
	 * the daemon does not spin on its listening socket, says so in its
	 * log, and serves again when descriptors are back */
	for (int headroom = 0; headroom <= 2; headroom += 2) {
		struct rlimit was, low;
		int n = 64, closed;
		double cpu0;

		assert_int_equal(prlimit(d.pid, RLIMIT_NOFILE, NULL, &was), 0);
		low = was;
		low.rlim_cur = (rlim_t)(lowest_free_fd(d.pid) + headroom);
		assert_int_equal(prlimit(d.pid, RLIMIT_NOFILE, &low, NULL), 0);
		cpu0 = t_ksmd_cpu(d.pid);
		for (int i = 0; i < n; i++)
			flood[i] = raw_conn(&d);
		closed = hung_up(flood, n, n - 4);
		pause_ms(1000); /* a window to measure the daemon's CPU over */
		printf("  out of descriptors (%d spare): %d of %d connections closed, daemon CPU %.2f s over the "
		       "flood and 1 s after\n",
		       headroom, closed, n, t_ksmd_cpu(d.pid) - cpu0);
		assert_true(closed >= n - 4);
		assert_true(t_ksmd_cpu(d.pid) - cpu0 < 0.5);
		assert_true(log_has(&d, "out of file descriptors"));
		for (int i = 0; i < n; i++)
			close(flood[i]);
		assert_int_equal(prlimit(d.pid, RLIMIT_NOFILE, &was, NULL), 0);
		good_ok(&d, &g, base, "out of descriptors:");
	}

	/* a knob write by nobody: refused, the knob as it was (good_ok) */
	dt_spawn(&nobody, nobody_child, d.sock);
	assert_int_equal(dt_reap(&nobody), 0);
	good_ok(&d, &g, base, "SET by an unprivileged user:");

	/* a connection whose process is gone before the daemon took it: its
	 * pid names nobody (or, once reused, somebody else) */
	{
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		struct sp_hello h = {.version = SP_WIRE_VERSION};
		int st;
		pid_t pid;

		fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		assert_true(fd >= 0);
		memcpy(a.sun_path, d.sock, strlen(d.sock) + 1);
		assert_int_equal(kill(d.pid, SIGSTOP), 0);
		assert_int_equal(waitpid(d.pid, &st, WUNTRACED), d.pid);
		assert_true(WIFSTOPPED(st));
		pid = fork();
		assert_true(pid >= 0);
		if (!pid)
			_exit(connect(fd, (struct sockaddr *)&a, sizeof(a)) ? 1 : 0);
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		assert_int_equal(kill(d.pid, SIGCONT), 0);
		if (!sp_wire_send(fd, SP_M_HELLO, &h, sizeof(h), NULL, 0))
			expect_dropped(fd, "a connection of a process gone before it was accepted");
		else
			close(fd);
	}
	good_ok(&d, &g, base, "connection of an exited process:");

	/* fuzz */
	fuzz(&d, 3000);
	good_ok(&d, &g, base, "fuzz:");

	dt_go(&g, 'q');
	assert_int_equal(dt_reap(&g), 0);
	assert_int_equal(dt_wait(&d, DOM, "clients", DT_EQ(0)), 0);
	assert_true(daemon_alive(&d));
	assert_true(dt_stop(&d));
	dt_cleanup(&d);
}

/* ======================================================================
 * a client that stops answering for longer than the daemon waits
 * ====================================================================== */

#define S_NP   512
#define S_NTAG 8

/* child: A registered ('r'); 'g' registers B (contents new to the
 * domain: merging them makes new store pages) and stops itself at once,
 * so that the daemon's call to its agent times out; resumed, 's'; 'c'
 * checks A and B ('v' or 'x'); 'q' leaves */
static int s_client(void *arg, int wr, int rd)
{
	char *a = t_map(S_NP), *b = t_map(S_NP), cmd;

	(void)arg;
	for (size_t i = 0; i < S_NP; i++) {
		t_fill(a + i * TPAGE, 1 + (uint32_t)(i % S_NTAG));
		t_fill(b + i * TPAGE, 101 + (uint32_t)(i % S_NTAG));
	}
	if (samepage_madvise(a, S_NP * TPAGE, SAMEPAGE_MERGEABLE))
		return perror("samepage_madvise"), 1;
	if (write(wr, "r", 1) != 1 || read(rd, &cmd, 1) != 1 || cmd != 'g')
		return 1;
	if (samepage_madvise(b, S_NP * TPAGE, SAMEPAGE_MERGEABLE))
		return perror("samepage_madvise"), 1;
	raise(SIGSTOP);
	if (write(wr, "s", 1) != 1)
		return 1;
	while (read(rd, &cmd, 1) == 1) {
		size_t bad = 0;

		if (cmd == 'q')
			return samepage_munmap(a, S_NP * TPAGE) || samepage_munmap(b, S_NP * TPAGE) ? 1 : 0;
		for (size_t i = 0; i < S_NP; i++) {
			bad += !t_check(a + i * TPAGE, 1 + (uint32_t)(i % S_NTAG));
			bad += !t_check(b + i * TPAGE, 101 + (uint32_t)(i % S_NTAG));
		}
		if (bad)
			fprintf(stderr, "stopped client: %zu pages lost their content\n", bad);
		if (write(wr, bad ? "x" : "v", 1) != 1)
			return 1;
	}
	return 1;
}

static void test_stopped_client(void **state)
{
	struct dt_daemon d;
	struct dt_child c;
	char block[32];
	long long usecs;
	int st;

	(void)state;
	dt_start(&d, NULL);
	assert_int_equal(dt_set(&d, "", "pages_to_scan", "5000"), 0);
	assert_int_equal(dt_set(&d, "", "sleep_millisecs", "5"), 0);
	setenv("SAMEPAGE_DAEMON", d.sock, 1);
	dt_spawn(&c, s_client, NULL);
	assert_int_equal(dt_step(&c), 'r');
	assert_int_equal(dt_wait(&d, DOM, "pages_sharing", S_NP - S_NTAG), S_NP - S_NTAG);
	dt_go(&c, 'g');
	assert_int_equal(waitpid(c.pid, &st, WUNTRACED), c.pid);
	assert_true(WIFSTOPPED(st));
	/* the daemon gives up on its agent (a call of 10 s) */
	snprintf(block, sizeof(block), "client %d", (int)c.pid);
	usecs = dt_wait(&d, block, "agent_usecs", 10000000);
	printf("  stopped client: the daemon waited %.1f s for its agent\n", usecs / 1e6);
	assert_true(usecs >= 10000000);
	assert_int_equal(kill(c.pid, SIGCONT), 0);
	assert_int_equal(dt_step(&c), 's');
	/* nothing the daemon gave up on may happen to its memory now */
	dt_go(&c, 'c');
	assert_int_equal(dt_step(&c), 'v');
	/* and it is served again: A and B merge (one store page per content) */
	assert_int_equal(dt_wait(&d, DOM, "pages_sharing", DT_EQ(2 * (S_NP - S_NTAG))), 2 * (S_NP - S_NTAG));
	assert_int_equal(dt_value(dt_status(&d), DOM, "clients"), 1);
	dt_go(&c, 'c');
	assert_int_equal(dt_step(&c), 'v');
	dt_go(&c, 'q');
	assert_int_equal(dt_reap(&c), 0);
	assert_int_equal(dt_wait(&d, DOM, "clients", DT_EQ(0)), 0);
	assert_true(dt_stop(&d));
	dt_cleanup(&d);
}

/* ======================================================================
 * a configuration with an error
 * ====================================================================== */

/* Runs samepaged with args; its output (stdout and stderr) into out.
 * Returns its exit status (128 + signal), -1 when it ran past the
 * deadline (killed). */
static int run_daemon(const char *const *args, char *out, size_t outlen)
{
	uint64_t deadline = t_now_ms() + 20000;
	size_t got = 0;
	int p[2], st = 0;
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		const char *argv[16];
		int n = 0;

		dup2(p[1], 1);
		dup2(p[1], 2);
		argv[n++] = "samepaged";
		while (*args && n < 15)
			argv[n++] = *args++;
		argv[n] = NULL;
		execv(dt_daemon_path(), (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		struct pollfd pf = {.fd = p[0], .events = POLLIN};
		uint64_t now = t_now_ms();
		ssize_t r;

		if (now >= deadline || poll(&pf, 1, (int)(deadline - now)) != 1) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			close(p[0]);
			return -1;
		}
		r = read(p[0], out + got, outlen - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		if (got == outlen - 1)
			break;
	}
	out[got] = 0;
	close(p[0]);
	waitpid(pid, &st, 0);
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

static void test_bad_config(void **state)
{
	static const struct {
		const char *text;
		int line;
	} bad[] = {
		{"[daemon]\nper_user_domains = yes\n[bogus]\nx = 1\n", 3},
		{"[daemon]\n\nsocket = relative/path\n", 3},
		{"; a domain\n[domain a]\nusers = root\npages_to_scan = lots\n", 4},
		{"[domain a]\nusers = root\n\n[domain a]\nusers = root\n", 4},
		{"[daemon]\nno_such_key = 1\n", 2},
		{"[domain b]\nlabels = web\nmax_clients = -3\n", 3},
		{"per_user_domains = yes\n", 1},
	};
	char dir[] = "/tmp/samepaged-badconf.XXXXXX", conf[64], sock[64], want[96], out[4096];
	struct stat stb;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "%s/samepaged.conf", dir);
	snprintf(sock, sizeof(sock), "%s/sock", dir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *serve[] = {"--config", conf, "--socket", sock, NULL};
		const char *check[] = {"--check-config", "--config", conf, NULL};
		FILE *f = fopen(conf, "w");
		int rc;

		assert_non_null(f);
		fputs(bad[i].text, f);
		fclose(f);
		snprintf(want, sizeof(want), "%s:%d: ", conf, bad[i].line);
		rc = run_daemon(serve, out, sizeof(out));
		if (rc != 1 || !strstr(out, want))
			fail_msg("config %zu: exit %d, wanted 1 and \"%s\" in:\n%s", i, rc, want, out);
		assert_int_not_equal(stat(sock, &stb), 0); /* never listened */
		if (i == 0)
			printf("  %s", out);
		rc = run_daemon(check, out, sizeof(out));
		if (rc != 1 || !strstr(out, want))
			fail_msg("config %zu, --check-config: exit %d, wanted 1 and \"%s\" in:\n%s", i, rc, want, out);
	}
	/* a configuration named but missing */
	unlink(conf);
	{
		const char *serve[] = {"--config", conf, "--socket", sock, NULL};
		int rc = run_daemon(serve, out, sizeof(out));

		if (rc != 1 || !strstr(out, conf))
			fail_msg("missing config: exit %d, wanted 1 and \"%s\" in:\n%s", rc, conf, out);
		assert_int_not_equal(stat(sock, &stb), 0);
	}
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_config),	 cmocka_unit_test(test_unregister_middle),
		cmocka_unit_test(test_protocol_abuse),	 cmocka_unit_test(test_kill9_writers),
		cmocka_unit_test(test_kill9_reregister), cmocka_unit_test(test_stopped_client),
	};

	if (geteuid()) {
		printf("daemon tests need root (the daemon reads other processes' memory)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
