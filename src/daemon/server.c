/* SPDX-License-Identifier: MIT */
/*
 * server.c - samepaged's control socket.
 *
 * One thread runs an epoll loop over the listening socket, every
 * connection, every client's pidfd and a signalfd. A connection is one of:
 *
 *   a client     HELLO (placed in a domain by the configuration, gets the
 *                domain's store read-only and, when it is not root, a
 *                /dev/userfaultfd descriptor), ATTACH (hands over its
 *                userfaultfd and its agent socket: an address space of the
 *                domain's core from now on), then REGISTER, UNREGISTER,
 *                REGION_STATS, STATS, GET, SET, FORK.
 *   the command  STATUS, SET (samepage status/set --daemon), no HELLO.
 *
 * Who a peer is comes from the kernel (SO_PEERCRED, SO_PEERGROUPS,
 * /proc/PID/cgroup), never from the message. A malformed, oversized or
 * out-of-order message ends that connection only. A client is gone when
 * its pidfd says it exited or its connection closes: its address space
 * leaves the core (dropped as it is when the process is dead; restored to
 * plain memory through its agent first when it still lives, since its store
 * mappings must not lose their store pages).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "daemon/server.h"
#include "samepage.h"

#define MAX_CONNS	     4096
#define MAX_REGIONS_PER_PEER 65536

enum ev_kind { EV_LISTEN, EV_SIGNAL, EV_CONN, EV_PIDFD };

struct conn {
	enum ev_kind kind; /* EV_CONN: first, so an epoll pointer tells */
	struct {
		enum ev_kind kind; /* EV_PIDFD */
		struct conn *c;
	} pidev;
	int fd, pidfd;
	struct sd_who who;
	int hello;
	struct sd_domain *dom;
	struct sd_peer *peer;
	struct conn *next, **prevp;
};

struct server {
	struct sd_config *cfg;
	int lfd, epfd, sigfd;
	enum ev_kind lkind, skind;
	struct sd_domain *doms[SD_MAX_DOMAINS * 4 + 1024];
	int ndoms;
	struct conn *conns;
	int nconns;
	struct sp_knobs defaults; /* knobs set daemon-wide: for domains made later */
	uint64_t defaults_set;
	int verbose;
	int reserve;	    /* a descriptor given up when out of them (accept_conn) */
	int paused;	    /* the listening socket is out of epoll until one closes */
	uint64_t nofile;    /* connections refused for want of descriptors */
	time_t nofile_said; /* when that was last logged */
};

static struct server S;

#define LOG(...) fprintf(stderr, "samepaged: " __VA_ARGS__)

/* ---- who a peer is ------------------------------------------------------ */

static int peer_who(int fd, struct sd_who *w)
{
	struct ucred cr;
	socklen_t l = sizeof(cr);
	gid_t g[64];
	char path[64], line[600];
	FILE *f;

	memset(w, 0, sizeof(*w));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l))
		return -errno;
	w->pid = cr.pid;
	w->uid = cr.uid;
	w->gid = cr.gid;
	l = sizeof(g);
	if (!getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &l)) {
		w->ngroups = (int)(l / sizeof(gid_t));
		memcpy(w->groups, g, l);
	}
	/* A client whose cgroup cannot be read is refused, not placed as if
	 * it had none: a cgroup rule that should take it would be skipped */
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)cr.pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = 0;
			if (strlen(line + 3) < sizeof(w->cgroup)) /* else: matches no rule */
				memcpy(w->cgroup, line + 3, strlen(line + 3) + 1);
		}
	fclose(f);
	return 0;
}

static int is_admin(const struct sd_who *w)
{
	if (w->uid == 0)
		return 1;
	if (S.cfg->admin_gid == (gid_t)-1)
		return 0;
	if (w->gid == S.cfg->admin_gid)
		return 1;
	for (int i = 0; i < w->ngroups; i++)
		if (w->groups[i] == S.cfg->admin_gid)
			return 1;
	return 0;
}

/* ---- domains ------------------------------------------------------------ */

static struct sd_domain *find_domain(const char *name)
{
	for (int i = 0; i < S.ndoms; i++)
		if (!strcmp(S.doms[i]->name, name))
			return S.doms[i];
	return NULL;
}

