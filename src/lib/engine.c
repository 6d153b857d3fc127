/* SPDX-License-Identifier: MIT */
/*
 * engine.c - the scanner thread, lazy set-up and fork safety.
 *
 * The scanner does what ksmd does — pages_to_scan pages, then sleep
 * sleep_millisecs — but never holds the lock (and so never delays the
 * application's own calls) for longer than batch_usecs: a batch that takes
 * longer is cut into slices with a yield of the CPU in between.
 *
 * Between batches, and whenever an API call takes the lock, it does the
 * bookkeeping of pages the application dropped with MADV_DONTNEED, which the
 * backend's event thread (src/mem/local.c) turned into anonymous memory.
 *
 * fork(): the prepare handler takes the lock, so no page is frozen while the
 * address space is copied, and pins every store page, since the child may
 * map it. The child starts with a fresh engine (no memory registered, no
 * thread), as the child of a KSM process starts with no ksmd work pending.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/engine.h"
#include "samepage.h"
#include "util/clock.h"

struct sp_engine sp_engine = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.scan_lock = PTHREAD_MUTEX_INITIALIZER,
};

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_conds(struct sp_engine *e)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&e->wake, &a);
	pthread_cond_init(&e->scanned, &a);
	pthread_condattr_destroy(&a);
}

static void atfork_prepare(void)
{
	pthread_mutex_lock(&sp_engine.lock);
	if (sp_engine.client_mode)
		sp_client_fork_prepare(&sp_engine);
	else if (sp_engine.core_ready)
		sp_core_pin_for_fork(&sp_engine.core);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&sp_engine.lock);
}

static void atfork_child(void)
{
	struct sp_engine *e = &sp_engine;

	if (e->core_ready)
		sp_core_destroy(&e->core);
	if (e->backend_ready)
		sp_local_destroy(&e->local); /* closes fds; mappings keep the store alive */
	if (e->client_mode)
		sp_client_fork_child(&e->client); /* the parent's connection, not ours */
	memset(e, 0, sizeof(*e));
	pthread_mutex_init(&e->lock, NULL);
	pthread_mutex_init(&e->scan_lock, NULL);
	/* not init_once again: it would install the fork handlers a second
	 * time, and the child's own fork() would take the lock twice */
	init_conds(e);
}

