/* SPDX-License-Identifier: MIT */
/*
 * metrics_daemon.c - samepaged's domains and clients as Prometheus metrics
 * (see metrics.h): node_exporter-style names under samepage_daemon_, the
 * kernel's names for the same knobs and counters (pages_sharing, ...),
 * each series labelled with its domain; per client, gauges labelled pid,
 * domain and comm. Times in seconds, sizes in bytes, counters _total.
 */
#include <string.h>

#include "cli/daemonview.h"
#include "cli/metrics.h"
#include "core/memory.h"

struct dmetric {
	const char *key, *name, *type, *help;
	double scale;
};

static const struct dmetric domain_metrics[] = {
	{"run", "samepage_daemon_run", "gauge", "Run state of the domain: 0 stopped, 1 merging, 2 unmerging (run).", 1},
	{"pages_to_scan", "samepage_daemon_pages_to_scan", "gauge", "Pages the domain's scanner scans per batch.", 1},
	{"sleep_millisecs", "samepage_daemon_sleep_seconds", "gauge",
	 "Seconds the domain's scanner sleeps between batches (sleep_millisecs / 1000).", 1e-3},
	{"max_page_sharing", "samepage_daemon_max_page_sharing", "gauge", "Most sharers of one merged page.", 1},
	{"merge_across_nodes", "samepage_daemon_merge_across_nodes", "gauge",
	 "1 if pages are merged across NUMA nodes.", 1},
	{"use_zero_pages", "samepage_daemon_use_zero_pages", "gauge", "1 if empty pages map the zero page.", 1},
	{"smart_scan", "samepage_daemon_smart_scan", "gauge", "1 if smart_scan skips pages that stay unique.", 1},
	{"stable_node_chains_prune_millisecs", "samepage_daemon_stable_node_chains_prune_seconds", "gauge",
	 "Seconds between prunes of stale chain dups.", 1e-3},
	{"advisor_target_scan_time", "samepage_daemon_advisor_target_scan_seconds", "gauge",
	 "Advisor: seconds a full scan should take.", 1},
	{"advisor_max_cpu", "samepage_daemon_advisor_max_cpu_ratio", "gauge",
	 "Advisor: ceiling on the scanner's CPU, as a fraction of one CPU.", 0.01},
	{"advisor_min_pages_to_scan", "samepage_daemon_advisor_min_pages_to_scan", "gauge",
	 "Advisor: lowest pages_to_scan.", 1},
	{"advisor_max_pages_to_scan", "samepage_daemon_advisor_max_pages_to_scan", "gauge",
	 "Advisor: highest pages_to_scan.", 1},
	{"batch_usecs", "samepage_daemon_batch_seconds", "gauge",
	 "Longest uninterrupted batch of the scanner (batch_usecs / 1e6).", 1e-6},
	{"scan_threads", "samepage_daemon_scan_threads", "gauge", "Threads that read and hash pages.", 1},
	{"sched_idle", "samepage_daemon_sched_idle", "gauge", "1 if the scanner runs as SCHED_IDLE.", 1},
	{"full_scans", "samepage_daemon_full_scans_total", "counter", "Full scans completed (full_scans).", 1},
	{"pages_scanned", "samepage_daemon_pages_scanned_total", "counter", "Pages scanned (pages_scanned).", 1},
	{"pages_skipped", "samepage_daemon_pages_skipped_total", "counter", "Pages smart_scan skipped.", 1},
	{"pages_shared", "samepage_daemon_pages_shared", "gauge", "Merged pages in use (pages_shared).", 1},
	{"pages_sharing", "samepage_daemon_pages_sharing", "gauge",
	 "Pages mapped to a merged page, i.e. saved (pages_sharing).", 1},
	{"pages_unshared", "samepage_daemon_pages_unshared", "gauge",
	 "Unique pages checked repeatedly (pages_unshared).", 1},
	{"pages_volatile", "samepage_daemon_pages_volatile", "gauge",
	 "Pages changing too fast to merge (pages_volatile).", 1},
	{"ksm_zero_pages", "samepage_daemon_zero_pages", "gauge",
	 "Empty pages mapped to the zero page (ksm_zero_pages).", 1},
	{"stable_node_chains", "samepage_daemon_stable_node_chains", "gauge",
	 "Merged pages that reached max_page_sharing (stable_node_chains).", 1},
	{"stable_node_dups", "samepage_daemon_stable_node_dups", "gauge",
	 "Merged pages in stable node chains (stable_node_dups).", 1},
	{"general_profit", "samepage_daemon_general_profit_bytes", "gauge",
	 "Bytes saved minus the engine's memory for its rmap items (general_profit).", 1},
};

static void domain_label(FILE *f, const char *name, const struct sp_dview_domain *d)
{
	fprintf(f, "%s{domain=\"", name);
	sp_metric_label(f, d->name);
	fputs("\"}", f);
}

static void per_domain(FILE *f, const struct sp_dview *v, const struct dmetric *m)
{
	const struct sp_knob *k = sp_knob_find(m->key);
	int i = k ? (int)(k - sp_knob_table) : -1, any = 0;

	for (size_t j = 0; i >= 0 && j < v->ndom; j++) {
		const struct sp_dview_domain *d = &v->dom[j];

		if (!d->v.k.present[i])
			continue; /* an invalid value is left out, never shown as 0 */
		if (!any++)
			sp_metric_head(f, m->name, m->type, m->help);
		domain_label(f, m->name, d);
		sp_metric_value(f, (double)d->v.k.val[i] * m->scale);
	}
}

