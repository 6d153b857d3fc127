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
 *
 * `samepage run --engine`: the same on the userspace engine. The child
 * execs CMD with libsamepage-preload.so in LD_PRELOAD and
 * SAMEPAGE_MERGE_ANY=1 (the library's PR_SET_MEMORY_MERGE, inherited
 * through exec and fork as the kernel's is), SAMEPAGE_DAEMON (samepaged's
 * socket) or, with --local, the in-process engine. The check: the library
 * writes one line on the inherited descriptor SAMEPAGE_RUN_FD from its
 * constructor ("ok daemon DOMAIN BYTES", "ok local - BYTES", "fail ERRNO");
 * none (end of file, or nothing within 10 s) means CMD did not load it.
 * The library is found at $SAMEPAGE_PRELOAD, else next to this binary (a
 * build tree), else in the install libdir (SP_PRELOAD_INSTALLED).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
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
#include "proto/wire.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif

#ifndef SP_PRELOAD_INSTALLED
#define SP_PRELOAD_INSTALLED "/usr/local/lib/libsamepage-preload.so"
#endif
#define PRELOAD_NAME	  "libsamepage-preload.so"
#define REPORT_TIMEOUT_MS 10000

enum { STEP_PRCTL = 1, STEP_EXEC = 2 };

/* --engine: what the child gets */
struct engine {
	int on, local, require;
	const char *socket, *domain;
	char preload[PATH_MAX];
	int report[2]; /* the library's line, SAMEPAGE_RUN_FD */
};

struct failure {
	int step, err;
};

static pid_t child;

static void usage(FILE *f)
{
	fprintf(f, "usage: samepage run [OPTIONS] [--] CMD [ARGS...]\n"
		   "       samepage run --engine [--socket PATH] [--domain NAME] [--local] [--require]\n"
		   "                    [--] CMD [ARGS...]\n"
		   "\n"
		   "Runs CMD with the kernel's KSM enabled for all of its anonymous memory\n"
		   "(prctl PR_SET_MEMORY_MERGE, inherited by its children), then checks\n"
		   "/proc/PID/ksm_stat says ksm_merge_any: yes. Like systemd's MemoryKSM=yes.\n"
		   "With --engine, the same on samepage's userspace engine: CMD runs with\n"
		   "libsamepage-preload.so in LD_PRELOAD, its memory merged by samepaged (or,\n"
		   "with --local, by an engine inside each process); the kernel's KSM is not\n"
		   "used. CMD needs no change (dynamically linked, not set-user-ID).\n"
		   "\n"
		   "  -k, --ksmd                  also switch ksmd on (run=1) if it is off; left on\n"
		   "  -e, --engine                the userspace engine instead of the kernel's KSM\n"
		   "  -s, --socket PATH           samepaged's socket (default: $SAMEPAGE_DAEMON, else\n"
		   "                              " SP_DEFAULT_SOCKET ")\n"
		   "  -d, --domain NAME           ask samepaged for the merge domain labelled NAME\n"
		   "  -l, --local                 the in-process engine: each process merges its own\n"
		   "                              pages only, no daemon (SAMEPAGE_RUN=1 unless set)\n"
		   "  -r, --require               fail (status 4, or 3) instead of running CMD unmerged\n"
		   "                              when the engine cannot serve it\n"
		   "  -v, --verbose               report the check on stderr\n" SP_ROOT_HELP "  -h, --help\n"
		   "\n"
		   "The kernel's KSM needs Linux 6.4 or later (6.7 keeps the setting across exec).\n"
		   "The engine's library is $SAMEPAGE_PRELOAD, else " PRELOAD_NAME " next to this\n"
		   "program, else " SP_PRELOAD_INSTALLED ".\n"
		   "Exit status: CMD's own, or 128+N if killed by signal N; 126 CMD not executable;\n"
		   "127 CMD not found; 2 bad usage; 3 permission denied; 4 no KSM or no\n"
		   "PR_SET_MEMORY_MERGE in this kernel, or (--engine) no engine library, or\n"
		   "(--require) the engine cannot serve CMD.\n");
}

