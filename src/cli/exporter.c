/* SPDX-License-Identifier: MIT */
/*
 * exporter.c - `samepage exporter`: the kernel's KSM as Prometheus metrics
 * over HTTP (libmicrohttpd), or once on stdout for node_exporter's textfile
 * collector. Each scrape reads /sys and /proc afresh (metrics.c); nothing
 * is cached, and nothing is written. One server thread answers scrapes one
 * at a time, so a scrape never sees another's half-built reading.
 *
 * Slow or hostile clients cannot starve scrapes: the server thread waits
 * with epoll (no FD_SETSIZE ceiling), connections are limited in total and
 * per client address, a connection idle for --timeout seconds is closed,
 * libmicrohttpd's messages are rate-limited (one line per LOG_EVERY_S
 * seconds, with the count of those suppressed), and the soft limit on open
 * files is raised to the hard one at start.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/daemonview.h"
#include "cli/metrics.h"
#include "cli/textsafe.h"

#define LOG_EVERY_S 10 /* at most one line of libmicrohttpd's per this long */

struct exporter {
	struct sp_roots r;
	int top_n;
	long max_conn, max_per_ip, timeout_s;
	const char *daemon; /* --daemon: samepaged's socket, or NULL */
};

/* the rate-limited log: libmicrohttpd calls it from its thread */
static struct {
	pthread_mutex_t lock;
	struct timespec last;
	unsigned long suppressed;
} log_state = {PTHREAD_MUTEX_INITIALIZER, {0, 0}, 0};

static void usage(FILE *f)
{
	fprintf(f, "usage: samepage exporter [OPTIONS]\n"
		   "\n"
		   "Serves the kernel's KSM as Prometheus metrics on http://ADDR:PORT/metrics:\n"
		   "node_exporter's node_ksmd_* names, plus ksmd CPU seconds, pages_skipped,\n"
		   "ksm_zero_pages, stable node chains/dups, general_profit, the advisor, COW\n"
		   "breaks, and per-process profit (bounded: --top-processes).\n"
		   "With --daemon, samepaged's too: samepage_daemon_* per merge domain (label\n"
		   "domain: pages_sharing, full_scans_total, the knobs, ...) and per client (labels\n"
		   "pid, domain, comm), read from its control socket at every scrape.\n"
		   "\n"
		   "  -l, --listen ADDR:PORT      address to serve on (default 127.0.0.1:9781;\n"
		   "                              port 0 picks a free one, printed on stderr)\n"
		   "      --top-processes N       processes with their own series (default 20);\n"
		   "                              the rest are summed as comm=\"other\"\n"
		   "      --max-connections N     open connections at most (default 64)\n"
		   "      --max-connections-per-ip N  from one client address at most (default 8)\n"
		   "      --timeout SECONDS       close a connection idle this long (default 5)\n"
		   "      --once                  print the metrics on stdout and exit\n"
		   "      --daemon[=SOCKET]       samepaged's metrics too (default: $SAMEPAGE_DAEMON, else\n"
		   "                              " SP_DEFAULT_SOCKET "); then the kernel's KSM may be\n"
		   "                              missing (samepage_ksm_up 0); samepaged not answering:\n"
		   "                              samepage_daemon_up 0\n" SP_ROOT_HELP "  -h, --help\n"
		   "\n"
		   "Exit status: 0 ok; 1 cannot listen; 2 bad usage; 4 no KSM in this kernel (without\n"
		   "--daemon).\n");
}

#define UP_HELP "1 if every file of /sys/kernel/mm/ksm was read and valid (see samepage_ksm_invalid)."

