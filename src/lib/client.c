/* SPDX-License-Identifier: MIT */
/*
 * client.c - libsamepage in client mode: samepaged merges our memory with
 * the other processes of our merge domain.
 *
 * Set-up (sp_client_start): HELLO gives us the domain's page store
 * (read-only: our merged pages map it privately, copy-on-write, as the
 * in-process engine's do) and, when we are not root, a /dev/userfaultfd
 * descriptor to create our userfaultfd with. The local backend
 * (mem/local.c) is set up around them, so the event thread answers
 * MADV_DONTNEED on merged pages as it does in-process. ATTACH hands the
 * daemon a copy of our userfaultfd (it freezes and thaws our pages itself)
 * and one end of a socketpair, on which our agent thread serves the daemon
 * what only this process can do: map store pages over a frozen run, map
 * zeros, copy merged pages back to plain memory, wake blocked writers.
 *
 * When the daemon goes away (its socket closes: killed, restarted), the
 * agent thread unprotects everything we registered at once, so no thread
 * stays blocked on a page the daemon froze; merged pages stay mapped and
 * correct (the store file lives as long as a mapping of it). Then it
 * reconnects every half second; when the daemon is back, it copies the old
 * merged pages back to plain memory (they belong to the old store) and
 * registers everything again.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/client.h"
#include "lib/engine.h"
#include "proto/wire.h"
#include "samepage.h"
#include "util/clock.h"

#define PAGE		4096ul
#define CALL_TIMEOUT_MS 60000 /* an unregister restores: can take a while */
#define RETRY_MS	500

static int call(struct sp_client *c, uint32_t type, const void *body, size_t len, void *out, size_t outlen, size_t *got)
{
	int err;

	if (c->ctl < 0 || c->lost)
		return -ENOTCONN;
	err = sp_wire_call(c->ctl, type, body, len, NULL, 0, out, outlen, got, NULL, NULL, CALL_TIMEOUT_MS, NULL);
	if (err == -ECONNRESET || err == -EPIPE || err == -ETIMEDOUT || err == -EPROTO)
		err = -ENOTCONN; /* the agent thread notices too, and recovers */
	return err;
}

/* HELLO: the domain, its store and maybe a /dev/userfaultfd descriptor. */
static int hello(struct sp_client *c, int *store, int *devuffd, char *why, size_t whylen)
{
	struct sp_hello h = {.version = SP_WIRE_VERSION};
	struct {
		struct sp_hello_ok ok;
		char more[256];
	} r;
	int fds[4], nfds = 0, err;
	size_t got = 0;

	memset(&r, 0, sizeof(r));
	snprintf(h.label, sizeof(h.label), "%s", c->label);
	err = sp_wire_call(c->ctl, SP_M_HELLO, &h, sizeof(h), NULL, 0, &r, sizeof(r), &got, fds, &nfds, CALL_TIMEOUT_MS,
			   NULL);
	*store = *devuffd = -1;
	if (err) {
		r.more[sizeof(r.more) - 1] = 0;
		snprintf(why, whylen, "%s%s%s", strerror(-err), got ? ": " : "", got ? (char *)&r : "");
		while (nfds)
			close(fds[--nfds]);
		return err;
	}
	if (got < sizeof(r.ok) || nfds < 1) {
		snprintf(why, whylen, "malformed answer");
		while (nfds)
			close(fds[--nfds]);
		return -EPROTO;
	}
	*store = fds[0];
	if ((r.ok.flags & SP_HELLO_DEVUFFD) && nfds > 1)
		*devuffd = fds[1];
	for (int i = 1 + (*devuffd >= 0); i < nfds; i++)
		close(fds[i]);
	r.ok.domain[sizeof(r.ok.domain) - 1] = 0;
	snprintf(c->domain, sizeof(c->domain), "%s", r.ok.domain);
	return 0;
}

