/* SPDX-License-Identifier: MIT */
/*
 * status.c - `samepage status`: the kernel's KSM at a glance. Every knob
 * and counter this kernel has, savings with their formulas, ratios, ksmd's
 * CPU over a short interval, time per full scan, the advisor, and the
 * processes using KSM by profit. Read-only.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/daemonview.h"
#include "cli/ksmview.h"
#include "cli/textsafe.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: samepage status [OPTIONS]\n"
		   "\n"
		   "Shows the kernel's KSM: knobs, counters, savings, ksmd CPU, time per full scan,\n"
		   "the advisor, and the processes using KSM (from /proc/*/ksm_stat) by profit.\n"
		   "With --daemon: samepaged's merge domains (their knobs, counters, savings, rates)\n"
		   "and its clients by merging pages, read from its control socket.\n"
		   "\n"
		   "  -i, --interval SECONDS      sample ksmd CPU and rates over this long (default 0.5;\n"
		   "                              0: one reading, no CPU %% or rates)\n"
		   "  -n, --top N                 process (or client) rows (default 10; 0: none)\n"
		   "      --json                  JSON on stdout (on failure too: {\"error\": ...})\n" SP_DAEMON_HELP
		   "      --domain NAME           with --daemon: that domain and its clients only\n" SP_ROOT_HELP
		   "  -h, --help\n"
		   "\n"
		   "Exit status: 0 ok; 1 failed (or no such domain); 2 bad usage; 3 not permitted to\n"
		   "reach the socket; 4 no KSM in this kernel, or no samepaged at the socket.\n");
}

int sp_status_main(int argc, char **argv);

static int report(const struct sp_roots *r, double interval, int top_n, int json)
{
	struct sp_view a, b;
	struct sp_delta d = {0};
	struct sp_scan_time s;
	int err = sp_view_read(r, 0, &a);

	if (err)
		return sp_ksm_unreadable("status", r, err);
	sp_sleep(interval);
	err = sp_view_read(r, 1, &b);
	if (err) {
		sp_view_free(&a);
		return sp_ksm_unreadable("status", r, err);
	}
	if (interval > 0)
		sp_view_delta(&a, &b, &d);
	sp_view_scan_time(&b, &d, sp_view_dscans(&a, &b), &s);
	if (json) {
		struct json_object *o = sp_view_json(&b, &d, &s, top_n);

		sp_json_print(stdout, o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
		json_object_put(o);
	} else {
		sp_view_print(stdout, &b, &d, &s, top_n);
	}
	sp_view_free(&a);
	sp_view_free(&b);
	return SP_EXIT_OK;
}

/* --daemon: two readings interval apart (one when 0), as for the kernel */
static int report_daemon(const char *sock, const struct sp_roots *r, double interval, int top_n, int json,
			 const char *only)
{
	struct sp_dview a, b;
	int err = sp_dview_read(sock, r->proc, &a), rc = SP_EXIT_OK;

	if (err) {
		rc = sp_dview_unreachable("status", &a, err);
		sp_dview_free(&a);
		return rc;
	}
	if (interval > 0) {
		sp_sleep(interval);
		err = sp_dview_read(sock, r->proc, &b);
		if (err) {
			rc = sp_dview_unreachable("status", &b, err);
			goto out;
		}
	} else {
		b = a;
		memset(&a, 0, sizeof(a));
	}
	if (only && !sp_dview_find(&b, only)) {
		rc = sp_dview_no_domain("status", &b, only);
	} else if (json) {
		struct json_object *o = sp_dview_json(interval > 0 ? &a : NULL, &b, only, top_n);

		sp_json_print(stdout, o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
		json_object_put(o);
	} else {
		sp_dview_print(stdout, interval > 0 ? &a : NULL, &b, only, top_n);
	}
out:
	sp_dview_free(&a);
	sp_dview_free(&b);
	return rc;
}

int sp_status_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"interval", required_argument, NULL, 'i'},
		{"top", required_argument, NULL, 'n'},
		SP_DVIEW_OPTIONS,
		{0},
	};
	struct sp_roots r = {"/sys", "/proc"};
	double interval = 0.5;
	long top_n = 10;
	struct sp_dview_opts d = {NULL, NULL};
	int json = 0, c, rc;

	while ((c = getopt_long(argc, argv, "i:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (sp_arg_double(optarg, 0, 3600, &interval))
				goto bad;
			break;
		case 'n':
			if (sp_arg_long(optarg, 0, 1000000, &top_n))
				goto bad;
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
	rc = sp_dview_no_operands(argc, argv);
	if (rc != SP_OPT_GO_ON)
		return rc;
	rc = sp_dview_opts_check(&d);
	if (rc != SP_OPT_GO_ON)
		return rc;
	if (d.sock)
		return report_daemon(d.sock, &r, interval, (int)top_n, json, d.domain);
	return report(&r, interval, (int)top_n, json);
bad:
	sp_errorf("samepage status: invalid value '%s' for -%c\n", optarg, c);
	return SP_EXIT_USAGE;
}

SP_COMMAND_JSON(status, "the kernel's KSM (or samepaged's): knobs, counters, savings, processes", sp_status_main);
