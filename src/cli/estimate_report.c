/* SPDX-License-Identifier: MIT */
/*
 * estimate_report.c - the model's outcome, told per VMA and per process, as
 * a summary for people and as JSON.
 *
 * Attribution: a content on k pages whose merge frees s pages (pages_sharing
 * plus zero-page merges) credits s/k to each of its pages, so per-VMA and
 * per-process savings add up to the total. Which page the kernel keeps as
 * the KSM page is arbitrary; this spreads the saving evenly.
 *
 * "Shares with": for a content found in several processes, each pair of
 * them is credited with the pages it could pair up (the smaller of the two
 * counts). Kept for up to MAX_PAIR_PROCS processes (a dense matrix).
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/estimate.h"
#include "cli/textsafe.h"
#include "cli/units.h"

#define MAX_PAIR_PROCS		  1024
#define PAIR_GROUP_MAX		  64	   /* contents spread over more processes skip pairs */
#define KSMD_PAGES_PER_CPU_SECOND 150000.0 /* DESIGN.md: 135-170 k measured */

static void visit(void *ctx, const struct sp_model_page *pg, uint64_t k, const struct sp_model_group *g)
{
	struct est *e = ctx;
	double per = (double)(g->sharing + g->zero + g->thp_zero) / (double)k;
	uint32_t procs[PAIR_GROUP_MAX];
	uint64_t counts[PAIR_GROUP_MAX];
	int np = 0, pairs = e->pair && !g->zero && !g->thp_zero && k >= 2;

	if (g->sharing + g->zero + g->thp_zero == 0)
		return;
	for (uint64_t i = 0; i < k;) {
		uint32_t v = pg[i].vma;
		uint64_t j = i;
		struct est_vma *ev = &e->vmas[v];

		while (j < k && pg[j].vma == v)
			j++;
		ev->saving += per * (double)(j - i);
		e->procs[ev->proc].saving += per * (double)(j - i);
		if (pairs) {
			int x = 0;

			while (x < np && procs[x] != ev->proc)
				x++;
			if (x == np) {
				if (np == PAIR_GROUP_MAX) {
					pairs = 0;
				} else {
					procs[np] = ev->proc;
					counts[np++] = 0;
				}
			}
			if (pairs)
				counts[x] += j - i;
		}
		i = j;
	}
	if (!pairs || np < 2)
		return;
	for (int a = 0; a < np; a++)
		for (int b = a + 1; b < np; b++) {
			uint32_t p = procs[a] < procs[b] ? procs[a] : procs[b];
			uint32_t q = procs[a] < procs[b] ? procs[b] : procs[a];

			e->pair[(uint64_t)p * e->nprocs + q] += counts[a] < counts[b] ? counts[a] : counts[b];
		}
}

/* rmap items ksmd keeps once settled */
static uint64_t est_rmap_items(const struct est *e)
{
	return e->res.pages_scanned - e->res.thp_zero_pages;
}

/* pages freed: merged, mapped to the zero page by KSM or by a THP split */
static uint64_t est_saved_pages(const struct est *e)
{
	return e->res.pages_sharing + e->res.ksm_zero_pages + e->res.thp_zero_pages;
}

void est_model(struct est *e)
{
	struct sp_model_knobs kn = est_knobs(e);

	if (e->nprocs >= 2 && e->nprocs <= MAX_PAIR_PROCS)
		e->pair = calloc((uint64_t)e->nprocs * e->nprocs, sizeof(*e->pair));
	sp_model_run(e->pg, e->npg, &kn, &e->res, visit, e);
	/* ksmd keeps an rmap item for volatile pages too, and drops those of
	 * zero subpages a THP split mapped to the zero page */
	e->res.pages_scanned = e->npg + e->volatile_pages;
	e->res.general_profit = (int64_t)((e->res.pages_sharing + e->res.ksm_zero_pages) * 4096) -
				(int64_t)(est_rmap_items(e) * SP_MODEL_RMAP_ITEM);
	for (uint32_t i = 0; i < e->nvmas; i++)
		e->already_ksm += e->vmas[i].ksm;
}

/* --- scan time ------------------------------------------------------------- */

