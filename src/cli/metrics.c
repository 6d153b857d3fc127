/* SPDX-License-Identifier: MIT */
/* metrics.c - the kernel's KSM as Prometheus metrics (see metrics.h). */
#include <math.h>
#include <string.h>

#include "cli/metrics.h"
#include "cli/textsafe.h"

/* integers exactly (up to 2^53, where doubles stop being exact), the rest
 * to 15 digits */
void sp_metric_value(FILE *f, double x)
{
	if (fabs(x) < 9007199254740992.0 && x == floor(x))
		fprintf(f, " %.0f\n", x);
	else
		fprintf(f, " %.15g\n", x);
}

void sp_metric_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(FILE *f, const char *name, const char *type, const char *help, double v)
{
	sp_metric_head(f, name, type, help);
	fputs(name, f);
	sp_metric_value(f, v);
}

/* a sysfs file as a metric, if this kernel has it; scale multiplies */
static void knob(FILE *f, const struct sp_view *v, const char *file, const char *name, const char *type,
		 const char *help, double scale)
{
	int i = sp_knob_index(file);

	if (i >= 0 && v->k.present[i])
		one(f, name, type, help, (double)v->k.val[i] * scale);
}

static void node_exporter_names(FILE *f, const struct sp_view *v)
{
	knob(f, v, "full_scans", "node_ksmd_full_scans_total", "counter", "ksmd full scans completed (full_scans).", 1);
	knob(f, v, "merge_across_nodes", "node_ksmd_merge_across_nodes", "gauge",
	     "1 if KSM merges pages across NUMA nodes (merge_across_nodes).", 1);
	knob(f, v, "pages_shared", "node_ksmd_pages_shared", "gauge", "KSM pages in use (pages_shared).", 1);
	knob(f, v, "pages_sharing", "node_ksmd_pages_sharing", "gauge",
	     "Pages mapped to a KSM page, i.e. saved (pages_sharing).", 1);
	knob(f, v, "pages_to_scan", "node_ksmd_pages_to_scan", "gauge", "Pages ksmd scans per batch (pages_to_scan).",
	     1);
	knob(f, v, "pages_unshared", "node_ksmd_pages_unshared", "gauge",
	     "Unique pages ksmd checks repeatedly (pages_unshared).", 1);
	knob(f, v, "pages_volatile", "node_ksmd_pages_volatile", "gauge",
	     "Pages changing too fast to merge (pages_volatile).", 1);
	knob(f, v, "run", "node_ksmd_run", "gauge", "KSM run state: 0 stopped, 1 merging, 2 unmerging (run).", 1);
	knob(f, v, "sleep_millisecs", "node_ksmd_sleep_seconds", "gauge",
	     "Seconds ksmd sleeps between batches (sleep_millisecs / 1000).", 1e-3);
}

static void more_counters(FILE *f, const struct sp_view *v)
{
	double ps = (double)v->page_size;

	knob(f, v, "pages_scanned", "samepage_ksm_pages_scanned_total", "counter", "Pages ksmd scanned.", 1);
	knob(f, v, "pages_skipped", "samepage_ksm_pages_skipped_total", "counter", "Pages smart_scan skipped.", 1);
	knob(f, v, "ksm_zero_pages", "samepage_ksm_zero_pages", "gauge",
	     "Empty pages KSM mapped to the zero page (ksm_zero_pages).", 1);
	knob(f, v, "stable_node_chains", "samepage_ksm_stable_node_chains", "gauge",
	     "KSM pages that reached max_page_sharing (stable_node_chains).", 1);
	knob(f, v, "stable_node_dups", "samepage_ksm_stable_node_dups", "gauge",
	     "KSM pages in stable node chains (stable_node_dups).", 1);
	knob(f, v, "general_profit", "samepage_ksm_general_profit_bytes", "gauge",
	     "Bytes saved minus the kernel memory of rmap items (general_profit).", 1);
	if (v->k.present[sp_knob_index("pages_sharing")])
		one(f, "samepage_ksm_saved_bytes", "gauge", "pages_sharing times the page size.",
		    (double)sp_ksm_get(&v->k, "pages_sharing", 0) * ps);
	knob(f, v, "max_page_sharing", "samepage_ksm_max_page_sharing", "gauge", "Most sharers of one KSM page.", 1);
	knob(f, v, "use_zero_pages", "samepage_ksm_use_zero_pages", "gauge", "1 if empty pages map the zero page.", 1);
	knob(f, v, "smart_scan", "samepage_ksm_smart_scan", "gauge", "1 if smart_scan skips pages that stay unique.",
	     1);
	knob(f, v, "stable_node_chains_prune_millisecs", "samepage_ksm_stable_node_chains_prune_seconds", "gauge",
	     "Seconds between prunes of stale chain dups.", 1e-3);
	if (v->cow_ksm >= 0)
		one(f, "samepage_ksm_cow_total", "counter", "Writes that broke a KSM merge (/proc/vmstat cow_ksm).",
		    (double)v->cow_ksm);
	if (v->ksmd_pid > 0)
		one(f, "samepage_ksmd_cpu_seconds_total", "counter", "CPU time of the ksmd thread (utime + stime).",
		    v->ksmd.cpu_s);
}

