/* SPDX-License-Identifier: MIT */
/*
 * config.c - samepaged's configuration file (samepaged.conf(5)) and the
 * rules that put a client in a merge domain.
 *
 * The file is INI, read by libinih: [daemon] holds the daemon's settings,
 * each [domain NAME] one domain (who belongs in it, its limits, the
 * starting values of its knobs). Values are split into words on blanks
 * and commas; nothing else is parsed here.
 *
 * libinih is given lines by our own reader (fgets-like, over getline) so
 * that we know the line each handler call comes from: the Debian build has
 * no INI_HANDLER_LINENO, and ini_parse's return value names the first
 * error of the file, which may be a syntax error of libinih before ours.
 * The reader also looks at each line's first non-blank character, as
 * libinih does, to tell three things libinih does not: where a section
 * starts (its errors name that line; a section repeated right after itself
 * is still seen as repeated), an indented line that libinih would take as
 * the continuation of the previous value (refused: a key indented by
 * mistake would otherwise become words of the previous list), and a line
 * longer than libinih's buffer (libinih r55 would read its end as another
 * line). A section without any key never reaches the handler: it is
 * ignored, unchecked.
 *
 * The first error is kept, with its line; sd_config_load leaves cfg as it
 * was when the file has an error.
 *
 * Placement (sd_config_place): a label the client asks for, then the first
 * domain whose users, groups or cgroups take it, then the host_wide domain,
 * then a domain of its user's own ("user:<uid>") when per_user_domains.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <ini.h>

#include "core/knobs.h"
#include "daemon/daemon.h"
#include "proto/wire.h"

/* libinih keeps this many characters of a section's name (its MAX_SECTION
 * is 50, with the NUL): a longer one is cut without a word. */
#define INI_SECTION_KEEP 49

#define SEP " \t,"

/* the longest line taken (libinih's own limit, INI_MAX_LINE, is lower) */
#define VALUE_MAX 1024

_Static_assert(SP_KNOB_COUNT <= 64, "knob_set has a bit per knob");

enum {
	SEC_NONE = -3,	 /* before any section */
	SEC_BAD = -2,	 /* a section already reported: its keys are ignored */
	SEC_DAEMON = -1, /* [daemon]; 0.. a domain */
};

/* keys given once (a second time is an error) */
enum {
	K_SOCKET = 1 << 0,
	K_ADMIN_GROUP = 1 << 1,
	K_PER_USER = 1 << 2,
	K_PER_USER_MAX_CLIENTS = 1 << 3,
	K_PER_USER_MAX_BYTES = 1 << 4,
	K_HOST_WIDE = 1 << 5,
	K_MAX_BYTES = 1 << 6,
	K_MAX_CLIENTS = 1 << 7,
};

struct ctx {
	struct sd_config *cfg;
	const char *path;
	FILE *f;
	char *raw; /* the line being read, as in the file */
	size_t rawcap;
	int line;	 /* its number, from 1 */
	int header_line; /* of the last "[section]" line */
	int new_section; /* a "[section]" line since the last key */
	int prev_key;	 /* a key since the last section: libinih's prev_name */
	int continues;	 /* the line continues the previous value */
	int cur;	 /* SEC_* or the index of the domain */
	const char *sec; /* its name in messages: "daemon", "domain vms" */
	char secbuf[sizeof("domain ") + SP_NAME_MAX];
	unsigned daemon_given;		/* K_* */
	unsigned given[SD_MAX_DOMAINS]; /* K_* of each domain */
	int dom_line[SD_MAX_DOMAINS];	/* where each domain's section starts */
	int host_wide;			/* the host_wide domain, or -1 */
	int err_line;			/* named by the first error, 0 none */
	int handler_failed;		/* the line of the handler's first 0 */
	char err[1024];
};

__attribute__((format(printf, 3, 4))) static int fail(struct ctx *c, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->err_line)
		return 0;
	c->err_line = line;
	n = snprintf(c->err, sizeof(c->err), "%s:%d: ", c->path, line);
	if (n < 0 || (size_t)n >= sizeof(c->err))
		return 0;
	va_start(ap, fmt);
	vsnprintf(c->err + n, sizeof(c->err) - (size_t)n, fmt, ap);
	va_end(ap);
	return 0;
}

