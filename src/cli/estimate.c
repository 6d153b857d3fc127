/* SPDX-License-Identifier: MIT */
/*
 * estimate.c - `samepage estimate`: what the kernel's KSM would save on
 * given processes, and what it would cost, measured from the outside.
 *
 * Read-only: target memory is read with process_vm_readv and page state
 * with PAGEMAP_SCAN (mem/reader.h); nothing in the targets changes. Each
 * scanned page becomes a 16-byte record of its content hash, and the
 * core's model (core/model.c) computes the counters ksmd would settle at
 * for the given knobs. See man samepage-estimate(1).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <numa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/estimate.h"
#include "cli/ksmview.h"
#include "cli/textsafe.h"
#include "core/hash.h"
#include "daemon/daemon.h"
#include "kernel/host.h"
#include "kernel/procs.h"
#include "util/clock.h"

#define MAX_INTERVAL_S 86400.0 /* --interval: a day between samples at most */

static void usage(FILE *f)
{
	fprintf(f, "usage: samepage estimate TARGET... [OPTIONS]\n"
		   "\n"
		   "Predicts what the kernel's KSM would merge in the given processes, read-only.\n"
		   "\n"
		   "Targets (any mix, at least one):\n"
		   "  -p, --pid PID[,PID...]      these processes (also bare PIDs after the options)\n"
		   "  -c, --comm NAME             processes whose command name is NAME\n"
		   "  -g, --cgroup PATH           processes of a cgroup v2 and its descendants\n"
		   "  -a, --all                   every user process\n"
		   "\n"
		   "Which memory:\n"
		   "      --all-anon              model prctl(PR_SET_MEMORY_MERGE) for every target:\n"
		   "                              all KSM-compatible private memory, not only the\n"
		   "                              VMAs marked mergeable (VmFlags mg)\n"
		   "\n"
		   "Model (default: this host's current values):\n"
		   "      --max-page-sharing N    sharers per KSM page (>= 2)\n"
		   "      --use-zero-pages 0|1    map all-zero pages to the kernel's zero page\n"
		   "      --merge-across-nodes 0|1  0: merge only pages on the same NUMA node\n"
		   "      --samples N             read N times; pages whose content changed are\n"
		   "                              volatile and not counted (default 1)\n"
		   "      --interval SECONDS      time between samples (default 5)\n"
		   "\n"
		   "Merge domains of samepaged:\n"
		   "      --domains[=CONFIG]      also what samepaged would save: pages merge only\n"
		   "                              inside the merge domain each target would be put\n"
		   "                              in by CONFIG (default " SD_DEFAULT_CONFIG ";\n"
		   "                              absent: one domain per user), with the domain's\n"
		   "                              own knobs; per domain, next to the host-wide KSM\n"
		   "\n"
		   "Reading:\n"
		   "      --rate-limit MB/S       read at most this many megabytes (10^6) per second\n"
		   "      --normal-priority       do not drop to nice 19 and idle I/O priority\n"
		   "\n"
		   "Output:\n"
		   "      --json                  JSON on stdout instead of the summary\n"
		   "      --top N                 rows in the top lists (default 10)\n"
		   "      --progress, --no-progress  progress bar on stderr (default: if a terminal)\n"
		   "  -h, --help\n"
		   "\n"
		   "Exit status: 0 complete; 1 failed, no such process or cgroup; 2 bad usage;\n"
		   "3 permission denied on every target; 5 partial result (a target exited or\n"
		   "refused access, pages vanished mid-read, or out of memory).\n");
}

/* a knob of the host's KSM, -1 when absent or invalid */
static long read_knob(const struct sp_ksm *k, const char *name)
{
	long long v = sp_ksm_get(k, name, -1);

	return v > LONG_MAX ? LONG_MAX : (long)v;
}

