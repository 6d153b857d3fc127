/* SPDX-License-Identifier: MIT */
/*
 * main.c - samepaged(8): options, configuration, then the server loop.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "daemon/server.h"

#define DEFAULT_CONFIG SD_DEFAULT_CONFIG

/* A client holds four or five descriptors of the daemon's (its connection,
 * pidfd, pagemap, userfaultfd, agent socket), and a service starts with a
 * soft limit of 1024: take the hard limit, as the server does not use
 * select(2). What is still short is handled where accept fails (server.c). */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: samepaged [--socket PATH] [--config FILE] [--check-config] [--verbose]\n"
		   "\n"
		   "Merges identical pages of the processes that register memory with it (libsamepage in\n"
		   "client mode: SAMEPAGE_DAEMON=PATH), inside the merge domains the configuration defines.\n"
		   "Runs in the foreground and logs to stderr.\n"
		   "\n"
		   "  -s, --socket PATH   control socket (default: the configuration's, else " SP_DEFAULT_SOCKET ")\n"
		   "  -c, --config FILE   configuration (default " DEFAULT_CONFIG ", optional)\n"
		   "  -n, --check-config  read the configuration, print the domains, exit\n"
		   "  -v, --verbose       log every client that joins\n"
		   "  -h, --help          this text\n"
		   "  -V, --version       the version\n"
		   "\n"
		   "See samepaged(8) and samepaged.conf(5).\n");
}

/* systemd socket activation: the first passed descriptor */
static int activated_fd(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");

	if (!pid || !fds || atol(pid) != (long)getpid() || atoi(fds) < 1)
		return -1;
	return 3;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 'n'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	static struct sd_config cfg;
	const char *config = NULL, *socket = NULL;
	char err[512];
	int c, check = 0, verbose = 0, rc;

	while ((c = getopt_long(argc, argv, "s:c:nvhV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			socket = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'n':
			check = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("samepaged %s\n", SAMEPAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "samepaged: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (sd_config_load(&cfg, config ? config : DEFAULT_CONFIG, !config, err, sizeof(err))) {
		fprintf(stderr, "samepaged: %s\n", err);
		return 1;
	}
	if (socket) {
		if (strlen(socket) >= sizeof(cfg.socket)) {
			fprintf(stderr, "samepaged: socket path too long\n");
			return 2;
		}
		snprintf(cfg.socket, sizeof(cfg.socket), "%s", socket);
	}
	if (check) {
		printf("socket %s\n", cfg.socket);
		printf("per-user domains %s\n", cfg.per_user ? "yes" : "no");
		for (int i = 0; i < cfg.ndomains; i++)
			printf("domain %s%s\n", cfg.domains[i].name, cfg.domains[i].host_wide ? " (host-wide)" : "");
		return 0;
	}
	raise_nofile();
	rc = sd_server_run(&cfg, activated_fd(), verbose);
	if (rc) {
		fprintf(stderr, "samepaged: cannot start: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}
