/* SPDX-License-Identifier: MIT */
/*
 * estimate_domains.c - `samepage estimate --domains`: what samepaged would
 * save, merging only inside its merge domains, next to what the kernel's
 * KSM (one domain, host-wide) would save on the same targets.
 *
 * Each target is put where samepaged would put it: samepaged's own parser
 * and placement rules (src/daemon/config.c) on an sd_who built from
 * /proc/PID/status (effective uid and gid, supplementary groups) and the
 * cgroup v2 line of /proc/PID/cgroup; no label. A target the config
 * refuses is "not admitted": counted out of every domain.
 *
 * The records are scanned once. For each domain, its records are copied
 * into one buffer (the size of the largest domain), keyed for the domain's
 * knobs and run through the model: pages of two domains never meet. A key
 * as scanned tells an all-zero page (SP_MODEL_ZERO, SP_MODEL_THP_ZERO or
 * the zero page's hash) from any other, so use_zero_pages can differ per
 * domain. merge_across_nodes too: on a host with more than one NUMA node
 * where a model has it 0, the scan keeps keys without the node and the
 * node of each record beside it (est.nodes), and each model mixes it in
 * or not; the host-wide keys are made from them last, before est_model.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/estimate.h"
#include "cli/textsafe.h"
#include "cli/units.h"
#include "core/knobs.h"
#include "daemon/daemon.h"

/* --- the config and placement ------------------------------------------------ */

int est_domains_load(struct est *e)
{
	char err[1200];

	if (!e->o.domains)
		e->o.domains = SD_DEFAULT_CONFIG;
	e->cfg = malloc(sizeof(*e->cfg));
	if (!e->cfg) {
		sp_errorf("samepage estimate: out of memory\n");
		return SP_EXIT_FAIL;
	}
	/* samepaged's rule: the default file may be absent (built-in
	 * defaults, one domain per user), a file named must exist */
	if (!e->o.domains_named && access(e->o.domains, F_OK) && errno == ENOENT) {
		e->cfg_missing = 1;
		sd_config_defaults(e->cfg);
		return -1;
	}
	if (sd_config_load(e->cfg, e->o.domains, 0, err, sizeof(err))) {
		sp_errorf("samepage estimate: --domains: %s\n", sp_safe(err));
		return SP_EXIT_USAGE;
	}
	return -1;
}

/* the effective id of a "Uid:" or "Gid:" line: real, effective, saved, fs */
static int effective_id(const char *line, unsigned *out)
{
	return sscanf(line, "%*s %*u %u", out) == 1 ? 0 : -1;
}

/* Who the target is, as samepaged would see it connect: SO_PEERCRED's
 * effective ids, SO_PEERGROUPS, its cgroup v2. 0 or -errno. */
static int who(pid_t pid, struct sd_who *w)
{
	char path[64], *line = NULL;
	size_t cap = 0;
	int got = 0;
	FILE *f;

	memset(w, 0, sizeof(*w));
	w->pid = pid;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		unsigned v;

		if (!strncmp(line, "Uid:", 4) && !effective_id(line, &v)) {
			w->uid = v;
			got |= 1;
		} else if (!strncmp(line, "Gid:", 4) && !effective_id(line, &v)) {
			w->gid = v;
			got |= 2;
		} else if (!strncmp(line, "Groups:", 7)) {
			char *p = line + 7, *end;

			for (;;) {
				unsigned long g = strtoul(p, &end, 10);

				if (end == p || w->ngroups == (int)(sizeof(w->groups) / sizeof(w->groups[0])))
					break;
				w->groups[w->ngroups++] = (gid_t)g;
				p = end;
			}
		}
	}
	fclose(f);
	if (got != 3) {
		free(line);
		return -ESRCH; /* exited while being read */
	}
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "re");
	if (f) {
		while (getline(&line, &cap, f) > 0)
			if (!strncmp(line, "0::", 3)) {
				line[strcspn(line, "\n")] = 0;
				if (strlen(line + 3) < sizeof(w->cgroup)) /* else: matches no rule, as in samepaged */
					memcpy(w->cgroup, line + 3, strlen(line + 3) + 1);
			}
		fclose(f);
	}
	free(line);
	return 0;
}

/* bit of a knob in sd_domain_conf.knob_set */
static int knob_given(const struct sd_domain_conf *c, const char *name)
{
	return (int)(c->knob_set >> (sp_knob_find(name) - sp_knob_table) & 1);
}