static void forward(int sig)
{
	if (child > 0)
		kill(child, sig);
}

/* LD_PRELOAD and the engine's variables, in the child before exec. */
static void engine_env(const struct engine *en)
{
	const char *old = getenv("LD_PRELOAD");
	char fd[16], *v;
	size_t len;

	len = strlen(en->preload) + (old && *old ? strlen(old) + 1 : 0) + 1;
	v = malloc(len);
	if (v) {
		snprintf(v, len, "%s%s%s", en->preload, old && *old ? " " : "", old && *old ? old : "");
		setenv("LD_PRELOAD", v, 1);
	}
	setenv("SAMEPAGE_MERGE_ANY", "1", 1);
	if (en->local) {
		unsetenv("SAMEPAGE_DAEMON");
		setenv("SAMEPAGE_RUN", "1", 0);
	} else {
		setenv("SAMEPAGE_DAEMON", en->socket, 1);
	}
	if (en->domain)
		setenv("SAMEPAGE_DOMAIN", en->domain, 1);
	if (en->require)
		setenv("SAMEPAGE_REQUIRE", "1", 1);
	else
		unsetenv("SAMEPAGE_REQUIRE");
	snprintf(fd, sizeof(fd), "%d", en->report[1]);
	setenv("SAMEPAGE_RUN_FD", fd, 1);
}

static void start_child(char **cmd, int wfd, const struct engine *en)
{
	struct failure f = {STEP_PRCTL, 0};

	if (en->on) {
		/* the report end stays open across exec: the library writes
		 * its line there */
		close(en->report[0]);
		if (fcntl(en->report[1], F_SETFD, 0))
			_exit(127);
		engine_env(en);
		execvp(cmd[0], cmd);
		f.step = STEP_EXEC;
		f.err = errno;
	} else if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0)) {
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

/* The library's line on the report pipe: 0 (and the line) or -1 (none:
 * end of file or timeout). */
static int read_report(int fd, char *line, size_t len)
{
	size_t got = 0;
	uint64_t left = REPORT_TIMEOUT_MS;

	while (got < len - 1) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;
		int rc = poll(&p, 1, (int)left);

		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return -1;
		n = read(fd, line + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(line, '\n', got))
			break;
	}
	line[got] = 0;
	return got && strchr(line, '\n') ? 0 : -1;
}

/* The engine's check. Returns SP_EXIT_OK, or the status for --require. */
static int verify_engine(const struct engine *en, pid_t pid, const char *cmd, int verbose)
{
	char line[256], kind[16], where[64];
	unsigned long long bytes = 0;
	int err = 0;

	if (read_report(en->report[0], line, sizeof(line))) {
		/* end of file (exec'd, or exited, without the library's
		 * constructor having run) or nothing for REPORT_TIMEOUT_MS */
		fprintf(stderr,
			"samepage run: warning: %s did not load %s (statically linked, set-user-ID, or "
			"LD_PRELOAD removed?): %s is NOT merged\n",
			cmd, en->preload, cmd);
		return en->require ? SP_EXIT_NOKSM : SP_EXIT_OK;
	}
	if (sscanf(line, "fail %d", &err) == 1) {
		/* the library said why on the program's stderr */
		if (!en->require)
			return SP_EXIT_OK;
		return err == EACCES || err == EPERM ? SP_EXIT_PERM : SP_EXIT_NOKSM;
	}
	if (!verbose || sscanf(line, "ok %15s %63s %llu", kind, where, &bytes) != 3)
		return SP_EXIT_OK;
	if (!strcmp(kind, "local"))
		fprintf(stderr, "samepage run: pid %d (%s): merged by its in-process engine, %llu KiB registered\n",
			pid, cmd, bytes / 1024);
	else
		fprintf(stderr,
			"samepage run: pid %d (%s): merged by samepaged at %s, domain %s, %llu KiB registered\n", pid,
			cmd, en->socket, where, bytes / 1024);
	return SP_EXIT_OK;
}

