/* SPDX-License-Identifier: MIT */
/*
 * ksmview_json.c - a reading of the kernel's KSM as JSON (see ksmview.h).
 * Knobs and counters keep their sysfs names; sizes are in bytes, times in
 * seconds; a figure that cannot be computed is null, never a guess.
 */
#include <limits.h>
#include <math.h>

#include "cli/ksmview.h"
#include "cli/textsafe.h"

static struct json_object *num_or_null(int ok, double x)
{
	return ok ? sp_json_double(x) : NULL;
}

/* a count of bytes, saturated at LLONG_MAX; null when not known */
static struct json_object *bytes_or_null(int ok, double x)
{
	if (!ok || isnan(x))
		return NULL;
	return json_object_new_int64(x >= 9.2e18 ? LLONG_MAX : x <= -9.2e18 ? LLONG_MIN : (long long)x);
}

static int have(const struct sp_view *v, const char *name)
{
	return v->k.present[sp_knob_index(name)];
}

struct json_object *sp_view_knobs_json(const struct sp_view *v, int counters)
{
	struct json_object *o = json_object_new_object();
	char b[48];

	for (int i = 0; i < SP_KNOB_COUNT; i++) {
		if ((sp_knob_table[i].type == SP_KNOB_COUNTER) != counters)
			continue;
		if (v->k.invalid[i]) /* null here, its text under "invalid" */
			json_object_object_add(o, sp_knob_table[i].name, NULL);
		if (!v->k.present[i])
			continue;
		if (sp_knob_table[i].type == SP_KNOB_ENUM)
			json_object_object_add(o, sp_knob_table[i].name,
					       json_object_new_string(sp_ksm_writable_text(&v->k, i, b, sizeof(b))));
		else
			json_object_object_add(o, sp_knob_table[i].name, json_object_new_int64(v->k.val[i]));
	}
	if (counters)
		for (int i = 0; i < v->k.nextra; i++)
			json_object_object_add(o, v->k.extra_name[i], json_object_new_string(v->k.extra_text[i]));
	return o;
}

struct json_object *sp_view_savings_json(const struct sp_view *v)
{
	struct json_object *o = json_object_new_object();
	double ps = (double)v->page_size;
	double sharing = (double)sp_ksm_get(&v->k, "pages_sharing", 0);
	double shared = (double)sp_ksm_get(&v->k, "pages_shared", 0);
	double unshared = (double)sp_ksm_get(&v->k, "pages_unshared", 0);

	json_object_object_add(o, "page_size", json_object_new_int64(v->page_size));
	json_object_object_add(o, "saved_bytes", bytes_or_null(have(v, "pages_sharing"), sharing * ps));
	json_object_object_add(o, "saved_formula", json_object_new_string("pages_sharing * page_size"));
	json_object_object_add(o, "general_profit_bytes",
			       have(v, "general_profit") ? json_object_new_int64(sp_ksm_get(&v->k, "general_profit", 0))
							 : NULL);
	json_object_object_add(o, "general_profit_formula",
			       json_object_new_string("(pages_sharing + ksm_zero_pages) * page_size - "
						      "rmap_items * sizeof(rmap_item)"));
	json_object_object_add(o, "sharing_per_shared",
			       num_or_null(shared > 0 && have(v, "pages_sharing"), sharing / shared));
	json_object_object_add(o, "unshared_per_sharing",
			       num_or_null(sharing > 0 && have(v, "pages_unshared"), unshared / sharing));
	return o;
}

static struct json_object *ksmd_json(const struct sp_view *v, const struct sp_delta *d, const struct sp_scan_time *s)
{
	struct json_object *o = json_object_new_object();
	char b[256];
	int have = v->ksmd_pid > 0;

