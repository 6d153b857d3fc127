/* SPDX-License-Identifier: MIT */
/*
 * domain.c - one merge domain: its page store, its core, its scanner.
 *
 * Pages of two domains never share a physical page because they never
 * share a store: each domain has its own memfd, written only here (through
 * the daemon's shared mapping of it). Clients get a read-only descriptor
 * of it, opened anew (not a dup of the daemon's read-write one), after the
 * file's mode was set to 0400: a client that is not root cannot re-open
 * /proc/self/fd/N for writing, cannot write, truncate or punch through its
 * descriptor, and cannot map it shared and writable.
 *
 * The scanner does what the in-process engine's does (lib/engine.c):
 * pages_to_scan pages, then sleep_millisecs, slices no longer than
 * batch_usecs with the lock let go in between; before each batch it asks
 * clients whose event flag is up for their MADV_DONTNEED bookkeeping.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "samepage.h"
#include "util/clock.h"

#define STORE_RESERVE_PAGES (1ull << 28) /* 1 TiB of address space per domain */

static struct sd_domain *D(struct sp_host *h)
{
	return (struct sd_domain *)((char *)h - offsetof(struct sd_domain, host));
}

static int store_alloc(struct sp_host *h, size_t n, int nid, uint64_t *pg)
{
	(void)nid; /* one store per domain; NUMA placement: see DESIGN */
	return sp_store_alloc(&D(h)->store, n, pg);
}

static void *store_page(struct sp_host *h, uint64_t pg)
{
	return D(h)->store.view + pg * SP_PAGE_SIZE;
}

static void store_free(struct sp_host *h, uint64_t pg)
{
	struct sd_domain *d = D(h);

	if (d->stuck) { /* a late remap may still map it (peer.c): keep it */
		if (d->ndeferred == d->deferred_cap) {
			size_t cap = d->deferred_cap ? d->deferred_cap * 2 : 256;
			uint64_t *p = realloc(d->deferred, cap * sizeof(*p));

			if (!p)
				return; /* leaked until the domain goes: never reused */
			d->deferred = p;
			d->deferred_cap = cap;
		}
		d->deferred[d->ndeferred++] = pg;
		return;
	}
	sp_store_free(&d->store, pg);
}

void sd_domain_unstuck(struct sd_domain *d, int alive)
{
	if (!d->stuck)
		return;
	/* a stuck client that still lives may map any of them (a remap it
	 * did late) until it has copied its memory back: they stay, unused */
	d->stuck_alive |= alive;
	if (--d->stuck)
		return;
	for (size_t i = 0; i < d->ndeferred && !d->stuck_alive; i++)
		sp_store_free(&d->store, d->deferred[i]);
	d->stuck_alive = 0;
	free(d->deferred);
	d->deferred = NULL;
	d->ndeferred = d->deferred_cap = 0;
}

static uint64_t now_ns(struct sp_host *h)
{
	(void)h;
	return sp_mono_ns();
}

static uint64_t cpu_ns(struct sp_host *h)
{
	(void)h;
	return sp_thread_cpu_ns();
}

static const struct sp_host_ops host_ops = {
	.store_alloc = store_alloc,
	.store_page = store_page,
	.store_free = store_free,
	.now_ns = now_ns,
	.cpu_ns = cpu_ns,
};

