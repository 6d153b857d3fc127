/* SPDX-License-Identifier: MIT */
/*
 * set.c - `samepage set KNOB=VALUE...`: validated writes to the kernel's
 * KSM knobs, old -> new.
 *
 * Every assignment is checked against the kernel's syntax and ranges
 * before the first write, so a typo changes nothing. Writes then go in the
 * order given (so `run=2 merge_across_nodes=0 run=1` works) and stop at
 * the first the kernel refuses, with its errno turned into the reason and
 * the fix. Side effects the kernel makes on other knobs (advisor_mode
 * resets pages_to_scan) are reported too.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/daemonview.h"
#include "cli/textsafe.h"
#include "kernel/ksm.h"

struct assign {
	int idx;
	char name[64];
	char canon[48];
	char old[48];
};

static void usage(FILE *f)
{
	fprintf(f, "usage: samepage set [OPTIONS] KNOB=VALUE...\n"
		   "\n"
		   "Writes knobs of the kernel's KSM (/sys/kernel/mm/ksm), in order, after checking\n"
		   "every value against the kernel's ranges. Prints each change as old -> new.\n"
		   "With --daemon: the knobs of samepaged's merge domains, over its control socket.\n"
		   "\n"
		   "Knobs:\n");
	for (int i = 0; i < SP_KNOB_COUNT; i++)
		if (sp_knob_table[i].type != SP_KNOB_COUNTER && (sp_knob_table[i].flags & SP_KF_KERNEL))
			fprintf(f, "  %-36s %s\n", sp_knob_table[i].name, sp_knob_table[i].help);
	fprintf(f, "samepaged's (--daemon) also:\n");
	for (int i = 0; i < SP_KNOB_COUNT; i++)
		if (sp_knob_table[i].type != SP_KNOB_COUNTER && !(sp_knob_table[i].flags & SP_KF_KERNEL))
			fprintf(f, "  %-36s %s\n", sp_knob_table[i].name, sp_knob_table[i].help);
	fprintf(f, "\n"
		   "  -n, --dry-run               check and show old -> new, write nothing\n"
		   "      --json                  JSON on stdout (on failure too: {\"error\": ...})\n" SP_DAEMON_HELP
		   "                              (knobs of its domains, old -> new per domain; root\n"
		   "                              or the daemon's admin group only)\n"
		   "      --domain NAME           with --daemon: that domain only (default: every\n"
		   "                              domain, and the starting value of new ones)\n" SP_ROOT_HELP
		   "  -h, --help\n"
		   "\n"
		   "Example: samepage set run=2 merge_across_nodes=0 run=1\n"
		   "         samepage set --daemon --domain user:1000 pages_to_scan=1000\n"
		   "Exit status: 0 ok; 1 the kernel (or samepaged) refused a write, or no such\n"
		   "domain; 2 bad usage (unknown knob, bad value: nothing written); 3 permission\n"
		   "denied; 4 no KSM, or knob missing or sysfs read-only, or no samepaged at the\n"
		   "socket.\n");
}

static int parse_assign(const char *arg, const struct sp_ksm *k, struct assign *a)
{
	const char *eq = strchr(arg, '='), *why;
	char range[64];
	size_t n = eq ? (size_t)(eq - arg) : 0;
	int err;

	if (!eq || !n || n >= sizeof(a->name)) {
		sp_errorf("samepage set: '%s': expected KNOB=VALUE\n", arg);
		return SP_EXIT_USAGE;
	}
	memcpy(a->name, arg, n);
	a->name[n] = 0;
	err = sp_knob_check(a->name, eq + 1, a->canon, sizeof(a->canon), &why);
	a->idx = sp_knob_index(a->name);
	if (err == -ENOENT) {
		sp_errorf("samepage set: unknown knob '%s' (samepage set --help lists them)\n", a->name);
		return SP_EXIT_USAGE;
	}
	if (err == -EROFS) {
		sp_errorf("samepage set: %s is a read-only counter, not a knob\n", a->name);
		return SP_EXIT_USAGE;
	}
	if (err) {
		sp_errorf("samepage set: %s=%s: %s; %s takes %s\n", a->name, eq + 1, why, a->name,
			  sp_knob_range_text(&sp_knob_table[a->idx], range, sizeof(range)));
		return SP_EXIT_USAGE;
	}
	if (!k->present[a->idx]) {
		sp_errorf("samepage set: this kernel has no %s (no such file in /sys/kernel/mm/ksm)\n", a->name);
		return SP_EXIT_NOKSM;
	}
	return SP_EXIT_OK;
}

/* the kernel's errno for a write, as a reason and a fix: the table says
 * in which state the kernel refuses the knob, and with which errno */
static int explain(const struct sp_roots *r, const struct assign *a, int err)
{
	const struct sp_knob *kn = &sp_knob_table[a->idx];
	struct sp_knob_state st;
	struct sp_ksm k;
	char dir[400];

	sp_ksm_dir(r->sysfs, dir, sizeof(dir));
	sp_errorf("samepage set: writing %s to %s/%s: %s\n", a->canon, dir, a->name, strerror(-err));
	sp_ksm_read(r->sysfs, &k);
	st.shared = sp_ksm_get(&k, "pages_shared", 0) > 0;
	st.advisor = sp_ksm_get(&k, "advisor_mode", 0) != SP_ADVISOR_NONE;
	if (err == -EBUSY || err == -EINVAL) {
		if (kn->refuse == SP_REFUSE_SHARED && err == -kn->refuse_errno)
			sp_errorf("  the kernel refuses to change %s while KSM pages exist (pages_shared=%lld).\n"
				  "  Unmerge first, then merge again: samepage set run=2 %s=%s run=1\n",
				  a->name, sp_ksm_get(&k, "pages_shared", 0), a->name, a->canon);
		else if (kn->refuse == SP_REFUSE_ADVISOR && sp_knob_refused(kn, &st, 1) == err)
			sp_errorf("  the advisor sets %s while advisor_mode=scan-time.\n"
				  "  Set it by hand with: samepage set advisor_mode=none %s=%s\n",
				  a->name, a->name, a->canon);
		else
			fprintf(stderr, "  the kernel rejected the value\n");
		return SP_EXIT_FAIL;
	}
	switch (err) {
	case -EACCES:
	case -EPERM:
		fprintf(stderr, "  writing KSM knobs needs root\n");
		return SP_EXIT_PERM;
	case -EROFS:
		fprintf(stderr, "  /sys is mounted read-only here (a container?): set it on the host\n");
		return SP_EXIT_NOKSM;
	}
	return SP_EXIT_FAIL;
}

