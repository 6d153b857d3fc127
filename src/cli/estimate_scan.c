/* SPDX-License-Identifier: MIT */
/*
 * estimate_scan.c - one pass over the targets' memory, as ksmd would see it.
 *
 * For each target: its VMAs from smaps (the kernel's verdict on each, see
 * kernel/vmas.h), then, VMA by VMA, the pages ksmd would scan (pagemap,
 * PAGEMAP_SCAN), their content with process_vm_readv in batches of up to
 * BATCH pages, and one record per page: the content hash and the all-zero
 * test the core's scan classifies a page with (core/hash.h), made into the
 * model's key. Memory is read with src/mem's readers (mem/reader.h), the
 * ones the engine and samepaged read with; nothing in a target changes.
 *
 * The first sample appends records in (process, address) order. Later
 * samples walk the same way and join against those records by address: a
 * page whose key changed, or that went away, is marked volatile, and pages
 * that appeared since are counted as volatile without a record - ksmd does
 * not put a page in its unstable tree until its checksum held for a whole
 * scan.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/estimate.h"
#include "cli/textsafe.h"
#include "core/hash.h"
#include "kernel/vmas.h"
#include "mem/reader.h"
#include "util/clock.h"

#define BATCH  512 /* pages read per process_vm_readv */
#define RANGES 256 /* ranges per PAGEMAP_SCAN          */

struct scan_ctx {
	struct est *e;
	struct sp_pagemap pm; /* the target's */
	int pid;
	uint32_t proc;
	struct sp_range rg[RANGES];
	uint8_t *buf;
	uint8_t ok[BATCH];
	int nodes[BATCH];
	uint64_t t0_ns;
};

struct sp_model_knobs est_knobs(const struct est *e)
{
	struct sp_model_knobs k = {e->o.max_page_sharing, e->o.use_zero_pages, e->o.thp_split_zero};

	return k;
}

