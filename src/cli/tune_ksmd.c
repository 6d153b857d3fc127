/* SPDX-License-Identifier: MIT */
/*
 * tune_ksmd.c - `samepage tune --ksmd-cpus/--ksmd-nice`: ksmd moved with
 * sched_setaffinity(2) (housekeeping: online CPUs that are neither
 * isolated nor nohz_full) and reniced with setpriority(2), once at start,
 * and put back at exit. Both act on a live thread, so a --proc-root that
 * is not procfs (a recorded tree, whose pids mean nothing here) is refused
 * unless it is a dry run.
 */
#include <errno.h>
#include <linux/magic.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/vfs.h>

#include "cli/cli.h"
#include "cli/tune.h"

static int live_proc(const char *proc)
{
	struct statfs s;

	return !statfs(proc, &s) && s.f_type == PROC_SUPER_MAGIC;
}

static int set_cpus(int pid, const struct sp_cpus *c)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	for (int i = 0; i < SP_MAXCPU && i < CPU_SETSIZE; i++)
		if (sp_cpus_has(c, i))
			CPU_SET(i, &set);
	return sched_setaffinity(pid, sizeof(set), &set) ? -errno : 0;
}

/* the CPUs --ksmd-cpus asks for, with the reason; 0 or SP_EXIT_USAGE */
static int wanted_cpus(const struct tuner *t, struct sp_cpus *want, char *why, size_t len)
{
	struct sp_cpus online, iso, nohz;
	char b1[256], b2[256], b3[256];

	sp_cpus_online(t->r.sysfs, &online);
	if (!strcmp(t->ksmd_cpus, "housekeeping")) {
		sp_cpus_isolated(t->r.sysfs, &iso);
		sp_cpus_nohz_full(t->r.sysfs, &nohz);
		sp_tune_housekeeping(&online, &iso, &nohz, want);
		snprintf(why, len, "housekeeping CPUs: online %s minus isolated %s and nohz_full %s",
			 sp_cpus_format(&online, b1, sizeof(b1)), *sp_cpus_format(&iso, b2, sizeof(b2)) ? b2 : "(none)",
			 *sp_cpus_format(&nohz, b3, sizeof(b3)) ? b3 : "(none)");
		if (!sp_cpus_count(want)) {
			sp_errorf("samepage tune: --ksmd-cpus=housekeeping: no CPU left (%s)\n", why);
			return SP_EXIT_USAGE;
		}
		return 0;
	}
	if (sp_cpus_parse(t->ksmd_cpus, want) || !sp_cpus_count(want)) {
		sp_errorf("samepage tune: --ksmd-cpus %s: not a CPU list like 0-1,3 (or housekeeping)\n", t->ksmd_cpus);
		return SP_EXIT_USAGE;
	}
	if (sp_cpus_count(&online)) {
		struct sp_cpus off;

		sp_cpus_andnot(want, &online, &off);
		if (sp_cpus_count(&off)) {
			sp_errorf("samepage tune: --ksmd-cpus %s: CPU %s not online (online: %s)\n", t->ksmd_cpus,
				  sp_cpus_format(&off, b1, sizeof(b1)), sp_cpus_format(&online, b2, sizeof(b2)));
			return SP_EXIT_USAGE;
		}
	}
	snprintf(why, len, "--ksmd-cpus %s", t->ksmd_cpus);
	return 0;
}

