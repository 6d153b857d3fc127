/* SPDX-License-Identifier: MIT */
/*
 * api.c - the public functions of samepage.h: argument checking with the
 * kernel's errno, the sysfs-like text interface, and the lock around the
 * engine.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "lib/engine.h"
#include "proto/wire.h"
#include "util/clock.h"
#include "samepage.h"

#define PAGE 4096ul

static int fail(int err)
{
	errno = err < 0 ? -err : err;
	return -1;
}

SAMEPAGE_API int samepage_madvise(void *addr, size_t len, int advice)
{
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
	if (!err)
		err = advice == SAMEPAGE_MERGEABLE ? sp_engine_register(start, alen)
						   : sp_engine_unregister(start, alen);
	sp_engine_unlock();
	return err ? fail(err) : 0;
}

SAMEPAGE_API int samepage_munmap(void *addr, size_t len)
{
	if (samepage_madvise(addr, len, SAMEPAGE_UNMERGEABLE) && errno != ENOMEM)
		return -1;
	return munmap(addr, len);
}

/* A counter of the knob table, from the stats. */
static int counter_value(const struct samepage_stats *s, const struct sp_knob *k, char *buf, size_t len)
{
	const char *p = (const char *)s + k->offset;
	int n;

	if (k->flags & SP_KF_SIGNED)
		n = snprintf(buf, len, "%" PRId64, *(const int64_t *)p);
	else
		n = snprintf(buf, len, "%" PRIu64, *(const uint64_t *)p);
	return n < 0 || (size_t)n >= len ? -ERANGE : 0;
}

static void fill_stats(struct samepage_stats *out)
{
	struct sp_engine *e = &sp_engine;

	sp_core_stats(&e->core, out);
	out->scan_cpu_ns = sp_engine_scan_cpu_ns();
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
	if (e->client_mode) {
		err = sp_engine_backend();
		if (!err)
			err = sp_client_get(e, name, buf, len);
		goto out;
	}
	k = sp_knob_find(name);
	if (!k || !(k->flags & SP_KF_ENGINE)) {
		err = -ENOENT;
	} else if (k->type != SP_KNOB_COUNTER) {
		n = sp_knob_format(k, *sp_knob_ptr(&e->core.knobs, k), buf, len);
		err = n < 0 || (size_t)n >= len ? -ERANGE : 0;
	} else {
		fill_stats(&s);
		err = counter_value(&s, k, buf, len);
	}
out:
	sp_engine_unlock();
	return err ? fail(err) : 0;
}

/* Refusals are the table's (sp_knob_refused); what a write does besides
 * storing the value is keyed by the table's effect. */
static int set_locked(struct sp_engine *e, const struct sp_knob *k, uint32_t v)
{
	struct sp_core *c = &e->core;
	uint32_t *p = sp_knob_ptr(&c->knobs, k);
	struct sp_knob_state st = {
		.shared = c->stable.pages != 0,
		.advisor = c->knobs.advisor_mode != SP_ADVISOR_NONE,
	};
	int err = sp_knob_refused(k, &st, *p != v);

	if (err || *p == v)
		return err;
	switch (k->effect) {
	case SP_EFFECT_ADVISOR_RESET:
		*p = v;
		sp_core_advisor_reset(c);
		return 0;
	case SP_EFFECT_THREADS:
		err = sp_engine_threads(v);
		if (!err)
			*p = v;
		return err;
	case SP_EFFECT_RESTART_HELPERS:
		*p = v; /* the scanner applies it; helpers are restarted with it */
		return c->knobs.scan_threads > 1 ? sp_engine_threads(c->knobs.scan_threads) : 0;
	case SP_EFFECT_UNMERGE:
		*p = v;
		if (v != 2)
			return 0;
		err = sp_core_unmerge_all(c);
		if (err)
			*p = 0; /* as the kernel: a failed unmerge stops */
		return err;
	case SP_EFFECT_NONE:
		break;
	}
	*p = v;
	return 0;
}

