/* SPDX-License-Identifier: MIT */
/*
 * ksm.c - the table of KSM knobs and counters, snapshots and writes
 * (see ksm.h). Ranges are the kernel's: an out-of-range value is refused
 * here with the same EINVAL the kernel would give, before any write.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "kernel/ksm.h"
#include "kernel/readfile.h"

#define U32 4294967295ull
#define S32 2147483647ull
#define U64 18446744073709551615ull

const struct sp_knob sp_knobs[SP_KSM_NKNOBS] = {
	{"run", SP_KNOB_UINT, 0, 2, "", "0 stop (keep merges), 1 merge, 2 unmerge everything"},
	{"pages_to_scan", SP_KNOB_UINT, 0, U32, "pages", "pages ksmd scans per batch"},
	{"sleep_millisecs", SP_KNOB_UINT, 0, U32, "ms", "ksmd sleep between batches"},
	{"max_page_sharing", SP_KNOB_UINT, 2, S32, "sharers", "most sharers of one KSM page"},
	{"merge_across_nodes", SP_KNOB_UINT, 0, 1, "", "1 merge across NUMA nodes, 0 per node"},
	{"use_zero_pages", SP_KNOB_BOOL, 0, 1, "", "map empty pages to the zero page"},
	{"smart_scan", SP_KNOB_BOOL, 0, 1, "", "skip pages that stayed unique"},
	{"stable_node_chains_prune_millisecs", SP_KNOB_UINT, 0, U32, "ms", "how often stale chain dups are pruned"},
	{"advisor_mode", SP_KNOB_MODE, 0, 1, "", "none, or scan-time: the advisor sets pages_to_scan"},
	{"advisor_target_scan_time", SP_KNOB_UINT, 1, U64, "s", "advisor: seconds per full scan"},
	{"advisor_max_cpu", SP_KNOB_UINT, 0, U64, "%", "advisor: ksmd CPU ceiling"},
	{"advisor_min_pages_to_scan", SP_KNOB_UINT, 0, U64, "pages", "advisor: lowest pages_to_scan"},
	{"advisor_max_pages_to_scan", SP_KNOB_UINT, 0, U64, "pages", "advisor: highest pages_to_scan"},
	{"full_scans", SP_KNOB_COUNTER, 0, 0, "", "full scans completed"},
	{"pages_scanned", SP_KNOB_COUNTER, 0, 0, "pages", "pages scanned, ever"},
	{"pages_skipped", SP_KNOB_COUNTER, 0, 0, "pages", "pages smart_scan skipped, ever"},
	{"pages_shared", SP_KNOB_COUNTER, 0, 0, "pages", "KSM pages in use"},
	{"pages_sharing", SP_KNOB_COUNTER, 0, 0, "pages", "pages mapped to a KSM page (saved)"},
	{"pages_unshared", SP_KNOB_COUNTER, 0, 0, "pages", "unique pages checked repeatedly"},
	{"pages_volatile", SP_KNOB_COUNTER, 0, 0, "pages", "pages changing too fast to merge"},
	{"ksm_zero_pages", SP_KNOB_COUNTER, 0, 0, "pages", "empty pages mapped to the zero page"},
	{"stable_node_chains", SP_KNOB_COUNTER, 0, 0, "", "KSM pages that hit max_page_sharing"},
	{"stable_node_dups", SP_KNOB_COUNTER, 0, 0, "", "KSM pages in those chains"},
	{"general_profit", SP_KNOB_COUNTER, 0, 0, "bytes", "bytes saved minus rmap item cost"},
};

int sp_knob_index(const char *name)
{
	for (int i = 0; i < SP_KSM_NKNOBS; i++)
		if (!strcmp(sp_knobs[i].name, name))
			return i;
	return -1;
}

char *sp_ksm_dir(const char *sysfs, char *buf, size_t len)
{
	snprintf(buf, len, "%s/kernel/mm/ksm", sysfs);
	return buf;
}

static int read_text(const char *path, char *buf, size_t len)
{
	long n = sp_read_small(path, buf, len);

	if (n < 0)
		return (int)n;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

/* advisor_mode: words of [a-z-], the one in effect in brackets ("[none]
 * scan-time"); a bare word is what a plain file holds after a write
 * (fixture trees). 0 none, 1 scan-time, or -EINVAL. */
static int parse_mode(const char *text, long long *out, const char **why)
{
	const char *p = text, *sel = NULL;
	int nsel = 0, nwords = 0;

	while (*p) {
		int br = *p == '[';
		size_t n = strspn(p + br, "abcdefghijklmnopqrstuvwxyz-");

		if (!n || (br && p[1 + n] != ']')) {
			*why = "not a list of modes";
			return -EINVAL;
		}
		if (br || !sel)
			sel = p + br;
		nsel += br;
		nwords++;
		p += br + n + br;
		if (*p == ' ' && p[1])
			p++;
		else if (*p) {
			*why = "not a list of modes";
			return -EINVAL;
		}
	}
	if (!sel || nsel > 1 || (!nsel && nwords > 1)) {
		*why = "no mode selected";
		return -EINVAL;
	}
	if (!strncmp(sel, "none", 4) && !isalpha((unsigned char)sel[4]) && sel[4] != '-')
		*out = 0;
	else if (!strncmp(sel, "scan-time", 9) && !isalpha((unsigned char)sel[9]) && sel[9] != '-')
		*out = 1;
	else {
		*why = "unknown mode";
		return -EINVAL;
	}
	return 0;
}

/* The value of a file as the kernel writes it: "%lu" (or "%ld" for
 * general_profit), within the knob's range; advisor_mode "[none] scan-time".
 * 0, or -EINVAL with *why set. */
