/* SPDX-License-Identifier: MIT */
/*
 * vmas.h - a process's VMAs from /proc/PID/smaps, and which of them the
 * kernel's KSM scans.
 *
 * ksmd walks a VMA when it carries VM_MERGEABLE ("mg" in VmFlags), set by
 * madvise(MADV_MERGEABLE) or, for every compatible VMA, by
 * prctl(PR_SET_MEMORY_MERGE). Compatible (mm/ksm.c) means none of VM_SHARED
 * "sh", VM_MAYSHARE "ms", VM_PFNMAP "pf", VM_IO "io", VM_DONTEXPAND "de",
 * VM_HUGETLB "ht", VM_MIXEDMAP "mm", VM_DROPPABLE, and not DAX. Inside such a
 * VMA only anonymous pages are merged (COWed pages of a private file
 * mapping count; its page-cache pages do not): the page-level filter is
 * sp_pagemap_present in mem/pagemap.c.
 *
 * DAX and VM_DROPPABLE have no VmFlags letters of their own; DAX mappings
 * are shared in practice (excluded by "sh"/"ms"), and a droppable mapping
 * would be counted by --all-anon. Each function takes the /proc root, so
 * tests can feed a copy.
 */
#ifndef SP_KERNEL_VMAS_H
#define SP_KERNEL_VMAS_H

#include <stdint.h>
#include <stdio.h>

enum {
	SP_VMA_MERGEABLE = 1 << 0,  /* VmFlags has "mg"                    */
	SP_VMA_COMPATIBLE = 1 << 1, /* PR_SET_MEMORY_MERGE would mark it    */
};

struct sp_vma {
	uintptr_t start, end;
	uint32_t flags;	  /* SP_VMA_*                                   */
	uint64_t anon_kb; /* smaps "Anonymous:"                         */
	uint64_t ksm_kb;  /* smaps "KSM:": pages already merged by KSM   */
	char name[80];	  /* path, [heap], [stack], [anon:...], or ""   */
};

struct sp_vma_list {
	struct sp_vma *v;
	size_t n, cap;
};

/* Parses smaps text. 0 or -errno (-ENOMEM, -EINVAL on a malformed header). */
int sp_vmas_parse(FILE *f, struct sp_vma_list *out);
/* Reads <proc>/<pid>/smaps. 0 or -errno (-ESRCH when the process is gone). */
int sp_vmas_read(const char *proc, int pid, struct sp_vma_list *out);
void sp_vmas_free(struct sp_vma_list *l);

#endif /* SP_KERNEL_VMAS_H */