static void advisor(FILE *f, const struct sp_view *v)
{
	int i = sp_knob_index("advisor_mode");

	if (!v->k.present[i])
		return;
	sp_metric_head(f, "samepage_ksm_advisor_mode", "gauge", "1 for the advisor mode in effect (advisor_mode).");
	fprintf(f, "samepage_ksm_advisor_mode{mode=\"none\"} %d\n", v->k.val[i] == 0);
	fprintf(f, "samepage_ksm_advisor_mode{mode=\"scan-time\"} %d\n", v->k.val[i] == 1);
	knob(f, v, "advisor_target_scan_time", "samepage_ksm_advisor_target_scan_seconds", "gauge",
	     "Advisor: seconds a full scan should take.", 1);
	knob(f, v, "advisor_max_cpu", "samepage_ksm_advisor_max_cpu_ratio", "gauge",
	     "Advisor: ceiling on ksmd CPU, as a fraction of one CPU.", 0.01);
	knob(f, v, "advisor_min_pages_to_scan", "samepage_ksm_advisor_min_pages_to_scan", "gauge",
	     "Advisor: lowest pages_to_scan.", 1);
	knob(f, v, "advisor_max_pages_to_scan", "samepage_ksm_advisor_max_pages_to_scan", "gauge",
	     "Advisor: highest pages_to_scan.", 1);
}

/* a label value: valid UTF-8 (sp_text), with \\, \" and newline escaped */
void sp_metric_label(FILE *f, const char *raw)
{
	char buf[256];
	const char *s = sp_text(buf, sizeof(buf), raw, SP_TEXT_CONTROLS);

	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void proc_series(FILE *f, const struct sp_view *v, int top_n, const char *name, const char *help, int field)
{
	double other = 0;
	size_t n = v->users.n;

	sp_metric_head(f, name, "gauge", help);
	for (size_t i = 0; i < n; i++) {
		const struct sp_proc *p = &v->users.p[i];
		double x = field == 0	? (double)p->ksm_process_profit
			   : field == 1 ? (double)p->ksm_merging_pages
					: (double)p->ksm_zero_pages;

		if (i >= (size_t)top_n) {
			other += x;
			continue;
		}
		fprintf(f, "%s{pid=\"%d\",comm=\"", name, p->pid);
		sp_metric_label(f, p->comm);
		fputs("\"}", f);
		sp_metric_value(f, x);
	}
	if (n > (size_t)top_n) {
		fprintf(f, "%s{pid=\"other\",comm=\"other\"}", name);
		sp_metric_value(f, other);
	}
}

static void processes(FILE *f, const struct sp_view *v, int top_n)
{
	one(f, "samepage_ksm_processes", "gauge", "Processes using KSM (from /proc/*/ksm_stat).", (double)v->users.n);
	proc_series(f, v, top_n, "samepage_ksm_process_profit_bytes",
		    "ksm_process_profit per process; beyond the top ones summed as comm=\"other\".", 0);
	proc_series(f, v, top_n, "samepage_ksm_process_merging_pages",
		    "ksm_merging_pages per process; beyond the top ones summed as comm=\"other\".", 1);
	proc_series(f, v, top_n, "samepage_ksm_process_zero_pages",
		    "ksm_zero_pages per process; beyond the top ones summed as comm=\"other\".", 2);
}

/* files that held no valid value: left out above, named here */
static void invalid(FILE *f, const struct sp_view *v)
{
	if (!v->k.ninvalid)
		return;
	sp_metric_head(f, "samepage_ksm_invalid", "gauge",
		       "1 for each KSM file whose text is not a valid value (its metric is left out).");
	for (int i = 0; i < SP_KNOB_COUNT; i++)
		if (v->k.invalid[i])
			fprintf(f, "samepage_ksm_invalid{file=\"%s\"} 1\n", sp_knob_table[i].name);
}

void sp_metrics_write(FILE *f, const struct sp_view *v, int top_n)
{
	invalid(f, v);
	node_exporter_names(f, v);
	more_counters(f, v);
	advisor(f, v);
	processes(f, v, top_n);
}
