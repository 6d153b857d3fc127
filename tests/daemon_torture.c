/* SPDX-License-Identifier: MIT */
/*
 * daemon_torture.c - client processes write while samepaged merges their
 * pages and everything around them goes wrong; every byte is checked
 * against a shadow copy.
 *
 * Four client processes, two in each of two labelled domains (a, b). Each
 * registers a region whose pages start as copies of a few templates, the
 * same templates in every process (so pages merge within and across the
 * processes of a domain), and runs two writer threads. A writer owns half
 * of the region and keeps a shadow of it; under its own lock it checks that
 * the page reads exactly its shadow, then writes it: plain stores of a
 * counter-derived pattern at random offsets, read(2) from a pipe into the
 * page (the kernel writes into a page that may be frozen or merged), or a
 * template again (so merging never stops). Most writes go to a window of
 * pages that moves, the rest land anywhere and mostly put a template back.
 *
 * Writers are paced by the domain's full_scans (PER_SCAN writes per client
 * per full scan, granted by a thread asking the daemon; a slow trickle
 * when nothing scans), so merging keeps up on a slow or busy machine. The
 * domains' knobs are in the configuration (pages_to_scan 5000,
 * sleep_millisecs 5, max_page_sharing 8 for chains, use_zero_pages 1), so
 * a restarted daemon has them too.
 *
 * The parent drives the chaos at random moments (a fixed seed, printed;
 * SAMEPAGE_TORTURE_SEED picks another), each after a random number of
 * writes and at least two full scans of both domains since the last one:
 * run=2 then run=1 (in one domain or all), a client forks (its child
 * checks that the pages it inherited read the shadow it inherited, at once
 * and again after the parent wrote on and the domain scanned, which frees
 * store pages nobody else maps), a client unregisters a chunk of its region
 * and registers it again, kill -9 of a client (a new one takes its place),
 * kill -9 of the daemon and a restart, a third of the time killed again
 * while the clients come back (they reconnect by themselves; every one
 * must be registered again and merge again). Fork and re-register are
 * commands a client carries out while the chaos goes on. Opt-in: SIGSTOP
 * of a client for longer than the daemon waits for its agent.
 *
 * Pass: no page ever read anything but its shadow (writers before each
 * write, fork children, the final check after the domains merged once
 * more), every call succeeded, every client reconnected and merged again,
 * merges happened in both domains, the daemon's log has no sanitizer
 * report, and the domains are empty when the clients are gone. Counters are
 * in shared memory, so a killed client's writes and mismatches are counted
 * too; a client that ends reports its own through its pipe (checked against
 * the counters).
 *
 *   SAMEPAGE_TORTURE_WRITES       total writes (default 1000000)
 *   SAMEPAGE_TORTURE_SEED         the chaos's seed
 *   SAMEPAGE_TORTURE_DAEMON_KILL  0: no kill -9 of the daemon
 *   SAMEPAGE_TORTURE_STOP         1: SIGSTOP clients for longer than
 *                                 samepaged waits for an agent (10 s each)
 *   SAMEPAGE_TORTURE_PER_SCAN     writes per client per full scan (512)
 *   SAMEPAGE_TORTURE_VERBOSE      1: print every event
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemontest.h"
#include "samepage.h"
#include "testlib.h"

#define NCLIENTS	 4
#define WRITERS		 2
#define NP		 1024 /* pages per client */
#define OWN		 (NP / WRITERS)
#define NTMPL		 8 /* template 0 is zeros */
#define HOT		 32
#define WINDOW_OPS	 1024 /* writes of a writer before its window moves */
#define PER_SCAN	 512  /* writes per client per full scan of its domain */
#define FLOOR_MS	 20   /* no full scan for this long: PER_SCAN / 4 writes anyway */
#define CHUNK		 64   /* pages unregistered and registered again */
#define MAX_FORKS	 8    /* fork children of one client alive at once */
#define DEFAULT_WRITES	 1000000ull
#define DEFAULT_SEED	 0x5eed2024ull
#define GAP_MIN		 4000 /* writes between two events */
#define GAP_MAX		 40000
#define STALL_MS	 30000 /* no write anywhere for this long: a hang */
#define ACK_MS		 60000 /* a client's command (fork, re-register) */
#define RECONNECT_MS	 30000 /* every client back after a daemon restart */
#define FINAL_MS	 300000
#define FINAL_SCANS	 3	 /* after the writers stopped: merged again, then checked */
#define STOP_MS		 15000	 /* SIGSTOP at most this long, */
#define AGENT_TIMEOUT_US 9000000 /* or until the daemon waited this long for the agent */

/* The domains; the knobs are in the file, so a restarted daemon has them. */
static const char config[] = "[domain a]\nlabels = a\npages_to_scan = 5000\nsleep_millisecs = 5\n"
			     "max_page_sharing = 8\nuse_zero_pages = 1\n\n"
			     "[domain b]\nlabels = b\npages_to_scan = 5000\nsleep_millisecs = 5\n"
			     "max_page_sharing = 8\nuse_zero_pages = 1\n";

static const char *domain_of(int slot)
{
	return slot < NCLIENTS / 2 ? "a" : "b";
}

/* ---- shared between the parent and the clients ----------------------------- */

struct wcount {
	_Atomic uint64_t writes;
	char pad[56];
};

struct slot {
	struct wcount w[WRITERS];
	_Atomic uint64_t mismatches; /* pages that did not read their shadow */
	_Atomic uint64_t bad_bytes;  /* their bytes that differed */
	_Atomic uint64_t forks, fork_mismatches, fork_bad_bytes;
	_Atomic uint64_t reregs;
	_Atomic uint64_t errors; /* calls that failed */
};

