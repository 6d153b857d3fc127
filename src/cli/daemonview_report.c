/* SPDX-License-Identifier: MIT */
/*
 * daemonview_report.c - samepaged's domains and clients for people (status,
 * top) and as JSON, with the pieces of the kernel's report (see
 * daemonview.h).
 */
#include <math.h>
#include <string.h>

#include "cli/daemonview.h"
#include "cli/textsafe.h"
#include "cli/units.h"
#include "core/memory.h"

static int shown(const struct sp_dview_domain *d, const char *only)
{
	return !only || !strcmp(d->name, only);
}

static size_t clients_shown(const struct sp_dview *v, const char *only)
{
	size_t n = 0;

	for (size_t i = 0; i < v->ncli; i++)
		n += !only || !strcmp(v->cli[i].domain, only);
	return n;
}

static void header(FILE *f, const struct sp_dview *v, const struct sp_dview *prev)
{
	int hidden = sp_dview_hidden(v);

	fprintf(f, "samepaged pid %d at %s: %zu domain%s", v->pid, sp_safe(v->socket), v->ndom + (size_t)hidden,
		v->ndom + (size_t)hidden == 1 ? "" : "s");
	if (hidden)
		fprintf(f, " (%zu shown to this user)", v->ndom);
	fprintf(f, ", %d connection%s, %zu client%s", v->connections, v->connections == 1 ? "" : "s", v->ncli,
		v->ncli == 1 ? "" : "s");
	if (prev && prev->pid == v->pid && v->t > prev->t)
		fprintf(f, "; rates over %.1f s", v->t - prev->t);
	fprintf(f, "\n");
}

static const char *rate_text(char *b, size_t len, const struct sp_delta *d, double x)
{
	if (!d->valid || isnan(x))
		snprintf(b, len, "-");
	else
		snprintf(b, len, "%.0f", x);
	return b;
}

static const char *scan_text(char *b, size_t len, const struct sp_scan_time *s)
{
	if (s->seconds < 0 || (!s->measured && !s->pages))
		snprintf(b, len, "-");
	else if (isinf(s->seconds))
		snprintf(b, len, "never");
	else
		sp_fmt_duration(b, len, s->seconds);
	return b;
}

/* one line per domain: its state, savings and rates */
static void domain_table(FILE *f, const struct sp_dview *prev, const struct sp_dview *v, const char *only)
{
	fprintf(f, "  %-20s %3s %7s %11s %11s %11s %10s %8s %9s %10s\n", "DOMAIN", "RUN", "CLIENTS", "REGISTERED",
		"SAVED", "PROFIT", "SCANNED/s", "SCANS/s", "MERGED/s", "FULL SCAN");
	for (size_t i = 0; i < v->ndom; i++) {
		const struct sp_dview_domain *d = &v->dom[i];
		const struct sp_ksm *k = &d->v.k;
		struct sp_delta dl;
		struct sp_scan_time s;
		char reg[32], saved[32], profit[32], sc[32], fs[32], mg[32], ft[32], run[8];

		if (!shown(d, only))
			continue;
		sp_dview_delta(prev, v, d, &dl, &s);
		snprintf(run, sizeof(run), "%lld", sp_ksm_get(k, "run", -1));
		if (dl.valid && !isnan(dl.scans_per_s))
			snprintf(fs, sizeof(fs), "%.1f", dl.scans_per_s);
		else
			snprintf(fs, sizeof(fs), "-");
		fprintf(f, "  %-20s %3s %7lld %11s %11s %11s %10s %8s %9s %10s\n", sp_safe(d->name),
			sp_ksm_get(k, "run", -1) >= 0 ? run : "?", d->clients,
			sp_fmt_bytes(reg, sizeof(reg), (double)d->registered_bytes),
			sp_fmt_bytes(saved, sizeof(saved),
				     (double)sp_ksm_get(k, "pages_sharing", 0) * (double)d->v.page_size),
			sp_fmt_bytes(profit, sizeof(profit), (double)sp_ksm_get(k, "general_profit", 0)),
			rate_text(sc, sizeof(sc), &dl, dl.scanned_per_s), fs,
			rate_text(mg, sizeof(mg), &dl, dl.merged_per_s), scan_text(ft, sizeof(ft), &s));
	}
}