static void init_once(void)
{
	init_conds(&sp_engine);
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* SAMEPAGE_<KNOB> in the environment sets a knob's starting value. */
static void knobs_from_env(struct sp_knobs *kn)
{
	for (size_t i = 0; i < sp_knob_count; i++) {
		const struct sp_knob *k = &sp_knob_table[i];
		char var[96], *p;
		const char *val;
		uint32_t v;

		snprintf(var, sizeof(var), "SAMEPAGE_%s", k->name);
		for (p = var; *p; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
		val = getenv(var);
		if (!val)
			continue;
		if (sp_knob_parse(k, val, &v))
			fprintf(stderr, "samepage: ignoring %s=%s: invalid value\n", var, val);
		else
			*sp_knob_ptr(kn, k) = v;
	}
}

void sp_engine_init(void)
{
	pthread_once(&once, init_once);
}

static void anon_cb(void *ctx, uintptr_t addr, size_t n)
{
	struct sp_engine *e = ctx;

	sp_core_pages_anon(&e->core, e->space, addr, n);
}

static void filemap_cb(void *ctx, uintptr_t addr, size_t n, int (*fn)(void *, uintptr_t, size_t, uint8_t *), void *fctx)
{
	struct sp_engine *e = ctx;

	sp_core_filemap_runs(&e->core, e->space, addr, n, fn, fctx);
}

/* The bookkeeping the event thread left (MADV_DONTNEED on merged pages,
 * local.c): done by whoever takes the lock. Returns the nanoseconds until
 * more is due (0: nothing pending). */
static uint64_t process_events(struct sp_engine *e)
{
	if (!e->backend_ready || !e->core_ready || e->client_mode || !sp_local_events_pending(&e->local))
		return 0;
	return sp_local_events_process(&e->local, sp_mono_ns(), anon_cb, filemap_cb, e);
}

void sp_engine_lock(void)
{
	__atomic_add_fetch(&sp_engine.waiters, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&sp_engine.lock);
	__atomic_sub_fetch(&sp_engine.waiters, 1, __ATOMIC_RELAXED);
	process_events(&sp_engine);
}

void sp_engine_unlock(void)
{
	pthread_mutex_unlock(&sp_engine.lock);
}

int sp_engine_core(void)
{
	struct sp_engine *e = &sp_engine;

	sp_engine_init();
	if (e->core_ready)
		return 0;
	/* the local backend's operations are wired now (the core needs its
	 * host from the start), its files are opened on first register */
	sp_local_prepare(&e->local);
	if (sp_core_init(&e->core, &e->local.host))
		return -ENOMEM;
	knobs_from_env(&e->core.knobs);
	e->client.ctl = e->client.agent = -1;
	if (!e->client.path[0]) {
		const char *p = getenv("SAMEPAGE_DAEMON"), *l = getenv("SAMEPAGE_DOMAIN");

		if (p && *p)
			snprintf(e->client.path, sizeof(e->client.path), "%s", p);
		if (l)
			snprintf(e->client.label, sizeof(e->client.label), "%s", l);
	}
	e->client_mode = e->client.path[0] != 0;
	e->core_ready = 1;
	if (e->core.knobs.scan_threads > 1 && sp_engine_threads(e->core.knobs.scan_threads))
		e->core.knobs.scan_threads = 1;
	return 0;
}

int sp_engine_backend(void)
{
	struct sp_engine *e = &sp_engine;
	struct sp_knobs kn;
	int err;

	if (e->backend_ready)
		return 0;
	if (e->backend_err)
		return e->backend_err;
	if (e->client_mode) {
		err = sp_client_start(e);
		if (err)
			e->backend_err = err;
		else
			e->backend_ready = 1;
		return err;
	}
	kn = e->core.knobs;
	err = sp_local_init(&e->local, e->why, sizeof(e->why));
	if (err) {
		e->backend_err = err;
		fprintf(stderr, "samepage: %s\n", e->why);
		return err;
	}
	err = sp_core_add_space(&e->core, &e->local.mem);
	if (err < 0) {
		sp_local_destroy(&e->local);
		sp_local_prepare(&e->local);
		return err;
	}
	e->space = (uint32_t)err;
	e->core.knobs = kn;
	e->backend_ready = 1;
	return 0;
}

static void sleep_ms(struct sp_engine *e, uint32_t ms)
{
	struct timespec ts;
	uint64_t t = sp_mono_ns() + (uint64_t)ms * 1000000ull;

	ts.tv_sec = (time_t)(t / 1000000000ull);
	ts.tv_nsec = (long)(t % 1000000000ull);
	pthread_cond_timedwait(&e->wake, &e->lock, &ts);
}

/* Counting the process's mappings reads /proc/self/maps, which takes
 * milliseconds with tens of thousands of mappings: never under the lock. */
static void recount_unlocked(struct sp_engine *e)
{
	struct sp_budget *bg = &e->local.budget;
	long added, n;

	if (!sp_budget_due(bg, sp_mono_ns()))
		return;
	added = bg->added;
	pthread_mutex_unlock(&e->lock);
	n = sp_count_mappings();
	pthread_mutex_lock(&e->lock);
	sp_budget_set(bg, n, added, sp_mono_ns());
}

/* The scanner's scheduling: nice 5 like ksmd, or SCHED_IDLE (sched_idle=1),
 * which lets any other thread of the machine preempt it at once. */
static void apply_sched(uint32_t idle)
{
	struct sched_param sp = {0};

	sched_setscheduler(0, idle ? SCHED_IDLE : SCHED_OTHER, &sp);
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 5);
}

/* Between slices: the lock is free for a moment, and callers waiting for
 * it get it (a mutex is not fair: without this, a scanner that never sleeps
 * would take it back before a woken waiter runs). */
static void let_others_in(struct sp_engine *e)
{
	pthread_mutex_unlock(&e->lock);
	for (int n = 0; n < 1000; n++) {
		sched_yield();
		if (!__atomic_load_n(&e->waiters, __ATOMIC_RELAXED))
			break;
	}
	pthread_mutex_lock(&e->lock);
}

static void publish_scans(struct sp_engine *e)
{
	pthread_mutex_lock(&e->scan_lock);
	e->scans_pub = e->core.cnt.full_scans;
	pthread_cond_broadcast(&e->scanned);
	pthread_mutex_unlock(&e->scan_lock);
}

static void *scanner(void *arg)
{
	struct sp_engine *e = arg;
	uint64_t left = 0; /* pages still to scan in this batch */
	uint32_t idle = e->core.knobs.sched_idle;

	/* named like a kernel thread so that top -H and ps show what it is */
	pthread_setname_np(pthread_self(), "samepage-scan");
	apply_sched(idle);
	pthread_mutex_lock(&e->lock);
	for (;;) {
		struct sp_core *c = &e->core;
		uint64_t scans, cpu0, got, due;

		if (c->knobs.sched_idle != idle)
			apply_sched(idle = c->knobs.sched_idle);

		due = process_events(e);
		if (c->knobs.run != 1 || !c->rmap.nregions) {
			left = 0;
			if (due) /* back when a dropped range retires */
				sleep_ms(e, (uint32_t)(due / 1000000ull) + 1);
			else
				pthread_cond_wait(&e->wake, &e->lock);
			continue;
		}
		if (!left)
			left = c->knobs.pages_to_scan ? c->knobs.pages_to_scan : 1;
		scans = c->cnt.full_scans;
		cpu0 = sp_thread_cpu_ns();
		/* the deadline on the core's own clock, the one it checks */
		got = sp_core_scan(c, left, sp_core_now(c) + (uint64_t)c->knobs.batch_usecs * 1000ull);
		e->scan_cpu_ns += sp_thread_cpu_ns() - cpu0;
		left = got >= left ? 0 : left - got;
		if (c->cnt.full_scans != scans) {
			publish_scans(e);
			left = 0; /* a full scan ends the batch, as in ksmd */
		}
		if (c->recount_wanted) {
			c->recount_wanted = 0;
			recount_unlocked(e);
		}
		if (left && got) {
			/* the slice hit its time bound: let others in, go on */
			let_others_in(e);
			continue;
		}
		left = 0;
		if (c->knobs.sleep_millisecs)
			sleep_ms(e, c->knobs.sleep_millisecs);
		else
			let_others_in(e);
	}
	return NULL;
}

int sp_engine_start_scanner(void)
{
	struct sp_engine *e = &sp_engine;
	pthread_attr_t a;
	int err;

	if (e->thread_running)
		return 0;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&e->thread, &a, scanner, e);
	pthread_attr_destroy(&a);
	if (err)
		return -err;
	e->thread_running = 1;
	return 0;
}

