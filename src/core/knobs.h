/* SPDX-License-Identifier: MIT */
/*
 * knobs.h - one table of every knob and counter of /sys/kernel/mm/ksm and
 * of the engine's own knobs, by their sysfs names: pure data and parsing,
 * no system calls.
 *
 * The table drives samepage_set/get and the SAMEPAGE_<KNOB> environment
 * variables of the engine, and, through src/kernel/ksm.c, the readers and
 * writers of the kernel's files (`samepage set`, `status`, `top`, `tune`).
 * Each entry says what the kernel's store function does with a write
 * (Linux 6.18 mm/ksm.c, checked on a running kernel by tests/ksm_knobs.c
 * and tests/cli_ksm.sh):
 *
 *   type    the parser: kstrtouint, kstrtoul, kstrtoint (all base 10:
 *           an optional '+', decimal digits, one optional trailing
 *           newline; "0x10", " 1", "1 " are EINVAL), kstrtobool (the first
 *           character y/Y/t/T/e/E/1 or n/N/f/F/d/D/0, or o/O then n/N or
 *           f/F; the rest is not looked at), or sysfs_streq against words.
 *   range   [min, max] after parsing; outside it EINVAL.
 *   flags   SP_KF_PARSE_ERRNO: the store returns the parser's own error
 *           (ERANGE on overflow) where others turn every failure into
 *           EINVAL; SP_KF_TRUNC32: parsed as unsigned long, kept in an
 *           unsigned int (the low 32 bits).
 *   refuse  the state in which a well-formed write is refused, and the
 *           errno (EBUSY while KSM pages exist; EINVAL while the advisor
 *           owns pages_to_scan).
 *   effect  what a write does besides storing the value (run=2 unmerges,
 *           a change of advisor_mode resets the advisor and pages_to_scan).
 *
 * The engine stores knobs in 32 bits (struct sp_knobs): an unsigned long
 * knob the kernel would keep above 2^32 - 1 is EINVAL there.
 */
#ifndef SP_KNOBS_H
#define SP_KNOBS_H

#include <stddef.h>
#include <stdint.h>

struct sp_knobs {
	uint32_t run;
	uint32_t pages_to_scan;
	uint32_t sleep_millisecs;
	uint32_t max_page_sharing;
	uint32_t use_zero_pages;
	uint32_t stable_node_chains_prune_millisecs;
	uint32_t merge_across_nodes;
	uint32_t smart_scan;
	uint32_t advisor_mode; /* SP_ADVISOR_* */
	uint32_t advisor_max_cpu;
	uint32_t advisor_target_scan_time;
	uint32_t advisor_min_pages_to_scan;
	uint32_t advisor_max_pages_to_scan;
	uint32_t batch_usecs;  /* engine: longest uninterrupted batch      */
	uint32_t scan_threads; /* engine: threads reading and hashing pages */
	uint32_t sched_idle;   /* engine: scanner in SCHED_IDLE              */
};

enum { SP_ADVISOR_NONE, SP_ADVISOR_SCAN_TIME };

/* The value's syntax: the kernel's parser for it. */
enum sp_knob_type {
	SP_KNOB_COUNTER, /* read-only: "%lu" ("%ld" with SP_KF_SIGNED)   */
	SP_KNOB_UINT,	 /* kstrtouint: unsigned int                     */
	SP_KNOB_ULONG,	 /* kstrtoul: unsigned long                      */
	SP_KNOB_INT,	 /* kstrtoint: int                               */
	SP_KNOB_BOOL,	 /* kstrtobool; shown 0 or 1                     */
	SP_KNOB_ENUM,	 /* sysfs_streq with one of words; shown "[none] scan-time" */
};

enum {
	SP_KF_KERNEL = 1 << 0,	    /* a file of /sys/kernel/mm/ksm                */
	SP_KF_ENGINE = 1 << 1,	    /* a knob or counter of libsamepage           */
	SP_KF_NUMA = 1 << 2,	    /* the kernel has it only with CONFIG_NUMA     */
	SP_KF_SIGNED = 1 << 3,	    /* a counter that can be negative              */
	SP_KF_PARSE_ERRNO = 1 << 4, /* the parser's errno (ERANGE), not EINVAL     */
	SP_KF_TRUNC32 = 1 << 5,	    /* kept modulo 2^32 after parsing             */
};