static int attach(struct sp_engine *e, char *why, size_t whylen)
{
	struct sp_client *c = &e->client;
	struct sp_attach a = {.work_addr = (uintptr_t)&e->local.ev.work};
	int sv[2], fds[2], err;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	fds[0] = e->local.uffd.fd;
	fds[1] = sv[1];
	err = sp_wire_call(c->ctl, SP_M_ATTACH, &a, sizeof(a), fds, 2, NULL, 0, NULL, NULL, NULL, CALL_TIMEOUT_MS,
			   NULL);
	close(sv[1]);
	if (err) {
		close(sv[0]);
		snprintf(why, whylen, "attach: %s", strerror(-err));
		return err;
	}
	c->agent = sv[0];
	return 0;
}

/* ---- the agent thread ------------------------------------------------------ */

struct anon_list {
	uint64_t *a;
	size_t n, cap;
};

static void anon_add(void *ctx, uintptr_t addr, size_t n)
{
	struct anon_list *l = ctx;

	for (size_t i = 0; i < n && l->n < l->cap; i++)
		l->a[l->n++] = addr + i * PAGE;
}

/* The in-process engine asks its core which pages of a range are in store
 * mappings; here our own mappings tell: those of the store file. */
static void filemap_runs(void *ctx, uintptr_t addr, size_t n, int (*fn)(void *, uintptr_t, size_t, uint8_t *),
			 void *fctx)
{
	struct sp_engine *e = &sp_engine;
	uintptr_t end = addr + n * PAGE;
	struct stat st;
	char line[512];
	FILE *f;

	if (fstat(e->local.store.fd, &st))
		return;
	f = fopen("/proc/self/maps", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		struct sp_maps_line v;
		uintptr_t lo, hi;

		if (sp_maps_parse(line, &v) || v.inode != (unsigned long long)st.st_ino || v.end <= addr ||
		    v.start >= end)
			continue;
		lo = v.start > addr ? v.start : addr;
		hi = v.end < end ? v.end : end;
		while (lo < hi) {
			size_t k = (hi - lo) / PAGE < 64 ? (hi - lo) / PAGE : 64;
			uint8_t done[64] = {0};

			fn(fctx, lo, k, done);
			for (size_t i = 0; i < k; i++)
				if (done[i])
					anon_add(ctx, lo + i * PAGE, 1);
			lo += k * PAGE;
		}
	}
	fclose(f);
}

static int64_t budget_now(struct sp_engine *e)
{
	struct sp_budget *bg = &e->local.budget;
	long added = bg->added;

	if (sp_budget_due(bg, sp_mono_ns()))
		sp_budget_set(bg, sp_count_mappings(), added, sp_mono_ns());
	return sp_budget_left(bg);
}

/* fork(): SP_M_FORK pins the store pages that exist, and the child maps
 * what we map when the kernel copies our address space, later: no remap
 * may map a new store page in between (the daemon would free it, unpinned,
 * under the child). The agent refuses them from before the pin until fork()
 * returns; the daemon takes that as a failed merge. */
static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;
static int forking;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void fork_parent(void)
{
	pthread_mutex_lock(&fork_lock);
	forking = 0;
	pthread_mutex_unlock(&fork_lock);
}

static void fork_handlers(void)
{
	pthread_atfork(NULL, fork_parent, NULL);
}

static int hung_up(int fd);

