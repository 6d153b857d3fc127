/* SPDX-License-Identifier: MIT */
/* host.c - /proc and /sys facts about the host for the KSM toolkit (see host.h). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel/host.h"
#include "kernel/procs.h"
#include "kernel/readfile.h"

/* 0, -ESRCH when the file (a process) is gone, or -errno */
static int read_file(const char *path, char *buf, size_t len)
{
	long n = sp_read_small(path, buf, len);

	if (n < 0)
		return n == -ENOENT ? -ESRCH : (int)n;
	return 0;
}

int sp_ksmd_pid(const char *proc)
{
	struct sp_task t;
	struct dirent *e;
	DIR *d = opendir(proc);
	int pid = -ESRCH;

	if (!d)
		return -ESRCH;
	while ((e = readdir(d))) {
		int p = atoi(e->d_name);

		if (p <= 0 || sp_proc_is_kthread(proc, p) != 1)
			continue;
		if (!sp_task_read(proc, p, &t) && !strcmp(t.comm, "ksmd")) {
			pid = p;
			break;
		}
	}
	closedir(d);
	return pid;
}

static int parse_stat(const char *buf, struct sp_task *t)
{
	const char *l = strchr(buf, '('), *r = strrchr(buf, ')');
	unsigned long ut, st;
	long nice;
	int cpu;
	size_t n;

	if (!l || !r || r < l)
		return -EINVAL;
	n = (size_t)(r - l - 1);
	if (n >= sizeof(t->comm))
		n = sizeof(t->comm) - 1;
	memcpy(t->comm, l + 1, n);
	t->comm[n] = 0;
	/* fields 3.. after ")": state ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime(14) stime cutime cstime priority nice(19)
	 * num_threads itrealvalue starttime vsize rss rsslim startcode endcode
	 * startstack kstkesp kstkeip signal blocked sigignore sigcatch wchan
	 * nswap cnswap exit_signal processor(39) */
	if (sscanf(r + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %ld %*d %*d %*u %*u %*u %*u %*u "
		   "%*u %*u %*u %*u %*u %*u %*u %*u %*u %*u %*u %*d %d",
		   &ut, &st, &nice, &cpu) != 4)
		return -EINVAL;
	t->cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	t->nice = (int)nice;
	t->processor = cpu;
	return 0;
}

int sp_task_read(const char *proc, int pid, struct sp_task *t)
{
	char path[256], buf[4096], *p;
	int err;

	memset(t, 0, sizeof(*t));
	snprintf(path, sizeof(path), "%s/%d/stat", proc, pid);
	err = read_file(path, buf, sizeof(buf));
	if (err)
		return err;
	err = parse_stat(buf, t);
	if (err)
		return err;
	snprintf(path, sizeof(path), "%s/%d/status", proc, pid);
	if (read_file(path, buf, sizeof(buf)))
		return 0;
	p = strstr(buf, "Cpus_allowed_list:");
	if (p) {
		p += strlen("Cpus_allowed_list:");
		p += strspn(p, " \t");
		p[strcspn(p, "\n")] = 0;
		sp_cpus_parse(p, &t->allowed);
	}
	return 0;
}

/* "  1234 kB" or " 1234": digits, then the end of the line or a unit; -1
 * for anything else (junk, a negative or too large number) */
static long long key_value(const char *p)
{
	long long v;
	char *end;

	p += strspn(p, " \t");
	errno = 0;
	v = strtoll(p, &end, 10);
	if (!isdigit((unsigned char)*p) || errno || (*end && *end != ' ' && *end != '\n'))
		return -1;
	return v;
}

long long sp_keyfile_get(const char *path, const char *key)
{
	size_t kl = strlen(key);
	long long v = -1;
	char line[256];
	FILE *f = sp_fopen_small(path);

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, kl) || (line[kl] != ' ' && line[kl] != ':' && line[kl] != '\t'))
			continue;
		v = key_value(line + kl + (line[kl] == ':'));
		break;
	}
	fclose(f);
	return v;
}

static long long proc_key(const char *proc, const char *file, const char *key)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", proc, file);
	return sp_keyfile_get(path, key);
}

long long sp_mem_available_kb(const char *proc)
{
	return proc_key(proc, "meminfo", "MemAvailable");
}

long long sp_mem_total_kb(const char *proc)
{
	return proc_key(proc, "meminfo", "MemTotal");
}

long long sp_cow_ksm(const char *proc)
{
	return proc_key(proc, "vmstat", "cow_ksm");
}

int sp_kernel_at_least(const char *proc, int major, int minor)
{
	char path[256], buf[128];
	int ma, mi;

	snprintf(path, sizeof(path), "%s/sys/kernel/osrelease", proc);
	if (read_file(path, buf, sizeof(buf)) || sscanf(buf, "%d.%d", &ma, &mi) != 2 || ma < 0)
		return -1;
	return ma > major || (ma == major && mi >= minor);
}

static void read_cpus(const char *sysfs, const char *rel, struct sp_cpus *out)
{
	char path[256], buf[4096];

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "%s/%s", sysfs, rel);
	if (read_file(path, buf, sizeof(buf)) || sp_cpus_parse(buf, out))
		memset(out, 0, sizeof(*out));
}

int sp_host_numa_nodes(const char *sysfs)
{
	struct sp_cpus nodes;
	int n;

	read_cpus(sysfs, "devices/system/node/online", &nodes);
	n = sp_cpus_count(&nodes);
	return n > 0 ? n : 1;
}

int sp_numa_balancing(const char *proc)
{
	char path[256], buf[32];

	snprintf(path, sizeof(path), "%s/sys/kernel/numa_balancing", proc);
	if (read_file(path, buf, sizeof(buf)))
		return -1;
	return atoi(buf);
}

void sp_cpus_isolated(const char *sysfs, struct sp_cpus *out)
{
	read_cpus(sysfs, "devices/system/cpu/isolated", out);
}

void sp_cpus_nohz_full(const char *sysfs, struct sp_cpus *out)
{
	read_cpus(sysfs, "devices/system/cpu/nohz_full", out);
}

void sp_cpus_online(const char *sysfs, struct sp_cpus *out)
{
	read_cpus(sysfs, "devices/system/cpu/online", out);
}

int sp_sysfs_readonly(const char *proc)
{
	char path[256], line[1024], dev[256], mnt[256], type[64], opts[512];
	int ro = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/self/mounts", proc);
	f = sp_fopen_small(path);
	if (!f)
		return -1;
	/* the last mount of /sys wins: it hides the ones below it */
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%255s %255s %63s %511s", dev, mnt, type, opts) == 4 && !strcmp(mnt, "/sys"))
			ro = !strncmp(opts, "ro", 2) && (opts[2] == ',' || !opts[2]);
	fclose(f);
	return ro;
}

int sp_is_vmm(const char *comm)
{
	static const char *const vmm[] = {"qemu", "kvm", "firecracker", "cloud-hyperviso", "crosvm"};

	for (size_t i = 0; i < sizeof(vmm) / sizeof(vmm[0]); i++)
		if (!strncmp(comm, vmm[i], strlen(vmm[i])))
			return 1;
	return 0;
}

int sp_kvm_guests(const char *proc)
{
	struct sp_pid_list l = {0};
	int n = 0;

	if (sp_procs_all(proc, &l) < 0)
		return 0;
	for (size_t i = 0; i < l.n; i++) {
		struct sp_proc p;

		if (!sp_proc_info(proc, l.pid[i], &p) && sp_is_vmm(p.comm))
			n++;
	}
	sp_pids_free(&l);
	return n;
}
