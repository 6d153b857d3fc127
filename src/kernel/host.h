/* SPDX-License-Identifier: MIT */
/*
 * host.h - what the host says about itself in /proc and /sys, for the KSM
 * toolkit: ksmd (its pid, CPU time, allowed CPUs, nice), memory
 * (/proc/meminfo), event counters (/proc/vmstat cow_ksm), NUMA (nodes,
 * numa_balancing), isolated and nohz_full CPUs, whether /sys is mounted
 * read-only, and KVM guests.
 *
 * Every reader takes the proc and/or sysfs root ("/proc", "/sys"), so
 * tests can feed recorded trees. A value the host does not have reads as
 * -1 (or an empty set), never as an error of the caller's making.
 */
#ifndef SP_KERNEL_HOST_H
#define SP_KERNEL_HOST_H

#include "kernel/cpulist.h"

/* the pid of the ksmd kernel thread, or -ESRCH */
int sp_ksmd_pid(const char *proc);

struct sp_task {
	char comm[32];
	double cpu_s; /* utime + stime, seconds                   */
	int nice;
	int processor;		/* CPU it last ran on                      */
	struct sp_cpus allowed; /* status Cpus_allowed_list        */
};

/* Reads <proc>/PID/{stat,status}. 0, -ESRCH, or -errno. */
int sp_task_read(const char *proc, int pid, struct sp_task *t);

/* The value of "key" in a "key value" or "key: value kB" file such as
 * meminfo or vmstat (kB as written, no scaling). -1 when absent. */
long long sp_keyfile_get(const char *path, const char *key);

/* <proc>/meminfo MemAvailable and MemTotal in kB; -1 when absent */
long long sp_mem_available_kb(const char *proc);
long long sp_mem_total_kb(const char *proc);
/* <proc>/vmstat cow_ksm (COW breaks of KSM pages), -1 when absent */
long long sp_cow_ksm(const char *proc);

/* 1 if <proc>/sys/kernel/osrelease is major.minor or later, 0 if older,
 * -1 unknown */
int sp_kernel_at_least(const char *proc, int major, int minor);

/* NUMA nodes online (<sysfs>/devices/system/node/online), 1 if unknown */
int sp_host_numa_nodes(const char *sysfs);
/* <proc>/sys/kernel/numa_balancing: 0 off, >0 on (1 normal, 2 tiering), -1 unknown */
int sp_numa_balancing(const char *proc);
/* <sysfs>/devices/system/cpu/{isolated,nohz_full,online}: empty when absent */
void sp_cpus_isolated(const char *sysfs, struct sp_cpus *out);
void sp_cpus_nohz_full(const char *sysfs, struct sp_cpus *out);
void sp_cpus_online(const char *sysfs, struct sp_cpus *out);
/* 1 if the mount holding /sys is read-only in <proc>/self/mounts, 0 if not, -1 unknown */
int sp_sysfs_readonly(const char *proc);
/* number of KVM guest processes (qemu, firecracker, cloud-hypervisor, crosvm) */
/* Is a process with this comm a virtual machine monitor (qemu, kvm,
 * firecracker, cloud-hypervisor, crosvm)? */
int sp_is_vmm(const char *comm);
int sp_kvm_guests(const char *proc);

#endif /* SP_KERNEL_HOST_H */
