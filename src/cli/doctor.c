/* SPDX-License-Identifier: MIT */
/*
 * doctor.c - `samepage doctor`: checks this host for known trouble with the
 * kernel's KSM and prints each finding with its evidence (the files and
 * values it rests on) and the command that fixes it.
 *
 * Read-only. Every check reads through --sysfs-root / --proc-root, so the
 * tests feed recorded trees (tests/fixtures/doctor/). A check whose inputs
 * are missing stays silent: doctor reports what it can show, not guesses.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/ksmview.h"
#include "cli/textsafe.h"
#include "cli/units.h"

#define MAX_FINDINGS 16
#define SLOW_SCAN_S  600.0 /* a full scan longer than this is too slow */
#define BIG_SHARING  4096  /* max_page_sharing above this: long rmap walks */
#define BIG_FANOUT   32	   /* dups per stable node chain */

struct finding {
	const char *id, *severity;
	char title[160], evidence[600], fix[300];
};

struct host {
	struct sp_roots r;
	struct sp_view v;
	int nodes, balancing, guests, sysfs_ro;
	struct sp_cpus isolated, nohz, online;
	char dir[400];
	struct finding f[MAX_FINDINGS];
	int n;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: samepage doctor [OPTIONS]\n"
		   "\n"
		   "Checks this host for known trouble with the kernel's KSM: NUMA balancing or\n"
		   "cross-node merging with KVM guests on a multi-node host, huge max_page_sharing\n"
		   "or chain fan-out, ksmd allowed on isolated/nohz_full CPUs, full scans over 10\n"
		   "minutes, smart_scan off, KSM running with nothing to merge, KSM compiled out or\n"
		   "/sys read-only. Each finding comes with its evidence and the fix.\n"
		   "\n"
		   "      --json                  JSON on stdout (on failure too: {\"error\": ...})\n" SP_ROOT_HELP
		   "  -h, --help\n"
		   "\n"
		   "Exit status: 0 no findings; 1 findings; 2 bad usage; 4 no KSM in this kernel.\n");
}

__attribute__((format(printf, 3, 4))) static struct finding *add(struct host *h, const char *id, const char *fmt, ...)
{
	struct finding *f = &h->f[h->n < MAX_FINDINGS - 1 ? h->n++ : h->n];
	va_list ap;

	memset(f, 0, sizeof(*f));
	f->id = id;
	f->severity = "warning";
	va_start(ap, fmt);
	vsnprintf(f->title, sizeof(f->title), fmt, ap);
	va_end(ap);
	return f;
}

static long long knob(const struct host *h, const char *name, long long def)
{
	return sp_ksm_get(&h->v.k, name, def);
}

static void check_numa(struct host *h)
{
	struct finding *f;

	if (h->nodes < 2 || h->guests == 0)
		return;
	if (h->balancing > 0 && knob(h, "run", 0) == 1) {
		f = add(h, "numa-balancing", "NUMA balancing is on while KSM merges KVM guests' memory");
		snprintf(f->evidence, sizeof(f->evidence),
			 "%s/sys/kernel/numa_balancing = %d; run = 1; %d NUMA nodes; %d KVM guest process(es). "
			 "The balancer's hinting faults on KSM pages can stall guests",
			 h->r.proc, h->balancing, h->nodes, h->guests);
		snprintf(f->fix, sizeof(f->fix), "sysctl -w kernel.numa_balancing=0");
	}
	if (knob(h, "merge_across_nodes", 0) == 1) {
		f = add(h, "merge-across-nodes", "KSM merges pages across NUMA nodes on a host with KVM guests");
		snprintf(f->evidence, sizeof(f->evidence),
			 "%s/merge_across_nodes = 1; %d NUMA nodes; %d KVM guest process(es): merged pages are "
			 "remote for every node but one, adding latency for the guests",
			 h->dir, h->nodes, h->guests);
		snprintf(f->fix, sizeof(f->fix), "samepage set run=2 merge_across_nodes=0 run=%lld",
			 knob(h, "run", 1) == 1 ? 1LL : 0LL);
	}
}

static void check_sharing(struct host *h)
{
	long long mps = knob(h, "max_page_sharing", 0), chains = knob(h, "stable_node_chains", 0);
	long long dups = knob(h, "stable_node_dups", 0);
	struct finding *f;

	if (mps > BIG_SHARING) {
		f = add(h, "max-page-sharing", "max_page_sharing is very large: rmap walks of one KSM page get long");
		snprintf(f->evidence, sizeof(f->evidence),
			 "%s/max_page_sharing = %lld (default 256); reclaim, migration and compaction walk every "
			 "sharer of a KSM page",
			 h->dir, mps);
		snprintf(f->fix, sizeof(f->fix), "samepage set run=2 max_page_sharing=256 run=%lld",
			 knob(h, "run", 1) == 1 ? 1LL : 0LL);
	}
	if (chains > 0 && dups / chains > BIG_FANOUT) {
		f = add(h, "chain-fanout",
			"stable node chains with huge fan-out: one content shared by very many pages");
		snprintf(f->evidence, sizeof(f->evidence),
			 "%s: stable_node_dups %lld / stable_node_chains %lld = %lld KSM pages per chain, each with up "
			 "to max_page_sharing (%lld) sharers",
			 h->dir, dups, chains, dups / chains, mps);
		if (knob(h, "use_zero_pages", 1) == 0)
			snprintf(f->fix, sizeof(f->fix),
				 "samepage set use_zero_pages=1   (if the content is zeros, as it usually is)");
		else
			snprintf(f->fix, sizeof(f->fix),
				 "samepage status   (find the process; its duplicate content "
				 "is better freed by the application)");
	}
}

