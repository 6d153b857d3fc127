/* SPDX-License-Identifier: MIT */
/* progress.c - the progress line (see progress.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/progress.h"
#include "util/clock.h"

void sp_progress_start(struct sp_progress *p, const char *label, uint64_t total, int enabled)
{
	memset(p, 0, sizeof(*p));
	p->label = label;
	p->total = total;
	p->enabled = enabled < 0 ? isatty(STDERR_FILENO) : enabled;
}

void sp_progress_update(struct sp_progress *p, uint64_t done, const char *note)
{
	static const char spin[] = "|/-\\";
	uint64_t t = sp_mono_ns();
	char bar[41];

	if (!p->enabled || (p->drawn && t - p->last_ns < 100000000ull))
		return;
	p->last_ns = t;
	p->drawn = 1;
	if (p->total) {
		double f = done >= p->total ? 1.0 : (double)done / (double)p->total;
		int fill = (int)(f * 40);

		memset(bar, '#', (size_t)fill);
		memset(bar + fill, '.', (size_t)(40 - fill));
		bar[40] = 0;
		fprintf(stderr, "\r%s [%s] %3.0f%% %s\033[K", p->label, bar, f * 100, note ? note : "");
	} else {
		fprintf(stderr, "\r%s %c %llu %s\033[K", p->label, spin[(t / 100000000ull) % 4],
			(unsigned long long)done, note ? note : "");
	}
	fflush(stderr);
}

void sp_progress_done(struct sp_progress *p)
{
	if (p->enabled && p->drawn)
		fprintf(stderr, "\r\033[K");
	p->drawn = 0;
}