/* The reader libinih calls for each line: one line of the file each time,
 * so that its line numbers and ours agree. */
static char *reader(char *str, int num, void *stream)
{
	struct ctx *c = stream;
	ssize_t n = getline(&c->raw, &c->rawcap, c->f);
	const char *s;

	if (n < 0 || num < 2)
		return NULL;
	c->line++;
	c->continues = 0;
	if (num > VALUE_MAX)
		num = VALUE_MAX;
	if ((size_t)n > (size_t)num - 1) {
		fail(c, c->line, "line longer than %d characters", num - 2);
		strcpy(str, "\n");
		return str;
	}
	memcpy(str, c->raw, (size_t)n + 1);

	/* What libinih will make of it, in its order: a comment or a blank
	 * line, the continuation of the previous value, a section. */
	s = c->raw;
	if (c->line == 1 && !strncmp(s, "\xEF\xBB\xBF", 3))
		s += 3;
	while (*s && isspace((unsigned char)*s))
		s++;
	if (!*s || *s == ';' || *s == '#')
		return str;
	if (c->prev_key && s > c->raw) {
		c->continues = 1;
	} else if (*s == '[') {
		c->prev_key = 0;
		c->new_section = 1;
		c->header_line = c->line;
	}
	return str;
}

/* [A-Za-z0-9_.-]{1,63}: domain names and labels */
static const char *name_problem(const char *s)
{
	size_t n = strlen(s);

	if (!n)
		return "empty";
	if (n >= SP_NAME_MAX)
		return "longer than 63 characters";
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
			return "only letters, digits, '_', '.' and '-' may be used";
	return NULL;
}

static int open_section(struct ctx *c, const char *section)
{
	struct sd_config *cfg = c->cfg;
	const char *p = section, *why;
	char word[INI_SECTION_KEEP + 1], name[INI_SECTION_KEEP + 1];
	size_t n;
	int line = c->header_line;

	snprintf(c->secbuf, sizeof(c->secbuf), "%s", section);
	c->sec = c->secbuf;
	c->cur = SEC_BAD;
	if (strlen(section) >= INI_SECTION_KEEP)
		return fail(c, line, "section name longer than %d characters (libinih cuts it)", INI_SECTION_KEEP - 1);

	/* first word: daemon or domain; the rest, trimmed: the name */
	while (isspace((unsigned char)*p))
		p++;
	n = strcspn(p, " \t");
	snprintf(word, sizeof(word), "%.*s", (int)n, p);
	p += n;
	while (isspace((unsigned char)*p))
		p++;
	snprintf(name, sizeof(name), "%s", p);
	for (n = strlen(name); n && isspace((unsigned char)name[n - 1]); n--)
		name[n - 1] = 0;

	if (!strcmp(word, "daemon") && !name[0]) {
		c->cur = SEC_DAEMON;
		c->sec = "daemon";
		return 1;
	}
	if (strcmp(word, "domain"))
		return fail(c, line, "unknown section [%s] (sections: [daemon], [domain NAME])", section);
	if (!name[0])
		return fail(c, line, "empty domain name: [domain NAME]");
	if (!strncmp(name, "user:", 5))
		return fail(c, line, "invalid domain name \"%s\": \"user:\" names are the per-user domains'", name);
	why = name_problem(name);
	if (why)
		return fail(c, line, "invalid domain name \"%s\": %s", name, why);
	for (int i = 0; i < cfg->ndomains; i++)
		if (!strcmp(cfg->domains[i].name, name))
			return fail(c, line, "duplicate domain \"%s\" (also line %d)", name, c->dom_line[i]);
	if (cfg->ndomains >= SD_MAX_DOMAINS)
		return fail(c, line, "too many domains (at most %d)", SD_MAX_DOMAINS);

	struct sd_domain_conf *d = &cfg->domains[cfg->ndomains];

	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	sp_knobs_defaults(&d->knobs);
	c->given[cfg->ndomains] = 0;
	c->dom_line[cfg->ndomains] = line;
	c->cur = cfg->ndomains++;
	snprintf(c->secbuf, sizeof(c->secbuf), "domain %s", name);
	return 1;
}