static void check_ksmd_cpus(struct host *h)
{
	struct sp_cpus bad, quiet, hk;
	char b1[256], b2[256], b3[256];
	struct finding *f;

	if (h->v.ksmd_pid < 0)
		return;
	for (int i = 0; i < SP_MAXCPU / 64; i++)
		quiet.bits[i] = h->isolated.bits[i] | h->nohz.bits[i];
	sp_cpus_and(&h->v.ksmd.allowed, &quiet, &bad);
	if (!sp_cpus_count(&bad))
		return;
	sp_cpus_andnot(&h->online, &quiet, &hk);
	f = add(h, "ksmd-isolated", "ksmd may run on isolated or nohz_full CPUs");
	snprintf(f->evidence, sizeof(f->evidence),
		 "%s/%d/status Cpus_allowed_list = %s; isolated = %s; nohz_full = %s: ksmd's slices land on "
		 "CPUs kept for latency-sensitive work (VM vCPUs)",
		 h->r.proc, h->v.ksmd_pid, sp_cpus_format(&h->v.ksmd.allowed, b1, sizeof(b1)),
		 sp_cpus_format(&h->isolated, b2, sizeof(b2)), sp_cpus_format(&h->nohz, b3, sizeof(b3)));
	if (sp_cpus_count(&hk))
		snprintf(f->fix, sizeof(f->fix), "taskset -pc %s %d", sp_cpus_format(&hk, b1, sizeof(b1)),
			 h->v.ksmd_pid);
	else
		snprintf(f->fix, sizeof(f->fix), "leave at least one CPU out of isolcpus/nohz_full for housekeeping");
}

static void check_scan(struct host *h)
{
	struct sp_scan_time s;
	struct finding *f;
	char b[64];

	sp_view_scan_time(&h->v, NULL, 0, &s);
	if (knob(h, "run", 0) != 1 || knob(h, "advisor_mode", 0) == 1 || s.seconds <= SLOW_SCAN_S)
		return;
	f = add(h, "slow-scan", "a full scan takes over 10 minutes: new duplicates wait that long to merge");
	snprintf(f->evidence, sizeof(f->evidence), "%s (%s); pages_to_scan %lld is KSM's demonstration default", s.how,
		 isinf(s.seconds) ? "never" : sp_fmt_duration(b, sizeof(b), s.seconds), knob(h, "pages_to_scan", 0));
	if (h->v.k.present[sp_knob_index("advisor_mode")])
		snprintf(f->fix, sizeof(f->fix), "samepage set advisor_mode=scan-time advisor_target_scan_time=60");
	else
		snprintf(f->fix, sizeof(f->fix), "samepage set pages_to_scan=%.0f",
			 fmin(ceil((double)s.pages * (double)knob(h, "sleep_millisecs", 20) / 1000.0 / 60.0),
			      4294967295.0));
}

static void check_invalid(struct host *h)
{
	struct finding *f;
	size_t n = 0;

	if (!h->v.k.ninvalid)
		return;
	f = add(h, "invalid-values", "KSM files hold values that are not what the kernel writes");
	for (int i = 0; i < SP_KNOB_COUNT && n < sizeof(f->evidence); i++)
		if (h->v.k.invalid[i])
			n += (size_t)snprintf(f->evidence + n, sizeof(f->evidence) - n, "%s%s/%s = '%s' (%s)",
					      n ? "; " : "", h->dir, sp_knob_table[i].name, h->v.k.text[i],
					      h->v.k.invalid[i]);
	snprintf(f->fix, sizeof(f->fix),
		 "check what is mounted on the KSM directory (a recorded tree? another filesystem?); the checks "
		 "above left these values out");
}