int sd_domain_init(struct sd_domain *d, const char *name, const struct sd_domain_conf *conf)
{
	char path[64];
	int err;

	memset(d, 0, sizeof(*d));
	d->store_ro = -1;
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->host.ops = &host_ops;
	err = sp_store_init(&d->store, STORE_RESERVE_PAGES);
	if (err)
		return err;
	/* the read-only descriptor clients get: a new open, so that its file
	 * description never had write access */
	if (fchmod(d->store.fd, 0400)) {
		err = -errno;
		sp_store_destroy(&d->store);
		return err;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", d->store.fd);
	d->store_ro = open(path, O_RDONLY | O_CLOEXEC);
	if (d->store_ro < 0) {
		err = -errno;
		sp_store_destroy(&d->store);
		return err;
	}
	if (sp_core_init(&d->core, &d->host)) {
		close(d->store_ro);
		sp_store_destroy(&d->store);
		return -ENOMEM;
	}
	/* A daemon is started to merge: its domains scan from the start
	 * (the kernel's ksmd waits for run=1; a domain's file can say so). */
	d->core.knobs.run = 1;
	pthread_mutex_init(&d->lock, NULL);
	{
		pthread_condattr_t a;

		pthread_condattr_init(&a);
		pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
		pthread_cond_init(&d->wake, &a);
		pthread_condattr_destroy(&a);
	}
	if (conf) {
		/* the file's values, with the rules a write has (advisor_mode
		 * owns pages_to_scan, ...): in the table's order */
		for (size_t i = 0; i < sp_knob_count; i++) {
			const struct sp_knob *k = &sp_knob_table[i];
			char val[64];

			if (!(conf->knob_set >> i & 1) || k->type == SP_KNOB_COUNTER || !(k->flags & SP_KF_ENGINE))
				continue;
			sp_knob_format_input(k, *sp_knob_ptr((struct sp_knobs *)&conf->knobs, k), val, sizeof(val));
			err = sd_domain_set(d, k->name, val);
			if (err)
				fprintf(stderr, "samepaged: domain %s: %s = %s refused: %s\n", name, k->name, val,
					strerror(-err));
		}
		d->max_bytes = conf->max_bytes;
		d->max_clients = conf->max_clients;
	}
	return 0;
}

void sd_domain_destroy(struct sd_domain *d)
{
	if (d->thread_running) {
		pthread_mutex_lock(&d->lock);
		d->stop = 1;
		pthread_cond_broadcast(&d->wake);
		pthread_mutex_unlock(&d->lock);
		pthread_join(d->thread, NULL);
	}
	sp_core_destroy(&d->core);
	free(d->deferred);
	if (d->store_ro >= 0)
		close(d->store_ro);
	sp_store_destroy(&d->store);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->wake);
}

void sd_domain_kick(struct sd_domain *d)
{
	pthread_cond_broadcast(&d->wake);
}

static void sleep_ms(struct sd_domain *d, uint32_t ms)
{
	uint64_t t = sp_mono_ns() + (uint64_t)ms * 1000000ull;
	struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ull), .tv_nsec = (long)(t % 1000000000ull)};

	pthread_cond_timedwait(&d->wake, &d->lock, &ts);
}

void sd_domain_lock(struct sd_domain *d)
{
	__atomic_add_fetch(&d->waiters, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&d->lock);
	__atomic_sub_fetch(&d->waiters, 1, __ATOMIC_RELAXED);
}

/* Between slices: a mutex is not fair, and a scanner that only yielded
 * would take it back before the woken server thread runs (a client's
 * REGISTER or STATUS would wait for the whole settle). */
static void let_others_in(struct sd_domain *d)
{
	pthread_mutex_unlock(&d->lock);
	for (int n = 0; n < 1000; n++) {
		sched_yield();
		if (!__atomic_load_n(&d->waiters, __ATOMIC_RELAXED))
			break;
	}
	pthread_mutex_lock(&d->lock);
}

static void events(struct sd_domain *d)
{
	struct sp_core *c = &d->core;

	for (uint32_t s = 0; s < c->nspaces; s++)
		if (c->spaces[s])
			sd_peer_events((struct sd_peer *)c->spaces[s]);
}

/* Before sleeping: the answers to what was sent without waiting (a remap the
 * client refused leaves its pages frozen until its answer is read). */
static void flush(struct sd_domain *d)
{
	struct sp_core *c = &d->core;

	for (uint32_t s = 0; s < c->nspaces; s++)
		if (c->spaces[s])
			sd_peer_flush((struct sd_peer *)c->spaces[s]);
}