static int move_ksmd(struct tuner *t)
{
	struct sp_cpus want;
	char why[700], old[256], val[256];
	int rc = wanted_cpus(t, &want, why, sizeof(why)), err;

	if (rc)
		return rc;
	sp_cpus_format(&t->cpus_start, old, sizeof(old));
	sp_cpus_format(&want, val, sizeof(val));
	if (!memcmp(&want, &t->cpus_start, sizeof(want))) {
		if (t->verbose)
			sp_tune_log(t, "keep", "ksmd_cpus", old, NULL, why);
		return 0;
	}
	if (t->dry) {
		sp_tune_log(t, "would-set", "ksmd_cpus", old, val, why);
		return 0;
	}
	err = set_cpus(t->ksmd_pid, &want);
	if (err) {
		sp_errorf("samepage tune: sched_setaffinity(ksmd %d, %s): %s\n", t->ksmd_pid, val, strerror(-err));
		return err == -EPERM ? SP_EXIT_PERM : SP_EXIT_FAIL;
	}
	t->cpus_changed = 1;
	sp_tune_log(t, "set", "ksmd_cpus", old, val, why);
	return 0;
}

static int renice_ksmd(struct tuner *t)
{
	char old[16], val[16], why[64];

	snprintf(old, sizeof(old), "%d", t->nice_start);
	snprintf(val, sizeof(val), "%d", t->nice);
	snprintf(why, sizeof(why), "--ksmd-nice %d", t->nice);
	if (t->nice == t->nice_start) {
		if (t->verbose)
			sp_tune_log(t, "keep", "ksmd_nice", old, NULL, why);
		return 0;
	}
	if (t->dry) {
		sp_tune_log(t, "would-set", "ksmd_nice", old, val, why);
		return 0;
	}
	if (setpriority(PRIO_PROCESS, (id_t)t->ksmd_pid, t->nice)) {
		sp_errorf("samepage tune: setpriority(ksmd %d, %d): %s\n", t->ksmd_pid, t->nice, strerror(errno));
		return errno == EPERM || errno == EACCES ? SP_EXIT_PERM : SP_EXIT_FAIL;
	}
	t->nice_changed = 1;
	sp_tune_log(t, "set", "ksmd_nice", old, val, why);
	return 0;
}

int sp_tune_ksmd(struct tuner *t)
{
	int rc = 0;

	if (!t->ksmd_cpus && !t->set_nice)
		return 0;
	if (t->ksmd_pid <= 0) {
		sp_errorf("samepage tune: no ksmd thread in %s: cannot set its CPUs or nice\n", t->r.proc);
		return SP_EXIT_FAIL;
	}
	if (!t->dry && !live_proc(t->r.proc)) {
		sp_errorf("samepage tune: --ksmd-cpus/--ksmd-nice change a live thread, but %s is not procfs "
			  "(add --dry-run to see the decision on a recorded tree)\n",
			  t->r.proc);
		return SP_EXIT_USAGE;
	}
	if (t->ksmd_cpus)
		rc = move_ksmd(t);
	if (!rc && t->set_nice)
		rc = renice_ksmd(t);
	return rc;
}

void sp_tune_ksmd_restore(struct tuner *t)
{
	char old[256], val[256];

	struct sp_task now;
	int err;

	if (t->cpus_changed) {
		old[0] = 0;
		if (!sp_task_read(t->r.proc, t->ksmd_pid, &now))
			sp_cpus_format(&now.allowed, old, sizeof(old));
		sp_cpus_format(&t->cpus_start, val, sizeof(val));
		err = set_cpus(t->ksmd_pid, &t->cpus_start);
		if (err)
			sp_errorf("samepage tune: restoring ksmd's CPUs %s: %s\n", val, strerror(-err));
		else
			sp_tune_log(t, "restore", "ksmd_cpus", old, val, "ksmd's CPUs when tune started");
	}
	if (t->nice_changed) {
		snprintf(old, sizeof(old), "%d", t->nice);
		snprintf(val, sizeof(val), "%d", t->nice_start);
		if (setpriority(PRIO_PROCESS, (id_t)t->ksmd_pid, t->nice_start))
			sp_errorf("samepage tune: restoring ksmd's nice %d: %s\n", t->nice_start, strerror(errno));
		else
			sp_tune_log(t, "restore", "ksmd_nice", old, val, "ksmd's nice when tune started");
	}
}
