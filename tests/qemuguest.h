/* SPDX-License-Identifier: MIT */
/*
 * qemuguest.h - QEMU guests in tests: the newest kernel image in /boot, an
 * initramfs made here of Debian's static busybox and a given /init, and the
 * guest's serial console in a file the test reads.
 *
 * The guests run under TCG, QEMU's emulator: on this machine kind /dev/kvm
 * is often absent or nested (a nested KVM guest once spent a minute in the
 * host kernel before reaching its own), and TCG boots the same kernel in a
 * few seconds. Guest memory is laid out the same either way: QEMU allocates
 * it and, with mem-merge=on, advises it MADV_MERGEABLE.
 */
#ifndef SP_QEMUGUEST_H
#define SP_QEMUGUEST_H

#include <stddef.h>
#include <sys/types.h>

#define QG_QEMU	   "/usr/bin/qemu-system-x86_64"
#define QG_BUSYBOX "/bin/busybox"

/* NULL when guests can run here, else what is missing (with the package
 * that brings it), for the test's skip message. */
const char *qg_missing(void);

/* The newest kernel image in /boot (by name), or NULL. */
const char *qg_kernel(void);

/* dir/initrd.cpio: init as /init (a busybox sh script), /bin/busybox and
 * empty /proc and /tmp. Fails the test on error. */
void qg_make_initramfs(const char *dir, const char *init);

/* Starts guest g of mib MiB (one vCPU, no devices but the serial console,
 * written to dir/guestG.log, emptied first), killed when the test dies. wrap, if not NULL,
 * is a command (NULL-terminated argv) QEMU runs under, such as
 * {"samepage", "run", "--", NULL}; its output goes to dir/guestG.run.
 * Returns the pid of the child (wrap's, or QEMU's). */
pid_t qg_start(const char *dir, int g, int mib, const char *const *wrap);

/* Guest g's console so far (NUL-terminated, the last len - 1 bytes at
 * most) in buf; returns buf. */
char *qg_console(const char *dir, int g, char *buf, size_t len);

/* 1 once guest g printed marker on its console (its first MiB). */
int qg_printed(const char *dir, int g, const char *marker);

/* Removes dir and what is in it. */
void qg_cleanup(const char *dir);

#endif