static void *scanner(void *arg)
{
	struct sd_domain *d = arg;
	struct sp_core *c = &d->core;
	uint64_t left = 0;
	char name[16];

	snprintf(name, sizeof(name), "scan:%.10s", d->name);
	pthread_setname_np(pthread_self(), name);
	setpriority(PRIO_PROCESS, 0, 5); /* as ksmd */
	pthread_mutex_lock(&d->lock);
	while (!d->stop) {
		uint64_t scans, cpu0, got;

		if (c->knobs.run != 1 || !c->rmap.nregions) {
			left = 0;
			flush(d);
			sleep_ms(d, 1000); /* also: the clients' event flags, now and then */
			events(d);
			continue;
		}
		events(d);
		if (!left)
			left = c->knobs.pages_to_scan ? c->knobs.pages_to_scan : 1;
		scans = c->cnt.full_scans;
		cpu0 = sp_thread_cpu_ns();
		got = sp_core_scan(c, left, sp_core_now(c) + (uint64_t)c->knobs.batch_usecs * 1000ull);
		d->scan_cpu_ns += sp_thread_cpu_ns() - cpu0;
		left = got >= left ? 0 : left - got;
		if (c->cnt.full_scans != scans)
			left = 0;
		c->recount_wanted = 0; /* clients count their own mappings */
		if (left && got) {
			let_others_in(d);
			continue;
		}
		left = 0;
		if (c->knobs.sleep_millisecs) {
			flush(d);
			sleep_ms(d, c->knobs.sleep_millisecs);
		} else {
			let_others_in(d);
		}
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

int sd_domain_start(struct sd_domain *d)
{
	int err;

	if (d->thread_running)
		return 0;
	err = pthread_create(&d->thread, NULL, scanner, d);
	if (err)
		return -err;
	d->thread_running = 1;
	return 0;
}

int sd_domain_set(struct sd_domain *d, const char *name, const char *value)
{
	struct sp_core *c = &d->core;
	const struct sp_knob *k = sp_knob_find(name);
	struct sp_knob_state st;
	uint32_t v, *p;
	int err;

	if (!k || !(k->flags & SP_KF_ENGINE))
		return -ENOENT;
	err = sp_knob_parse(k, value, &v);
	if (err)
		return err;
	if (k->effect == SP_EFFECT_THREADS && v != 1)
		return -EINVAL; /* one scanner per domain (helpers: not in the daemon yet) */
	p = sp_knob_ptr(&c->knobs, k);
	st.shared = c->stable.pages != 0;
	st.advisor = c->knobs.advisor_mode != SP_ADVISOR_NONE;
	err = sp_knob_refused(k, &st, *p != v);
	if (err || *p == v)
		return err;
	*p = v;
	if (k->effect == SP_EFFECT_ADVISOR_RESET)
		sp_core_advisor_reset(c);
	if (k->effect == SP_EFFECT_UNMERGE && v == 2 && sp_core_unmerge_all(c)) {
		*p = 0; /* as the kernel: a failed unmerge stops */
		err = -ENOMEM;
	}
	sd_domain_kick(d);
	return err;
}

size_t sd_domain_status(struct sd_domain *d, char *buf, size_t len)
{
	struct samepage_stats s;
	size_t used = 0;

	sp_core_stats(&d->core, &s);
	s.scan_cpu_ns = d->scan_cpu_ns;
	for (size_t i = 0; i < sp_knob_count && used < len; i++) {
		const struct sp_knob *k = &sp_knob_table[i];
		char val[64];
		int n;

		if (!(k->flags & SP_KF_ENGINE))
			continue;
		if (k->type == SP_KNOB_COUNTER) {
			const char *f = (const char *)&s + k->offset;

			if (k->flags & SP_KF_SIGNED)
				snprintf(val, sizeof(val), "%" PRId64, *(const int64_t *)f);
			else
				snprintf(val, sizeof(val), "%" PRIu64, *(const uint64_t *)f);
		} else {
			sp_knob_format(k, *sp_knob_ptr(&d->core.knobs, k), val, sizeof(val));
		}
		n = snprintf(buf + used, len - used, "%s %s\n", k->name, val);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
	return used;
}
