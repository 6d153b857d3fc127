/* SPDX-License-Identifier: MIT */
/*
 * daemonview.c - samepaged's control socket and its STATUS text, parsed
 * (see daemonview.h).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/daemonview.h"
#include "cli/textsafe.h"
#include "core/memory.h"
#include "kernel/readfile.h"
#include "util/clock.h"

#define STATUS_TIMEOUT_MS 10000
#define SET_TIMEOUT_MS	  60000 /* run=2 unmerges a whole domain before answering */

const char *sp_dview_socket(const char *arg)
{
	const char *env = getenv("SAMEPAGE_DAEMON");

	if (arg && *arg)
		return arg;
	return env && *env ? env : SP_DEFAULT_SOCKET;
}

int sp_dview_no_operands(int argc, char **argv)
{
	if (optind < argc && strchr(argv[optind], '/')) {
		sp_errorf("samepage %s: unexpected argument '%s' (a socket goes as --daemon=SOCKET)\n", sp_cmd_name,
			  sp_safe(argv[optind]));
		return SP_EXIT_USAGE;
	}
	return sp_opt_no_operands(argc, argv);
}

int sp_opt_dview(int c, const char *arg, struct sp_dview_opts *o, struct sp_roots *r, void (*usage)(FILE *f))
{
	switch (c) {
	case SP_OPT_DAEMON:
		o->sock = sp_dview_socket(arg);
		return SP_OPT_GO_ON;
	case SP_OPT_DOMAIN:
		o->domain = arg;
		return SP_OPT_GO_ON;
	default:
		return sp_opt_common(c, arg, r, usage);
	}
}

int sp_dview_opts_check(const struct sp_dview_opts *o)
{
	if (o->domain && !o->sock) {
		sp_errorf("samepage %s: --domain needs --daemon (the kernel has no domains)\n", sp_cmd_name);
		return SP_EXIT_USAGE;
	}
	return SP_OPT_GO_ON;
}

int sp_dview_connect(const char *path)
{
	return sp_wire_connect(path);
}

/* a decimal integer, the whole string; above LLONG_MAX saturated */
static int parse_ll(const char *s, int sign_ok, long long *out)
{
	const char *p = s + (sign_ok && *s == '-');
	char *end;
	long long v;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE && *s != '-') {
		errno = 0;
		strtoull(s, &end, 10);
		v = LLONG_MAX;
	}
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* advisor_mode as "[none] scan-time" (or a bare word): the word's index */
static int parse_enum(const struct sp_knob *k, const char *text, long long *out)
{
	const char *l = strchr(text, '['), *w = l ? l + 1 : text;
	size_t n = l ? strcspn(w, "]") : strlen(w);

	if (l && w[n] != ']')
		return -EINVAL;
	for (long long i = 0; k->words[i]; i++)
		if (strlen(k->words[i]) == n && !strncmp(k->words[i], w, n)) {
			*out = i;
			return 0;
		}
	return -EINVAL;
}

static void domain_value(struct sp_dview_domain *d, const char *key, const char *val)
{
	const struct sp_knob *k = sp_knob_find(key);
	struct sp_ksm *s = &d->v.k;
	int i, err;

	if (!strcmp(key, "clients") || !strcmp(key, "registered_bytes")) {
		long long x;

		if (!parse_ll(val, 0, &x))
			*(key[0] == 'c' ? &d->clients : &d->registered_bytes) = x;
		return;
	}
	if (!k || !(k->flags & SP_KF_ENGINE)) { /* a newer daemon's: shown as it is */
		if (s->nextra < SP_KSM_NEXTRA && strlen(key) < sizeof(s->extra_name[0])) {
			snprintf(s->extra_name[s->nextra], sizeof(s->extra_name[0]), "%s", key);
			snprintf(s->extra_text[s->nextra++], sizeof(s->extra_text[0]), "%s", val);
		}
		return;
	}
	i = (int)(k - sp_knob_table);
	if (s->present[i] || s->invalid[i])
		return; /* the first of a repeated key */
	snprintf(s->text[i], sizeof(s->text[i]), "%s", val);
	if (k->type == SP_KNOB_ENUM)
		err = parse_enum(k, val, &s->val[i]);
	else
		err = parse_ll(val, !!(k->flags & SP_KF_SIGNED), &s->val[i]);
	if (err || strlen(val) >= sizeof(s->text[i])) {
		s->invalid[i] = k->type == SP_KNOB_ENUM ? "no mode selected" : "not a number";
		s->ninvalid++;
	} else {
		s->present[i] = 1;
	}
}

