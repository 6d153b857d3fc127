/* SPDX-License-Identifier: MIT */
/* server.h - samepaged's control socket loop (server.c). */
#ifndef SP_DAEMON_SERVER_H
#define SP_DAEMON_SERVER_H

#include "daemon/daemon.h"

/* Serves until SIGTERM or SIGINT. listen_fd >= 0: a socket already
 * listening (systemd socket activation); otherwise cfg->socket is created.
 * 0, or -errno when it could not start. */
int sd_server_run(struct sd_config *cfg, int listen_fd, int verbose);

#endif