static int parse_value(int idx, const char *text, long long *out, const char **why)
{
	const struct sp_knob *kn = &sp_knobs[idx];
	const char *p = text;
	char *end;
	long long v;

	if (kn->kind == SP_KNOB_MODE)
		return parse_mode(text, out, why);
	if (*p == '-' && !strcmp(kn->name, "general_profit"))
		p++;
	if (!isdigit((unsigned char)*p)) {
		*why = *text ? "not a number" : "empty";
		return -EINVAL;
	}
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno || *end) {
		*why = errno ? "too large" : "junk after the number";
		return -EINVAL;
	}
	if (kn->kind != SP_KNOB_COUNTER &&
	    (v < 0 || (unsigned long long)v < kn->min || (unsigned long long)v > kn->max)) {
		*why = "out of the kernel's range";
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static void add_extra(struct sp_ksm *k, const char *dir, const char *name)
{
	char path[700];

	if (k->nextra == SP_KSM_NEXTRA || strlen(name) >= sizeof(k->extra_name[0]))
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (read_text(path, k->extra_text[k->nextra], sizeof(k->extra_text[0])))
		return;
	strcpy(k->extra_name[k->nextra++], name);
}

int sp_ksm_read(const char *sysfs, struct sp_ksm *k)
{
	char dir[400], path[700];
	struct timespec ts;
	struct dirent *e;
	DIR *d;

	memset(k, 0, sizeof(*k));
	sp_ksm_dir(sysfs, dir, sizeof(dir));
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		int i, err;

		if (e->d_name[0] == '.')
			continue;
		i = sp_knob_index(e->d_name);
		if (i < 0) {
			add_extra(k, dir, e->d_name);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		err = read_text(path, k->text[i], sizeof(k->text[i]));
		if (err == -EINVAL) {
			k->invalid[i] = "not a regular file";
		} else if (!err) {
			if (parse_value(i, k->text[i], &k->val[i], &k->invalid[i]) == 0)
				k->present[i] = 1;
		}
		if (k->invalid[i])
			k->ninvalid++;
	}
	closedir(d);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	k->t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	return 0;
}

long long sp_ksm_get(const struct sp_ksm *k, const char *name, long long def)
{
	int i = sp_knob_index(name);

	return i >= 0 && k->present[i] ? k->val[i] : def;
}

long long sp_add_sat(long long a, long long b)
{
	long long r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? LLONG_MAX : LLONG_MIN;
	return r;
}

long long sp_ksm_pages_tracked(const struct sp_ksm *k)
{
	static const char *const names[] = {"pages_shared", "pages_sharing", "pages_unshared", "pages_volatile"};
	long long sum = 0;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		sum = sp_add_sat(sum, sp_ksm_get(k, names[i], 0));
	return sum;
}

/* kstrtobool: the first character decides; "on"/"of" need the second */
static int parse_bool(const char *v)
{
	switch (v[0]) {
	case 'y':
	case 'Y':
	case '1':
		return 1;
	case 'n':
	case 'N':
	case '0':
		return 0;
	case 'o':
	case 'O':
		if (v[1] == 'n' || v[1] == 'N')
			return 1;
		if (v[1] == 'f' || v[1] == 'F')
			return 0;
	}
	return -1;
}

static int check_uint(const struct sp_knob *kn, const char *v, char *canon, size_t len, const char **why)
{
	unsigned long long x;
	char *end;

	if (!isdigit((unsigned char)v[0])) {
		*why = "not a non-negative decimal integer";
		return -EINVAL;
	}
	errno = 0;
	x = strtoull(v, &end, 10);
	if (*end || errno) {
		*why = errno ? "too large" : "not a non-negative decimal integer";
		return -EINVAL;
	}
	if (x < kn->min || x > kn->max) {
		*why = "out of the kernel's range";
		return -EINVAL;
	}
	snprintf(canon, len, "%llu", x);
	return 0;
}

int sp_knob_check(const char *name, const char *value, char *canon, size_t len, const char **why)
{
	int i = sp_knob_index(name);
	const struct sp_knob *kn;
	int b;

	*why = "";
	if (i < 0) {
		*why = "no such KSM knob";
		return -ENOENT;
	}
	kn = &sp_knobs[i];
	switch (kn->kind) {
	case SP_KNOB_COUNTER:
		*why = "a read-only counter";
		return -EROFS;
	case SP_KNOB_UINT:
		return check_uint(kn, value, canon, len, why);
	case SP_KNOB_BOOL:
		b = parse_bool(value);
		if (b < 0) {
			*why = "not a boolean (0/1, y/n, on/off)";
			return -EINVAL;
		}
		snprintf(canon, len, "%d", b);
		return 0;
	case SP_KNOB_MODE:
		if (strcmp(value, "none") && strcmp(value, "scan-time")) {
			*why = "must be \"none\" or \"scan-time\"";
			return -EINVAL;
		}
		snprintf(canon, len, "%s", value);
		return 0;
	}
	return -EINVAL;
}

int sp_ksm_write(const char *sysfs, const char *name, const char *canon)
{
	char path[700];
	size_t n = strlen(canon);
	ssize_t w;
	int fd;

	snprintf(path, sizeof(path), "%s/kernel/mm/ksm/%s", sysfs, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	w = write(fd, canon, n);
	if (w < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	close(fd);
	return (size_t)w == n ? 0 : -EIO;
}

const char *sp_ksm_writable_text(const struct sp_ksm *k, int idx, char *buf, size_t len)
{
	const char *l = strchr(k->text[idx], '[');

	if (!l) {
		snprintf(buf, len, "%s", k->text[idx]);
		return buf;
	}
	snprintf(buf, len, "%s", l + 1);
	buf[strcspn(buf, "]")] = 0;
	return buf;
}