/* *v, or the knob's default when it is absent or below the knob's range */
static void knob_default(long *v, const char *name)
{
	const struct sp_knob *k = sp_knob_find(name);

	if (*v < 0 || (unsigned long long)*v < k->min)
		*v = k->def;
}

/* --max-page-sharing and co: the value as the kernel would take it for
 * the knob (its syntax and range), 0 or -1 */
static int model_knob(const char *name, const char *arg, long *out)
{
	unsigned long long v;

	if (sp_knob_parse_value(sp_knob_find(name), arg, &v))
		return -1;
	*out = (long)v;
	return 0;
}

static void read_host(struct est_host *h)
{
	struct sp_ksm k;

	h->ksm = sp_ksm_read("/sys", &k) == 0 && k.present[sp_knob_index("run")];
	h->run = read_knob(&k, "run");
	h->pages_to_scan = read_knob(&k, "pages_to_scan");
	h->sleep_millisecs = read_knob(&k, "sleep_millisecs");
	h->max_page_sharing = read_knob(&k, "max_page_sharing");
	h->use_zero_pages = read_knob(&k, "use_zero_pages");
	h->merge_across_nodes = read_knob(&k, "merge_across_nodes");
	h->advisor_target_scan_time = read_knob(&k, "advisor_target_scan_time");
	h->advisor_min_pages_to_scan = read_knob(&k, "advisor_min_pages_to_scan");
	h->advisor_max_pages_to_scan = read_knob(&k, "advisor_max_pages_to_scan");
	/* the kernel's defaults (the knob table's) where a knob is missing */
	knob_default(&h->pages_to_scan, "pages_to_scan");
	knob_default(&h->sleep_millisecs, "sleep_millisecs");
	knob_default(&h->max_page_sharing, "max_page_sharing");
	knob_default(&h->use_zero_pages, "use_zero_pages");
	knob_default(&h->merge_across_nodes, "merge_across_nodes");
	knob_default(&h->advisor_target_scan_time, "advisor_target_scan_time");
	h->numa_nodes = numa_available() >= 0 ? numa_max_node() + 1 : 1;
	/* since 6.12 a split of an anonymous THP maps its all-zero subpages to
	 * the shared zero page, and KSM splits a THP before merging in it */
	h->thp_split_zero = sp_kernel_at_least("/proc", 6, 12) == 1;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
	return sp_arg_long(s, lo, hi, out);
}

/* "PID[,PID...]": every element a pid, none empty. 0 or -1. */
static int add_pid_list(struct sp_pid_list *l, const char *arg)
{
	char *dup = strdup(arg), *tok, *next;
	int ret = 0;

	if (!dup)
		return -1;
	for (tok = dup; tok && !ret; tok = next) {
		long pid;

		next = strchr(tok, ',');
		if (next)
			*next++ = 0;
		if (parse_long(tok, 1, 1 << 22, &pid) || sp_pids_add(l, (int)pid))
			ret = -1;
	}
	free(dup);
	return ret;
}

static void low_priority(void)
{
	/* IOPRIO_WHO_PROCESS, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT */
	if (setpriority(PRIO_PROCESS, 0, 19))
		perror("samepage estimate: setpriority");
	syscall(SYS_ioprio_set, 1, 0, 3 << 13);
}

enum {
	OPT_ALL_ANON = 256,
	OPT_MPS,
	OPT_UZP,
	OPT_MAN,
	OPT_SAMPLES,
	OPT_INTERVAL,
	OPT_RATE,
	OPT_NORMAL,
	OPT_JSON,
	OPT_TOP,
	OPT_PROGRESS,
	OPT_NO_PROGRESS,
	OPT_DOMAINS,
};

