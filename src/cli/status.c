/* SPDX-License-Identifier: MIT */
/*
 * status.c - `samepage status`: the kernel's KSM at a glance. Every knob
 * and counter this kernel has, savings with their formulas, ratios, ksmd's
 * CPU over a short interval, time per full scan, the advisor, and the
 * processes using KSM by profit. Read-only.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/ksmview.h"
#include "cli/textsafe.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: samepage status [OPTIONS]\n"
		   "\n"
		   "Shows the kernel's KSM: knobs, counters, savings, ksmd CPU, time per full scan,\n"
		   "the advisor, and the processes using KSM (from /proc/*/ksm_stat) by profit.\n"
		   "\n"
		   "  -i, --interval SECONDS      sample ksmd CPU and rates over this long (default 0.5;\n"
		   "                              0: one reading, no CPU %% or rates)\n"
		   "  -n, --top N                 process rows (default 10; 0: none)\n"
		   "      --json                  JSON on stdout (on failure too: {\"error\": ...})\n" SP_ROOT_HELP
		   "  -h, --help\n"
		   "\n"
		   "Exit status: 0 ok; 1 failed; 2 bad usage; 4 no KSM in this kernel.\n");
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

int sp_status_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"interval", required_argument, NULL, 'i'},
		{"top", required_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		SP_ROOT_OPTIONS,
		{0},
	};
	struct sp_roots r = {"/sys", "/proc"};
	double interval = 0.5;
	long top_n = 10;
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
			rc = sp_opt_common(c, optarg, &r, usage);
			if (rc != SP_OPT_GO_ON)
				return rc;
		}
	}
	rc = sp_opt_no_operands(argc, argv);
	if (rc != SP_OPT_GO_ON)
		return rc;
	return report(&r, interval, (int)top_n, json);
bad:
	sp_errorf("samepage status: invalid value '%s' for -%c\n", optarg, c);
	return SP_EXIT_USAGE;
}

SP_COMMAND_JSON(status, "the kernel's KSM: knobs, counters, savings, ksmd CPU, processes", sp_status_main);
