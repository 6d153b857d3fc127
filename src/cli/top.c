/* SPDX-License-Identifier: MIT */
/*
 * top.c - `samepage top`: `samepage status`, live. Redraws every interval
 * with rates since the previous reading (pages merged/s, COW breaks/s from
 * /proc/vmstat cow_ksm, pages scanned/s, ksmd CPU %); q quits.
 *
 * On a terminal the screen is redrawn in place and the terminal is put in
 * non-canonical mode, restored on every exit path (q, SIGINT, SIGTERM).
 * Elsewhere, or with --batch, readings are appended (JSON: one object per
 * line), so scripts and tests can read them.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/daemonview.h"
#include "cli/ksmview.h"
#include "cli/textsafe.h"

static struct termios saved_tty;
static int tty_raw;
static volatile sig_atomic_t stop;

static void usage(FILE *f)
{
	fprintf(f, "usage: samepage top [OPTIONS]\n"
		   "\n"
		   "Shows the kernel's KSM live, like samepage status, with rates since the last\n"
		   "refresh: pages merged/s, COW breaks/s (/proc/vmstat cow_ksm), scanned/s, ksmd\n"
		   "CPU %%. Press q to quit.\n"
		   "With --daemon: samepaged's merge domains (state, savings, pages scanned/s and\n"
		   "merged/s, time per full scan) and its clients by merging pages.\n"
		   "\n"
		   "  -d, --delay SECONDS         refresh interval (default 2)\n"
		   "  -n, --iterations N          stop after N refreshes (default: until q)\n"
		   "  -b, --batch                 append readings instead of redrawing (default when\n"
		   "                              stdout is not a terminal)\n"
		   "      --top N                 process (or client) rows (default 15)\n"
		   "      --json                  one JSON object per refresh and line (implies -b)\n" SP_DAEMON_HELP
		   "      --domain NAME           with --daemon: that domain and its clients only\n" SP_ROOT_HELP
		   "  -h, --help\n"
		   "\n"
		   "Exit status: 0 ok; 1 failed; 2 bad usage; 3 not permitted to reach the socket;\n"
		   "4 no KSM in this kernel, or no samepaged at the socket.\n");
}

static void tty_restore(void)
{
	if (tty_raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
	tty_raw = 0;
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void tty_setup(void)
{
	struct termios t;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tty))
		return;
	t = saved_tty;
	t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	if (!tcsetattr(STDIN_FILENO, TCSANOW, &t)) {
		tty_raw = 1;
		atexit(tty_restore);
	}
}

/* Waits up to seconds; 1 if the user asked to quit. */
static int wait_key(double seconds)
{
	struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
	char c;

	if (!tty_raw) {
		sp_sleep(seconds);
		return stop;
	}
	if (poll(&p, 1, (int)(seconds * 1000)) > 0 && read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q'))
		return 1;
	return stop;
}

struct top_opts {
	struct sp_roots r;
	double delay;
	long iterations, top_n;
	int batch, json;
	struct sp_dview_opts d; /* --daemon, --domain */
};

static void show(const struct top_opts *o, const struct sp_view *prev, const struct sp_view *now)
{
	struct sp_delta d;
	struct sp_scan_time s;
	long long dscans = sp_view_dscans(prev, now);

	sp_view_delta(prev, now, &d);
	sp_view_scan_time(now, &d, dscans, &s);
	if (o->json) {
		struct json_object *j = sp_view_json(now, &d, &s, (int)o->top_n);

		sp_json_print(stdout, j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		json_object_put(j);
	} else {
		if (!o->batch)
			fputs("\033[H\033[2J", stdout);
		sp_view_print(stdout, now, &d, &s, (int)o->top_n);
		puts(o->batch ? "" : "(q quits)");
	}
	fflush(stdout);
}

static int loop(const struct top_opts *o)
{
	struct sp_view a, b;
	int err = sp_view_read(&o->r, 1, &a);

	if (err)
		return sp_ksm_unreadable("top", &o->r, err);
	if (!o->batch)
		tty_setup();
	for (long i = 0; !o->iterations || i < o->iterations; i++) {
		if (wait_key(o->delay))
			break;
		err = sp_view_read(&o->r, 1, &b);
		if (err) {
			sp_view_free(&a);
			tty_restore();
			sp_json_printed = 0; /* the readings so far, then the error */
			return sp_ksm_unreadable("top", &o->r, err);
		}
		show(o, &a, &b);
		sp_view_free(&a);
		a = b;
	}
	sp_view_free(&a);
	tty_restore();
	return SP_EXIT_OK;
}

static void show_daemon(const struct top_opts *o, const struct sp_dview *prev, const struct sp_dview *now)
{
	if (o->json) {
		struct json_object *j = sp_dview_json(prev, now, o->d.domain, (int)o->top_n);

		sp_json_print(stdout, j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		json_object_put(j);
	} else {
		if (!o->batch)
			fputs("\033[H\033[2J", stdout);
		sp_dview_print_top(stdout, prev, now, o->d.domain, (int)o->top_n);
		puts(o->batch ? "" : "(q quits)");
	}
	fflush(stdout);
}

/* --daemon: STATUS every delay; rates between consecutive readings */
static int loop_daemon(const struct top_opts *o)
{
	struct sp_dview a, b;
	int err = sp_dview_read(o->d.sock, o->r.proc, &a), rc = SP_EXIT_OK;

	if (err) {
		rc = sp_dview_unreachable("top", &a, err);
		sp_dview_free(&a);
		return rc;
	}
	if (!o->batch)
		tty_setup();
	for (long i = 0; !o->iterations || i < o->iterations; i++) {
		if (wait_key(o->delay))
			break;
		err = sp_dview_read(o->d.sock, o->r.proc, &b);
		if (err) {
			tty_restore();
			sp_json_printed = 0; /* the readings so far, then the error */
			rc = sp_dview_unreachable("top", &b, err);
			sp_dview_free(&b);
			break;
		}
		show_daemon(o, &a, &b);
		sp_dview_free(&a);
		a = b;
	}
	sp_dview_free(&a);
	tty_restore();
	return rc;
}

int sp_top_main(int argc, char **argv);

int sp_top_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"delay", required_argument, NULL, 'd'},
		{"iterations", required_argument, NULL, 'n'},
		{"batch", no_argument, NULL, 'b'},
		{"top", required_argument, NULL, 't'},
		SP_DVIEW_OPTIONS,
		{0},
	};
	struct top_opts o = {{"/sys", "/proc"}, 2.0, 0, 15, !isatty(STDOUT_FILENO), 0, {NULL, NULL}};
	struct sigaction sa = {.sa_handler = on_signal};
	int c, rc;

	while ((c = getopt_long(argc, argv, "d:n:bh", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (sp_arg_double(optarg, 0.05, 3600, &o.delay))
				goto bad;
			break;
		case 'n':
			if (sp_arg_long(optarg, 1, 1000000000, &o.iterations))
				goto bad;
			break;
		case 't':
			if (sp_arg_long(optarg, 0, 1000000, &o.top_n))
				goto bad;
			break;
		case 'b':
			o.batch = 1;
			break;
		case 'j':
			o.json = o.batch = 1;
			break;
		default:
			rc = sp_opt_dview(c, optarg, &o.d, &o.r, usage);
			if (rc != SP_OPT_GO_ON)
				return rc;
		}
	}
	rc = sp_dview_no_operands(argc, argv);
	if (rc != SP_OPT_GO_ON)
		return rc;
	rc = sp_dview_opts_check(&o.d);
	if (rc != SP_OPT_GO_ON)
		return rc;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	return o.d.sock ? loop_daemon(&o) : loop(&o);
bad:
	sp_errorf("samepage top: invalid value '%s' for %s\n", optarg, argv[optind - 1]);
	return SP_EXIT_USAGE;
}

SP_COMMAND_JSON(top, "the kernel's KSM (or samepaged's) live, with rates (q quits)", sp_top_main);