SAMEPAGE_API int samepage_set(const char *name, const char *value)
{
	struct sp_engine *e = &sp_engine;
	const struct sp_knob *k;
	uint32_t v;
	int err;

	if (!name || !value)
		return fail(EINVAL);
	k = sp_knob_find(name);
	if (!k || !(k->flags & SP_KF_ENGINE))
		return fail(ENOENT);
	/* a counter exists but cannot be written, as a 0444 sysfs file (EACCES) */
	err = sp_knob_parse(k, value, &v);
	if (err)
		return fail(err);
	sp_engine_lock();
	err = sp_engine_core();
	if (!err && e->client_mode) {
		err = sp_engine_backend();
		if (!err)
			err = sp_client_set(e, name, value);
	} else if (!err) {
		err = set_locked(e, k, v);
	}
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
	if (!err && sp_engine.client_mode) {
		err = sp_engine_backend();
		if (!err)
			err = sp_client_stats(&sp_engine, out);
	} else if (!err) {
		fill_stats(out);
	}
	sp_engine_unlock();
	return err ? fail(err) : 0;
}

SAMEPAGE_API int samepage_region_stats(void *addr, size_t len, struct samepage_region_stats *out)
{
	uintptr_t start = (uintptr_t)addr;
	size_t alen = (len + PAGE - 1) & ~(PAGE - 1);
	int err;

	/* as madvise: a length that wraps past the end of the address space */
	if (!out || (start & (PAGE - 1)) || (len && !alen) || start + alen < start)
		return fail(EINVAL);
	sp_engine_lock();
	err = sp_engine_core();
	if (!err && sp_engine.client_mode) {
		memset(out, 0, sizeof(*out));
		if (sp_engine.backend_ready)
			err = sp_client_region_stats(&sp_engine, start, alen, out);
	} else if (!err) {
		sp_engine_region_stats(start, alen, out);
	}
	sp_engine_unlock();
	return err ? fail(err) : 0;
}

/* Client mode: the daemon's full_scans, asked every 10 ms until the
 * deadline (the daemon does not push them). */
static int wait_scans_daemon(unsigned n, int timeout_ms)
{
	struct samepage_stats s;
	struct timespec pause = {.tv_nsec = 10000000L};
	uint64_t deadline = sp_mono_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000ull, target;

	if (samepage_stats(&s))
		return -1;
	target = s.full_scans + n;
	while (s.full_scans < target) {
		if (timeout_ms >= 0 && sp_mono_ns() >= deadline)
			return fail(ETIMEDOUT);
		nanosleep(&pause, NULL);
		if (samepage_stats(&s))
			return -1;
	}
	return 0;
}

SAMEPAGE_API int samepage_connect(const char *socket_path)
{
	struct sp_engine *e = &sp_engine;
	const char *path = socket_path;
	int err;

	if (!path)
		path = getenv("SAMEPAGE_DAEMON");
	if (!path || !*path)
		path = SP_DEFAULT_SOCKET;
	if (strlen(path) >= sizeof(e->client.path))
		return fail(ENAMETOOLONG);
	sp_engine_lock();
	err = sp_engine_core();
	if (!err && e->backend_ready)
		err = e->client_mode && !strcmp(e->client.path, path) ? 0 : -EBUSY;
	else if (!err) {
		snprintf(e->client.path, sizeof(e->client.path), "%s", path);
		e->client_mode = 1;
		e->backend_err = 0;
		err = sp_engine_backend();
	}
	sp_engine_unlock();
	return err ? fail(err) : 0;
}

SAMEPAGE_API int samepage_wait_scans(unsigned n, int timeout_ms)
{
	struct sp_engine *e = &sp_engine;
	struct timespec ts;
	uint64_t target;
	int err = 0;

	if (__atomic_load_n(&e->client_mode, __ATOMIC_RELAXED))
		return wait_scans_daemon(n, timeout_ms);

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
