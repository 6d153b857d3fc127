/* SPDX-License-Identifier: MIT */
/*
 * merge.c - what is mergeable, what the engine has registered, and the
 * kernel's rules for both.
 *
 * Two sets of ranges, guarded by one lock:
 *
 *   adv  what the kernel would mark VM_MERGEABLE: private mappings the
 *        program passed to madvise(MADV_MERGEABLE), and under
 *        PR_SET_MEMORY_MERGE every private mapping. It stays with the
 *        mapping through protection changes and fork, and goes with it
 *        (munmap, MAP_FIXED over it, mremap moves it).
 *   reg  what the engine has registered: the private anonymous, readable
 *        and writable parts of adv, minus what is excluded (the arena,
 *        the writable segments of every loaded object but the program).
 *
 * The engine's contract wants registered memory unregistered before it is
 * unmapped, remapped or made inaccessible; the interposers do that for the
 * program's own calls. glibc's internal calls (malloc's munmap of a large
 * block, brk, its heaps' mprotect) cannot be interposed: a sweeper thread
 * reads /proc/self/maps every SAMEPAGE_SWEEP_MS (1000) and when kicked,
 * unregisters what is no longer anonymous or a store mapping, and under
 * merge-any registers what is new (the heap grown by brk, glibc's mmaps,
 * thread stacks). The engine's remaps refuse, and its restores skip,
 * memory that is neither private anonymous nor a store mapping, so a
 * registration gone stale in between never touches what is there now.
 *
 * A sanitizer's runtime in the process (AddressSanitizer, ...: it has an
 * allocator of its own) maps its shadow memory, its heap and its metadata,
 * and its threads' descriptors with direct system calls: anonymous memory
 * like any other in /proc/self/maps. The engine's threads write some of it
 * (the shadow of every instrumented function's stack frame, their own
 * thread descriptors), so a merge could freeze memory they need; and the
 * heap's redzones and the stacks' are poisoned, so the in-process engine's
 * (instrumented) reads of whole pages there would be reported. In such a
 * process only what the program mapped itself (mmap, mremap: the set own)
 * is ever registered; everything else is excluded, as the arena is, and
 * merge-any does not merge the sanitizer's heap.
 *
 * When the engine cannot serve (no samepaged, no userfaultfd), the program
 * runs unmerged and one line on stderr says so; with SAMEPAGE_REQUIRE=1
 * the calls fail instead (and a process started with merge-any on exits
 * with status 4).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/engine.h"
#include "preload/preload.h"
#include "samepage.h"
#include "util/clock.h"

extern __thread char *pl_keep __attribute__((tls_model("initial-exec")));
extern __thread size_t pl_keep_len __attribute__((tls_model("initial-exec")));

__thread int pl_inside __attribute__((tls_model("initial-exec")));

static pthread_mutex_t L = PTHREAD_MUTEX_INITIALIZER;

/* L held: whatever this thread calls of the interposed functions meanwhile
 * passes straight through, as the library's own calls (a sanitizer's
 * report, raised here, symbolizes in-process and maps memory with the
 * program's mmap, which would wait for L again). */
static void lock_L(void)
{
	pl_inside++;
	pthread_mutex_lock(&L);
}

static void unlock_L(void)
{
	pthread_mutex_unlock(&L);
	pl_inside--;
}
static pthread_cond_t sweep_cv;
static struct pl_set adv, reg, unmerged, refused;
static int sanitized;	  /* a sanitizer's runtime is loaded */
static struct pl_set own; /* (sanitized) private anonymous mappings the program made */
static int merge_any;
static int active;     /* merge_any || adv || reg: read without the lock */
static int failed;     /* the engine cannot serve: said once */
static int failed_err; /* why, as an errno */
static int sweeper_started;
static int kicked;
static unsigned sweep_ms = 1000;
static int require;
static uint64_t fork_store_ino; /* the parent's store, for the child */
static char self_path[4096];	/* this library, for LD_PRELOAD */
static char rt_path[4096];	/* the sanitizer runtime it needs loaded first */
static char daemon_path[108];	/* SAMEPAGE_DAEMON and SAMEPAGE_DOMAIN at start: */
static char domain_label[64];	/* a program may clear its environment */
static uint64_t sweeps;

/* (when the engine cannot serve, nothing is ever registered: every call
 * goes straight to the kernel) */
static void set_active(void)
{
	__atomic_store_n(&active, !failed && (merge_any || adv.n || reg.n), __ATOMIC_RELEASE);
}

int pl_idle(void)
{
	/* (sanitized: every mapping call is seen, for own) */
	return !__atomic_load_n(&sanitized, __ATOMIC_RELAXED) && !__atomic_load_n(&active, __ATOMIC_ACQUIRE);
}

/* ---- a snapshot of the mappings ------------------------------------------ */

struct snap {
	uintptr_t lo, hi;    /* the window looked at */
	uint64_t store_ino;  /* mappings of this inode are store pages */
	uint64_t store_ino2; /* (the parent's, after fork) */
	struct pl_set any;   /* mapped */
	struct pl_set priv;  /* private (the kernel's mergeable kinds) */
	struct pl_set anon;  /* private anonymous, readable or writable */
	struct pl_set elig;  /* private anonymous, readable and writable */
	struct pl_set store; /* store mappings */
	struct pl_set excl;  /* never to be registered */
	int err;
};

