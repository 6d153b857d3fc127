/* SPDX-License-Identifier: MIT */
/*
 * peer.c - one client's address space, as the core sees it.
 *
 * The daemon does what it can itself: content with process_vm_readv (root,
 * or ptrace access to the client), page state from /proc/PID/pagemap,
 * freezing and thawing with UFFDIO_WRITEPROTECT on the userfaultfd the
 * client created and handed over (the ioctls act on the client's memory,
 * whoever calls them). A mapping can only be changed by the process that
 * owns it, so remaps, zero mappings and restores are requests to the
 * client's agent thread (lib/client.c), which answers after doing them with
 * the same code as the in-process engine (mem/local.c).
 *
 * A client that stops answering (exited, killed, stuck for AGENT_TIMEOUT_MS)
 * is dead from then on: every operation fails with -ESRCH, which the core
 * treats as a failed merge, and the server drops its address space.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "mem/reader.h"
#include "util/clock.h"

#define PAGE		 4096ul
#define AGENT_TIMEOUT_MS 10000
#define PM_MAX_AGE_NS	 (50 * 1000000ull)  /* a kept pagemap window is read again after this */
#define PM_CHANGED	 UINT64_MAX	    /* no real entry: present and swapped at once */
#define BUDGET_ASK_NS	 (250 * 1000000ull) /* a client out of mappings is asked again after this */

static struct sd_peer *P(struct sp_mem *m)
{
	return (struct sd_peer *)m;
}

/* The agent's answer was a transport failure: the client is gone or
 * stuck from now on. Returns -ESRCH. */
static int give_up(struct sd_peer *p, int err)
{
	if (err == -ECONNRESET || err == -EPIPE || err == -ENOTCONN) {
		p->dead = SD_PEER_GONE;
		return -ESRCH;
	}
	p->dead = SD_PEER_STUCK;
	/* It may still carry a request out later: hang up, so that it drops
	 * what it finds queued (lib/client.c) and comes back as a new
	 * client. For a request it was already doing, the core's taking the
	 * merge back must stay harmless: its pages stay frozen (the client
	 * thaws them itself once it sees the hang-up, peer_thaw) and no store
	 * page of the domain is freed or reused while a stuck client exists
	 * (domain.c), so a late remap maps content that was verified and has
	 * not changed. */
	shutdown(p->agent_fd, SHUT_RDWR);
	p->dom->stuck++;
	return -ESRCH;
}

static int transport(int err)
{
	return err == -ECONNRESET || err == -EPIPE || err == -ENOTCONN || err == -ETIMEDOUT || err == -EPROTO ||
	       err == -EMSGSIZE || err == -EBADF;
}

/* Sends what was queued (queue()) as one SP_A_BATCH message: the agent
 * does the entries in order and answers once, with an error for each.
 * 0 or -ESRCH. */
static int flush_out(struct sd_peer *p)
{
	int err;

	if (p->dead)
		return -ESRCH;
	if (!p->nout)
		return 0;
	err = sp_wire_send(p->agent_fd, SP_A_BATCH, p->out, p->nout * sizeof(p->out[0]), NULL, 0);
	p->nout = 0;
	return err ? give_up(p, err) : 0;
}

/* Remaps and wake_blocked are sent without waiting (see peer_remap):
 * collects their answers, all of them when wait, else those already there.
 * A remap the client could not do leaves its run as it was (plain memory,
 * still frozen): thawed here, and its merge ended before the next batch
 * (sd_peer_events). */
static void drain(struct sd_peer *p, int wait)
{
	uint64_t t0 = sp_mono_ns();

	flush_out(p);
	while (p->npending && !p->dead) {
		char buf[sizeof(struct sp_msg) + sizeof(struct sp_reply) + SD_PIPELINE * sizeof(int32_t)];
		const struct sp_msg *h = (const void *)buf;
		struct sp_reply r;
		long n = sp_wire_recv(p->agent_fd, buf, sizeof(buf), NULL, NULL, wait ? AGENT_TIMEOUT_MS : 0);
		size_t k;

		if (n == -ETIMEDOUT && !wait)
			break;
		if (n < (long)sizeof(r) || h->type != SP_M_REPLY) {
			give_up(p, n < 0 ? (int)n : -EPROTO);
			break;
		}
		k = ((size_t)n - sizeof(r)) / sizeof(int32_t);
		if (!k || k > p->npending || ((size_t)n - sizeof(r)) % sizeof(int32_t)) {
			give_up(p, -EPROTO);
			break;
		}
		memcpy(&r, buf + sizeof(*h), sizeof(r));
		p->budget = r.budget;
		for (size_t i = 0; i < k; i++) {
			struct sd_pending q = p->pending[p->pending_head];
			int32_t err;

			memcpy(&err, buf + sizeof(*h) + sizeof(r) + i * sizeof(err), sizeof(err));
			p->pending_head = (p->pending_head + 1) % SD_PIPELINE;
			p->npending--;
			if (err && q.n) {
				sp_uffd_protect(&p->uffd, q.addr, q.n * PAGE, 0);
				if (p->nfailed < SD_PIPELINE)
					p->failed[p->nfailed++] = q;
				p->remap_failures++;
			}
		}
	}
	p->rpc_ns += sp_mono_ns() - t0;
}

