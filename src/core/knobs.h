/* SPDX-License-Identifier: MIT */
/*
 * knobs.h - the engine's tunables, by their /sys/kernel/mm/ksm names.
 *
 * One table (knobs.c) drives samepage_set/get, the SAMEPAGE_<KNOB>
 * environment variables read at start-up and the command line. Parsing
 * follows the kernel's store functions: the same accepted syntax (decimal,
 * optional '+', one trailing newline), the same ranges and the same errno.
 * Rules that depend on the engine's state (EBUSY) are the engine's.
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

enum sp_knob_type {
	SP_KNOB_UINT, /* kstrtoul, <= UINT_MAX, then [min, max]      */
	SP_KNOB_INT,  /* kstrtoint (max_page_sharing), then >= min   */
	SP_KNOB_BOOL, /* kstrtobool                                   */
	SP_KNOB_ENUM, /* one word of `words`; shown as "[none] scan-time" */
};

struct sp_knob {
	const char *name;
	enum sp_knob_type type;
	size_t offset; /* into struct sp_knobs */
	uint32_t def, min, max;
	const char *help;
	const char *const *words; /* SP_KNOB_ENUM: the values, by index */
};

extern const struct sp_knob sp_knob_table[];
extern const size_t sp_knob_count;

/* The knob called name, or NULL. */
const struct sp_knob *sp_knob_find(const char *name);
/* Parses text for knob k. 0 with *out set, or -EINVAL / -ERANGE. */
int sp_knob_parse(const struct sp_knob *k, const char *text, uint32_t *out);
void sp_knobs_defaults(struct sp_knobs *kn);
/* The value as sysfs shows it (without newline). Returns snprintf's count. */
int sp_knob_format(const struct sp_knob *k, uint32_t v, char *buf, size_t len);

static inline uint32_t *sp_knob_ptr(struct sp_knobs *kn, const struct sp_knob *k)
{
	return (uint32_t *)((char *)kn + k->offset);
}

/* Kernel-style parsing of an unsigned decimal: 0 or -EINVAL / -ERANGE. */
int sp_parse_ulong(const char *s, unsigned long long *out);

#endif /* SP_KNOBS_H */
