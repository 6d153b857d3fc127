/* SPDX-License-Identifier: MIT */
/*
 * unit_daemon_config.c - samepaged's configuration file
 * (src/daemon/config.c): the defaults, every key of [daemon] and of
 * [domain NAME], each rule that puts a client in a domain (a label, refused
 * or allowed through a supplementary group; users, groups and cgroups in
 * file order, cgroup paths compared by component; host_wide; a domain of
 * the user's own, or none), and every error, each naming the file and the
 * exact line. Fixtures are written to temporary files from the strings
 * here; user and group names are only "root", which every system has.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/knobs.h"
#include "daemon/daemon.h"

static char path[64];
static char err[2048];

/* text into a temporary file, loaded into cfg; the file is removed */
static int load(const char *text, struct sd_config *cfg)
{
	int fd, ret;
	size_t n = strlen(text);

	snprintf(path, sizeof(path), "/tmp/samepaged-conf-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	close(fd);
	memset(err, 0, sizeof(err));
	ret = sd_config_load(cfg, path, 0, err, sizeof(err));
	unlink(path);
	return ret;
}

static struct sd_config *cfg_new(void)
{
	struct sd_config *cfg = malloc(sizeof(*cfg));

	assert_non_null(cfg);
	sd_config_defaults(cfg);
	return cfg;
}

static void load_ok(const char *text, struct sd_config *cfg)
{
	if (load(text, cfg))
		fail_msg("load failed: %s\n--- file:\n%s", err, text);
}

/* the load fails with "path:line: ...what..." and leaves cfg as it was */
static void load_fails(const char *text, int line, const char *what)
{
	struct sd_config *cfg = cfg_new(), *before = cfg_new();
	char prefix[128];

	cfg->per_user = 7; /* a mark: untouched by a failed load */
	before->per_user = 7;
	if (!load(text, cfg))
		fail_msg("load succeeded, \"%s\" expected at line %d\n--- file:\n%s", what, line, text);
	snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	if (strncmp(err, prefix, strlen(prefix)) || !strstr(err, what))
		fail_msg("error \"%s\"\nexpected \"%s...%s\"\n--- file:\n%s", err, prefix, what, text);
	assert_memory_equal(cfg, before, sizeof(*cfg));
	free(cfg);
	free(before);
}

static struct sd_who who(uid_t uid, gid_t gid)
{
	struct sd_who w;

	memset(&w, 0, sizeof(w));
	w.pid = 1234;
	w.uid = uid;
	w.gid = gid;
	return w;
}

/* placed in name (conf its index, -1 per-user) */
static void placed(const struct sd_config *cfg, const struct sd_who *w, const char *name, int conf)
{
	char got[SP_NAME_MAX], why[256] = "";
	int c = -2, ret = sd_config_place(cfg, w, got, sizeof(got), &c, why, sizeof(why));

	if (ret)
		fail_msg("uid %u: refused (%d): %s; \"%s\" expected", (unsigned)w->uid, ret, why, name);
	assert_string_equal(got, name);
	assert_int_equal(c, conf);
}

static void refused(const struct sd_config *cfg, const struct sd_who *w, const char *reason)
{
	char got[SP_NAME_MAX] = "", why[256] = "";
	int c = -2, ret = sd_config_place(cfg, w, got, sizeof(got), &c, why, sizeof(why));

	if (ret != -EACCES)
		fail_msg("uid %u: %d (\"%s\"), -EACCES expected", (unsigned)w->uid, ret, got);
	assert_string_equal(why, reason);
}

static void test_defaults(void **state)
{
	struct sd_config *cfg = cfg_new();

	(void)state;
	assert_string_equal(cfg->socket, SP_DEFAULT_SOCKET);
	assert_int_equal(cfg->admin_gid, (gid_t)-1);
	assert_int_equal(cfg->per_user, 1);
	assert_int_equal(cfg->per_user_max_clients, 0);
	assert_int_equal(cfg->per_user_max_bytes, 0);
	assert_int_equal(cfg->ndomains, 0);

	/* a missing file: the defaults when it may be missing, else an error */
	cfg->per_user = 0;
	assert_int_equal(sd_config_load(cfg, "/nonexistent/samepaged.conf", 1, err, sizeof(err)), 0);
	assert_int_equal(cfg->per_user, 1);
	assert_string_equal(cfg->socket, SP_DEFAULT_SOCKET);
	assert_int_equal(sd_config_load(cfg, "/nonexistent/samepaged.conf", 0, err, sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/samepaged.conf: No such file or directory");
	/* only ENOENT may be missing */
	assert_int_equal(sd_config_load(cfg, "/dev/null/samepaged.conf", 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/dev/null/samepaged.conf: "));

	/* an empty file, comments only: the defaults */
	cfg->per_user = 0;
	load_ok("", cfg);
	assert_int_equal(cfg->per_user, 1);
	load_ok("# nothing\n; nothing either\n\n[daemon]\n", cfg);
	assert_int_equal(cfg->ndomains, 0);
	free(cfg);
}

static void test_every_key(void **state)
{
	struct sd_config *cfg = cfg_new();
	const struct sd_domain_conf *d;
	struct sp_knobs def, kn;

	(void)state;
	load_ok("# /etc/samepage/samepaged.conf\n"
		"[daemon]\n"
		"socket = /run/sp/test.sock\n"
		"admin_group = root            ; root's group\n"
		"per_user_domains = no\n"
		"per_user_max_clients = 8\n"
		"per_user_max_bytes = 512M\n"
		"\n"
		"[domain vms]\n"
		"users = root 1001,1002\n"
		"groups = 36, root\n"
		"cgroups = /machine.slice /system.slice/qemu/\n"
		"labels = vms,guests\n"
		"host_wide = no\n"
		"max_bytes = 64G\n"
		"max_clients = 32\n"
		"pages_to_scan = 1000\n"
		"sleep_millisecs = 50\n"
		"advisor_mode = scan-time\n"
		"use_zero_pages = y\n"
		"scan_threads = 4\n"
		"[domain rest]\n"
		"host_wide = yes\n",
		cfg);
	assert_string_equal(cfg->socket, "/run/sp/test.sock");
	assert_int_equal(cfg->admin_gid, 0);
	assert_int_equal(cfg->per_user, 0);
	assert_int_equal(cfg->per_user_max_clients, 8);
	assert_int_equal(cfg->per_user_max_bytes, 512ull << 20);
	assert_int_equal(cfg->ndomains, 2);

	d = &cfg->domains[0];
	assert_string_equal(d->name, "vms");
	assert_int_equal(d->nusers, 3);
	assert_int_equal(d->users[0], 0);
	assert_int_equal(d->users[1], 1001);
	assert_int_equal(d->users[2], 1002);
	assert_int_equal(d->ngroups, 2);
	assert_int_equal(d->groups[0], 36);
	assert_int_equal(d->groups[1], 0);
	assert_int_equal(d->ncgroups, 2);
	assert_string_equal(d->cgroups[0], "/machine.slice");
	assert_string_equal(d->cgroups[1], "/system.slice/qemu"); /* the trailing '/' dropped */
	assert_int_equal(d->nlabels, 2);
	assert_string_equal(d->labels[0], "vms");
	assert_string_equal(d->labels[1], "guests");
	assert_int_equal(d->host_wide, 0);
	assert_int_equal(d->max_bytes, 64ull << 30);
	assert_int_equal(d->max_clients, 32);

	/* the knobs given, and only they, are marked; the others keep their defaults */
	sp_knobs_defaults(&def);
	kn = d->knobs;
	assert_int_equal(d->knobs.pages_to_scan, 1000);
	assert_int_equal(d->knobs.sleep_millisecs, 50);
	assert_int_equal(d->knobs.advisor_mode, SP_ADVISOR_SCAN_TIME);
	assert_int_equal(d->knobs.use_zero_pages, 1);
	assert_int_equal(d->knobs.scan_threads, 4);
	for (size_t i = 0; i < sp_knob_count; i++) {
		const struct sp_knob *k = &sp_knob_table[i];
		int set = !strcmp(k->name, "pages_to_scan") || !strcmp(k->name, "sleep_millisecs") ||
			  !strcmp(k->name, "advisor_mode") || !strcmp(k->name, "use_zero_pages") ||
			  !strcmp(k->name, "scan_threads");

		assert_int_equal((d->knob_set >> i) & 1, set);
		if (!set && k->type != SP_KNOB_COUNTER && (k->flags & SP_KF_ENGINE))
			assert_int_equal(*sp_knob_ptr(&kn, k), *sp_knob_ptr(&def, k));
	}

	d = &cfg->domains[1];
	assert_string_equal(d->name, "rest");
	assert_int_equal(d->host_wide, 1);
	assert_int_equal(d->knob_set, 0);
	assert_int_equal(d->nusers + d->ngroups + d->ncgroups + d->nlabels, 0);
	assert_int_equal(d->max_bytes, 0);
	assert_int_equal(d->max_clients, 0);
	assert_memory_equal(&d->knobs, &def, sizeof(def));

	/* numeric admin_group; per_user_domains spelled otherwise; ':' as INI allows */
	load_ok("[daemon]\nadmin_group = 4242\nper_user_domains = On\n", cfg);
	assert_int_equal(cfg->admin_gid, 4242);
	assert_int_equal(cfg->per_user, 1);
	load_ok("[daemon]\nper_user_domains: FALSE\n", cfg);
	assert_int_equal(cfg->per_user, 0);
	assert_int_equal(cfg->admin_gid, (gid_t)-1); /* defaults first */
	free(cfg);
}

static void test_sizes_and_lists(void **state)
{
	struct sd_config *cfg = cfg_new();
	const struct sd_domain_conf *d = &cfg->domains[0];

	(void)state;
	load_ok("[domain a]\nmax_bytes = 0\n", cfg);
	assert_int_equal(d->max_bytes, 0);
	load_ok("[domain a]\nmax_bytes = 4096\n", cfg);
	assert_int_equal(d->max_bytes, 4096);
	load_ok("[domain a]\nmax_bytes = 3k\n", cfg);
	assert_int_equal(d->max_bytes, 3072);
	load_ok("[domain a]\nmax_bytes = 5m\n", cfg);
	assert_int_equal(d->max_bytes, 5ull << 20);
	load_ok("[domain a]\nmax_bytes = 2T\n", cfg);
	assert_int_equal(d->max_bytes, 2ull << 40);
	load_ok("[domain a]\nmax_bytes = 16777215T\n", cfg);
	assert_int_equal(d->max_bytes, 16777215ull << 40);
	load_ok("[daemon]\nper_user_max_bytes = 18446744073709551615\n", cfg);
	assert_int_equal(cfg->per_user_max_bytes, UINT64_MAX);
	load_ok("[domain a]\nmax_clients = 4294967295\n", cfg);
	assert_int_equal(d->max_clients, UINT32_MAX);

	/* a list key repeated adds to the list; an entry given twice counts once */
	load_ok("[domain a]\n"
		"users = 1 2\n"
		"users = 2,3\n"
		"groups = 5\n"
		"groups = 5\n"
		"cgroups = /a /a/ /b\n"
		"labels = x\n"
		"labels = x y\n",
		cfg);
	assert_int_equal(d->nusers, 3);
	assert_int_equal(d->users[2], 3);
	assert_int_equal(d->ngroups, 1);
	assert_int_equal(d->ncgroups, 2);
	assert_int_equal(d->nlabels, 2);

	/* 16 of each fit */
	load_ok("[domain a]\n"
		"users = 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"
		"users = 16 15\n"
		"labels = a b c d e f g h i j k l m n o p\n",
		cfg);
	assert_int_equal(d->nusers, SD_MAX_MATCH);
	assert_int_equal(d->nlabels, SD_MAX_MATCH);

	/* domain names: 41 characters fit in libinih's section; the first key of
	 * a section may be indented (libinih has no value to continue) */
	load_ok("[domain a.b-c_D9]\n  users = 1\n"
		"[domain 12345678901234567890123456789012345678901]\nusers = 2\n",
		cfg);
	assert_string_equal(cfg->domains[0].name, "a.b-c_D9");
	assert_string_equal(cfg->domains[1].name, "12345678901234567890123456789012345678901");

	/* a section without a key is never seen (libinih calls for keys only) */
	load_ok("[domain empty]\n[bogus]\n[domain b]\nusers = 1\n", cfg);
	assert_int_equal(cfg->ndomains, 1);
	assert_string_equal(cfg->domains[0].name, "b");

	/* a UTF-8 byte order mark, CRLF line ends, blanks around everything */
	load_ok("\xEF\xBB\xBF[daemon]\r\n  socket   =   /run/x.sock   \r\n[ domain  w ]\r\nusers=7\r\n", cfg);
	assert_string_equal(cfg->socket, "/run/x.sock");
	assert_string_equal(cfg->domains[0].name, "w");
	assert_int_equal(cfg->domains[0].users[0], 7);
	free(cfg);
}

static const char *placement_conf = "[daemon]\n"
				    "per_user_domains = yes\n"
				    "[domain vms]\n" /* 0 */
				    "users = 107\n"
				    "groups = 36\n"
				    "labels = vms\n"
				    "[domain ci]\n" /* 1 */
				    "cgroups = /ci.slice\n"
				    "labels = ci\n"
				    "[domain open]\n" /* 2 */
				    "labels = open\n"
				    "[domain builders]\n" /* 3 */
				    "groups = 500\n"
				    "users = 107\n" /* vms comes first */
				    "cgroups = /machine.slice/\n"
				    "[domain everything]\n" /* 4 */
				    "cgroups = /\n"
				    "[domain host]\n" /* 5 */
				    "host_wide = yes\n";

static void test_place_label(void **state)
{
	struct sd_config *cfg = cfg_new();
	struct sd_who w;

	(void)state;
	load_ok(placement_conf, cfg);

	/* by uid, by primary group, by a supplementary group */
	w = who(107, 107);
	strcpy(w.label, "vms");
	placed(cfg, &w, "vms", 0);
	w = who(1000, 36);
	strcpy(w.label, "vms");
	placed(cfg, &w, "vms", 0);
	w = who(1000, 1000);
	w.groups[0] = 1000;
	w.groups[1] = 36;
	w.ngroups = 2;
	strcpy(w.label, "vms");
	placed(cfg, &w, "vms", 0);

	/* neither: refused, even with the groups listed after ngroups */
	w = who(1000, 1000);
	w.groups[0] = 1000;
	w.groups[1] = 36;
	w.ngroups = 1;
	strcpy(w.label, "vms");
	refused(cfg, &w, "label \"vms\" is not allowed for uid 1000");

	/* a domain without users and groups lists: anyone may ask, wherever
	 * the client's cgroup is */
	w = who(1000, 1000);
	strcpy(w.label, "ci");
	strcpy(w.cgroup, "/user.slice/user-1000.slice");
	placed(cfg, &w, "ci", 1);
	strcpy(w.label, "open");
	placed(cfg, &w, "open", 2);

	/* a label no domain offers: refused, not placed by the other rules */
	w = who(107, 107);
	strcpy(w.label, "nope");
	refused(cfg, &w, "no domain offers label \"nope\"");
	strcpy(w.label, "VMS");
	refused(cfg, &w, "no domain offers label \"VMS\"");
	strcpy(w.label, "bad\"\n");
	refused(cfg, &w, "no domain offers label \"bad??\"");
	free(cfg);
}

static void test_place_rules(void **state)
{
	struct sd_config *cfg = cfg_new();
	struct sd_who w;

	(void)state;
	load_ok(placement_conf, cfg);

	/* users and groups: the first domain in the file */
	w = who(107, 107);
	placed(cfg, &w, "vms", 0);
	w = who(2000, 500);
	placed(cfg, &w, "builders", 3);
	w = who(2000, 2000);
	w.groups[3] = 36;
	w.ngroups = 4;
	placed(cfg, &w, "vms", 0);
	w.groups[0] = 500; /* builders' group, but vms comes first */
	placed(cfg, &w, "vms", 0);

	/* cgroups: the path itself or below it, compared by component */
	w = who(2000, 2000);
	strcpy(w.cgroup, "/ci.slice");
	placed(cfg, &w, "ci", 1);
	strcpy(w.cgroup, "/ci.slice/job-1.scope");
	placed(cfg, &w, "ci", 1);
	strcpy(w.cgroup, "/ci.slicer/job-1.scope");
	placed(cfg, &w, "everything", 4);
	strcpy(w.cgroup, "/machine.slice/qemu-1.scope/vcpu0");
	placed(cfg, &w, "builders", 3); /* "/machine.slice/" in the file */
	strcpy(w.cgroup, "/machine.slice");
	placed(cfg, &w, "builders", 3);
	strcpy(w.cgroup, "/machine.slice2");
	placed(cfg, &w, "everything", 4);
	strcpy(w.cgroup, "/");
	placed(cfg, &w, "everything", 4);

	/* no cgroup known: host_wide takes the client */
	w.cgroup[0] = 0;
	placed(cfg, &w, "host", 5);
	free(cfg);
}

static void test_place_host_wide_and_per_user(void **state)
{
	struct sd_config *cfg = cfg_new();
	struct sd_who w = who(1000, 1000);
	char name[SP_NAME_MAX];
	int conf;

	(void)state;
	/* no configuration at all: every user its own domain */
	placed(cfg, &w, "user:1000", -1);
	w = who(0, 0);
	placed(cfg, &w, "user:0", -1);

	/* host_wide takes what no other domain takes */
	load_ok("[domain a]\nusers = 5\n[domain kernel-like]\nhost_wide = yes\nmax_bytes = 1G\n", cfg);
	w = who(5, 5);
	placed(cfg, &w, "a", 0);
	w = who(1000, 1000);
	strcpy(w.cgroup, "/user.slice");
	placed(cfg, &w, "kernel-like", 1);

	/* host_wide's own lists count too, in file order */
	load_ok("[domain hw]\nhost_wide = yes\nusers = 5\n[domain b]\nusers = 5 6\n", cfg);
	w = who(5, 5);
	placed(cfg, &w, "hw", 0);
	w = who(6, 6);
	placed(cfg, &w, "b", 1);

	/* per-user domains off: nothing takes the client */
	load_ok("[daemon]\nper_user_domains = no\n[domain a]\nusers = 5\n", cfg);
	w = who(5, 5);
	placed(cfg, &w, "a", 0);
	w = who(1000, 1000);
	refused(cfg, &w, "no domain admits uid 1000 (per_user_domains = no)");

	/* the name is cut to the buffer given, why may be NULL */
	load_ok("", cfg);
	w = who(4000000000u, 1);
	assert_int_equal(sd_config_place(cfg, &w, name, 8, &conf, NULL, 0), 0);
	assert_string_equal(name, "user:40");
	assert_int_equal(conf, -1);
	free(cfg);
}

struct bad {
	const char *text;
	int line;
	const char *what;
};

static void test_errors(void **state)
{
	static const struct bad bad[] = {
		/* sections */
		{"[daemon]\nsocket = /a.sock\n\n[domian vms]\nusers = 1\n", 4,
		 "unknown section [domian vms] (sections: [daemon], [domain NAME])"},
		{"[daemon x]\nsocket = /a.sock\n", 1, "unknown section [daemon x]"},
		{"# c\n[domain]\nusers = 1\n", 2, "empty domain name"},
		{"[domain   ]\nusers = 1\n", 1, "empty domain name"},
		{"[domain v!ms]\nusers = 1\n", 1,
		 "invalid domain name \"v!ms\": only letters, digits, '_', '.' and '-' may be used"},
		{"[domain a b]\nusers = 1\n", 1, "invalid domain name \"a b\""},
		{"[domain user:1000]\nusers = 1\n", 1, "invalid domain name \"user:1000\": \"user:\" names are"},
		{"[domain 123456789012345678901234567890123456789012]\nusers = 2\n", 1,
		 "section name longer than 48 characters (libinih cuts it)"},
		{"[domain a]\nusers = 1\n[domain b]\nusers = 2\n\n[domain a]\nusers = 3\n", 6,
		 "duplicate domain \"a\" (also line 1)"},
		{"[domain a]\nusers = 1\n[domain a]\nusers = 2\n", 3, "duplicate domain \"a\" (also line 1)"},
		{"users = 1\n[domain a]\n", 1, "\"users\" is outside any section ([daemon] or [domain NAME])"},
		/* [daemon] */
		{"[daemon]\nsocket = /a.sock\nfoo = 1\n", 3, "unknown key \"foo\" in [daemon]"},
		{"[daemon]\nmax_bytes = 1G\n", 2, "unknown key \"max_bytes\" in [daemon]"},
		{"[daemon]\nsocket = run/a.sock\n", 2, "socket: \"run/a.sock\" is not an absolute path"},
		{"[daemon]\nsocket = /run/"
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		 "aa\n",
		 2, "socket: path longer than 107 characters"},
		{"[daemon]\nsocket = /a /b\n", 2, "socket: one value expected, not \"/a /b\""},
		{"[daemon]\nadmin_group = no-such-group-sp\n", 2, "admin_group: unknown group \"no-such-group-sp\""},
		{"[daemon]\nadmin_group = 4294967295\n", 2, "admin_group: unknown group \"4294967295\""},
		{"[daemon]\nper_user_domains = maybe\n", 2, "per_user_domains: bad boolean \"maybe\" (yes or no)"},
		{"[daemon]\nper_user_max_clients = -1\n", 2,
		 "per_user_max_clients: bad number \"-1\" (an integer from 0 to 4294967295)"},
		{"[daemon]\nper_user_max_clients = 4294967296\n", 2, "per_user_max_clients: bad number \"4294967296\""},
		{"[daemon]\nper_user_max_bytes = 12X\n", 2,
		 "per_user_max_bytes: bad size \"12X\" (bytes, or with K, M, G, T)"},
		{"[daemon]\nsocket = /a.sock\nsocket = /b.sock\n", 3, "socket given twice in [daemon]"},
		{"[daemon]\nper_user_domains = no\n[domain a]\nusers = 1\n[daemon]\nper_user_domains = yes\n", 6,
		 "per_user_domains given twice in [daemon]"},
		/* [domain NAME] */
		{"[domain vms]\nusers = 1\nfoo = 1\n", 3, "unknown key \"foo\" in [domain vms]"},
		{"[domain vms]\nusers = 1 no-such-user-sp 2\n", 2, "users: unknown user \"no-such-user-sp\""},
		{"[domain vms]\nusers = 4294967295\n", 2, "users: unknown user \"4294967295\""},
		{"[domain vms]\ngroups = root,no-such-group-sp\n", 2, "groups: unknown group \"no-such-group-sp\""},
		{"[domain vms]\nusers = 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n", 2,
		 "users: too many entries (at most 16)"},
		{"[domain vms]\nusers = 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\nusers = 17\n", 3,
		 "users: too many entries (at most 16)"},
		{"[domain vms]\ngroups = 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n", 2,
		 "groups: too many entries (at most 16)"},
		{"[domain vms]\ncgroups = /1 /2 /3 /4 /5 /6 /7 /8 /9 /10 /11 /12 /13 /14 /15 /16 /17\n", 2,
		 "cgroups: too many entries (at most 16)"},
		{"[domain vms]\nlabels = a b c d e f g h i j k l m n o p q\n", 2,
		 "labels: too many entries (at most 16)"},
		{"[domain vms]\ncgroups = machine.slice\n", 2,
		 "cgroups: bad cgroup path \"machine.slice\": not an absolute path"},
		{"[domain vms]\ncgroups = /a//b\n", 2, "cgroups: bad cgroup path \"/a//b\": empty, \".\" or \"..\""},
		{"[domain vms]\ncgroups = /a/../b\n", 2, "cgroups: bad cgroup path \"/a/../b\""},
		{"[domain vms]\nlabels = v:ms\n", 2, "labels: invalid label \"v:ms\": only letters"},
		{"[domain a]\nlabels = x\n[domain b]\nlabels = y x\n", 4,
		 "labels: label \"x\" is already offered by domain \"a\""},
		{"[domain a]\nusers =\n", 2, "users: no value"},
		{"[domain a]\nusers = , ,\n", 2, "users: no value"},
		{"[domain a]\nusers = 1 # qemu\n", 2,
		 "users: \"#\": a comment after a value starts with \";\", not \"#\""},
		{"[domain a]\nhost_wide = perhaps\n", 2, "host_wide: bad boolean \"perhaps\" (yes or no)"},
		{"[domain a]\nhost_wide = yes\n[domain b]\nhost_wide = no\n[domain c]\nhost_wide = yes\n", 6,
		 "host_wide: domain \"a\" is host_wide already (at most one may be)"},
		{"[domain a]\nhost_wide = yes\nhost_wide = no\n", 3, "host_wide given twice in [domain a]"},
		{"[domain a]\nmax_bytes = 12X\n", 2, "max_bytes: bad size \"12X\" (bytes, or with K, M, G, T)"},
		{"[domain a]\nmax_bytes = 1.5G\n", 2, "max_bytes: bad size \"1.5G\""},
		{"[domain a]\nmax_bytes = G\n", 2, "max_bytes: bad size \"G\""},
		{"[domain a]\nmax_bytes = 1GB\n", 2, "max_bytes: bad size \"1GB\""},
		{"[domain a]\nmax_bytes = 16777216T\n", 2, "max_bytes: bad size \"16777216T\""},
		{"[domain a]\nmax_bytes = 18446744073709551616\n", 2, "max_bytes: bad size"},
		{"[domain a]\nmax_clients = lots\n", 2, "max_clients: bad number \"lots\""},
		{"[domain a]\nmax_clients = 1\nmax_clients = 2\n", 3, "max_clients given twice in [domain a]"},
		/* knobs */
		{"[domain vms]\n\n\npages_to_scan = abc\n", 4,
		 "pages_to_scan: invalid value \"abc\" (an integer >= 0 and < 2^32)"},
		{"[domain vms]\npages_to_scan = 4294967296\n", 2, "pages_to_scan: invalid value \"4294967296\""},
		{"[domain vms]\nscan_threads = 65\n", 2,
		 "scan_threads: invalid value \"65\" (an integer from 1 to 64)"},
		{"[domain vms]\nadvisor_mode = fast\n", 2, "advisor_mode: invalid value \"fast\" (none or scan-time)"},
		{"[domain vms]\nsmart_scan = x\n", 2, "smart_scan: invalid value \"x\" (0 or 1"},
		{"[domain vms]\npages_to_scan = 100 200\n", 2, "pages_to_scan: one value expected"},
		{"[domain vms]\npages_to_scan = 100\nsleep_millisecs = 1\npages_to_scan = 200\n", 4,
		 "pages_to_scan given twice in [domain vms]"},
		{"[domain vms]\npages_shared = 1\n", 2,
		 "\"pages_shared\" is a counter, not a knob a domain can start with"},
		{"[domain vms]\nfull_scans = 1\n", 2, "\"full_scans\" is a counter"},
		/* what libinih makes of lines */
		{"[daemon]\nsocket = /a.sock\njunk\n", 3, "syntax error"},
		{"[daemon\nsocket = /a.sock\n", 1, "syntax error"},
		{"[daemon]\nnot a key\n[domain a]\nfoo = 1\n", 2, "syntax error"}, /* the first error */
		{"[daemon]\nfoo = 1\nnot a key\n", 2, "unknown key \"foo\""},
		{"[domain a]\nusers = 1\n  groups = 2\n", 3,
		 "an indented line continues the value of \"users\" (libinih reads it so): do not indent keys"},
		{"[domain a]\nusers = 1\n\n\t2\n", 4, "an indented line continues the value of \"users\""},
		{"[domain a]\nusers = 1\n  [domain b]\nusers = 2\n", 3, "an indented line continues"},
		{"[domain a]\nusers = 1\n; a comment\ngroups = 1 ; a comment\nusers = 1\n"
		 "labels = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
		 6, "line longer than 198 characters"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		load_fails(bad[i].text, bad[i].line, bad[i].what);
}

static void test_too_many_domains(void **state)
{
	size_t len = 32 * (SD_MAX_DOMAINS + 2);
	char *text = malloc(len), *p = text;
	struct sd_config *cfg = cfg_new();

	(void)state;
	assert_non_null(text);
	for (int i = 0; i < SD_MAX_DOMAINS; i++)
		p += sprintf(p, "[domain d%d]\nusers=%d\n", i, i);
	load_ok(text, cfg);
	assert_int_equal(cfg->ndomains, SD_MAX_DOMAINS);
	assert_string_equal(cfg->domains[SD_MAX_DOMAINS - 1].name, "d63");
	sprintf(p, "[domain d%d]\nusers=%d\n", SD_MAX_DOMAINS, SD_MAX_DOMAINS);
	load_fails(text, 2 * SD_MAX_DOMAINS + 1, "too many domains (at most 64)");
	free(text);
	free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),	cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_sizes_and_lists), cmocka_unit_test(test_place_label),
		cmocka_unit_test(test_place_rules),	cmocka_unit_test(test_place_host_wide_and_per_user),
		cmocka_unit_test(test_errors),		cmocka_unit_test(test_too_many_domains),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
