/* SPDX-License-Identifier: MIT */
/*
 * api.c - the public functions of samepage.h: argument checking with the
 * kernel's errno, the sysfs-like text interface, and the lock around the
 * engine.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "lib/engine.h"
#include "samepage.h"

#define PAGE 4096ul

static int fail(int err)
{
	errno = err < 0 ? -err : err;
	return -1;
}

static int add_cb(void *ctx, uintptr_t start, size_t len)
{
	return sp_core_add_range(ctx, start, len / PAGE);
}

SAMEPAGE_API int samepage_madvise(void *addr, size_t len, int advice)
{
	struct sp_engine *e = &sp_engine;
	uintptr_t start = (uintptr_t)addr, end;
	size_t alen;
	int err;

	if (advice != SAMEPAGE_MERGEABLE && advice != SAMEPAGE_UNMERGEABLE)
		return fail(EINVAL);
	if (start & (PAGE - 1))
		return fail(EINVAL);
	alen = (len + PAGE - 1) & ~(PAGE - 1);
	if (len && !alen)
		return fail(EINVAL); /* rounding overflowed */
	end = start + alen;
	if (end < start)
		return fail(EINVAL);
	if (end == start)
		return 0;
	/* madvise's ENOMEM for an unmapped range, without side effects */
	if (msync(addr, alen, MS_ASYNC))
		return fail(errno);

	sp_engine_lock();
	err = sp_engine_core();
	if (err)
		goto out;
	if (advice == SAMEPAGE_MERGEABLE) {
		err = sp_engine_backend();
		if (!err)
			err = sp_local_register(&e->local, start, alen, add_cb, &e->core);
		if (!err)
			err = sp_engine_start_scanner();
		sp_engine_kick();
	} else if (e->backend_ready) {
		err = sp_core_remove_range(&e->core, start, alen / PAGE);
		if (!err)
			sp_local_unregister(&e->local, start, alen); /* parts never registered: fine */
	}
out:
	sp_engine_unlock();
	return err ? fail(err) : 0;
}

SAMEPAGE_API int samepage_munmap(void *addr, size_t len)
{
	if (samepage_madvise(addr, len, SAMEPAGE_UNMERGEABLE) && errno != ENOMEM)
		return -1;
	return munmap(addr, len);
}

