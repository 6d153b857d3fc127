/* SPDX-License-Identifier: MIT */
/*
 * vmread.h - page content of a process (ourselves or a client of the
 * daemon) with process_vm_readv: memory made unreadable gives a short count,
 * never a SIGSEGV.
 */
#ifndef SP_MEM_VMREAD_H
#define SP_MEM_VMREAD_H

#include <stddef.h>
#include <stdint.h>

/* Copies n pages at addr of process pid into buf. Returns pages copied (a
 * short count stops at the first unreadable page), or -errno. */
long sp_vm_read(int pid, uintptr_t addr, size_t n, void *buf);
/* Two runs of n pages in one call; *got2 gets the second run's count. */
long sp_vm_read2(int pid, uintptr_t a1, void *buf1, uintptr_t a2, void *buf2, size_t n, long *got2);

#endif /* SP_MEM_VMREAD_H */