static int snap_cb(void *ctx, const struct pl_vma *v)
{
	struct snap *s = ctx;
	uintptr_t lo = v->start > s->lo ? v->start : s->lo, hi = v->end < s->hi ? v->end : s->hi;

	if (v->start >= s->hi)
		return 1;
	if (lo >= hi)
		return 0;
	s->err |= pl_set_add(&s->any, lo, hi);
	if (v->shared)
		return 0;
	s->err |= pl_set_add(&s->priv, lo, hi);
	if (v->ino && (v->ino == s->store_ino || v->ino == s->store_ino2))
		s->err |= pl_set_add(&s->store, lo, hi);
	if (v->ino)
		return 0;
	if (v->prot & (PROT_READ | PROT_WRITE))
		s->err |= pl_set_add(&s->anon, lo, hi);
	if ((v->prot & (PROT_READ | PROT_WRITE)) == (PROT_READ | PROT_WRITE))
		s->err |= pl_set_add(&s->elig, lo, hi);
	return 0;
}

static void excl_cb(void *ctx, uintptr_t lo, uintptr_t hi)
{
	struct snap *s = ctx;

	s->err |= pl_set_add(&s->excl, lo, hi);
}

static void snap_free(struct snap *s)
{
	pl_set_free(&s->any);
	pl_set_free(&s->priv);
	pl_set_free(&s->anon);
	pl_set_free(&s->elig);
	pl_set_free(&s->store);
	pl_set_free(&s->excl);
}

static int snap_take(struct snap *s, uintptr_t lo, uintptr_t hi)
{
	int rc;

	memset(s, 0, sizeof(*s));
	s->lo = lo;
	s->hi = hi;
	s->store_ino = pl_store_ino();
	s->store_ino2 = fork_store_ino;
	rc = pl_maps_each(snap_cb, s);
	pl_excluded_each(excl_cb, s);
	if (sanitized && !rc && !s->err) { /* all but what the program mapped */
		struct pl_set other;

		s->err |= pl_set_minus(&s->priv, &own, &other);
		if (!s->err) {
			for (size_t i = 0; i < other.n; i++)
				s->err |= pl_set_add(&s->excl, other.r[i].lo, other.r[i].hi);
			pl_set_free(&other);
		}
	}
	if (rc < 0 || s->err) {
		snap_free(s);
		return rc < 0 ? rc : -ENOMEM;
	}
	return 0;
}

/* a AND b, into out */
static int intersect(const struct pl_set *a, const struct pl_set *b, struct pl_set *out)
{
	struct pl_set d;
	int err = pl_set_minus(a, b, &d);

	if (err)
		return err;
	err = pl_set_minus(a, &d, out);
	pl_set_free(&d);
	return err;
}

/* ---- the engine ------------------------------------------------------------- */

static const char *prog(void)
{
	return program_invocation_short_name ? program_invocation_short_name : "?";
}

/* The engine could not be set up: once per process (and its children). */
static void engine_failed(const char *why, int err)
{
	if (failed)
		return;
	failed = 1;
	failed_err = err;
	if (!strncmp(why, "samepage: ", 10))
		why += 10;
	pl_say("samepage: %s[%d] %s: %s\n", prog(), (int)getpid(),
	       require ? "cannot be merged (SAMEPAGE_REQUIRE=1)" : "runs unmerged", *why ? why : strerror(err));
}

/* The errno a failed set-up gives the program under SAMEPAGE_REQUIRE=1:
 * no daemon is EAGAIN, no userfaultfd EPERM, none in the kernel EINVAL (as
 * madvise without CONFIG_KSM). */
static int require_errno(void)
{
	switch (failed_err) {
	case EPERM:
	case EACCES:
		return EPERM;
	case ENOSYS:
		return EINVAL;
	default:
		return EAGAIN;
	}
}

/* Before the engine's first use (in this process, or a fork child): the
 * daemon's socket as the environment said at start. */
static void engine_prime(void)
{
	struct sp_engine *e = &sp_engine;

	if (e->core_ready || !daemon_path[0] || e->client.path[0])
		return;
	snprintf(e->client.path, sizeof(e->client.path), "%s", daemon_path);
	snprintf(e->client.label, sizeof(e->client.label), "%s", domain_label);
}

/* Registers [lo, hi): private anonymous, not excluded, not registered. */
static int eng_register(uintptr_t lo, uintptr_t hi)
{
	char why[512] = "";
	int rc, err;

	if (failed)
		return require ? -require_errno() : 0;
	engine_prime();
	pl_keep = why;
	pl_keep_len = sizeof(why);
	rc = samepage_madvise((void *)lo, hi - lo, SAMEPAGE_MERGEABLE);
	err = rc ? errno : 0;
	pl_keep = NULL;
	pl_keep_len = 0;
	if (!err)
		return pl_set_add(&reg, lo, hi);
	if (!sp_engine.backend_ready && sp_engine.backend_err) {
		engine_failed(why, -sp_engine.backend_err);
		return require ? -require_errno() : 0;
	}
	return -err;
}