static int get_domain(const char *name, int conf, struct sd_domain **out)
{
	struct sd_domain *d = find_domain(name);
	struct sd_domain_conf pu;
	int err;

	if (d) {
		*out = d;
		return 0;
	}
	if (S.ndoms >= (int)(sizeof(S.doms) / sizeof(S.doms[0])))
		return -EAGAIN;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	if (conf < 0) {
		memset(&pu, 0, sizeof(pu));
		pu.max_bytes = S.cfg->per_user_max_bytes;
		pu.max_clients = S.cfg->per_user_max_clients;
	}
	err = sd_domain_init(d, name, conf >= 0 ? &S.cfg->domains[conf] : &pu);
	if (err) {
		free(d);
		return err;
	}
	/* knobs the operator set for every domain, then the file's own */
	for (size_t i = 0; i < sp_knob_count; i++)
		if (S.defaults_set >> i & 1 && !(conf >= 0 && S.cfg->domains[conf].knob_set >> i & 1))
			*sp_knob_ptr(&d->core.knobs, &sp_knob_table[i]) = *sp_knob_ptr(&S.defaults, &sp_knob_table[i]);
	d->conf = conf;
	S.doms[S.ndoms++] = d;
	LOG("domain %s created\n", name);
	*out = d;
	return 0;
}

static uint64_t space_bytes(struct sd_domain *d, uint32_t space)
{
	uint64_t pages = 0;

	for (uint32_t r = 0; r < d->core.rmap.nregions; r++)
		if (d->core.rmap.regions[r].space == space)
			pages += d->core.rmap.regions[r].npages;
	return pages * SP_PAGE_SIZE;
}

/* Regions of an address space in the core now (not registrations ever
 * made: a client that registers and unregisters in a loop must not run
 * out of them). */
static uint32_t space_regions(struct sd_domain *d, uint32_t space)
{
	uint32_t n = 0;

	for (uint32_t r = 0; r < d->core.rmap.nregions; r++)
		n += d->core.rmap.regions[r].space == space;
	return n;
}

/* ---- connections -------------------------------------------------------- */

static void detach(struct conn *c)
{
	struct sd_domain *d = c->dom;

	if (!d)
		return;
	sd_domain_lock(d);
	if (c->peer) {
		struct sd_peer *p = c->peer;

		/* The agent's socket closes only with the process's files
		 * (exit, or exec, which also ends the address space), so a
		 * closed agent means no mapping of this address space is left.
		 * A live one gets plain memory back before its store pages can
		 * be freed; one that does not answer keeps every store page. */
		for (uint32_t r = 0; r < d->core.rmap.nregions && !p->dead;) {
			const struct sp_region *g = &d->core.rmap.regions[r];

			if (g->space != p->space) {
				r++;
				continue;
			}
			if (sp_core_remove_range(&d->core, p->space, g->start, g->npages))
				break;
			r = 0;
		}
		if (p->dead != SD_PEER_GONE && space_bytes(d, p->space))
			sp_core_pin_for_fork(&d->core);
		sp_core_drop_space(&d->core, p->space);
		if (p->dead == SD_PEER_STUCK)
			sd_domain_unstuck(d, c->pidfd >= 0 && !syscall(SYS_pidfd_send_signal, c->pidfd, 0, NULL, 0));
		d->registered_bytes -= p->registered_bytes;
		sd_peer_destroy(p);
		free(p);
		c->peer = NULL;
	}
	d->nclients--;
	pthread_mutex_unlock(&d->lock);
	c->dom = NULL;
}

/* ---- out of descriptors ------------------------------------------------- */

/* When the process has no descriptor left (EMFILE, or ENFILE for the whole
 * system), accept4 fails and leaves the connection waiting: the listening
 * socket stays readable and epoll would wake the server in a loop. So one
 * descriptor is kept in reserve: it is given up to accept the connection
 * and close it at once (the client sees the daemon hang up and tries again
 * later), then taken back. If another thread took it meanwhile, the
 * listening socket leaves epoll until a connection closes. */
static void take_reserve(void)
{
	if (S.reserve < 0)
		S.reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void resume_listening(void)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &S.lkind};

	take_reserve();
	if (S.paused && S.reserve >= 0 && !epoll_ctl(S.epfd, EPOLL_CTL_ADD, S.lfd, &ev))
		S.paused = 0;
}