static struct slot *S; /* MAP_SHARED, one per client slot */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint64_t slot_writes(int i)
{
	uint64_t n = 0;

	for (int w = 0; w < WRITERS; w++)
		n += atomic_load_explicit(&S[i].w[w].writes, memory_order_relaxed);
	return n;
}

static void pause_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : def;
}

/* ---- a client process ---------------------------------------------------------- */

struct writer {
	int id;
	int pipe[2];
	pthread_mutex_t lock; /* held over check + write + shadow; a fork takes it */
	pthread_t thread;
	uint64_t seed, ops;
};

static int me; /* the slot */
static char *mem;
static uint8_t *shadow, *tmpl;
static struct writer wr_[WRITERS];
static pthread_t pacer_thread;
static atomic_int stop_writers;
static atomic_int printed;

/* One page that does not read its shadow: counted, and the first few
 * described (which bytes, and whether it reads a template or zeros: an
 * old content coming back looks like one). */
static void mismatch(size_t i, const char *when, _Atomic uint64_t *pages, _Atomic uint64_t *bytes)
{
	const uint8_t *p = (const uint8_t *)mem + i * TPAGE;
	const uint8_t *sh = shadow + i * TPAGE;
	size_t d = 0, first = TPAGE, last = 0, zero = 0;
	int t = -1;

	for (size_t b = 0; b < TPAGE; b++) {
		if (p[b] != sh[b]) {
			d++;
			first = first < b ? first : b;
			last = b;
		}
		zero += !p[b];
	}
	for (int k = 0; k < NTMPL && t < 0; k++)
		if (!memcmp(p, tmpl + (size_t)k * TPAGE, TPAGE))
			t = k;
	atomic_fetch_add(pages, 1);
	atomic_fetch_add(bytes, d);
	if (atomic_fetch_add(&printed, 1) < 8)
		fprintf(stderr,
			"  MISMATCH client %d (pid %d, domain %s) %s: page %zu (%p): %zu bytes differ in [%zu, %zu], "
			"page has %zu zero bytes, reads template %d (shadow: %s)\n",
			me, (int)getpid(), domain_of(me), when, i, (void *)(p), d, first, last, zero, t,
			memcmp(sh, tmpl + (i % NTMPL) * TPAGE, TPAGE) ? "written" : "its first template");
	memcpy(shadow + i * TPAGE, p, TPAGE); /* counted once, not at every later check */
}

static int check_page(size_t i, const char *when, _Atomic uint64_t *pages, _Atomic uint64_t *bytes)
{
	if (!memcmp(mem + i * TPAGE, shadow + i * TPAGE, TPAGE))
		return 0;
	mismatch(i, when, pages, bytes);
	return 1;
}

static uint64_t check_all(const char *when, _Atomic uint64_t *pages, _Atomic uint64_t *bytes)
{
	uint64_t bad = 0;

	for (size_t i = 0; i < NP; i++)
		bad += (uint64_t)check_page(i, when, pages, bytes);
	return bad;
}

/* n bytes from buf into the page at off, written by the kernel: read(2)
 * from a pipe. */
static void pipe_write(struct writer *w, char *p, size_t off, const uint8_t *buf, size_t n)
{
	size_t got = 0;

	if (write(w->pipe[1], buf, n) != (ssize_t)n) {
		fprintf(stderr, "  client %d: write to the pipe: %s\n", me, strerror(errno));
		atomic_fetch_add(&S[me].errors, 1);
		return;
	}
	while (got < n) {
		ssize_t k = read(w->pipe[0], p + off + got, n - got);

		if (k <= 0) {
			fprintf(stderr, "  client %d: read(2) from the pipe into page %p+%zu: %s\n", me, (void *)p,
				off + got, k ? strerror(errno) : "EOF");
			atomic_fetch_add(&S[me].errors, 1);
			break;
		}
		got += (size_t)k;
	}
}

enum { OP_TEMPLATE, OP_TEMPLATE_PIPE, OP_STORES, OP_PIPE };

/* One write into page i, which must read its shadow first: under the
 * writer's lock, the shadow written with it. */
static void write_page(struct writer *w, size_t i, int op, size_t t, uint64_t *s)
{
	char *p = mem + i * TPAGE;
	uint8_t *sh = shadow + i * TPAGE, buf[TPAGE];
	uint64_t r = rnd(s), v;
	size_t n, off;

	pthread_mutex_lock(&w->lock);
	check_page(i, "before a write", &S[me].mismatches, &S[me].bad_bytes);
	switch (op) {
	case OP_TEMPLATE: /* the duplicated pattern again: it merges */
		memcpy(p, tmpl + t * TPAGE, TPAGE);
		memcpy(sh, tmpl + t * TPAGE, TPAGE);
		break;
	case OP_TEMPLATE_PIPE: /* the same, written by the kernel */
		pipe_write(w, p, 0, tmpl + t * TPAGE, TPAGE);
		memcpy(sh, tmpl + t * TPAGE, TPAGE);
		break;
	case OP_STORES: /* plain stores of words and bytes */
		n = 1 + (size_t)(r % 8);
		for (size_t k = 0; k < n; k++) {
			v = (w->ops * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)me << 56) ^ ((uint64_t)w->id << 48) ^ k;
			off = (size_t)(rnd(s) % TPAGE);
			if (k & 1) {
				p[off] = (char)v;
				sh[off] = (uint8_t)v;
			} else {
				off &= ~(size_t)7;
				*(volatile uint64_t *)(void *)(p + off) = v;
				memcpy(sh + off, &v, sizeof(v));
			}
		}
		break;
	default: /* 1 to 4096 bytes somewhere in the page, by the kernel */
		n = 1 + (size_t)(r % TPAGE);
		off = (size_t)(r >> 16) % (TPAGE - n + 1);
		for (size_t k = 0; k < n; k++)
			buf[k] = (uint8_t)((w->ops * 131) ^ (k * 7) ^ ((size_t)me << 5) ^ (size_t)w->id);
		pipe_write(w, p, off, buf, n);
		memcpy(sh + off, buf, n);
	}
	pthread_mutex_unlock(&w->lock);
	atomic_fetch_add_explicit(&S[me].w[w->id].writes, 1, memory_order_relaxed);
	w->ops++;
}

