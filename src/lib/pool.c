/* SPDX-License-Identifier: MIT */
/*
 * pool.c - helper threads for reading and hashing (see pool.h).
 *
 * A job is published under the lock with a new generation; its chunks are
 * claimed with a compare-and-swap on one 64-bit ticket that carries the
 * generation in its upper half, so a helper that wakes late can never claim
 * a chunk of a later job with an earlier job's parameters. The scanner
 * claims chunks too, then waits until every chunk is done: spinning first
 * (the chunks still out are a few microseconds of work), then asleep on a
 * futex. A helper runs at nice 5 or SCHED_IDLE and can be preempted
 * holding a chunk: spinning all along then burnt the scanner's CPU for as
 * long as that lasted (2.8 ms of CPU in a scan call that waited 22 ms,
 * measured with bench_settle -w pairs on AMD EPYC/KVM), over the batch
 * bound.
 */
#include <linux/futex.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/pool.h"
#include "util/clock.h"

#define SPIN_NS 20000 /* wait for chunks still out by spinning this long */

/* Claims and runs chunks of generation gen until there are none left. */
static void work(struct sp_pool *p, uint32_t gen, struct sp_core *c, struct sp_mem *m, uintptr_t addr, uint32_t n,
		 uint32_t nchunks, uint8_t *need)
{
	for (;;) {
		uint64_t t = __atomic_load_n(&p->ticket, __ATOMIC_ACQUIRE);
		uint32_t k = (uint32_t)t;

		if ((uint32_t)(t >> 32) != gen || k >= nchunks)
			return;
		if (!__atomic_compare_exchange_n(&p->ticket, &t, t + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			continue;
		sp_core_read_hash(c, m, addr, k * SP_PAR_CHUNK, (k + 1) * SP_PAR_CHUNK < n ? (k + 1) * SP_PAR_CHUNK : n,
				  need);
		__atomic_add_fetch(&p->done, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&p->waiting, __ATOMIC_SEQ_CST))
			syscall(SYS_futex, &p->done, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	}
}

/* Until all nchunks chunks are done: see the top. */
static void wait_done(struct sp_pool *p, uint32_t nchunks)
{
	uint64_t until = sp_mono_ns() + SPIN_NS;
	uint32_t d;

	while ((d = __atomic_load_n(&p->done, __ATOMIC_ACQUIRE)) < nchunks) {
		if (sp_mono_ns() < until) {
			sched_yield();
			continue;
		}
		/* the helper sees waiting, or this sees its done: sequentially
		 * consistent, both */
		__atomic_store_n(&p->waiting, 1, __ATOMIC_SEQ_CST);
		d = __atomic_load_n(&p->done, __ATOMIC_SEQ_CST);
		if (d < nchunks)
			syscall(SYS_futex, &p->done, FUTEX_WAIT_PRIVATE, d, NULL, NULL, 0);
		__atomic_store_n(&p->waiting, 0, __ATOMIC_RELAXED);
	}
}

static void *helper(void *arg)
{
	struct sp_pool *p = arg;
	uint32_t seen = 0;

	pthread_setname_np(pthread_self(), "samepage-hash");
	if (p->sched_idle) {
		struct sched_param sp = {0};

		sched_setscheduler(0, SCHED_IDLE, &sp);
	}
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 5);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct sp_core *c;
		struct sp_mem *m;
		uintptr_t addr;
		uint32_t gen, n, nchunks;
		uint8_t *need;
		uint64_t cpu;

		while (!p->stop && p->gen == seen)
			pthread_cond_wait(&p->go, &p->lock);
		if (p->stop)
			break;
		seen = gen = p->gen;
		c = p->c;
		m = p->m;
		addr = p->addr;
		n = p->n;
		nchunks = p->nchunks;
		need = p->need;
		pthread_mutex_unlock(&p->lock);
		cpu = sp_thread_cpu_ns();
		work(p, gen, c, m, addr, n, nchunks, need);
		__atomic_add_fetch(&p->cpu_ns, sp_thread_cpu_ns() - cpu, __ATOMIC_RELAXED);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int sp_pool_start(struct sp_pool *p, int nthreads, int sched_idle)
{
	memset(p, 0, sizeof(*p));
	p->sched_idle = sched_idle;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->go, NULL);
	p->threads = calloc((size_t)nthreads, sizeof(pthread_t));
	if (!p->threads)
		return -ENOMEM;
	for (int i = 0; i < nthreads; i++) {
		int err = pthread_create(&p->threads[i], NULL, helper, p);

		if (err) {
			sp_pool_stop(p);
			return -err;
		}
		p->nthreads++;
	}
	return 0;
}

void sp_pool_stop(struct sp_pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	free(p->threads);
	p->threads = NULL;
	p->nthreads = 0;
}

void sp_pool_read_hash(void *ctx, struct sp_core *c, struct sp_mem *m, uintptr_t addr, uint32_t n, uint8_t *need)
{
	struct sp_pool *p = ctx;
	uint32_t nchunks = (n + SP_PAR_CHUNK - 1) / SP_PAR_CHUNK, gen;

	pthread_mutex_lock(&p->lock);
	gen = ++p->gen;
	p->c = c;
	p->m = m;
	p->addr = addr;
	p->n = n;
	p->nchunks = nchunks;
	p->need = need;
	__atomic_store_n(&p->done, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&p->ticket, (uint64_t)gen << 32, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->lock);

	work(p, gen, c, m, addr, n, nchunks, need);
	wait_done(p, nchunks);
}