struct scan_time {
	double full_scan_s; /* at the host's pages_to_scan/sleep_millisecs */
	long needed;	    /* pages_to_scan for the advisor's target, -1: unreachable */
	long clamped;	    /* the same within the advisor's limits */
};

static void scan_time(const struct est *e, struct scan_time *st)
{
	double n = (double)e->res.pages_scanned, cpu = n / KSMD_PAGES_PER_CPU_SECOND;
	long pts = e->host.pages_to_scan > 0 ? e->host.pages_to_scan : 100;
	double sleep = (double)(e->host.sleep_millisecs >= 0 ? e->host.sleep_millisecs : 20) / 1000.0;
	double target = (double)(e->host.advisor_target_scan_time > 0 ? e->host.advisor_target_scan_time : 200);
	double batches;

	st->full_scan_s = (double)((uint64_t)(n + (double)pts - 1) / (uint64_t)pts) * sleep + cpu;
	if (n == 0) {
		st->needed = st->clamped = 0;
		return;
	}
	if (cpu >= target) {
		st->needed = st->clamped = -1;
		return;
	}
	batches = sleep > 0 ? (target - cpu) / sleep : 1;
	st->needed = batches < 1 ? (long)n : (long)(n / batches + 0.999);
	if (st->needed < 1)
		st->needed = 1;
	st->clamped = st->needed;
	if (e->host.advisor_min_pages_to_scan > 0 && st->clamped < e->host.advisor_min_pages_to_scan)
		st->clamped = e->host.advisor_min_pages_to_scan;
	if (e->host.advisor_max_pages_to_scan > 0 && st->clamped > e->host.advisor_max_pages_to_scan)
		st->clamped = e->host.advisor_max_pages_to_scan;
}

/* --- ordering for the top lists --------------------------------------------- */

static const struct est *sort_ctx;

static int by_vma_saving(const void *a, const void *b)
{
	double x = sort_ctx->vmas[*(const uint32_t *)a].saving, y = sort_ctx->vmas[*(const uint32_t *)b].saving;

	return x < y ? 1 : x > y ? -1 : 0;
}

static int by_proc_saving(const void *a, const void *b)
{
	double x = sort_ctx->procs[*(const uint32_t *)a].saving, y = sort_ctx->procs[*(const uint32_t *)b].saving;

	return x < y ? 1 : x > y ? -1 : 0;
}

static uint32_t *order(const struct est *e, int vmas)
{
	uint32_t n = vmas ? e->nvmas : e->nprocs;
	uint32_t *ix = malloc((n ? n : 1) * sizeof(*ix));

	if (!ix)
		return NULL;
	for (uint32_t i = 0; i < n; i++)
		ix[i] = i;
	sort_ctx = e;
	qsort(ix, n, sizeof(*ix), vmas ? by_vma_saving : by_proc_saving);
	return ix;
}

static const char *status_name(enum est_status s)
{
	switch (s) {
	case EST_OK:
		return "ok";
	case EST_GONE:
		return "exited";
	case EST_DENIED:
		return "permission denied";
	default:
		return "failed";
	}
}

/* --- the summary ----------------------------------------------------------- */

static double pct(double a, double b)
{
	return b > 0 ? 100.0 * a / b : 0;
}