/* Queues a remap (or, npages 0, a wake_blocked) for the next SP_A_BATCH;
 * its answer is collected later (drain). 0 or -ESRCH. */
static int queue(struct sd_peer *p, const struct sp_remap_msg *q)
{
	if (p->npending == SD_PIPELINE)
		drain(p, 1);
	if (p->dead)
		return -ESRCH;
	p->out[p->nout++] = *q;
	p->pending[(p->pending_head + p->npending) % SD_PIPELINE] = (struct sd_pending){q->addr, q->npages};
	p->npending++;
	p->rpcs++;
	return 0;
}

/* Pages [addr, + n) are about to change mapping by our doing: a kept
 * pagemap window must not answer for them any more. */
static void pm_changed(struct sd_peer *p, uintptr_t addr, size_t n)
{
	uintptr_t end = addr + n * PAGE, wend = p->pmw_start + p->pmw_n * PAGE;

	if (!p->pmw_n || end <= p->pmw_start || addr >= wend)
		return;
	if (addr < p->pmw_start)
		addr = p->pmw_start;
	if (end > wend)
		end = wend;
	for (size_t i = (addr - p->pmw_start) / PAGE; i < (end - p->pmw_start) / PAGE; i++)
		p->pmw[i] = PM_CHANGED;
}

static int call(struct sd_peer *p, uint32_t type, const void *body, size_t len, void *out, size_t outlen, size_t *got)
{
	uint64_t t0;
	int64_t budget = p->budget;
	int err;

	drain(p, 1);
	if (p->dead)
		return -ESRCH;
	t0 = sp_mono_ns();
	err = sp_wire_call(p->agent_fd, type, body, len, NULL, 0, out, outlen, got, NULL, NULL, AGENT_TIMEOUT_MS,
			   &budget);
	p->rpcs++;
	p->rpc_ns += sp_mono_ns() - t0;
	if (transport(err))
		return give_up(p, err);
	p->budget = budget;
	return err;
}

static long peer_read(struct sp_mem *m, uintptr_t addr, size_t n, void *buf)
{
	long got = P(m)->dead ? -ESRCH : sp_vm_read(P(m)->pid, addr, n, buf);

	if (got == -ESRCH)
		P(m)->dead = SD_PEER_GONE;
	return got;
}

static long peer_read2(struct sp_mem *m, uintptr_t a1, void *buf1, uintptr_t a2, void *buf2, size_t n, long *got2)
{
	long got = P(m)->dead ? -ESRCH : sp_vm_read2(P(m)->pid, a1, buf1, a2, buf2, n, got2);

	if (got == -ESRCH)
		P(m)->dead = SD_PEER_GONE;
	return got;
}

/* The scanner asks for every batch (64 pages or fewer), in address order:
 * one pagemap read covers SD_PM_WINDOW pages and answers the next batches
 * too (a pagemap read walks the page tables under the mmap lock, at a fixed
 * cost per call of the same order as reading 64 entries).
 *
 * A kept entry can be stale in two ways. The client changed the page since
 * (wrote it, dropped it): the core then sees it as it was a moment ago, which
 * it must cope with anyway (the page can change right after any read) and
 * which decides nothing alone: a merge verifies the frozen bytes, a merged
 * page still mapping its store page is kept one more visit, a page that
 * looks gone is forgotten and found again. The window is dropped after
 * PM_MAX_AGE_NS and when the client reports MADV_DONTNEED work, so that
 * lasts one pass at most. Or we changed the page (remap, zap, unmerge,
 * restore): then the core must see it, or it would take a page just merged
 * for one written since and free its store page while it is mapped. Those
 * entries are marked PM_CHANGED when the request is sent, and a query that
 * meets one reads the page tables again, after every answer is in. */