/* err: EMFILE or ENFILE; waiting: accept4 failed (a connection waits) */
static void out_of_descriptors(int err, int waiting)
{
	time_t now = time(NULL);
	int fd;

	if (waiting && S.reserve >= 0) {
		close(S.reserve);
		S.reserve = -1;
		fd = accept4(S.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			close(fd);
		take_reserve();
	}
	if (waiting && S.reserve < 0 && !S.paused && !epoll_ctl(S.epfd, EPOLL_CTL_DEL, S.lfd, NULL))
		S.paused = 1;
	S.nofile++;
	if (now - S.nofile_said >= 10) {
		S.nofile_said = now;
		LOG("out of file descriptors (%s) with %d connections: new connections are closed at once "
		    "(%" PRIu64 " so far); raise the limit (LimitNOFILE=)\n",
		    strerror(err), S.nconns, S.nofile);
	}
}

static void close_conn(struct conn *c, const char *why)
{
	if (c->hello && why)
		LOG("client pid %d uid %u (%s): %s\n", (int)c->who.pid, (unsigned)c->who.uid,
		    c->dom ? c->dom->name : "-", why);
	detach(c);
	if (c->pidfd >= 0)
		close(c->pidfd);
	close(c->fd);
	*c->prevp = c->next;
	if (c->next)
		c->next->prevp = c->prevp;
	S.nconns--;
	free(c);
	resume_listening();
}

static int reply(struct conn *c, int err, const void *body, size_t len, const int *fds, int nfds)
{
	return sp_wire_reply(c->fd, err, 0, body, len, fds, nfds);
}

static int on_hello(struct conn *c, const struct sp_hello *h)
{
	struct sp_hello_ok ok = {.version = SP_WIRE_VERSION};
	char why[256] = "", label[SP_NAME_MAX];
	int conf, err, fds[2], nfds = 1;

	if (h->version != SP_WIRE_VERSION)
		return reply(c, -EPROTONOSUPPORT, "protocol version mismatch", 26, NULL, 0);
	memcpy(label, h->label, sizeof(label));
	label[sizeof(label) - 1] = 0;
	snprintf(c->who.label, sizeof(c->who.label), "%s", label);
	err = sd_config_place(S.cfg, &c->who, ok.domain, sizeof(ok.domain), &conf, why, sizeof(why));
	if (!err)
		err = get_domain(ok.domain, conf, &c->dom);
	if (!err) {
		sd_domain_lock(c->dom);
		if (c->dom->max_clients && c->dom->nclients >= c->dom->max_clients) {
			snprintf(why, sizeof(why), "domain %s has its maximum of %u clients", c->dom->name,
				 c->dom->max_clients);
			err = -EUSERS;
		} else {
			c->dom->nclients++;
		}
		pthread_mutex_unlock(&c->dom->lock);
		if (err)
			c->dom = NULL;
	}
	if (err) {
		LOG("client pid %d uid %u refused: %s\n", (int)c->who.pid, (unsigned)c->who.uid, why);
		return reply(c, err, why, strlen(why) + 1, NULL, 0);
	}
	c->hello = 1;
	fds[0] = c->dom->store_ro;
	if (c->who.uid != 0) {
		fds[1] = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (fds[1] >= 0) {
			ok.flags |= SP_HELLO_DEVUFFD;
			nfds = 2;
		}
	}
	err = reply(c, 0, &ok, sizeof(ok), fds, nfds);
	if (nfds == 2)
		close(fds[1]);
	if (S.verbose)
		LOG("client pid %d uid %u joined domain %s\n", (int)c->who.pid, (unsigned)c->who.uid, c->dom->name);
	return err;
}

static int is_uffd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return 0;
	target[n] = 0;
	return !strcmp(target, "anon_inode:[userfaultfd]");
}

static int on_attach(struct conn *c, const struct sp_attach *a, int *fds, int nfds)
{
	struct sd_domain *d = c->dom;
	struct sd_peer *p;
	struct stat st;
	int err;

	if (!c->hello || c->peer || nfds != 2 || !is_uffd(fds[0]) || fstat(fds[1], &st) || !S_ISSOCK(st.st_mode))
		return -EPROTO;
	p = calloc(1, sizeof(*p));
	if (!p)
		return reply(c, -ENOMEM, NULL, 0, NULL, 0);
	err = sd_peer_init(p, d, c->who.pid, fds[0], fds[1], a->work_addr);
	if (err) {
		free(p);
		close(fds[0]);
		close(fds[1]);
		fds[0] = fds[1] = -1; /* (not closed again by on_message) */
		return reply(c, err, NULL, 0, NULL, 0);
	}
	fds[0] = fds[1] = -1;
	sd_domain_lock(d);
	err = sp_core_add_space(&d->core, &p->mem);
	if (err >= 0) {
		p->space = (uint32_t)err;
		c->peer = p;
		err = sd_domain_start(d);
	}
	pthread_mutex_unlock(&d->lock);
	if (err < 0 && !c->peer) {
		sd_peer_destroy(p);
		free(p);
	}
	return reply(c, err < 0 ? err : 0, NULL, 0, NULL, 0);
}

