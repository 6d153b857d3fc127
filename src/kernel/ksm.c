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
#include "util/clock.h"

int sp_knob_index(const char *name)
{
	const struct sp_knob *k = sp_knob_find(name);

	return k && (k->flags & SP_KF_KERNEL) ? (int)(k - sp_knob_table) : -1;
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
 * An unsigned long knob above LLONG_MAX (advisor_target_scan_time can be
 * 2^64 - 1) is saturated at LLONG_MAX in *out; its text stays exact.
 * 0, or -EINVAL with *why set. */
static int parse_value(int idx, const char *text, long long *out, const char **why)
{
	const struct sp_knob *kn = &sp_knob_table[idx];
	const char *p = text;
	char *end;
	long long v;

	if (kn->type == SP_KNOB_ENUM)
		return parse_mode(text, out, why);
	if (*p == '-' && (kn->flags & SP_KF_SIGNED))
		p++;
	if (!isdigit((unsigned char)*p)) {
		*why = *text ? "not a number" : "empty";
		return -EINVAL;
	}
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno == ERANGE && *p != '-' && kn->max > LLONG_MAX) {
		unsigned long long u;

		errno = 0;
		u = strtoull(text, &end, 10);
		v = LLONG_MAX;
		if (!errno && u > kn->max)
			errno = ERANGE;
	}
	if (errno || *end) {
		*why = errno ? "too large" : "junk after the number";
		return -EINVAL;
	}
	if (kn->type != SP_KNOB_COUNTER &&
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
	k->t = sp_mono_s();
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

/* why the kernel would refuse value for kn (err from sp_knob_parse_value) */
static const char *refusal(const struct sp_knob *kn, const char *value, int err)
{
	unsigned long long v;

	if (err == -ERANGE)
		return "too large";
	if (kn->type == SP_KNOB_BOOL)
		return "not a boolean (0/1, y/n, on/off)";
	if (kn->type == SP_KNOB_ENUM)
		return "not one of the modes";
	err = sp_parse_ulong(value + (kn->type == SP_KNOB_INT && *value == '-'), &v);
	if (err == -ERANGE)
		return "too large";
	if (err || *value == '-')
		return err ? "not a decimal integer" : "out of the kernel's range";
	return v > 4294967295ull && kn->type == SP_KNOB_UINT ? "too large" : "out of the kernel's range";
}

int sp_knob_check(const char *name, const char *value, char *canon, size_t len, const char **why)
{
	int i = sp_knob_index(name);
	const struct sp_knob *kn;
	unsigned long long v;
	int err;

	*why = "";
	if (i < 0) {
		*why = "no such KSM knob";
		return -ENOENT;
	}
	kn = &sp_knob_table[i];
	if (kn->type == SP_KNOB_COUNTER) {
		*why = "a read-only counter";
		return -EROFS;
	}
	err = sp_knob_parse_value(kn, value, &v);
	if (err) {
		*why = refusal(kn, value, err);
		return err;
	}
	sp_knob_format_input(kn, v, canon, len);
	return 0;
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
