/* SPDX-License-Identifier: MIT */
/*
 * daemon.h - samepaged: the engine's core serving other processes.
 *
 *   config.c  the configuration file (INI, parsed by libinih): domains and
 *             the rules that put a client in one
 *   domain.c  one merge domain: a core, its page store, its scanner thread
 *   peer.c    one client's address space as the core sees it (struct
 *             sp_mem): reads and page state from here, freezing through its
 *             userfaultfd, remaps through its agent thread
 *   server.c  the control socket: connections, messages, limits, client
 *             exit (pidfd)
 *   main.c    options, signals
 *
 * Locking: each domain has one mutex, held by its scanner during a batch
 * and by the server thread while it changes the domain (a client attaches,
 * registers, leaves). A peer is used only under its domain's lock.
 */
#ifndef SP_DAEMON_H
#define SP_DAEMON_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/core.h"
#include "mem/local.h"
#include "proto/wire.h"

#define SD_MAX_DOMAINS 64
#define SD_MAX_MATCH   16 /* users, groups, cgroups, labels: each, per domain */

struct sd_domain_conf {
	char name[SP_NAME_MAX];
	uid_t users[SD_MAX_MATCH];
	int nusers;
	gid_t groups[SD_MAX_MATCH];
	int ngroups;
	char cgroups[SD_MAX_MATCH][256]; /* cgroup v2 paths: the path or below */
	int ncgroups;
	char labels[SD_MAX_MATCH][SP_NAME_MAX]; /* labels a client may ask for */
	int nlabels;
	int host_wide;	       /* every client that no other domain takes */
	uint64_t max_bytes;    /* registered bytes in the domain, 0 unlimited */
	uint32_t max_clients;  /* 0 unlimited */
	struct sp_knobs knobs; /* starting values of the knobs given (knob_set) */
	uint64_t knob_set;     /* bit i: sp_knob_table[i] given in the file */
};

struct sd_config {
	char socket[256];
	gid_t admin_gid; /* may change knobs besides root; (gid_t)-1: root only */
	int per_user;	 /* a client no domain takes gets one of its user's own (default 1) */
	uint32_t per_user_max_clients;
	uint64_t per_user_max_bytes;
	struct sd_domain_conf domains[SD_MAX_DOMAINS];
	int ndomains;
};

#define SD_DEFAULT_CONFIG "/etc/samepage/samepaged.conf"

/* Reads path into cfg (defaults first). 0, or -1 with a message naming the
 * file and line in err. A missing file is fine only when may_be_missing. */
int sd_config_load(struct sd_config *cfg, const char *path, int may_be_missing, char *err, size_t errlen);
void sd_config_defaults(struct sd_config *cfg);

/* Who a client is, as the kernel tells (SO_PEERCRED, SO_PEERGROUPS, its
 * cgroup) and what it asks for. */
struct sd_who {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	gid_t groups[64];
	int ngroups;
	char cgroup[512];
	char label[SP_NAME_MAX];
};

/* The domain a client belongs in: writes its name (a configured domain, or
 * "user:<uid>"), and the index of its configuration (-1: per-user). 0, or
 * -EACCES when no rule admits it (with a reason). */
int sd_config_place(const struct sd_config *cfg, const struct sd_who *w, char *name, size_t len, int *conf, char *why,
		    size_t whylen);

struct sd_domain;

enum { SD_PEER_LIVE, SD_PEER_STUCK, SD_PEER_GONE };

#define SD_PIPELINE  256  /* remaps sent to a client before its answers are read */
#define SD_PM_WINDOW 4096 /* pagemap entries read at once and kept (peer_query) */

struct sd_pending {
	uintptr_t addr;
	size_t n; /* 0: a wake_blocked */
};

struct sd_peer {
	struct sp_mem mem;
	struct sd_domain *dom;
	uint32_t space;
	pid_t pid;
	uid_t uid;
	int agent_fd;
	struct sp_uffd uffd;
	struct sp_pagemap pm;
	uint64_t *pmw;	     /* pagemap entries of [pmw_start, + pmw_n pages), read at pmw_ns */
	uintptr_t pmw_start; /* (pages we changed since: marked, peer.c) */
	size_t pmw_n;
	uint64_t pmw_ns;
	uint64_t work_addr;
	int64_t budget;		  /* mappings it may still get, as it last said */
	uint64_t budget_asked_ns; /* when it was last asked, being out of them */
	int dead;		  /* SD_PEER_*: operations fail with -ESRCH from then on */
	uint64_t registered_bytes;
	uint64_t rpcs, rpc_ns;			/* agent calls and their time */
	struct sd_pending pending[SD_PIPELINE]; /* remaps and wakes not answered (a ring) */
	uint32_t pending_head, npending;
	struct sp_remap_msg out[SD_PIPELINE]; /* the last nout of them, not sent yet (one SP_A_BATCH) */
	uint32_t nout;
	struct sd_pending failed[SD_PIPELINE]; /* remaps refused: merges to end */
	uint32_t nfailed;
	uint64_t remap_failures;
};

struct sd_domain {
	char name[SP_NAME_MAX];
	int conf; /* index into the config, -1 per-user */
	uint64_t max_bytes;
	uint32_t max_clients;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	int thread_running, stop;
	struct sp_host host;
	struct sp_store store;
	int store_ro; /* read-only descriptor of the store, for clients */
	struct sp_core core;
	uint32_t nclients;
	uint64_t registered_bytes;
	uint64_t scan_cpu_ns;
	uint64_t rpc_calls;
	int waiters;	    /* the server thread waits for the lock (sd_domain_lock) */
	uint32_t stuck;	    /* clients that stopped answering, still attached */
	int stuck_alive;    /* one of them left alive: deferred pages stay */
	uint64_t *deferred; /* store pages freed meanwhile, punched when none is */
	size_t ndeferred, deferred_cap;
};

/* Creates a domain (its store, its core; the scanner starts with its first
 * client). 0 or -errno. */
int sd_domain_init(struct sd_domain *d, const char *name, const struct sd_domain_conf *conf);
void sd_domain_destroy(struct sd_domain *d);
int sd_domain_start(struct sd_domain *d);
void sd_domain_kick(struct sd_domain *d);
/* The server thread's way to take the lock: counted, so that a scanner
 * that never sleeps (sleep_millisecs=0) lets it in between slices. */
void sd_domain_lock(struct sd_domain *d);
/* A stuck client left (lock held): store pages freed meanwhile are
 * punched when no stuck client is left, unless one of them still lived
 * when it left (it may map them: they are never reused then). */
void sd_domain_unstuck(struct sd_domain *d, int alive);
/* Writes a knob of the domain (lock held). 0 or -errno as samepage_set. */
int sd_domain_set(struct sd_domain *d, const char *name, const char *value);
/* "name value\n" for every knob and counter of the engine's table. */
size_t sd_domain_status(struct sd_domain *d, char *buf, size_t len);

/* peer.c: a client's memory as an sp_mem. 0 or -errno. */
int sd_peer_init(struct sd_peer *p, struct sd_domain *d, pid_t pid, int uffd, int agent_fd, uint64_t work_addr);
void sd_peer_destroy(struct sd_peer *p);
/* The bookkeeping the client's event thread left (MADV_DONTNEED on merged
 * pages): asks the agent when the client's flag says so. Lock held. */
void sd_peer_events(struct sd_peer *p);
/* Waits for the answers to every request sent without waiting (remaps,
 * wake_blocked): before the scanner sleeps. Lock held. */
void sd_peer_flush(struct sd_peer *p);

#endif /* SP_DAEMON_H */