static int serve(struct sp_engine *e, const struct sp_msg *h, const void *body, long n)
{
	/* static, not __thread: only the agent thread serves (the buffers
	 * here and below would otherwise be static TLS in every thread of
	 * the program, 192 KiB carved from each thread's stack) */
	static uint64_t anon[(SP_MSG_MAX - 128) / sizeof(uint64_t)];
	struct sp_mem *m = &e->local.mem;
	const struct sp_range_msg *r = body;
	const struct sp_remap_msg *rm = body;
	struct anon_list al = {.a = anon, .cap = sizeof(anon) / sizeof(anon[0])};
	int err;

	switch (h->type) {
	case SP_A_ZAP:
	case SP_A_UNMERGE:
	case SP_A_RESTORE:
		if (n != sizeof(*r))
			return -EPROTO;
		err = h->type == SP_A_ZAP	? m->ops->zap(m, (uintptr_t)r->start, r->len / PAGE)
		      : h->type == SP_A_UNMERGE ? m->ops->unmerge(m, (uintptr_t)r->start, r->len / PAGE)
						: m->ops->restore(m, (uintptr_t)r->start, r->len / PAGE);
		break;
	case SP_A_BATCH: {
		/* remaps (and wakes) in order, one answer with an error for
		 * each; the daemon reads it later (not before its next page
		 * table query, request or batch end) */
		static int32_t errs[SP_MSG_MAX / sizeof(struct sp_remap_msg)];
		size_t k = (size_t)n / sizeof(*rm);

		if (n <= 0 || (size_t)n % sizeof(*rm))
			return -EPROTO;
		for (size_t i = 0; i < k; i++) {
			struct sp_remap_msg q;

			memcpy(&q, (const char *)body + i * sizeof(q), sizeof(q));
			if (!q.npages) {
				m->ops->wake_blocked(m);
				errs[i] = 0;
				continue;
			}
			/* not once the daemon is gone or gave up on us: the
			 * rest is stale, and the application may be copying
			 * those pages back by itself already
			 * (sp_client_unregister); a store page mapped after
			 * that would stay, unregistered. Checked under
			 * fork_lock, which that copy-back takes too. */
			pthread_mutex_lock(&fork_lock);
			errs[i] = forking ? -EAGAIN
				  : hung_up(e->client.agent)
					  ? -ECONNRESET
					  : m->ops->remap(m, (uintptr_t)q.addr, q.npages, q.pg, q.joins);
			pthread_mutex_unlock(&fork_lock);
		}
		return sp_wire_reply(e->client.agent, 0, budget_now(e), errs, k * sizeof(errs[0]), NULL, 0);
	}
	case SP_A_EVENTS:
		sp_local_events_process(&e->local, sp_mono_ns(), anon_add, filemap_runs, &al);
		return sp_wire_reply(e->client.agent, 0, budget_now(e), anon, al.n * sizeof(anon[0]), NULL, 0);
	default:
		return -EPROTO;
	}
	return sp_wire_reply(e->client.agent, err, budget_now(e), NULL, 0, NULL, 0);
}

/* Nothing stays frozen once the daemon is gone: unprotect all we
 * registered (a range with holes the program unmapped: page by page). */
