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

#endif /* SP_CLI_METRICS_H */
