/* SPDX-License-Identifier: MIT */
/*
 * procs.h - choosing processes: by pid, by command name, by cgroup, or all
 * of them; and what the kernel says about each one's KSM state
 * (/proc/PID/ksm_stat).
 *
 * Kernel threads have no memory of their own and are never selected. Each
 * function takes the /proc root (and the cgroup one its own path), so tests
 * can feed copies.
 */
#ifndef SP_KERNEL_PROCS_H
#define SP_KERNEL_PROCS_H

#include <stddef.h>

struct sp_proc {
	int pid;
	char comm[17];
	int merge_any;		 /* ksm_stat ksm_merge_any: prctl(PR_SET_MEMORY_MERGE) */
	long ksm_zero_pages;	 /* ksm_stat: already mapped to the zero page by KSM   */
	long ksm_merging_pages;	 /* ksm_stat: already merged into KSM pages            */
	long ksm_rmap_items;	 /* ksm_stat                                           */
	long ksm_process_profit; /* ksm_stat: bytes saved minus rmap item cost        */
	int mergeable;		 /* ksm_stat ksm_mergeable: some VMA is mergeable      */
};

struct sp_pid_list {
	int *pid;
	size_t n, cap;
};

/* 0 on success, -ENOMEM. Duplicates are ignored. */
int sp_pids_add(struct sp_pid_list *l, int pid);
void sp_pids_free(struct sp_pid_list *l);

/* Fills p from <proc>/PID/{comm,ksm_stat} (ksm_stat fields stay 0 when the
 * file is absent). 0, -ESRCH (no such process), or -errno. */
int sp_proc_info(const char *proc, int pid, struct sp_proc *p);

/* 1 if the pid is a kernel thread, 0 if not, -errno. */
int sp_proc_is_kthread(const char *proc, int pid);

/* Adds every user process whose comm is exactly name (comm is at most 15
 * characters: longer names are compared on their first 15). Returns the
 * number added, or -errno. */
long sp_procs_by_comm(const char *proc, const char *name, struct sp_pid_list *out);

/* Adds every user process. Returns the number added, or -errno. */
long sp_procs_all(const char *proc, struct sp_pid_list *out);

/* Adds the processes of a cgroup v2 directory (absolute, or relative to
 * /sys/fs/cgroup) and of its descendants. Returns the number added, or
 * -errno (-ENOENT: no such cgroup). */
long sp_procs_cgroup(const char *path, struct sp_pid_list *out);

#endif /* SP_KERNEL_PROCS_H */
