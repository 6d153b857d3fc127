/* SPDX-License-Identifier: MIT */
/*
 * metrics.h - a reading of the kernel's KSM in the Prometheus text format
 * (version 0.0.4), for `samepage exporter`.
 *
 * node_exporter's ksmd collector names come first and unchanged
 * (node_ksmd_*: full_scans as a _total counter, sleep in seconds), so its
 * dashboards keep working; what it lacks follows as samepage_ksm_* and
 * samepage_ksmd_*. Per-process series are bounded: the top_n processes by
 * profit get their own pid/comm labels, the rest are summed into one
 * series labelled comm="other", so cardinality is at most top_n + 1.
 */
#ifndef SP_CLI_METRICS_H
#define SP_CLI_METRICS_H

#include <stdio.h>

#include "cli/ksmview.h"

/* Writes every metric of v to f. */
void sp_metrics_write(FILE *f, const struct sp_view *v, int top_n);

/* The writer's pieces: " VALUE\n" (integers exact), the HELP and TYPE
 * lines, and a label value (valid UTF-8, with \\, \" and newline escaped). */
void sp_metric_value(FILE *f, double x);
void sp_metric_head(FILE *f, const char *name, const char *type, const char *help);
void sp_metric_label(FILE *f, const char *raw);

struct sp_dview;
/* samepaged's domains and clients as samepage_daemon_* (v NULL: it could
 * not be read: samepage_daemon_up 0); top_n clients by merging pages get
 * their own series, the rest are summed as pid="other". */
void sp_metrics_daemon_write(FILE *f, const struct sp_dview *v, int top_n);

#endif /* SP_CLI_METRICS_H */