/* Splits value into words (blanks and commas) in buf: their count, or -1
 * with the error reported. */
static int words(struct ctx *c, const char *key, const char *value, char *buf, size_t len, char **w, int max)
{
	char *save = NULL, *t;
	int n = 0;

	snprintf(buf, len, "%s", value);
	for (t = strtok_r(buf, SEP, &save); t; t = strtok_r(NULL, SEP, &save)) {
		if (t[0] == '#')
			return fail(c, c->line, "%s: \"%s\": a comment after a value starts with \";\", not \"#\"", key,
				    t),
			       -1;
		if (n == max)
			return fail(c, c->line, "%s: too many words (at most %d)", key, max), -1;
		w[n++] = t;
	}
	if (!n)
		return fail(c, c->line, "%s: no value", key), -1;
	return n;
}

/* A single word. NULL, with the error reported, if not one. */
static const char *one_word(struct ctx *c, const char *key, const char *value, char *buf, size_t len)
{
	char *w[2];
	int n = words(c, key, value, buf, len, w, 2);

	if (n < 0)
		return NULL;
	if (n != 1) {
		fail(c, c->line, "%s: one value expected, not \"%s\"", key, value);
		return NULL;
	}
	return w[0];
}

/* decimal digits only, at most max */
static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		if (v > (max - (unsigned)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (unsigned)(*s - '0');
	}
	*out = v;
	return 0;
}

/* digits with an optional K, M, G or T (powers of 1024) */
static int parse_size(const char *s, uint64_t *out)
{
	char num[32];
	size_t n = strspn(s, "0123456789");
	unsigned shift = 0;
	unsigned long long v;

	if (!n || n >= sizeof(num))
		return -1;
	switch (s[n]) {
	case 0:
		break;
	case 'K':
	case 'k':
		shift = 10;
		break;
	case 'M':
	case 'm':
		shift = 20;
		break;
	case 'G':
	case 'g':
		shift = 30;
		break;
	case 'T':
	case 't':
		shift = 40;
		break;
	default:
		return -1;
	}
	if (s[n] && s[n + 1])
		return -1;
	memcpy(num, s, n);
	num[n] = 0;
	if (parse_uint(num, UINT64_MAX >> shift, &v))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_bool(const char *s, int *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(s, yes[i]))
			return *out = 1, 0;
		if (!strcasecmp(s, no[i]))
			return *out = 0, 0;
	}
	return -1;
}

static int given_once(struct ctx *c, unsigned *given, unsigned bit, const char *key)
{
	if (*given & bit)
		return fail(c, c->line, "%s given twice in [%s]", key, c->sec);
	*given |= bit;
	return 1;
}

static int set_size(struct ctx *c, const char *key, const char *value, uint64_t *out)
{
	char buf[VALUE_MAX];
	const char *w = one_word(c, key, value, buf, sizeof(buf));

	if (!w)
		return 0;
	if (parse_size(w, out))
		return fail(c, c->line, "%s: bad size \"%s\" (bytes, or with K, M, G, T)", key, w);
	return 1;
}

static int set_count(struct ctx *c, const char *key, const char *value, uint32_t *out)
{
	char buf[VALUE_MAX];
	const char *w = one_word(c, key, value, buf, sizeof(buf));
	unsigned long long v;

	if (!w)
		return 0;
	if (parse_uint(w, UINT32_MAX, &v))
		return fail(c, c->line, "%s: bad number \"%s\" (an integer from 0 to %u)", key, w, UINT32_MAX);
	*out = (uint32_t)v;
	return 1;
}