static void client_value(struct sp_dview_client *c, const char *key, const char *val)
{
	static const struct {
		const char *key;
		size_t off;
	} nums[] = {
		{"uid", offsetof(struct sp_dview_client, uid)},
		{"ksm_rmap_items", offsetof(struct sp_dview_client, rmap_items)},
		{"ksm_merging_pages", offsetof(struct sp_dview_client, merging_pages)},
		{"ksm_zero_pages", offsetof(struct sp_dview_client, zero_pages)},
		{"ksm_process_profit", offsetof(struct sp_dview_client, profit)},
		{"registered_pages", offsetof(struct sp_dview_client, registered_pages)},
	};

	if (!strcmp(key, "domain")) {
		snprintf(c->domain, sizeof(c->domain), "%s", val);
		return;
	}
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		if (!strcmp(key, nums[i].key))
			parse_ll(val, !strcmp(key, "ksm_process_profit"), (long long *)((char *)c + nums[i].off));
}

static void read_comm(const char *proc, struct sp_dview_client *c)
{
	char path[600];
	long n;

	snprintf(path, sizeof(path), "%s/%d/comm", proc ? proc : "/proc", c->pid);
	n = sp_read_small(path, c->comm, sizeof(c->comm));
	if (n <= 0)
		snprintf(c->comm, sizeof(c->comm), "?");
	else if (c->comm[n - 1] == '\n') /* the kernel's; a comm may hold others */
		c->comm[n - 1] = 0;
}

static int by_merging(const void *x, const void *y)
{
	const struct sp_dview_client *a = x, *b = y;

	if (a->merging_pages != b->merging_pages)
		return a->merging_pages > b->merging_pages ? -1 : 1;
	return (a->pid > b->pid) - (a->pid < b->pid);
}

/* a new element at the end of *arr (of n, cap), zeroed; NULL without memory */
static void *grow(void **arr, size_t *n, size_t *cap, size_t size)
{
	char *p;

	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 8;

		p = realloc(*arr, c * size);
		if (!p)
			return NULL;
		*arr = p;
		*cap = c;
	}
	p = (char *)*arr + *n * size;
	memset(p, 0, size);
	(*n)++;
	return p;
}

static int find_client(const struct sp_dview *v, int pid)
{
	for (size_t i = 0; i < v->ncli; i++)
		if (v->cli[i].pid == pid)
			return 1;
	return 0;
}

int sp_dview_parse(const char *text, const char *proc, struct sp_dview *v)
{
	char *copy = strdup(text), *line, *next;
	struct sp_dview_domain *dom = NULL;
	struct sp_dview_client *cli = NULL;
	size_t dcap = 0, ccap = 0;
	int start = 1, first = 1;

	if (!copy)
		return -ENOMEM;
	v->pid = v->ndomains = v->connections = -1;
	for (line = copy; line; line = next) {
		char *sp;

		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		if (first) {
			first = 0;
			if (sscanf(line, "daemon pid %d domains %d connections %d", &v->pid, &v->ndomains,
				   &v->connections) == 3)
				continue;
		}
		if (!*line) { /* the next line starts a block */
			start = 1;
			dom = NULL;
			cli = NULL;
			continue;
		}
		sp = strchr(line, ' ');
		if (!sp)
			continue;
		*sp++ = 0;
		if (start) {
			long long pid;

			start = 0;
			if (strlen(sp) >= SP_NAME_MAX) /* as the daemon's names are, and kept */
				sp[SP_NAME_MAX - 1] = 0;
			if (!strcmp(line, "domain") && !sp_dview_find(v, sp)) { /* a repeated name: the first */
				dom = grow((void **)&v->dom, &v->ndom, &dcap, sizeof(*dom));
				if (!dom)
					goto nomem;
				snprintf(dom->name, sizeof(dom->name), "%s", sp);
				dom->v.ksmd_pid = -1;
				dom->v.cow_ksm = -1;
				dom->v.page_size = (long)SP_PAGE_SIZE;
			} else if (!strcmp(line, "client") && !parse_ll(sp, 0, &pid) && pid <= INT_MAX &&
				   !find_client(v, (int)pid)) {
				cli = grow((void **)&v->cli, &v->ncli, &ccap, sizeof(*cli));
				if (!cli)
					goto nomem;
				cli->pid = (int)pid;
			}
			continue;
		}
		if (dom)
			domain_value(dom, line, sp);
		else if (cli)
			client_value(cli, line, sp);
	}
	free(copy);
	for (size_t i = 0; i < v->ncli; i++) {
		struct sp_dview_domain *d = (struct sp_dview_domain *)sp_dview_find(v, v->cli[i].domain);

		if (d) /* what the domain's scanner walks per full scan */
			d->v.users.rmap_items = sp_add_sat(d->v.users.rmap_items, v->cli[i].rmap_items);
		read_comm(proc, &v->cli[i]);
	}
	if (v->ncli)
		qsort(v->cli, v->ncli, sizeof(*v->cli), by_merging);
	return v->pid < 0 ? -EPROTO : 0;
nomem:
	free(copy);
	return -ENOMEM;
}