/* The engine set up (samepaged connected, or the in-process backend)
 * without registering anything: merge-any turned on with nothing eligible
 * yet (in a sanitized process, before the program maps its own memory)
 * still finds out now whether the engine can serve, as the kernel's
 * prctl would (the line on stderr, SAMEPAGE_REQUIRE=1's status). */
static void engine_up(void)
{
	char why[512] = "";

	if (failed || sp_engine.backend_ready)
		return;
	engine_prime();
	pl_keep = why;
	pl_keep_len = sizeof(why);
	sp_engine_lock();
	if (!sp_engine_core())
		sp_engine_backend();
	sp_engine_unlock();
	pl_keep = NULL;
	pl_keep_len = 0;
	if (!sp_engine.backend_ready && sp_engine.backend_err)
		engine_failed(why, -sp_engine.backend_err);
}

/* Unregisters [lo, hi), which may have been unmapped meanwhile (by glibc,
 * unseen): the engine's own call, not samepage_madvise, which refuses a
 * range with a hole (ENOMEM) before doing anything; the engine restores
 * what is still its memory there and forgets the rest. */
static int eng_unregister(uintptr_t lo, uintptr_t hi)
{
	int err;

	engine_prime();
	sp_engine_lock();
	err = sp_engine_core();
	if (!err)
		err = sp_engine_unregister(lo, hi - lo);
	sp_engine_unlock();
	if (!err || err == -ENOMEM || err == -EINVAL)
		return pl_set_del(&reg, lo, hi);
	return err;
}

static int said_busy;

/* the private anonymous, readable and writable mappings in [lo, hi), each
 * apart (a snapshot's sets join neighbours) */
struct one_by_one {
	uintptr_t lo, hi;
	struct pl_range *v;
	size_t n, cap;
};

static int vmas_cb(void *ctx, const struct pl_vma *v)
{
	struct one_by_one *x = ctx;
	uintptr_t lo = v->start > x->lo ? v->start : x->lo, hi = v->end < x->hi ? v->end : x->hi;

	if (v->start >= x->hi)
		return 1;
	if (lo >= hi || v->shared || v->ino || (v->prot & (PROT_READ | PROT_WRITE)) != (PROT_READ | PROT_WRITE))
		return 0;
	if (pl_reserve((void **)&x->v, &x->cap, x->n + 1, sizeof(*x->v)))
		return 1;
	x->v[x->n++] = (struct pl_range){lo, hi};
	return 0;
}

/* Registers each piece of todo; a piece the kernel refuses because another
 * userfaultfd has part of it (EBUSY) is tried mapping by mapping, and what
 * stays refused is remembered. Returns the first error. */
static int register_set(const struct pl_set *todo)
{
	int first = 0;

	for (size_t i = 0; i < todo->n && !(failed && !require); i++) {
		uintptr_t lo = todo->r[i].lo, hi = todo->r[i].hi;
		int err = eng_register(lo, hi);

		if (err == -EBUSY) {
			/* the engine stopped at the busy mapping: the piece again,
			 * one mapping at a time (those it registered before the
			 * busy one are left as they are by registering again) */
			struct one_by_one x = {lo, hi, NULL, 0, 0};

			pl_maps_each(vmas_cb, &x);
			for (size_t k = 0; k < x.n; k++) {
				int e2 = eng_register(x.v[k].lo, x.v[k].hi);

				if (e2 == -EBUSY) {
					pl_set_add(&refused, x.v[k].lo, x.v[k].hi);
					if (!said_busy++)
						pl_say("samepage: %s[%d]: %#lx-%#lx is registered with another "
						       "userfaultfd (the program's own): not merged\n",
						       prog(), (int)getpid(), (unsigned long)x.v[k].lo,
						       (unsigned long)x.v[k].hi);
				}
				if (e2 && !first)
					first = e2;
			}
			pl_free(x.v);
			continue;
		}
		if (err && !first)
			first = err;
	}
	return first;
}

/* What of [lo, hi) should be registered now: (adv, or all under merge-any
 * minus what the program unmerged) that is eligible, minus the excluded,
 * the registered and the refused. */
static int todo_of(const struct snap *s, int all, struct pl_set *todo)
{
	struct pl_set a, b;
	int err;

	if (all)
		err = pl_set_minus(&s->elig, &unmerged, &a);
	else
		err = intersect(&s->elig, &adv, &a);
	if (err)
		return err;
	err = pl_set_minus(&a, &s->excl, &b);
	pl_set_free(&a);
	if (err)
		return err;
	err = pl_set_minus(&b, &reg, &a);
	pl_set_free(&b);
	if (err)
		return err;
	err = pl_set_minus(&a, &refused, todo);
	pl_set_free(&a);
	return err;
}

/* Unregisters every registered part of [lo, hi). */
static int unregister_range(uintptr_t lo, uintptr_t hi)
{
	struct pl_set part;
	int first = 0;

	if (!pl_set_overlaps(&reg, lo, hi))
		return 0;
	if (pl_set_clip(&reg, lo, hi, &part))
		return -ENOMEM;
	for (size_t i = 0; i < part.n; i++) {
		int err = eng_unregister(part.r[i].lo, part.r[i].hi);

		if (err && !first)
			first = err;
	}
	pl_set_free(&part);
	return first;
}