	json_object_object_add(o, "pid", have ? json_object_new_int(v->ksmd_pid) : NULL);
	json_object_object_add(o, "cpu_seconds", num_or_null(have, v->ksmd.cpu_s));
	json_object_object_add(o, "cpu_percent", num_or_null(have && d && d->valid, d ? d->ksmd_cpu_pct : 0));
	json_object_object_add(o, "interval_seconds", num_or_null(d && d->valid, d ? d->dt : 0));
	json_object_object_add(o, "allowed_cpus",
			       have ? json_object_new_string(sp_cpus_format(&v->ksmd.allowed, b, sizeof(b))) : NULL);
	json_object_object_add(o, "nice", have ? json_object_new_int(v->ksmd.nice) : NULL);
	sp_scan_time_json_add(o, s);
	return o;
}

void sp_scan_time_json_add(struct json_object *o, const struct sp_scan_time *s)
{
	json_object_object_add(o, "full_scan_seconds", num_or_null(s->seconds >= 0, s->seconds));
	json_object_object_add(o, "full_scan_method",
			       json_object_new_string(s->seconds < 0 ? "unknown"
						      : s->measured  ? "measured"
								     : "projection"));
	json_object_object_add(o, "full_scan_pages", json_object_new_int64(s->pages));
	json_object_object_add(o, "full_scan_how", json_object_new_string(s->how));
}

struct json_object *sp_view_rates_json(const struct sp_delta *d)
{
	struct json_object *o;

	if (!d || !d->valid)
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "interval_seconds", sp_json_double(d->dt));
	json_object_object_add(o, "merged_per_second", sp_json_double(d->merged_per_s));
	json_object_object_add(o, "cow_breaks_per_second", sp_json_double(d->cow_per_s));
	json_object_object_add(o, "scanned_per_second", sp_json_double(d->scanned_per_s));
	json_object_object_add(o, "full_scans_per_second", sp_json_double(d->scans_per_s));
	return o;
}

static struct json_object *procs_json(const struct sp_view *v, int top_n)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; i < v->users.n && i < (size_t)top_n; i++) {
		const struct sp_proc *p = &v->users.p[i];
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "pid", json_object_new_int(p->pid));
		json_object_object_add(o, "comm", json_object_new_string(p->comm));
		json_object_object_add(o, "ksm_merging_pages", json_object_new_int64(p->ksm_merging_pages));
		json_object_object_add(o, "ksm_zero_pages", json_object_new_int64(p->ksm_zero_pages));
		json_object_object_add(o, "ksm_rmap_items", json_object_new_int64(p->ksm_rmap_items));
		json_object_object_add(o, "ksm_process_profit", json_object_new_int64(p->ksm_process_profit));
		json_object_object_add(o, "ksm_merge_any", json_object_new_boolean(p->merge_any));
		json_object_object_add(o, "ksm_mergeable", json_object_new_boolean(p->mergeable));
		json_object_array_add(a, o);
	}
	return a;
}

struct json_object *sp_view_json(const struct sp_view *v, const struct sp_delta *d, const struct sp_scan_time *s,
				 int top_n)
{
	struct json_object *o = json_object_new_object(), *inv = json_object_new_object();
	char b[48];
	int am = sp_knob_index("advisor_mode");

	for (int i = 0; i < SP_KNOB_COUNT; i++)
		if (v->k.invalid[i])
			json_object_object_add(inv, sp_knob_table[i].name, json_object_new_string(v->k.text[i]));
	json_object_object_add(o, "knobs", sp_view_knobs_json(v, 0));
	json_object_object_add(o, "counters", sp_view_knobs_json(v, 1));
	json_object_object_add(o, "invalid", inv);
	json_object_object_add(o, "savings", sp_view_savings_json(v));
	json_object_object_add(o, "ksmd", ksmd_json(v, d, s));
	json_object_object_add(o, "advisor_mode",
			       v->k.present[am] ? json_object_new_string(sp_ksm_writable_text(&v->k, am, b, sizeof(b)))
						: NULL);
	json_object_object_add(o, "cow_ksm", v->cow_ksm >= 0 ? json_object_new_int64(v->cow_ksm) : NULL);
	json_object_object_add(o, "rates", sp_view_rates_json(d));
	json_object_object_add(o, "process_count", json_object_new_int64((long long)v->users.n));
	json_object_object_add(o, "processes_unreadable", json_object_new_int64((long long)v->users.denied));
	json_object_object_add(o, "processes", procs_json(v, top_n));
	return o;
}
