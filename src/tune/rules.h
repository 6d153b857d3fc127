/* SPDX-License-Identifier: MIT */
/*
 * rules.h - the decisions of `samepage tune`, with no I/O: given the
 * host's memory, the KSM knobs as they are and two samples of ksmd's work,
 * which knobs should change, to what, and why (a sentence with the numbers).
 *
 * Two rule sets:
 *
 *   ksmtuned   the 2009 ksmtuned script's rules. The threshold is
 *              thres_coef % of MemTotal, or thres_const MiB if that is more.
 *              KSM is idle (run=0) when the VM processes' resident memory
 *              plus the threshold still fits in MemTotal and MemAvailable is
 *              above the threshold. Otherwise KSM runs (run=1, the computed
 *              sleep_millisecs) and pages_to_scan moves by boost while
 *              MemAvailable is below the threshold, by decay (negative)
 *              while it is not, kept within [npages_min, npages_max].
 *              Where ksmtuned adds MemFree+Buffers+Cached, MemAvailable is
 *              used; where it counts from 0, pages_to_scan starts from the
 *              kernel's value.
 *
 *   scan-time  the same run/stop rule (unless always_on), then pages_to_scan
 *              sized for a full scan of target_scan_s seconds with ksmd
 *              under max_cpu_pct % of a CPU. A kernel with advisor_mode does
 *              this itself: the rules then only set advisor_mode=scan-time
 *              and its target and CPU limit, and never pages_to_scan (the
 *              kernel refuses it with EINVAL while the advisor is on).
 */
#ifndef SP_TUNE_RULES_H
#define SP_TUNE_RULES_H

#include <stddef.h>

#include "kernel/cpulist.h"

enum sp_tune_mode { SP_TUNE_SCAN_TIME, SP_TUNE_KSMTUNED };

struct sp_tune_config {
	enum sp_tune_mode mode;
	double interval_s;    /* KSM_MONITOR_INTERVAL (60)                 */
	long sleep_msec;      /* KSM_SLEEP_MSEC (10), for 16 GiB of memory */
	long boost;	      /* KSM_NPAGES_BOOST (300)                    */
	long decay;	      /* KSM_NPAGES_DECAY (-50), <= 0              */
	long npages_min;      /* KSM_NPAGES_MIN (64)                       */
	long npages_max;      /* KSM_NPAGES_MAX (1250)                     */
	long thres_coef;      /* KSM_THRES_COEF (20) % of MemTotal         */
	long thres_const_mib; /* KSM_THRES_CONST (2048) MiB                */
	long target_scan_s;   /* seconds per full scan (200)               */
	long max_cpu_pct;     /* ksmd CPU ceiling, % of one CPU (70)       */
	long max_pages;	      /* scan-time: highest pages_to_scan (30000)  */
	int always_on;	      /* never stop KSM (run stays 1)              */
};

/* the defaults above */
void sp_tune_defaults(struct sp_tune_config *c);

/* -1 in a field: the kernel has no such knob */
struct sp_tune_knobs {
	long long run, pages_to_scan, sleep_millisecs;
	long long advisor_mode; /* 0 none, 1 scan-time, -1 absent */
	long long advisor_target_scan_time, advisor_max_cpu;
};

/* one reading of ksmd's progress */
struct sp_tune_sample {
	double t;		 /* seconds, monotonic                        */
	double ksmd_cpu_s;	 /* ksmd utime+stime in seconds, <0 unknown   */
	long long full_scans;	 /* <0 unknown                                */
	long long pages_scanned; /* <0 unknown                              */
	int running;		 /* run was 1 when read                       */
};

struct sp_tune_input {
	long long mem_total_kb, mem_avail_kb; /* /proc/meminfo            */
	long long committed_kb;		      /* resident memory of VMs  */
	long long scan_pages;		      /* pages in one full scan  */
	struct sp_tune_knobs k;
	int have_prev; /* prev holds the previous interval's sample */
	struct sp_tune_sample prev, cur;
};

/* knobs a decision may name */
enum sp_tune_knob {
	SP_TK_RUN,
	SP_TK_PAGES_TO_SCAN,
	SP_TK_SLEEP_MILLISECS,
	SP_TK_ADVISOR_MODE,
	SP_TK_ADVISOR_TARGET_SCAN_TIME,
	SP_TK_ADVISOR_MAX_CPU,
	SP_TK_COUNT,
};

/* the knob's name in /sys/kernel/mm/ksm */
const char *sp_tune_knob_name(enum sp_tune_knob k);

struct sp_tune_change {
	enum sp_tune_knob knob;
	char old[24], val[24]; /* as written to sysfs ("none", "300") */
	char reason[320];
};

#define SP_TUNE_MAXCHANGES 8

/* What the rules decide, in the order the writes must happen. Kept knobs
 * (considered, left alone) are listed too, with keep set. */
struct sp_tune_decision {
	int n;
	struct sp_tune_change c[SP_TUNE_MAXCHANGES];
	int keep[SP_TUNE_MAXCHANGES];
	/* what drove them, for logs */
	long long thres_kb;
	double ksmd_cpu_pct; /* <0 unknown */
	double scan_s;	     /* estimated seconds per full scan, <0 unknown */
};

/* KSM_THRES: max(thres_coef % of total, thres_const MiB), in kB */
long long sp_tune_threshold_kb(const struct sp_tune_config *c, long long total_kb);

/* ksmtuned's sleep_millisecs: sleep_msec scaled by 16 GiB / MemTotal,
 * integer division, at least 10. */
long long sp_tune_sleep_ms(const struct sp_tune_config *c, long long total_kb);

/* ksmd's CPU % of one CPU between two samples, <0 when unknown */
double sp_tune_cpu_pct(const struct sp_tune_sample *a, const struct sp_tune_sample *b);

/* Decides one interval. Changes are listed in the order to write them. */
void sp_tune_decide(const struct sp_tune_config *c, const struct sp_tune_input *in, struct sp_tune_decision *d);

/* Parses a ksmtuned.conf-style text (KEY=VALUE lines, # comments, shell
 * quotes) into c, over the values already there. 0, with msg a warning
 * naming keys that were ignored ("" if none); or -EINVAL, with msg saying
 * which line is wrong and why, and c unchanged. */
int sp_tune_config_parse(const char *text, struct sp_tune_config *c, char *msg, size_t len);

/* Sets one ksmtuned.conf key ("KSM_NPAGES_BOOST") from its text, with the
 * same checks. 0; -EINVAL bad value (msg says why); -ENOENT no such key. */
int sp_tune_config_set(struct sp_tune_config *c, const char *key, const char *value, char *msg, size_t len);

/* Checks a whole configuration (npages_min <= npages_max, ...). 0, or
 * -EINVAL with the reason in msg. */
int sp_tune_config_check(const struct sp_tune_config *c, char *msg, size_t len);

/* The housekeeping CPUs: online and neither isolated nor nohz_full. */
void sp_tune_housekeeping(const struct sp_cpus *online, const struct sp_cpus *isolated, const struct sp_cpus *nohz,
			  struct sp_cpus *out);

#endif /* SP_TUNE_RULES_H */
