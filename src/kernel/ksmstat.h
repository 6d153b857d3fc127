/* SPDX-License-Identifier: MIT */
/*
 * ksmstat.h - the kernel's KSM users: every user process whose
 * /proc/PID/ksm_stat shows KSM at work (merging or zero pages, rmap items,
 * merge_any or a mergeable VMA), sorted by ksm_process_profit, largest
 * first (then by pid). Processes that vanish or refuse access while being
 * read are left out; the count of refusals is kept so callers can say the
 * list is partial.
 */
#ifndef SP_KERNEL_KSMSTAT_H
#define SP_KERNEL_KSMSTAT_H

#include <stddef.h>

#include "kernel/procs.h"

struct sp_ksm_users {
	struct sp_proc *p;
	size_t n;
	size_t denied;						 /* ksm_stat unreadable (not root) */
	long long rmap_items, merging_pages, zero_pages, profit; /* sums */
};

/* Fills u from <proc>. 0 or -errno (-ENOMEM, or the /proc root's). */
int sp_ksm_users_read(const char *proc, struct sp_ksm_users *u);
void sp_ksm_users_free(struct sp_ksm_users *u);

#endif /* SP_KERNEL_KSMSTAT_H */