/* $SAMEPAGE_PRELOAD, next to this program, or the installed one. */
static int find_preload(struct engine *en)
{
	const char *env = getenv("SAMEPAGE_PRELOAD");
	char exe[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		snprintf(en->preload, sizeof(en->preload), "%s", env);
		return access(en->preload, R_OK) ? -errno : 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;

		exe[n] = 0;
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			if (snprintf(en->preload, sizeof(en->preload), "%s/%s", exe, PRELOAD_NAME) <
				    (int)sizeof(en->preload) &&
			    !access(en->preload, R_OK))
				return 0;
		}
	}
	snprintf(en->preload, sizeof(en->preload), "%s", SP_PRELOAD_INSTALLED);
	return access(en->preload, R_OK) ? -errno : 0;
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

static int launch(const struct sp_roots *r, char **cmd, int verbose, struct engine *en)
{
	struct sigaction sa = {.sa_handler = forward};
	struct failure f;
	int p[2], rc;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) || (en->on && pipe2(en->report, O_CLOEXEC))) {
		perror("samepage run: pipe");
		return SP_EXIT_FAIL;
	}
	child = fork();
	if (child < 0) {
		perror("samepage run: fork");
		return SP_EXIT_FAIL;
	}
	if (!child)
		start_child(cmd, p[1], en);
	close(p[1]);
	if (en->on)
		close(en->report[1]);
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
	if (!en->on) {
		verify(r, child, cmd[0], verbose);
		return wait_child();
	}
	rc = verify_engine(en, child, cmd[0], verbose);
	close(en->report[0]);
	n = wait_child();
	/* --require: the library made CMD exit (status 4) when the engine
	 * could not serve it; the reason is more precise here */
	return rc != SP_EXIT_OK ? rc : (int)n;
}

int sp_run_main(int argc, char **argv);

int sp_run_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"ksmd", no_argument, NULL, 'k'},
		{"engine", no_argument, NULL, 'e'},
		{"socket", required_argument, NULL, 's'},
		{"domain", required_argument, NULL, 'd'},
		{"local", no_argument, NULL, 'l'},
		{"require", no_argument, NULL, 'r'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		SP_ROOT_OPTIONS,
		{0},
	};
	struct sp_roots r = {"/sys", "/proc"};
	struct engine en = {.report = {-1, -1}};
	int ksmd = 0, verbose = 0, engine_opts = 0, c, rc;

	while ((c = getopt_long(argc, argv, "+kes:d:lrvh", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			ksmd = 1;
			break;
		case 'e':
			en.on = 1;
			break;
		case 's':
			en.socket = optarg;
			engine_opts |= 1;
			break;
		case 'd':
			en.domain = optarg;
			engine_opts |= 1;
			break;
		case 'l':
			en.local = 1;
			engine_opts |= 2;
			break;
		case 'r':
			en.require = 1;
			engine_opts |= 4;
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
	if (engine_opts && !en.on) {
		fprintf(stderr, "samepage run: --socket, --domain, --local and --require go with --engine\n");
		return SP_EXIT_USAGE;
	}
	if (en.on && ksmd) {
		fprintf(stderr, "samepage run: --ksmd is for the kernel's KSM, not --engine\n");
		return SP_EXIT_USAGE;
	}
	if (en.local && (engine_opts & 1)) {
		fprintf(stderr, "samepage run: --local uses no daemon: no --socket or --domain\n");
		return SP_EXIT_USAGE;
	}
	if (en.on) {
		int err = find_preload(&en);

		if (err) {
			fprintf(stderr, "samepage run: %s: %s (set SAMEPAGE_PRELOAD to the library)\n", en.preload,
				strerror(-err));
			return SP_EXIT_NOKSM;
		}
		if (!en.socket)
			en.socket = getenv("SAMEPAGE_DAEMON");
		if (!en.socket || !*en.socket)
			en.socket = SP_DEFAULT_SOCKET;
		return launch(&r, argv + optind, verbose, &en);
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
	return launch(&r, argv + optind, verbose, &en);
}

SP_COMMAND(run, "start a command with KSM on for all its memory (prctl, or --engine)", sp_run_main);