/* When a well-formed write is refused (with refuse_errno). */
enum sp_knob_refuse {
	SP_REFUSE_NEVER,
	SP_REFUSE_SHARED,  /* a change while KSM pages exist (pages_shared > 0) */
	SP_REFUSE_ADVISOR, /* any write while advisor_mode is not none          */
};

/* What a write does besides storing the value. */
enum sp_knob_effect {
	SP_EFFECT_NONE,
	SP_EFFECT_UNMERGE,	   /* run: 2 unmerges everything; a failure leaves 0 */
	SP_EFFECT_ADVISOR_RESET,   /* a change resets the advisor and pages_to_scan */
	SP_EFFECT_THREADS,	   /* engine: the number of scanning threads         */
	SP_EFFECT_RESTART_HELPERS, /* engine: helper threads restart to apply it  */
};

struct sp_knob {
	const char *name;
	enum sp_knob_type type;
	unsigned flags;		     /* SP_KF_*                          */
	unsigned long long min, max; /* the kernel's range               */
	uint32_t def;		     /* default (the kernel's where it has it) */
	size_t offset;		     /* SP_KF_ENGINE: into struct sp_knobs, or
					 * for counters struct samepage_stats */
	enum sp_knob_refuse refuse;
	int refuse_errno; /* EBUSY, EINVAL                    */
	enum sp_knob_effect effect;
	const char *unit;	  /* "pages", "ms", "%", ... or ""    */
	const char *help;	  /* one line for people              */
	const char *const *words; /* SP_KNOB_ENUM: the values, by index */
};

#define SP_KNOB_COUNT 27
extern const struct sp_knob sp_knob_table[SP_KNOB_COUNT];
extern const size_t sp_knob_count;

/* The entry called name (knob or counter), or NULL. */
const struct sp_knob *sp_knob_find(const char *name);

/* The state a write is judged in. */
struct sp_knob_state {
	int shared;  /* KSM pages exist (pages_shared > 0) */
	int advisor; /* advisor_mode is not none           */
};

/* 0, or the -errno with which a write to k is refused in state st
 * (changes: the value written differs from the current one). */
int sp_knob_refused(const struct sp_knob *k, const struct sp_knob_state *st, int changes);

/* Parses text as the kernel's store function for k does: 0 with *out
 * set, or -EINVAL / -ERANGE as the kernel returns them; -EACCES for a
 * counter. SP_KF_TRUNC32 is applied: *out is what the kernel keeps. */
int sp_knob_parse_value(const struct sp_knob *k, const char *text, unsigned long long *out);

/* sp_knob_parse_value for the engine's 32-bit knobs: also -EINVAL for a
 * value above 2^32 - 1. */
int sp_knob_parse(const struct sp_knob *k, const char *text, uint32_t *out);

void sp_knobs_defaults(struct sp_knobs *kn);

/* The value as sysfs shows it (without newline). Returns snprintf's count. */
int sp_knob_format(const struct sp_knob *k, uint32_t v, char *buf, size_t len);

/* The value as it is written ("scan-time", "1", "300"). snprintf's count. */
int sp_knob_format_input(const struct sp_knob *k, unsigned long long v, char *buf, size_t len);

/* "0 or 1 (also y/n, on/off)", "an integer from 0 to 2", ... */
const char *sp_knob_range_text(const struct sp_knob *k, char *buf, size_t len);

static inline uint32_t *sp_knob_ptr(struct sp_knobs *kn, const struct sp_knob *k)
{
	return (uint32_t *)((char *)kn + k->offset);
}

/* kstrtoull(s, 10): 0, or -EINVAL / -ERANGE. */
int sp_parse_ulong(const char *s, unsigned long long *out);

/* kstrtobool: 0 with *out 0 or 1, or -EINVAL. */
int sp_parse_bool(const char *s, int *out);

#endif /* SP_KNOBS_H */
