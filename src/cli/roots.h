/* SPDX-License-Identifier: MIT */
/*
 * roots.h - where the kernel's files are read: "/sys" and "/proc", or a
 * recorded copy of a host (--sysfs-root, --proc-root).
 */
#ifndef SP_CLI_ROOTS_H
#define SP_CLI_ROOTS_H

struct sp_roots {
	const char *sysfs; /* "/sys"  */
	const char *proc;  /* "/proc" */
};

#endif /* SP_CLI_ROOTS_H */