void est_print(struct est *e, int partial)
{
	const struct sp_model_result *r = &e->res;
	uint64_t saved = est_saved_pages(e), seen = r->pages_scanned;
	char b1[32], b2[32], b3[32];
	struct scan_time st;
	uint32_t *ix;
	int shown;

	printf("samepage estimate: %u process%s, %s scanned (%llu pages%s)\n", e->nprocs, e->nprocs == 1 ? "" : "es",
	       sp_fmt_pages(b1, sizeof(b1), seen), (unsigned long long)seen, partial ? ", PARTIAL: see below" : "");
	printf("model: max_page_sharing %u, use_zero_pages %d, merge_across_nodes %d%s%s\n\n", e->o.max_page_sharing,
	       e->o.use_zero_pages, e->o.merge_across_nodes, e->o.all_anon ? ", all anonymous memory" : "",
	       e->o.thp_split_zero ? ", THP splits free zero subpages" : "");
	printf("Predicted saving   %s  (%.1f%% of scanned memory)\n", sp_fmt_pages(b1, sizeof(b1), saved),
	       pct((double)saved, (double)seen));
	printf("  duplicates       %s  in %llu KSM pages (pages_sharing %llu, pages_shared %llu)\n",
	       sp_fmt_pages(b2, sizeof(b2), r->pages_sharing), (unsigned long long)r->pages_shared,
	       (unsigned long long)r->pages_sharing, (unsigned long long)r->pages_shared);
	if (e->o.use_zero_pages)
		printf("  zero pages       %s  (ksm_zero_pages %llu)\n",
		       sp_fmt_pages(b3, sizeof(b3), r->ksm_zero_pages), (unsigned long long)r->ksm_zero_pages);
	else
		printf("  zero pages       %s of them are all-zero pages (use_zero_pages=1 would map them to the "
		       "zero page)\n",
		       sp_fmt_pages(b3, sizeof(b3), e->zero_pages));
	if (r->thp_zero_pages)
		printf("  THP zero pages   %s  all-zero pages inside transparent huge pages: KSM splits their THP\n"
		       "                   and the kernel maps them to the shared zero page (no KSM counter shows "
		       "them)\n",
		       sp_fmt_pages(b3, sizeof(b3), r->thp_zero_pages));
	printf("  chains           %llu stable_node_chains, %llu stable_node_dups\n",
	       (unsigned long long)r->stable_node_chains, (unsigned long long)r->stable_node_dups);
	printf("  general_profit   %s  (after %s of rmap items)\n",
	       sp_fmt_bytes(b1, sizeof(b1), (double)r->general_profit),
	       sp_fmt_bytes(b2, sizeof(b2), (double)est_rmap_items(e) * SP_MODEL_RMAP_ITEM));
	if (e->o.samples > 1)
		printf("  volatile         %s  (%.1f%%) changed between %d samples %.1f s apart: not counted\n",
		       sp_fmt_pages(b1, sizeof(b1), e->volatile_pages), pct((double)e->volatile_pages, (double)seen),
		       e->o.samples, e->o.interval);
	if (e->already_ksm || e->already_zero)
		printf("  already merged   %llu pages are KSM pages now, %llu mapped to the zero page by KSM "
		       "(counted above)\n",
		       (unsigned long long)e->already_ksm, (unsigned long long)e->already_zero);
	scan_time(e, &st);
	printf("\nScan time: a full scan takes about %s at pages_to_scan %ld, sleep_millisecs %ld",
	       sp_fmt_duration(b1, sizeof(b1), st.full_scan_s), e->host.pages_to_scan, e->host.sleep_millisecs);
	if (st.needed < 0)
		printf(";\n  the advisor's target (%ld s) is out of reach: ksmd's CPU time alone exceeds it\n",
		       e->host.advisor_target_scan_time);
	else
		printf(";\n  the advisor's target of %ld s needs pages_to_scan %ld%s\n",
		       e->host.advisor_target_scan_time, st.needed,
		       st.clamped != st.needed ? " (outside its min/max: it would settle at the limit)" : "");

	ix = order(e, 0);
	if (ix) {
		printf("\nTop processes by saving:\n  %8s %-16s %10s %10s %7s\n", "PID", "COMM", "SCANNED", "SAVING",
		       "%");
		shown = 0;
		for (uint32_t i = 0; i < e->nprocs && shown < e->o.top; i++) {
			const struct est_proc *p = &e->procs[ix[i]];

			if (p->status != EST_OK && !p->pages)
				continue;
			printf("  %8d %-16s %10s %10s %6.1f%%%s\n", p->info.pid, sp_safe(p->info.comm),
			       sp_fmt_pages(b1, sizeof(b1), p->pages), sp_fmt_bytes(b2, sizeof(b2), p->saving * 4096),
			       pct(p->saving, (double)p->pages), p->partial ? "  (partial)" : "");
			shown++;
		}
		free(ix);
	}
	ix = order(e, 1);
	if (ix) {
		printf("\nTop VMAs by saving:\n  %8s %-18s %10s %10s %s\n", "PID", "START", "SCANNED", "SAVING",
		       "NAME");
		shown = 0;
		for (uint32_t i = 0; i < e->nvmas && shown < e->o.top; i++) {
			const struct est_vma *v = &e->vmas[ix[i]];

			if (v->saving < 0.5)
				break;
			printf("  %8d %#-18lx %10s %10s %s\n", e->procs[v->proc].info.pid, (unsigned long)v->start,
			       sp_fmt_pages(b1, sizeof(b1), v->pages), sp_fmt_bytes(b2, sizeof(b2), v->saving * 4096),
			       v->name[0] ? sp_safe(v->name) : "[anon]");
			shown++;
		}
		free(ix);
	}
	if (e->pair) {
		/* the strongest pairs: the top few by selection (printing
		 * consumes the matrix) */
		int printed = 0;

		for (int t = 0; t < e->o.top; t++) {
			uint64_t best = 0, bi = 0;

			for (uint64_t i = 0; i < (uint64_t)e->nprocs * e->nprocs; i++)
				if (e->pair[i] > best)
					best = e->pair[i], bi = i;
			if (!best)
				break;
			if (!printed++)
				printf("\nProcesses sharing identical pages:\n");
			printf("  %d (%s) and %d (%s): %s\n", e->procs[bi / e->nprocs].info.pid,
			       sp_safe(e->procs[bi / e->nprocs].info.comm), e->procs[bi % e->nprocs].info.pid,
			       sp_safe(e->procs[bi % e->nprocs].info.comm), sp_fmt_pages(b1, sizeof(b1), best));
			e->pair[bi] = 0;
		}
	}
	if (e->o.domains)
		est_domains_print(e);
	if (partial) {
		printf("\nPARTIAL RESULT:\n");
		for (uint32_t i = 0; i < e->nprocs; i++) {
			const struct est_proc *p = &e->procs[i];

			if (p->status != EST_OK)
				printf("  pid %d (%s): %s%s\n", p->info.pid, sp_safe(p->info.comm),
				       status_name(p->status),
				       p->pages ? " during the scan: its pages so far are counted" : "");
			else if (p->vanished)
				printf("  pid %d (%s): %llu pages went away while being read (unmapped meanwhile)\n",
				       p->info.pid, sp_safe(p->info.comm), (unsigned long long)p->vanished);
		}
		if (e->oom)
			printf("  out of memory for the per-page records after %llu pages: the rest was not scanned\n",
			       (unsigned long long)e->npg);
	}
}