/* ---- the sweeper --------------------------------------------------------------- */

/* Lock held. Drops what went stale, registers what is new. */
static void sweep_locked(void)
{
	struct pl_set alive, stale, todo, keep;
	struct snap s;

	if (snap_take(&s, 0, UINTPTR_MAX))
		return;
	sweeps++;
	/* registered memory that is no longer anonymous (or a store mapping)
	 * and accessible: unmapped, something else mapped there, or made
	 * PROT_NONE, behind our back (glibc's own calls) */
	if (!pl_set_copy(&s.anon, &alive)) {
		for (size_t i = 0; i < s.store.n; i++)
			pl_set_add(&alive, s.store.r[i].lo, s.store.r[i].hi);
		if (!pl_set_minus(&reg, &alive, &stale)) {
			for (size_t i = 0; i < stale.n; i++)
				if (eng_unregister(stale.r[i].lo, stale.r[i].hi))
					pl_set_del(&reg, stale.r[i].lo, stale.r[i].hi); /* forgotten anyway */
			pl_set_free(&stale);
		}
		pl_set_free(&alive);
	}
	/* advice goes with the mapping */
	if (!intersect(&own, &s.priv, &keep)) {
		pl_set_free(&own);
		own = keep;
	}
	if (!intersect(&adv, &s.priv, &keep)) {
		pl_set_free(&adv);
		adv = keep;
	}
	if (!intersect(&unmerged, &s.priv, &keep)) {
		pl_set_free(&unmerged);
		unmerged = keep;
	}
	if (!intersect(&refused, &s.elig, &keep)) {
		pl_set_free(&refused);
		refused = keep;
	}
	if (merge_any) {
		struct pl_set a, b;

		if (!pl_set_minus(&s.priv, &unmerged, &a)) {
			if (!pl_set_minus(&a, &s.excl, &b)) {
				for (size_t i = 0; i < b.n; i++)
					pl_set_add(&adv, b.r[i].lo, b.r[i].hi);
				pl_set_free(&b);
			}
			pl_set_free(&a);
		}
	}
	if (!todo_of(&s, merge_any, &todo)) {
		register_set(&todo);
		pl_set_free(&todo);
	}
	snap_free(&s);
	set_active();
}

static void *sweeper(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "samepage-sweep");
	lock_L();
	for (;;) {
		struct timespec ts;
		uint64_t t = sp_mono_ns() + (uint64_t)sweep_ms * 1000000ull;

		ts.tv_sec = (time_t)(t / 1000000000ull);
		ts.tv_nsec = (long)(t % 1000000000ull);
		while (!kicked && pthread_cond_timedwait(&sweep_cv, &L, &ts) != ETIMEDOUT)
			;
		kicked = 0;
		if (active && !failed)
			sweep_locked();
	}
	return NULL;
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

/* Lock held. */
static void start_sweeper(void)
{
	pthread_attr_t a;
	pthread_t t;

	if (sweeper_started || failed || !active)
		return;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (!__wrap_pthread_create(&t, &a, sweeper, NULL))
		sweeper_started = 1;
	pthread_attr_destroy(&a);
}

static void kick(void)
{
	kicked = 1;
	pthread_cond_signal(&sweep_cv);
}

/* ---- what the interposers call --------------------------------------------- */

int pl_madv_mergeable(uintptr_t lo, uintptr_t hi)
{
	struct pl_set todo, mark;
	struct snap s;
	int err, hole;

	lock_L();
	err = snap_take(&s, lo, hi);
	if (err)
		goto out;
	hole = !pl_set_covers(&s.any, lo, hi);
	/* the kernel marks every compatible mapping (private ones); the engine
	 * can merge the anonymous, writable ones */
	if (!pl_set_minus(&s.priv, &s.excl, &mark)) {
		for (size_t i = 0; i < mark.n; i++)
			pl_set_add(&adv, mark.r[i].lo, mark.r[i].hi);
		pl_set_free(&mark);
	}
	pl_set_del(&unmerged, lo, hi);
	err = todo_of(&s, 0, &todo);
	if (!err) {
		err = register_set(&todo);
		pl_set_free(&todo);
	}
	if (!err && hole)
		err = -ENOMEM;
	snap_free(&s);
out:
	set_active();
	start_sweeper();
	unlock_L();
	return err;
}

int pl_madv_unmergeable(uintptr_t lo, uintptr_t hi)
{
	struct snap s;
	int err, hole;

	lock_L();
	err = snap_take(&s, lo, hi);
	if (err)
		goto out;
	hole = !pl_set_covers(&s.any, lo, hi);
	err = unregister_range(lo, hi);
	pl_set_del(&adv, lo, hi);
	if (merge_any) /* not marked again by merge-any: the kernel's rule */
		for (size_t i = 0; i < s.priv.n; i++)
			pl_set_add(&unmerged, s.priv.r[i].lo, s.priv.r[i].hi);
	if (!err && hole)
		err = -ENOMEM;
	snap_free(&s);
out:
	set_active();
	unlock_L();
	return err;
}

