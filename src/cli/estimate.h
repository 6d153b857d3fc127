/* SPDX-License-Identifier: MIT */
/*
 * estimate.h - shared state of `samepage estimate`:
 *
 *   estimate.c         options, targets, the run, exit statuses
 *   estimate_scan.c    reading target memory into per-page records
 *   estimate_report.c  the model's outcome per VMA and process, summary, JSON
 *   estimate_domains.c --domains: samepaged's merge domains, the model per
 *                      domain and its report
 *
 * One record (struct sp_model_page, 16 bytes) per scanned page is all that
 * grows with the size of the targets.
 */
#ifndef SP_CLI_ESTIMATE_H
#define SP_CLI_ESTIMATE_H

#include <stdint.h>

#include "cli/progress.h"
#include "core/model.h"
#include "kernel/procs.h"

/* high bit of sp_model_page.vma: content changed between samples */
#define EST_VOLATILE 0x80000000u

enum est_status {
	EST_OK = 0,
	EST_GONE,   /* exited before or during the scan        */
	EST_DENIED, /* no permission (ptrace access refused)   */
	EST_FAILED, /* another error                           */
};

struct est_vma {
	uint32_t proc; /* index into est.procs                     */
	uintptr_t start, end;
	char name[80];
	uint64_t pages; /* scanned pages (present, anonymous)        */
	uint64_t volatile_pages;
	uint64_t zero;	   /* all-zero pages (not thp_zero)             */
	uint64_t thp_zero; /* all-zero subpages of THPs (model.h)       */
	uint64_t ksm;	   /* already KSM pages (smaps "KSM:")          */
	double saving;	   /* pages the model frees, attributed         */
};

struct est_proc {
	struct sp_proc info;
	enum est_status status;
	int partial; /* exited or lost pages mid-scan             */
	int err;     /* errno of the failure                      */
	uint64_t pages, volatile_pages, zero, ksm, vanished;
	double saving;
	uint64_t vmas;	  /* VMAs the kernel would scan                */
	int domain;	  /* --domains: index into est.doms, -1 not admitted */
	char refused[96]; /* --domains: why samepaged would refuse it     */
};

struct est_opts {
	int all_anon;
	uint32_t max_page_sharing;
	int use_zero_pages;
	int merge_across_nodes;
	int thp_split_zero; /* the kernel is 6.12 or later (model.h) */
	int samples;
	double interval;
	double rate_limit; /* MB/s, 0: none */
	int json;
	int progress; /* -1 auto */
	int top;
	int low_priority;
	const char *domains; /* --domains: samepaged's config file, NULL: not asked */
	int domains_named;   /* the file was named: it must exist            */
};

/* --domains: one merge domain of samepaged and its model's outcome */
struct est_domain {
	char name[64]; /* a configured domain's, or "user:<uid>"       */
	int conf;      /* index into the config, -1: a per-user domain */
	struct sp_model_knobs kn;
	int merge_across_nodes;
	int knobs_set;	  /* the config sets one of the model's knobs   */
	uint32_t nprocs;  /* targets placed in it                       */
	uint64_t records; /* their records (pages modelled)             */
	uint64_t volatile_pages;
	struct sp_model_result res;
};

struct sd_config;

/* the host's KSM knobs (-1: unknown) */
struct est_host {
	int ksm; /* /sys/kernel/mm/ksm exists */
	long run, pages_to_scan, sleep_millisecs, max_page_sharing, use_zero_pages, merge_across_nodes;
	long advisor_target_scan_time, advisor_min_pages_to_scan, advisor_max_pages_to_scan;
	int numa_nodes;
	int thp_split_zero; /* Linux 6.12+: a THP split maps zero subpages to the zero page */
};

struct est {
	struct est_opts o;
	struct est_host host;
	struct est_proc *procs;
	uint32_t nprocs;
	struct est_vma *vmas;
	uint32_t nvmas, vmas_cap;
	struct sp_model_page *pg;
	uint64_t npg, pg_cap;
	uint64_t zero_hash;
	int numa;      /* read page nodes (merge_across_nodes=0, >1 node) */
	int sample;    /* 0-based sample being taken                      */
	uint64_t join; /* samples > 0: cursor into pg                     */
	uint64_t volatile_pages;
	uint64_t vanished; /* pages that went away between pagemap and read   */
	int oom;	   /* ran out of memory for records: partial          */
	uint64_t bytes_read;
	double scan_seconds, cpu_seconds;
	struct sp_progress progress;
	uint64_t progress_total, progress_done;
	/* results */
	struct sp_model_result res;
	uint64_t already_ksm, already_zero;
	uint64_t zero_pages;	 /* all-zero pages scanned, outside THPs */
	uint64_t thp_zero_pages; /* all-zero subpages of THPs scanned    */
	uint64_t *pair;		 /* nprocs x nprocs identical pages, or NULL */
	/* --domains */
	struct sd_config *cfg;
	int cfg_missing; /* the default file is absent: built-in defaults */
	struct est_domain *doms;
	uint32_t ndoms;
	int keep_nodes;	 /* keys without the node, which is in nodes[]:  */
	uint16_t *nodes; /* a domain's merge_across_nodes differs       */
};

/* estimate_scan.c: the model's knobs */
struct sp_model_knobs est_knobs(const struct est *e);
/* estimate_scan.c: one sample over every target. 0, or -ENOMEM when the
 * records could not grow (the scan stops, the result is partial). */
int est_scan(struct est *e);
/* after the last sample: drops volatile records */
void est_drop_volatile(struct est *e);
/* records for pages KSM already mapped to the zero page (ksm_stat) */
int est_add_ksm_zero(struct est *e);

/* estimate_domains.c: reads the config (NULL path: the default file).
 * -1 to go on, or an exit status (the message printed). */
int est_domains_load(struct est *e);
/* puts each target in its domain: -1 to go on, or an exit status */
int est_domains_place(struct est *e);
/* the model per domain; before est_model. 0 or -ENOMEM. */
int est_domains_model(struct est *e);
void est_domains_print(const struct est *e);
struct json_object;
void est_domains_json(const struct est *e, struct json_object *root);
void est_domains_free(struct est *e);

/* estimate_report.c */
void est_model(struct est *e);
void est_print(struct est *e, int partial);
int est_print_json(struct est *e, int partial);

#endif /* SP_CLI_ESTIMATE_H */
