/* SPDX-License-Identifier: MIT */
/*
 * client.h - libsamepage in client mode: the engine's work done by
 * samepaged (see client.c). All of these are called with the engine lock
 * held.
 */
#ifndef SP_LIB_CLIENT_H
#define SP_LIB_CLIENT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct sp_engine;
struct samepage_stats;
struct samepage_region_stats;

struct sp_client_range {
	uintptr_t start;
	size_t len;
};

struct sp_client {
	char path[108];	 /* the daemon's socket ("" in-process engine) */
	char label[64];	 /* SAMEPAGE_DOMAIN: the domain label asked for */
	char domain[64]; /* the domain the daemon put us in */
	int ctl;	 /* control connection, -1 none */
	int agent;	 /* our end of the agent socketpair, -1 none */
	int attached;	 /* the daemon serves us now */
	int lost;	 /* it went away; the agent thread reconnects */
	int thread_running;
	pthread_t thread;
	struct sp_client_range *ranges; /* what the program registered */
	size_t nranges, cap;
};

/* Connects, sets up the local backend with the daemon's store and hands
 * the daemon our userfaultfd and agent socket. 0 or -errno (message on
 * stderr). */
int sp_client_start(struct sp_engine *e);
int sp_client_register(struct sp_engine *e, uintptr_t start, size_t len);
int sp_client_unregister(struct sp_engine *e, uintptr_t start, size_t len);
int sp_client_region_stats(struct sp_engine *e, uintptr_t start, size_t len, struct samepage_region_stats *out);
int sp_client_stats(struct sp_engine *e, struct samepage_stats *out);
int sp_client_get(struct sp_engine *e, const char *name, char *buf, size_t len);
int sp_client_set(struct sp_engine *e, const char *name, const char *value);
/* fork(): the daemon keeps every store page (the child maps them too). */
void sp_client_fork_prepare(struct sp_engine *e);
/* In the child: forget the connection without a word to the daemon. */
void sp_client_fork_child(struct sp_client *c);

#endif /* SP_LIB_CLIENT_H */