static int peer_query(struct sp_mem *m, uintptr_t addr, size_t n, uint8_t *flags)
{
	struct sd_peer *p = P(m);
	uint64_t now = sp_mono_ns();
	size_t off = 0, i;
	long got;

	if (p->dead)
		return -ESRCH;
	if (!p->pmw && n <= SD_PM_WINDOW)
		p->pmw = malloc(SD_PM_WINDOW * sizeof(*p->pmw));
	if (!p->pmw || n > SD_PM_WINDOW) {
		drain(p, 1); /* the page tables as they are after every remap sent */
		return p->dead ? -ESRCH : sp_pagemap_query(&p->pm, addr, n, flags);
	}
	if (p->pmw_n && addr >= p->pmw_start && now - p->pmw_ns < PM_MAX_AGE_NS) {
		off = (addr - p->pmw_start) / PAGE;
		if (off + n > p->pmw_n)
			off = SIZE_MAX;
		for (i = 0; off != SIZE_MAX && i < n; i++)
			if (p->pmw[off + i] == PM_CHANGED)
				off = SIZE_MAX;
	} else {
		off = SIZE_MAX;
	}
	if (off == SIZE_MAX) {
		p->pmw_n = 0;
		drain(p, 1);
		if (p->dead)
			return -ESRCH;
		got = sp_pagemap_raw(&p->pm, addr, SD_PM_WINDOW, p->pmw);
		if (got < 0)
			return (int)got;
		for (i = (size_t)got; i < SD_PM_WINDOW; i++)
			p->pmw[i] = 0; /* past the end of the address space */
		p->pmw_start = addr;
		p->pmw_n = SD_PM_WINDOW;
		p->pmw_ns = sp_mono_ns();
		off = 0;
	}
	for (i = 0; i < n; i++)
		flags[i] = sp_pagemap_flags(&p->pm, p->pmw[off + i]);
	return 0;
}

static int peer_freeze(struct sp_mem *m, uintptr_t addr, size_t n)
{
	return P(m)->dead ? -ESRCH : sp_uffd_protect(&P(m)->uffd, addr, n * PAGE, 1);
}

static int peer_thaw(struct sp_mem *m, uintptr_t addr, size_t n)
{
	/* not for a stuck client (see call()): it thaws its pages itself
	 * when it sees the hang-up, after any remap it was still doing */
	if (P(m)->dead == SD_PEER_STUCK)
		return 0;
	return sp_uffd_protect(&P(m)->uffd, addr, n * PAGE, 0);
}

/* Sent at once without waiting for the answer: the client maps while the
 * scanner goes on (on another CPU), and the answers are collected before
 * anything that depends on them: a page table query that meets one of
 * these pages, any other request, the end of the batch (wake_blocked).
 * Until then the run stays frozen, so its content is what was verified,
 * whichever mapping a read finds. (Holding the remaps back to send them
 * with the batch's wake in one message saved agent wake-ups, but left a
 * writer blocked on a frozen page only for as long as the scanner's own
 * work took: daemon_faults could no longer catch one at a daemon kill.) */
static int peer_remap(struct sp_mem *m, uintptr_t addr, size_t n, uint64_t pg, int joins)
{
	struct sd_peer *p = P(m);
	struct sp_remap_msg r = {.addr = addr, .npages = n, .pg = pg, .joins = joins};

	pm_changed(p, addr, n);
	return queue(p, &r) ? -ESRCH : flush_out(p);
}

static int range_call(struct sp_mem *m, uint32_t type, uintptr_t addr, size_t n)
{
	struct sp_range_msg r = {.start = addr, .len = n * PAGE};

	pm_changed(P(m), addr, n);
	return call(P(m), type, &r, sizeof(r), NULL, 0, NULL);
}

/* After the remaps (the agent does its requests in order), and waited for
 * with every answer before it: no remap stays in flight past the batch that
 * made it, so the remaps the client refused are all known when the core
 * asks for them right after (peer_failed_remaps) and their merges end
 * before any later batch can merge those pages anew. (Learnt later, a
 * refusal ended the newer merge: the core lost track of a page mapping the
 * store, left it out of the restore at unregister, and daemon_torture found
 * clients registered a few pages short after a daemon restart.) */
static void peer_wake_blocked(struct sp_mem *m)
{
	struct sp_remap_msg w = {.npages = 0};

	if (!queue(P(m), &w))
		drain(P(m), 1);
}

static int peer_zap(struct sp_mem *m, uintptr_t addr, size_t n)
{
	return range_call(m, SP_A_ZAP, addr, n);
}