static char *render(const struct exporter *e, size_t *len)
{
	struct sp_view v;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		return NULL;
	if (sp_view_read(&e->r, 1, &v)) {
		fputs("# samepage: the kernel's KSM could not be read\n", f);
		fprintf(f, "# HELP samepage_ksm_up " UP_HELP "\n# TYPE samepage_ksm_up gauge\nsamepage_ksm_up 0\n");
	} else {
		fprintf(f, "# HELP samepage_ksm_up " UP_HELP "\n# TYPE samepage_ksm_up gauge\nsamepage_ksm_up %d\n",
			!v.k.ninvalid);
		sp_metrics_write(f, &v, e->top_n);
		sp_view_free(&v);
	}
	if (e->daemon) {
		struct sp_dview dv;
		int err = sp_dview_read(e->daemon, e->r.proc, &dv);

		if (err)
			fprintf(f, "# samepage: samepaged at %s: %s\n", sp_safe(e->daemon), strerror(-err));
		sp_metrics_daemon_write(f, err ? NULL : &dv, e->top_n);
		sp_dview_free(&dv);
	}
	fclose(f);
	return buf;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type, char *body, size_t len,
			     enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *data, size_t *data_len, void **state)
{
	static const char index_page[] = "samepage exporter: the kernel's KSM, metrics at /metrics\n";
	static const char not_found[] = "not found: metrics are at /metrics\n";
	const struct exporter *e = cls;
	size_t len = 0;
	char *body;

	(void)version;
	(void)data;
	(void)data_len;
	(void)state;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", (char *)not_found, sizeof(not_found) - 1,
			     MHD_RESPMEM_PERSISTENT);
	if (!strcmp(url, "/"))
		return reply(c, MHD_HTTP_OK, "text/plain", (char *)index_page, sizeof(index_page) - 1,
			     MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/metrics"))
		return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", (char *)not_found, sizeof(not_found) - 1,
			     MHD_RESPMEM_PERSISTENT);
	body = render(e, &len);
	if (!body)
		return MHD_NO;
	return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len, MHD_RESPMEM_MUST_FREE);
}

static int parse_listen(const char *s, struct sockaddr_in *sa)
{
	const char *colon = strrchr(s, ':');
	char host[64];
	long port;

	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	if (!colon || (size_t)(colon - s) >= sizeof(host) || sp_arg_long(colon + 1, 0, 65535, &port))
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	if (!host[0] || !strcmp(host, "*"))
		strcpy(host, "0.0.0.0");
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return -EINVAL;
	sa->sin_port = htons((uint16_t)port);
	return 0;
}

static void log_limited(void *cls, const char *fmt, va_list ap)
{
	struct timespec now;
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = 0;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&log_state.lock);
	if (log_state.last.tv_sec && now.tv_sec - log_state.last.tv_sec < LOG_EVERY_S) {
		log_state.suppressed++;
	} else {
		if (log_state.suppressed)
			fprintf(stderr, "samepage exporter: %s (and %lu more messages in the last %ld s, not shown)\n",
				msg, log_state.suppressed, (long)(now.tv_sec - log_state.last.tv_sec));
		else
			fprintf(stderr, "samepage exporter: %s\n", msg);
		log_state.suppressed = 0;
		log_state.last = now;
	}
	pthread_mutex_unlock(&log_state.lock);
}

/* Many connections need many descriptors: the soft limit up to the hard one. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int serve(struct exporter *e, const struct sockaddr_in *sa)
{
	const union MHD_DaemonInfo *info;
	struct MHD_Daemon *d;
	char host[INET_ADDRSTRLEN];
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* the server thread inherits the mask */
	raise_nofile();
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle,
			     e, MHD_OPTION_EXTERNAL_LOGGER, log_limited, NULL, MHD_OPTION_SOCK_ADDR, sa,
			     MHD_OPTION_CONNECTION_LIMIT, (unsigned)e->max_conn, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
			     (unsigned)e->max_per_ip, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)e->timeout_s,
			     MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "samepage exporter: cannot listen on %s:%u: %s\n",
			inet_ntop(AF_INET, &sa->sin_addr, host, sizeof(host)), ntohs(sa->sin_port), strerror(errno));
		return SP_EXIT_FAIL;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	fprintf(stderr,
		"samepage exporter: listening on %s:%u\n"
		"samepage exporter: at most %ld connections, %ld per client address, idle timeout %ld s\n",
		inet_ntop(AF_INET, &sa->sin_addr, host, sizeof(host)), info ? info->port : ntohs(sa->sin_port),
		e->max_conn, e->max_per_ip, e->timeout_s);
	sigwait(&set, &sig);
	MHD_stop_daemon(d);
	return SP_EXIT_OK;
}