static const struct option longopts[] = {
	{"pid", required_argument, NULL, 'p'},
	{"comm", required_argument, NULL, 'c'},
	{"cgroup", required_argument, NULL, 'g'},
	{"all", no_argument, NULL, 'a'},
	{"all-anon", no_argument, NULL, OPT_ALL_ANON},
	{"max-page-sharing", required_argument, NULL, OPT_MPS},
	{"use-zero-pages", required_argument, NULL, OPT_UZP},
	{"merge-across-nodes", required_argument, NULL, OPT_MAN},
	{"samples", required_argument, NULL, OPT_SAMPLES},
	{"interval", required_argument, NULL, OPT_INTERVAL},
	{"rate-limit", required_argument, NULL, OPT_RATE},
	{"normal-priority", no_argument, NULL, OPT_NORMAL},
	{"json", no_argument, NULL, OPT_JSON},
	{"top", required_argument, NULL, OPT_TOP},
	{"progress", no_argument, NULL, OPT_PROGRESS},
	{"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
	{"domains", optional_argument, NULL, OPT_DOMAINS},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

struct targets {
	struct sp_pid_list pids;  /* explicit --pid */
	struct sp_pid_list found; /* from --comm/--cgroup/--all */
	int any;
};

static int bad(const char *what, const char *arg)
{
	sp_errorf("samepage estimate: invalid %s '%s' (see --help)\n", what, sp_safe(arg));
	return SP_EXIT_USAGE;
}

/* Parses the command line into e->o and t. Returns -1 to go on, or an exit
 * status. */
static int parse(int argc, char **argv, struct est *e, struct targets *t)
{
	long v;
	double d;
	int c, rc;

	e->o.max_page_sharing = (uint32_t)e->host.max_page_sharing;
	e->o.use_zero_pages = (int)e->host.use_zero_pages;
	e->o.merge_across_nodes = (int)e->host.merge_across_nodes;
	e->o.thp_split_zero = e->host.thp_split_zero;
	e->o.samples = 1;
	e->o.interval = 5;
	e->o.progress = -1;
	e->o.top = 10;
	e->o.low_priority = 1;
	while ((c = getopt_long(argc, argv, "p:c:g:ah", longopts, NULL)) != -1) {
		long n;

		switch (c) {
		case 'p':
			if (add_pid_list(&t->pids, optarg))
				return bad("pid", optarg);
			t->any = 1;
			break;
		case 'c':
			n = sp_procs_by_comm("/proc", optarg, &t->found);
			if (n < 0) {
				sp_errorf("samepage estimate: cannot list processes: %s\n", strerror((int)-n));
				return SP_EXIT_FAIL;
			}
			if (n == 0)
				sp_errorf("samepage estimate: no process named '%s'\n", sp_safe(optarg));
			t->any = 1;
			break;
		case 'g':
			n = sp_procs_cgroup(optarg, &t->found);
			if (n < 0) {
				/* like a pid that does not exist: a failure, not bad usage */
				sp_errorf("samepage estimate: cgroup '%s': %s\n", sp_safe(optarg),
					  n == -ENOENT	  ? "no such cgroup"
					  : n == -ENOTDIR ? "not a cgroup directory"
							  : strerror((int)-n));
				return SP_EXIT_FAIL;
			}
			if (n == 0)
				sp_errorf("samepage estimate: cgroup '%s' has no processes\n", optarg);
			t->any = 1;
			break;
		case 'a':
			n = sp_procs_all("/proc", &t->found);
			if (n < 0) {
				sp_errorf("samepage estimate: cannot list processes: %s\n", strerror((int)-n));
				return SP_EXIT_FAIL;
			}
			t->any = 1;
			break;
		case OPT_ALL_ANON:
			e->o.all_anon = 1;
			break;
		case OPT_MPS:
			if (model_knob("max_page_sharing", optarg, &v))
				return bad("--max-page-sharing (an integer >= 2)", optarg);
			e->o.max_page_sharing = (uint32_t)v;
			break;
		case OPT_UZP:
			if (model_knob("use_zero_pages", optarg, &v))
				return bad("--use-zero-pages (0 or 1)", optarg);
			e->o.use_zero_pages = (int)v;
			break;
		case OPT_MAN:
			if (model_knob("merge_across_nodes", optarg, &v))
				return bad("--merge-across-nodes (0 or 1)", optarg);
			e->o.merge_across_nodes = (int)v;
			break;
		case OPT_SAMPLES:
			if (parse_long(optarg, 1, 1000, &v))
				return bad("--samples (1 to 1000)", optarg);
			e->o.samples = (int)v;
			break;
		case OPT_INTERVAL:
			if (sp_arg_double(optarg, 0, MAX_INTERVAL_S, &d))
				return bad("--interval (seconds, 0 to 86400)", optarg);
			e->o.interval = d;
			break;
		case OPT_RATE:
			if (sp_arg_double(optarg, 0, 1e9, &d) || d <= 0)
				return bad("--rate-limit (MB/s > 0)", optarg);
			e->o.rate_limit = d;
			break;
		case OPT_NORMAL:
			e->o.low_priority = 0;
			break;
		case OPT_JSON:
			e->o.json = 1;
			break;
		case OPT_TOP:
			if (parse_long(optarg, 0, 100000, &v))
				return bad("--top", optarg);
			e->o.top = (int)v;
			break;
		case OPT_PROGRESS:
			e->o.progress = 1;
			break;
		case OPT_NO_PROGRESS:
			e->o.progress = 0;
			break;
		case OPT_DOMAINS:
			if (optarg && !*optarg)
				return bad("--domains (a file)", optarg);
			e->o.domains = optarg ? optarg : SD_DEFAULT_CONFIG;
			e->o.domains_named = optarg != NULL;
			break;
		default:
			rc = sp_opt_common(c, optarg, NULL, usage);
			if (rc != SP_OPT_GO_ON)
				return rc;
		}
	}
	for (int i = optind; i < argc; i++) {
		if (add_pid_list(&t->pids, argv[i]))
			return bad("pid", argv[i]);
		t->any = 1;
	}
	if (!t->any) {
		sp_errorf("samepage estimate: no target: give --pid, --comm, --cgroup or --all\n");
		usage(stderr);
		return SP_EXIT_USAGE;
	}
	return -1;
}

/* Builds e->procs from the targets. Returns -1 to go on, or an exit status. */
static int build_procs(struct est *e, struct targets *t)
{
	size_t n = t->pids.n + t->found.n;
	int self = getpid(), missing = 0;

	e->procs = calloc(n ? n : 1, sizeof(*e->procs));
	if (!e->procs)
		return SP_EXIT_FAIL;
	for (size_t i = 0; i < n; i++) {
		int explicit = i < t->pids.n;
		int pid = explicit ? t->pids.pid[i] : t->found.pid[i - t->pids.n];
		struct est_proc *p = &e->procs[e->nprocs];
		int err, dup = 0;

		if (!explicit && pid == self)
			continue; /* --all, --comm, --cgroup: not ourselves */
		for (uint32_t k = 0; k < e->nprocs; k++)
			dup |= e->procs[k].info.pid == pid;
		if (dup)
			continue;
		err = sp_proc_info("/proc", pid, &p->info);
		if (err == -ESRCH) {
			if (explicit) {
				sp_errorf("samepage estimate: pid %d: no such process\n", pid);
				missing++;
			}
			continue; /* a listed process that exited since */
		}
		if (!explicit || sp_proc_is_kthread("/proc", pid) != 1) {
			e->nprocs++;
		} else {
			sp_errorf("samepage estimate: pid %d (%s) is a kernel thread: no memory to scan\n", pid,
				  sp_safe(p->info.comm));
			missing++;
		}
	}
	if (!e->nprocs) {
		if (!missing)
			sp_errorf("samepage estimate: no process matched\n");
		return SP_EXIT_FAIL;
	}
	return -1;
}

static int run(int argc, char **argv)
{
	struct est e;
	struct targets t;
	double t0, c0;
	int st, partial = 0, ok = 0, scanned = 0, denied = 0, ret = SP_EXIT_OK;

	memset(&e, 0, sizeof(e));
	memset(&t, 0, sizeof(t));
	read_host(&e.host);
	st = parse(argc, argv, &e, &t);
	if (st < 0 && e.o.domains)
		st = est_domains_load(&e);
	if (st < 0)
		st = build_procs(&e, &t);
	sp_pids_free(&t.pids);
	sp_pids_free(&t.found);
	e.numa = !e.o.merge_across_nodes && e.host.numa_nodes > 1;
	if (st < 0 && e.o.domains)
		st = est_domains_place(&e);
	if (st >= 0) {
		est_domains_free(&e);
		free(e.procs);
		return st;
	}
	if (e.o.low_priority)
		low_priority();
	e.zero_hash = sp_hash_zero();
	t0 = ((double)sp_clock_ns(CLOCK_MONOTONIC) / 1e9);
	c0 = ((double)sp_clock_ns(CLOCK_PROCESS_CPUTIME_ID) / 1e9);
	for (e.sample = 0; e.sample < e.o.samples; e.sample++) {
		if (e.sample > 0)
			sp_sleep(e.o.interval);
		if (est_scan(&e)) {
			sp_errorf("samepage estimate: out of memory for %llu page records: result is partial\n",
				  (unsigned long long)e.npg);
			break;
		}
	}
	e.sample = e.o.samples; /* done */
	est_drop_volatile(&e);
	if (est_add_ksm_zero(&e))
		sp_errorf("samepage estimate: out of memory: already merged zero pages left out\n");
	e.scan_seconds = ((double)sp_clock_ns(CLOCK_MONOTONIC) / 1e9) - t0 - (e.o.samples - 1) * e.o.interval;
	if (e.o.domains && est_domains_model(&e)) {
		sp_errorf("samepage estimate: out of memory for the model per domain\n");
		est_domains_free(&e);
		free(e.pg);
		free(e.vmas);
		free(e.procs);
		return SP_EXIT_FAIL;
	}
	est_model(&e);
	e.cpu_seconds = ((double)sp_clock_ns(CLOCK_PROCESS_CPUTIME_ID) / 1e9) - c0;

	for (uint32_t i = 0; i < e.nprocs; i++) {
		const struct est_proc *p = &e.procs[i];

		if (p->status == EST_OK)
			ok++;
		if (p->pages)
			scanned++;
		if (p->status == EST_DENIED)
			denied++;
		if (p->status != EST_OK || p->partial)
			partial = 1;
		if (p->status == EST_DENIED)
			sp_errorf("samepage estimate: pid %d (%s): permission denied (needs ptrace access: "
				  "same user and ptrace_scope 0, or CAP_SYS_PTRACE)\n",
				  p->info.pid, sp_safe(p->info.comm));
		else if (p->status == EST_GONE)
			sp_errorf("samepage estimate: pid %d (%s) exited %s\n", p->info.pid, sp_safe(p->info.comm),
				  p->pages ? "during the scan" : "before it was scanned");
		else if (p->status == EST_FAILED)
			sp_errorf("samepage estimate: pid %d (%s): %s\n", p->info.pid, sp_safe(p->info.comm),
				  strerror(p->err));
	}
	partial |= e.oom;
	/* one rule for targets that go away, whenever they do: what was read
	 * of them is a partial result (5); nothing read at all is a failure */
	if (!ok && !scanned) {
		ret = denied ? SP_EXIT_PERM : SP_EXIT_FAIL;
	} else {
		if (e.o.json)
			est_print_json(&e, partial);
		else
			est_print(&e, partial);
		ret = partial ? SP_EXIT_PARTIAL : SP_EXIT_OK;
	}
	est_domains_free(&e);
	free(e.pair);
	free(e.pg);
	free(e.vmas);
	free(e.procs);
	return ret;
}

SP_COMMAND_JSON(estimate, "predict what the kernel's KSM would save on given processes", run);
