/* SPDX-License-Identifier: MIT */
/*
 * tune_opts.c - the command line of `samepage tune` (see tune.h): options,
 * --help, and --config. The settings ksmtuned.conf also has go through the
 * same checks as the file's keys (sp_tune_config_set) and win over it,
 * whatever their order on the command line.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/tune.h"

#define MAX_CONFIG (64 * 1024)

enum {
	OPT_MODE = 0x2000,
	OPT_INTERVAL,
	OPT_CONFIG,
	OPT_SLEEP,
	OPT_COEF,
	OPT_CONST,
	OPT_BOOST,
	OPT_DECAY,
	OPT_NMIN,
	OPT_NMAX,
	OPT_TARGET,
	OPT_MAXCPU,
	OPT_MAXPAGES,
	OPT_ALWAYS,
	OPT_CPUS,
	OPT_NICE,
	OPT_ONCE,
	OPT_NORESTORE,
	OPT_JSON,
};

/* options that are ksmtuned.conf keys: applied over --config's values */
static const struct {
	int opt;
	const char *name, *key;
} conf_opts[] = {
	{OPT_INTERVAL, "--interval", "KSM_MONITOR_INTERVAL"}, {OPT_SLEEP, "--sleep-msec", "KSM_SLEEP_MSEC"},
	{OPT_COEF, "--thres-coef", "KSM_THRES_COEF"},	      {OPT_CONST, "--thres-const", "KSM_THRES_CONST"},
	{OPT_BOOST, "--boost", "KSM_NPAGES_BOOST"},	      {OPT_DECAY, "--decay", "KSM_NPAGES_DECAY"},
	{OPT_NMIN, "--npages-min", "KSM_NPAGES_MIN"},	      {OPT_NMAX, "--npages-max", "KSM_NPAGES_MAX"},
};
#define NCONF (sizeof(conf_opts) / sizeof(conf_opts[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: samepage tune [OPTIONS]\n"
		   "\n"
		   "Keeps the kernel's KSM tuned, in the foreground: every interval it reads memory\n"
		   "and ksmd's work, decides, writes and logs each change (time, knob old -> new,\n"
		   "the reason with its numbers). KSM runs while MemAvailable is under the\n"
		   "threshold (or VMs' memory plus the threshold does not fit) and stops otherwise.\n"
		   "At exit (SIGINT, SIGTERM, SIGHUP) every knob it wrote goes back to its value\n"
		   "at start, and so do ksmd's CPUs and nice.\n"
		   "\n"
		   "      --mode MODE             scan-time (default): size pages_to_scan for a full\n"
		   "                              scan of --target-scan-time under --max-cpu, or let\n"
		   "                              the kernel's advisor do it where it exists;\n"
		   "                              ksmtuned: ksmtuned's boost/decay rules\n"
		   "      --interval SECONDS      time between evaluations (60)\n"
		   "      --config FILE           read KSM_* settings from a ksmtuned.conf-style file\n"
		   "                              (KEY=VALUE lines); options given here win\n"
		   "      --thres-coef PERCENT    threshold: this %% of MemTotal (20) ...\n"
		   "      --thres-const MIB       ... or this many MiB, whichever is more (2048)\n"
		   "      --boost N               ksmtuned: pages_to_scan step while memory is short (300)\n"
		   "      --decay N               ksmtuned: step otherwise, negative (-50)\n"
		   "      --npages-min N          lowest pages_to_scan (64)\n"
		   "      --npages-max N          ksmtuned: highest pages_to_scan (1250)\n"
		   "      --sleep-msec MS         ksmtuned: sleep_millisecs for 16 GiB, scaled by\n"
		   "                              16 GiB / MemTotal, at least 10 (10)\n"
		   "      --target-scan-time S    scan-time: seconds per full scan (200)\n"
		   "      --max-cpu PERCENT       scan-time: ksmd CPU ceiling, %% of one CPU (70)\n"
		   "      --max-pages N           scan-time: highest pages_to_scan without the advisor\n"
		   "                              (30000)\n"
		   "      --always-on             never stop KSM for lack of memory pressure\n"
		   "      --ksmd-cpus LIST        run ksmd on these CPUs (0-1,3), or housekeeping: the\n"
		   "                              online CPUs that are neither isolated nor nohz_full\n"
		   "      --ksmd-nice N           ksmd's nice value (-20..19)\n"
		   "  -n, --dry-run               decide and print, write nothing\n"
		   "      --once                  evaluate once, apply, exit (changes are kept)\n"
		   "      --no-restore            leave knobs, ksmd's CPUs and nice as set at exit\n"
		   "      --json                  one JSON object per line\n"
		   "  -v, --verbose               also log knobs considered and kept\n" SP_ROOT_HELP "  -h, --help\n"
		   "\n"
		   "Exit status: 0 ok; 1 a write failed (--once) or no ksmd; 2 bad usage; 3 permission\n"
		   "denied; 4 no KSM in this kernel, or /sys read-only.\n");
}

static int read_config(const char *path, struct sp_tune_config *c)
{
	char *buf = malloc(MAX_CONFIG), msg[300];
	FILE *f = fopen(path, "re");
	size_t n;
	int err;

	if (!f || !buf) {
		sp_errorf("samepage tune: --config %s: %s\n", path, strerror(errno));
		free(buf);
		if (f)
			fclose(f);
		return SP_EXIT_USAGE;
	}
	n = fread(buf, 1, MAX_CONFIG - 1, f);
	buf[n] = 0;
	fclose(f);
	err = sp_tune_config_parse(buf, c, msg, sizeof(msg));
	free(buf);
	if (err) {
		sp_errorf("samepage tune: %s: %s\n", path, msg);
		return SP_EXIT_USAGE;
	}
	if (*msg)
		sp_errorf("samepage tune: %s: %s\n", path, msg);
	return SP_EXIT_OK;
}

