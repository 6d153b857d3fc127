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
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return (int)n;
	}
	close(fd);
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static long long parse_value(int idx, const char *text)
{
	if (sp_knobs[idx].kind == SP_KNOB_MODE)
		return strstr(text, "[scan-time]") ? 1 : 0;
	return strtoll(text, NULL, 10);
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
		int i;

		if (e->d_name[0] == '.')
			continue;
		i = sp_knob_index(e->d_name);
		if (i < 0) {
			add_extra(k, dir, e->d_name);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (read_text(path, k->text[i], sizeof(k->text[i])))
			continue;
		k->val[i] = parse_value(i, k->text[i]);
		k->present[i] = 1;
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
