/* SPDX-License-Identifier: MIT */
/*
 * procs.c - process selection and /proc/PID/ksm_stat (see procs.h).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/procs.h"
#include "kernel/readfile.h"

#define PF_KTHREAD 0x00200000u

int sp_pids_add(struct sp_pid_list *l, int pid)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->pid[i] == pid)
			return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		int *p = realloc(l->pid, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		l->pid = p;
		l->cap = cap;
	}
	l->pid[l->n++] = pid;
	return 0;
}

void sp_pids_free(struct sp_pid_list *l)
{
	free(l->pid);
	memset(l, 0, sizeof(*l));
}

/* 0, -ESRCH when the process is gone, or -errno */
static int read_small(const char *path, char *buf, size_t len)
{
	long n = sp_read_small(path, buf, len);

	if (n < 0)
		return n == -ENOENT ? -ESRCH : (int)n;
	return 0;
}

/* "ksm_rmap_items 123" style value; saturates rather than overflow */
static long stat_value(const char *line, size_t keylen)
{
	const char *p = line + keylen;

	return strtol(p + strspn(p, " \t"), NULL, 10);
}

static void parse_ksm_stat(char *buf, struct sp_proc *p)
{
	static const struct {
		const char *key;
		size_t off;
	} num[] = {
		{"ksm_zero_pages ", offsetof(struct sp_proc, ksm_zero_pages)},
		{"ksm_merging_pages ", offsetof(struct sp_proc, ksm_merging_pages)},
		{"ksm_rmap_items ", offsetof(struct sp_proc, ksm_rmap_items)},
		{"ksm_process_profit ", offsetof(struct sp_proc, ksm_process_profit)},
	};
	char *line, *save = NULL;

	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "ksm_merge_any: ", 15))
			p->merge_any = !strncmp(line + 15, "yes", 3);
		else if (!strncmp(line, "ksm_mergeable: ", 15))
			p->mergeable = !strncmp(line + 15, "yes", 3);
		for (size_t i = 0; i < sizeof(num) / sizeof(num[0]); i++)
			if (!strncmp(line, num[i].key, strlen(num[i].key)))
				*(long *)((char *)p + num[i].off) = stat_value(line, strlen(num[i].key));
	}
}

int sp_proc_info(const char *proc, int pid, struct sp_proc *p)
{
	char path[256], buf[1024];
	size_t n;
	int err;

	memset(p, 0, sizeof(*p));
	p->pid = pid;
	snprintf(path, sizeof(path), "%s/%d/comm", proc, pid);
	err = read_small(path, buf, sizeof(p->comm) + 1);
	if (err)
		return err;
	/* the kernel ends comm with one newline; a comm may hold others */
	n = strlen(buf);
	if (n && buf[n - 1] == '\n')
		buf[--n] = 0;
	buf[sizeof(p->comm) - 1] = 0;
	memcpy(p->comm, buf, sizeof(p->comm));
	snprintf(path, sizeof(path), "%s/%d/ksm_stat", proc, pid);
	if (read_small(path, buf, sizeof(buf)))
		return 0;
	parse_ksm_stat(buf, p);
	return 0;
}

int sp_proc_is_kthread(const char *proc, int pid)
{
	char path[256], buf[1024], *p;
	unsigned flags = 0;
	int err;

	snprintf(path, sizeof(path), "%s/%d/stat", proc, pid);
	err = read_small(path, buf, sizeof(buf));
	if (err)
		return err;
	p = strrchr(buf, ')');
	/* after the command: state ppid pgrp session tty_nr tpgid flags */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %u", &flags) != 1)
		return -EINVAL;
	return (flags & PF_KTHREAD) ? 1 : 0;
}

static int numeric(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return 0;
	return 1;
}

/* Calls want(pid, ctx) for every user process; adds those it accepts. */
static long walk(const char *proc, int (*want)(const char *proc, int pid, const void *ctx), const void *ctx,
		 struct sp_pid_list *out)
{
	DIR *d = opendir(proc);
	struct dirent *e;
	long added = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		int pid;

		if (!numeric(e->d_name))
			continue;
		pid = atoi(e->d_name);
		if (sp_proc_is_kthread(proc, pid) != 0) /* kernel thread, or gone */
			continue;
		if (!want(proc, pid, ctx))
			continue;
		if (sp_pids_add(out, pid)) {
			closedir(d);
			return -ENOMEM;
		}
		added++;
	}
	closedir(d);
	return added;
}

static int want_comm(const char *proc, int pid, const void *ctx)
{
	struct sp_proc p;

	if (sp_proc_info(proc, pid, &p))
		return 0;
	return !strncmp(p.comm, ctx, 15);
}

static int want_any(const char *proc, int pid, const void *ctx)
{
	(void)proc;
	(void)pid;
	(void)ctx;
	return 1;
}

long sp_procs_by_comm(const char *proc, const char *name, struct sp_pid_list *out)
{
	return walk(proc, want_comm, name, out);
}

long sp_procs_all(const char *proc, struct sp_pid_list *out)
{
	return walk(proc, want_any, NULL, out);
}

static long cgroup_dir(const char *dir, struct sp_pid_list *out, int depth)
{
	char path[4096];
	FILE *f;
	DIR *d;
	struct dirent *e;
	long added = 0;
	int pid;

	if ((size_t)snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= sizeof(path))
		return -ENAMETOOLONG;
	f = sp_fopen_small(path);
	if (!f)
		return -errno;
	while (fscanf(f, "%d", &pid) == 1) {
		if (sp_pids_add(out, pid)) {
			fclose(f);
			return -ENOMEM;
		}
		added++;
	}
	fclose(f);
	if (depth > 64)
		return added;
	d = opendir(dir);
	if (!d)
		return added;
	while ((e = readdir(d))) {
		long n;

		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= sizeof(path))
			continue; /* deeper than PATH_MAX: not reachable by path either */
		n = cgroup_dir(path, out, depth + 1);
		if (n == -ENOMEM) {
			closedir(d);
			return n;
		}
		if (n > 0)
			added += n;
	}
	closedir(d);
	return added;
}

long sp_procs_cgroup(const char *path, struct sp_pid_list *out)
{
	char dir[4096];
	long n;

	/* a filesystem path, or a cgroup path as /proc/PID/cgroup shows it */
	if (path[0] == '/') {
		snprintf(dir, sizeof(dir), "%s", path);
		n = cgroup_dir(dir, out, 0);
		if (n != -ENOENT || !strncmp(path, "/sys/fs/cgroup", 14))
			return n;
	}
	snprintf(dir, sizeof(dir), "/sys/fs/cgroup/%s", path + (path[0] == '/'));
	return cgroup_dir(dir, out, 0);
}
