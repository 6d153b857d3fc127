/* SPDX-License-Identifier: MIT */
/* ksmstat.c - processes using the kernel's KSM, by profit (see ksmstat.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel/ksm.h"
#include "kernel/ksmstat.h"

static int by_profit(const void *a, const void *b)
{
	const struct sp_proc *x = a, *y = b;

	if (x->ksm_process_profit != y->ksm_process_profit)
		return x->ksm_process_profit > y->ksm_process_profit ? -1 : 1;
	return x->pid - y->pid;
}

static int active(const struct sp_proc *p)
{
	return p->merge_any || p->mergeable || p->ksm_rmap_items || p->ksm_merging_pages || p->ksm_zero_pages;
}

static int readable(const char *proc, int pid)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%d/ksm_stat", proc, pid);
	return access(path, R_OK) == 0 || errno != EACCES;
}

static int add(struct sp_ksm_users *u, const struct sp_proc *p, size_t *cap)
{
	if (u->n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct sp_proc *np = realloc(u->p, c * sizeof(*np));

		if (!np)
			return -ENOMEM;
		u->p = np;
		*cap = c;
	}
	u->p[u->n++] = *p;
	/* saturated: ksm_stat of a recorded or hostile tree can hold anything */
	u->rmap_items = sp_add_sat(u->rmap_items, p->ksm_rmap_items);
	u->merging_pages = sp_add_sat(u->merging_pages, p->ksm_merging_pages);
	u->zero_pages = sp_add_sat(u->zero_pages, p->ksm_zero_pages);
	u->profit = sp_add_sat(u->profit, p->ksm_process_profit);
	return 0;
}

int sp_ksm_users_read(const char *proc, struct sp_ksm_users *u)
{
	struct sp_pid_list l = {0};
	size_t cap = 0;
	long n;

	memset(u, 0, sizeof(*u));
	n = sp_procs_all(proc, &l);
	if (n < 0)
		return (int)n;
	for (size_t i = 0; i < l.n; i++) {
		struct sp_proc p;

		if (sp_proc_info(proc, l.pid[i], &p))
			continue;
		if (!active(&p)) {
			u->denied += !readable(proc, l.pid[i]);
			continue;
		}
		if (add(u, &p, &cap)) {
			sp_pids_free(&l);
			sp_ksm_users_free(u);
			return -ENOMEM;
		}
	}
	sp_pids_free(&l);
	if (u->n)
		qsort(u->p, u->n, sizeof(*u->p), by_profit);
	return 0;
}

void sp_ksm_users_free(struct sp_ksm_users *u)
{
	free(u->p);
	u->p = NULL;
	u->n = 0;
}
