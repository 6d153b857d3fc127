/* SPDX-License-Identifier: MIT */
/*
 * set_daemon.c - `samepage set --daemon [--domain NAME] KNOB=VALUE...`:
 * samepaged's knobs over its control socket (SP_M_SET), old -> new per
 * domain.
 *
 * As for the kernel: every assignment is checked first (the engine's
 * parser: the kernel's syntax and ranges, 32-bit values), so a typo changes
 * nothing; then the writes go in order and stop at the first the daemon
 * refuses, its errno turned into the reason and the fix. The old and new
 * values come from STATUS before and after each write, on the same
 * connection, so what the daemon changed on its own (advisor_mode resets
 * pages_to_scan) and what a refused write to all domains changed before the
 * refusal are reported too.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/daemonview.h"
#include "cli/textsafe.h"

struct dassign {
	const struct sp_knob *k;
	char canon[48];
	uint32_t v;
};

struct dset {
	const char *sock, *domain; /* domain NULL: all, and the default for new ones */
	int dry;
	struct json_object *arr;
	char again[200]; /* "--daemon=SOCK --domain D", for the fixes we print */
};

static int parse(const char *arg, struct dassign *a)
{
	const char *eq = strchr(arg, '=');
	char name[SP_NAME_MAX], range[64];
	size_t n = eq ? (size_t)(eq - arg) : 0;
	int err;

	if (!eq || !n || n >= sizeof(name)) {
		sp_errorf("samepage set: '%s': expected KNOB=VALUE%s\n", sp_safe(arg),
			  strchr(arg, '/') ? " (a socket goes as --daemon=SOCKET)" : "");
		return SP_EXIT_USAGE;
	}
	memcpy(name, arg, n);
	name[n] = 0;
	a->k = sp_knob_find(name);
	if (!a->k || !(a->k->flags & SP_KF_ENGINE)) {
		sp_errorf("samepage set: samepaged has no knob '%s' (samepage set --help lists them)\n", sp_safe(name));
		return SP_EXIT_USAGE;
	}
	if (a->k->type == SP_KNOB_COUNTER) {
		sp_errorf("samepage set: %s is a read-only counter, not a knob\n", name);
		return SP_EXIT_USAGE;
	}
	err = sp_knob_parse(a->k, eq + 1, &a->v);
	if (err) {
		sp_errorf("samepage set: %s=%s: %s; %s takes %s%s\n", name, sp_safe(eq + 1), strerror(-err), name,
			  sp_knob_range_text(a->k, range, sizeof(range)),
			  a->k->max > 4294967295ull ? " (samepaged keeps 32 bits: below 2^32)" : "");
		return SP_EXIT_USAGE;
	}
	sp_knob_format_input(a->k, a->v, a->canon, sizeof(a->canon));
	return SP_EXIT_OK;
}

static const char *value_of(const struct sp_dview_domain *d, int i, char *buf, size_t len)
{
	if (!d || !d->v.k.present[i])
		return "?";
	return sp_ksm_writable_text(&d->v.k, i, buf, len);
}

static void change(const struct dset *s, const char *domain, const char *knob, const char *old, const char *new,
		   const char *note)
{
	struct json_object *o;

	if (!s->arr) {
		if (domain)
			printf("%s: %s: %s -> %s%s\n", sp_safe(domain), knob, sp_safe(old), sp_safe(new), note);
		else
			printf("domains made later: %s: -> %s%s\n", knob, sp_safe(new), note);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "domain", domain ? json_object_new_string(domain) : NULL);
	json_object_object_add(o, "knob", json_object_new_string(knob));
	json_object_object_add(o, "old", domain ? json_object_new_string(old) : NULL);
	json_object_object_add(o, "new", json_object_new_string(new));
	json_object_object_add(o, "written", json_object_new_boolean(!s->dry));
	json_object_object_add(o, "by_daemon", json_object_new_boolean(!strcmp(note, " (changed by samepaged)")));
	json_object_array_add(s->arr, o);
}

static int targeted(const struct dset *s, const struct sp_dview_domain *d)
{
	return !s->domain || !strcmp(s->domain, d->name);
}