static void client_table(FILE *f, const struct sp_dview *v, const char *only, int top_n)
{
	size_t total = clients_shown(v, only), n = 0;
	char b[32], r[32];

	fprintf(f, "Clients of samepaged (by merging pages): %zu\n", total);
	if (!top_n || !total)
		return;
	fprintf(f, "  %7s %6s  %-16s %-20s %10s %8s %11s %11s\n", "PID", "UID", "COMM", "DOMAIN", "MERGING", "ZERO",
		"PROFIT", "REGISTERED");
	for (size_t i = 0; i < v->ncli && n < (size_t)top_n; i++) {
		const struct sp_dview_client *c = &v->cli[i];

		if (only && strcmp(c->domain, only))
			continue;
		n++;
		fprintf(f, "  %7d %6lld  %-16s %-20s %10lld %8lld %11s %11s\n", c->pid, c->uid, sp_safe(c->comm),
			sp_safe(c->domain), c->merging_pages, c->zero_pages,
			sp_fmt_bytes(b, sizeof(b), (double)c->profit),
			sp_fmt_bytes(r, sizeof(r), (double)c->registered_pages * (double)SP_PAGE_SIZE));
	}
	if (n < total)
		fprintf(f, "  ... %zu more (--top N)\n", total - n);
}

static void domain_details(FILE *f, const struct sp_dview *prev, const struct sp_dview *v,
			   const struct sp_dview_domain *d)
{
	const struct sp_view *dv = &d->v;
	long long run = sp_ksm_get(&dv->k, "run", -1);
	struct sp_delta dl;
	struct sp_scan_time s;
	char b[32];

	sp_dview_delta(prev, v, d, &dl, &s);
	fprintf(f, "\nDomain %s: run=", sp_safe(d->name));
	if (run >= 0)
		fprintf(f, "%lld, %s", run, sp_view_run_word(run));
	else
		fprintf(f, "?");
	fprintf(f, "; %lld client%s, %s registered\n", d->clients, d->clients == 1 ? "" : "s",
		sp_fmt_bytes(b, sizeof(b), (double)d->registered_bytes));
	if (dv->k.ninvalid)
		fprintf(f, "WARNING: %d value%s from samepaged %s not valid: marked INVALID below\n", dv->k.ninvalid,
			dv->k.ninvalid == 1 ? "" : "s", dv->k.ninvalid == 1 ? "is" : "are");
	sp_view_print_savings(f, dv, "the engine's figure");
	fprintf(f, "Scanner\n");
	sp_view_print_scan_time(f, &s);
	sp_view_print_advisor(f, dv);
	if (dl.valid) {
		fprintf(f, "Rates (over %.1f s)\n", dl.dt);
		sp_view_print_rate(f, "merged/s", dl.merged_per_s, "d(pages_sharing)/dt");
		sp_view_print_rate(f, "scanned/s", dl.scanned_per_s, "d(pages_scanned)/dt");
		if (isnan(dl.scans_per_s))
			fprintf(f, "  %-18s %10s   d(full_scans)/dt\n", "full scans/s", "-");
		else
			fprintf(f, "  %-18s %10.2f   d(full_scans)/dt\n", "full scans/s", dl.scans_per_s);
	}
	sp_view_print_knobs(f, dv, 0);
	sp_view_print_knobs(f, dv, 1);
}

void sp_dview_print(FILE *f, const struct sp_dview *prev, const struct sp_dview *now, const char *only, int top_n)
{
	header(f, now, prev);
	if (!now->ndom && sp_dview_hidden(now)) {
		fprintf(f, "No domain shown: only root and samepaged's admin group see other users' domains.\n");
	} else if (!now->ndom) {
		fprintf(f, "No domain yet: domains are made when their first client connects.\n");
	} else {
		fprintf(f, "Domains\n");
		domain_table(f, prev, now, only);
		for (size_t i = 0; i < now->ndom; i++)
			if (shown(&now->dom[i], only))
				domain_details(f, prev, now, &now->dom[i]);
	}
	if (top_n) {
		fprintf(f, "\n");
		client_table(f, now, only, top_n);
	}
}

