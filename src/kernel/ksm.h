/* SPDX-License-Identifier: MIT */
/*
 * ksm.h - the kernel's KSM in /sys/kernel/mm/ksm: a snapshot of every knob
 * and counter, and validated writes.
 *
 * What the files are, their ranges and how the kernel parses a write come
 * from the one table in core/knobs.h (the entries flagged SP_KF_KERNEL): a
 * value sp_knob_check accepts is one the kernel accepts, apart from state
 * the kernel checks at write time (the table's refuse: EBUSY while KSM
 * pages exist, EINVAL for pages_to_scan while the advisor owns it). A knob
 * missing from a kernel is simply absent from the snapshot; files the table
 * does not know are kept as "extras", so a newer kernel's counters are
 * still shown. Every function takes the sysfs root ("/sys" normally), so
 * tests can point it at a fixture tree.
 *
 * Values read are parsed strictly: a file whose text is not what the kernel
 * writes there (not a number, negative, out of the knob's range, junk after
 * the digits, no mode, not a regular file) is not present; invalid[]
 * names it and why, so callers can flag it instead of showing a 0 or a -1
 * that looks real.
 */
#ifndef SP_KERNEL_KSM_H
#define SP_KERNEL_KSM_H

#include <stddef.h>

#include "core/knobs.h"

/* index into sp_knob_table of a file of /sys/kernel/mm/ksm, or -1 */
int sp_knob_index(const char *name);

#define SP_KSM_NEXTRA 16

struct sp_ksm {
	int present[SP_KNOB_COUNT];
	const char *invalid[SP_KNOB_COUNT]; /* why the file's text was refused, or NULL */
	int ninvalid;
	long long val[SP_KNOB_COUNT]; /* advisor_mode: 0 none, 1 scan-time */
	char text[SP_KNOB_COUNT][48]; /* as read, newline removed (also when invalid: any bytes) */
	int nextra;
	char extra_name[SP_KSM_NEXTRA][64];
	char extra_text[SP_KSM_NEXTRA][48];
	double t; /* CLOCK_MONOTONIC seconds when read */
};

/* "<sysfs>/kernel/mm/ksm" into buf */
char *sp_ksm_dir(const char *sysfs, char *buf, size_t len);

/* Reads every file of the KSM directory. 0, -ENOENT when the kernel has
 * no KSM, or -errno of the directory. Unreadable files are absent. */
int sp_ksm_read(const char *sysfs, struct sp_ksm *k);

/* The value of a knob or counter by name, or def when absent. */
long long sp_ksm_get(const struct sp_ksm *k, const char *name, long long def);

/* pages ksmd walks per full scan by the counters: pages_shared +
 * pages_sharing + pages_unshared + pages_volatile, saturated at LLONG_MAX */
long long sp_ksm_pages_tracked(const struct sp_ksm *k);

/* a + b, saturated at LLONG_MIN / LLONG_MAX */
long long sp_add_sat(long long a, long long b);

/* Checks value for the knob against the kernel's syntax and range and
 * writes the form the kernel is given into canon ("+100\n" gives "100",
 * "on" gives "1"). 0; -ENOENT unknown name; -EROFS a counter; -EINVAL or
 * -ERANGE, as the kernel would answer, for a bad value (why: a sentence). */
int sp_knob_check(const char *name, const char *value, char *canon, size_t len, const char **why);

/* Writes a checked value. 0 or -errno from open/write (EINVAL, EBUSY,
 * EACCES, EROFS, ENOENT as the kernel returns them). */
int sp_ksm_write(const char *sysfs, const char *name, const char *canon);

/* The knob's current value as it would be written back ("[none] scan-time"
 * gives "none"). */
const char *sp_ksm_writable_text(const struct sp_ksm *k, int idx, char *buf, size_t len);

#endif /* SP_KERNEL_KSM_H */