static int num_opt(const char *name, const char *arg, long lo, long hi, long *out)
{
	if (sp_arg_long(arg, lo, hi, out)) {
		sp_errorf("samepage tune: %s %s: not an integer from %ld to %ld\n", name, arg, lo, hi);
		return -1;
	}
	return 0;
}

int sp_tune_parse(struct tuner *t, int argc, char **argv)
{
	static const struct option opts[] = {
		{"mode", required_argument, NULL, OPT_MODE},
		{"interval", required_argument, NULL, OPT_INTERVAL},
		{"config", required_argument, NULL, OPT_CONFIG},
		{"sleep-msec", required_argument, NULL, OPT_SLEEP},
		{"thres-coef", required_argument, NULL, OPT_COEF},
		{"thres-const", required_argument, NULL, OPT_CONST},
		{"boost", required_argument, NULL, OPT_BOOST},
		{"decay", required_argument, NULL, OPT_DECAY},
		{"npages-min", required_argument, NULL, OPT_NMIN},
		{"npages-max", required_argument, NULL, OPT_NMAX},
		{"target-scan-time", required_argument, NULL, OPT_TARGET},
		{"max-cpu", required_argument, NULL, OPT_MAXCPU},
		{"max-pages", required_argument, NULL, OPT_MAXPAGES},
		{"always-on", no_argument, NULL, OPT_ALWAYS},
		{"ksmd-cpus", required_argument, NULL, OPT_CPUS},
		{"ksmd-nice", required_argument, NULL, OPT_NICE},
		{"dry-run", no_argument, NULL, 'n'},
		{"once", no_argument, NULL, OPT_ONCE},
		{"no-restore", no_argument, NULL, OPT_NORESTORE},
		{"json", no_argument, NULL, OPT_JSON},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		SP_ROOT_OPTIONS,
		{0},
	};
	const char *given[NCONF] = {0}, *config = NULL;
	char msg[300];
	long v;
	int c, rc;

	while ((c = getopt_long(argc, argv, "nvh", opts, NULL)) != -1) {
		size_t i;

		for (i = 0; i < NCONF && conf_opts[i].opt != c; i++)
			;
		if (i < NCONF) {
			given[i] = optarg;
			continue;
		}
		switch (c) {
		case OPT_MODE:
			if (strcmp(optarg, "scan-time") && strcmp(optarg, "ksmtuned")) {
				sp_errorf("samepage tune: --mode %s: must be scan-time or ksmtuned\n", optarg);
				return SP_EXIT_USAGE;
			}
			t->cfg.mode = strcmp(optarg, "ksmtuned") ? SP_TUNE_SCAN_TIME : SP_TUNE_KSMTUNED;
			break;
		case OPT_CONFIG:
			config = optarg;
			break;
		case OPT_TARGET:
			if (num_opt("--target-scan-time", optarg, 1, 86400L * 365, &t->cfg.target_scan_s))
				return SP_EXIT_USAGE;
			break;
		case OPT_MAXCPU:
			if (num_opt("--max-cpu", optarg, 1, 100, &t->cfg.max_cpu_pct))
				return SP_EXIT_USAGE;
			break;
		case OPT_MAXPAGES:
			if (num_opt("--max-pages", optarg, 1, 4294967295L, &t->cfg.max_pages))
				return SP_EXIT_USAGE;
			break;
		case OPT_ALWAYS:
			t->cfg.always_on = 1;
			break;
		case OPT_CPUS:
			t->ksmd_cpus = optarg;
			break;
		case OPT_NICE:
			if (num_opt("--ksmd-nice", optarg, -20, 19, &v))
				return SP_EXIT_USAGE;
			t->set_nice = 1;
			t->nice = (int)v;
			break;
		case 'n':
			t->dry = 1;
			break;
		case OPT_ONCE:
			t->once = 1;
			break;
		case OPT_NORESTORE:
			t->restore = 0;
			break;
		case OPT_JSON:
			t->json = 1;
			break;
		case 'v':
			t->verbose = 1;
			break;
		default:
			rc = sp_opt_common(c, optarg, &t->r, usage);
			if (rc != SP_OPT_GO_ON)
				return rc == SP_EXIT_OK ? -1 : rc; /* -1: --help was shown */
		}
	}
	if (optind < argc) {
		sp_errorf("samepage tune: unexpected argument '%s' (samepage tune --help)\n", argv[optind]);
		return SP_EXIT_USAGE;
	}
	if (config && read_config(config, &t->cfg))
		return SP_EXIT_USAGE;
	for (size_t i = 0; i < NCONF; i++)
		if (given[i] && sp_tune_config_set(&t->cfg, conf_opts[i].key, given[i], msg, sizeof(msg))) {
			sp_errorf("samepage tune: %s: %s\n", conf_opts[i].name, msg);
			return SP_EXIT_USAGE;
		}
	if (sp_tune_config_check(&t->cfg, msg, sizeof(msg))) {
		sp_errorf("samepage tune: %s\n", msg);
		return SP_EXIT_USAGE;
	}
	return SP_EXIT_OK;
}