/* the domain called name: an existing one, or a new one; -1 no memory */
static int domain_index(struct est *e, const char *name, int conf)
{
	struct est_domain *d;

	for (uint32_t i = 0; i < e->ndoms; i++)
		if (!strcmp(e->doms[i].name, name))
			return (int)i;
	d = realloc(e->doms, (e->ndoms + 1) * sizeof(*d));
	if (!d)
		return -1;
	e->doms = d;
	d = &e->doms[e->ndoms];
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->conf = conf;
	/* the command line's model, and the domain's own knobs where the
	 * config sets them */
	d->kn.max_page_sharing = e->o.max_page_sharing;
	d->kn.use_zero_pages = e->o.use_zero_pages;
	d->kn.thp_split_zero = e->o.thp_split_zero;
	d->merge_across_nodes = e->o.merge_across_nodes;
	if (conf >= 0) {
		const struct sd_domain_conf *c = &e->cfg->domains[conf];

		if (knob_given(c, "max_page_sharing")) {
			d->kn.max_page_sharing = c->knobs.max_page_sharing;
			d->knobs_set = 1;
		}
		if (knob_given(c, "use_zero_pages")) {
			d->kn.use_zero_pages = (int)c->knobs.use_zero_pages;
			d->knobs_set = 1;
		}
		if (knob_given(c, "merge_across_nodes")) {
			d->merge_across_nodes = (int)c->knobs.merge_across_nodes;
			d->knobs_set = 1;
		}
	}
	return (int)e->ndoms++;
}

int est_domains_place(struct est *e)
{
	int man0 = !e->o.merge_across_nodes;

	for (uint32_t i = 0; i < e->nprocs; i++) {
		struct est_proc *p = &e->procs[i];
		char name[SP_NAME_MAX], why[sizeof(p->refused)];
		struct sd_who w;
		int conf, err = who(p->info.pid, &w);

		p->domain = -1;
		if (err) {
			snprintf(p->refused, sizeof(p->refused), "not placed: %s", strerror(-err));
			continue;
		}
		if (sd_config_place(e->cfg, &w, name, sizeof(name), &conf, why, sizeof(why))) {
			snprintf(p->refused, sizeof(p->refused), "%s", why);
			continue;
		}
		p->domain = domain_index(e, name, conf);
		if (p->domain < 0) {
			sp_errorf("samepage estimate: out of memory\n");
			return SP_EXIT_FAIL;
		}
		e->doms[p->domain].nprocs++;
		man0 |= !e->doms[p->domain].merge_across_nodes;
	}
	/* pages merge per node in some model: keep each page's node */
	if (man0 && e->host.numa_nodes > 1)
		e->keep_nodes = e->numa = 1;
	return -1;
}

/* --- the model per domain ---------------------------------------------------- */

/* A record's key for the knobs kn and merge_across_nodes man, from its key
 * as scanned (without the node) and its node (nid < 0: not known). */
static uint64_t domain_key(const struct est *e, uint64_t key, int nid, const struct sp_model_knobs *kn, int man)
{
	int zero = key == SP_MODEL_THP_ZERO			 ? SP_MODEL_ALL_ZERO_THP
		   : key == SP_MODEL_ZERO || key == e->zero_hash ? SP_MODEL_ALL_ZERO
								 : SP_MODEL_NOT_ZERO;

	return sp_model_key(zero ? e->zero_hash : key, zero, man ? -1 : nid, kn);
}

/* what est_model fills in besides the model's counters */
static void finish(struct sp_model_result *r, uint64_t volatile_pages)
{
	r->pages_scanned += volatile_pages;
	r->general_profit = (int64_t)((r->pages_sharing + r->ksm_zero_pages) * 4096) -
			    (int64_t)((r->pages_scanned - r->thp_zero_pages) * SP_MODEL_RMAP_ITEM);
}

int est_domains_model(struct est *e)
{
	struct sp_model_page *buf = NULL;
	int32_t *vdom = malloc((e->nvmas ? e->nvmas : 1) * sizeof(*vdom));
	uint64_t most = 0;

	if (!vdom)
		return -ENOMEM;
	for (uint32_t v = 0; v < e->nvmas; v++)
		vdom[v] = e->procs[e->vmas[v].proc].domain;
	for (uint32_t i = 0; i < e->nprocs; i++)
		if (e->procs[i].domain >= 0)
			e->doms[e->procs[i].domain].volatile_pages += e->procs[i].volatile_pages;
	for (uint64_t i = 0; i < e->npg; i++)
		if (vdom[e->pg[i].vma] >= 0)
			e->doms[vdom[e->pg[i].vma]].records++;
	for (uint32_t d = 0; d < e->ndoms; d++)
		if (e->doms[d].records > most)
			most = e->doms[d].records;
	if (most && !(buf = malloc(most * sizeof(*buf)))) {
		free(vdom);
		return -ENOMEM;
	}
	for (uint32_t d = 0; d < e->ndoms; d++) {
		struct est_domain *dom = &e->doms[d];
		uint64_t n = 0;

		for (uint64_t i = 0; i < e->npg; i++) {
			if (vdom[e->pg[i].vma] != (int32_t)d)
				continue;
			buf[n] = e->pg[i];
			buf[n++].key = domain_key(e, e->pg[i].key, e->nodes ? e->nodes[i] : -1, &dom->kn,
						  dom->merge_across_nodes);
		}
		sp_model_run(buf, n, &dom->kn, &dom->res, NULL, NULL);
		finish(&dom->res, dom->volatile_pages);
	}
	free(buf);
	free(vdom);
	/* the host-wide model's keys: with the node where it merges per node */
	if (e->keep_nodes) {
		struct sp_model_knobs kn = est_knobs(e);

		for (uint64_t i = 0; i < e->npg; i++)
			e->pg[i].key = domain_key(e, e->pg[i].key, e->nodes[i], &kn, e->o.merge_across_nodes);
		free(e->nodes);
		e->nodes = NULL;
		e->keep_nodes = 0;
	}
	return 0;
}

