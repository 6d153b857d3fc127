/* SPDX-License-Identifier: MIT */
/*
 * engine.h - the process-wide engine behind the public API: one core, one
 * local backend, one scanner thread, one lock that serialises them all.
 */
#ifndef SP_ENGINE_H
#define SP_ENGINE_H

#include <pthread.h>
#include <stdint.h>

#include "core/core.h"
#include "lib/client.h"
#include "lib/pool.h"
#include "mem/local.h"

struct sp_engine {
	pthread_mutex_t lock;
	pthread_cond_t wake;	   /* the scanner sleeps here     */
	pthread_mutex_t scan_lock; /* guards scans_pub, for waiters   */
	pthread_cond_t scanned;	   /* samepage_wait_scans waits here  */
	uint64_t scans_pub;	   /* full_scans, as published        */
	int waiters;		   /* API callers waiting for the lock */
	pthread_t thread;
	int thread_running;
	int core_ready;
	int backend_ready;
	int backend_err; /* -errno of a failed backend set-up */
	char why[512];
	struct sp_local local;
	struct sp_core core;
	uint32_t space; /* this process in the core (sp_core_add_space) */
	uint64_t scan_cpu_ns;
	struct sp_pool pool;
	int pool_threads;	 /* helpers running (scan_threads - 1 when started) */
	uint64_t helpers_cpu_ns; /* CPU of helper pools already stopped */
	int client_mode;	 /* samepaged does the scanning (client.c) */
	struct sp_client client;
};

extern struct sp_engine sp_engine;

/* The API's way to take the engine lock: counted, so that a scanner that
 * scans without sleeping (sleep_millisecs=0) lets callers in. */
void sp_engine_lock(void);
void sp_engine_unlock(void);
/* The set-up every API entry point needs first (conditions, fork handlers). */
void sp_engine_init(void);

/* All of these are called with sp_engine.lock held. */
int sp_engine_core(void);    /* 0 or -ENOMEM */
int sp_engine_backend(void); /* 0 or -errno (EPERM, ENOSYS, ...) */
int sp_engine_start_scanner(void);
void sp_engine_kick(void); /* knobs changed: wake the scanner */
/* scan_threads changed: starts or stops helpers. 0 or -errno. */
int sp_engine_threads(uint32_t n);
/* samepage_madvise's two directions, on a page-aligned range: 0 or -errno. */
int sp_engine_register(uintptr_t start, size_t len);
int sp_engine_unregister(uintptr_t start, size_t len);
struct samepage_region_stats;
void sp_engine_region_stats(uintptr_t start, size_t len, struct samepage_region_stats *out);
/* CPU time of the scanner and its helpers, nanoseconds. */
uint64_t sp_engine_scan_cpu_ns(void);

#endif /* SP_ENGINE_H */
