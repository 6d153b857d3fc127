/* SPDX-License-Identifier: MIT */
/*
 * pool.h - scanner helper threads (knob scan_threads): reading and hashing
 * of a batch is split into chunks that the scanner thread and its helpers
 * take in turn. Only reading and hashing run in parallel; deciding and
 * merging stay on the scanner thread, under the engine lock.
 */
#ifndef SP_POOL_H
#define SP_POOL_H

#include <pthread.h>
#include <stdint.h>

#include "core/core.h"

struct sp_pool {
	pthread_mutex_t lock;
	pthread_cond_t go;
	pthread_t *threads;
	int nthreads; /* helpers, not counting the scanner */
	int stop;
	int sched_idle; /* helpers run as SCHED_IDLE */
	uint32_t gen;
	/* the job of generation gen */
	struct sp_core *c;
	struct sp_mem *m;
	uintptr_t addr;
	uint32_t n, nchunks;
	uint8_t *need;
	uint64_t ticket;  /* gen << 32 | next chunk */
	uint32_t done;	  /* chunks finished (a futex) */
	uint32_t waiting; /* the scanner sleeps on done */
	uint64_t cpu_ns;  /* CPU time the helpers spent working */
};

/* Starts nthreads helpers (at nice 5, or SCHED_IDLE). 0 or -errno. */
int sp_pool_start(struct sp_pool *p, int nthreads, int sched_idle);
void sp_pool_stop(struct sp_pool *p);
/* The core's `parallel` hook: ctx is the pool. */
void sp_pool_read_hash(void *ctx, struct sp_core *c, struct sp_mem *m, uintptr_t addr, uint32_t n, uint8_t *need);

#endif