/* The est_vma for (proc, start): an existing one, or a new one. */
static long vma_index(struct est *e, uint32_t proc, const struct sp_vma *v)
{
	if (e->sample > 0)
		for (uint32_t i = 0; i < e->nvmas; i++)
			if (e->vmas[i].proc == proc && e->vmas[i].start == v->start)
				return i;
	if (e->nvmas == e->vmas_cap) {
		uint32_t cap = e->vmas_cap ? e->vmas_cap * 2 : 256;
		struct est_vma *p = realloc(e->vmas, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		e->vmas = p;
		e->vmas_cap = cap;
	}
	memset(&e->vmas[e->nvmas], 0, sizeof(e->vmas[0]));
	e->vmas[e->nvmas].proc = proc;
	e->vmas[e->nvmas].start = v->start;
	e->vmas[e->nvmas].end = v->end;
	e->vmas[e->nvmas].ksm = v->ksm_kb / 4;
	snprintf(e->vmas[e->nvmas].name, sizeof(e->vmas[0].name), "%s", v->name);
	return e->nvmas++;
}

static int push(struct est *e, uint64_t key, uint32_t vma, uint32_t off, int nid)
{
	if (e->npg == e->pg_cap) {
		uint64_t cap = e->pg_cap ? e->pg_cap + e->pg_cap / 2 : 65536;
		struct sp_model_page *p;

		if (e->keep_nodes) { /* --domains: the nodes beside the records */
			uint16_t *n = realloc(e->nodes, cap * sizeof(*n));

			if (!n)
				return -ENOMEM;
			e->nodes = n;
		}
		p = realloc(e->pg, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		e->pg = p;
		e->pg_cap = cap;
	}
	if (e->keep_nodes)
		e->nodes[e->npg] = (uint16_t)(nid < 0 ? 0 : nid);
	e->pg[e->npg].key = key;
	e->pg[e->npg].vma = vma;
	e->pg[e->npg].off = off;
	e->npg++;
	return 0;
}

/* A later sample found the page changed or gone. Pages of a target that
 * has exited (or refused access) since are not: they keep their first
 * reading, counted like those of a target that exits during the first
 * sample (the result is partial either way). */
static void mark_volatile(struct est *e, struct sp_model_page *p)
{
	struct est_vma *v;

	if (p->vma & EST_VOLATILE)
		return;
	v = &e->vmas[p->vma];
	if (e->procs[v->proc].status != EST_OK)
		return;
	p->vma |= EST_VOLATILE;
	v->volatile_pages++;
	e->procs[v->proc].volatile_pages++;
	e->volatile_pages++;
}

/* later samples: is record a before (proc, addr)? */
static int rec_before(const struct est *e, const struct sp_model_page *p, uint32_t proc, uintptr_t addr)
{
	const struct est_vma *v = &e->vmas[p->vma & ~EST_VOLATILE];
	uintptr_t a = v->start + ((uintptr_t)p->off << 12);

	return v->proc < proc || (v->proc == proc && a < addr);
}

/* Later samples: the page (proc, vma, addr) has key now (on node nid). */
static void join(struct est *e, uint32_t proc, uint32_t vma, uintptr_t addr, uint64_t key, int nid)
{
	while (e->join < e->npg && rec_before(e, &e->pg[e->join], proc, addr))
		mark_volatile(e, &e->pg[e->join++]); /* went away */
	if (e->join < e->npg && rec_before(e, &e->pg[e->join], proc, addr + 1)) {
		/* the same address */
		if (e->pg[e->join].key != key || (e->keep_nodes && e->nodes[e->join] != (uint16_t)(nid < 0 ? 0 : nid)))
			mark_volatile(e, &e->pg[e->join]);
		e->join++;
		return;
	}
	if (e->sample == e->o.samples - 1) { /* new since the first sample */
		e->vmas[vma].volatile_pages++;
		e->procs[proc].volatile_pages++;
		e->volatile_pages++;
	}
}

static void rate_limit(struct scan_ctx *s)
{
	struct est *e = s->e;
	double want_s, have_s;

	if (e->o.rate_limit <= 0)
		return;
	want_s = (double)e->bytes_read / (e->o.rate_limit * 1e6);
	have_s = (double)(sp_mono_ns() - s->t0_ns) / 1e9;
	if (want_s > have_s) {
		double d = want_s - have_s;
		struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};

		nanosleep(&ts, NULL);
	}
}

/* Scans one VMA. 0, or -errno that ends this process (-ESRCH, -EPERM,
 * -ENOMEM for the records). */
static int scan_vma(struct scan_ctx *s, const struct sp_vma *sv)
{
	struct est *e = s->e;
	struct est_proc *pr = &e->procs[s->proc];
	struct sp_model_knobs kn = est_knobs(e);
	uintptr_t pos = sv->start;
	long vi = vma_index(e, s->proc, sv);
	struct est_vma *v;

	if (vi < 0)
		return (int)vi;
	v = &e->vmas[vi];
	if (e->sample == 0)
		pr->ksm += v->ksm;
	while (pos < sv->end) {
		long nr = sp_pagemap_present(&s->pm, &pos, sv->end, s->rg, RANGES, BATCH);
		uint64_t i = 0, npages = 0;
		long got;

		if (nr == -EFAULT || nr == -EINVAL || nr == -ENOENT)
			return 0; /* the VMA went away (or is the gate area): nothing to scan */
		if (nr < 0)
			return (int)nr;
		if (nr == 0)
			continue;
		for (long k = 0; k < nr; k++)
			npages += s->rg[k].npages;
		got = sp_vm_read_ranges(s->pid, s->rg, (size_t)nr, s->buf, s->ok);
		if (got < 0)
			return (int)got;
		if (e->numa && sp_numa_nodes(s->pid, s->rg, (size_t)nr, s->nodes))
			memset(s->nodes, 0, sizeof(s->nodes));
		e->bytes_read += npages * SP_PAGE_SIZE;
		for (long k = 0; k < nr; k++) {
			for (uint64_t j = 0; j < s->rg[k].npages; j++, i++) {
				uintptr_t a = s->rg[k].start + (j << SP_PAGE_SHIFT);
				const uint8_t *page = s->buf + (i << SP_PAGE_SHIFT);
				uint64_t h, key;
				int zero, nid = e->numa ? (s->nodes[i] < 0 ? 0 : s->nodes[i]) : -1;

				if (!s->ok[i]) {
					pr->vanished++;
					e->vanished++;
					pr->partial = 1;
					continue;
				}
				h = sp_hash_page(page);
				zero = sp_page_zero(page, h);
				if (zero && s->rg[k].huge)
					zero = SP_MODEL_ALL_ZERO_THP;
				/* --domains keeps the node apart (estimate_domains.c) */
				key = sp_model_key(h, zero, e->keep_nodes ? -1 : nid, &kn);
				if (e->sample > 0) {
					join(e, s->proc, (uint32_t)vi, a, key, nid);
					continue;
				}
				if (push(e, key, (uint32_t)vi, (uint32_t)((a - sv->start) >> SP_PAGE_SHIFT), nid)) {
					e->oom = 1;
					return -ENOMEM;
				}
				v = &e->vmas[vi];
				v->pages++;
				pr->pages++;
				if (key == SP_MODEL_THP_ZERO) {
					v->thp_zero++;
					e->thp_zero_pages++;
				} else if (zero) {
					v->zero++;
					pr->zero++;
					e->zero_pages++;
				}
			}
		}
		e->progress_done += npages;
		sp_progress_update(&e->progress, e->progress_done, sp_safe(pr->info.comm));
		rate_limit(s);
	}
	return 0;
}

static int selected(const struct est *e, const struct sp_vma *v)
{
	if (!(v->flags & SP_VMA_COMPATIBLE))
		return 0;
	/* the gate area is no VMA of the mm: ksmd never sees it */
	if (!strcmp(v->name, "[vsyscall]"))
		return 0;
	return (v->flags & SP_VMA_MERGEABLE) || e->o.all_anon;
}

static void fail(struct est_proc *pr, int err)
{
	pr->err = -err;
	if (err == -ESRCH) {
		pr->status = EST_GONE;
	} else if (err == -EPERM || err == -EACCES) {
		pr->status = EST_DENIED;
	} else {
		pr->status = EST_FAILED;
	}
}

int est_scan(struct est *e)
{
	struct sp_vma_list *lists = calloc(e->nprocs ? e->nprocs : 1, sizeof(*lists));
	struct scan_ctx *s = calloc(1, sizeof(*s));
	int ret = 0;

	if (!lists || !s || !(s->buf = malloc(BATCH * SP_PAGE_SIZE))) {
		free(lists);
		if (s)
			free(s->buf);
		free(s);
		return -ENOMEM;
	}
	s->e = e;
	e->join = 0;
	e->progress_total = 0;
	/* the VMAs of every target first: they size the progress bar */
	for (uint32_t p = 0; p < e->nprocs; p++) {
		struct est_proc *pr = &e->procs[p];
		int err;

		if (pr->status != EST_OK)
			continue;
		err = sp_vmas_read("/proc", pr->info.pid, &lists[p]);
		if (err) {
			if (e->sample > 0 && err == -ESRCH)
				pr->partial = 1;
			fail(pr, err);
			continue;
		}
		for (size_t i = 0; i < lists[p].n; i++)
			if (selected(e, &lists[p].v[i]))
				e->progress_total += lists[p].v[i].anon_kb / 4;
	}
	e->progress_done = 0;
	sp_progress_start(&e->progress, e->o.samples > 1 ? "sampling" : "scanning", e->progress_total, e->o.progress);
	s->t0_ns = sp_mono_ns();
	for (uint32_t p = 0; p < e->nprocs && !ret; p++) {
		struct est_proc *pr = &e->procs[p];
		int err;

		if (pr->status != EST_OK)
			continue;
		err = sp_pagemap_open(&s->pm, pr->info.pid);
		if (err) {
			fail(pr, err);
			continue;
		}
		s->pid = pr->info.pid;
		s->proc = p;
		for (size_t i = 0; i < lists[p].n && !err; i++) {
			if (!selected(e, &lists[p].v[i]))
				continue;
			if (e->sample == 0)
				pr->vmas++;
			err = scan_vma(s, &lists[p].v[i]);
		}
		if (err == -ENOMEM && e->oom) {
			ret = -ENOMEM;
		} else if (err) {
			/* gone or refused midway: what was read stays, marked */
			if (pr->pages)
				pr->partial = 1;
			fail(pr, err);
		}
		sp_pagemap_close(&s->pm);
	}
	/* later samples: records never met again went away */
	if (e->sample > 0)
		while (e->join < e->npg)
			mark_volatile(e, &e->pg[e->join++]);
	sp_progress_done(&e->progress);
	for (uint32_t p = 0; p < e->nprocs; p++)
		sp_vmas_free(&lists[p]);
	free(lists);
	free(s->buf);
	free(s);
	return ret;
}

void est_drop_volatile(struct est *e)
{
	uint64_t j = 0;

	for (uint64_t i = 0; i < e->npg; i++)
		if (!(e->pg[i].vma & EST_VOLATILE)) {
			if (e->keep_nodes)
				e->nodes[j] = e->nodes[i];
			e->pg[j++] = e->pg[i];
		}
	e->npg = j;
}

int est_add_ksm_zero(struct est *e)
{
	struct sp_model_knobs kn = est_knobs(e);
	uint64_t key = sp_model_key(e->zero_hash, 1, e->numa && !e->keep_nodes ? 0 : -1, &kn);

	/* Pages KSM already mapped to the zero page read as the zero page in
	 * pagemap and are not scanned; ksm_stat counts them per process. They
	 * are all-zero content: they count as such in the model, in a VMA of
	 * their own (which VMA they sit in is not known). */
	for (uint32_t p = 0; p < e->nprocs; p++) {
		struct est_proc *pr = &e->procs[p];
		struct sp_vma pseudo = {0};
		long vi;

		if (pr->status != EST_OK || pr->info.ksm_zero_pages <= 0)
			continue;
		snprintf(pseudo.name, sizeof(pseudo.name), "[ksm zero pages]");
		vi = vma_index(e, p, &pseudo);
		if (vi < 0)
			return (int)vi;
		for (long i = 0; i < pr->info.ksm_zero_pages; i++) {
			if (push(e, key, (uint32_t)vi, (uint32_t)i, 0)) {
				e->oom = 1;
				return -ENOMEM;
			}
		}
		e->vmas[vi].pages += (uint64_t)pr->info.ksm_zero_pages;
		e->vmas[vi].zero += (uint64_t)pr->info.ksm_zero_pages;
		pr->pages += (uint64_t)pr->info.ksm_zero_pages;
		pr->zero += (uint64_t)pr->info.ksm_zero_pages;
		e->zero_pages += (uint64_t)pr->info.ksm_zero_pages;
		e->already_zero += (uint64_t)pr->info.ksm_zero_pages;
	}
	return 0;
}