static int set_bool(struct ctx *c, const char *key, const char *value, int *out)
{
	char buf[VALUE_MAX];
	const char *w = one_word(c, key, value, buf, sizeof(buf));

	if (!w)
		return 0;
	if (parse_bool(w, out))
		return fail(c, c->line, "%s: bad boolean \"%s\" (yes or no)", key, w);
	return 1;
}

/* a user or group: a number (not (id_t)-1), else a name */
static int user_id(const char *s, uid_t *out)
{
	unsigned long long v;
	struct passwd *pw;

	if (!parse_uint(s, (uid_t)-1 - 1, &v))
		return *out = (uid_t)v, 0;
	pw = getpwnam(s);
	if (!pw)
		return -1;
	*out = pw->pw_uid;
	return 0;
}

static int group_id(const char *s, gid_t *out)
{
	unsigned long long v;
	struct group *gr;

	if (!parse_uint(s, (gid_t)-1 - 1, &v))
		return *out = (gid_t)v, 0;
	gr = getgrnam(s);
	if (!gr)
		return -1;
	*out = gr->gr_gid;
	return 0;
}

/* A cgroup v2 path, as /proc/PID/cgroup shows them: absolute, no empty,
 * "." or ".." component; a trailing '/' is dropped. */
static const char *cgroup_problem(const char *in, char *out, size_t len)
{
	size_t n = strlen(in);

	if (in[0] != '/')
		return "not an absolute path";
	while (n > 1 && in[n - 1] == '/')
		n--;
	if (n >= len)
		return "too long";
	memcpy(out, in, n);
	out[n] = 0;
	for (const char *p = out + 1; n > 1 && *p;) {
		size_t k = strcspn(p, "/");

		if (!k || (k == 1 && p[0] == '.') || (k == 2 && p[0] == '.' && p[1] == '.'))
			return "empty, \".\" or \"..\" component";
		p += k;
		if (*p)
			p++;
	}
	return NULL;
}