void est_domains_free(struct est *e)
{
	free(e->cfg);
	free(e->doms);
	free(e->nodes);
}

/* --- the report -------------------------------------------------------------- */

static uint64_t saved(const struct sp_model_result *r)
{
	return r->pages_sharing + r->ksm_zero_pages + r->thp_zero_pages;
}

/* the sums over the domains */
struct totals {
	uint32_t procs, out_procs;
	uint64_t scanned, out_scanned, sharing, zero, saved;
};

static void totals(const struct est *e, struct totals *t)
{
	memset(t, 0, sizeof(*t));
	for (uint32_t d = 0; d < e->ndoms; d++) {
		const struct est_domain *dom = &e->doms[d];

		t->procs += dom->nprocs;
		t->scanned += dom->res.pages_scanned;
		t->sharing += dom->res.pages_sharing;
		t->zero += dom->res.ksm_zero_pages + dom->res.thp_zero_pages;
		t->saved += saved(&dom->res);
	}
	for (uint32_t i = 0; i < e->nprocs; i++)
		if (e->procs[i].domain < 0)
			t->out_procs++;
	/* what the domains do not hold of the host-wide scan */
	t->out_scanned = e->res.pages_scanned - t->scanned;
}

static void knobs_text(const struct est_domain *d, char *buf, size_t len)
{
	snprintf(buf, len, "max_page_sharing %u, use_zero_pages %d, merge_across_nodes %d", d->kn.max_page_sharing,
		 d->kn.use_zero_pages, d->merge_across_nodes);
}

void est_domains_print(const struct est *e)
{
	uint64_t host = saved(&e->res), lost;
	char b1[32], b2[128];
	struct totals t;

	totals(e, &t);
	lost = host > t.saved ? host - t.saved : 0;
	if (e->cfg_missing)
		printf("\nMerge domains of samepaged (%s absent: built-in defaults, one domain per user):\n",
		       sp_safe(e->o.domains));
	else
		printf("\nMerge domains of samepaged (%s):\n", sp_safe(e->o.domains));
	printf("  %-24s %6s %10s %10s %10s %10s\n", "DOMAIN", "PROCS", "SCANNED", "SHARING", "ZERO", "SAVING");
	for (uint32_t d = 0; d < e->ndoms; d++) {
		const struct est_domain *dom = &e->doms[d];

		printf("  %-24s %6u %10llu %10llu %10llu %10s\n", sp_safe(dom->name), dom->nprocs,
		       (unsigned long long)dom->res.pages_scanned, (unsigned long long)dom->res.pages_sharing,
		       (unsigned long long)(dom->res.ksm_zero_pages + dom->res.thp_zero_pages),
		       sp_fmt_bytes(b1, sizeof(b1), (double)saved(&dom->res) * 4096));
	}
	if (t.out_procs)
		printf("  %-24s %6u %10llu %10s %10s %10s\n", "not admitted", t.out_procs,
		       (unsigned long long)t.out_scanned, "-", "-", "-");
	printf("  %-24s %6u %10llu %10llu %10llu %10s\n", "all domains", t.procs, (unsigned long long)t.scanned,
	       (unsigned long long)t.sharing, (unsigned long long)t.zero,
	       sp_fmt_bytes(b1, sizeof(b1), (double)t.saved * 4096));
	printf("  %-24s %6u %10llu %10llu %10llu %10s\n", "host-wide (kernel KSM)", e->nprocs,
	       (unsigned long long)e->res.pages_scanned, (unsigned long long)e->res.pages_sharing,
	       (unsigned long long)(e->res.ksm_zero_pages + e->res.thp_zero_pages),
	       sp_fmt_bytes(b1, sizeof(b1), (double)host * 4096));
	if (t.saved > host) /* a domain's own knobs can save more */
		printf("  The domains save %s more than host-wide KSM (with their own knobs)\n",
		       sp_fmt_bytes(b1, sizeof(b1), (double)(t.saved - host) * 4096));
	else
		printf("  Confinement to domains forgoes %s (%.1f%% of the host-wide saving)%s\n",
		       sp_fmt_bytes(b1, sizeof(b1), (double)lost * 4096),
		       host ? 100.0 * (double)lost / (double)host : 0,
		       t.out_procs ? ", not admitted targets included" : "");
	for (uint32_t d = 0; d < e->ndoms; d++)
		if (e->doms[d].knobs_set) {
			knobs_text(&e->doms[d], b2, sizeof(b2));
			printf("  domain %s: %s (from the config)\n", sp_safe(e->doms[d].name), b2);
		}
	for (uint32_t i = 0; i < e->nprocs; i++)
		if (e->procs[i].domain < 0)
			printf("  not admitted: pid %d (%s): %s\n", e->procs[i].info.pid,
			       sp_safe(e->procs[i].info.comm), sp_safe(e->procs[i].refused));
}