/* Writes as the domain scans: PER_SCAN writes per client for each full
 * scan (the pacer thread grants them), so merging keeps up on any machine. */
static _Atomic uint64_t allowed;
static uint64_t per_scan;

static int pace(void)
{
	while (slot_writes(me) >= atomic_load(&allowed)) {
		if (atomic_load_explicit(&stop_writers, memory_order_relaxed))
			return 0;
		pause_ms(1);
	}
	return !atomic_load_explicit(&stop_writers, memory_order_relaxed);
}

static void *pacer(void *arg)
{
	long long last = -1;
	uint64_t granted = t_now_ms();

	(void)arg;
	while (!atomic_load(&stop_writers)) {
		struct samepage_stats st;
		uint64_t now = t_now_ms(), w = slot_writes(me);

		if (!samepage_stats(&st)) {
			if (last < 0 || (long long)st.full_scans < last) { /* a new daemon counts from 0 */
				last = (long long)st.full_scans;
			} else if ((long long)st.full_scans > last) {
				atomic_fetch_add(&allowed, per_scan * (uint64_t)((long long)st.full_scans - last));
				last = (long long)st.full_scans;
				granted = now;
			}
		}
		/* no scan (run=2, no daemon): the writers go on, slower */
		if (now - granted >= FLOOR_MS) {
			atomic_fetch_add(&allowed, per_scan / 4);
			granted = now;
		}
		if (atomic_load(&allowed) > w + 4 * per_scan) /* no burst after a pause */
			atomic_store(&allowed, w + 4 * per_scan);
		pause_ms(2);
	}
	return NULL;
}

static void *writer(void *arg)
{
	struct writer *w = arg;
	size_t base = (size_t)w->id * OWN, hot = 0;
	uint64_t s = w->seed;

	while (pace()) {
		uint64_t r = rnd(&s);
		size_t t = (size_t)(r >> 24) % NTMPL, i;
		unsigned op = (unsigned)((r >> 32) % 100);

		if (r % 100 < 15) { /* anywhere: mostly a template again */
			i = base + (size_t)(r >> 8) % OWN;
			write_page(w, i,
				   op < 70   ? OP_TEMPLATE
				   : op < 85 ? OP_TEMPLATE_PIPE
				   : op < 93 ? OP_STORES
					     : OP_PIPE,
				   t, &s);
		} else { /* the window */
			i = base + (hot + (size_t)(r >> 8) % HOT) % OWN;
			write_page(w, i,
				   op < 15   ? OP_TEMPLATE
				   : op < 25 ? OP_TEMPLATE_PIPE
				   : op < 65 ? OP_STORES
					     : OP_PIPE,
				   t, &s);
		}
		if (w->ops % WINDOW_OPS < WINDOW_OPS - 1)
			continue;
		/* the window moves on; what it leaves reads a template again */
		for (size_t k = 0; k < HOT && pace(); k++) {
			i = base + (hot + k) % OWN;
			write_page(w, i, k & 1 ? OP_TEMPLATE_PIPE : OP_TEMPLATE, i % NTMPL, &s);
		}
		hot = (size_t)(rnd(&s) % OWN);
	}
	return NULL;
}

/* The child of a fork: the pages it inherited read the shadow it
 * inherited (the writers' locks were held over the fork), at once and again
 * after the parent wrote on and the domain scanned, which frees store pages
 * nobody maps any more. */
static void fork_child(const struct dt_daemon *d)
{
	char block[32];
	uint64_t w0 = slot_writes(me), deadline = t_now_ms() + 5000;
	long long s0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	check_all("in a fork child", &S[me].fork_mismatches, &S[me].fork_bad_bytes);
	snprintf(block, sizeof(block), "domain %s", domain_of(me));
	s0 = dt_value(dt_status(d), block, "full_scans");
	while (t_now_ms() < deadline &&
	       (slot_writes(me) < w0 + 2 * NP || dt_value(dt_status(d), block, "full_scans") < s0 + 2))
		pause_ms(2);
	check_all("in a fork child, later", &S[me].fork_mismatches, &S[me].fork_bad_bytes);
	atomic_fetch_add(&S[me].forks, 1);
	_exit(0);
}

static pid_t fork_pids[MAX_FORKS];

static void reap_forks(int block)
{
	for (int k = 0; k < MAX_FORKS; k++) {
		int st;

		if (fork_pids[k] <= 0 || waitpid(fork_pids[k], &st, block ? 0 : WNOHANG) != fork_pids[k])
			continue;
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "  client %d: fork child %d ended with status %#x\n", me, (int)fork_pids[k],
				st);
			atomic_fetch_add(&S[me].errors, 1);
		}
		fork_pids[k] = 0;
	}
}

static void do_fork(const struct dt_daemon *d)
{
	int k;
	pid_t pid;

	reap_forks(0);
	for (k = 0; k < MAX_FORKS && fork_pids[k] > 0; k++)
		;
	if (k == MAX_FORKS)
		reap_forks(1), k = 0;
	for (int w = 0; w < WRITERS; w++)
		pthread_mutex_lock(&wr_[w].lock);
	pid = fork();
	if (!pid)
		fork_child(d);
	for (int w = 0; w < WRITERS; w++)
		pthread_mutex_unlock(&wr_[w].lock);
	if (pid < 0) {
		fprintf(stderr, "  client %d: fork: %s\n", me, strerror(errno));
		atomic_fetch_add(&S[me].errors, 1);
		return;
	}
	fork_pids[k] = pid;
}

