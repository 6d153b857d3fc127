/* SPDX-License-Identifier: MIT */
/* knobs.c - the knob table and kernel-compatible value parsing. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/knobs.h"

#define K(n, t, d, lo, hi, h)                                           \
	{                                                               \
#n, t, offsetof(struct sp_knobs, n), d, lo, hi, h, NULL \
	}

static const char *const advisor_words[] = {"none", "scan-time", NULL};

const struct sp_knob sp_knob_table[] = {
	K(run, SP_KNOB_UINT, 0, 0, 2, "0 stop (keep merges), 1 merge, 2 unmerge everything and stop"),
	K(pages_to_scan, SP_KNOB_UINT, 100, 0, UINT_MAX, "pages to scan per batch"),
	K(sleep_millisecs, SP_KNOB_UINT, 20, 0, UINT_MAX, "sleep between batches, ms"),
	K(max_page_sharing, SP_KNOB_INT, 256, 2, INT_MAX,
	  "most sharers of one store page (EBUSY while pages are shared)"),
	K(use_zero_pages, SP_KNOB_BOOL, 0, 0, 1, "drop all-zero pages to the kernel's zero page"),
	K(stable_node_chains_prune_millisecs, SP_KNOB_UINT, 2000, 0, UINT_MAX, "how often chains are pruned, ms"),
	K(merge_across_nodes, SP_KNOB_UINT, 1, 0, 1,
	  "merge pages of different NUMA nodes (EBUSY while pages are shared)"),
	K(smart_scan, SP_KNOB_BOOL, 1, 0, 1, "skip pages that stayed unique on recent visits"),
	{"advisor_mode", SP_KNOB_ENUM, offsetof(struct sp_knobs, advisor_mode), SP_ADVISOR_NONE, 0, 1,
	 "none, or scan-time: pages_to_scan adapts to reach advisor_target_scan_time", advisor_words},
	K(advisor_max_cpu, SP_KNOB_UINT, 70, 0, UINT_MAX, "advisor: most CPU percent the scanner may use"),
	K(advisor_target_scan_time, SP_KNOB_UINT, 200, 1, UINT_MAX, "advisor: seconds a full scan should take"),
	K(advisor_min_pages_to_scan, SP_KNOB_UINT, 500, 0, UINT_MAX, "advisor: smallest pages_to_scan"),
	K(advisor_max_pages_to_scan, SP_KNOB_UINT, 30000, 0, UINT_MAX, "advisor: largest pages_to_scan"),
	K(batch_usecs, SP_KNOB_UINT, 1000, 10, 1000000,
	  "engine: longest uninterrupted batch, us (the scanner yields in between)"),
	K(scan_threads, SP_KNOB_UINT, 1, 1, 64, "engine: threads that read and hash pages (the scanner and helpers)"),
	K(sched_idle, SP_KNOB_BOOL, 0, 0, 1,
	  "engine: 1 runs the scanner as SCHED_IDLE (only CPU time nobody else wants); 0 nice 5, as ksmd"),
};
const size_t sp_knob_count = sizeof(sp_knob_table) / sizeof(sp_knob_table[0]);

const struct sp_knob *sp_knob_find(const char *name)
{
	size_t i;

	for (i = 0; name && i < sp_knob_count; i++)
		if (!strcmp(sp_knob_table[i].name, name))
			return &sp_knob_table[i];
	return NULL;
}

void sp_knobs_defaults(struct sp_knobs *kn)
{
	size_t i;

	memset(kn, 0, sizeof(*kn));
	for (i = 0; i < sp_knob_count; i++)
		*sp_knob_ptr(kn, &sp_knob_table[i]) = sp_knob_table[i].def;
}

/* Like the kernel's kstrtoull(s, 10): optional '+', digits, one optional
 * trailing newline; nothing else. */
int sp_parse_ulong(const char *s, unsigned long long *out)
{
	unsigned long long v = 0;
	int digits = 0;

	if (*s == '+')
		s++;
	for (; *s >= '0' && *s <= '9'; s++, digits++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (ULLONG_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (*s == '\n')
		s++;
	if (!digits || *s)
		return -EINVAL;
	*out = v;
	return 0;
}

/* kstrtoint(s, 10): a signed decimal that fits an int. */
static int parse_int(const char *s, long long *out)
{
	unsigned long long v;
	int neg = *s == '-', err;

	err = sp_parse_ulong(s + neg, &v);
	if (err)
		return err;
	if (neg && s[1] == '+')
		return -EINVAL;
	if (v > (unsigned long long)INT_MAX + neg)
		return -ERANGE;
	*out = neg ? -(long long)v : (long long)v;
	return 0;
}

/* kstrtobool: first character y/Y/1/n/N/0, or on/off in any case. */
static int parse_bool(const char *s, uint32_t *out)
{
	switch (s[0]) {
	case 'y':
	case 'Y':
	case '1':
		*out = 1;
		return 0;
	case 'n':
	case 'N':
	case '0':
		*out = 0;
		return 0;
	case 'o':
	case 'O':
		if (s[1] == 'n' || s[1] == 'N') {
			*out = 1;
			return 0;
		}
		if (s[1] == 'f' || s[1] == 'F') {
			*out = 0;
			return 0;
		}
		break;
	}
	return -EINVAL;
}

/* sysfs_streq: equal, ignoring one trailing newline on either side. */
static int streq_nl(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return (!*a && (!*b || (b[0] == '\n' && !b[1]))) || (!*b && a[0] == '\n' && !a[1]);
}

int sp_knob_format(const struct sp_knob *k, uint32_t v, char *buf, size_t len)
{
	size_t used = 0;
	int n;

	if (k->type != SP_KNOB_ENUM)
		return snprintf(buf, len, "%u", v);
	if (len)
		buf[0] = 0;
	for (uint32_t i = 0; k->words[i]; i++) {
		n = snprintf(buf + used, len > used ? len - used : 0, i == v ? "%s[%s]" : "%s%s", i ? " " : "",
			     k->words[i]);
		if (n < 0)
			return n;
		used += (size_t)n;
	}
	return (int)used;
}

int sp_knob_parse(const struct sp_knob *k, const char *text, uint32_t *out)
{
	unsigned long long u;
	long long i;
	int err;

	switch (k->type) {
	case SP_KNOB_ENUM:
		for (uint32_t w = 0; k->words[w]; w++) {
			if (streq_nl(k->words[w], text)) {
				*out = w;
				return 0;
			}
		}
		return -EINVAL;
	case SP_KNOB_BOOL:
		return parse_bool(text, out);
	case SP_KNOB_INT:
		err = parse_int(text, &i);
		if (err)
			return err;
		if (i < (long long)k->min || i > (long long)k->max)
			return -EINVAL;
		*out = (uint32_t)i;
		return 0;
	case SP_KNOB_UINT:
		if (sp_parse_ulong(text, &u) || u > UINT_MAX || u < k->min || u > k->max)
			return -EINVAL;
		*out = (uint32_t)u;
		return 0;
	}
	return -EINVAL;
}