/* --- JSON ------------------------------------------------------------------- */

static void add_u(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

int est_print_json(struct est *e, int partial)
{
	json_object *root = json_object_new_object(), *pred = json_object_new_object();
	json_object *knobs = json_object_new_object(), *procs = json_object_new_array();
	json_object *vmas = json_object_new_array(), *st_o = json_object_new_object();
	json_object *already = json_object_new_object(), *pairs = json_object_new_array();
	const struct sp_model_result *r = &e->res;
	struct scan_time st;
	char addr[32];

	json_object_object_add(root, "partial", json_object_new_boolean(partial));
	json_object_object_add(knobs, "max_page_sharing", json_object_new_int64(e->o.max_page_sharing));
	json_object_object_add(knobs, "use_zero_pages", json_object_new_int(e->o.use_zero_pages));
	json_object_object_add(knobs, "merge_across_nodes", json_object_new_int(e->o.merge_across_nodes));
	json_object_object_add(knobs, "all_anon", json_object_new_boolean(e->o.all_anon));
	json_object_object_add(knobs, "thp_split_zero", json_object_new_boolean(e->o.thp_split_zero));
	json_object_object_add(knobs, "samples", json_object_new_int(e->o.samples));
	json_object_object_add(knobs, "interval", sp_json_double(e->o.interval));
	json_object_object_add(root, "model", knobs);

	add_u(pred, "pages_shared", r->pages_shared);
	add_u(pred, "pages_sharing", r->pages_sharing);
	add_u(pred, "ksm_zero_pages", r->ksm_zero_pages);
	add_u(pred, "stable_node_chains", r->stable_node_chains);
	add_u(pred, "stable_node_dups", r->stable_node_dups);
	json_object_object_add(pred, "general_profit", json_object_new_int64(r->general_profit));
	add_u(pred, "pages_scanned", r->pages_scanned);
	add_u(pred, "pages_volatile", e->volatile_pages);
	add_u(pred, "pages_unshared", r->pages_unshared);
	json_object_object_add(root, "predicted", pred);
	add_u(root, "saving_bytes", est_saved_pages(e) * 4096);
	add_u(root, "scanned_bytes", r->pages_scanned * 4096);
	add_u(root, "zero_pages", e->zero_pages);
	add_u(root, "thp_zero_pages", r->thp_zero_pages);
	add_u(already, "ksm_pages", e->already_ksm);
	add_u(already, "ksm_zero_pages", e->already_zero);
	json_object_object_add(root, "already_merged", already);

	scan_time(e, &st);
	json_object_object_add(st_o, "pages_to_scan", json_object_new_int64(e->host.pages_to_scan));
	json_object_object_add(st_o, "sleep_millisecs", json_object_new_int64(e->host.sleep_millisecs));
	json_object_object_add(st_o, "full_scan_seconds", sp_json_double(st.full_scan_s));
	json_object_object_add(st_o, "advisor_target_scan_time",
			       json_object_new_int64(e->host.advisor_target_scan_time));
	json_object_object_add(st_o, "pages_to_scan_for_target",
			       st.needed < 0 ? json_object_new_null() : json_object_new_int64(st.needed));
	json_object_object_add(root, "scan_time", st_o);

	for (uint32_t i = 0; i < e->nprocs; i++) {
		const struct est_proc *p = &e->procs[i];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "pid", json_object_new_int(p->info.pid));
		json_object_object_add(o, "comm", json_object_new_string(p->info.comm));
		json_object_object_add(o, "status", json_object_new_string(status_name(p->status)));
		json_object_object_add(o, "partial", json_object_new_boolean(p->partial || p->status != EST_OK));
		json_object_object_add(o, "ksm_merge_any", json_object_new_boolean(p->info.merge_any));
		add_u(o, "vmas", p->vmas);
		add_u(o, "pages", p->pages);
		add_u(o, "pages_volatile", p->volatile_pages);
		add_u(o, "zero_pages", p->zero);
		add_u(o, "already_ksm", p->ksm);
		add_u(o, "predicted_saving_pages", (uint64_t)(p->saving + 0.5));
		add_u(o, "predicted_saving_bytes", (uint64_t)(p->saving * 4096 + 0.5));
		json_object_array_add(procs, o);
	}
	json_object_object_add(root, "processes", procs);
	for (uint32_t i = 0; i < e->nvmas; i++) {
		const struct est_vma *v = &e->vmas[i];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "pid", json_object_new_int(e->procs[v->proc].info.pid));
		snprintf(addr, sizeof(addr), "%#lx", (unsigned long)v->start);
		json_object_object_add(o, "start", json_object_new_string(addr));
		snprintf(addr, sizeof(addr), "%#lx", (unsigned long)v->end);
		json_object_object_add(o, "end", json_object_new_string(addr));
		json_object_object_add(o, "name", json_object_new_string(v->name));
		add_u(o, "pages", v->pages);
		add_u(o, "pages_volatile", v->volatile_pages);
		add_u(o, "zero_pages", v->zero);
		add_u(o, "already_ksm", v->ksm);
		add_u(o, "predicted_saving_pages", (uint64_t)(v->saving + 0.5));
		json_object_array_add(vmas, o);
	}
	json_object_object_add(root, "vmas", vmas);
	if (e->pair)
		for (uint32_t p = 0; p < e->nprocs; p++)
			for (uint32_t q = p + 1; q < e->nprocs; q++) {
				uint64_t n = e->pair[(uint64_t)p * e->nprocs + q];
				json_object *o;

				if (!n)
					continue;
				o = json_object_new_object();
				json_object_object_add(o, "pid_a", json_object_new_int(e->procs[p].info.pid));
				json_object_object_add(o, "pid_b", json_object_new_int(e->procs[q].info.pid));
				add_u(o, "identical_pages", n);
				json_object_array_add(pairs, o);
			}
	json_object_object_add(root, "sharing", pairs);
	json_object_object_add(root, "scan_seconds", sp_json_double(e->scan_seconds));
	json_object_object_add(root, "cpu_seconds", sp_json_double(e->cpu_seconds));
	if (e->o.domains)
		est_domains_json(e, root);
	sp_json_print(stdout, root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	json_object_put(root);
	return 0;
}