static int peer_unmerge(struct sp_mem *m, uintptr_t addr, size_t n)
{
	return range_call(m, SP_A_UNMERGE, addr, n);
}

static int peer_restore(struct sp_mem *m, uintptr_t addr, size_t n)
{
	return range_call(m, SP_A_RESTORE, addr, n);
}

/* The remaps the client refused (drain), for the core to end their merges
 * at the end of the batch that made them (see memory.h). */
static size_t peer_failed_remaps(struct sp_mem *m, uintptr_t *addr, uint32_t *n, size_t max)
{
	struct sd_peer *p = P(m);
	size_t k = p->nfailed < max ? p->nfailed : max;

	for (size_t i = 0; i < k; i++) {
		addr[i] = p->failed[p->nfailed - k + i].addr;
		n[i] = (uint32_t)p->failed[p->nfailed - k + i].n;
	}
	p->nfailed -= k;
	return k;
}

static long peer_map_budget(struct sp_mem *m)
{
	return P(m)->budget;
}

static const struct sp_mem_ops peer_ops = {
	.read = peer_read,
	.read2 = peer_read2,
	.query = peer_query,
	.freeze = peer_freeze,
	.thaw = peer_thaw,
	.remap = peer_remap,
	.wake_blocked = peer_wake_blocked,
	.failed_remaps = peer_failed_remaps,
	.zap = peer_zap,
	.unmerge = peer_unmerge,
	.restore = peer_restore,
	.map_budget = peer_map_budget,
	.node = NULL,
};

int sd_peer_init(struct sd_peer *p, struct sd_domain *d, pid_t pid, int uffd, int agent_fd, uint64_t work_addr)
{
	int err;

	memset(p, 0, sizeof(*p));
	p->mem.ops = &peer_ops;
	p->dom = d;
	p->pid = pid;
	p->uffd.fd = uffd;
	p->agent_fd = agent_fd;
	p->work_addr = work_addr;
	p->budget = 1000; /* until the first answer says */
	p->pm.fd = -1;
	err = sp_pagemap_open(&p->pm, pid);
	if (err) {
		p->uffd.fd = -1;
		p->agent_fd = -1;
		return err;
	}
	return 0;
}

void sd_peer_destroy(struct sd_peer *p)
{
	sp_uffd_close(&p->uffd);
	sp_pagemap_close(&p->pm);
	free(p->pmw);
	p->pmw = NULL;
	p->pmw_n = 0;
	if (p->agent_fd >= 0)
		close(p->agent_fd);
	p->agent_fd = -1;
}

void sd_peer_events(struct sd_peer *p)
{
	static __thread uint64_t addrs[(SP_MSG_MAX - 64) / sizeof(uint64_t)];
	int work = 0;
	size_t got = 0;

	drain(p, 0); /* the answers there are; the rest is waited for when needed */
	/* remaps the client could not do: plain memory, merges end */
	for (size_t i = 0; i < p->nfailed; i++)
		sp_core_remap_undone(&p->dom->core, p->space, p->failed[i].addr, p->failed[i].n);
	p->nfailed = 0;
	/* A client whose last answer left it no mappings gets no remaps, hence
	 * sends no answers, and the budget it counts again when it answers
	 * (from its /proc/self/maps, mem/budget.c) would never reach us: the
	 * domain would merge nothing but zero pages from then on. Ask it now
	 * and then, with an empty wake: the cheapest request it answers. */
	if (!p->dead && p->budget <= 0 && sp_mono_ns() - p->budget_asked_ns >= BUDGET_ASK_NS) {
		p->budget_asked_ns = sp_mono_ns();
		peer_wake_blocked(&p->mem);
	}
	if (p->dead || !p->work_addr ||
	    sp_vm_read_bytes(p->pid, (uintptr_t)p->work_addr, &work, sizeof(work)) != sizeof(work) || !work)
		return;
	p->pmw_n = 0; /* pages it dropped: read the page tables again */
	if (call(p, SP_A_EVENTS, NULL, 0, addrs, sizeof(addrs), &got))
		return;
	for (size_t i = 0; i < got / sizeof(addrs[0]); i++)
		sp_core_pages_anon(&p->dom->core, p->space, (uintptr_t)addrs[i], 1);
}

void sd_peer_flush(struct sd_peer *p)
{
	drain(p, 1);
	for (size_t i = 0; i < p->nfailed; i++)
		sp_core_remap_undone(&p->dom->core, p->space, p->failed[i].addr, p->failed[i].n);
	p->nfailed = 0;
}