static int range_ok(const struct sp_range_msg *r)
{
	return !(r->start & (SP_PAGE_SIZE - 1)) && !(r->len & (SP_PAGE_SIZE - 1)) && r->len &&
	       r->start + r->len > r->start && r->start + r->len <= (1ull << 57);
}

static int on_register(struct conn *c, const struct sp_range_msg *r, int add)
{
	struct sd_domain *d = c->dom;
	struct sd_peer *p = c->peer;
	uint64_t before, after;
	int err;

	if (!p)
		return -EPROTO;
	if (!range_ok(r))
		return reply(c, -EINVAL, NULL, 0, NULL, 0);
	sd_domain_lock(d);
	before = space_bytes(d, p->space);
	if (add) {
		if (d->max_bytes && d->registered_bytes + r->len > d->max_bytes)
			err = -EDQUOT; /* (an overlap with what is registered is counted twice) */
		else if (space_regions(d, p->space) >= MAX_REGIONS_PER_PEER)
			err = -ENOMEM;
		else
			err = sp_core_add_range(&d->core, p->space, (uintptr_t)r->start, r->len / SP_PAGE_SIZE);
	} else {
		err = sp_core_remove_range(&d->core, p->space, (uintptr_t)r->start, r->len / SP_PAGE_SIZE);
	}
	after = space_bytes(d, p->space);
	d->registered_bytes += after - before; /* (wraps right when it shrinks) */
	p->registered_bytes += after - before;
	sd_domain_kick(d);
	pthread_mutex_unlock(&d->lock);
	return reply(c, err, NULL, 0, NULL, 0);
}

static int on_region_stats(struct conn *c, const struct sp_range_msg *r)
{
	struct samepage_region_stats st;

	if (!c->peer)
		return -EPROTO;
	if (r->start & (SP_PAGE_SIZE - 1) || r->start + r->len < r->start)
		return reply(c, -EINVAL, NULL, 0, NULL, 0);
	sd_domain_lock(c->dom);
	sp_core_range_stats(&c->dom->core, c->peer->space, (uintptr_t)r->start, r->len / SP_PAGE_SIZE, &st);
	pthread_mutex_unlock(&c->dom->lock);
	return reply(c, 0, &st, sizeof(st), NULL, 0);
}

static void domain_stats(struct sd_domain *d, struct samepage_stats *st)
{
	sp_core_stats(&d->core, st);
	st->scan_cpu_ns = d->scan_cpu_ns;
}

static int on_stats(struct conn *c)
{
	struct samepage_stats st;

	if (!c->dom)
		return -EPROTO;
	sd_domain_lock(c->dom);
	domain_stats(c->dom, &st);
	pthread_mutex_unlock(&c->dom->lock);
	return reply(c, 0, &st, sizeof(st), NULL, 0);
}

static void knob_text(struct sd_domain *d, const char *name, char *out, size_t len, int *err)
{
	const struct sp_knob *k = sp_knob_find(name);
	struct samepage_stats st;

	*err = 0;
	if (!k || !(k->flags & SP_KF_ENGINE)) {
		*err = -ENOENT;
		return;
	}
	if (k->type != SP_KNOB_COUNTER) {
		sp_knob_format(k, *sp_knob_ptr(&d->core.knobs, k), out, len);
		return;
	}
	domain_stats(d, &st);
	if (k->flags & SP_KF_SIGNED)
		snprintf(out, len, "%" PRId64, *(const int64_t *)((const char *)&st + k->offset));
	else
		snprintf(out, len, "%" PRIu64, *(const uint64_t *)((const char *)&st + k->offset));
}

static int on_get(struct conn *c, struct sp_knob_msg *m)
{
	char out[128] = "";
	int err;

	if (!c->dom)
		return -EPROTO;
	sd_domain_lock(c->dom);
	knob_text(c->dom, m->name, out, sizeof(out), &err);
	pthread_mutex_unlock(&c->dom->lock);
	return reply(c, err, out, strlen(out) + 1, NULL, 0);
}