/* The counters, by name. */
static int counter_value(const struct samepage_stats *s, const char *name, char *buf, size_t len)
{
	static const struct {
		const char *name;
		size_t off;
	} counters[] = {
#define C(n) {#n, offsetof(struct samepage_stats, n)}
		C(pages_shared),  C(pages_sharing), C(pages_unshared), C(pages_volatile),     C(pages_scanned),
		C(pages_skipped), C(full_scans),    C(ksm_zero_pages), C(stable_node_chains), C(stable_node_dups),
#undef C
	};
	int n;

	if (!strcmp(name, "general_profit"))
		n = snprintf(buf, len, "%" PRId64, s->general_profit);
	else {
		size_t i;

		for (i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
			if (!strcmp(counters[i].name, name))
				break;
		if (i == sizeof(counters) / sizeof(counters[0]))
			return -ENOENT;
		n = snprintf(buf, len, "%" PRIu64, *(const uint64_t *)((const char *)s + counters[i].off));
	}
	return n < 0 || (size_t)n >= len ? -ERANGE : 0;
}

static void fill_stats(struct samepage_stats *out)
{
	struct sp_engine *e = &sp_engine;

	sp_core_stats(&e->core, out);
	/* the helpers' CPU counts too, including helpers stopped since */
	out->scan_cpu_ns = e->scan_cpu_ns + e->helpers_cpu_ns +
			   (e->pool_threads ? __atomic_load_n(&e->pool.cpu_ns, __ATOMIC_RELAXED) : 0);
}

SAMEPAGE_API int samepage_get(const char *name, char *buf, size_t len)
{
	struct sp_engine *e = &sp_engine;
	const struct sp_knob *k;
	struct samepage_stats s;
	int err = 0, n;

	if (!name || !buf)
		return fail(EINVAL);
	sp_engine_lock();
	err = sp_engine_core();
	if (err)
		goto out;
	k = sp_knob_find(name);
	if (k) {
		n = sp_knob_format(k, *sp_knob_ptr(&e->core.knobs, k), buf, len);
		err = n < 0 || (size_t)n >= len ? -ERANGE : 0;
	} else {
		fill_stats(&s);
		err = counter_value(&s, name, buf, len);
	}
out:
	sp_engine_unlock();
	return err ? fail(err) : 0;
}

static int set_locked(struct sp_engine *e, const struct sp_knob *k, uint32_t v)
{
	struct sp_core *c = &e->core;
	uint32_t *p = sp_knob_ptr(&c->knobs, k);
	int err;

	if (!strcmp(k->name, "pages_to_scan") && c->knobs.advisor_mode != SP_ADVISOR_NONE)
		return -EINVAL; /* as the kernel: the advisor owns it */
	if (!strcmp(k->name, "advisor_mode")) {
		/* as the kernel: switching (even to the same mode) resets */
		*p = v;
		sp_core_advisor_reset(c);
		return 0;
	}
	if (*p == v)
		return 0;
	if (!strcmp(k->name, "scan_threads")) {
		err = sp_engine_threads(v);
		if (!err)
			*p = v;
		return err;
	}
	if (!strcmp(k->name, "sched_idle")) {
		*p = v; /* the scanner applies it; helpers are restarted with it */
		return c->knobs.scan_threads > 1 ? sp_engine_threads(c->knobs.scan_threads) : 0;
	}
	if ((!strcmp(k->name, "max_page_sharing") || !strcmp(k->name, "merge_across_nodes")) && c->stable.pages)
		return -EBUSY; /* as the kernel: only with no shared pages */
	if (!strcmp(k->name, "run") && v == 2) {
		*p = 2;
		err = sp_core_unmerge_all(c);
		if (err) {
			*p = 0; /* as the kernel: a failed unmerge stops */
			return err;
		}
		return 0;
	}
	*p = v;
	return 0;
}

SAMEPAGE_API int samepage_set(const char *name, const char *value)
{
	struct sp_engine *e = &sp_engine;
	const struct sp_knob *k;
	struct samepage_stats s;
	char tmp[32];
	uint32_t v;
	int err;

	if (!name || !value)
		return fail(EINVAL);
	k = sp_knob_find(name);
	if (!k) {
		memset(&s, 0, sizeof(s));
		/* a counter exists but cannot be written, as a 0444 sysfs file */
		return fail(counter_value(&s, name, tmp, sizeof(tmp)) == -ENOENT ? ENOENT : EACCES);
	}
	err = sp_knob_parse(k, value, &v);
	if (err)
		return fail(err);
	sp_engine_lock();
	err = sp_engine_core();
	if (!err)
		err = set_locked(e, k, v);
	sp_engine_kick();
	sp_engine_unlock();
	return err ? fail(err) : 0;
}

SAMEPAGE_API int samepage_stats(struct samepage_stats *out)
{
	int err;

	if (!out)
		return fail(EINVAL);
	sp_engine_lock();
	err = sp_engine_core();
	if (!err)
		fill_stats(out);
	sp_engine_unlock();
	return err ? fail(err) : 0;
}

SAMEPAGE_API int samepage_region_stats(void *addr, size_t len, struct samepage_region_stats *out)
{
	struct sp_engine *e = &sp_engine;
	int err;

	uintptr_t start = (uintptr_t)addr;
	size_t alen = (len + PAGE - 1) & ~(PAGE - 1);

	/* as madvise: a length that wraps past the end of the address space */
	if (!out || (start & (PAGE - 1)) || (len && !alen) || start + alen < start)
		return fail(EINVAL);
	sp_engine_lock();
	err = sp_engine_core();
	if (!err)
		sp_core_range_stats(&e->core, start, alen / PAGE, out);
	sp_engine_unlock();
	return err ? fail(err) : 0;
}

SAMEPAGE_API int samepage_wait_scans(unsigned n, int timeout_ms)
{
	struct sp_engine *e = &sp_engine;
	struct timespec ts;
	uint64_t target;
	int err = 0;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (timeout_ms >= 0) {
		ts.tv_sec += timeout_ms / 1000;
		ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
	}
	sp_engine_init();
	pthread_mutex_lock(&e->scan_lock);
	target = e->scans_pub + n;
	while (!err && e->scans_pub < target) {
		int rc = timeout_ms >= 0 ? pthread_cond_timedwait(&e->scanned, &e->scan_lock, &ts)
					 : pthread_cond_wait(&e->scanned, &e->scan_lock);

		if (rc == ETIMEDOUT)
			err = -ETIMEDOUT;
	}
	pthread_mutex_unlock(&e->scan_lock);
	return err ? fail(err) : 0;
}
