/* SPDX-License-Identifier: MIT */
/*
 * daemonview.h - samepaged as `samepage status/set/top/exporter --daemon`
 * see it: its control socket, its STATUS text parsed into domains and
 * clients, and what two readings say (rates per domain).
 *
 * STATUS (src/daemon/server.c on_status) is text: a first line "daemon pid
 * N domains N connections N", then blocks separated by an empty line:
 * "domain NAME" with "key value" lines (clients, registered_bytes, and
 * every knob and counter of the engine's table by its kernel name), and
 * "client PID" (uid, domain, ksm_rmap_items, ...). The text is the
 * daemon's, so it is parsed as untrusted: unknown keys are kept as extras,
 * a value that is not a number is marked invalid, names are escaped on
 * output.
 *
 * A domain's knobs and counters fill a struct sp_view (k, by the index of
 * sp_knob_table, engine-only knobs included), so the kernel report's pieces
 * (ksmview.h) print and encode them.
 */
#ifndef SP_CLI_DAEMONVIEW_H
#define SP_CLI_DAEMONVIEW_H

#include <json-c/json.h>
#include <stdio.h>

#include "cli/ksmview.h"
#include "proto/wire.h"

struct sp_dview_domain {
	char name[SP_NAME_MAX];
	long long clients, registered_bytes;
	struct sp_view v; /* v.k: knobs and counters; ksmd_pid -1, cow_ksm -1 */
};

struct sp_dview_client {
	int pid;
	long long uid;
	char domain[SP_NAME_MAX];
	char comm[64]; /* from <proc>/PID/comm; "?" when unreadable */
	long long rmap_items, merging_pages, zero_pages, profit, registered_pages;
};

struct sp_dview {
	char socket[108];
	int connected; /* the socket accepted (errors after it are the daemon's) */
	int pid, ndomains, connections;
	struct sp_dview_domain *dom; /* in the daemon's order */
	size_t ndom;
	struct sp_dview_client *cli; /* by merging pages, largest first, then pid */
	size_t ncli;
	double t; /* CLOCK_MONOTONIC seconds when read */
};

/* Long-option codes and entries of the daemon options. */
enum { SP_OPT_DAEMON = 0x1100, SP_OPT_DOMAIN };
#define SP_DAEMON_OPTION                                         \
	{                                                        \
		"daemon", optional_argument, NULL, SP_OPT_DAEMON \
	}
#define SP_DAEMON_HELP                                                                      \
	"      --daemon[=SOCKET]       samepaged's instead of the kernel's KSM (default:\n" \
	"                              $SAMEPAGE_DAEMON, else " SP_DEFAULT_SOCKET ")\n"

#define SP_DOMAIN_OPTION                                         \
	{                                                        \
		"domain", required_argument, NULL, SP_OPT_DOMAIN \
	}
/* The tail of the option table of status, top and set: --json (-j), --help
 * (-h), --daemon, --domain and the roots. */
#define SP_DVIEW_OPTIONS                                                                                        \
	{"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, SP_DAEMON_OPTION, SP_DOMAIN_OPTION, \
		SP_ROOT_OPTIONS

/* --daemon[=SOCKET] and --domain NAME, as status, top and set take them. */
struct sp_dview_opts {
	const char *sock;   /* NULL: the kernel's KSM */
	const char *domain; /* NULL: every domain */
};
/* For the default: of a getopt switch: takes --daemon and --domain into o,
 * anything else as sp_opt_common() does (same results). */
int sp_opt_dview(int c, const char *arg, struct sp_dview_opts *o, struct sp_roots *r, void (*usage)(FILE *f));
/* After the options: --domain without --daemon is bad usage (SP_EXIT_USAGE,
 * said on stderr); else SP_OPT_GO_ON. */
int sp_dview_opts_check(const struct sp_dview_opts *o);

/* The socket for --daemon[=arg]: arg, else $SAMEPAGE_DAEMON, else the default. */
const char *sp_dview_socket(const char *arg);
/* sp_opt_no_operands(), saying that the socket goes as --daemon=SOCKET when
 * a path is left over (getopt takes an optional argument only after '='). */
int sp_dview_no_operands(int argc, char **argv);

/* Connects to the control socket: a descriptor, or -errno. */
int sp_dview_connect(const char *path);
/* STATUS over fd into v (proc: where comm is read, "/proc"). 0 or -errno. */
int sp_dview_status(int fd, const char *proc, struct sp_dview *v);
/* Connects, reads STATUS, closes. 0 or -errno; v->connected says which step
 * failed. v needs sp_dview_free() either way. */
int sp_dview_read(const char *path, const char *proc, struct sp_dview *v);
/* Parses STATUS text into v (dom, cli, header); t and socket untouched. */
int sp_dview_parse(const char *text, const char *proc, struct sp_dview *v);
void sp_dview_free(struct sp_dview *v);

/* SET of one knob: the daemon's answer (0 or -errno), or -errno of the
 * transport. domain "" is every domain and the default for new ones. */
int sp_dview_set(int fd, const char *domain, const char *knob, const char *value);

/* Prints why the daemon could not be read (err from sp_dview_read) and
 * returns the exit status: "samepage CMD: no samepaged at PATH: ..." when
 * the socket did not accept (4; 3 when not permitted). */
int sp_dview_unreachable(const char *cmd, const struct sp_dview *v, int err);

/* The domain called name, or NULL. */
const struct sp_dview_domain *sp_dview_find(const struct sp_dview *v, const char *name);
/* Domains the daemon counts but did not show (it shows a user who is not
 * root or in its admin group only that user's own domain and processes). */
int sp_dview_hidden(const struct sp_dview *v);
/* Says that the daemon has no domain name (or shows none by that name to
 * this user); returns SP_EXIT_FAIL. */
int sp_dview_no_domain(const char *cmd, const struct sp_dview *v, const char *name);

/* Rates of a domain between two readings (prev NULL, or another daemon:
 * d->valid 0) and its time per full scan. */
void sp_dview_delta(const struct sp_dview *prev, const struct sp_dview *now, const struct sp_dview_domain *dom,
		    struct sp_delta *d, struct sp_scan_time *s);

/* The report of `status --daemon`: summary, each domain (only: that one,
 * or NULL), top_n clients. prev NULL: no rates. */
void sp_dview_print(FILE *f, const struct sp_dview *prev, const struct sp_dview *now, const char *only, int top_n);
/* The compact report of `top --daemon`: domains with rates, clients. */
void sp_dview_print_top(FILE *f, const struct sp_dview *prev, const struct sp_dview *now, const char *only, int top_n);
struct json_object *sp_dview_json(const struct sp_dview *prev, const struct sp_dview *now, const char *only, int top_n);

/* set_daemon.c: `samepage set --daemon` of argc KNOB=VALUE in argv
 * (domain NULL: all); the exit status. */
int sp_set_daemon(const char *sock, const char *domain, int argc, char **argv, int dry, int json);

#endif /* SP_CLI_DAEMONVIEW_H */
