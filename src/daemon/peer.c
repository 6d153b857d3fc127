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
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "mem/vmread.h"
#include "util/clock.h"

#define PAGE		 4096ul
#define AGENT_TIMEOUT_MS 10000

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

/* Remaps are sent without waiting (see peer_remap): collects their answers.
 * A remap the client could not do leaves its run as it was (plain memory,
 * still frozen): thawed here, and its merge ended before the next batch
 * (sd_peer_events). */
static void drain(struct sd_peer *p)
{
	uint64_t t0 = sp_mono_ns();

	while (p->npending && !p->dead) {
		struct sd_pending q = p->pending[p->pending_head];
		char buf[sizeof(struct sp_msg) + sizeof(struct sp_reply)];
		const struct sp_msg *h = (const void *)buf;
		struct sp_reply r;
		long n = sp_wire_recv(p->agent_fd, buf, sizeof(buf), NULL, NULL, AGENT_TIMEOUT_MS);

		if (n < (long)sizeof(r) || h->type != SP_M_REPLY) {
			give_up(p, n < 0 ? (int)n : -EPROTO);
			break;
		}
		memcpy(&r, buf + sizeof(*h), sizeof(r));
		p->budget = r.budget;
		p->pending_head = (p->pending_head + 1) % SD_PIPELINE;
		p->npending--;
		if (r.err) {
			sp_uffd_protect(&p->uffd, q.addr, q.n * PAGE, 0);
			if (p->nfailed < SD_PIPELINE)
				p->failed[p->nfailed++] = q;
			p->remap_failures++;
		}
	}
	p->rpc_ns += sp_mono_ns() - t0;
}

static int call(struct sd_peer *p, uint32_t type, const void *body, size_t len, void *out, size_t outlen, size_t *got)
{
	uint64_t t0;
	int64_t budget = p->budget;
	int err;

	drain(p);
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

static int peer_query(struct sp_mem *m, uintptr_t addr, size_t n, uint8_t *flags)
{
	drain(P(m)); /* the page tables as they are after every remap sent */
	return P(m)->dead ? -ESRCH : sp_pagemap_query(&P(m)->pm, addr, n, flags);
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

/* Sent without waiting for the answer: the client maps while the scanner
 * goes on (on another CPU), and the answers are collected before anything
 * that depends on them: a page table query, any other request, the end of
 * the batch (wake_blocked). Until then the run stays frozen, so its
 * content is what was verified, whichever mapping a read finds. */
static int peer_remap(struct sp_mem *m, uintptr_t addr, size_t n, uint64_t pg, int joins)
{
	struct sd_peer *p = P(m);
	struct sp_remap_msg r = {.addr = addr, .npages = n, .pg = pg, .joins = joins};
	int err;

	if (p->npending == SD_PIPELINE)
		drain(p);
	if (p->dead)
		return -ESRCH;
	err = sp_wire_send(p->agent_fd, SP_A_REMAP, &r, sizeof(r), NULL, 0);
	if (err)
		return give_up(p, err);
	p->pending[(p->pending_head + p->npending) % SD_PIPELINE] = (struct sd_pending){addr, n};
	p->npending++;
	p->rpcs++;
	return 0;
}

static int range_call(struct sp_mem *m, uint32_t type, uintptr_t addr, size_t n)
{
	struct sp_range_msg r = {.start = addr, .len = n * PAGE};

	return call(P(m), type, &r, sizeof(r), NULL, 0, NULL);
}

static void peer_wake_blocked(struct sp_mem *m)
{
	call(P(m), SP_A_WAKE_BLOCKED, NULL, 0, NULL, 0, NULL);
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
	if (p->agent_fd >= 0)
		close(p->agent_fd);
	p->agent_fd = -1;
}

void sd_peer_events(struct sd_peer *p)
{
	static __thread uint64_t addrs[(SP_MSG_MAX - 64) / sizeof(uint64_t)];
	int work = 0;
	struct iovec mine = {.iov_base = &work, .iov_len = sizeof(work)};
	struct iovec theirs = {.iov_base = (void *)(uintptr_t)p->work_addr, .iov_len = sizeof(work)};
	size_t got = 0;

	drain(p);
	/* remaps the client could not do: plain memory, merges end */
	for (size_t i = 0; i < p->nfailed; i++)
		sp_core_pages_anon(&p->dom->core, p->space, p->failed[i].addr, p->failed[i].n);
	p->nfailed = 0;
	if (p->dead || !p->work_addr || process_vm_readv(p->pid, &mine, 1, &theirs, 1, 0) != sizeof(work) || !work)
		return;
	if (call(p, SP_A_EVENTS, NULL, 0, addrs, sizeof(addrs), &got))
		return;
	for (size_t i = 0; i < got / sizeof(addrs[0]); i++)
		sp_core_pages_anon(&p->dom->core, p->space, (uintptr_t)addrs[i], 1);
}