static int set_one(struct sd_domain *d, const char *name, const char *value)
{
	int err;

	sd_domain_lock(d);
	err = sd_domain_set(d, name, value);
	pthread_mutex_unlock(&d->lock);
	return err;
}

static int on_set(struct conn *c, struct sp_knob_msg *m)
{
	const struct sp_knob *k;
	uint32_t v;
	int err = 0, any = 0;

	if (!is_admin(&c->who))
		return reply(c, -EACCES, "only root or the admin group may change knobs", 46, NULL, 0);
	k = sp_knob_find(m->name);
	if (!k || !(k->flags & SP_KF_ENGINE))
		return reply(c, -ENOENT, NULL, 0, NULL, 0);
	err = sp_knob_parse(k, m->value, &v);
	if (err)
		return reply(c, err, NULL, 0, NULL, 0);
	if (c->hello) /* a client: its own domain */
		return reply(c, set_one(c->dom, m->name, m->value), NULL, 0, NULL, 0);
	for (int i = 0; i < S.ndoms; i++) {
		if (m->domain[0] && strcmp(m->domain, S.doms[i]->name))
			continue;
		any = 1;
		err = set_one(S.doms[i], m->name, m->value);
		if (err)
			break;
	}
	if (!m->domain[0] && !err && k->type != SP_KNOB_COUNTER && !(k->effect == SP_EFFECT_UNMERGE && v == 2)) {
		*sp_knob_ptr(&S.defaults, k) = v; /* and for domains made later */
		S.defaults_set |= 1ull << (k - sp_knob_table);
		any = 1;
	}
	if (!any)
		err = -ENOENT; /* no such domain */
	return reply(c, err, NULL, 0, NULL, 0);
}

/* One page of STATUS: appends block (a blank line and its text) if it fits
 * with room left for the "more" line; 0 when it did not. */
static int put_block(char *buf, size_t cap, size_t *used, const char *block, size_t n)
{
	if (*used + n + 1 + 32 > cap)
		return 0;
	buf[(*used)++] = '\n';
	memcpy(buf + *used, block, n);
	*used += n;
	return 1;
}

/* STATUS: the daemon's line, then one block per domain and per client the
 * asker may see. A reply holds what fits in one message; when blocks are
 * left, it ends with a block "more N" and the asker sends STATUS again
 * with skip N (sp_wire_status does). */
static int on_status(struct conn *c, uint32_t skip)
{
	static char buf[SP_MSG_MAX - 64], block[16384];
	size_t used = 0, n;
	uint32_t index = 0;
	int full = 0, len;

	/* Another tenant's counters are a side channel too (merges can be
	 * timed through pages_sharing): only root and the admin group see
	 * every domain; others their own domain and their own processes. */
	int admin = is_admin(&c->who), conf;
	char mine[SP_NAME_MAX] = "", why[128];

	if (!admin && sd_config_place(S.cfg, &c->who, mine, sizeof(mine), &conf, why, sizeof(why)))
		mine[0] = 0;
	len = snprintf(buf, sizeof(buf), "daemon pid %d domains %d connections %d\n", (int)getpid(), S.ndoms, S.nconns);
	used = len > 0 ? (size_t)len : 0;
	for (int i = 0; i < S.ndoms && !full; i++) {
		struct sd_domain *d = S.doms[i];

		if (!admin && strcmp(d->name, mine))
			continue;
		if (index++ < skip)
			continue;
		sd_domain_lock(d);
		len = snprintf(block, sizeof(block), "domain %s\nclients %u\nregistered_bytes %" PRIu64 "\n", d->name,
			       d->nclients, d->registered_bytes);
		n = len > 0 ? (size_t)len : 0;
		n += sd_domain_status(d, block + n, sizeof(block) - n);
		pthread_mutex_unlock(&d->lock);
		full = !put_block(buf, sizeof(buf), &used, block, n);
	}
	for (struct conn *k = S.conns; k && !full; k = k->next) {
		struct samepage_region_stats st;
		uint64_t calls, ns;

		if (!k->peer || (!admin && k->who.uid != c->who.uid))
			continue;
		if (index++ < skip)
			continue;
		sd_domain_lock(k->dom);
		sp_core_range_stats(&k->dom->core, k->peer->space, 0, 1ull << 45, &st);
		calls = k->peer->rpcs;
		ns = k->peer->rpc_ns;
		pthread_mutex_unlock(&k->dom->lock);
		len = snprintf(block, sizeof(block),
			       "client %d\nuid %u\ndomain %s\nksm_rmap_items %" PRIu64 "\nksm_merging_pages %" PRIu64
			       "\nksm_zero_pages %" PRIu64 "\nksm_process_profit %" PRId64 "\nregistered_pages %" PRIu64
			       "\nagent_calls %" PRIu64 "\nagent_usecs %" PRIu64 "\n",
			       (int)k->who.pid, (unsigned)k->who.uid, k->dom->name, st.rmap_items, st.merging_pages,
			       st.zero_pages, st.profit, st.registered_pages, calls, ns / 1000);
		full = !put_block(buf, sizeof(buf), &used, block, len > 0 ? (size_t)len : 0);
	}
	if (full) { /* the block numbered index - 1 did not fit */
		len = snprintf(buf + used, sizeof(buf) - used, "\nmore %u\n", index - 1);
		used += len > 0 ? (size_t)len : 0;
	}
	return reply(c, 0, buf, used, NULL, 0);
}

