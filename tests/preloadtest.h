/* SPDX-License-Identifier: MIT */
/*
 * preloadtest.h - running tests/fixtures/preload_prog.c (an unmodified
 * program) under libsamepage-preload.so: commands on its stdin, one answer
 * line each on its stdout, read with a deadline; its stderr kept.
 */
#ifndef SP_PRELOADTEST_H
#define SP_PRELOADTEST_H

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

#ifndef SP_PRELOAD_SO
#error "SP_PRELOAD_SO, SP_PRELOAD_PROG: from tests/CMakeLists.txt"
#endif

#define PT_PATIENCE_MS 120000

/* LD_PRELOAD for the program. A sanitizer build's library is instrumented
 * (AddressSanitizer + UndefinedBehaviorSanitizer), and so is preload_prog
 * (built with the same flags): ASan's runtime must be the first object
 * loaded after the program, before the library (else it refuses to start:
 * "ASan runtime does not come first"), so it goes first in LD_PRELOAD, the
 * one this test runs with (found where its own __asan_init is). Its
 * interceptors (mmap, mprotect, prctl, ioctl, ...) then come before the
 * library's exports and pass the calls on to them. */
static inline const char *pt_preload(void)
{
	static char v[4200];
#ifdef SP_SANITIZED
	Dl_info info;
	void *rt = dlsym(RTLD_DEFAULT, "__asan_init");

	if (!v[0] && rt && dladdr(rt, &info) && info.dli_fname)
		snprintf(v, sizeof(v), "%s %s", info.dli_fname, SP_PRELOAD_SO);
#endif
	if (!v[0])
		snprintf(v, sizeof(v), "%s", SP_PRELOAD_SO);
	return v;
}

struct pt_prog {
	pid_t pid;
	int in, out, err;
	char buf[8192];
	size_t have;
	char last[512]; /* the last command */
	char reply[1024];
	char errtext[16384];
	size_t errlen;
};

/* env: "NAME=VALUE" strings (NULL-terminated), added to the environment;
 * "NAME=" removes NAME. LD_PRELOAD is the library. */
static inline void pt_start(struct pt_prog *p, const char *const *env)
{
	int in[2], out[2], err[2];

	memset(p, 0, sizeof(*p));
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
		perror("pipe");
		exit(1);
	}
	p->pid = fork();
	if (p->pid < 0) {
		perror("fork");
		exit(1);
	}
	if (!p->pid) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setenv("LD_PRELOAD", pt_preload(), 1);
		for (size_t i = 0; env && env[i]; i++) {
			char name[128];
			const char *eq = strchr(env[i], '=');

			snprintf(name, sizeof(name), "%.*s", (int)(eq - env[i]), env[i]);
			if (eq[1])
				setenv(name, eq + 1, 1);
			else
				unsetenv(name);
		}
		execl(SP_PRELOAD_PROG, "preload_prog", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	p->in = in[1];
	p->out = out[0];
	p->err = err[0];
	fcntl(p->err, F_SETFL, O_NONBLOCK);
}

static inline void pt_drain_err(struct pt_prog *p)
{
	ssize_t n;

	while (p->errlen < sizeof(p->errtext) - 1 &&
	       (n = read(p->err, p->errtext + p->errlen, sizeof(p->errtext) - 1 - p->errlen)) > 0)
		p->errlen += (size_t)n;
	p->errtext[p->errlen] = 0;
}

/* Sends one command; returns its answer line (without the newline), or
 * "EOF"/"TIMEOUT". */
__attribute__((format(printf, 2, 3))) static inline const char *pt_cmd(struct pt_prog *p, const char *fmt, ...)
{
	uint64_t deadline = t_now_ms() + PT_PATIENCE_MS;
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	snprintf(p->last, sizeof(p->last), "%s", line);
	line[n++] = '\n';
	if (write(p->in, line, (size_t)n) != n)
		return "EOF";
	for (;;) {
		char *nl = memchr(p->buf, '\n', p->have);
		struct pollfd pf = {.fd = p->out, .events = POLLIN};
		ssize_t got;

		if (nl) {
			size_t len = (size_t)(nl - p->buf);

			snprintf(p->reply, sizeof(p->reply), "%.*s", (int)len, p->buf);
			memmove(p->buf, nl + 1, p->have - len - 1);
			p->have -= len + 1;
			pt_drain_err(p);
			return p->reply;
		}
		if (t_now_ms() > deadline)
			return "TIMEOUT";
		if (poll(&pf, 1, 100) <= 0)
			continue;
		got = read(p->out, p->buf + p->have, sizeof(p->buf) - p->have);
		if (got <= 0)
			return "EOF";
		p->have += (size_t)got;
	}
}

/* "quit", then its exit status (128+N for signal N). */
static inline int pt_end(struct pt_prog *p)
{
	int st = 0;

	pt_cmd(p, "quit");
	close(p->in);
	waitpid(p->pid, &st, 0);
	fcntl(p->err, F_SETFL, 0);
	pt_drain_err(p);
	close(p->out);
	close(p->err);
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

static inline int pt_lines(const char *text)
{
	int n = 0;

	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/* The program's stderr so far (a sanitizer's report, ...), when a test fails */
static inline void pt_show_err(struct pt_prog *p)
{
	if (!p)
		return;
	pt_drain_err(p);
	if (p->errlen)
		printf("  stderr of the program:\n%s", p->errtext);
}

#endif
