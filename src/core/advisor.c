/* SPDX-License-Identifier: MIT */
/*
 * advisor.c - advisor_mode=scan-time: pages_to_scan chosen to make a full
 * scan take advisor_target_scan_time seconds, within a CPU budget.
 *
 * The kernel's algorithm, restated: at the end of every full scan, with
 * scan_time the scan's wall time in whole seconds (at least 1) and cpu% the
 * scanner's CPU over that time (at least 1),
 *
 *   factor  = target * 100 / scan_time                  (at least 1)
 *   change  = ewma(previous change, scan_time * 100 / previous scan_time)
 *             with a 30% weight on the new value        (at least 1)
 *   pages   = pages_to_scan * 100 / factor * change / 100
 *   cost    = pages_to_scan / cpu%                      (at least 1)
 *   pages   = clamp(pages, cost * 10, cost * advisor_max_cpu),
 *             then at most advisor_max_pages_to_scan
 *
 * Switching the mode resets the state: pages_to_scan goes back to 100 for
 * none and to advisor_min_pages_to_scan for scan-time. CPU is the scanner
 * thread's own CPU time, from the backend.
 */
#include "core/core.h"

#define EWMA_WEIGHT	30
#define ADVISOR_MIN_CPU 10

void sp_core_advisor_reset(struct sp_core *c)
{
	struct sp_advisor *a = &c->advisor;

	a->started = 0;
	a->scan_time = 0;
	a->change = 0;
	a->cpu_ns = 0;
	c->knobs.pages_to_scan =
		c->knobs.advisor_mode == SP_ADVISOR_SCAN_TIME ? c->knobs.advisor_min_pages_to_scan : 100;
}

void sp_core_advisor_start(struct sp_core *c)
{
	if (c->knobs.advisor_mode != SP_ADVISOR_SCAN_TIME)
		return;
	c->advisor.start_ns = sp_core_now(c);
	c->advisor.started = 1;
}

void sp_core_advisor_stop(struct sp_core *c)
{
	struct sp_advisor *a = &c->advisor;
	uint64_t scan_time, cpu, cpu_ms, cpu_pct, last, factor, change, pages, cost;

	if (c->knobs.advisor_mode != SP_ADVISOR_SCAN_TIME || !a->started)
		return;
	scan_time = (sp_core_now(c) - a->start_ns) / 1000000000ull;
	scan_time = scan_time ? scan_time : 1;
	cpu = sp_core_cpu(c);
	cpu_ms = (cpu - a->cpu_ns) / 1000000ull;
	cpu_pct = cpu_ms * 100 / (scan_time * 1000);
	cpu_pct = cpu_pct ? cpu_pct : 1;
	last = a->scan_time ? a->scan_time : scan_time;

	factor = (uint64_t)c->knobs.advisor_target_scan_time * 100 / scan_time;
	factor = factor ? factor : 1;
	change = scan_time * 100 / last;
	change = change ? change : 1;
	change = ((100 - EWMA_WEIGHT) * a->change + EWMA_WEIGHT * change) / 100;

	pages = (uint64_t)c->knobs.pages_to_scan * 100 / factor;
	pages = pages * change / 100;
	cost = c->knobs.pages_to_scan / cpu_pct;
	cost = cost ? cost : 1;
	if (pages > cost * c->knobs.advisor_max_cpu)
		pages = cost * c->knobs.advisor_max_cpu;
	if (pages < cost * ADVISOR_MIN_CPU)
		pages = cost * ADVISOR_MIN_CPU;
	if (pages > c->knobs.advisor_max_pages_to_scan)
		pages = c->knobs.advisor_max_pages_to_scan;

	a->change = change;
	a->scan_time = scan_time;
	a->cpu_ns = cpu;
	c->knobs.pages_to_scan = (uint32_t)pages;
}
