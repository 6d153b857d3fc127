/* SPDX-License-Identifier: MIT */
/*
 * progress.h - a one-line progress bar on stderr for anything longer than a
 * few seconds. Silent when stderr is not a terminal (unless forced), redrawn
 * at most 10 times a second, erased by sp_progress_done().
 */
#ifndef SP_PROGRESS_H
#define SP_PROGRESS_H

#include <stdint.h>

struct sp_progress {
	const char *label;
	uint64_t total; /* 0: unknown, shows a count and a spinner */
	uint64_t last_ns;
	int enabled;
	int drawn;
};

/* enabled: -1 auto (stderr is a tty), 0 off, 1 on */
void sp_progress_start(struct sp_progress *p, const char *label, uint64_t total, int enabled);
/* done of total, with an optional short note ("3 processes") */
void sp_progress_update(struct sp_progress *p, uint64_t done, const char *note);
void sp_progress_done(struct sp_progress *p);

#endif