static int on_fork(struct conn *c)
{
	if (!c->dom)
		return -EPROTO;
	sd_domain_lock(c->dom);
	sp_core_pin_for_fork(&c->dom->core);
	pthread_mutex_unlock(&c->dom->lock);
	return reply(c, 0, NULL, 0, NULL, 0);
}

/* One message; -EPROTO (or a transport error) ends the connection. */
static int on_message(struct conn *c)
{
	static char buf[SP_MSG_MAX];
	const struct sp_msg *h = (const void *)buf;
	const void *body = buf + sizeof(*h);
	int fds[4], nfds = 0, err;
	long n = sp_wire_recv(c->fd, buf, sizeof(buf), fds, &nfds, 0);

	if (n < 0)
		return (int)n;
#define NEED(T) ((size_t)n == sizeof(T))
	switch (h->type) {
	case SP_M_HELLO:
		err = !c->hello && !c->dom && NEED(struct sp_hello) ? on_hello(c, body) : -EPROTO;
		break;
	case SP_M_ATTACH:
		err = NEED(struct sp_attach) ? on_attach(c, body, fds, nfds) : -EPROTO;
		break;
	case SP_M_REGISTER:
	case SP_M_UNREGISTER:
		err = NEED(struct sp_range_msg) ? on_register(c, body, h->type == SP_M_REGISTER) : -EPROTO;
		break;
	case SP_M_REGION_STATS:
		err = NEED(struct sp_range_msg) ? on_region_stats(c, body) : -EPROTO;
		break;
	case SP_M_STATS:
		err = n == 0 ? on_stats(c) : -EPROTO;
		break;
	case SP_M_GET:
	case SP_M_SET:
		if (!NEED(struct sp_knob_msg)) {
			err = -EPROTO;
			break;
		}
		{
			struct sp_knob_msg m;

			memcpy(&m, body, sizeof(m));
			m.name[sizeof(m.name) - 1] = m.value[sizeof(m.value) - 1] = m.domain[sizeof(m.domain) - 1] = 0;
			err = h->type == SP_M_GET ? on_get(c, &m) : on_set(c, &m);
		}
		break;
	case SP_M_STATUS:
		if (n == 0) {
			err = on_status(c, 0);
		} else if (n == sizeof(struct sp_status_req)) {
			struct sp_status_req q;

			memcpy(&q, body, sizeof(q));
			err = on_status(c, q.skip);
		} else {
			err = -EPROTO;
		}
		break;
	case SP_M_FORK:
		err = n == 0 ? on_fork(c) : -EPROTO;
		break;
	default:
		err = -EPROTO;
	}
#undef NEED
	for (int i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return err;
}

static void accept_conn(void)
{
	int fd = accept4(S.lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK), err;
	struct epoll_event ev = {.events = EPOLLIN};
	struct conn *c;

	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE)
			out_of_descriptors(errno, 1);
		return;
	}
	if (S.nconns >= MAX_CONNS) {
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	err = peer_who(fd, &c->who);
	c->kind = EV_CONN;
	c->fd = fd;
	c->pidfd = err ? -1 : (int)syscall(SYS_pidfd_open, c->who.pid, 0);
	if (!err && c->pidfd < 0)
		err = -errno;
	if (err) {
		/* gone already (its pid names nobody, or soon another
		 * process, and nothing would tell us), or we are out of
		 * descriptors */
		if (err == -EMFILE || err == -ENFILE)
			out_of_descriptors(-err, 0);
		free(c);
		close(fd);
		return;
	}
	c->next = S.conns;
	c->prevp = &S.conns;
	if (S.conns)
		S.conns->prevp = &c->next;
	S.conns = c;
	S.nconns++;
	ev.data.ptr = c;
	epoll_ctl(S.epfd, EPOLL_CTL_ADD, fd, &ev);
	if (c->pidfd >= 0) {
		c->pidev.kind = EV_PIDFD;
		c->pidev.c = c;
		ev.data.ptr = &c->pidev;
		epoll_ctl(S.epfd, EPOLL_CTL_ADD, c->pidfd, &ev);
	}
}