static int daemon_key(struct ctx *c, const char *key, const char *value)
{
	struct sd_config *cfg = c->cfg;
	char buf[VALUE_MAX];
	const char *w;

	if (!strcmp(key, "socket")) {
		if (!given_once(c, &c->daemon_given, K_SOCKET, key))
			return 0;
		w = one_word(c, key, value, buf, sizeof(buf));
		if (!w)
			return 0;
		if (w[0] != '/')
			return fail(c, c->line, "socket: \"%s\" is not an absolute path", w);
		if (strlen(w) >= sizeof(((struct sockaddr_un *)0)->sun_path) || strlen(w) >= sizeof(cfg->socket))
			return fail(c, c->line, "socket: path longer than %zu characters",
				    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		snprintf(cfg->socket, sizeof(cfg->socket), "%s", w);
		return 1;
	}
	if (!strcmp(key, "admin_group")) {
		gid_t g;

		if (!given_once(c, &c->daemon_given, K_ADMIN_GROUP, key))
			return 0;
		w = one_word(c, key, value, buf, sizeof(buf));
		if (!w)
			return 0;
		if (group_id(w, &g))
			return fail(c, c->line, "admin_group: unknown group \"%s\"", w);
		cfg->admin_gid = g;
		return 1;
	}
	if (!strcmp(key, "per_user_domains"))
		return given_once(c, &c->daemon_given, K_PER_USER, key) && set_bool(c, key, value, &cfg->per_user);
	if (!strcmp(key, "per_user_max_clients"))
		return given_once(c, &c->daemon_given, K_PER_USER_MAX_CLIENTS, key) &&
		       set_count(c, key, value, &cfg->per_user_max_clients);
	if (!strcmp(key, "per_user_max_bytes"))
		return given_once(c, &c->daemon_given, K_PER_USER_MAX_BYTES, key) &&
		       set_size(c, key, value, &cfg->per_user_max_bytes);
	return fail(c, c->line, "unknown key \"%s\" in [daemon]", key);
}

/* users, groups, cgroups, labels: appended to (a key may be repeated) */
static int list_key(struct ctx *c, struct sd_domain_conf *d, const char *key, const char *value)
{
	struct sd_config *cfg = c->cfg;
	char buf[VALUE_MAX];
	char *w[SD_MAX_MATCH + 1];
	int n = words(c, key, value, buf, sizeof(buf), w, SD_MAX_MATCH + 1);

	if (n < 0)
		return 0;
	for (int i = 0; i < n; i++) {
		if (!strcmp(key, "users")) {
			uid_t u;
			int j;

			if (user_id(w[i], &u))
				return fail(c, c->line, "users: unknown user \"%s\"", w[i]);
			for (j = 0; j < d->nusers && d->users[j] != u; j++)
				;
			if (j < d->nusers)
				continue;
			if (d->nusers == SD_MAX_MATCH)
				return fail(c, c->line, "users: too many entries (at most %d)", SD_MAX_MATCH);
			d->users[d->nusers++] = u;
		} else if (!strcmp(key, "groups")) {
			gid_t g;
			int j;

			if (group_id(w[i], &g))
				return fail(c, c->line, "groups: unknown group \"%s\"", w[i]);
			for (j = 0; j < d->ngroups && d->groups[j] != g; j++)
				;
			if (j < d->ngroups)
				continue;
			if (d->ngroups == SD_MAX_MATCH)
				return fail(c, c->line, "groups: too many entries (at most %d)", SD_MAX_MATCH);
			d->groups[d->ngroups++] = g;
		} else if (!strcmp(key, "cgroups")) {
			char path[sizeof(d->cgroups[0])];
			const char *why = cgroup_problem(w[i], path, sizeof(path));
			int j;

			if (why)
				return fail(c, c->line, "cgroups: bad cgroup path \"%s\": %s", w[i], why);
			for (j = 0; j < d->ncgroups && strcmp(d->cgroups[j], path); j++)
				;
			if (j < d->ncgroups)
				continue;
			if (d->ncgroups == SD_MAX_MATCH)
				return fail(c, c->line, "cgroups: too many entries (at most %d)", SD_MAX_MATCH);
			snprintf(d->cgroups[d->ncgroups++], sizeof(d->cgroups[0]), "%s", path);
		} else {
			const char *why = name_problem(w[i]);
			int dup = 0;

			if (why)
				return fail(c, c->line, "labels: invalid label \"%s\": %s", w[i], why);
			for (int k = 0; k < cfg->ndomains; k++)
				for (int j = 0; j < cfg->domains[k].nlabels; j++) {
					if (strcmp(cfg->domains[k].labels[j], w[i]))
						continue;
					if (&cfg->domains[k] != d)
						return fail(c, c->line,
							    "labels: label \"%s\" is already offered by domain \"%s\"",
							    w[i], cfg->domains[k].name);
					dup = 1;
				}
			if (dup)
				continue;
			if (d->nlabels == SD_MAX_MATCH)
				return fail(c, c->line, "labels: too many entries (at most %d)", SD_MAX_MATCH);
			snprintf(d->labels[d->nlabels++], sizeof(d->labels[0]), "%s", w[i]);
		}
	}
	return 1;
}

static int domain_key(struct ctx *c, const char *key, const char *value)
{
	struct sd_domain_conf *d = &c->cfg->domains[c->cur];
	unsigned *given = &c->given[c->cur];
	const struct sp_knob *k;

	if (!strcmp(key, "users") || !strcmp(key, "groups") || !strcmp(key, "cgroups") || !strcmp(key, "labels"))
		return list_key(c, d, key, value);
	if (!strcmp(key, "host_wide")) {
		if (!given_once(c, given, K_HOST_WIDE, key) || !set_bool(c, key, value, &d->host_wide))
			return 0;
		if (d->host_wide && c->host_wide >= 0)
			return fail(c, c->line, "host_wide: domain \"%s\" is host_wide already (at most one may be)",
				    c->cfg->domains[c->host_wide].name);
		if (d->host_wide)
			c->host_wide = c->cur;
		return 1;
	}
	if (!strcmp(key, "max_bytes"))
		return given_once(c, given, K_MAX_BYTES, key) && set_size(c, key, value, &d->max_bytes);
	if (!strcmp(key, "max_clients"))
		return given_once(c, given, K_MAX_CLIENTS, key) && set_count(c, key, value, &d->max_clients);

	k = sp_knob_find(key);
	if (k && (k->type == SP_KNOB_COUNTER || !(k->flags & SP_KF_ENGINE)))
		return fail(c, c->line, "\"%s\" is %s, not a knob a domain can start with", key,
			    k->type == SP_KNOB_COUNTER ? "a counter" : "a kernel-only knob");
	if (k) {
		uint64_t bit = 1ull << (k - sp_knob_table);
		char buf[VALUE_MAX], range[128];
		const char *w = one_word(c, key, value, buf, sizeof(buf));
		uint32_t v;

		if (d->knob_set & bit)
			return fail(c, c->line, "%s given twice in [%s]", key, c->sec);
		if (!w)
			return 0;
		if (sp_knob_parse(k, w, &v))
			return fail(c, c->line, "%s: invalid value \"%s\" (%s)", key, w,
				    sp_knob_range_text(k, range, sizeof(range)));
		*sp_knob_ptr(&d->knobs, k) = v;
		d->knob_set |= bit;
		return 1;
	}
	return fail(c, c->line, "unknown key \"%s\" in [%s]", key, c->sec);
}

static int handle(struct ctx *c, const char *section, const char *name, const char *value)
{
	if (c->continues)
		return fail(c, c->line,
			    "an indented line continues the value of \"%s\" (libinih reads it so): do not indent keys; "
			    "repeat a list's key to add to it",
			    name);
	c->prev_key = 1;
	if (c->new_section) {
		c->new_section = 0;
		if (!open_section(c, section))
			return 0;
	}
	switch (c->cur) {
	case SEC_NONE:
		return fail(c, c->line, "\"%s\" is outside any section ([daemon] or [domain NAME])", name);
	case SEC_BAD:
		return 0;
	case SEC_DAEMON:
		return daemon_key(c, name, value);
	default:
		return domain_key(c, name, value);
	}
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct ctx *c = user;
	int ok = handle(c, section, name, value);

	if (!ok && !c->handler_failed)
		c->handler_failed = c->line;
	return ok;
}

void sd_config_defaults(struct sd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->socket, sizeof(cfg->socket), "%s", SP_DEFAULT_SOCKET);
	cfg->admin_gid = (gid_t)-1;
	cfg->per_user = 1;
}

