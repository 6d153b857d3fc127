/* SPDX-License-Identifier: MIT */
/*
 * daemontest.h - running samepaged in a test: a private socket and
 * configuration in a fresh directory, client processes that report
 * through pipes, and the daemon's STATUS read as numbers.
 *
 * Every wait has a deadline (DT_PATIENCE_MS) and ends as soon as the
 * counters say so; nothing sleeps and hopes.
 */
#ifndef SP_DAEMONTEST_H
#define SP_DAEMONTEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DT_PATIENCE_MS 120000

struct dt_daemon {
	char dir[64]; /* the test's directory (socket, configuration) */
	char sock[100];
	char conf[128];
	char log[128];
	pid_t pid;
};

/* Makes the directory, writes the configuration (NULL: none, per-user
 * domains) and starts samepaged; returns when its socket accepts. Skips
 * the test (exit 77) when samepaged cannot run here. */
void dt_start(struct dt_daemon *d, const char *config);
/* The same daemon again (after a kill): same socket, same configuration. */
void dt_restart(struct dt_daemon *d);
/* SIGTERM and wait; 1 if it exited 0. */
int dt_stop(struct dt_daemon *d);
void dt_kill9(struct dt_daemon *d);
/* Removes the directory. */
void dt_cleanup(struct dt_daemon *d);

/* The daemon's STATUS text (a static buffer), or NULL. */
const char *dt_status(const struct dt_daemon *d);
/* A value of a block of STATUS: block "domain NAME" or "client PID", key
 * "pages_sharing"; -1 if absent. */
long long dt_value(const char *status, const char *block, const char *key);
/* Waits until dt_value(block, key) >= want (want < 0: == -want - 1, i.e.
 * pass DT_EQ(v)); returns the last value seen. */
#define DT_EQ(v) (-(long long)(v)-1)
long long dt_wait(const struct dt_daemon *d, const char *block, const char *key, long long want);

/* Sends a knob write (as the command does) to every domain. 0 or -errno. */
int dt_set(const struct dt_daemon *d, const char *domain, const char *knob, const char *value);

/* A child process running fn(arg, fd) with a pipe back to the parent:
 * the child writes one byte per step it completes. */
struct dt_child {
	pid_t pid;
	int rd; /* parent's end */
	int wr; /* child's end */
};
void dt_spawn(struct dt_child *c, int (*fn)(void *arg, int wr, int rd), void *arg);
/* Waits for one byte from the child (deadline); returns it, -1 EOF. */
int dt_step(struct dt_child *c);
/* Sends one byte to the child (the parent's "go"). */
void dt_go(struct dt_child *c, char b);
/* Waits for the child; its exit status (128+sig when killed). */
int dt_reap(struct dt_child *c);

/* The samepaged binary the tests run (for running it by hand: bad
 * configurations, options). */
const char *dt_daemon_path(void);

#endif
