/* SPDX-License-Identifier: MIT */
/* daemontest.c - see daemontest.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemontest.h"
#include "proto/wire.h"
#include "testlib.h"

#ifndef SAMEPAGED
#error "SAMEPAGED: the daemon's path, from tests/CMakeLists.txt"
#endif

static void pause_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static int connect_sock(const char *path)
{
	int fd = sp_wire_connect(path);

	return fd < 0 ? -1 : fd;
}

static void launch(struct dt_daemon *d)
{
	uint64_t deadline = t_now_ms() + DT_PATIENCE_MS;
	int fd;

	d->pid = fork();
	if (d->pid < 0) {
		perror("fork");
		exit(1);
	}
	if (!d->pid) {
		int log = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		if (log >= 0)
			dup2(log, 2);
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a failed test */
		execl(SAMEPAGED, "samepaged", "--socket", d->sock, "--config", d->conf, "--verbose", (char *)NULL);
		_exit(127);
	}
	while ((fd = connect_sock(d->sock)) < 0) {
		int st;

		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			fprintf(stderr, "samepaged exited at start (status %d); its log:\n", st);
			if (system("true")) { /* (keeps -Wunused-result quiet) */
			}
			{
				char cmd[200];

				snprintf(cmd, sizeof(cmd), "cat %s >&2", d->log);
				if (system(cmd)) {
				}
			}
			exit(WIFEXITED(st) && WEXITSTATUS(st) == 127 ? 77 : 1);
		}
		if (t_now_ms() > deadline) {
			fprintf(stderr, "samepaged did not accept on %s\n", d->sock);
			exit(1);
		}
		pause_ms(5);
	}
	close(fd);
}

void dt_start(struct dt_daemon *d, const char *config)
{
	FILE *f;

	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "/tmp/samepaged-test.XXXXXX");
	if (!mkdtemp(d->dir)) {
		perror("mkdtemp");
		exit(1);
	}
	chmod(d->dir, 0755); /* clients of other users reach the socket */
	snprintf(d->sock, sizeof(d->sock), "%s/sock", d->dir);
	snprintf(d->conf, sizeof(d->conf), "%s/samepaged.conf", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/log", d->dir);
	f = fopen(d->conf, "w");
	if (!f) {
		perror(d->conf);
		exit(1);
	}
	fputs(config ? config : "", f);
	fclose(f);
	launch(d);
}

void dt_restart(struct dt_daemon *d)
{
	launch(d);
}

int dt_stop(struct dt_daemon *d)
{
	int st = 0;

	if (d->pid <= 0)
		return 1;
	kill(d->pid, SIGTERM);
	waitpid(d->pid, &st, 0);
	d->pid = 0;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

void dt_kill9(struct dt_daemon *d)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
	d->pid = 0;
}

void dt_cleanup(struct dt_daemon *d)
{
	char cmd[160];

	dt_stop(d);
	if (getenv("DT_KEEP"))
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", d->dir);
	if (system(cmd)) {
	}
}

const char *dt_status(const struct dt_daemon *d)
{
	static char text[1 << 22]; /* (kept: callers hold it until the next call) */
	char *all = NULL;
	int fd = connect_sock(d->sock), err;

	if (fd < 0)
		return NULL;
	err = sp_wire_status(fd, &all, 10000);
	close(fd);
	if (err)
		return NULL;
	snprintf(text, sizeof(text), "%s", all);
	free(all);
	return text;
}

long long dt_value(const char *status, const char *block, const char *key)
{
	const char *p = status, *end;
	size_t bl = strlen(block), kl = strlen(key);

	if (!status)
		return -1;
	/* the block: a line equal to block, up to the next empty line */
	for (;;) {
		const char *nl = strchr(p, '\n');

		if (!strncmp(p, block, bl) && (p[bl] == '\n' || !p[bl]))
			break;
		if (!nl)
			return -1;
		p = nl + 1;
	}
	end = strstr(p, "\n\n");
	if (!end)
		end = p + strlen(p);
	while (p < end) {
		const char *nl = strchr(p, '\n');

		if (!strncmp(p, key, kl) && p[kl] == ' ')
			return strtoll(p + kl + 1, NULL, 10);
		if (!nl)
			break;
		p = nl + 1;
	}
	return -1;
}

long long dt_wait(const struct dt_daemon *d, const char *block, const char *key, long long want)
{
	uint64_t deadline = t_now_ms() + DT_PATIENCE_MS;
	long long v;

	for (;;) {
		v = dt_value(dt_status(d), block, key);
		if (want >= 0 ? v >= want : v == -want - 1)
			return v;
		if (t_now_ms() > deadline) {
			fprintf(stderr, "timed out waiting for %s %s (want %s%lld, have %lld); status:\n%s\n", block,
				key, want >= 0 ? ">= " : "", want >= 0 ? want : -want - 1, v, dt_status(d));
			return v;
		}
		pause_ms(20);
	}
}

int dt_set(const struct dt_daemon *d, const char *domain, const char *knob, const char *value)
{
	struct sp_knob_msg m;
	int fd = connect_sock(d->sock), err;

	if (fd < 0)
		return -errno;
	memset(&m, 0, sizeof(m));
	snprintf(m.name, sizeof(m.name), "%s", knob);
	snprintf(m.value, sizeof(m.value), "%s", value);
	snprintf(m.domain, sizeof(m.domain), "%s", domain ? domain : "");
	err = sp_wire_call(fd, SP_M_SET, &m, sizeof(m), NULL, 0, NULL, 0, NULL, NULL, NULL, 10000, NULL);
	close(fd);
	return err;
}

void dt_spawn(struct dt_child *c, int (*fn)(void *arg, int wr, int rd), void *arg)
{
	int up[2], down[2];

	if (pipe2(up, O_CLOEXEC) || pipe2(down, O_CLOEXEC)) {
		perror("pipe");
		exit(1);
	}
	c->pid = fork();
	if (c->pid < 0) {
		perror("fork");
		exit(1);
	}
	if (!c->pid) {
		close(up[0]);
		close(down[1]);
		_exit(fn(arg, up[1], down[0]));
	}
	close(up[1]);
	close(down[0]);
	c->rd = up[0];
	c->wr = down[1];
}

int dt_step(struct dt_child *c)
{
	struct pollfd p = {.fd = c->rd, .events = POLLIN};
	char b;

	if (poll(&p, 1, DT_PATIENCE_MS) != 1 || read(c->rd, &b, 1) != 1)
		return -1;
	return (unsigned char)b;
}

void dt_go(struct dt_child *c, char b)
{
	if (write(c->wr, &b, 1) != 1) {
	}
}

int dt_reap(struct dt_child *c)
{
	int st = 0;

	if (c->pid <= 0)
		return -1;
	waitpid(c->pid, &st, 0);
	close(c->rd);
	close(c->wr);
	c->pid = 0;
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

const char *dt_daemon_path(void)
{
	return SAMEPAGED;
}
