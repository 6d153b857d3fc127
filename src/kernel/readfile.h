/* SPDX-License-Identifier: MIT */
/*
 * readfile.h - the one way src/kernel (and the CLI) opens a kernel file:
 * sysfs attributes, /proc files, cgroup.procs.
 *
 * Every such file is a regular file. The reader opens with O_NONBLOCK and
 * checks with fstat after opening, so a FIFO, socket, device or directory
 * in its place (a broken or hostile fixture tree, a bind mount) is refused
 * at once with -EINVAL, instead of blocking the caller forever or being read
 * as an empty value. O_NONBLOCK changes nothing for regular files.
 */
#ifndef SP_KERNEL_READFILE_H
#define SP_KERNEL_READFILE_H

#include <stddef.h>
#include <stdio.h>

/* Reads up to len - 1 bytes of path into buf and terminates it with a NUL.
 * Returns the number of bytes read, or -errno (-ENOENT, -EACCES, ...,
 * -EINVAL when path is not a regular file). */
long sp_read_small(const char *path, char *buf, size_t len);

/* Opens path for reading line by line ("re"), with the same checks.
 * Returns NULL with errno set (EINVAL when not a regular file). */
FILE *sp_fopen_small(const char *path);

#endif /* SP_KERNEL_READFILE_H */
