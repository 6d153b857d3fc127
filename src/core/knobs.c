/* SPDX-License-Identifier: MIT */
/*
 * knobs.c - the one table of KSM knobs and counters, and the kernel's
 * parsers for their values (see knobs.h).
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/knobs.h"
#include "samepage.h"

#define U32 4294967295ull
#define S32 2147483647ull
#define U64 18446744073709551615ull

#define KERNEL	 SP_KF_KERNEL
#define BOTH	 (SP_KF_KERNEL | SP_KF_ENGINE)
#define KNOB(n)	 offsetof(struct sp_knobs, n)
#define STAT(n)	 offsetof(struct samepage_stats, n)
#define SHARED	 SP_REFUSE_SHARED, EBUSY
#define ADVISOR	 SP_REFUSE_ADVISOR, EINVAL
#define ANYTIME	 SP_REFUSE_NEVER, 0
#define COUNTER	 SP_KNOB_COUNTER, BOTH, 0, 0, 0
#define NOEFFECT SP_EFFECT_NONE

static const char *const advisor_words[] = {"none", "scan-time", NULL};

/* Kernel files first, in the order `samepage status` shows them. Fields:
 * name, type, flags, min, max, default, offset, refuse (when, errno),
 * effect, unit, help, words. */
const struct sp_knob sp_knob_table[SP_KNOB_COUNT] = {
	{"run", SP_KNOB_UINT, BOTH, 0, 2, 0, KNOB(run), ANYTIME, SP_EFFECT_UNMERGE, "",
	 "0 stop (keep merges), 1 merge, 2 unmerge everything", NULL},
	{"pages_to_scan", SP_KNOB_UINT, BOTH, 0, U32, 100, KNOB(pages_to_scan), ADVISOR, NOEFFECT, "pages",
	 "pages ksmd scans per batch", NULL},
	{"sleep_millisecs", SP_KNOB_UINT, BOTH, 0, U32, 20, KNOB(sleep_millisecs), ANYTIME, NOEFFECT, "ms",
	 "ksmd sleep between batches", NULL},
	{"max_page_sharing", SP_KNOB_INT, BOTH | SP_KF_PARSE_ERRNO, 2, S32, 256, KNOB(max_page_sharing), SHARED,
	 NOEFFECT, "sharers", "most sharers of one KSM page", NULL},
	{"merge_across_nodes", SP_KNOB_ULONG, BOTH | SP_KF_NUMA | SP_KF_PARSE_ERRNO, 0, 1, 1, KNOB(merge_across_nodes),
	 SHARED, NOEFFECT, "", "1 merge across NUMA nodes, 0 per node", NULL},
	{"use_zero_pages", SP_KNOB_BOOL, BOTH, 0, 1, 0, KNOB(use_zero_pages), ANYTIME, NOEFFECT, "",
	 "map empty pages to the zero page", NULL},
	{"smart_scan", SP_KNOB_BOOL, BOTH, 0, 1, 1, KNOB(smart_scan), ANYTIME, NOEFFECT, "",
	 "skip pages that stayed unique", NULL},
	{"stable_node_chains_prune_millisecs", SP_KNOB_UINT, BOTH, 0, U32, 2000,
	 KNOB(stable_node_chains_prune_millisecs), ANYTIME, NOEFFECT, "ms", "how often stale chain dups are pruned",
	 NULL},
	{"advisor_mode", SP_KNOB_ENUM, BOTH, 0, 1, SP_ADVISOR_NONE, KNOB(advisor_mode), ANYTIME,
	 SP_EFFECT_ADVISOR_RESET, "", "none, or scan-time: the advisor sets pages_to_scan", advisor_words},
	{"advisor_target_scan_time", SP_KNOB_ULONG, BOTH, 1, U64, 200, KNOB(advisor_target_scan_time), ANYTIME,
	 NOEFFECT, "s", "advisor: seconds per full scan", NULL},
	{"advisor_max_cpu", SP_KNOB_ULONG, BOTH | SP_KF_TRUNC32, 0, U64, 70, KNOB(advisor_max_cpu), ANYTIME, NOEFFECT,
	 "%", "advisor: ksmd CPU ceiling", NULL},
	{"advisor_min_pages_to_scan", SP_KNOB_ULONG, BOTH, 0, U64, 500, KNOB(advisor_min_pages_to_scan), ANYTIME,
	 NOEFFECT, "pages", "advisor: lowest pages_to_scan", NULL},
	{"advisor_max_pages_to_scan", SP_KNOB_ULONG, BOTH, 0, U64, 30000, KNOB(advisor_max_pages_to_scan), ANYTIME,
	 NOEFFECT, "pages", "advisor: highest pages_to_scan", NULL},
	{"full_scans", COUNTER, STAT(full_scans), ANYTIME, NOEFFECT, "", "full scans completed", NULL},
	{"pages_scanned", COUNTER, STAT(pages_scanned), ANYTIME, NOEFFECT, "pages", "pages scanned, ever", NULL},
	{"pages_skipped", COUNTER, STAT(pages_skipped), ANYTIME, NOEFFECT, "pages", "pages smart_scan skipped, ever",
	 NULL},
	{"pages_shared", COUNTER, STAT(pages_shared), ANYTIME, NOEFFECT, "pages", "KSM pages in use", NULL},
	{"pages_sharing", COUNTER, STAT(pages_sharing), ANYTIME, NOEFFECT, "pages",
	 "pages mapped to a KSM page (saved)", NULL},
	{"pages_unshared", COUNTER, STAT(pages_unshared), ANYTIME, NOEFFECT, "pages", "unique pages checked repeatedly",
	 NULL},
	{"pages_volatile", COUNTER, STAT(pages_volatile), ANYTIME, NOEFFECT, "pages",
	 "pages changing too fast to merge", NULL},
	{"ksm_zero_pages", COUNTER, STAT(ksm_zero_pages), ANYTIME, NOEFFECT, "pages",
	 "empty pages mapped to the zero page", NULL},
	{"stable_node_chains", COUNTER, STAT(stable_node_chains), ANYTIME, NOEFFECT, "",
	 "KSM pages that hit max_page_sharing", NULL},
	{"stable_node_dups", COUNTER, STAT(stable_node_dups), ANYTIME, NOEFFECT, "", "KSM pages in those chains", NULL},
	{"general_profit", SP_KNOB_COUNTER, BOTH | SP_KF_SIGNED, 0, 0, 0, STAT(general_profit), ANYTIME, NOEFFECT,
	 "bytes", "bytes saved minus rmap item cost", NULL},
	/* the engine's own */
	{"batch_usecs", SP_KNOB_UINT, SP_KF_ENGINE, 10, 1000000, 1000, KNOB(batch_usecs), ANYTIME, NOEFFECT, "us",
	 "engine: longest uninterrupted batch (the scanner yields in between)", NULL},
	{"scan_threads", SP_KNOB_UINT, SP_KF_ENGINE, 1, 64, 1, KNOB(scan_threads), ANYTIME, SP_EFFECT_THREADS, "",
	 "engine: threads that read and hash pages (the scanner and helpers)", NULL},
	{"sched_idle", SP_KNOB_BOOL, SP_KF_ENGINE, 0, 1, 0, KNOB(sched_idle), ANYTIME, SP_EFFECT_RESTART_HELPERS, "",
	 "engine: 1 runs the scanner as SCHED_IDLE; 0 nice 5, as ksmd", NULL},
};
const size_t sp_knob_count = SP_KNOB_COUNT;