void sp_dview_print_top(FILE *f, const struct sp_dview *prev, const struct sp_dview *now, const char *only, int top_n)
{
	header(f, now, prev);
	fprintf(f, "\n");
	domain_table(f, prev, now, only);
	fprintf(f, "\n");
	client_table(f, now, only, top_n);
}

static struct json_object *scan_json(const struct sp_scan_time *s)
{
	struct json_object *o = json_object_new_object();

	sp_scan_time_json_add(o, s);
	return o;
}

static struct json_object *domain_json(const struct sp_dview *prev, const struct sp_dview *v,
				       const struct sp_dview_domain *d)
{
	struct json_object *o = json_object_new_object(), *inv = json_object_new_object();
	struct sp_delta dl;
	struct sp_scan_time s;

	sp_dview_delta(prev, v, d, &dl, &s);
	for (int i = 0; i < SP_KNOB_COUNT; i++)
		if (d->v.k.invalid[i])
			json_object_object_add(inv, sp_knob_table[i].name, json_object_new_string(d->v.k.text[i]));
	json_object_object_add(o, "name", json_object_new_string(d->name));
	json_object_object_add(o, "clients", json_object_new_int64(d->clients));
	json_object_object_add(o, "registered_bytes", json_object_new_int64(d->registered_bytes));
	json_object_object_add(o, "knobs", sp_view_knobs_json(&d->v, 0));
	json_object_object_add(o, "counters", sp_view_knobs_json(&d->v, 1));
	json_object_object_add(o, "invalid", inv);
	json_object_object_add(o, "savings", sp_view_savings_json(&d->v));
	json_object_object_add(o, "scanner", scan_json(&s));
	json_object_object_add(o, "rates", sp_view_rates_json(&dl));
	return o;
}

static struct json_object *client_json(const struct sp_dview_client *c)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "pid", json_object_new_int(c->pid));
	json_object_object_add(o, "uid", json_object_new_int64(c->uid));
	json_object_object_add(o, "comm", json_object_new_string(c->comm));
	json_object_object_add(o, "domain", json_object_new_string(c->domain));
	json_object_object_add(o, "ksm_rmap_items", json_object_new_int64(c->rmap_items));
	json_object_object_add(o, "ksm_merging_pages", json_object_new_int64(c->merging_pages));
	json_object_object_add(o, "ksm_zero_pages", json_object_new_int64(c->zero_pages));
	json_object_object_add(o, "ksm_process_profit", json_object_new_int64(c->profit));
	json_object_object_add(o, "registered_pages", json_object_new_int64(c->registered_pages));
	return o;
}

struct json_object *sp_dview_json(const struct sp_dview *prev, const struct sp_dview *now, const char *only, int top_n)
{
	struct json_object *o = json_object_new_object(), *doms = json_object_new_array(),
			   *clis = json_object_new_array();
	size_t n = 0;

	for (size_t i = 0; i < now->ndom; i++)
		if (shown(&now->dom[i], only))
			json_object_array_add(doms, domain_json(prev, now, &now->dom[i]));
	for (size_t i = 0; i < now->ncli && n < (size_t)top_n; i++)
		if (!only || !strcmp(now->cli[i].domain, only)) {
			json_object_array_add(clis, client_json(&now->cli[i]));
			n++;
		}
	json_object_object_add(o, "socket", json_object_new_string(now->socket));
	json_object_object_add(o, "daemon_pid", json_object_new_int(now->pid));
	json_object_object_add(o, "connections", json_object_new_int(now->connections));
	json_object_object_add(o, "interval_seconds",
			       prev && prev->pid == now->pid && now->t > prev->t ? sp_json_double(now->t - prev->t)
										 : NULL);
	json_object_object_add(o, "domain_count", json_object_new_int64((long long)now->ndom + sp_dview_hidden(now)));
	json_object_object_add(o, "domains_hidden", json_object_new_int(sp_dview_hidden(now)));
	json_object_object_add(o, "domains", doms);
	json_object_object_add(o, "client_count", json_object_new_int64((long long)clients_shown(now, only)));
	json_object_object_add(o, "clients", clis);
	return o;
}