/* A mapping of [lo, hi) is gone or replaced: it takes its advice along. */
static void forget(uintptr_t lo, uintptr_t hi)
{
	pl_set_del(&own, lo, hi);
	pl_set_del(&adv, lo, hi);
	pl_set_del(&reg, lo, hi);
	pl_set_del(&unmerged, lo, hi);
	pl_set_del(&refused, lo, hi);
}

/* A new private mapping at [lo, hi) under merge-any: marked, and
 * registered if the engine can take it. Lock held. */
static void mapped(uintptr_t lo, uintptr_t hi)
{
	struct pl_set todo;
	struct snap s;

	if (!merge_any || failed)
		return;
	if (snap_take(&s, lo, hi))
		return;
	if (!pl_set_minus(&s.priv, &s.excl, &todo)) {
		for (size_t i = 0; i < todo.n; i++)
			pl_set_add(&adv, todo.r[i].lo, todo.r[i].hi);
		pl_set_free(&todo);
	}
	if (!todo_of(&s, 1, &todo)) {
		register_set(&todo);
		pl_set_free(&todo);
	}
	snap_free(&s);
}

int pl_madv_free(void *addr, size_t len, int advice)
{
	uintptr_t lo = (uintptr_t)addr, hi = lo + ((len + PL_PAGE - 1) & ~(PL_PAGE - 1));
	struct pl_set part;
	int rc = 0;

	lock_L();
	if ((lo & (PL_PAGE - 1)) || hi < lo || !pl_set_overlaps(&reg, lo, hi) || pl_set_clip(&reg, lo, hi, &part)) {
		unlock_L();
		return pl_sys_madvise(addr, len, advice);
	}
	/* MADV_FREE on a merged page is EINVAL (a file mapping): on registered
	 * memory it is MADV_DONTNEED, which the engine answers with zeros */
	for (size_t i = 0; i <= part.n && !rc; i++) {
		uintptr_t a = i ? part.r[i - 1].hi : lo, b = i < part.n ? part.r[i].lo : hi;

		if (a < b)
			rc = pl_sys_madvise((void *)a, b - a, advice);
		if (!rc && i < part.n)
			rc = pl_sys_madvise((void *)part.r[i].lo, part.r[i].hi - part.r[i].lo, MADV_DONTNEED);
	}
	pl_set_free(&part);
	unlock_L();
	return rc;
}

int pl_munmap(void *addr, size_t len)
{
	uintptr_t lo = (uintptr_t)addr, hi = lo + ((len + PL_PAGE - 1) & ~(PL_PAGE - 1));
	int rc;

	if ((lo & (PL_PAGE - 1)) || !len || hi < lo)
		return pl_sys_munmap(addr, len); /* EINVAL, as the kernel says */
	lock_L();
	unregister_range(lo, hi);
	rc = pl_sys_munmap(addr, len);
	if (!rc)
		forget(lo, hi);
	set_active();
	unlock_L();
	return rc;
}

void *pl_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	uintptr_t lo = (uintptr_t)addr, hi = lo + ((len + PL_PAGE - 1) & ~(PL_PAGE - 1));
	int fixed = (flags & MAP_FIXED) && !(flags & MAP_FIXED_NOREPLACE);
	void *p;

	if (!fixed && !__atomic_load_n(&merge_any, __ATOMIC_RELAXED) && !sanitized)
		return pl_sys_mmap(addr, len, prot, flags, fd, off); /* replaces nothing, marks nothing */
	lock_L();
	if (fixed && !(lo & (PL_PAGE - 1)) && hi > lo)
		unregister_range(lo, hi);
	p = pl_sys_mmap(addr, len, prot, flags, fd, off);
	if (p != MAP_FAILED) {
		lo = (uintptr_t)p;
		hi = lo + ((len + PL_PAGE - 1) & ~(PL_PAGE - 1));
		if (fixed)
			forget(lo, hi);
		if (sanitized && (flags & MAP_ANONYMOUS) && (flags & MAP_TYPE) == MAP_PRIVATE)
			pl_set_add(&own, lo, hi);
		if ((flags & MAP_TYPE) == MAP_PRIVATE) {
			int saved = errno;

			mapped(lo, hi);
			errno = saved;
		}
	}
	set_active();
	unlock_L();
	return p;
}

