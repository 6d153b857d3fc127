/* SPDX-License-Identifier: MIT */
/*
 * run.c - `samepage run [--] CMD...`: start CMD with the kernel's KSM on
 * for all of its anonymous memory, like systemd's MemoryKSM=.
 *
 * A child calls prctl(PR_SET_MEMORY_MERGE, 1) and execs CMD; the flag
 * (MMF_VM_MERGE_ANY) survives exec and fork, so CMD and its children are
 * merged without being changed. A close-on-exec pipe tells the parent
 * whether prctl and exec succeeded; then it checks /proc/PID/ksm_stat
 * (ksm_merge_any: yes), forwards SIGTERM/SIGHUP, and exits with CMD's
 * status. Nothing is left changed except, with --ksmd, run=1.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "kernel/ksm.h"
#include "kernel/procs.h"
#include "kernel/readfile.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif

enum { STEP_PRCTL = 1, STEP_EXEC = 2 };

struct failure {
	int step, err;
};

static pid_t child;

static void usage(FILE *f)
{
	fprintf(f, "usage: samepage run [OPTIONS] [--] CMD [ARGS...]\n"
		   "\n"
		   "Runs CMD with the kernel's KSM enabled for all of its anonymous memory\n"
		   "(prctl PR_SET_MEMORY_MERGE, inherited by its children), then checks\n"
		   "/proc/PID/ksm_stat says ksm_merge_any: yes. Like systemd's MemoryKSM=yes.\n"
		   "\n"
		   "  -k, --ksmd                  also switch ksmd on (run=1) if it is off; left on\n"
		   "  -v, --verbose               report the check on stderr\n" SP_ROOT_HELP "  -h, --help\n"
		   "\n"
		   "Needs CAP_SYS_RESOURCE (root) and Linux 6.4 or later.\n"
		   "Exit status: CMD's own, or 128+N if killed by signal N; 126 CMD not executable;\n"
		   "127 CMD not found; 2 bad usage; 3 permission denied; 4 no KSM or no\n"
		   "PR_SET_MEMORY_MERGE in this kernel.\n");
}

static void forward(int sig)
{
	if (child > 0)
		kill(child, sig);
}

static void start_child(char **cmd, int wfd)
{
	struct failure f = {STEP_PRCTL, 0};

	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0)) {
		f.err = errno;
	} else {
		execvp(cmd[0], cmd);
		f.step = STEP_EXEC;
		f.err = errno;
	}
	if (write(wfd, &f, sizeof(f)) < 0)
		_exit(127);
	_exit(127);
}

static int failed(const char *cmd, const struct failure *f)
{
	if (f->step == STEP_EXEC) {
		fprintf(stderr, "samepage run: %s: %s\n", cmd, strerror(f->err));
		return f->err == ENOENT ? 127 : 126;
	}
	if (f->err == EINVAL) {
		fprintf(stderr,
			"samepage run: prctl(PR_SET_MEMORY_MERGE): %s: this kernel lacks it "
			"(Linux 6.4 or later, with CONFIG_KSM)\n",
			strerror(f->err));
		return SP_EXIT_NOKSM;
	}
	fprintf(stderr, "samepage run: prctl(PR_SET_MEMORY_MERGE): %s%s\n", strerror(f->err),
		f->err == EPERM ? ": needs CAP_SYS_RESOURCE (run as root)" : "");
	return f->err == EPERM || f->err == EACCES ? SP_EXIT_PERM : SP_EXIT_FAIL;
}

/* 'R', 'S', ... from <proc>/PID/stat, or 0 when gone */
static char task_state(const char *proc, pid_t pid)
{
	char path[256], buf[512], *p;

	snprintf(path, sizeof(path), "%s/%d/stat", proc, pid);
	if (sp_read_small(path, buf, sizeof(buf)) < 0)
		return 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

static void verify(const struct sp_roots *r, pid_t pid, const char *cmd, int verbose)
{
	struct sp_proc p;
	char st;

	if (sp_proc_info(r->proc, pid, &p) || !(st = task_state(r->proc, pid)) || st == 'Z' || st == 'X') {
		if (verbose)
			fprintf(stderr, "samepage run: pid %d (%s) exited before the check\n", pid, cmd);
		return;
	}
	if (!p.merge_any)
		fprintf(stderr,
			"samepage run: warning: %s/%d/ksm_stat does not say ksm_merge_any: yes: "
			"this kernel drops the flag on exec; %s is NOT merged\n",
			r->proc, pid, cmd);
	else if (verbose)
		fprintf(stderr, "samepage run: pid %d (%s): ksm_merge_any: yes\n", pid, cmd);
}

static int ksmd_on(const struct sp_roots *r)
{
	struct sp_ksm k;
	int err = sp_ksm_read(r->sysfs, &k);

	if (err)
		return sp_ksm_unreadable("run", r, err);
	if (sp_ksm_get(&k, "run", 0) == 1)
		return SP_EXIT_OK;
	err = sp_ksm_write(r->sysfs, "run", "1");
	if (err) {
		fprintf(stderr, "samepage run: writing 1 to %s/kernel/mm/ksm/run: %s\n", r->sysfs, strerror(-err));
		return err == -EACCES || err == -EPERM ? SP_EXIT_PERM : SP_EXIT_FAIL;
	}
	fprintf(stderr, "samepage run: run: %lld -> 1 (ksmd on)\n", sp_ksm_get(&k, "run", 0));
	return SP_EXIT_OK;
}

static int wait_child(void)
{
	int st;

	while (waitpid(child, &st, 0) < 0)
		if (errno != EINTR)
			return SP_EXIT_FAIL;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int launch(const struct sp_roots *r, char **cmd, int verbose)
{
	struct sigaction sa = {.sa_handler = forward};
	struct failure f;
	int p[2];
	ssize_t n;

	if (pipe2(p, O_CLOEXEC)) {
		perror("samepage run: pipe");
		return SP_EXIT_FAIL;
	}
	child = fork();
	if (child < 0) {
		perror("samepage run: fork");
		return SP_EXIT_FAIL;
	}
	if (!child)
		start_child(cmd, p[1]);
	close(p[1]);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGINT, SIG_IGN); /* the terminal sends it to CMD too */
	signal(SIGQUIT, SIG_IGN);
	do
		n = read(p[0], &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n == sizeof(f)) {
		wait_child();
		return failed(cmd[0], &f);
	}
	verify(r, child, cmd[0], verbose);
	return wait_child();
}

int sp_run_main(int argc, char **argv);

int sp_run_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"ksmd", no_argument, NULL, 'k'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		SP_ROOT_OPTIONS,
		{0},
	};
	struct sp_roots r = {"/sys", "/proc"};
	int ksmd = 0, verbose = 0, c, rc;

	while ((c = getopt_long(argc, argv, "+kvh", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			ksmd = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			rc = sp_opt_common(c, optarg, &r, usage);
			if (rc != SP_OPT_GO_ON)
				return rc;
		}
	}
	if (optind == argc) {
		fprintf(stderr, "samepage run: no command given (samepage run -- CMD ARGS...)\n");
		return SP_EXIT_USAGE;
	}
	if (ksmd && (rc = ksmd_on(&r)) != SP_EXIT_OK)
		return rc;
	if (!ksmd && verbose) {
		struct sp_ksm k;

		if (!sp_ksm_read(r.sysfs, &k) && sp_ksm_get(&k, "run", 1) != 1)
			fprintf(stderr,
				"samepage run: note: ksmd is not running (run=%lld): nothing merges until "
				"`samepage set run=1` (or use --ksmd)\n",
				sp_ksm_get(&k, "run", 0));
	}
	return launch(&r, argv + optind, verbose);
}

SP_COMMAND(run, "start a command with KSM on for all its memory (prctl)", sp_run_main);