/* what the daemon would keep for domains made later (server.c on_set) */
static int kept_as_default(const struct dassign *a)
{
	return !(a->k->effect == SP_EFFECT_UNMERGE && a->v == 2);
}

/* The changes between two readings: the knob written in every targeted
 * domain (ok: even when unchanged), and any other knob that moved. */
static void diff(const struct dset *s, const struct sp_dview *before, const struct sp_dview *after,
		 const struct dassign *a, int ok)
{
	int mine = (int)(a->k - sp_knob_table);
	char o[48], n[48];

	for (size_t j = 0; j < after->ndom; j++) {
		const struct sp_dview_domain *d = &after->dom[j], *b = sp_dview_find(before, d->name);

		if (!targeted(s, d))
			continue;
		const char *ov = value_of(b, mine, o, sizeof(o)), *nv = value_of(d, mine, n, sizeof(n));

		if (ok || strcmp(ov, nv))
			change(s, d->name, a->k->name, ov, nv, "");
		for (int i = 0; b && i < SP_KNOB_COUNT; i++) {
			if (i == mine || sp_knob_table[i].type == SP_KNOB_COUNTER ||
			    !(sp_knob_table[i].flags & SP_KF_ENGINE))
				continue;
			ov = value_of(b, i, o, sizeof(o));
			nv = value_of(d, i, n, sizeof(n));
			if (strcmp(ov, nv))
				change(s, d->name, sp_knob_table[i].name, ov, nv, " (changed by samepaged)");
		}
	}
	if (ok && !s->domain && kept_as_default(a))
		change(s, NULL, a->k->name, "", a->canon, "");
}

static void dry_run(const struct dset *s, const struct sp_dview *now, const struct dassign *a)
{
	int i = (int)(a->k - sp_knob_table);
	char o[48];

	for (size_t j = 0; j < now->ndom; j++)
		if (targeted(s, &now->dom[j]))
			change(s, now->dom[j].name, a->k->name, value_of(&now->dom[j], i, o, sizeof(o)), a->canon,
			       " (dry run)");
	if (!s->domain && kept_as_default(a))
		change(s, NULL, a->k->name, "", a->canon, " (dry run)");
}

/* the daemon's errno for a write, as a reason and a fix */
static int explain(const struct dset *s, const struct sp_dview *now, const struct dassign *a, int err)
{
	const char *name = a->k->name;
	long long shared = 0;
	int advisor = 0;

	sp_errorf("samepage set: samepaged at %s refused %s=%s%s%s: %s\n", sp_safe(s->sock), name, a->canon,
		  s->domain ? " in domain " : "", s->domain ? sp_safe(s->domain) : "", strerror(-err));
	for (size_t j = 0; now && j < now->ndom; j++)
		if (targeted(s, &now->dom[j])) {
			const struct sp_ksm *k = &now->dom[j].v.k;

			if (!shared)
				shared = sp_ksm_get(k, "pages_shared", 0);
			advisor |= sp_ksm_get(k, "advisor_mode", 0) != SP_ADVISOR_NONE;
		}
	switch (err) {
	case -EACCES:
	case -EPERM:
		fprintf(stderr, "  only root or the daemon's admin group may change knobs\n");
		return SP_EXIT_PERM;
	case -ENOENT:
		fprintf(stderr, "  samepaged knows no knob %s%s%s (another version, or the domain went away)\n", name,
			s->domain ? " or no domain " : "", s->domain ? sp_safe(s->domain) : "");
		return SP_EXIT_FAIL;
	case -EBUSY:
		if (a->k->refuse == SP_REFUSE_SHARED)
			fprintf(stderr,
				"  samepaged refuses to change %s while KSM pages exist (pages_shared=%lld).\n"
				"  Unmerge first, then merge again: samepage set %s run=2 %s=%s run=1\n",
				name, shared, s->again, name, a->canon);
		return SP_EXIT_FAIL;
	case -EINVAL:
		if (a->k->refuse == SP_REFUSE_ADVISOR && advisor)
			fprintf(stderr,
				"  the advisor sets %s while advisor_mode=scan-time.\n"
				"  Set it by hand with: samepage set %s advisor_mode=none %s=%s\n",
				name, s->again, name, a->canon);
		else if (a->k->effect == SP_EFFECT_THREADS)
			fprintf(stderr, "  samepaged runs one scanner per domain: %s must be 1\n", name);
		else
			fprintf(stderr, "  samepaged rejected the value\n");
		return SP_EXIT_FAIL;
	case -ETIMEDOUT:
		fprintf(stderr, "  no answer in time: samepaged may still be applying it (samepage status %s)\n",
			s->again);
		return SP_EXIT_FAIL;
	case -ECONNRESET:
	case -EPROTO:
		fprintf(stderr, "  the connection ended: not samepaged, or another version\n");
		return SP_EXIT_FAIL;
	}
	return SP_EXIT_FAIL;
}