int sp_engine_threads(uint32_t n)
{
	struct sp_engine *e = &sp_engine;
	int err;

	if (e->pool_threads) {
		e->core.parallel = NULL;
		sp_pool_stop(&e->pool);
		e->helpers_cpu_ns += e->pool.cpu_ns;
		e->pool_threads = 0;
	}
	if (n <= 1)
		return 0;
	err = sp_pool_start(&e->pool, (int)n - 1, (int)e->core.knobs.sched_idle);
	if (err)
		return err;
	e->pool_threads = (int)n - 1;
	e->core.parallel = sp_pool_read_hash;
	e->core.parallel_ctx = &e->pool;
	return 0;
}

void sp_engine_kick(void)
{
	pthread_cond_broadcast(&sp_engine.wake);
}

static int add_range(void *ctx, uintptr_t start, size_t len)
{
	struct sp_engine *e = ctx;

	return sp_core_add_range(&e->core, e->space, start, len / SP_PAGE_SIZE);
}

int sp_engine_register(uintptr_t start, size_t len)
{
	struct sp_engine *e = &sp_engine;
	int err = sp_engine_backend();

	if (!err && e->client_mode)
		return sp_client_register(e, start, len);
	if (!err)
		err = sp_local_register(&e->local, start, len, add_range, e);
	if (!err)
		err = sp_engine_start_scanner();
	sp_engine_kick();
	return err;
}

int sp_engine_unregister(uintptr_t start, size_t len)
{
	struct sp_engine *e = &sp_engine;
	int err;

	if (!e->backend_ready)
		return 0; /* nothing was ever registered */
	if (e->client_mode)
		return sp_client_unregister(e, start, len);
	err = sp_core_remove_range(&e->core, e->space, start, len / SP_PAGE_SIZE);
	if (!err)
		sp_local_unregister(&e->local, start, len); /* parts never registered: fine */
	return err;
}

void sp_engine_region_stats(uintptr_t start, size_t len, struct samepage_region_stats *out)
{
	struct sp_engine *e = &sp_engine;

	if (!e->backend_ready) {
		memset(out, 0, sizeof(*out));
		return;
	}
	sp_core_range_stats(&e->core, e->space, start, len / SP_PAGE_SIZE, out);
}

uint64_t sp_engine_scan_cpu_ns(void)
{
	struct sp_engine *e = &sp_engine;

	/* the helpers' CPU counts too, including helpers stopped since */
	return e->scan_cpu_ns + e->helpers_cpu_ns +
	       (e->pool_threads ? __atomic_load_n(&e->pool.cpu_ns, __ATOMIC_RELAXED) : 0);
}
