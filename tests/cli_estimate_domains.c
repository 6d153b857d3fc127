/* SPDX-License-Identifier: MIT */
/*
 * cli_estimate_domains.c - `samepage estimate --domains`: the saving of
 * samepaged's merge domains next to the kernel's host-wide KSM.
 *
 * Three processes forked from this test, each dropped to another user
 * (kid 0 and 1: uid U1; kid 2: uid U2 with the supplementary group GSUP),
 * each with the same MADV_MERGEABLE layout (NPAGES pages, no THP):
 *
 *   NCOMMON  distinct contents, the same in every process: merge only
 *            across processes
 *   NDUP     copies of one content (intra-process duplicates)
 *   NUNIQUE  contents of the process alone
 *   NZERO    all-zero pages
 *
 * Estimated with --max-page-sharing 256 --use-zero-pages 0, whatever the
 * host's knobs. Host-wide, pages_sharing is
 *   NCOMMON * 2 + (3 NDUP - 1) + (3 NZERO - 1) = 408.
 * One domain per user: user:U1 holds two processes,
 *   NCOMMON + (2 NDUP - 1) + (2 NZERO - 1) = 238,
 * user:U2 one: (NDUP - 1) + (NZERO - 1) = 68; in all 306.
 * Every exact figure below follows from these. Needs root (other users,
 * and reading their memory); the kernel's KSM is not touched.
 */
#include <errno.h>
#include <grp.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testlib.h"

#define U1	65534u
#define U2	65531u
#define GSUP	4242u
#define NKIDS	3
#define NCOMMON 100
#define NDUP	50
#define NUNIQUE 30
#define NZERO	20
#define NPAGES	(NCOMMON + NDUP + NUNIQUE + NZERO)

#define HOST_SHARING (NCOMMON * 2 + (3 * NDUP - 1) + (3 * NZERO - 1))
#define U1_SHARING   (NCOMMON + (2 * NDUP - 1) + (2 * NZERO - 1))
#define U2_SHARING   ((NDUP - 1) + (NZERO - 1))

static const uid_t kid_uid[NKIDS] = {U1, U1, U2};
static pid_t kids[NKIDS];
static char pids[64];
static char dir[] = "/tmp/sp-estdom-XXXXXX";

/* --- the workload ------------------------------------------------------------ */

static uint32_t tag(int kid, size_t i)
{
	if (i < NCOMMON)
		return 1 + (uint32_t)i;
	if (i < NCOMMON + NDUP)
		return 7777;
	if (i < NCOMMON + NDUP + NUNIQUE)
		return 100000 + (uint32_t)kid * 1000 + (uint32_t)i;
	return 0;
}

