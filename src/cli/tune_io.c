/* SPDX-License-Identifier: MIT */
/*
 * tune_io.c - the hands of `samepage tune` (see tune.h): it reads the host
 * into the rules' input, writes their decisions, logs every step and, at
 * exit, puts back the knobs it changed. ksmd's CPUs and nice are
 * tune_ksmd.c's, which logs through here (the calls go one way).
 *
 * Knobs are written with O_TRUNC, as a shell's `echo N > file` does: on
 * sysfs it makes no difference, and the tests' fixture trees, where the
 * knobs are plain files, read back exactly what was written.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/textsafe.h"
#include "cli/tune.h"
#include "kernel/procs.h"

/* --- the log ------------------------------------------------------------ */

static struct json_object *num_or_text(const char *s)
{
	const char *p = s + (*s == '-');

	if (*p && strspn(p, "0123456789") == strlen(p))
		return json_object_new_int64(strtoll(s, NULL, 10));
	return json_object_new_string(s);
}

void sp_tune_log(const struct tuner *t, const char *action, const char *knob, const char *old, const char *val,
		 const char *reason)
{
	struct timespec ts;
	struct tm tm;
	char when[40];

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S%z", &tm);
	if (t->json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "time", json_object_new_string(when));
		json_object_object_add(o, "action", json_object_new_string(action));
		if (knob)
			json_object_object_add(o, "knob", json_object_new_string(knob));
		if (old)
			json_object_object_add(o, "old", num_or_text(old));
		if (val)
			json_object_object_add(o, "new", num_or_text(val));
		json_object_object_add(o, "reason", json_object_new_string(reason));
		if (!strcmp(action, "exit") && t->exit_error) /* --json: a failure carries "error" */
			json_object_object_add(o, "error", json_object_new_string(t->exit_error));
		sp_json_print(stdout, o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		json_object_put(o);
	} else if (knob && old && val) {
		printf("%s %s %s %s -> %s: %s\n", when, !strcmp(action, "would-set") ? "would set" : action, knob,
		       sp_safe(old), sp_safe(val), sp_safe(reason));
	} else if (knob && old) {
		printf("%s %s %s %s: %s\n", when, action, knob, sp_safe(old), sp_safe(reason));
	} else {
		printf("%s %s: %s\n", when, action, sp_safe(reason));
	}
	fflush(stdout);
}

/* --- reading ------------------------------------------------------------ */

/* ksmtuned's "committed" memory: the resident memory of VM processes */
static long long vm_rss_kb(const char *proc)
{
	struct sp_pid_list l = {0};
	long long sum = 0;
	char path[256];

	if (sp_procs_all(proc, &l) < 0)
		return 0;
	for (size_t i = 0; i < l.n; i++) {
		struct sp_proc p;
		long long rss;

		if (sp_proc_info(proc, l.pid[i], &p) || !sp_is_vmm(p.comm))
			continue;
		snprintf(path, sizeof(path), "%s/%d/status", proc, l.pid[i]);
		rss = sp_keyfile_get(path, "VmRSS");
		if (rss > 0)
			sum += rss;
	}
	sp_pids_free(&l);
	return sum;
}

/* the knob's text as it would be written back, "" when absent */
static const char *knob_text(const struct sp_ksm *k, enum sp_tune_knob kn, char *buf, size_t len)
{
	int i = sp_knob_index(sp_tune_knob_name(kn));

	buf[0] = 0;
	if (i >= 0 && k->present[i])
		sp_ksm_writable_text(k, i, buf, len);
	return buf;
}

static long long knob_value(const char *text, enum sp_tune_knob kn)
{
	if (!*text)
		return -1;
	const struct sp_knob *k = sp_knob_find(sp_tune_knob_name(kn));
	unsigned long long v;

	if (sp_knob_parse_value(k, text, &v))
		return -1;
	return v > LLONG_MAX ? LLONG_MAX : (long long)v;
}

int sp_tune_read(struct tuner *t, struct sp_tune_input *in)
{
	long long *val[SP_TK_COUNT] = {&in->k.run,
				       &in->k.pages_to_scan,
				       &in->k.sleep_millisecs,
				       &in->k.advisor_mode,
				       &in->k.advisor_target_scan_time,
				       &in->k.advisor_max_cpu};
	struct sp_view v;
	int err;

	memset(in, 0, sizeof(*in));
	err = sp_view_read(&t->r, 1, &v);
	if (err)
		return sp_ksm_unreadable("tune", &t->r, err);
	in->mem_total_kb = sp_mem_total_kb(t->r.proc);
	in->mem_avail_kb = sp_mem_available_kb(t->r.proc);
	if (in->mem_total_kb <= 0 || in->mem_avail_kb < 0) {
		sp_errorf("samepage tune: %s/meminfo: no MemTotal or MemAvailable\n", t->r.proc);
		sp_view_free(&v);
		return SP_EXIT_FAIL;
	}
	in->committed_kb = vm_rss_kb(t->r.proc);
	in->scan_pages = v.users.rmap_items > 0 ? v.users.rmap_items : sp_ksm_pages_tracked(&v.k);
	for (int k = 0; k < SP_TK_COUNT; k++) {
		char text[48];

		knob_text(&v.k, k, text, sizeof(text));
		if (!t->start_ok[k] && *text) { /* first reading: what to restore */
			snprintf(t->start[k], sizeof(t->start[k]), "%s", text);
			t->start_ok[k] = 1;
		}
		if (t->shadowed[k])
			snprintf(text, sizeof(text), "%s", t->shadow[k]);
		*val[k] = knob_value(text, k);
	}
	t->ksmd_pid = v.ksmd_pid;
	if (t->ksmd_pid > 0 && !t->cpus_changed && !t->nice_changed) {
		t->cpus_start = v.ksmd.allowed;
		t->nice_start = v.ksmd.nice;
	}
	in->cur.t = v.k.t;
	in->cur.ksmd_cpu_s = v.ksmd_pid > 0 ? v.ksmd.cpu_s : -1;
	in->cur.full_scans = sp_ksm_get(&v.k, "full_scans", -1);
	in->cur.pages_scanned = sp_ksm_get(&v.k, "pages_scanned", -1);
	in->cur.running = in->k.run == 1;
	in->have_prev = t->have_prev;
	in->prev = t->prev;
	sp_view_free(&v);
	return SP_EXIT_OK;
}

