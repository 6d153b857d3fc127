/* SPDX-License-Identifier: MIT */
/*
 * config.c - the settings of `samepage tune` from a ksmtuned.conf-style
 * text (see rules.h). ksmtuned sources its file as shell, so the
 * parser takes what such a file holds: KEY=VALUE, quotes, `export`, #
 * comments, and KEY= for "keep the default". Keys it does not use are
 * reported, not fatal; a bad value names its line. No I/O.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tune/rules.h"

struct key {
	const char *name;
	size_t off; /* of a long; interval is the double */
	long lo, hi;
};

#define OFF(f) offsetof(struct sp_tune_config, f)
static const struct key keys[] = {
	{"KSM_MONITOR_INTERVAL", OFF(interval_s), 0, 86400}, {"KSM_SLEEP_MSEC", OFF(sleep_msec), 0, 1000000},
	{"KSM_NPAGES_BOOST", OFF(boost), 0, 1000000000},     {"KSM_NPAGES_DECAY", OFF(decay), -1000000000, 0},
	{"KSM_NPAGES_MIN", OFF(npages_min), 0, 4294967295L}, {"KSM_NPAGES_MAX", OFF(npages_max), 1, 4294967295L},
	{"KSM_THRES_COEF", OFF(thres_coef), 0, 100},	     {"KSM_THRES_CONST", OFF(thres_const_mib), 0, 1L << 40},
};
/* keys of ksmtuned.conf (and /etc/sysconfig/ksm) that do not apply here */
static const char *const ignored[] = {"LOGFILE", "DEBUG", "KSM_MAX_KERNEL_PAGES"};

static int set_key(struct sp_tune_config *c, const struct key *k, const char *v, char *msg, size_t len)
{
	char *end;
	double x;
	long n;

	errno = 0;
	if (k->off == OFF(interval_s)) {
		x = strtod(v, &end);
		if (!*v || *end || errno || !(x >= 0.01 && x <= (double)k->hi)) {
			snprintf(msg, len, "%s=%s: not a number of seconds from 0.01 to %ld", k->name, v, k->hi);
			return -EINVAL;
		}
		c->interval_s = x;
		return 0;
	}
	n = strtol(v, &end, 10);
	if (!*v || *end || errno || n < k->lo || n > k->hi) {
		snprintf(msg, len, "%s=%s: not an integer from %ld to %ld%s", k->name, v, k->lo, k->hi,
			 k->off == OFF(decay) ? " (the decay is added: give it negative, like -50)" : "");
		return -EINVAL;
	}
	*(long *)((char *)c + k->off) = n;
	return 0;
}

int sp_tune_config_set(struct sp_tune_config *c, const char *key, const char *value, char *msg, size_t len)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strcmp(keys[i].name, key))
			return set_key(c, &keys[i], value, msg, len);
	snprintf(msg, len, "%s: unknown key", key);
	return -ENOENT;
}

/* the value of a shell assignment: quotes removed, trailing comment cut */
static void unquote(char *v)
{
	size_t n;

	if (*v == '"' || *v == '\'') {
		char *e = strchr(v + 1, *v);

		if (e) {
			*e = 0;
			memmove(v, v + 1, strlen(v + 1) + 1);
			return;
		}
	}
	v[strcspn(v, "#")] = 0;
	n = strlen(v);
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
		v[--n] = 0;
}

static int known_ignored(const char *name)
{
	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		if (!strcmp(ignored[i], name))
			return 1;
	return 0;
}

/* one line; err gets why it is wrong, warn collects ignored keys */
static int parse_line(char *s, struct sp_tune_config *c, char *err, size_t elen, char *warn, size_t wlen)
{
	char *eq, *v;
	size_t n;
	int rc;

	s += strspn(s, " \t");
	if (!*s || *s == '#' || *s == '\r')
		return 0;
	if (!strncmp(s, "export ", 7))
		s += 7 + strspn(s + 7, " \t");
	eq = strchr(s, '=');
	if (!eq || eq == s) {
		snprintf(err, elen, "expected KEY=VALUE");
		return -EINVAL;
	}
	*eq = 0;
	s[strcspn(s, " \t")] = 0;
	v = eq + 1 + strspn(eq + 1, " \t");
	unquote(v);
	if (!*v) /* KEY= leaves the default, as ${KEY:-default} does */
		return 0;
	rc = sp_tune_config_set(c, s, v, err, elen);
	if (rc != -ENOENT)
		return rc;
	n = strlen(warn);
	snprintf(warn + n, wlen > n ? wlen - n : 0, "%s%s%s", n ? ", " : "ignored: ", s,
		 known_ignored(s) ? "" : " (unknown)");
	return 0;
}

int sp_tune_config_parse(const char *text, struct sp_tune_config *c, char *msg, size_t len)
{
	char *copy = strdup(text), *line, err[200], warn[256] = "";
	struct sp_tune_config next = *c; /* c changes only if every line is good */
	int lineno = 0, rc = 0;

	if (!copy)
		return -ENOMEM;
	for (line = copy; line && !rc;) {
		char *nl = strchr(line, '\n');

		if (nl)
			*nl = 0;
		lineno++;
		rc = parse_line(line, &next, err, sizeof(err), warn, sizeof(warn));
		line = nl ? nl + 1 : NULL;
	}
	if (rc) {
		snprintf(msg, len, "line %d: %s", lineno, err);
	} else {
		snprintf(msg, len, "%s", warn);
		*c = next;
	}
	free(copy);
	return rc;
}

int sp_tune_config_check(const struct sp_tune_config *c, char *msg, size_t len)
{
	if (c->npages_min > c->npages_max) {
		snprintf(msg, len, "npages_min %ld is above npages_max %ld", c->npages_min, c->npages_max);
		return -EINVAL;
	}
	if (c->mode == SP_TUNE_SCAN_TIME && c->npages_min > c->max_pages) {
		snprintf(msg, len, "npages_min %ld is above --max-pages %ld", c->npages_min, c->max_pages);
		return -EINVAL;
	}
	return 0;
}