/* A chunk leaves the domain (plain memory again, under the writers' feet)
 * and comes back. */
static void do_rereg(uint64_t *s)
{
	char *c = mem + (size_t)(rnd(s) % (NP / CHUNK)) * CHUNK * TPAGE;

	if (samepage_madvise(c, CHUNK * TPAGE, SAMEPAGE_UNMERGEABLE)) {
		fprintf(stderr, "  client %d: unregister %p: %s\n", me, (void *)c, strerror(errno));
		atomic_fetch_add(&S[me].errors, 1);
	}
	if (samepage_madvise(c, CHUNK * TPAGE, SAMEPAGE_MERGEABLE)) {
		fprintf(stderr, "  client %d: register %p again: %s\n", me, (void *)c, strerror(errno));
		atomic_fetch_add(&S[me].errors, 1);
	}
	atomic_fetch_add(&S[me].reregs, 1);
}

struct client_arg {
	int slot;
	uint64_t seed;
	const struct dt_daemon *d;
};

static int client(void *arg, int up, int down)
{
	const struct client_arg *a = arg;
	struct samepage_region_stats rs;
	uint64_t s = a->seed, writes = 0;
	char cmd, line[256];
	int n;

	me = a->slot;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	setenv("SAMEPAGE_DOMAIN", domain_of(me), 1); /* before the first samepage call */
	mem = t_map(NP);
	shadow = mmap(NULL, NP * TPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	tmpl = mmap(NULL, NTMPL * TPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (shadow == MAP_FAILED || tmpl == MAP_FAILED)
		return 2;
	for (size_t t = 0; t < NTMPL; t++)
		t_fill(tmpl + t * TPAGE, t ? 0x5000 + (uint32_t)t * 7 : 0);
	for (size_t i = 0; i < NP; i++) {
		memcpy(mem + i * TPAGE, tmpl + (i % NTMPL) * TPAGE, TPAGE);
		memcpy(shadow + i * TPAGE, tmpl + (i % NTMPL) * TPAGE, TPAGE);
	}
	if (samepage_madvise(mem, NP * TPAGE, SAMEPAGE_MERGEABLE)) {
		fprintf(stderr, "  client %d: samepage_madvise: %s\n", me, strerror(errno));
		return 2;
	}
	for (int w = 0; w < WRITERS; w++) {
		wr_[w].id = w;
		wr_[w].seed = rnd(&s) | 1;
		pthread_mutex_init(&wr_[w].lock, NULL);
		if (pipe2(wr_[w].pipe, O_CLOEXEC) || pthread_create(&wr_[w].thread, NULL, writer, &wr_[w]))
			return 2;
	}
	per_scan = env_u64("SAMEPAGE_TORTURE_PER_SCAN", PER_SCAN);
	atomic_store(&allowed, per_scan);
	if (pthread_create(&pacer_thread, NULL, pacer, NULL))
		return 2;
	if (write(up, "r", 1) != 1)
		return 2;
	while (read(down, &cmd, 1) == 1 && cmd != 'q') {
		if (cmd == 'f')
			do_fork(a->d);
		else if (cmd == 'u')
			do_rereg(&s);
		if (write(up, "k", 1) != 1)
			return 2;
	}
	if (cmd != 'q')
		return 3; /* the parent is gone */
	atomic_store(&stop_writers, 1);
	pthread_join(pacer_thread, NULL);
	for (int w = 0; w < WRITERS; w++) {
		pthread_join(wr_[w].thread, NULL);
		writes += wr_[w].ops;
	}
	reap_forks(1);
	/* quiet now: the domain merges once more, then every page is checked */
	if (samepage_wait_scans(FINAL_SCANS, FINAL_MS)) {
		fprintf(stderr, "  client %d: samepage_wait_scans: %s\n", me, strerror(errno));
		atomic_fetch_add(&S[me].errors, 1);
	}
	check_all("at the end", &S[me].mismatches, &S[me].bad_bytes);
	if (samepage_region_stats(mem, NP * TPAGE, &rs) || rs.registered_pages != NP) {
		fprintf(stderr, "  client %d: region stats: %llu pages registered, not %d\n", me,
			(unsigned long long)rs.registered_pages, NP);
		atomic_fetch_add(&S[me].errors, 1);
	}
	n = snprintf(line, sizeof(line),
		     "writes %" PRIu64 " mismatches %" PRIu64 " bad_bytes %" PRIu64 " fork_mismatches %" PRIu64
		     " errors %" PRIu64 " merging %" PRIu64 "\n",
		     writes, atomic_load(&S[me].mismatches), atomic_load(&S[me].bad_bytes),
		     atomic_load(&S[me].fork_mismatches), atomic_load(&S[me].errors),
		     (uint64_t)(rs.merging_pages + rs.zero_pages));
	if (write(up, line, (size_t)n) != n)
		return 2;
	if (samepage_munmap(mem, NP * TPAGE)) {
		fprintf(stderr, "  client %d: samepage_munmap: %s\n", me, strerror(errno));
		return 4;
	}
	return 0;
}

/* ---- the parent: chaos -------------------------------------------------------- */

enum { E_RUN2, E_FORK, E_REREG, E_KILL_CLIENT, E_KILL_DAEMON, E_STOP, E_KINDS };
static const unsigned event_weight[E_KINDS] = {25, 25, 25, 15, 10, 5};

struct torture {
	struct dt_daemon d;
	struct dt_child c[NCLIENTS];
	struct client_arg arg[NCLIENTS];
	int pending[NCLIENTS]; /* commands not acknowledged */
	uint64_t seed, rng, target, t0;
	int enabled[E_KINDS], verbose, failed;
	uint64_t retired_writes, retired_mismatches, retired_bad, retired_fork_mismatches, retired_errors;
	uint64_t retired_forks, retired_reregs;
	uint64_t events[E_KINDS];
	long long peak_sharing[2], peak_sum, peak_zero[2], peak_chains[2], scans[2];
	long long scans_base[2]; /* full_scans of the domains at the last event */
	uint64_t reconnect_ms_max, scans_total, double_kills, abandoned;
};

static struct torture T;

static uint64_t total_writes(void)
{
	uint64_t n = T.retired_writes;

	for (int i = 0; i < NCLIENTS; i++)
		n += slot_writes(i);
	return n;
}

static void say(const char *fmt, ...)
{
	va_list ap;

	if (!T.verbose)
		return;
	printf("  [%7.2fs] ", (double)(t_now_ms() - T.t0) / 1000.0);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

/* samepaged died on its own (a crash, a sanitizer): its log tells. */
static void daemon_alive(void)
{
	int st;

	if (T.d.pid <= 0 || waitpid(T.d.pid, &st, WNOHANG) != T.d.pid)
		return;
	fprintf(stderr, "FAILED: samepaged (pid %d) died by itself, status %#x\n", (int)T.d.pid, st);
	T.d.pid = 0;
	T.failed = 1;
}

/* The daemon's log (every daemon of the run appends to it): a sanitizer's
 * report fails the test, and a failed test shows the log's end. */
static int daemon_log_clean(int show)
{
	char line[512];
	int clean = 1, n = 0;
	FILE *f = fopen(T.d.log, "r");

	if (!f)
		return 1;
	while (fgets(line, sizeof(line), f)) {
		n++;
		if (strstr(line, "Sanitizer") || strstr(line, "runtime error"))
			clean = 0;
	}
	if (!clean || show) {
		int skip = n > 60 ? n - 60 : 0;

		fprintf(stderr, "samepaged's log (%s), its last lines:\n", T.d.log);
		rewind(f);
		for (int i = 0; fgets(line, sizeof(line), f); i++)
			if (i >= skip)
				fputs(line, stderr);
	}
	fclose(f);
	return clean;
}

/* The domains' counters: peaks, full_scans. */
static void sample(void)
{
	const char *st = dt_status(&T.d);
	long long sum = 0;

	if (!st)
		return;
	for (int k = 0; k < 2; k++) {
		const char *blk = k ? "domain b" : "domain a";
		long long v = dt_value(st, blk, "pages_sharing");

		sum += v > 0 ? v : 0;
		if (v > T.peak_sharing[k])
			T.peak_sharing[k] = v;
		v = dt_value(st, blk, "ksm_zero_pages");
		if (v > T.peak_zero[k])
			T.peak_zero[k] = v;
		v = dt_value(st, blk, "stable_node_chains");
		if (v > T.peak_chains[k])
			T.peak_chains[k] = v;
		v = dt_value(st, blk, "full_scans");
		if (v >= 0) /* all of them, a restarted daemon counting from 0 */
			T.scans_total += (uint64_t)(v >= T.scans[k] ? v - T.scans[k] : v);
		T.scans[k] = v;
	}
	if (sum > T.peak_sum)
		T.peak_sum = sum;
}

static void spawn(int i)
{
	T.arg[i].slot = i;
	T.arg[i].seed = rnd(&T.rng) | 1;
	T.arg[i].d = &T.d;
	T.pending[i] = 0;
	dt_spawn(&T.c[i], client, &T.arg[i]);
	if (dt_step(&T.c[i]) != 'r') {
		fprintf(stderr, "client %d did not start\n", i);
		T.failed = 1;
	}
}

/* Waits for a byte from client i until the deadline: 1 got it, 0 not. */
static int wait_byte(int i, int ms, char *b)
{
	struct pollfd p = {.fd = T.c[i].rd, .events = POLLIN};

	return poll(&p, 1, ms) == 1 && read(T.c[i].rd, b, 1) == 1;
}

/* Collects acknowledgements; block: until client i has none pending. */
static void acks(int i, int block)
{
	char b;

	while (T.pending[i] && wait_byte(i, block ? ACK_MS : 0, &b)) {
		if (b != 'k') {
			fprintf(stderr, "client %d answered '%c' to a command\n", i, b);
			T.failed = 1;
		}
		T.pending[i]--;
	}
	if (block && T.pending[i]) {
		fprintf(stderr, "client %d did not finish a command within %d ms\n", i, ACK_MS);
		T.failed = 1;
	}
}

static void command(int i, char cmd)
{
	acks(i, 1);
	if (T.failed)
		return;
	dt_go(&T.c[i], cmd);
	T.pending[i]++;
}

static void retire(int i)
{
	T.retired_writes += slot_writes(i);
	T.retired_mismatches += atomic_load(&S[i].mismatches);
	T.retired_bad += atomic_load(&S[i].bad_bytes);
	T.retired_fork_mismatches += atomic_load(&S[i].fork_mismatches);
	T.retired_errors += atomic_load(&S[i].errors);
	T.retired_forks += atomic_load(&S[i].forks);
	T.retired_reregs += atomic_load(&S[i].reregs);
	memset(&S[i], 0, sizeof(S[i]));
}

static int clients_back(int ms)
{
	uint64_t deadline = t_now_ms() + (uint64_t)ms;
	const char *st = NULL;

	for (;;) {
		st = dt_status(&T.d);
		if (dt_value(st, "domain a", "clients") == NCLIENTS / 2 &&
		    dt_value(st, "domain b", "clients") == NCLIENTS / 2 &&
		    dt_value(st, "domain a", "registered_bytes") == (long long)(NCLIENTS / 2 * NP * TPAGE) &&
		    dt_value(st, "domain b", "registered_bytes") == (long long)(NCLIENTS / 2 * NP * TPAGE))
			return 1;
		if (t_now_ms() > deadline)
			break;
		pause_ms(5);
	}
	fprintf(stderr, "not every client came back within %d ms; status:\n%s\n", ms, st ? st : "(none)");
	return 0;
}

/* After a restart: every client merges again (a client whose agent the
 * daemon gave up on stays registered, but never merges). */
static int clients_merge(int ms)
{
	uint64_t deadline = t_now_ms() + (uint64_t)ms;
	char block[32];

	for (int i = 0; i < NCLIENTS; i++) {
		long long v = -1;

		snprintf(block, sizeof(block), "client %d", (int)T.c[i].pid);
		while (t_now_ms() <= deadline) {
			const char *st = dt_status(&T.d);

			v = dt_value(st, block, "ksm_merging_pages");
			if (v > 0 || dt_value(st, block, "ksm_zero_pages") > 0)
				break;
			pause_ms(5);
		}
		if (t_now_ms() > deadline) {
			fprintf(stderr,
				"client %d (pid %d) does not merge again after the restart within %d ms; status:\n%s\n",
				i, (int)T.c[i].pid, ms, dt_status(&T.d));
			return 0;
		}
	}
	return 1;
}

/* A client of which the daemon's status shows a counter, -1 absent. */
static long long client_value(int i, const char *key)
{
	char block[32];

	snprintf(block, sizeof(block), "client %d", (int)T.c[i].pid);
	return dt_value(dt_status(&T.d), block, key);
}

/* A client stopped (SIGSTOP: a debugger, a job stopped from its shell, a
 * frozen cgroup) for longer than the daemon waits for its agent: the daemon
 * gives up on what it asked. Once continued the client must lose nothing
 * and be merged again. */
static void stop_client(int i)
{
	long long us0 = client_value(i, "agent_usecs"), calls;
	uint64_t end = t_now_ms() + STOP_MS;

	say("SIGSTOP client %d (pid %d)\n", i, (int)T.c[i].pid);
	kill(T.c[i].pid, SIGSTOP);
	/* until the daemon waited for its agent in vain (its agent time grows
	 * by the timeout), or long enough for that */
	while (t_now_ms() < end && client_value(i, "agent_usecs") < us0 + AGENT_TIMEOUT_US)
		pause_ms(20);
	say("SIGCONT client %d: agent_usecs %lld -> %lld\n", i, us0, client_value(i, "agent_usecs"));
	kill(T.c[i].pid, SIGCONT);
	/* the daemon calls its agent again: the same peer (more calls) or,
	 * after a hang-up, the client connected anew (a count of its own) */
	calls = client_value(i, "agent_calls");
	end = t_now_ms() + RECONNECT_MS;
	while (t_now_ms() < end && client_value(i, "agent_calls") == calls)
		pause_ms(5);
	if (client_value(i, "agent_calls") == calls) { /* the check at the end still runs */
		fprintf(stderr,
			"FAILED: client %d (pid %d) was stopped and continued; samepaged no longer calls its agent "
			"(%lld calls) within %d ms: it is not merged any more\n",
			i, (int)T.c[i].pid, calls, RECONNECT_MS);
		T.abandoned++;
	}
}

static void event(int kind)
{
	int i = (int)(rnd(&T.rng) % NCLIENTS);
	const char *dom = rnd(&T.rng) % 3 ? (rnd(&T.rng) & 1 ? "b" : "a") : "";
	uint64_t t;
	int err;

	T.events[kind]++;
	switch (kind) {
	case E_RUN2:
		say("run=2, run=1 in %s\n", *dom ? dom : "every domain");
		err = dt_set(&T.d, dom, "run", "2");
		if (!err)
			err = dt_set(&T.d, dom, "run", "1");
		if (err) {
			fprintf(stderr, "run toggle in domain \"%s\": %s\n", dom, strerror(-err));
			T.failed = 1;
		}
		break;
	case E_FORK:
		say("client %d forks\n", i);
		command(i, 'f');
		break;
	case E_REREG:
		say("client %d re-registers a chunk\n", i);
		command(i, 'u');
		break;
	case E_KILL_CLIENT:
		say("kill -9 client %d (pid %d)\n", i, (int)T.c[i].pid);
		kill(T.c[i].pid, SIGKILL);
		if (dt_reap(&T.c[i]) != 128 + SIGKILL) {
			fprintf(stderr, "client %d had exited before its kill\n", i);
			T.failed = 1;
		}
		retire(i);
		spawn(i);
		break;
	case E_STOP:
		stop_client(i);
		break;
	case E_KILL_DAEMON:
		say("kill -9 samepaged (pid %d)\n", (int)T.d.pid);
		dt_kill9(&T.d);
		/* the clients write on without it for a while */
		t = total_writes() + GAP_MIN;
		for (uint64_t end = t_now_ms() + 1000; total_writes() < t && t_now_ms() < end;)
			pause_ms(2);
		dt_restart(&T.d);
		t = t_now_ms();
		if (!(rnd(&T.rng) % 3)) {
			/* and again while the clients are coming back */
			const char *st;

			for (uint64_t end = t + 2000; t_now_ms() < end; pause_ms(1)) {
				st = dt_status(&T.d);
				if (dt_value(st, "domain a", "clients") + dt_value(st, "domain b", "clients") > 0)
					break;
			}
			say("kill -9 samepaged (pid %d) again, as the clients come back\n", (int)T.d.pid);
			T.double_kills++;
			dt_kill9(&T.d);
			dt_restart(&T.d);
			t = t_now_ms();
		}
		if (!clients_back(RECONNECT_MS)) {
			fprintf(stderr, "FAILED: the clients did not reconnect after kill -9 of the daemon\n");
			T.failed = 1;
		}
		t = t_now_ms() - t;
		T.reconnect_ms_max = t > T.reconnect_ms_max ? t : T.reconnect_ms_max;
		if (!T.failed && !clients_merge(RECONNECT_MS)) {
			fprintf(stderr, "FAILED: a client reconnected but does not merge any more\n");
			T.failed = 1;
		}
		say("samepaged back (pid %d), every client registered again after %llu ms\n", (int)T.d.pid,
		    (unsigned long long)t);
		break;
	}
}

static void test_torture(void **state)
{
	uint64_t next, last_total = 0, last_progress, ms, pipe_writes = 0, pipe_mism = 0, pipe_fork = 0, pipe_err = 0;
	uint64_t mism, bad, fork_mism, errors, forks = 0, reregs = 0;
	int order[E_KINDS], nev = 0, kinds = 0;
	unsigned weights = 0;
	char line[256];

	(void)state;
	memset(&T, 0, sizeof(T));
	T.target = env_u64("SAMEPAGE_TORTURE_WRITES", DEFAULT_WRITES);
	T.seed = env_u64("SAMEPAGE_TORTURE_SEED", DEFAULT_SEED);
	for (int k = 0; k < E_KINDS; k++)
		T.enabled[k] = 1;
	T.enabled[E_KILL_DAEMON] = (int)env_u64("SAMEPAGE_TORTURE_DAEMON_KILL", 1);
	T.enabled[E_STOP] = (int)env_u64("SAMEPAGE_TORTURE_STOP", 0);
	T.verbose = (int)env_u64("SAMEPAGE_TORTURE_VERBOSE", 0);
	T.rng = T.seed | 1;
	printf("  seed %#llx, %llu writes, %d clients in 2 domains, %d writers each, %d pages each, daemon kill %s\n",
	       (unsigned long long)T.seed, (unsigned long long)T.target, NCLIENTS, WRITERS, NP,
	       T.enabled[E_KILL_DAEMON] ? "on" : "off (SAMEPAGE_TORTURE_DAEMON_KILL=0)");
	if (T.enabled[E_STOP])
		printf("  SIGSTOP of clients for longer than samepaged waits for an agent: on\n");
	fflush(stdout);
	S = mmap(NULL, NCLIENTS * sizeof(*S), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(S != MAP_FAILED);
	memset(S, 0, NCLIENTS * sizeof(*S));

	dt_start(&T.d, config);
	setenv("SAMEPAGE_DAEMON", T.d.sock, 1);
	T.t0 = t_now_ms();
	for (int i = 0; i < NCLIENTS; i++)
		spawn(i);
	assert_false(T.failed);
	assert_true(clients_back(RECONNECT_MS));

	/* every kind of event once first, in a random order; then at random */
	for (int k = 0; k < E_KINDS; k++)
		if (T.enabled[k]) {
			order[kinds++] = k;
			weights += event_weight[k];
		}
	for (int k = kinds - 1; k > 0; k--) {
		int j = (int)(rnd(&T.rng) % (uint64_t)(k + 1)), x = order[k];

		order[k] = order[j];
		order[j] = x;
	}
	sample();
	T.scans_base[0] = T.scans[0];
	T.scans_base[1] = T.scans[1];
	next = GAP_MIN + rnd(&T.rng) % (GAP_MAX - GAP_MIN);
	last_progress = t_now_ms();
	while (!T.failed) {
		uint64_t total = total_writes(), now = t_now_ms();

		daemon_alive();
		if (T.failed)
			break;
		sample();
		for (int i = 0; i < NCLIENTS; i++)
			acks(i, 0);
		if (total != last_total) {
			last_total = total;
			last_progress = now;
		} else if (now - last_progress > STALL_MS) {
			fprintf(stderr, "FAILED: no write in %d ms (a writer hangs); writes per client:", STALL_MS);
			for (int i = 0; i < NCLIENTS; i++)
				fprintf(stderr, " %llu", (unsigned long long)slot_writes(i));
			fprintf(stderr, "\nstatus:\n%s\n", dt_status(&T.d));
			T.failed = 1;
			break;
		}
		if (total >= T.target && nev >= kinds)
			break;
		/* an event once enough was written and both domains scanned
		 * since the last one (a restarted daemon counts from 0) */
		for (int k = 0; k < 2; k++)
			if (T.scans[k] < T.scans_base[k])
				T.scans_base[k] = T.scans[k];
		if (total >= next && T.scans[0] >= T.scans_base[0] + 2 && T.scans[1] >= T.scans_base[1] + 2) {
			int kind;

			if (nev < kinds) {
				kind = order[nev];
			} else {
				unsigned r = (unsigned)(rnd(&T.rng) % weights), acc = 0;

				for (kind = 0; kind < E_KINDS; kind++) {
					acc += T.enabled[kind] ? event_weight[kind] : 0;
					if (r < acc)
						break;
				}
			}
			nev++;
			event(kind);
			sample();
			T.scans_base[0] = T.scans[0];
			T.scans_base[1] = T.scans[1];
			next = total_writes() + GAP_MIN + rnd(&T.rng) % (GAP_MAX - GAP_MIN);
			continue;
		}
		pause_ms(10);
	}
	ms = t_now_ms() - T.t0;

	/* the end: every client stops, lets its domain merge, checks, reports */
	for (int i = 0; i < NCLIENTS; i++) {
		acks(i, 1);
		if (T.c[i].pid > 0 && T.failed)
			kill(T.c[i].pid, SIGKILL);
		else if (T.c[i].pid > 0)
			dt_go(&T.c[i], 'q');
	}
	for (int i = 0; i < NCLIENTS && !T.failed; i++) {
		size_t n = 0;
		char b;
		unsigned long long w, m, bb, fm, e, mg;

		while (n < sizeof(line) - 1 && wait_byte(i, FINAL_MS, &b) && b != '\n')
			line[n++] = b;
		line[n] = 0;
		if (sscanf(line,
			   "writes %llu mismatches %llu bad_bytes %llu fork_mismatches %llu errors %llu merging %llu",
			   &w, &m, &bb, &fm, &e, &mg) != 6) {
			fprintf(stderr, "client %d reported \"%s\"\n", i, line);
			T.failed = 1;
			continue;
		}
		if (T.verbose)
			printf("  client %d (domain %s) reports: %s\n", i, domain_of(i), line);
		pipe_writes += w;
		pipe_mism += m;
		pipe_fork += fm;
		pipe_err += e;
		if (w != slot_writes(i)) {
			fprintf(stderr, "client %d reports %llu writes, its counter says %llu\n", i, w,
				(unsigned long long)slot_writes(i));
			T.failed = 1;
		}
	}
	for (int i = 0; i < NCLIENTS; i++) {
		int rc = T.c[i].pid > 0 ? dt_reap(&T.c[i]) : 0;

		if (rc && !T.failed) {
			fprintf(stderr, "client %d exited with %d\n", i, rc);
			T.failed = 1;
		}
	}
	/* killed clients: their counters; the others: what they reported
	 * (the same as their counters, unless the pipe or a client lies) */
	mism = T.retired_mismatches;
	bad = T.retired_bad;
	fork_mism = T.retired_fork_mismatches;
	errors = T.retired_errors;
	forks = T.retired_forks;
	reregs = T.retired_reregs;
	for (int i = 0; i < NCLIENTS; i++) {
		mism += atomic_load(&S[i].mismatches);
		bad += atomic_load(&S[i].bad_bytes);
		fork_mism += atomic_load(&S[i].fork_mismatches);
		errors += atomic_load(&S[i].errors);
		forks += atomic_load(&S[i].forks);
		reregs += atomic_load(&S[i].reregs);
	}
	if (!T.failed &&
	    (T.retired_mismatches + pipe_mism != mism || T.retired_fork_mismatches + pipe_fork != fork_mism ||
	     T.retired_errors + pipe_err != errors)) {
		fprintf(stderr, "the clients' reports and their counters differ\n");
		T.failed = 1;
	}
	printf("  %llu writes in %llu ms (%llu reported through the pipes by the %d clients at the end, the rest by "
	       "killed ones)\n",
	       (unsigned long long)total_writes(), (unsigned long long)ms, (unsigned long long)pipe_writes, NCLIENTS);
	printf("  events: %llu run toggles, %llu forks (%llu children checked), %llu re-registrations (%llu done), "
	       "%llu client kills, %llu daemon kills (%llu of them twice in a row; reconnect took at most %llu ms)\n",
	       (unsigned long long)T.events[E_RUN2], (unsigned long long)T.events[E_FORK], (unsigned long long)forks,
	       (unsigned long long)T.events[E_REREG], (unsigned long long)reregs,
	       (unsigned long long)T.events[E_KILL_CLIENT], (unsigned long long)T.events[E_KILL_DAEMON],
	       (unsigned long long)T.double_kills, (unsigned long long)T.reconnect_ms_max);
	printf("  merges: peak pages_sharing a %lld, b %lld, both %lld; peak ksm_zero_pages a %lld, b %lld; peak "
	       "chains a %lld, b %lld\n",
	       T.peak_sharing[0], T.peak_sharing[1], T.peak_sum, T.peak_zero[0], T.peak_zero[1], T.peak_chains[0],
	       T.peak_chains[1]);
	printf("  full scans of the 2 domains: %llu\n", (unsigned long long)T.scans_total);
	printf("  mismatched pages %llu (%llu bytes), in fork children %llu, failed calls %llu\n",
	       (unsigned long long)mism, (unsigned long long)bad, (unsigned long long)fork_mism,
	       (unsigned long long)errors);
	fflush(stdout);

	/* the clients are gone: so is everything they had in the domains */
	if (!T.failed)
		for (int k = 0; k < 2; k++) {
			const char *blk = k ? "domain b" : "domain a";

			if (dt_wait(&T.d, blk, "clients", DT_EQ(0)) != 0 ||
			    dt_wait(&T.d, blk, "pages_shared", DT_EQ(0)) != 0 ||
			    dt_wait(&T.d, blk, "registered_bytes", DT_EQ(0)) != 0 ||
			    dt_wait(&T.d, blk, "pages_sharing", DT_EQ(0)) != 0) {
				fprintf(stderr, "%s is not empty after its clients left\n", blk);
				T.failed = 1;
			}
		}
	if (T.enabled[E_STOP])
		printf("  %llu clients stopped, %llu of them abandoned by samepaged\n",
		       (unsigned long long)T.events[E_STOP], (unsigned long long)T.abandoned);
	if (!daemon_log_clean(T.failed))
		T.failed = 1;
	assert_int_equal(T.abandoned, 0);
	assert_false(T.failed);
	assert_int_equal(mism, 0);
	assert_int_equal(fork_mism, 0);
	assert_int_equal(errors, 0);
	assert_true(total_writes() >= T.target);
	for (int k = 0; k < E_KINDS; k++)
		assert_true(T.events[k] > 0 || !T.enabled[k]);
	assert_true(T.peak_sharing[0] > 0 && T.peak_sharing[1] > 0);
	assert_true(dt_stop(&T.d));
	dt_cleanup(&T.d);
	munmap(S, NCLIENTS * sizeof(*S));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_torture),
	};

	if (geteuid()) {
		printf("daemon tests need root (the daemon reads other processes' memory)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
