/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - the engine's counters in the Prometheus text format, for an
 * application that embeds libsamepage and serves its own /metrics.
 *
 * Names follow the exporter's for the kernel (samepage exporter): the
 * kernel's counter name under the prefix samepage_engine_, _total for what
 * only grows, _bytes and _seconds in base units.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "samepage.h"

struct out {
	char *buf;
	size_t len, used;
	int overflow;
};

static void emit(struct out *o, const char *name, const char *type, const char *help, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(o->buf + o->used, o->len > o->used ? o->len - o->used : 0, "# HELP %s %s\n# TYPE %s %s\n%s ", name,
		     help, name, type, name);
	if (n < 0)
		return;
	o->used += (size_t)n;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + (o->used < o->len ? o->used : o->len), o->len > o->used ? o->len - o->used : 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	o->used += (size_t)n;
	n = snprintf(o->buf + (o->used < o->len ? o->used : o->len), o->len > o->used ? o->len - o->used : 0, "\n");
	o->used += n > 0 ? (size_t)n : 0;
}

#define U(o, name, type, help, v) emit(o, "samepage_engine_" name, type, help, "%" PRIu64, (uint64_t)(v))

SAMEPAGE_API int samepage_metrics(char *buf, size_t len)
{
	struct samepage_stats s;
	struct out o = {.buf = buf, .len = len};

	if (!buf || !len)
		return errno = EINVAL, -1;
	buf[0] = 0;
	if (samepage_stats(&s))
		return -1;
	U(&o, "pages_shared", "gauge", "Store pages in use (pages_shared).", s.pages_shared);
	U(&o, "pages_sharing", "gauge", "Pages sharing a store page, beyond the first (pages_sharing).",
	  s.pages_sharing);
	U(&o, "pages_unshared", "gauge", "Unique pages waiting in the unstable index (pages_unshared).",
	  s.pages_unshared);
	U(&o, "pages_volatile", "gauge", "Tracked pages changing too fast to merge (pages_volatile).",
	  s.pages_volatile);
	U(&o, "pages_scanned_total", "counter", "Pages the scanner visited (pages_scanned).", s.pages_scanned);
	U(&o, "pages_skipped_total", "counter", "Pages smart_scan skipped (pages_skipped).", s.pages_skipped);
	U(&o, "full_scans_total", "counter", "Full scans completed (full_scans).", s.full_scans);
	U(&o, "ksm_zero_pages", "gauge", "Pages dropped to the zero page (ksm_zero_pages).", s.ksm_zero_pages);
	U(&o, "stable_node_chains", "gauge", "Contents with more sharers than max_page_sharing.", s.stable_node_chains);
	U(&o, "stable_node_dups", "gauge", "Store pages in chains (stable_node_dups).", s.stable_node_dups);
	emit(&o, "samepage_engine_general_profit_bytes", "gauge",
	     "Bytes saved minus engine metadata and kernel memory of extra mappings (general_profit).", "%" PRId64,
	     s.general_profit);
	U(&o, "rmap_items", "gauge", "Tracked pages.", s.rmap_items);
	U(&o, "metadata_bytes", "gauge", "Engine memory for tracking.", s.metadata_bytes);
	U(&o, "mappings", "gauge", "Extra kernel mappings the merges created.", s.mappings);
	U(&o, "mappings_budget", "gauge", "Mappings the engine may still create under vm.max_map_count.",
	  s.mappings_budget);
	emit(&o, "samepage_engine_scan_cpu_seconds_total", "counter", "CPU time of the scanner threads.", "%.6f",
	     (double)s.scan_cpu_ns / 1e9);
	emit(&o, "samepage_engine_longest_batch_seconds", "gauge", "Longest uninterrupted scan call (scanner CPU).",
	     "%.6f", (double)s.longest_batch_ns / 1e9);
	U(&o, "batches_total", "counter", "Scan calls.", s.batches);
	U(&o, "batches_over_total", "counter", "Scan calls longer than batch_usecs.", s.batches_over);
	if (o.used >= len) {
		buf[len - 1] = 0;
		errno = ERANGE;
		return -1;
	}
	return 0;
}