static void add_u(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

void est_domains_json(const struct est *e, json_object *root)
{
	json_object *arr = json_object_new_array(), *sum = json_object_new_object();
	json_object *out = json_object_new_array();
	uint64_t host = saved(&e->res);
	struct totals t;

	totals(e, &t);
	for (uint32_t d = 0; d < e->ndoms; d++) {
		const struct est_domain *dom = &e->doms[d];
		json_object *o = json_object_new_object(), *pids = json_object_new_array();

		json_object_object_add(o, "name", json_object_new_string(dom->name));
		json_object_object_add(o, "per_user", json_object_new_boolean(dom->conf < 0));
		add_u(o, "processes", dom->nprocs);
		for (uint32_t i = 0; i < e->nprocs; i++)
			if (e->procs[i].domain == (int)d)
				json_object_array_add(pids, json_object_new_int(e->procs[i].info.pid));
		json_object_object_add(o, "pids", pids);
		add_u(o, "pages_scanned", dom->res.pages_scanned);
		add_u(o, "pages_shared", dom->res.pages_shared);
		add_u(o, "pages_sharing", dom->res.pages_sharing);
		add_u(o, "ksm_zero_pages", dom->res.ksm_zero_pages);
		add_u(o, "thp_zero_pages", dom->res.thp_zero_pages);
		json_object_object_add(o, "general_profit", json_object_new_int64(dom->res.general_profit));
		add_u(o, "saving_bytes", saved(&dom->res) * 4096);
		add_u(o, "max_page_sharing", dom->kn.max_page_sharing);
		json_object_object_add(o, "use_zero_pages", json_object_new_int(dom->kn.use_zero_pages));
		json_object_object_add(o, "merge_across_nodes", json_object_new_int(dom->merge_across_nodes));
		json_object_array_add(arr, o);
	}
	json_object_object_add(root, "domains", arr);

	json_object_object_add(sum, "config", json_object_new_string(e->o.domains));
	json_object_object_add(sum, "config_found", json_object_new_boolean(!e->cfg_missing));
	add_u(sum, "processes", t.procs);
	add_u(sum, "pages_scanned", t.scanned);
	add_u(sum, "pages_sharing", t.sharing);
	add_u(sum, "zero_pages_freed", t.zero);
	add_u(sum, "saving_bytes", t.saved * 4096);
	add_u(sum, "host_wide_processes", e->nprocs);
	add_u(sum, "host_wide_pages_scanned", e->res.pages_scanned);
	add_u(sum, "host_wide_pages_sharing", e->res.pages_sharing);
	add_u(sum, "host_wide_zero_pages_freed", e->res.ksm_zero_pages + e->res.thp_zero_pages);
	add_u(sum, "host_wide_saving_bytes", host * 4096);
	/* negative when the domains' own knobs save more */
	json_object_object_add(sum, "confinement_cost_bytes",
			       json_object_new_int64(((int64_t)host - (int64_t)t.saved) * 4096));
	for (uint32_t i = 0; i < e->nprocs; i++) {
		json_object *o;

		if (e->procs[i].domain >= 0)
			continue;
		o = json_object_new_object();
		json_object_object_add(o, "pid", json_object_new_int(e->procs[i].info.pid));
		json_object_object_add(o, "comm", json_object_new_string(e->procs[i].info.comm));
		json_object_object_add(o, "reason", json_object_new_string(e->procs[i].refused));
		json_object_array_add(out, o);
	}
	add_u(sum, "not_admitted_pages_scanned", t.out_scanned);
	json_object_object_add(sum, "not_admitted", out);
	json_object_object_add(root, "domains_total", sum);
}