static void report(const struct assign *a, int dry, struct json_object *arr)
{
	struct json_object *o;

	if (!arr) {
		printf("%s: %s -> %s%s\n", a->name, sp_safe(a->old), a->canon, dry ? " (dry run)" : "");
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "knob", json_object_new_string(a->name));
	json_object_object_add(o, "old", json_object_new_string(a->old));
	json_object_object_add(o, "new", json_object_new_string(a->canon));
	json_object_object_add(o, "written", json_object_new_boolean(!dry));
	json_object_array_add(arr, o);
}

/* knobs the kernel changed on its own (advisor_mode resets pages_to_scan) */
static void side_effects(const struct sp_roots *r, const struct sp_ksm *before, const struct assign *as, int n,
			 struct json_object *arr)
{
	struct sp_ksm after;

	if (sp_ksm_read(r->sysfs, &after))
		return;
	for (int i = 0; i < SP_KNOB_COUNT; i++) {
		struct assign a = {.idx = i};
		int mine = 0;

		for (int j = 0; j < n; j++)
			mine |= as[j].idx == i;
		if (mine || sp_knob_table[i].type == SP_KNOB_COUNTER || !before->present[i] ||
		    !strcmp(before->text[i], after.text[i]))
			continue;
		snprintf(a.name, sizeof(a.name), "%s", sp_knob_table[i].name);
		sp_ksm_writable_text(before, i, a.old, sizeof(a.old));
		sp_ksm_writable_text(&after, i, a.canon, sizeof(a.canon));
		if (!arr)
			printf("%s: %s -> %s (changed by the kernel)\n", a.name, sp_safe(a.old), sp_safe(a.canon));
		else
			report(&a, 0, arr);
	}
}

static int apply(const struct sp_roots *r, struct assign *as, int n, int dry, struct json_object *arr)
{
	struct sp_ksm before, now;
	int err;

	sp_ksm_read(r->sysfs, &before);
	for (int i = 0; i < n; i++) {
		sp_ksm_read(r->sysfs, &now);
		sp_ksm_writable_text(&now, as[i].idx, as[i].old, sizeof(as[i].old));
		if (!dry) {
			err = sp_ksm_write(r->sysfs, as[i].name, as[i].canon);
			if (err)
				return explain(r, &as[i], err);
		}
		report(&as[i], dry, arr);
	}
	if (!dry)
		side_effects(r, &before, as, n, arr);
	return SP_EXIT_OK;
}

static int set_all(const struct sp_roots *r, int argc, char **argv, int dry, int json)
{
	struct json_object *arr = json ? json_object_new_array() : NULL;
	struct assign *as = calloc((size_t)argc, sizeof(*as));
	struct sp_ksm k;
	int err = sp_ksm_read(r->sysfs, &k), rc = SP_EXIT_OK;

	if (err || !as) {
		free(as);
		json_object_put(arr);
		return err ? sp_ksm_unreadable("set", r, err) : SP_EXIT_FAIL;
	}
	for (int i = 0; i < argc && rc == SP_EXIT_OK; i++)
		rc = parse_assign(argv[i], &k, &as[i]);
	if (rc == SP_EXIT_OK)
		rc = apply(r, as, argc, dry, arr);
	if (arr) { /* {"changes": [...]}, and "error" when not all were made */
		struct json_object *o = json_object_new_object();
		const char *m = sp_error_message();

		json_object_object_add(o, "changes", arr);
		if (rc != SP_EXIT_OK)
			json_object_object_add(o, "error", json_object_new_string(m ? m : "failed"));
		sp_json_print(stdout, o, JSON_C_TO_STRING_PRETTY);
		json_object_put(o);
	}
	free(as);
	return rc;
}

int sp_set_main(int argc, char **argv);

int sp_set_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dry-run", no_argument, NULL, 'n'},
		SP_DVIEW_OPTIONS,
		{0},
	};
	struct sp_roots r = {"/sys", "/proc"};
	struct sp_dview_opts d = {NULL, NULL};
	int dry = 0, json = 0, c, rc;

	while ((c = getopt_long(argc, argv, "+nh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			dry = 1;
			break;
		case 'j':
			json = 1;
			break;
		default:
			rc = sp_opt_dview(c, optarg, &d, &r, usage);
			if (rc != SP_OPT_GO_ON)
				return rc;
		}
	}
	if (optind == argc) {
		sp_errorf("samepage set: nothing to set: give KNOB=VALUE (samepage set --help)\n");
		return SP_EXIT_USAGE;
	}
	rc = sp_dview_opts_check(&d);
	if (rc != SP_OPT_GO_ON)
		return rc;
	if (d.sock)
		return sp_set_daemon(d.sock, d.domain, argc - optind, argv + optind, dry, json);
	return set_all(&r, argc - optind, argv + optind, dry, json);
}

SP_COMMAND_JSON(set, "write KSM knobs (or samepaged's), validated, showing old -> new", sp_set_main);