static int bad_value(const char *opt, const char *arg, const char *range)
{
	fprintf(stderr, "samepage exporter: %s: '%s' is not %s\n", opt, arg, range);
	return SP_EXIT_USAGE;
}

int sp_exporter_main(int argc, char **argv);

int sp_exporter_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"top-processes", required_argument, NULL, 't'},
		{"once", no_argument, NULL, 'o'},
		{"max-connections", required_argument, NULL, 'm'},
		{"max-connections-per-ip", required_argument, NULL, 'p'},
		{"timeout", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		SP_DAEMON_OPTION,
		SP_ROOT_OPTIONS,
		{0},
	};
	struct exporter e = {{"/sys", "/proc"}, 20, 64, 8, 5, NULL};
	const char *listen = "127.0.0.1:9781";
	struct sockaddr_in sa;
	int once = 0, c, err, rc;
	long top;

	while ((c = getopt_long(argc, argv, "l:h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen = optarg;
			break;
		case 't':
			if (sp_arg_long(optarg, 0, 10000, &top)) {
				fprintf(stderr, "samepage exporter: --top-processes: '%s' is not 0..10000\n", optarg);
				return SP_EXIT_USAGE;
			}
			e.top_n = (int)top;
			break;
		case 'o':
			once = 1;
			break;
		case SP_OPT_DAEMON:
			e.daemon = sp_dview_socket(optarg);
			break;
		case 'm':
			if (sp_arg_long(optarg, 1, 100000, &e.max_conn))
				return bad_value("--max-connections", optarg, "1..100000");
			break;
		case 'p':
			if (sp_arg_long(optarg, 1, 100000, &e.max_per_ip))
				return bad_value("--max-connections-per-ip", optarg, "1..100000");
			break;
		case 'T':
			if (sp_arg_long(optarg, 1, 3600, &e.timeout_s))
				return bad_value("--timeout", optarg, "1..3600 seconds");
			break;
		default:
			rc = sp_opt_common(c, optarg, &e.r, usage);
			if (rc != SP_OPT_GO_ON)
				return rc;
		}
	}
	if (optind < argc || parse_listen(listen, &sa)) {
		fprintf(stderr, "samepage exporter: expected --listen IPV4:PORT, got '%s'\n",
			optind < argc ? argv[optind] : listen);
		return SP_EXIT_USAGE;
	}
	{
		struct sp_ksm k;

		err = sp_ksm_read(e.r.sysfs, &k);
		if (err && !e.daemon)
			return sp_ksm_unreadable("exporter", &e.r, err);
		if (err) /* samepaged's metrics alone */
			fprintf(stderr,
				"samepage exporter: warning: the kernel's KSM cannot be read (%s): samepage_ksm_up 0\n",
				strerror(-err));
	}
	if (e.daemon) {
		struct sp_dview dv;

		err = sp_dview_read(e.daemon, e.r.proc, &dv);
		sp_dview_free(&dv);
		if (err) /* it may start later: samepage_daemon_up says */
			fprintf(stderr, "samepage exporter: warning: no samepaged at %s (%s): samepage_daemon_up 0\n",
				sp_safe(e.daemon), strerror(-err));
	}
	if (once) {
		size_t len;
		char *body = render(&e, &len);

		if (!body)
			return SP_EXIT_FAIL;
		fwrite(body, 1, len, stdout);
		free(body);
		return SP_EXIT_OK;
	}
	return serve(&e, &sa);
}

SP_COMMAND(exporter, "Prometheus metrics of the kernel's KSM (and samepaged's) over HTTP", sp_exporter_main);
