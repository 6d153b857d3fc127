/* SPDX-License-Identifier: MIT */
/*
 * cpulist.h - sets of CPUs in the kernel's list format ("0-3,8,10-11"), as
 * in /sys/devices/system/cpu/isolated and Cpus_allowed_list. A set holds
 * CPUs 0..SP_MAXCPU-1; larger numbers are rejected, never truncated.
 */
#ifndef SP_KERNEL_CPULIST_H
#define SP_KERNEL_CPULIST_H

#include <stddef.h>
#include <stdint.h>

#define SP_MAXCPU 1024

struct sp_cpus {
	uint64_t bits[SP_MAXCPU / 64];
};

/* Parses a list ("" and "\n" are the empty set). 0 or -EINVAL. */
int sp_cpus_parse(const char *s, struct sp_cpus *out);
/* Formats as a list into buf; returns buf ("" for the empty set). */
char *sp_cpus_format(const struct sp_cpus *c, char *buf, size_t len);
int sp_cpus_count(const struct sp_cpus *c);
int sp_cpus_has(const struct sp_cpus *c, int cpu);
void sp_cpus_set(struct sp_cpus *c, int cpu);
/* a & b into out (out may alias either) */
void sp_cpus_and(const struct sp_cpus *a, const struct sp_cpus *b, struct sp_cpus *out);
/* a & ~b into out */
void sp_cpus_andnot(const struct sp_cpus *a, const struct sp_cpus *b, struct sp_cpus *out);

#endif /* SP_KERNEL_CPULIST_H */