int sp_dview_status(int fd, const char *proc, struct sp_dview *v)
{
	char *text = NULL;
	int err = sp_wire_status(fd, &text, STATUS_TIMEOUT_MS);

	if (!err) {
		v->t = sp_mono_s();
		err = sp_dview_parse(text, proc, v);
		for (size_t i = 0; i < v->ndom; i++)
			v->dom[i].v.k.t = v->t;
	}
	free(text);
	return err;
}

int sp_dview_read(const char *path, const char *proc, struct sp_dview *v)
{
	int fd, err;

	memset(v, 0, sizeof(*v));
	snprintf(v->socket, sizeof(v->socket), "%s", path);
	fd = sp_dview_connect(path);
	if (fd < 0)
		return fd;
	v->connected = 1;
	err = sp_dview_status(fd, proc, v);
	close(fd);
	return err;
}

void sp_dview_free(struct sp_dview *v)
{
	free(v->dom);
	free(v->cli);
	v->dom = NULL;
	v->cli = NULL;
	v->ndom = v->ncli = 0;
}

int sp_dview_set(int fd, const char *domain, const char *knob, const char *value)
{
	struct sp_knob_msg m;

	memset(&m, 0, sizeof(m));
	snprintf(m.name, sizeof(m.name), "%s", knob);
	snprintf(m.value, sizeof(m.value), "%s", value);
	snprintf(m.domain, sizeof(m.domain), "%s", domain ? domain : "");
	return sp_wire_call(fd, SP_M_SET, &m, sizeof(m), NULL, 0, NULL, 0, NULL, NULL, NULL, SET_TIMEOUT_MS, NULL);
}

int sp_dview_unreachable(const char *cmd, const struct sp_dview *v, int err)
{
	const char *path = sp_safe(v->socket);

	if (!v->connected) {
		sp_errorf("samepage %s: no samepaged at %s: %s\n", cmd, path, strerror(-err));
		if (err == -EACCES || err == -EPERM) {
			fprintf(stderr, "  the socket or its directory does not let this user in\n");
			return SP_EXIT_PERM;
		}
		if (err == -ENOENT || err == -ECONNREFUSED)
			fprintf(stderr, "  is samepaged running? (--daemon=SOCKET names another socket)\n");
		return err == -ENOENT || err == -ECONNREFUSED || err == -ENOTSOCK ? SP_EXIT_NOKSM : SP_EXIT_FAIL;
	}
	if (err == -EPROTO || err == -ECONNRESET)
		sp_errorf("samepage %s: samepaged at %s: no status answer (%s): not samepaged, or another version\n",
			  cmd, path, strerror(-err));
	else
		sp_errorf("samepage %s: samepaged at %s: status: %s\n", cmd, path, strerror(-err));
	return SP_EXIT_FAIL;
}

const struct sp_dview_domain *sp_dview_find(const struct sp_dview *v, const char *name)
{
	for (size_t i = 0; v && i < v->ndom; i++)
		if (!strcmp(v->dom[i].name, name))
			return &v->dom[i];
	return NULL;
}

int sp_dview_hidden(const struct sp_dview *v)
{
	return v->ndomains > (int)v->ndom ? v->ndomains - (int)v->ndom : 0;
}

int sp_dview_no_domain(const char *cmd, const struct sp_dview *v, const char *name)
{
	if (sp_dview_hidden(v))
		sp_errorf("samepage %s: samepaged at %s shows no domain '%s' to this user (only root and its admin "
			  "group see every domain)\n",
			  cmd, sp_safe(v->socket), sp_safe(name));
	else
		sp_errorf("samepage %s: samepaged at %s has no domain '%s' (samepage status --daemon lists them)\n",
			  cmd, sp_safe(v->socket), sp_safe(name));
	return SP_EXIT_FAIL;
}

void sp_dview_delta(const struct sp_dview *prev, const struct sp_dview *now, const struct sp_dview_domain *dom,
		    struct sp_delta *d, struct sp_scan_time *s)
{
	const struct sp_dview_domain *p = prev && prev->pid == now->pid ? sp_dview_find(prev, dom->name) : NULL;
	long long dscans = 0;

	memset(d, 0, sizeof(*d));
	if (p) {
		sp_view_delta(&p->v, &dom->v, d);
		dscans = sp_view_dscans(&p->v, &dom->v);
		if (dscans < 0) /* counters went back: not the same domain */
			dscans = 0, d->valid = 0;
	}
	sp_view_scan_time(&dom->v, d, dscans, s);
}