void *pl_mremap(void *old, size_t oldlen, size_t newlen, int flags, void *new_addr)
{
	uintptr_t o = (uintptr_t)old, olen = (oldlen + PL_PAGE - 1) & ~(PL_PAGE - 1);
	uintptr_t nlen = (newlen + PL_PAGE - 1) & ~(PL_PAGE - 1);
	struct pl_set was;
	int saved, was_own;
	void *p;

	lock_L();
	if (o & (PL_PAGE - 1) || !olen || o + olen < o || pl_set_clip(&adv, o, o + olen, &was)) {
		unlock_L();
		return pl_sys_mremap(old, oldlen, newlen, flags, new_addr);
	}
	was_own = pl_set_overlaps(&own, o, o + olen);
	unregister_range(o, o + olen);
	if ((flags & MREMAP_FIXED) && !((uintptr_t)new_addr & (PL_PAGE - 1)))
		unregister_range((uintptr_t)new_addr, (uintptr_t)new_addr + nlen);
	p = pl_sys_mremap(old, oldlen, newlen, flags, new_addr);
	saved = errno;
	if (p != MAP_FAILED) {
		uintptr_t n = (uintptr_t)p;

		if (!(flags & MREMAP_DONTUNMAP))
			forget(o, o + olen);
		else
			pl_set_del(&reg, o, o + olen); /* emptied, still mergeable */
		if (flags & MREMAP_FIXED)
			forget(n, n + nlen);
		if (was_own) /* the program's mapping, moved or grown */
			pl_set_add(&own, n, n + nlen);
		/* the advice moves with the mapping; growing extends it */
		for (size_t i = 0; i < was.n; i++) {
			uintptr_t a = n + (was.r[i].lo - o), b = n + (was.r[i].hi - o);

			if (was.r[i].hi == o + olen)
				b = n + nlen;
			if (a < n + nlen)
				pl_set_add(&adv, a, b < n + nlen ? b : n + nlen);
		}
		if (was.n || merge_any) {
			struct pl_set todo;
			struct snap s;

			if (!snap_take(&s, n, n + nlen)) {
				if (!todo_of(&s, merge_any, &todo)) {
					register_set(&todo);
					pl_set_free(&todo);
				}
				snap_free(&s);
			}
		}
	} else if (was.n) {
		kick(); /* unregistered for nothing: registered again by the sweeper */
	}
	pl_set_free(&was);
	set_active();
	unlock_L();
	errno = saved;
	return p;
}

int pl_mprotect(void *addr, size_t len, int prot)
{
	uintptr_t lo = (uintptr_t)addr, hi = lo + ((len + PL_PAGE - 1) & ~(PL_PAGE - 1));
	int rc, saved;

	if ((lo & (PL_PAGE - 1)) || hi < lo)
		return pl_sys_mprotect(addr, len, prot);
	lock_L();
	if (!(prot & (PROT_READ | PROT_WRITE)))
		unregister_range(lo, hi); /* the contract: inaccessible memory is not registered */
	if (pl_set_overlaps(&reg, lo, hi)) {
		/* A merge reads the protection and maps the store page with it,
		 * under the events lock: a change in between would be undone
		 * (a page made read-only writable again). Not so under it. */
		pthread_mutex_lock(&sp_engine.local.ev.lock);
		rc = pl_sys_mprotect(addr, len, prot);
		saved = errno;
		pthread_mutex_unlock(&sp_engine.local.ev.lock);
	} else {
		rc = pl_sys_mprotect(addr, len, prot);
		saved = errno;
	}
	if (!rc && (prot & (PROT_READ | PROT_WRITE)) == (PROT_READ | PROT_WRITE) &&
	    (pl_set_overlaps(&adv, lo, hi) || merge_any)) {
		struct pl_set todo;
		struct snap s;

		if (!snap_take(&s, lo, hi)) {
			if (!todo_of(&s, merge_any, &todo)) {
				register_set(&todo);
				pl_set_free(&todo);
			}
			snap_free(&s);
		}
	}
	set_active();
	unlock_L();
	errno = saved;
	return rc;
}

int pl_registered(uintptr_t lo, uintptr_t hi)
{
	int r;

	lock_L();
	r = pl_set_overlaps(&reg, lo, hi);
	unlock_L();
	return r;
}

int pl_merge_any_get(void)
{
	return __atomic_load_n(&merge_any, __ATOMIC_RELAXED);
}

int pl_merge_any_set(int on)
{
	int err = 0;

	lock_L();
	if (on && !merge_any) {
		merge_any = 1;
		pl_inside++; /* setenv may allocate (and map) through the program's malloc */
		setenv("SAMEPAGE_MERGE_ANY", "1", 1);
		pl_inside--;
		set_active();
		sweep_locked();
		engine_up();
		if (failed && require)
			err = -require_errno();
		start_sweeper();
	} else if (!on && merge_any) {
		/* the kernel unmerges everything, madvised or not */
		struct pl_set all;

		if (!pl_set_copy(&reg, &all)) {
			for (size_t i = 0; i < all.n; i++)
				eng_unregister(all.r[i].lo, all.r[i].hi);
			pl_set_free(&all);
		}
		pl_set_clear(&adv);
		pl_set_clear(&unmerged);
		merge_any = 0;
		pl_inside++;
		unsetenv("SAMEPAGE_MERGE_ANY");
		pl_inside--;
	}
	set_active();
	unlock_L();
	return err;
}

/* ---- exec: merge-any survives it (Linux 6.7+), so its state goes along --- */

static int has_var(char *const envp[], const char *name, const char *value)
{
	size_t n = strlen(name);

	for (size_t i = 0; envp && envp[i]; i++)
		if (!strncmp(envp[i], name, n) && envp[i][n] == '=')
			return !value || strstr(envp[i] + n + 1, value) != NULL;
	return 0;
}