const struct sp_knob *sp_knob_find(const char *name)
{
	for (size_t i = 0; name && i < SP_KNOB_COUNT; i++)
		if (!strcmp(sp_knob_table[i].name, name))
			return &sp_knob_table[i];
	return NULL;
}

int sp_knob_refused(const struct sp_knob *k, const struct sp_knob_state *st, int changes)
{
	switch (k->refuse) {
	case SP_REFUSE_SHARED:
		return changes && st->shared ? -k->refuse_errno : 0;
	case SP_REFUSE_ADVISOR:
		return st->advisor ? -k->refuse_errno : 0;
	case SP_REFUSE_NEVER:
		break;
	}
	return 0;
}

void sp_knobs_defaults(struct sp_knobs *kn)
{
	memset(kn, 0, sizeof(*kn));
	for (size_t i = 0; i < SP_KNOB_COUNT; i++) {
		const struct sp_knob *k = &sp_knob_table[i];

		if ((k->flags & SP_KF_ENGINE) && k->type != SP_KNOB_COUNTER)
			*sp_knob_ptr(kn, k) = k->def;
	}
}

/* kstrtoull(s, 10): optional '+', digits, one optional trailing newline;
 * an overflow is ERANGE even with junk after it, as _parse_integer. */
int sp_parse_ulong(const char *s, unsigned long long *out)
{
	unsigned long long v = 0;
	int digits = 0, over = 0;

	if (*s == '+')
		s++;
	for (; *s >= '0' && *s <= '9'; s++, digits++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (ULLONG_MAX - d) / 10)
			over = 1;
		v = v * 10 + d;
	}
	if (over)
		return -ERANGE;
	if (*s == '\n')
		s++;
	if (!digits || *s)
		return -EINVAL;
	*out = v;
	return 0;
}