static void check_misc(struct host *h)
{
	struct finding *f;

	if (knob(h, "smart_scan", 1) == 0) {
		f = add(h, "smart-scan-off", "smart_scan is off: ksmd rescans pages that never merge");
		snprintf(f->evidence, sizeof(f->evidence), "%s/smart_scan = 0", h->dir);
		snprintf(f->fix, sizeof(f->fix), "samepage set smart_scan=1");
	}
	if (knob(h, "run", 0) == 1 && h->v.users.n == 0 && h->v.users.denied == 0) {
		f = add(h, "nothing-mergeable", "KSM is on but no process has mergeable memory");
		snprintf(f->evidence, sizeof(f->evidence),
			 "%s/run = 1; no %s/*/ksm_stat shows ksm_mergeable or ksm_merge_any: ksmd wakes every "
			 "%lld ms for nothing",
			 h->dir, h->r.proc, knob(h, "sleep_millisecs", 0));
		snprintf(f->fix, sizeof(f->fix),
			 "samepage set run=0   (or start the workload with: samepage run -- CMD)");
	}
	if (h->sysfs_ro == 1) {
		f = add(h, "sysfs-readonly", "/sys is mounted read-only: KSM can be watched here but not changed");
		f->severity = "info";
		snprintf(f->evidence, sizeof(f->evidence), "%s/self/mounts: /sys has option ro (a container?)",
			 h->r.proc);
		snprintf(f->fix, sizeof(f->fix), "run samepage set on the host, or give the container a writable /sys");
	}
}

static void print_human(const struct host *h)
{
	if (!h->n)
		printf("samepage doctor: no known KSM trouble found (%s)\n", sp_safe(h->dir));
	else
		printf("samepage doctor: %d finding%s\n", h->n, h->n == 1 ? "" : "s");
	for (int i = 0; i < h->n; i++)
		printf("\n[%s] %s: %s\n  evidence: %s\n  fix:      %s\n", h->f[i].severity, h->f[i].id,
		       sp_safe(h->f[i].title), sp_safe(h->f[i].evidence), sp_safe(h->f[i].fix));
}

static void print_json(const struct host *h)
{
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();
	int missing = h->n && !strcmp(h->f[0].id, "ksm-missing");

	for (int i = 0; i < h->n; i++) {
		struct json_object *e = json_object_new_object();

		json_object_object_add(e, "id", json_object_new_string(h->f[i].id));
		json_object_object_add(e, "severity", json_object_new_string(h->f[i].severity));
		json_object_object_add(e, "title", json_object_new_string(h->f[i].title));
		json_object_object_add(e, "evidence", json_object_new_string(h->f[i].evidence));
		json_object_object_add(e, "fix", json_object_new_string(h->f[i].fix));
		json_object_array_add(a, e);
	}
	json_object_object_add(o, "ksm", json_object_new_boolean(!missing));
	json_object_object_add(o, "findings", a);
	if (missing) /* the one failure doctor reports as a finding */
		json_object_object_add(o, "error", json_object_new_string(h->f[0].title));
	sp_json_print(stdout, o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	json_object_put(o);
}

static int examine(struct host *h, int json)
{
	int err;

	sp_ksm_dir(h->r.sysfs, h->dir, sizeof(h->dir));
	err = sp_view_read(&h->r, 1, &h->v);
	if (err == -ENOENT) {
		struct finding *f = add(h, "ksm-missing", "this kernel has no KSM");

		f->severity = "error";
		snprintf(f->evidence, sizeof(f->evidence), "%s does not exist: CONFIG_KSM is off", h->dir);
		snprintf(f->fix, sizeof(f->fix),
			 "boot a kernel built with CONFIG_KSM=y (most distribution kernels are)");
		json ? print_json(h) : print_human(h);
		return SP_EXIT_NOKSM;
	}
	if (err)
		return sp_ksm_unreadable("doctor", &h->r, err);
	h->nodes = sp_host_numa_nodes(h->r.sysfs);
	h->balancing = sp_numa_balancing(h->r.proc);
	h->guests = sp_kvm_guests(h->r.proc);
	h->sysfs_ro = sp_sysfs_readonly(h->r.proc);
	sp_cpus_isolated(h->r.sysfs, &h->isolated);
	sp_cpus_nohz_full(h->r.sysfs, &h->nohz);
	sp_cpus_online(h->r.sysfs, &h->online);
	check_numa(h);
	check_sharing(h);
	check_ksmd_cpus(h);
	check_scan(h);
	check_misc(h);
	check_invalid(h);
	json ? print_json(h) : print_human(h);
	sp_view_free(&h->v);
	return h->n ? SP_EXIT_FAIL : SP_EXIT_OK;
}

int sp_doctor_main(int argc, char **argv);

int sp_doctor_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		SP_ROOT_OPTIONS,
		{0},
	};
	static struct host h;
	int json = 0, c, rc;

	h.r.sysfs = "/sys";
	h.r.proc = "/proc";
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		default:
			rc = sp_opt_common(c, optarg, &h.r, usage);
			if (rc != SP_OPT_GO_ON)
				return rc;
		}
	}
	rc = sp_opt_no_operands(argc, argv);
	if (rc != SP_OPT_GO_ON)
		return rc;
	return examine(&h, json);
}

SP_COMMAND_JSON(doctor, "check this host for known KSM trouble, with evidence and fixes", sp_doctor_main);