static int apply(struct dset *s, int fd, struct sp_dview *before, struct dassign *as, int n)
{
	for (int i = 0; i < n; i++) {
		struct sp_dview after;
		int err, rerr;

		if (s->dry) {
			dry_run(s, before, &as[i]);
			continue;
		}
		err = sp_dview_set(fd, s->domain, as[i].k->name, as[i].canon);
		memset(&after, 0, sizeof(after));
		snprintf(after.socket, sizeof(after.socket), "%s", s->sock);
		after.connected = 1;
		rerr = err == -ETIMEDOUT || err == -ECONNRESET || err == -EPROTO ? err
										 : sp_dview_status(fd, NULL, &after);
		if (!rerr)
			diff(s, before, &after, &as[i], !err);
		if (err) {
			err = explain(s, rerr ? before : &after, &as[i], err);
			sp_dview_free(&after);
			return err;
		}
		if (rerr) {
			rerr = sp_dview_unreachable("set", &after, rerr);
			sp_dview_free(&after);
			return rerr;
		}
		sp_dview_free(before);
		*before = after;
	}
	return SP_EXIT_OK;
}

static int run(struct dset *s, struct dassign *as, int n)
{
	struct sp_dview now;
	int fd = sp_dview_connect(s->sock), rc;

	memset(&now, 0, sizeof(now));
	snprintf(now.socket, sizeof(now.socket), "%s", s->sock);
	if (fd < 0)
		return sp_dview_unreachable("set", &now, fd);
	now.connected = 1;
	rc = sp_dview_status(fd, NULL, &now);
	if (rc) {
		rc = sp_dview_unreachable("set", &now, rc);
	} else if (s->domain && !sp_dview_find(&now, s->domain) && !sp_dview_hidden(&now)) {
		rc = sp_dview_no_domain("set", &now, s->domain); /* hidden: the daemon answers (EACCES) */
	} else {
		rc = apply(s, fd, &now, as, n);
	}
	sp_dview_free(&now);
	close(fd);
	return rc;
}

int sp_set_daemon(const char *sock, const char *domain, int argc, char **argv, int dry, int json)
{
	struct dset s = {sock, domain, dry, json ? json_object_new_array() : NULL, ""};
	struct dassign *as = calloc((size_t)argc, sizeof(*as));
	int rc = as ? SP_EXIT_OK : SP_EXIT_FAIL;

	if (domain && strlen(domain) >= SP_NAME_MAX) {
		sp_errorf("samepage set: --domain: '%s' is longer than a domain name can be\n", sp_safe(domain));
		rc = SP_EXIT_USAGE;
	}
	snprintf(s.again, sizeof(s.again), "--daemon%s%s%s%s", strcmp(sock, SP_DEFAULT_SOCKET) ? "=" : "",
		 strcmp(sock, SP_DEFAULT_SOCKET) ? sp_safe(sock) : "", domain ? " --domain " : "",
		 domain ? sp_safe(domain) : "");
	for (int i = 0; i < argc && rc == SP_EXIT_OK; i++)
		rc = parse(argv[i], &as[i]);
	if (rc == SP_EXIT_OK)
		rc = run(&s, as, argc);
	if (s.arr) { /* {"changes": [...]}, and "error" when not all were made */
		struct json_object *o = json_object_new_object();
		const char *m = sp_error_message();

		json_object_object_add(o, "changes", s.arr);
		if (rc != SP_EXIT_OK)
			json_object_object_add(o, "error", json_object_new_string(m ? m : "failed"));
		sp_json_print(stdout, o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
		json_object_put(o);
	}
	free(as);
	return rc;
}