/* kstrtoint(s, 10): a signed decimal that fits an int ("-+5" is EINVAL:
 * the '+' is taken only without '-'). */
static int parse_int(const char *s, long long *out)
{
	unsigned long long v;
	int neg = *s == '-', err;

	if (neg && s[1] == '+')
		return -EINVAL;
	err = sp_parse_ulong(s + neg, &v);
	if (err)
		return err;
	if (v > (unsigned long long)INT_MAX + (unsigned)neg)
		return -ERANGE;
	*out = neg ? -(long long)v : (long long)v;
	return 0;
}

int sp_parse_bool(const char *s, int *out)
{
	switch (s[0]) {
	case 'y':
	case 'Y':
	case 't':
	case 'T':
	case 'e':
	case 'E':
	case '1':
		*out = 1;
		return 0;
	case 'n':
	case 'N':
	case 'f':
	case 'F':
	case 'd':
	case 'D':
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

/* The unsigned parsers at their width: 0, -EINVAL, -ERANGE. */
static int parse_unsigned(const struct sp_knob *k, const char *text, unsigned long long *out)
{
	int err = sp_parse_ulong(text, out);

	if (!err && k->type == SP_KNOB_UINT && *out > U32)
		err = -ERANGE; /* kstrtouint */
	return err;
}

int sp_knob_parse_value(const struct sp_knob *k, const char *text, unsigned long long *out)
{
	unsigned long long u = 0;
	long long i = 0;
	int err = 0, b;

	switch (k->type) {
	case SP_KNOB_COUNTER:
		return -EACCES;
	case SP_KNOB_ENUM:
		for (u = 0; k->words[u]; u++)
			if (streq_nl(k->words[u], text))
				break;
		err = k->words[u] ? 0 : -EINVAL;
		break;
	case SP_KNOB_BOOL:
		err = sp_parse_bool(text, &b);
		u = (unsigned long long)b;
		break;
	case SP_KNOB_INT:
		err = parse_int(text, &i);
		if (!err && (i < (long long)k->min || i > (long long)k->max))
			return -EINVAL;
		u = (unsigned long long)i;
		break;
	case SP_KNOB_UINT:
	case SP_KNOB_ULONG:
		err = parse_unsigned(k, text, &u);
		break;
	}
	if (err)
		return k->flags & SP_KF_PARSE_ERRNO ? err : -EINVAL;
	if (u < k->min || u > k->max)
		return -EINVAL;
	*out = k->flags & SP_KF_TRUNC32 ? u & U32 : u;
	return 0;
}

int sp_knob_parse(const struct sp_knob *k, const char *text, uint32_t *out)
{
	unsigned long long v;
	int err = sp_knob_parse_value(k, text, &v);

	if (err)
		return err;
	if (v > U32)
		return -EINVAL; /* the engine keeps 32 bits */
	*out = (uint32_t)v;
	return 0;
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

int sp_knob_format_input(const struct sp_knob *k, unsigned long long v, char *buf, size_t len)
{
	if (k->type == SP_KNOB_ENUM)
		return snprintf(buf, len, "%s", k->words[v]);
	if (k->type == SP_KNOB_INT)
		return snprintf(buf, len, "%lld", (long long)v);
	return snprintf(buf, len, "%llu", v);
}

const char *sp_knob_range_text(const struct sp_knob *k, char *buf, size_t len)
{
	if (k->type == SP_KNOB_BOOL)
		return "0 or 1 (also y/n, on/off)";
	if (k->type == SP_KNOB_ENUM) {
		size_t used = 0;

		buf[0] = 0;
		for (size_t i = 0; k->words[i] && used < len; i++)
			used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? " or " : "", k->words[i]);
		return buf;
	}
	if (k->max >= U32)
		snprintf(buf, len, "an integer >= %llu%s", k->min, k->max == U32 ? " and < 2^32" : "");
	else
		snprintf(buf, len, "an integer from %llu to %llu", k->min, k->max);
	return buf;
}