static void thaw_all(struct sp_engine *e)
{
	struct sp_client *c = &e->client;

	for (size_t i = 0; i < c->nranges; i++) {
		uintptr_t a = c->ranges[i].start, end = a + c->ranges[i].len;

		if (!sp_uffd_protect(&e->local.uffd, a, end - a, 0))
			continue;
		for (; a < end; a += PAGE)
			sp_uffd_protect(&e->local.uffd, a, PAGE, 0);
	}
	e->local.mem.ops->wake_blocked(&e->local.mem);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* The daemon hung up the agent socket: it died, or gave up waiting for us
 * (peer.c). A request still queued there is stale: the daemon has taken
 * it back (freed its store page, thawed the pages, which may have been
 * written since), so it must not be carried out. */
static int hung_up(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};

	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* A call on the control connection made by the agent thread itself (when
 * it reconnects): the daemon may need the agent before it answers (its
 * scanner calls the agent, holding the domain, as soon as a range is
 * registered; the server then waits for the domain to answer us), so the
 * agent's requests are served while the answer is awaited. */
static int call_serving(struct sp_engine *e, uint32_t type, const void *body, size_t len)
{
	static char buf[SP_MSG_MAX]; /* the agent thread's only */
	struct sp_client *c = &e->client;
	const struct sp_msg *h = (const void *)buf;
	uint64_t deadline = sp_mono_ns() + CALL_TIMEOUT_MS * 1000000ull;
	struct sp_reply r;
	long n;

	if (sp_wire_send(c->ctl, type, body, len, NULL, 0))
		return -ENOTCONN;
	for (;;) {
		struct pollfd p[2] = {{.fd = c->ctl, .events = POLLIN}, {.fd = c->agent, .events = POLLIN}};
		uint64_t now = sp_mono_ns();

		if (now >= deadline)
			return -ENOTCONN;
		if (poll(p, 2, (int)((deadline - now) / 1000000) + 1) < 0 && errno != EINTR)
			return -ENOTCONN;
		if (p[1].revents) {
			n = sp_wire_recv(c->agent, buf, sizeof(buf), NULL, NULL, 0);
			if (n < 0 || hung_up(c->agent) || serve(e, h, buf + sizeof(*h), n))
				return -ENOTCONN;
		} else if (p[0].revents) {
			n = sp_wire_recv(c->ctl, buf, sizeof(buf), NULL, NULL, 0);
			if (n < (long)sizeof(r) || h->type != SP_M_REPLY)
				return -ENOTCONN;
			memcpy(&r, buf + sizeof(*h), sizeof(r));
			return r.err;
		}
	}
}

/* The daemon is back: plain memory again where the old store was mapped,
 * then the same HELLO and ATTACH as at the start, and every range again. */
static int reconnect(struct sp_engine *e)
{
	struct sp_client *c = &e->client;
	char why[256];
	int fd = sp_wire_connect(c->path), store, devuffd, err, attached = 0;

	if (fd < 0)
		return fd;
	sp_engine_lock();
	c->ctl = fd;
	err = hello(c, &store, &devuffd, why, sizeof(why));
	if (devuffd >= 0)
		close(devuffd); /* we have our userfaultfd */
	if (!err) {
		for (size_t i = 0; i < c->nranges; i++)
			e->local.mem.ops->restore(&e->local.mem, c->ranges[i].start, c->ranges[i].len / PAGE);
		close(e->local.store.fd);
		e->local.store.fd = store;
		err = attach(e, why, sizeof(why));
		attached = 1; /* (or maybe: the daemon may hold our userfaultfd) */
	}
	if (!err) {
		c->lost = 0;
		for (size_t i = 0; i < c->nranges && !err; i++) {
			struct sp_range_msg r = {.start = c->ranges[i].start, .len = c->ranges[i].len};

			err = call_serving(e, SP_M_REGISTER, &r, sizeof(r));
		}
	}
	if (err) {
		c->lost = 1;
		close(c->ctl);
		c->ctl = -1;
		if (c->agent >= 0)
			close(c->agent);
		c->agent = -1;
		/* The new daemon had our userfaultfd (ATTACH) and may have
		 * frozen pages of what we registered again before it went:
		 * nobody else would thaw them, and writers would wait for the
		 * next daemon. No remap of ours can follow (the agent end is
		 * closed), so thawing is safe. */
		if (attached)
			thaw_all(e);
	} else {
		fprintf(stderr, "samepage: samepaged is back at %s (domain %s): %zu ranges registered again\n", c->path,
			c->domain, c->nranges);
	}
	sp_engine_unlock();
	return err;
}

static void *agent_thread(void *arg)
{
	static char buf[SP_MSG_MAX]; /* the agent thread's only */
	struct sp_engine *e = arg;
	struct sp_client *c = &e->client;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_setname_np(pthread_self(), "samepage-agent");
	for (;;) {
		const struct sp_msg *h = (const void *)buf;
		long n = c->agent >= 0 ? sp_wire_recv(c->agent, buf, sizeof(buf), NULL, NULL, -1) : -ECONNRESET;

		if (n >= 0 && !hung_up(c->agent) && !serve(e, h, buf + sizeof(*h), n))
			continue;
		/* the daemon is gone (or spoke nonsense: the same to us) */
		__atomic_store_n(&c->lost, 1, __ATOMIC_RELEASE);
		thaw_all(e);
		fprintf(stderr, "samepage: lost samepaged at %s; merged pages stay as they are, reconnecting\n",
			c->path);
		sp_engine_lock();
		if (c->ctl >= 0)
			close(c->ctl);
		c->ctl = -1;
		if (c->agent >= 0)
			close(c->agent);
		c->agent = -1;
		sp_engine_unlock();
		while (reconnect(e))
			sleep_ms(RETRY_MS);
	}
	return NULL;
}

/* ---- what the API calls ------------------------------------------------------ */

int sp_client_start(struct sp_engine *e)
{
	struct sp_client *c = &e->client;
	char why[384] = "";
	int store = -1, devuffd = -1, err;

	c->ctl = sp_wire_connect(c->path);
	if (c->ctl < 0) {
		err = c->ctl;
		snprintf(why, sizeof(why), "cannot connect: %s", strerror(-err));
		goto fail;
	}
	err = hello(c, &store, &devuffd, why, sizeof(why));
	if (err)
		goto fail;
	err = sp_local_init_client(&e->local, store, devuffd, e->why, sizeof(e->why));
	if (devuffd >= 0)
		close(devuffd);
	if (err) {
		snprintf(why, sizeof(why), "%.300s", e->why);
		sp_local_prepare(&e->local);
		goto fail;
	}
	err = attach(e, why, sizeof(why));
	if (err)
		goto fail_local;
	err = pthread_create(&c->thread, NULL, agent_thread, e);
	if (err) {
		err = -err;
		snprintf(why, sizeof(why), "cannot start the agent thread: %s", strerror(-err));
		goto fail_local;
	}
	pthread_detach(c->thread);
	pthread_once(&fork_once, fork_handlers);
	c->thread_running = 1;
	c->attached = 1;
	return 0;
fail_local:
	sp_local_destroy(&e->local);
	sp_local_prepare(&e->local);
	if (c->agent >= 0)
		close(c->agent);
	c->agent = -1;
fail:
	fprintf(stderr, "samepage: cannot use samepaged at %s: %s\n", c->path, why);
	snprintf(e->why, sizeof(e->why), "samepaged at %.100s: %.380s", c->path, why);
	if (c->ctl >= 0)
		close(c->ctl);
	c->ctl = -1;
	return err;
}

static int keep_range(struct sp_client *c, uintptr_t start, size_t len)
{
	if (c->nranges == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		void *p = realloc(c->ranges, cap * sizeof(*c->ranges));

		if (!p)
			return -ENOMEM;
		c->ranges = p;
		c->cap = cap;
	}
	c->ranges[c->nranges++] = (struct sp_client_range){start, len};
	return 0;
}

/* Forgets [start, end) from the list, splitting what straddles it. */
static int drop_range(struct sp_client *c, uintptr_t start, uintptr_t end)
{
	for (size_t i = 0; i < c->nranges; i++) {
		uintptr_t s = c->ranges[i].start, t = s + c->ranges[i].len;

		if (t <= start || s >= end)
			continue;
		if (s < start && t > end) {
			c->ranges[i].len = start - s;
			return keep_range(c, end, t - end);
		}
		if (s < start) {
			c->ranges[i].len = start - s;
		} else if (t > end) {
			c->ranges[i].start = end;
			c->ranges[i].len = t - end;
		} else {
			c->ranges[i--] = c->ranges[--c->nranges];
		}
	}
	return 0;
}

static int add_cb(void *ctx, uintptr_t start, size_t len)
{
	struct sp_engine *e = ctx;
	struct sp_client *c = &e->client;
	struct sp_range_msg r = {.start = start, .len = len};
	int err = keep_range(c, start, len);

	if (err || c->lost)
		return err; /* registered when the daemon is back */
	err = call(c, SP_M_REGISTER, &r, sizeof(r), NULL, 0, NULL);
	if (err == -ENOTCONN)
		err = 0; /* the same */
	if (err)
		drop_range(c, start, start + len);
	return err;
}

int sp_client_register(struct sp_engine *e, uintptr_t start, size_t len)
{
	return sp_local_register(&e->local, start, len, add_cb, e);
}

int sp_client_unregister(struct sp_engine *e, uintptr_t start, size_t len)
{
	struct sp_client *c = &e->client;
	struct sp_range_msg r = {.start = start, .len = len};
	int err = call(c, SP_M_UNREGISTER, &r, sizeof(r), NULL, 0, NULL);

	if (err == -ENOTCONN) {
		/* no daemon: plain memory again by ourselves. The agent may
		 * not have seen it go yet, with a remap of these pages read
		 * and not done: hang up its end too, so that it does none
		 * from now on (serve), and wait for one under way. */
		pthread_mutex_lock(&fork_lock);
		if (c->agent >= 0)
			shutdown(c->agent, SHUT_RDWR);
		pthread_mutex_unlock(&fork_lock);
		err = e->local.mem.ops->restore(&e->local.mem, start, len / PAGE);
		if (err == -EINVAL || err == -ENOMEM)
			err = 0; /* parts never registered or unmapped: fine */
	}
	if (!err) {
		drop_range(c, start, start + len);
		sp_local_unregister(&e->local, start, len);
	}
	return err;
}

int sp_client_region_stats(struct sp_engine *e, uintptr_t start, size_t len, struct samepage_region_stats *out)
{
	struct sp_range_msg r = {.start = start, .len = len};

	memset(out, 0, sizeof(*out));
	return call(&e->client, SP_M_REGION_STATS, &r, sizeof(r), out, sizeof(*out), NULL);
}

int sp_client_stats(struct sp_engine *e, struct samepage_stats *out)
{
	memset(out, 0, sizeof(*out));
	return call(&e->client, SP_M_STATS, NULL, 0, out, sizeof(*out), NULL);
}

int sp_client_get(struct sp_engine *e, const char *name, char *buf, size_t len)
{
	struct sp_knob_msg m;
	char out[128];
	size_t got = 0;
	int err;

	memset(&m, 0, sizeof(m));
	if (strlen(name) >= sizeof(m.name))
		return -ENOENT;
	memcpy(m.name, name, strlen(name));
	err = call(&e->client, SP_M_GET, &m, sizeof(m), out, sizeof(out) - 1, &got);
	if (err)
		return err;
	out[got] = 0;
	if (strlen(out) >= len)
		return -ERANGE;
	memcpy(buf, out, strlen(out) + 1);
	return 0;
}

int sp_client_set(struct sp_engine *e, const char *name, const char *value)
{
	struct sp_knob_msg m;

	memset(&m, 0, sizeof(m));
	if (strlen(name) >= sizeof(m.name))
		return -ENOENT;
	if (strlen(value) >= sizeof(m.value))
		return -EINVAL;
	memcpy(m.name, name, strlen(name));
	memcpy(m.value, value, strlen(value));
	return call(&e->client, SP_M_SET, &m, sizeof(m), NULL, 0, NULL);
}

void sp_client_fork_prepare(struct sp_engine *e)
{
	if (!e->client.attached)
		return;
	pthread_mutex_lock(&fork_lock); /* a remap under way ends first */
	forking = 1;
	pthread_mutex_unlock(&fork_lock);
	call(&e->client, SP_M_FORK, NULL, 0, NULL, 0, NULL);
}

void sp_client_fork_child(struct sp_client *c)
{
	pthread_mutex_init(&fork_lock, NULL); /* (the agent may have held it) */
	forking = 0;
	if (c->ctl >= 0)
		close(c->ctl);
	if (c->agent >= 0)
		close(c->agent);
	free(c->ranges);
}