static void put(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!buf || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

int sd_config_load(struct sd_config *cfg, const char *path, int may_be_missing, char *err, size_t errlen)
{
	struct ctx *c;
	int ret, rerr = 0;

	put(err, errlen, "%s", "");
	c = calloc(1, sizeof(*c));
	if (c)
		c->cfg = malloc(sizeof(*c->cfg));
	if (!c || !c->cfg) {
		put(err, errlen, "%s: out of memory", path);
		free(c);
		return -1;
	}
	sd_config_defaults(c->cfg);
	c->path = path;
	c->cur = SEC_NONE;
	c->host_wide = -1;

	c->f = fopen(path, "re");
	if (!c->f) {
		int e = errno;

		free(c->cfg);
		free(c);
		if (e == ENOENT && may_be_missing) {
			sd_config_defaults(cfg);
			return 0;
		}
		put(err, errlen, "%s: %s", path, strerror(e));
		return -1;
	}
	ret = ini_parse_stream(reader, c, handler, c);
	if (ferror(c->f))
		rerr = errno ? errno : EIO;
	fclose(c->f);
	free(c->raw);

	if (rerr) {
		put(err, errlen, "%s: read error: %s", path, strerror(rerr));
		ret = -1;
	} else if (ret > 0 && (!c->err_line || ret < c->err_line || (ret == c->err_line && ret != c->handler_failed))) {
		/* libinih's own error, on a line before ours, or on the
		 * "[section" line ours names */
		put(err, errlen, "%s:%d: syntax error: \"[section]\" or \"key = value\" expected", path, ret);
		ret = -1;
	} else if (c->err_line) {
		put(err, errlen, "%s", c->err);
		ret = -1;
	} else if (ret < 0) {
		put(err, errlen, "%s: libinih failed (%d)", path, ret);
		ret = -1;
	} else {
		memcpy(cfg, c->cfg, sizeof(*cfg));
	}
	free(c->cfg);
	free(c);
	return ret;
}

/* -------------------------------------------------------------------------
 * placement
 */

static int has_user(const struct sd_domain_conf *d, uid_t uid)
{
	for (int i = 0; i < d->nusers; i++)
		if (d->users[i] == uid)
			return 1;
	return 0;
}

static int has_group(const struct sd_domain_conf *d, const struct sd_who *w)
{
	int n = w->ngroups < 0 ? 0 : w->ngroups;

	if (n > (int)(sizeof(w->groups) / sizeof(w->groups[0])))
		n = (int)(sizeof(w->groups) / sizeof(w->groups[0]));
	for (int i = 0; i < d->ngroups; i++) {
		if (d->groups[i] == w->gid)
			return 1;
		for (int j = 0; j < n; j++)
			if (d->groups[i] == w->groups[j])
				return 1;
	}
	return 0;
}

/* path itself or below it: /a takes /a and /a/b, not /ab */
static int cgroup_under(const char *path, const char *cg)
{
	size_t n = strlen(path);

	if (cg[0] != '/')
		return 0;
	if (!strcmp(path, "/"))
		return 1;
	return !strncmp(cg, path, n) && (cg[n] == 0 || cg[n] == '/');
}

static int has_cgroup(const struct sd_domain_conf *d, const struct sd_who *w)
{
	char cg[sizeof(w->cgroup)];

	snprintf(cg, sizeof(cg), "%.*s", (int)sizeof(w->cgroup) - 1, w->cgroup);
	for (int i = 0; i < d->ncgroups; i++)
		if (cgroup_under(d->cgroups[i], cg))
			return 1;
	return 0;
}

static int take(const struct sd_config *cfg, int i, char *name, size_t len, int *conf)
{
	put(name, len, "%s", cfg->domains[i].name);
	if (conf)
		*conf = i;
	return 0;
}

int sd_config_place(const struct sd_config *cfg, const struct sd_who *w, char *name, size_t len, int *conf, char *why,
		    size_t whylen)
{
	char label[SP_NAME_MAX];

	put(why, whylen, "%s", "");
	/* the client's label, printable */
	snprintf(label, sizeof(label), "%.*s", (int)sizeof(w->label) - 1, w->label);
	for (char *p = label; *p; p++)
		if (!isprint((unsigned char)*p) || *p == '"')
			*p = '?';

	if (label[0]) {
		for (int i = 0; i < cfg->ndomains; i++) {
			const struct sd_domain_conf *d = &cfg->domains[i];

			for (int j = 0; j < d->nlabels; j++) {
				if (strncmp(d->labels[j], w->label, sizeof(w->label)))
					continue;
				if ((!d->nusers && !d->ngroups) || has_user(d, w->uid) || has_group(d, w))
					return take(cfg, i, name, len, conf);
				put(why, whylen, "label \"%s\" is not allowed for uid %u", label, (unsigned)w->uid);
				return -EACCES;
			}
		}
		put(why, whylen, "no domain offers label \"%s\"", label);
		return -EACCES;
	}
	for (int i = 0; i < cfg->ndomains; i++) {
		const struct sd_domain_conf *d = &cfg->domains[i];

		if (has_user(d, w->uid) || has_group(d, w) || has_cgroup(d, w))
			return take(cfg, i, name, len, conf);
	}
	for (int i = 0; i < cfg->ndomains; i++)
		if (cfg->domains[i].host_wide)
			return take(cfg, i, name, len, conf);
	if (cfg->per_user) {
		put(name, len, "user:%u", (unsigned)w->uid);
		if (conf)
			*conf = -1;
		return 0;
	}
	put(why, whylen, "no domain admits uid %u (per_user_domains = no)", (unsigned)w->uid);
	return -EACCES;
}
