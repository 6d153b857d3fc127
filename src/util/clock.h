/* SPDX-License-Identifier: MIT */
/*
 * clock.h - nanosecond readings of the clocks the project measures with:
 * monotonic time (deadlines, rates) and CPU time (the scanner's cost).
 * Header only: every layer but src/core uses it.
 */
#ifndef SP_UTIL_CLOCK_H
#define SP_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t sp_clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* monotonic nanoseconds */
static inline uint64_t sp_mono_ns(void)
{
	return sp_clock_ns(CLOCK_MONOTONIC);
}

/* CPU nanoseconds of the calling thread */
static inline uint64_t sp_thread_cpu_ns(void)
{
	return sp_clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

/* monotonic seconds, for reports */
static inline double sp_mono_s(void)
{
	return (double)sp_mono_ns() / 1e9;
}

#endif /* SP_UTIL_CLOCK_H */