static void kid_main(int kid, int ready)
{
	gid_t sup = GSUP;
	uid_t u = kid_uid[kid];
	uint8_t *m;

	if (setgroups(u == U2 ? 1 : 0, &sup) || setresgid(u, u, u) || setresuid(u, u, u)) {
		perror("dropping privileges");
		_exit(1);
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	m = t_map(NPAGES);
	madvise(m, NPAGES * TPAGE, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < NPAGES; i++)
		t_fill(m + i * TPAGE, tag(kid, i));
	if (madvise(m, NPAGES * TPAGE, MADV_MERGEABLE)) {
		perror("MADV_MERGEABLE");
		_exit(1);
	}
	if (write(ready, "x", 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

static int start_kids(void **state)
{
	int fd[2];
	char c;

	(void)state;
	assert_int_equal(pipe(fd), 0);
	for (int k = 0; k < NKIDS; k++) {
		kids[k] = fork();
		assert_true(kids[k] >= 0);
		if (kids[k] == 0) {
			close(fd[0]);
			kid_main(k, fd[1]);
		}
		assert_int_equal(read(fd[0], &c, 1), 1);
	}
	close(fd[0]);
	close(fd[1]);
	snprintf(pids, sizeof(pids), "%d,%d,%d", kids[0], kids[1], kids[2]);
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int stop_kids(void **state)
{
	char path[128];

	(void)state;
	for (int k = 0; k < NKIDS; k++)
		if (kids[k] > 0) {
			kill(kids[k], SIGKILL);
			waitpid(kids[k], NULL, 0);
		}
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	if (system(path))
		return -1;
	return 0;
}

/* --- running the command ----------------------------------------------------- */

struct run {
	int status;
	char out[1 << 16], err[4096];
	json_object *json;
};

static void slurp(int fd, char *buf, size_t len)
{
	size_t n = 0;
	ssize_t got;

	while (n < len - 1 && (got = read(fd, buf + n, len - 1 - n)) > 0)
		n += (size_t)got;
	buf[n] = 0;
}

/* samepage estimate --pid KIDS --max-page-sharing 256 --use-zero-pages 0
 * ARGS... (NULL-terminated); JSON parsed when --json is among them */
static struct run *estimate(const char *arg, ...)
{
	struct run *r = calloc(1, sizeof(*r));
	const char *argv[32] = {SP_SAMEPAGE, "estimate",	 "--pid", pids,		  "--max-page-sharing",
				"256",	     "--use-zero-pages", "0",	  "--no-progress"};
	int n = 9, out[2], err[2], st, json = 0;
	va_list ap;
	pid_t pid;

	va_start(ap, arg);
	for (const char *a = arg; a; a = va_arg(ap, const char *)) {
		argv[n++] = a;
		json |= !strcmp(a, "--json");
	}
	va_end(ap);
	argv[n] = NULL;
	assert_non_null(r);
	assert_int_equal(pipe(out), 0);
	assert_int_equal(pipe(err), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(out[1], 1);
		dup2(err[1], 2);
		close(out[0]);
		close(err[0]);
		execv(SP_SAMEPAGE, (char **)argv);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	slurp(out[0], r->out, sizeof(r->out)); /* the output fits a pipe's buffer twice over */
	slurp(err[0], r->err, sizeof(r->err));
	close(out[0]);
	close(err[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	r->status = WEXITSTATUS(st);
	if (json && r->status == 0) {
		r->json = json_tokener_parse(r->out);
		if (!r->json)
			fail_msg("not JSON: %s", r->out);
	}
	return r;
}

static void done(struct run *r)
{
	if (r->json)
		json_object_put(r->json);
	free(r);
}

static int64_t num(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no \"%s\" in %s", key, json_object_to_json_string(o));
	return json_object_get_int64(v);
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no \"%s\"", key);
	return v;
}

/* the domain called name in the "domains" array */
static json_object *domain(struct run *r, const char *name)
{
	json_object *a = get(r->json, "domains");

	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *d = json_object_array_get_idx(a, i);

		if (!strcmp(json_object_get_string(get(d, "name")), name))
			return d;
	}
	fail_msg("no domain %s in %s", name, json_object_to_json_string(a));
	return NULL;
}

static const char *config(const char *name, const char *text)
{
	static char path[192];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static char *opt(const char *path)
{
	static char buf[300];

	snprintf(buf, sizeof(buf), "--domains=%s", path);
	return buf;
}

static void show(const char *what, struct run *r)
{
	json_object *t = get(r->json, "domains_total");

	printf("  %-34s domains: %lld pages_sharing, %lld zero freed, %lld bytes; host-wide: %lld pages_sharing, "
	       "%lld bytes\n",
	       what, (long long)num(t, "pages_sharing"), (long long)num(t, "zero_pages_freed"),
	       (long long)num(t, "saving_bytes"), (long long)num(t, "host_wide_pages_sharing"),
	       (long long)num(t, "host_wide_saving_bytes"));
	fflush(stdout);
}

/* the host-wide figure, the same in every run */
static void expect_host(struct run *r)
{
	json_object *t = get(r->json, "domains_total");

	assert_int_equal(num(get(r->json, "predicted"), "pages_sharing"), HOST_SHARING);
	assert_int_equal(num(t, "host_wide_pages_sharing"), HOST_SHARING);
	assert_int_equal(num(t, "host_wide_saving_bytes"), HOST_SHARING * 4096);
	assert_int_equal(num(t, "host_wide_pages_scanned"), NKIDS * NPAGES);
	assert_int_equal(num(t, "host_wide_processes"), NKIDS);
}

/* --- the tests --------------------------------------------------------------- */

/* One domain per user: no sharing across users, which the host-wide
 * figure has. An empty file, and the default file when it is absent. */
static void per_user(void **state)
{
	const char *empty = config("empty.conf", "");
	char u1[32], u2[32];

	(void)state;
	snprintf(u1, sizeof(u1), "user:%u", U1);
	snprintf(u2, sizeof(u2), "user:%u", U2);
	for (int pass = 0; pass < 2; pass++) {
		struct run *r;
		json_object *t;

		if (pass == 1 && !access("/etc/samepage/samepaged.conf", F_OK)) {
			printf("  /etc/samepage/samepaged.conf exists: bare --domains not checked\n");
			break;
		}
		r = pass ? estimate("--json", "--domains", NULL) : estimate("--json", opt(empty), NULL);
		assert_int_equal(r->status, 0);
		show(pass ? "--domains (default file absent)" : "--domains=empty.conf", r);
		expect_host(r);
		t = get(r->json, "domains_total");
		assert_int_equal(json_object_array_length(get(r->json, "domains")), 2);
		assert_int_equal(num(domain(r, u1), "processes"), 2);
		assert_int_equal(num(domain(r, u1), "pages_scanned"), 2 * NPAGES);
		assert_int_equal(num(domain(r, u1), "pages_sharing"), U1_SHARING);
		assert_int_equal(num(domain(r, u1), "saving_bytes"), U1_SHARING * 4096);
		assert_int_equal(num(domain(r, u2), "processes"), 1);
		assert_int_equal(num(domain(r, u2), "pages_scanned"), NPAGES);
		assert_int_equal(num(domain(r, u2), "pages_sharing"), U2_SHARING);
		assert_int_equal(num(t, "pages_sharing"), U1_SHARING + U2_SHARING);
		assert_int_equal(num(t, "saving_bytes"), (U1_SHARING + U2_SHARING) * 4096);
		assert_int_equal(num(t, "confinement_cost_bytes"), (HOST_SHARING - U1_SHARING - U2_SHARING) * 4096);
		assert_int_equal(json_object_get_boolean(get(t, "config_found")), pass == 0);
		assert_int_equal(json_object_array_length(get(t, "not_admitted")), 0);
		done(r);
	}
}

/* Both users in one domain, by users, by a supplementary group or by
 * cgroup: the domain saves what the kernel's KSM would. */
static void one_domain(void **state)
{
	char text[1024], cg[600] = "", line[600];
	FILE *f = fopen("/proc/self/cgroup", "r");
	struct run *r;

	(void)state;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::", 3))
			snprintf(cg, sizeof(cg), "%s", line + 3);
	fclose(f);
	cg[strcspn(cg, "\n")] = 0;

	snprintf(text, sizeof(text), "[domain both]\nusers = %u, %u\n", U1, U2);
	r = estimate("--json", opt(config("users.conf", text)), NULL);
	assert_int_equal(r->status, 0);
	show("users = U1, U2", r);
	expect_host(r);
	assert_int_equal(json_object_array_length(get(r->json, "domains")), 1);
	assert_int_equal(num(domain(r, "both"), "processes"), 3);
	assert_int_equal(num(domain(r, "both"), "pages_sharing"), HOST_SHARING);
	assert_int_equal(num(get(r->json, "domains_total"), "saving_bytes"), HOST_SHARING * 4096);
	assert_int_equal(num(get(r->json, "domains_total"), "confinement_cost_bytes"), 0);
	done(r);

	/* kid 2 by its supplementary group, the others by uid */
	snprintf(text, sizeof(text), "[domain g]\ngroups = %u\n[domain u]\nusers = %u\n", GSUP, U1);
	r = estimate("--json", opt(config("groups.conf", text)), NULL);
	assert_int_equal(r->status, 0);
	show("groups = GSUP; users = U1", r);
	assert_int_equal(num(domain(r, "g"), "processes"), 1);
	assert_int_equal(num(domain(r, "g"), "pages_sharing"), U2_SHARING);
	assert_int_equal(num(domain(r, "u"), "pages_sharing"), U1_SHARING);
	done(r);

	if (cg[0] != '/') {
		printf("  no cgroup v2 line in /proc/self/cgroup: cgroups not checked\n");
		return;
	}
	snprintf(text, sizeof(text), "[domain cg]\ncgroups = %s\n", cg);
	r = estimate("--json", opt(config("cgroup.conf", text)), NULL);
	assert_int_equal(r->status, 0);
	show("cgroups = (the test's cgroup)", r);
	assert_int_equal(num(domain(r, "cg"), "processes"), 3);
	assert_int_equal(num(domain(r, "cg"), "pages_sharing"), HOST_SHARING);
	done(r);
}

/* A domain's knobs from the config: max_page_sharing 2, use_zero_pages. */
static void domain_knobs(void **state)
{
	char text[256], u2[32];
	struct run *r;
	json_object *a;

	(void)state;
	snprintf(u2, sizeof(u2), "user:%u", U2);
	snprintf(text, sizeof(text), "[domain a]\nusers = %u\nmax_page_sharing = 2\nuse_zero_pages = yes\n", U1);
	r = estimate("--json", opt(config("knobs.conf", text)), NULL);
	assert_int_equal(r->status, 0);
	show("max_page_sharing 2, use_zero_pages", r);
	expect_host(r);
	a = domain(r, "a");
	assert_int_equal(num(a, "max_page_sharing"), 2);
	assert_int_equal(num(a, "use_zero_pages"), 1);
	/* common: 100 pairs, 1 each; 100 duplicates: 50 KSM pages of 2;
	 * 40 zero pages to the zero page */
	assert_int_equal(num(a, "pages_shared"), NCOMMON + NDUP);
	assert_int_equal(num(a, "pages_sharing"), NCOMMON + NDUP);
	assert_int_equal(num(a, "ksm_zero_pages"), 2 * NZERO);
	assert_int_equal(num(a, "saving_bytes"), (NCOMMON + NDUP + 2 * NZERO) * 4096);
	/* the per-user domain keeps the command line's model */
	assert_int_equal(num(domain(r, u2), "max_page_sharing"), 256);
	assert_int_equal(num(domain(r, u2), "pages_sharing"), U2_SHARING);
	assert_int_equal(num(domain(r, u2), "ksm_zero_pages"), 0);
	assert_int_equal(num(get(r->json, "domains_total"), "saving_bytes"),
			 (NCOMMON + NDUP + 2 * NZERO + U2_SHARING) * 4096);
	done(r);

	/* the other way: use_zero_pages 1 on the command line, not in domain
	 * a, whose zero pages merge as content then */
	snprintf(text, sizeof(text), "[domain a]\nusers = %u\nuse_zero_pages = no\n", U1);
	r = estimate("--json", "--use-zero-pages", "1", opt(config("knobs2.conf", text)), NULL);
	assert_int_equal(r->status, 0);
	show("use_zero_pages 1, domain a 0", r);
	assert_int_equal(num(get(r->json, "predicted"), "pages_sharing"), NCOMMON * 2 + 3 * NDUP - 1);
	assert_int_equal(num(get(r->json, "predicted"), "ksm_zero_pages"), NKIDS * NZERO);
	assert_int_equal(num(domain(r, "a"), "pages_sharing"), U1_SHARING);
	assert_int_equal(num(domain(r, "a"), "ksm_zero_pages"), 0);
	assert_int_equal(num(domain(r, u2), "pages_sharing"), NDUP - 1);
	assert_int_equal(num(domain(r, u2), "ksm_zero_pages"), NZERO);
	assert_int_equal(num(get(r->json, "domains_total"), "confinement_cost_bytes"),
			 ((NCOMMON * 2 + 3 * NDUP - 1 + NKIDS * NZERO) - (U1_SHARING + NDUP - 1 + NZERO)) * 4096);
	done(r);

	/* one domain for all with use_zero_pages: one page more than the
	 * kernel's host-wide merge of the 60 zero pages (59) */
	snprintf(text, sizeof(text), "[domain all]\nusers = %u, %u\nuse_zero_pages = yes\n", U1, U2);
	r = estimate("--json", opt(config("knobs3.conf", text)), NULL);
	assert_int_equal(r->status, 0);
	show("one domain, use_zero_pages", r);
	expect_host(r);
	assert_int_equal(num(domain(r, "all"), "pages_sharing"), HOST_SHARING - (NKIDS * NZERO - 1));
	assert_int_equal(num(domain(r, "all"), "ksm_zero_pages"), NKIDS * NZERO);
	assert_int_equal(num(get(r->json, "domains_total"), "confinement_cost_bytes"), -4096);
	done(r);
	r = estimate(opt(config("knobs3.conf", text)), NULL);
	assert_int_equal(r->status, 0);
	assert_non_null(strstr(r->out, "The domains save 4.00 KiB more than host-wide KSM"));
	done(r);
}

/* A target no domain admits is counted out, with samepaged's reason. */
static void not_admitted(void **state)
{
	char text[256], why[128];
	struct run *r;
	json_object *t, *out;

	(void)state;
	snprintf(text, sizeof(text), "[daemon]\nper_user_domains = no\n[domain a]\nusers = %u\n", U1);
	r = estimate("--json", opt(config("refuse.conf", text)), NULL);
	assert_int_equal(r->status, 0);
	show("per_user_domains = no", r);
	expect_host(r);
	t = get(r->json, "domains_total");
	out = get(t, "not_admitted");
	assert_int_equal(json_object_array_length(get(r->json, "domains")), 1);
	assert_int_equal(num(t, "processes"), 2);
	assert_int_equal(num(t, "pages_sharing"), U1_SHARING);
	assert_int_equal(num(t, "not_admitted_pages_scanned"), NPAGES);
	assert_int_equal(json_object_array_length(out), 1);
	assert_int_equal(num(json_object_array_get_idx(out, 0), "pid"), kids[2]);
	snprintf(why, sizeof(why), "no domain admits uid %u (per_user_domains = no)", U2);
	assert_string_equal(json_object_get_string(get(json_object_array_get_idx(out, 0), "reason")), why);
	done(r);

	/* the summary says so too */
	r = estimate(opt(config("refuse.conf", text)), NULL);
	assert_int_equal(r->status, 0);
	assert_non_null(strstr(r->out, why));
	assert_non_null(strstr(r->out, "not admitted "));
	done(r);
}

/* The summary's table: one row per domain, the total, the host-wide row. */
static void summary(void **state)
{
	char text[64], row[160];
	struct run *r;

	(void)state;
	snprintf(text, sizeof(text), "[domain a]\nusers = %u\n", U1);
	r = estimate(opt(config("a.conf", text)), NULL);
	assert_int_equal(r->status, 0);
	snprintf(row, sizeof(row), "  %-24s %6u %10u %10u %10u ", "a", 2, 2 * NPAGES, U1_SHARING, 0);
	if (!strstr(r->out, row))
		fail_msg("no row \"%s\" in:\n%s", row, r->out);
	snprintf(row, sizeof(row), "  %-24s %6u %10u %10u %10u ", "all domains", 3, 3 * NPAGES, U1_SHARING + U2_SHARING,
		 0);
	if (!strstr(r->out, row))
		fail_msg("no row \"%s\" in:\n%s", row, r->out);
	snprintf(row, sizeof(row), "  %-24s %6u %10u %10u %10u ", "host-wide (kernel KSM)", 3, 3 * NPAGES, HOST_SHARING,
		 0);
	if (!strstr(r->out, row))
		fail_msg("no row \"%s\" in:\n%s", row, r->out);
	done(r);
}

/* Config errors: exit 2 with the file and line; a file named must exist. */
static void bad_config(void **state)
{
	const char *path = config("bad.conf", "[domain a]\nusers = 0\nmax_page_sharing = 1\n");
	char want[256];
	struct run *r;

	(void)state;
	r = estimate(opt(path), NULL);
	snprintf(want, sizeof(want), "%s:3: max_page_sharing: invalid value \"1\"", path);
	assert_int_equal(r->status, 2);
	if (!strstr(r->err, want))
		fail_msg("stderr lacks \"%s\": %s", want, r->err);
	assert_string_equal(r->out, "");
	done(r);

	path = config("bad2.conf", "[domain a]\nusers = 0\nno_such_key = 1\n");
	r = estimate("--json", opt(path), NULL);
	snprintf(want, sizeof(want), "%s:3: unknown key \"no_such_key\" in [domain a]", path);
	assert_int_equal(r->status, 2);
	if (!strstr(r->err, want))
		fail_msg("stderr lacks \"%s\": %s", want, r->err);
	done(r);

	snprintf(want, sizeof(want), "%s/none.conf", dir);
	r = estimate(opt(want), NULL);
	assert_int_equal(r->status, 2);
	if (!strstr(r->err, "none.conf: No such file or directory"))
		fail_msg("stderr: %s", r->err);
	done(r);

	r = estimate("--domains=", NULL);
	assert_int_equal(r->status, 2);
	done(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(per_user),	cmocka_unit_test(one_domain), cmocka_unit_test(domain_knobs),
		cmocka_unit_test(not_admitted), cmocka_unit_test(summary),    cmocka_unit_test(bad_config),
	};

	if (geteuid() != 0) {
		printf("needs root (processes of other users): skipped\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, start_kids, stop_kids);
}
