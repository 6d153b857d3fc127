/* SPDX-License-Identifier: MIT */
/*
 * tune.c - `samepage tune`: a foreground daemon that keeps the kernel's KSM
 * tuned. Every interval it reads memory and ksmd's work, lets the rules in
 * src/tune/rules.c decide (ksmtuned's, or a scan-time controller with
 * a CPU ceiling that defers to the kernel's advisor where there is one),
 * and writes and logs each change with its reason. On SIGINT, SIGTERM or
 * SIGHUP it puts back every knob it wrote and ksmd's CPUs and nice.
 *
 * This file holds the loop; tune_opts.c the command line, tune_io.c the
 * reading, writing and restoring, tune_ksmd.c ksmd's CPUs and nice.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/tune.h"

static void log_start(const struct tuner *t, const struct sp_tune_input *in)
{
	const struct sp_tune_config *c = &t->cfg;
	char why[600];
	size_t n;

	n = (size_t)snprintf(why, sizeof(why),
			     "mode %s, every %g s; threshold %lld MiB (%ld%% of MemTotal %lld MiB, at least %ld MiB)",
			     c->mode == SP_TUNE_KSMTUNED ? "ksmtuned" : "scan-time", c->interval_s,
			     sp_tune_threshold_kb(c, in->mem_total_kb) / 1024, c->thres_coef, in->mem_total_kb / 1024,
			     c->thres_const_mib);
	if (c->mode == SP_TUNE_KSMTUNED)
		n += (size_t)snprintf(why + n, sizeof(why) - n,
				      "; pages_to_scan %+ld/%+ld within %ld..%ld, sleep_millisecs %lld", c->boost,
				      c->decay, c->npages_min, c->npages_max, sp_tune_sleep_ms(c, in->mem_total_kb));
	else
		n += (size_t)snprintf(why + n, sizeof(why) - n, "; full scan %ld s, ksmd CPU <= %ld%%, %s",
				      c->target_scan_s, c->max_cpu_pct,
				      in->k.advisor_mode >= 0 ? "by the kernel's advisor"
							      : "pages_to_scan sized by tune");
	snprintf(why + n, sizeof(why) - n, "%s%s%s", c->always_on ? "; always on" : "",
		 t->dry ? "; dry run: nothing is written" : "",
		 t->dry	      ? ""
		 : t->restore ? "; restored at exit"
			      : "; left as set at exit");
	sp_tune_log(t, "start", NULL, NULL, NULL, why);
}

/* Waits the interval; 1 when a stop signal came instead. */
static int pause_or_stop(int sfd, double seconds, int *sig)
{
	struct timespec now, end;
	struct pollfd p = {.fd = sfd, .events = POLLIN};

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += (time_t)seconds;
	end.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	for (;;) {
		long ms;

		clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (long)(end.tv_sec - now.tv_sec) * 1000 + (end.tv_nsec - now.tv_nsec) / 1000000;
		if (ms <= 0)
			return 0;
		if (poll(&p, 1, (int)ms) > 0) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				*sig = (int)si.ssi_signo;
				return 1;
			}
		}
	}
}

static int loop(struct tuner *t)
{
	struct sp_tune_decision d;
	struct sp_tune_input in;
	sigset_t stop;
	int rc, sfd, sig = 0;
	char why[80];

	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	sigprocmask(SIG_BLOCK, &stop, NULL);
	sfd = signalfd(-1, &stop, SFD_CLOEXEC);
	if (sfd < 0) {
		perror("samepage tune: signalfd");
		return SP_EXIT_FAIL;
	}
	rc = sp_tune_read(t, &in);
	if (rc == SP_EXIT_OK) {
		log_start(t, &in);
		rc = sp_tune_ksmd(t);
	}
	while (rc == SP_EXIT_OK) {
		sp_tune_decide(&t->cfg, &in, &d);
		rc = sp_tune_apply(t, &d);
		t->prev = in.cur;
		t->have_prev = 1;
		if (rc || t->once || pause_or_stop(sfd, t->cfg.interval_s, &sig))
			break;
		rc = sp_tune_read(t, &in);
	}
	if (t->restore && !t->once && !t->dry) {
		sp_tune_restore(t);
		sp_tune_ksmd_restore(t);
	}
	if (sig)
		snprintf(why, sizeof(why), "%s", strsignal(sig));
	else
		snprintf(why, sizeof(why), "%s", rc ? "error" : "done");
	if (rc) {
		t->exit_error = sp_error_message();
		if (!t->exit_error)
			t->exit_error = "failed";
	}
	sp_tune_log(t, "exit", NULL, NULL, NULL, why);
	close(sfd);
	if (rc == SP_EXIT_OK && t->once && t->write_errors)
		rc = SP_EXIT_FAIL;
	return rc;
}

int sp_tune_main(int argc, char **argv);

int sp_tune_main(int argc, char **argv)
{
	static struct tuner t;
	int rc;

	memset(&t, 0, sizeof(t));
	t.r.sysfs = "/sys";
	t.r.proc = "/proc";
	t.restore = 1;
	sp_tune_defaults(&t.cfg);
	rc = sp_tune_parse(&t, argc, argv);
	if (rc)
		return rc < 0 ? SP_EXIT_OK : rc;
	return loop(&t);
}

SP_COMMAND_JSON(tune, "keep KSM tuned: ksmtuned rules or a scan-time target, logged", sp_tune_main);