/* --- writing ------------------------------------------------------------ */

static int write_knob(const char *sysfs, const char *name, const char *val)
{
	char path[700];
	size_t n = strlen(val);
	ssize_t w;
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/kernel/mm/ksm/%s", sysfs, name);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	w = write(fd, val, n);
	if (w < 0)
		err = -errno;
	else if ((size_t)w != n)
		err = -EIO;
	close(fd);
	return err;
}

/* logs a failed write; the exit status when retrying cannot help, else 0 */
static int write_failed(struct tuner *t, const char *knob, const char *old, const char *val, int err)
{
	char why[200];

	snprintf(why, sizeof(why), "writing %s/kernel/mm/ksm/%s: %s%s", t->r.sysfs, knob, strerror(-err),
		 err == -EACCES || err == -EPERM ? " (needs root)"
		 : err == -EROFS		 ? " (/sys is read-only here)"
						 : "");
	sp_tune_log(t, "error", knob, old, val, why);
	t->write_errors++;
	if (err == -EACCES || err == -EPERM)
		return SP_EXIT_PERM;
	return err == -EROFS ? SP_EXIT_NOKSM : 0;
}

int sp_tune_apply(struct tuner *t, const struct sp_tune_decision *d)
{
	for (int i = 0; i < d->n; i++) {
		const struct sp_tune_change *c = &d->c[i];
		const char *name = sp_tune_knob_name(c->knob);
		int err;

		if (d->keep[i]) {
			if (t->verbose)
				sp_tune_log(t, "keep", name, c->old, NULL, c->reason);
			continue;
		}
		if (t->dry) {
			snprintf(t->shadow[c->knob], sizeof(t->shadow[c->knob]), "%s", c->val);
			t->shadowed[c->knob] = 1;
			sp_tune_log(t, "would-set", name, c->old, c->val, c->reason);
			continue;
		}
		err = write_knob(t->r.sysfs, name, c->val);
		if (err) {
			err = write_failed(t, name, c->old, c->val, err);
			if (err)
				return err;
			continue;
		}
		t->wrote[c->knob] = 1;
		if (sp_knob_find(name)->effect == SP_EFFECT_ADVISOR_RESET) /* a change resets pages_to_scan */
			t->wrote[SP_TK_PAGES_TO_SCAN] = 1;
		sp_tune_log(t, "set", name, c->old, c->val, c->reason);
	}
	return SP_EXIT_OK;
}

/* --- putting it back ---------------------------------------------------- */

static void restore_knob(struct tuner *t, enum sp_tune_knob k)
{
	const char *name = sp_tune_knob_name(k);
	struct sp_knob_state st;
	char now[48];
	struct sp_ksm ksm;
	int err;

	if (!t->wrote[k] || !t->start_ok[k] || sp_ksm_read(t->r.sysfs, &ksm))
		return;
	knob_text(&ksm, k, now, sizeof(now));
	if (!strcmp(now, t->start[k]))
		return;
	st.shared = sp_ksm_get(&ksm, "pages_shared", 0) > 0;
	st.advisor = sp_ksm_get(&ksm, "advisor_mode", SP_ADVISOR_NONE) != SP_ADVISOR_NONE;
	if (sp_knob_find(name)->refuse == SP_REFUSE_ADVISOR && sp_knob_refused(sp_knob_find(name), &st, 1)) {
		sp_tune_log(t, "keep", name, now, NULL,
			    "advisor_mode is scan-time again: the advisor owns pages_to_scan");
		return;
	}
	err = write_knob(t->r.sysfs, name, t->start[k]);
	if (err)
		write_failed(t, name, now, t->start[k], err);
	else
		sp_tune_log(t, "restore", name, now, t->start[k], "its value when tune started");
}

void sp_tune_restore(struct tuner *t)
{
	/* advisor_mode first: writing it resets pages_to_scan; run last */
	static const enum sp_tune_knob order[] = {SP_TK_ADVISOR_MODE,	 SP_TK_ADVISOR_TARGET_SCAN_TIME,
						  SP_TK_ADVISOR_MAX_CPU, SP_TK_SLEEP_MILLISECS,
						  SP_TK_PAGES_TO_SCAN,	 SP_TK_RUN};

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		restore_knob(t, order[i]);
}