static int listen_on(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char dir[sizeof(a.sun_path)], *slash;
	int fd;

	if (strlen(path) >= sizeof(a.sun_path)) {
		LOG("socket path too long: %s\n", path);
		return -ENAMETOOLONG;
	}
	memcpy(dir, path, strlen(path) + 1); /* (fits: checked above) */
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		if (mkdir(dir, 0755) && errno != EEXIST) {
			LOG("cannot create %s: %s\n", dir, strerror(errno));
			return -errno;
		}
	}
	memcpy(a.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	unlink(path); /* a stale socket of a daemon that died */
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || chmod(path, 0666) || listen(fd, 128)) {
		int err = -errno;

		LOG("cannot listen on %s: %s\n", path, strerror(errno));
		close(fd);
		return err;
	}
	return fd;
}

int sd_server_run(struct sd_config *cfg, int listen_fd, int verbose)
{
	struct epoll_event ev = {.events = EPOLLIN};
	sigset_t sigs;
	int err = 0;

	memset(&S, 0, sizeof(S));
	S.reserve = -1;
	take_reserve();
	S.cfg = cfg;
	S.verbose = verbose;
	S.lfd = listen_fd >= 0 ? listen_fd : listen_on(cfg->socket);
	if (S.lfd < 0)
		return S.lfd;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	S.sigfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	S.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (S.sigfd < 0 || S.epfd < 0)
		return -errno;
	S.lkind = EV_LISTEN;
	S.skind = EV_SIGNAL;
	ev.data.ptr = &S.lkind;
	epoll_ctl(S.epfd, EPOLL_CTL_ADD, S.lfd, &ev);
	ev.data.ptr = &S.skind;
	epoll_ctl(S.epfd, EPOLL_CTL_ADD, S.sigfd, &ev);
	/* the configured domains exist from the start (status shows them) */
	for (int i = 0; i < cfg->ndomains; i++) {
		struct sd_domain *d;

		err = get_domain(cfg->domains[i].name, i, &d);
		if (err) {
			LOG("cannot create domain %s: %s\n", cfg->domains[i].name, strerror(-err));
			return err;
		}
	}
	LOG("listening on %s\n", cfg->socket);
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(S.epfd, evs, 64, -1);

		for (int i = 0; i < n; i++) {
			enum ev_kind *k = evs[i].data.ptr;

			if (*k == EV_LISTEN) {
				accept_conn();
			} else if (*k == EV_SIGNAL) {
				struct signalfd_siginfo si;

				if (read(S.sigfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo != SIGHUP) {
					LOG("%s: stopping\n", strsignal((int)si.ssi_signo));
					goto out;
				}
			} else if (*k == EV_PIDFD) {
				struct conn *c = ((struct {
							 enum ev_kind kind;
							 struct conn *c;
						 } *)k)
							 ->c;

				close_conn(c, "exited");
				/* later events of this round may name it: stop here */
				break;
			} else {
				struct conn *c = (struct conn *)k;
				int r = on_message(c);

				if (r) {
					close_conn(c, r == -ECONNRESET ? "disconnected"
						      : r == -EMSGSIZE ? "message too long"
								       : "protocol error");
					break;
				}
			}
		}
	}
out:
	while (S.conns)
		close_conn(S.conns, NULL);
	for (int i = 0; i < S.ndoms; i++) {
		sd_domain_destroy(S.doms[i]);
		free(S.doms[i]);
	}
	if (listen_fd < 0)
		unlink(cfg->socket);
	close(S.lfd);
	close(S.epfd);
	close(S.sigfd);
	return 0;
}