char **pl_env_for_exec(char *const envp[])
{
	static const char *carry[] = {"SAMEPAGE_DAEMON", "SAMEPAGE_DOMAIN", "SAMEPAGE_REQUIRE", "SAMEPAGE_SWEEP_MS"};
	size_t n = 0, k = 0;
	char **env;

	if (!pl_merge_any_get() ||
	    (has_var(envp, "SAMEPAGE_MERGE_ANY", "1") && has_var(envp, "LD_PRELOAD", self_path) &&
	     (!rt_path[0] || has_var(envp, "LD_PRELOAD", rt_path))))
		return (char **)envp;
	while (envp && envp[n])
		n++;
	env = pl_calloc(n + 8, sizeof(*env));
	if (!env)
		return (char **)envp;
	for (size_t i = 0; i < n; i++)
		if (strncmp(envp[i], "SAMEPAGE_MERGE_ANY=", 19) && strncmp(envp[i], "LD_PRELOAD=", 11))
			env[k++] = envp[i];
	env[k++] = "SAMEPAGE_MERGE_ANY=1";
	if (self_path[0]) {
		const char *old = NULL;
		size_t len;
		char *v;

		for (size_t i = 0; i < n; i++)
			if (!strncmp(envp[i], "LD_PRELOAD=", 11))
				old = envp[i] + 11;
		len = 12 + strlen(self_path) + (old ? strlen(old) + 1 : 0) + strlen(rt_path) + 1;
		v = pl_malloc(len);
		if (v) {
			/* what is missing in front (a sanitizer build's library:
			 * its runtime first), the program's own list after it,
			 * whole */
			int has_self = old && strstr(old, self_path),
			    has_rt = !rt_path[0] || (old && strstr(old, rt_path));

			snprintf(v, len, "LD_PRELOAD=%s%s%s%s%s", has_rt ? "" : rt_path, has_rt ? "" : " ",
				 has_self ? "" : self_path, old && !has_self ? " " : "", old ? old : "");
			env[k++] = v;
		}
	}
	for (size_t i = 0; i < sizeof(carry) / sizeof(carry[0]); i++) {
		const char *v = getenv(carry[i]);
		size_t len;
		char *e;

		if (!v || has_var(envp, carry[i], NULL))
			continue;
		len = strlen(carry[i]) + strlen(v) + 2;
		e = pl_malloc(len);
		if (e) {
			snprintf(e, len, "%s=%s", carry[i], v);
			env[k++] = e;
		}
	}
	env[k] = NULL;
	return env;
}

void pl_env_free(char **env, char *const envp[])
{
	size_t n = 0;

	if (env == (char **)envp)
		return;
	while (envp && envp[n])
		n++;
	/* the strings made here are the ones not in envp */
	for (size_t i = 0; env[i]; i++) {
		int theirs = 0;

		for (size_t j = 0; j < n && !theirs; j++)
			theirs = env[i] == envp[j];
		if (!theirs && strcmp(env[i], "SAMEPAGE_MERGE_ANY=1"))
			pl_free(env[i]);
	}
	pl_free(env);
}

/* ---- fork: the kernel keeps VM_MERGEABLE and merge-any in the child ----- */

static void fork_prepare_first(void)
{
	lock_L();
	fork_store_ino = pl_store_ino();
}

static void fork_parent_last(void)
{
	unlock_L();
}

static void fork_prepare_last(void)
{
	pl_arena_lock_all();
}

static void fork_parent_first(void)
{
	pl_arena_unlock_all();
}

static void fork_child_first(void)
{
	pl_fds_fork_child();
	pl_arena_reinit_locks();
}

/* The parent's merged pages are store mappings in the child too. Client
 * mode: the child's userfaultfd watches them (minor mode, as the engine's
 * own), so that MADV_DONTNEED there reads zeros as everywhere else, and
 * they stay shared. In-process (the child's engine has a store of its own)
 * or without a daemon: they become plain memory again, copied, which
 * needs no freezing: the child has no other thread yet. */
struct inherited {
	uint64_t ino;
	struct inh_vma {
		uintptr_t lo, hi;
		int prot;
	} * v;
	size_t n, cap;
};

static int inherited_cb(void *ctx, const struct pl_vma *v)
{
	struct inherited *x = ctx;

	if (v->shared || !v->ino || v->ino != x->ino)
		return 0;
	if (pl_reserve((void **)&x->v, &x->cap, x->n + 1, sizeof(*x->v)))
		return 1;
	x->v[x->n].lo = v->start;
	x->v[x->n].hi = v->end;
	x->v[x->n].prot = v->prot;
	x->n++;
	return 0;
}

static void copy_back(uintptr_t lo, uintptr_t hi, int prot)
{
	size_t len = hi - lo;
	void *scratch;

	if (!(prot & PROT_READ))
		return; /* (unregistered before it became unreadable) */
	scratch = pl_sys_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (scratch == MAP_FAILED)
		return;
	memcpy(scratch, (void *)lo, len);
	if ((prot != (PROT_READ | PROT_WRITE) && pl_sys_mprotect(scratch, len, prot)) ||
	    pl_sys_mremap(scratch, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)lo) == MAP_FAILED)
		pl_sys_munmap(scratch, len);
}