static void domains(FILE *f, const struct sp_dview *v)
{
	int am = (int)(sp_knob_find("advisor_mode") - sp_knob_table), any = 0;

	if (!v->ndom)
		return;
	sp_metric_head(f, "samepage_daemon_clients", "gauge", "Clients attached to the domain.");
	for (size_t j = 0; j < v->ndom; j++) {
		domain_label(f, "samepage_daemon_clients", &v->dom[j]);
		sp_metric_value(f, (double)v->dom[j].clients);
	}
	sp_metric_head(f, "samepage_daemon_registered_bytes", "gauge", "Bytes the domain's clients registered.");
	for (size_t j = 0; j < v->ndom; j++) {
		domain_label(f, "samepage_daemon_registered_bytes", &v->dom[j]);
		sp_metric_value(f, (double)v->dom[j].registered_bytes);
	}
	for (size_t j = 0; j < v->ndom; j++) {
		const struct sp_ksm *k = &v->dom[j].v.k;

		if (!k->present[sp_knob_index("pages_sharing")])
			continue;
		if (!any++)
			sp_metric_head(f, "samepage_daemon_saved_bytes", "gauge", "pages_sharing times the page size.");
		domain_label(f, "samepage_daemon_saved_bytes", &v->dom[j]);
		sp_metric_value(f, (double)sp_ksm_get(k, "pages_sharing", 0) * (double)SP_PAGE_SIZE);
	}
	for (size_t i = 0; i < sizeof(domain_metrics) / sizeof(domain_metrics[0]); i++)
		per_domain(f, v, &domain_metrics[i]);
	any = 0;
	for (size_t j = 0; j < v->ndom; j++) {
		const struct sp_dview_domain *d = &v->dom[j];
		const struct sp_knob *k = &sp_knob_table[am];

		if (!d->v.k.present[am])
			continue;
		if (!any++)
			sp_metric_head(f, "samepage_daemon_advisor_mode", "gauge",
				       "1 for the advisor mode in effect in the domain (advisor_mode).");
		for (long long w = 0; k->words[w]; w++) {
			fprintf(f, "samepage_daemon_advisor_mode{domain=\"");
			sp_metric_label(f, d->name);
			fprintf(f, "\",mode=\"%s\"}", k->words[w]);
			sp_metric_value(f, d->v.k.val[am] == w);
		}
	}
}

static double client_field(const struct sp_dview_client *c, int field)
{
	switch (field) {
	case 0:
		return (double)c->merging_pages;
	case 1:
		return (double)c->zero_pages;
	case 2:
		return (double)c->profit;
	case 3:
		return (double)c->rmap_items;
	}
	return (double)c->registered_pages * (double)SP_PAGE_SIZE;
}

static void client_series(FILE *f, const struct sp_dview *v, int top_n, const char *name, const char *help, int field)
{
	double other = 0;

	sp_metric_head(f, name, "gauge", help);
	for (size_t i = 0; i < v->ncli; i++) {
		const struct sp_dview_client *c = &v->cli[i];

		if (i >= (size_t)top_n) {
			other += client_field(c, field);
			continue;
		}
		fprintf(f, "%s{pid=\"%d\",domain=\"", name, c->pid);
		sp_metric_label(f, c->domain);
		fputs("\",comm=\"", f);
		sp_metric_label(f, c->comm);
		fputs("\"}", f);
		sp_metric_value(f, client_field(c, field));
	}
	if (v->ncli > (size_t)top_n) {
		fprintf(f, "%s{pid=\"other\",domain=\"other\",comm=\"other\"}", name);
		sp_metric_value(f, other);
	}
}

static void clients(FILE *f, const struct sp_dview *v, int top_n)
{
	if (!v->ncli)
		return;
	client_series(f, v, top_n, "samepage_daemon_client_merging_pages",
		      "ksm_merging_pages per client; beyond the top ones summed as pid=\"other\".", 0);
	client_series(f, v, top_n, "samepage_daemon_client_zero_pages",
		      "ksm_zero_pages per client; beyond the top ones summed as pid=\"other\".", 1);
	client_series(f, v, top_n, "samepage_daemon_client_profit_bytes",
		      "ksm_process_profit per client; beyond the top ones summed as pid=\"other\".", 2);
	client_series(f, v, top_n, "samepage_daemon_client_rmap_items",
		      "ksm_rmap_items per client; beyond the top ones summed as pid=\"other\".", 3);
	client_series(f, v, top_n, "samepage_daemon_client_registered_bytes",
		      "Bytes the client registered; beyond the top ones summed as pid=\"other\".", 4);
}

void sp_metrics_daemon_write(FILE *f, const struct sp_dview *v, int top_n)
{
	sp_metric_head(f, "samepage_daemon_up", "gauge", "1 if samepaged answered STATUS on its control socket.");
	fprintf(f, "samepage_daemon_up %d\n", v != NULL);
	if (!v)
		return;
	sp_metric_head(f, "samepage_daemon_domains", "gauge", "Merge domains of samepaged.");
	fputs("samepage_daemon_domains", f);
	sp_metric_value(f, (double)v->ndom);
	sp_metric_head(f, "samepage_daemon_connections", "gauge", "Connections to samepaged's control socket.");
	fputs("samepage_daemon_connections", f);
	sp_metric_value(f, (double)v->connections);
	domains(f, v);
	clients(f, v, top_n);
}