static void inherited_store_pages(void)
{
	struct sp_engine *e = &sp_engine;
	struct inherited x = {.ino = fork_store_ino};
	int err = -1;

	if (!fork_store_ino)
		return;
	pl_maps_each(inherited_cb, &x);
	if (x.n && daemon_path[0]) {
		engine_prime();
		sp_engine_lock();
		err = sp_engine_core();
		if (!err)
			err = sp_engine_backend();
		for (size_t i = 0; !err && i < x.n; i++)
			sp_uffd_register_store(&e->local.uffd, x.v[i].lo, x.v[i].hi - x.v[i].lo);
		sp_engine_unlock();
	}
	for (size_t i = 0; err && i < x.n; i++)
		copy_back(x.v[i].lo, x.v[i].hi, x.v[i].prot);
	pl_free(x.v);
}

static void fork_child_last(void)
{
	pthread_mutex_init(&L, NULL); /* (held by fork_prepare_first) */
	pl_inside--;
	{
		pthread_condattr_t a;

		pthread_condattr_init(&a);
		pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
		pthread_cond_init(&sweep_cv, &a);
		pthread_condattr_destroy(&a);
	}
	sweeper_started = 0;
	kicked = 0;
	pl_set_clear(&reg);
	if (failed || !active) {
		set_active();
		return;
	}
	/* the engine of the child is new: connect, watch what is inherited,
	 * register what is mergeable again (before fork() returns here) */
	lock_L();
	{
		char why[512] = "";

		pl_keep = why;
		pl_keep_len = sizeof(why);
		inherited_store_pages();
		pl_keep = NULL;
		pl_keep_len = 0;
		if (!sp_engine.backend_ready && sp_engine.backend_err)
			engine_failed(why, -sp_engine.backend_err);
	}
	fork_store_ino = 0;
	sweep_locked();
	start_sweeper();
	unlock_L();
}

/* ---- set-up ---------------------------------------------------------------------- */

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_once(void)
{
	const char *v = getenv("SAMEPAGE_SWEEP_MS");
	pthread_condattr_t ca;
	Dl_info info;
	void *sym;

	pl_arena_init();
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sweep_cv, &ca);
	pthread_condattr_destroy(&ca);
	if (v && atoi(v) > 0)
		sweep_ms = (unsigned)atoi(v);
	v = getenv("SAMEPAGE_REQUIRE");
	require = v && !strcmp(v, "1");
	v = getenv("SAMEPAGE_DAEMON");
	if (v && *v && strlen(v) < sizeof(daemon_path))
		snprintf(daemon_path, sizeof(daemon_path), "%s", v);
	v = getenv("SAMEPAGE_DOMAIN");
	if (v && strlen(v) < sizeof(domain_label))
		snprintf(domain_label, sizeof(domain_label), "%s", v);
	if (dladdr((void *)pl_init, &info) && info.dli_fname && info.dli_fname[0] == '/')
		snprintf(self_path, sizeof(self_path), "%s", info.dli_fname);
	/* A sanitizer's runtime (its allocator's API): its memory is not the
	 * program's (see the top). This library built with AddressSanitizer
	 * needs the runtime loaded before it: an exec under merge-any that
	 * puts the library in LD_PRELOAD puts the runtime before it. */
	pl_inside++;
	sym = dlsym(RTLD_DEFAULT, "__sanitizer_get_allocated_size");
#ifdef __SANITIZE_ADDRESS__
	if (sym && dladdr(sym, &info) && info.dli_fname && info.dli_fname[0] == '/')
		snprintf(rt_path, sizeof(rt_path), "%s", info.dli_fname);
#endif
	pl_inside--;
	__atomic_store_n(&sanitized, sym != NULL, __ATOMIC_RELAXED);
	/* Order of the fork handlers (prepare: last registered first; parent
	 * and child: first registered first): our lock, then the engine's,
	 * then the arena's in prepare, so that the engine's handlers may
	 * allocate; the child's engine is reset before we register again. */
	pthread_atfork(fork_prepare_last, fork_parent_first, fork_child_first);
	sp_engine_init();
	pthread_atfork(fork_prepare_first, fork_parent_last, fork_child_last);
}

void pl_init(void)
{
	pthread_once(&once, init_once);
}

/* `samepage run --engine` waits for this line on SAMEPAGE_RUN_FD: the
 * library is loaded, and whether the engine serves. */
static void report_run(void)
{
	const char *v = getenv("SAMEPAGE_RUN_FD");
	char line[600];
	int fd, n;

	if (!v)
		return;
	fd = atoi(v);
	unsetenv("SAMEPAGE_RUN_FD"); /* for this process only */
	if (fd < 3)
		return;
	if (failed)
		n = snprintf(line, sizeof(line), "fail %d\n", failed_err);
	else
		n = snprintf(line, sizeof(line), "ok %s %s %llu\n", sp_engine.client_mode ? "daemon" : "local",
			     sp_engine.client_mode && sp_engine.client.domain[0] ? sp_engine.client.domain : "-",
			     (unsigned long long)pl_set_bytes(&reg));
	if (n > 0 && write(fd, line, (size_t)n) < 0) {
	}
	pl_sys_close(fd);
}

__attribute__((constructor)) static void preload_start(void)
{
	const char *v = getenv("SAMEPAGE_MERGE_ANY");

	pl_init();
	if (v && !strcmp(v, "1")) {
		/* inherited through exec, as the kernel's MMF_VM_MERGE_ANY */
		pl_merge_any_set(1);
		if (failed && require) {
			report_run();
			_exit(4);
		}
	}
	report_run();
}
