/* SPDX-License-Identifier: MIT */
/*
 * daemon_isolation.c - samepaged's merge domains never share a physical
 * page, a client cannot join a domain it is not allowed in, and a client
 * cannot change the page store it maps, by any route.
 *
 * Isolation is proved with the kernel's own word: the PFNs in
 * /proc/PID/pagemap (read as root). Processes of one domain with equal
 * content map the same PFN; no PFN of one domain is mapped in a process of
 * another, although every process holds the same content. Each domain's
 * counters must be what the kernel's KSM would count for that domain alone.
 *
 * The store: a client that is not root (uid 65534) tries every way to write
 * the store descriptor it was given, or the merged pages mapping it, and
 * each must fail with the errno the kernel gives for a read-only file
 * description of a file it may not open, or only change its own private
 * copy (another process of the domain still reads the original content, and
 * the daemon counts one sharer less).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <grp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemontest.h"
#include "samepage.h"
#include "testlib.h"

#define PM_PRESENT (1ull << 63)
#define PM_FILE	   (1ull << 61)
#define PM_PFN	   ((1ull << 55) - 1)

#define NOBODY 65534u

/* What a client maps, in this order: pages equal across processes (unique
 * inside each), pages unique everywhere, pages equal inside the process
 * (one content), zero pages. */
struct layout {
	size_t nshared, nuniq, ndup, nzero;
};

static size_t np_of(const struct layout *l)
{
	return l->nshared + l->nuniq + l->ndup + l->nzero;
}

static uint32_t tag_of(const struct layout *l, int proc, size_t i)
{
	if (i < l->nshared)
		return 1000 + (uint32_t)i;
	if (i < l->nshared + l->nuniq)
		return 100000u * (uint32_t)(proc + 1) + (uint32_t)i;
	if (i < l->nshared + l->nuniq + l->ndup)
		return 555;
	return 0;
}

struct spec {
	const char *label; /* SAMEPAGE_DOMAIN, NULL: none */
	uid_t uid;	   /* 0: stays root, else drops to it (uid and gid) */
	int proc;	   /* its unique pages' tags */
	const struct layout *lay;
};

/* ---- the tests' state, so a failed test leaves nothing behind --------- */

static struct dt_daemon D;
static int d_up;
static struct dt_child kids[4];
static int nkids;

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < nkids; i++)
		if (kids[i].pid > 0) {
			kill(kids[i].pid, SIGKILL);
			dt_reap(&kids[i]);
		}
	nkids = 0;
	if (d_up)
		dt_cleanup(&D);
	d_up = 0;
	unsetenv("SAMEPAGE_DAEMON");
	return 0;
}

static void start(const char *config)
{
	dt_start(&D, config);
	d_up = 1;
	assert_int_equal(dt_set(&D, "", "pages_to_scan", "5000"), 0);
	assert_int_equal(dt_set(&D, "", "sleep_millisecs", "5"), 0);
	/* smart_scan skips a page that stays unique on 8 of every 9 scans as
	 * it ages, and a skipped page counts as volatile, not unshared (the
	 * kernel's should_skip_rmap_item takes it out of the unstable tree
	 * too): two processes' unique pages then come and go out of step, and
	 * pages_unshared never holds them all at once. Without it, every
	 * unique page is in the unstable index at the end of every scan, as
	 * the kernel counts it with smart_scan=0. */
	assert_int_equal(dt_set(&D, "", "smart_scan", "0"), 0);
	setenv("SAMEPAGE_DAEMON", D.sock, 1);
}

/* ---- pipes ---------------------------------------------------------------- */

static int read_full(int fd, void *buf, size_t len)
{
	uint64_t deadline = t_now_ms() + DT_PATIENCE_MS;
	size_t got = 0;

	while (got < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		uint64_t now = t_now_ms();
		ssize_t n;

		if (now >= deadline || poll(&p, 1, (int)(deadline - now)) != 1)
			return -1;
		n = read(fd, (char *)buf + got, len - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	return write(fd, buf, len) == (ssize_t)len ? 0 : -1;
}

/* ---- the client process ------------------------------------------------- */

static int drop_to(uid_t uid)
{
	if (setgroups(0, NULL) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid)) {
		perror("dropping privileges");
		return -1;
	}
	/* A process whose ids changed is not dumpable: its /proc/self files
	 * (pagemap, mem) then belong to root and it could not open them. A
	 * process started as this user is dumpable: be one. */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)) {
		perror("PR_SET_DUMPABLE");
		return -1;
	}
	return 0;
}

static int check_all(const struct spec *s, const char *m, size_t skip1, size_t skip2)
{
	for (size_t i = 0; i < np_of(s->lay); i++)
		if (i != skip1 && i != skip2 && !t_check(m + i * TPAGE, tag_of(s->lay, s->proc, i)))
			return 0;
	return 1;
}

/* this process's own pagemap entry of one page (PFN hidden when not root,
 * the flags are not) */
static uint64_t own_pagemap(const void *p)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (pread(fd, &e, sizeof(e), (off_t)((uintptr_t)p / TPAGE * sizeof(e))) != (ssize_t)sizeof(e))
		e = 0;
	close(fd);
	return e;
}

/* The routes to the store, tried by a client that is not root, and the
 * errno each must fail with (0: it must succeed, on a private copy). */
enum {
	R_REOPEN_RDWR,
	R_REOPEN_WRONLY,
	R_PWRITE,
	R_WRITE,
	R_MMAP_SHARED_WRITE,
	R_MPROTECT_WRITE,
	R_PUNCH_HOLE,
	R_FTRUNCATE,
	R_ADD_SEALS,
	R_FCHMOD,
	R_MADV_REMOVE,
	R_VM_WRITEV_DAEMON,
	R_DAEMON_PROC_MEM,
	R_PROC_MEM_WRITE,
	R_STORE_WRITE,
	R_N
};

static const struct {
	const char *name;
	int want;
} routes[R_N] = {
	[R_REOPEN_RDWR] = {"open(/proc/self/fd/N, O_RDWR)", EACCES},
	[R_REOPEN_WRONLY] = {"open(/proc/self/fd/N, O_WRONLY)", EACCES},
	[R_PWRITE] = {"pwrite(store fd)", EBADF},
	[R_WRITE] = {"write(store fd)", EBADF},
	[R_MMAP_SHARED_WRITE] = {"mmap(store fd, MAP_SHARED, PROT_WRITE)", EACCES},
	[R_MPROTECT_WRITE] = {"mmap(store fd, MAP_SHARED, PROT_READ) then mprotect(PROT_WRITE)", EACCES},
	[R_PUNCH_HOLE] = {"fallocate(store fd, PUNCH_HOLE|KEEP_SIZE)", EBADF},
	/* the kernel's ftruncate: a file description without write access
	 * is EINVAL (not EBADF as for write) */
	[R_FTRUNCATE] = {"ftruncate(store fd)", EINVAL},
	/* a sealed or re-moded store would stop the daemon growing it */
	[R_ADD_SEALS] = {"fcntl(store fd, F_ADD_SEALS, GROW|SHRINK|WRITE)", EPERM},
	[R_FCHMOD] = {"fchmod(store fd, 0666)", EPERM},
	[R_MADV_REMOVE] = {"madvise(merged page, MADV_REMOVE)", EACCES},
	[R_VM_WRITEV_DAEMON] = {"process_vm_writev(daemon)", EPERM},
	/* the daemon maps the store shared and writable */
	[R_DAEMON_PROC_MEM] = {"open(/proc/DAEMON/mem, O_RDWR)", EACCES},
	[R_PROC_MEM_WRITE] = {"write to a merged page through /proc/self/mem", 0},
	[R_STORE_WRITE] = {"plain store to a merged page", 0},
};

struct attack {
	int32_t ret[R_N]; /* 0 done, -1 failed (err), -2 could not even try */
	int32_t err[R_N];
	int32_t store_fd, accmode;
	uint32_t k1, k2;	  /* the merged pages written (/proc/self/mem, store) */
	uint8_t file_before[2];	  /* pagemap: file page before the write */
	uint8_t file_after[2];	  /* ... and after it (must be 0: private copy) */
	uint8_t own_view_ok;	  /* our pages: the new content there, the old elsewhere */
	uint8_t merged_unchanged; /* k1 still reads its old content after MADV_REMOVE */
};

static void outcome(struct attack *a, int r, long ret)
{
	a->ret[r] = ret < 0 ? -1 : 0;
	a->err[r] = ret < 0 ? errno : 0;
}

static int find_store_fd(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *de;
	int found = -1;

	if (!dir)
		return -1;
	while ((de = readdir(dir))) {
		char path[300], target[256];
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		if (strstr(target, "samepage-store")) {
			found = atoi(de->d_name);
			break;
		}
	}
	closedir(dir);
	return found;
}

static void attack(const struct spec *s, char *m, pid_t daemon_pid, struct attack *a)
{
	static char junk[TPAGE];
	const struct layout *l = s->lay;
	char path[64];
	long r;
	int fd, k = 0;
	void *p;

	memset(a, 0, sizeof(*a));
	for (int i = 0; i < R_N; i++)
		a->ret[i] = -2;
	memset(junk, 0x5a, sizeof(junk));
	/* two merged pages: file pages in our own pagemap */
	for (size_t i = 0; i < l->nshared && k < 2; i++)
		if (own_pagemap(m + i * TPAGE) & PM_FILE) {
			if (k++ == 0)
				a->k1 = (uint32_t)i;
			else
				a->k2 = (uint32_t)i;
		}
	if (k < 2)
		return;
	a->file_before[0] = 1;
	a->file_before[1] = 1;

	fd = find_store_fd();
	a->store_fd = fd;
	if (fd < 0)
		return;
	a->accmode = fcntl(fd, F_GETFL) & O_ACCMODE;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

	r = open(path, O_RDWR | O_CLOEXEC);
	outcome(a, R_REOPEN_RDWR, r);
	if (r >= 0)
		close((int)r);
	r = open(path, O_WRONLY | O_CLOEXEC);
	outcome(a, R_REOPEN_WRONLY, r);
	if (r >= 0)
		close((int)r);
	outcome(a, R_PWRITE, pwrite(fd, junk, sizeof(junk), 0));
	outcome(a, R_WRITE, write(fd, junk, sizeof(junk)));
	p = mmap(NULL, TPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	outcome(a, R_MMAP_SHARED_WRITE, p == MAP_FAILED ? -1 : 0);
	if (p != MAP_FAILED)
		munmap(p, TPAGE);
	p = mmap(NULL, TPAGE, PROT_READ, MAP_SHARED, fd, 0);
	if (p != MAP_FAILED) {
		outcome(a, R_MPROTECT_WRITE, mprotect(p, TPAGE, PROT_READ | PROT_WRITE));
		munmap(p, TPAGE);
	} else {
		a->err[R_MPROTECT_WRITE] = errno; /* (ret stays -2) */
	}
	outcome(a, R_PUNCH_HOLE, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, TPAGE));
	outcome(a, R_FTRUNCATE, ftruncate(fd, 0));
	outcome(a, R_ADD_SEALS, fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_WRITE));
	outcome(a, R_FCHMOD, fchmod(fd, 0666));
	outcome(a, R_MADV_REMOVE, madvise(m + a->k1 * TPAGE, TPAGE, MADV_REMOVE));
	a->merged_unchanged =
		t_check(m + a->k1 * TPAGE, tag_of(l, s->proc, a->k1)) && (own_pagemap(m + a->k1 * TPAGE) & PM_FILE);
	{
		struct iovec local = {.iov_base = junk, .iov_len = 8};
		struct iovec remote = {.iov_base = m, .iov_len = 8}; /* any address: refused before it is looked at */

		outcome(a, R_VM_WRITEV_DAEMON, process_vm_writev(daemon_pid, &local, 1, &remote, 1, 0));
	}
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)daemon_pid);
	r = open(path, O_RDWR | O_CLOEXEC);
	outcome(a, R_DAEMON_PROC_MEM, r);
	if (r >= 0)
		close((int)r);

	/* writes into merged pages: our private copy only */
	fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		char page[TPAGE];

		t_fill(page, 7777);
		r = pwrite(fd, page, TPAGE, (off_t)(uintptr_t)(m + a->k1 * TPAGE));
		if (r >= 0 && r != (long)TPAGE) {
			r = -1;
			errno = EIO; /* short */
		}
		outcome(a, R_PROC_MEM_WRITE, r);
		close(fd);
	} else {
		a->err[R_PROC_MEM_WRITE] = errno; /* (ret stays -2) */
	}
	t_fill(m + a->k2 * TPAGE, 8888);
	outcome(a, R_STORE_WRITE, 0);
	a->file_after[0] = (own_pagemap(m + a->k1 * TPAGE) & PM_FILE) != 0;
	a->file_after[1] = (own_pagemap(m + a->k2 * TPAGE) & PM_FILE) != 0;
	a->own_view_ok =
		t_check(m + a->k1 * TPAGE, 7777) && t_check(m + a->k2 * TPAGE, 8888) && check_all(s, m, a->k1, a->k2);
}

/* The child: drops privileges, asks for its label, maps and fills its
 * pages, registers them. Tells 'r' and the address of its region, or 'E'
 * and (errno, errno of a second try, memory intact). Then obeys: 'c' check
 * every page ('v' or 'x'), 'w' attack the store (the daemon's pid follows;
 * answers struct attack), 'q' leave. */
static int client(void *arg, int wr, int rd)
{
	const struct spec *s = arg;
	size_t np = np_of(s->lay);
	uint64_t addr;
	char *m, b;

	if (s->uid && drop_to(s->uid))
		return 2;
	if (s->label)
		setenv("SAMEPAGE_DOMAIN", s->label, 1); /* read at the first samepage call */
	m = t_map(np);
	for (size_t i = 0; i < np; i++)
		t_fill(m + i * TPAGE, tag_of(s->lay, s->proc, i));
	if (samepage_madvise(m, np * TPAGE, SAMEPAGE_MERGEABLE)) {
		unsigned char e[4] = {'E', (unsigned char)errno, 0, 0};

		e[2] = samepage_madvise(m, np * TPAGE, SAMEPAGE_MERGEABLE) ? (unsigned char)errno : 0;
		e[3] = (unsigned char)check_all(s, m, np, np);
		if (write_full(wr, e, sizeof(e)))
			return 1;
		return read(rd, &b, 1) == 1 ? 0 : 1;
	}
	addr = (uintptr_t)m;
	if (write_full(wr, "r", 1) || write_full(wr, &addr, sizeof(addr)))
		return 1;
	for (;;) {
		if (read(rd, &b, 1) != 1)
			return 1;
		if (b == 'q')
			return samepage_munmap(m, np * TPAGE) ? 1 : 0;
		if (b == 'c') {
			b = check_all(s, m, np, np) ? 'v' : 'x';
			if (write_full(wr, &b, 1))
				return 1;
		} else if (b == 'w') {
			struct attack a;
			int32_t dpid;

			if (read(rd, &dpid, sizeof(dpid)) != (ssize_t)sizeof(dpid))
				return 1;
			attack(s, m, (pid_t)dpid, &a);
			if (write_full(wr, &a, sizeof(a)))
				return 1;
		} else {
			return 3;
		}
	}
}

/* Starts a client; returns the address of its region. */
static uint64_t spawn_client(struct dt_child *c, const struct spec *s)
{
	uint64_t addr = 0;
	int b;

	dt_spawn(c, client, (void *)s);
	nkids++;
	b = dt_step(c);
	if (b != 'r')
		fail_msg("client (label %s, uid %u) did not register: answered %d", s->label ? s->label : "-",
			 (unsigned)s->uid, b);
	assert_int_equal(read_full(c->rd, &addr, sizeof(addr)), 0);
	return addr;
}

static void quit_all(void)
{
	for (int i = 0; i < nkids; i++) {
		dt_go(&kids[i], 'q');
		assert_int_equal(dt_reap(&kids[i]), 0);
	}
	nkids = 0;
}

/* ---- what the kernel says ------------------------------------------------ */

/* n pagemap entries of pid's pages from addr (as root: with PFNs) */
static void pagemap_of(pid_t pid, uint64_t addr, size_t n, uint64_t *out)
{
	char path[64];
	ssize_t got;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail_msg("%s: %s", path, strerror(errno));
	got = pread(fd, out, n * sizeof(*out), (off_t)(addr / TPAGE * sizeof(*out)));
	close(fd);
	assert_int_equal(got, (ssize_t)(n * sizeof(*out)));
}

/* Every page present with a PFN (root sees them): PFNs into pfn. */
static void pfns_of(const char *who, pid_t pid, uint64_t addr, size_t n, uint64_t *pfn)
{
	uint64_t *e = calloc(n, sizeof(*e));

	assert_non_null(e);
	pagemap_of(pid, addr, n, e);
	for (size_t i = 0; i < n; i++) {
		if (!(e[i] & PM_PRESENT) || !(e[i] & PM_PFN))
			fail_msg("%s (pid %d): page %zu not present or without PFN (pagemap %#llx)", who, (int)pid, i,
				 (unsigned long long)e[i]);
		pfn[i] = e[i] & PM_PFN;
	}
	free(e);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* No PFN of x's region is mapped in y's region. */
static void assert_disjoint(const char *xn, const uint64_t *x, const char *yn, const uint64_t *y, size_t n)
{
	uint64_t *sorted = malloc(n * sizeof(*sorted));

	assert_non_null(sorted);
	memcpy(sorted, y, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_u64);
	for (size_t i = 0; i < n; i++)
		if (bsearch(&x[i], sorted, n, sizeof(*sorted), cmp_u64)) {
			free(sorted);
			fail_msg("domains share a physical page: PFN %#llx of %s's page %zu is mapped in %s",
				 (unsigned long long)x[i], xn, i, yn);
		}
	free(sorted);
}

/* Pages i < nshared: the same PFN in both processes (they really share). */
static void assert_same_pfns(const char *an, const uint64_t *a, const char *bn, const uint64_t *b, size_t from,
			     size_t to)
{
	for (size_t i = from; i < to; i++)
		if (a[i] != b[i])
			fail_msg("page %zu: equal content, but %s maps PFN %#llx and %s PFN %#llx", i, an,
				 (unsigned long long)a[i], bn, (unsigned long long)b[i]);
}

/* Pages [from, to) of one process: all on one PFN. */
static void assert_one_pfn(const char *n, const uint64_t *a, size_t from, size_t to)
{
	for (size_t i = from + 1; i < to; i++)
		if (a[i] != a[from])
			fail_msg("%s: pages %zu and %zu hold the same content on PFNs %#llx and %#llx", n, from, i,
				 (unsigned long long)a[from], (unsigned long long)a[i]);
}

/* Waits for a counter of a domain to be exactly want; asserts it. */
static void expect_counter(const char *domain, const char *key, long long want)
{
	char block[96];
	long long v;

	snprintf(block, sizeof(block), "domain %s", domain);
	v = dt_wait(&D, block, key, DT_EQ(want));
	if (v != want)
		fail_msg("domain %s: %s is %lld, the kernel would count %lld", domain, key, v, want);
}

/* The counters the kernel's KSM would show for nproc processes of this
 * layout alone (max_page_sharing never reached): one KSM page per content
 * mapped twice or more, every further mapping a sharer, the rest unshared. */
static void expect_domain(const char *domain, const struct layout *l, int nproc)
{
	long long shared = 0, sharing = 0, unshared = 0;
	const char *st;
	char block[96];

	if (nproc > 1) {
		shared += (long long)l->nshared;
		sharing += (long long)l->nshared * (nproc - 1);
	} else {
		unshared += (long long)l->nshared;
	}
	unshared += (long long)l->nuniq * nproc;
	if ((long long)l->ndup * nproc > 1) {
		shared++;
		sharing += (long long)l->ndup * nproc - 1;
	}
	if ((long long)l->nzero * nproc > 1) {
		shared++;
		sharing += (long long)l->nzero * nproc - 1;
	}
	expect_counter(domain, "pages_sharing", sharing);
	expect_counter(domain, "pages_shared", shared);
	expect_counter(domain, "pages_unshared", unshared);
	st = dt_status(&D);
	snprintf(block, sizeof(block), "domain %s", domain);
	assert_int_equal(dt_value(st, block, "clients"), nproc);
	assert_int_equal(dt_value(st, block, "registered_bytes"), (long long)(np_of(l) * TPAGE) * nproc);
	printf("  domain %s: %d clients, pages_shared %lld pages_sharing %lld pages_unshared %lld\n", domain, nproc,
	       shared, sharing, unshared);
}

/* The status has the client's block in the domain. */
static void expect_client_in(pid_t pid, uid_t uid, const char *domain)
{
	const char *st = dt_status(&D);
	char want[160];

	snprintf(want, sizeof(want), "\nclient %d\nuid %u\ndomain %s\n", (int)pid, (unsigned)uid, domain);
	assert_non_null(st);
	if (!strstr(st, want))
		fail_msg("client pid %d uid %u is not in domain %s; status:\n%s", (int)pid, (unsigned)uid, domain, st);
}

/* ---- 1: two labelled domains, same content everywhere --------------------- */

static const struct layout lay1 = {.nshared = 256, .nuniq = 64, .ndup = 0, .nzero = 16};

static void test_labelled_domains(void **state)
{
	static const struct spec specs[4] = {
		{.label = "a", .proc = 0, .lay = &lay1},
		{.label = "a", .proc = 1, .lay = &lay1},
		{.label = "b", .proc = 2, .lay = &lay1},
		{.label = "b", .proc = 3, .lay = &lay1},
	};
	static const char *const names[4] = {"a0", "a1", "b0", "b1"};
	size_t np = np_of(&lay1), zero0 = lay1.nshared + lay1.nuniq + lay1.ndup;
	uint64_t addr[4], *pfn[4];

	(void)state;
	start("[domain a]\nlabels = a\n\n[domain b]\nlabels = b\n");
	for (int i = 0; i < 4; i++)
		addr[i] = spawn_client(&kids[i], &specs[i]);
	for (int i = 0; i < 4; i++)
		expect_client_in(kids[i].pid, 0, specs[i].label);
	/* each domain counts as the kernel would for its two processes alone:
	 * nothing of the other domain's equal pages is merged in */
	expect_domain("a", &lay1, 2);
	expect_domain("b", &lay1, 2);

	for (int i = 0; i < 4; i++) {
		pfn[i] = calloc(np, sizeof(uint64_t));
		assert_non_null(pfn[i]);
		pfns_of(names[i], kids[i].pid, addr[i], np, pfn[i]);
	}
	/* inside a domain: equal content, one physical page */
	assert_same_pfns("a0", pfn[0], "a1", pfn[1], 0, lay1.nshared);
	assert_same_pfns("b0", pfn[2], "b1", pfn[3], 0, lay1.nshared);
	assert_one_pfn("a0", pfn[0], zero0, np);
	assert_one_pfn("b0", pfn[2], zero0, np);
	assert_same_pfns("a0", pfn[0], "a1", pfn[1], zero0, np);
	assert_same_pfns("b0", pfn[2], "b1", pfn[3], zero0, np);
	/* across domains: no physical page in common, content equal or not */
	for (int a = 0; a < 2; a++)
		for (int b = 2; b < 4; b++) {
			char an[32], bn[32];

			snprintf(an, sizeof(an), "%s (pid %d)", names[a], (int)kids[a].pid);
			snprintf(bn, sizeof(bn), "%s (pid %d)", names[b], (int)kids[b].pid);
			assert_disjoint(an, pfn[a], bn, pfn[b], np);
		}
	printf("  PFNs: %zu equal pages shared inside each domain, none of %zu pages across\n", lay1.nshared, np);
	for (int i = 0; i < 4; i++)
		free(pfn[i]);

	for (int i = 0; i < 4; i++)
		dt_go(&kids[i], 'c');
	for (int i = 0; i < 4; i++)
		assert_int_equal(dt_step(&kids[i]), 'v');
	quit_all();
	assert_true(dt_stop(&D));
}

/* ---- 2: labels the configuration refuses --------------------------------- */

static const struct layout lay2 = {.nshared = 8, .nuniq = 8, .ndup = 0, .nzero = 0};

static void refused(const char *label, const char *logged)
{
	struct spec s = {.label = label, .proc = 0, .lay = &lay2};
	struct dt_child *c = &kids[nkids];
	unsigned char e[3];
	char log[8192] = "";
	FILE *f;
	size_t n;
	int b;

	dt_spawn(c, client, &s);
	nkids++;
	b = dt_step(c);
	if (b != 'E')
		fail_msg("a client asking for label \"%s\" was not refused (answered %d)", label, b);
	assert_int_equal(read_full(c->rd, e, sizeof(e)), 0);
	if (e[0] != EACCES)
		fail_msg("label \"%s\": samepage_madvise failed with %s, want EACCES", label, strerror(e[0]));
	if (e[1] != EACCES)
		fail_msg("label \"%s\": a second samepage_madvise failed with %s, want EACCES", label, strerror(e[1]));
	assert_true(e[2]); /* its memory is untouched */
	dt_go(c, 'q');
	assert_int_equal(dt_reap(c), 0);
	nkids--;

	f = fopen(D.log, "r");
	assert_non_null(f);
	n = fread(log, 1, sizeof(log) - 1, f);
	log[n] = 0;
	fclose(f);
	if (!strstr(log, logged))
		fail_msg("the daemon's log does not say \"%s\":\n%s", logged, log);
}

static void test_refused_labels(void **state)
{
	const char *st;

	(void)state;
	start("[domain vms]\nlabels = vms\nusers = 4242\n");
	refused("vms", "refused: label \"vms\" is not allowed for uid 0");
	refused("nosuch", "refused: no domain offers label \"nosuch\"");
	st = dt_status(&D);
	assert_non_null(st);
	assert_int_equal(dt_value(st, "domain vms", "clients"), 0);
	assert_int_equal(dt_value(st, "domain vms", "registered_bytes"), 0);
	if (strstr(st, "\nclient "))
		fail_msg("a refused client is in the status:\n%s", st);
	if (strstr(st, "domain nosuch") || strstr(st, "domain user:"))
		fail_msg("a refused client got a domain:\n%s", st);
	assert_true(dt_stop(&D));
}

/* ---- 3: per-user domains --------------------------------------------------- */

static const struct layout lay3 = {.nshared = 256, .nuniq = 32, .ndup = 32, .nzero = 16};

static void test_per_user(void **state)
{
	static const struct spec specs[2] = {
		{.uid = 0, .proc = 0, .lay = &lay3},
		{.uid = NOBODY, .proc = 1, .lay = &lay3},
	};
	size_t np = np_of(&lay3), dup0 = lay3.nshared + lay3.nuniq, zero0 = dup0 + lay3.ndup;
	uint64_t addr[2], *pfn[2];
	char dom[2][32];

	(void)state;
	start(NULL);
	for (int i = 0; i < 2; i++) {
		addr[i] = spawn_client(&kids[i], &specs[i]);
		snprintf(dom[i], sizeof(dom[i]), "user:%u", (unsigned)specs[i].uid);
	}
	for (int i = 0; i < 2; i++)
		expect_client_in(kids[i].pid, specs[i].uid, dom[i]);
	/* each alone in its domain: only its own duplicates merge, the pages
	 * equal to the other user's stay unshared */
	expect_domain(dom[0], &lay3, 1);
	expect_domain(dom[1], &lay3, 1);
	for (int i = 0; i < 2; i++) {
		pfn[i] = calloc(np, sizeof(uint64_t));
		assert_non_null(pfn[i]);
		pfns_of(dom[i], kids[i].pid, addr[i], np, pfn[i]);
		assert_one_pfn(dom[i], pfn[i], dup0, zero0); /* merged inside the domain */
		assert_one_pfn(dom[i], pfn[i], zero0, np);
	}
	assert_disjoint("the root client", pfn[0], "the uid 65534 client", pfn[1], np);
	assert_disjoint("the uid 65534 client", pfn[1], "the root client", pfn[0], np);
	for (int i = 0; i < 2; i++)
		free(pfn[i]);
	for (int i = 0; i < 2; i++)
		dt_go(&kids[i], 'c');
	for (int i = 0; i < 2; i++)
		assert_int_equal(dt_step(&kids[i]), 'v');
	quit_all();
	assert_true(dt_stop(&D));
}

/* ---- 4: the store is read-only for clients --------------------------------- */

static const struct layout lay4 = {.nshared = 128, .nuniq = 16, .ndup = 0, .nzero = 8};

static void expect_route(const struct attack *a, int r)
{
	int want_errno = routes[r].want;

	if (want_errno == 0) {
		if (a->ret[r] != 0)
			fail_msg("%s: failed (%s), should have changed our private copy", routes[r].name,
				 strerror(a->err[r]));
		return;
	}
	if (a->ret[r] == 0)
		fail_msg("%s: SUCCEEDED, must be refused with %s", routes[r].name, strerror(want_errno));
	if (a->ret[r] == -2)
		fail_msg("%s: could not be tried (%s)", routes[r].name, strerror(a->err[r]));
	if (a->err[r] != want_errno)
		fail_msg("%s: refused with %s, want %s", routes[r].name, strerror(a->err[r]), strerror(want_errno));
}

static void test_store_read_only(void **state)
{
	static const struct spec specs[2] = {
		{.uid = NOBODY, .proc = 0, .lay = &lay4},
		{.uid = NOBODY, .proc = 1, .lay = &lay4},
	};
	const char *dom = "user:65534";
	size_t np = np_of(&lay4);
	uint64_t addr[2], *pfn[2];
	long long sharing, daemon_pid;
	struct attack a;
	int32_t dpid;

	(void)state;
	start(NULL);
	for (int i = 0; i < 2; i++)
		addr[i] = spawn_client(&kids[i], &specs[i]);
	for (int i = 0; i < 2; i++)
		expect_client_in(kids[i].pid, NOBODY, dom);
	expect_domain(dom, &lay4, 2);
	sharing = dt_value(dt_status(&D), "domain user:65534", "pages_sharing");
	for (int i = 0; i < 2; i++) {
		pfn[i] = calloc(np, sizeof(uint64_t));
		assert_non_null(pfn[i]);
		pfns_of(i ? "client B" : "client A", kids[i].pid, addr[i], np, pfn[i]);
	}
	assert_same_pfns("client A", pfn[0], "client B", pfn[1], 0, lay4.nshared);

	daemon_pid = -1;
	{
		const char *st = dt_status(&D);

		assert_non_null(st);
		assert_int_equal(sscanf(st, "daemon pid %lld", &daemon_pid), 1);
	}
	assert_int_equal(daemon_pid, D.pid);
	dpid = (int32_t)daemon_pid;
	dt_go(&kids[0], 'w');
	assert_int_equal(write_full(kids[0].wr, &dpid, sizeof(dpid)), 0);
	assert_int_equal(read_full(kids[0].rd, &a, sizeof(a)), 0);

	printf("  client A (uid %u): store fd %d (access mode %s), merged pages %u and %u\n", NOBODY, a.store_fd,
	       a.accmode == O_RDONLY ? "O_RDONLY" : "NOT read-only", a.k1, a.k2);
	for (int r = 0; r < R_N; r++)
		printf("    %-66s %s\n", routes[r].name,
		       a.ret[r] == 0	? "done"
		       : a.ret[r] == -2 ? "not tried"
					: strerror(a.err[r]));
	if (!a.file_before[0])
		fail_msg("client A found no two merged (file) pages in its own pagemap");
	if (a.store_fd < 0)
		fail_msg("client A has no descriptor whose link names samepage-store");
	assert_int_equal(a.accmode, O_RDONLY);
	for (int r = 0; r < R_N; r++)
		expect_route(&a, r);
	if (!a.merged_unchanged)
		fail_msg("after the refused MADV_REMOVE, the merged page is no longer the store page with its content");
	if (a.file_after[0])
		fail_msg("the write through /proc/self/mem left page %u a file page: it wrote the store", a.k1);
	if (a.file_after[1])
		fail_msg("the plain store left page %u a file page: it wrote the store", a.k2);
	if (!a.own_view_ok)
		fail_msg("client A does not read what it wrote (or lost other pages)");

	/* the other process of the domain still reads the original content
	 * everywhere, on the same physical pages as before */
	dt_go(&kids[1], 'c');
	if (dt_step(&kids[1]) != 'v')
		fail_msg("client B no longer reads the original content: client A changed the store");
	pfns_of("client A", kids[0].pid, addr[0], np, pfn[0]);
	{
		uint64_t *now = calloc(np, sizeof(uint64_t));

		assert_non_null(now);
		pfns_of("client B", kids[1].pid, addr[1], np, now);
		for (size_t i = 0; i < np; i++)
			if (now[i] != pfn[1][i])
				fail_msg("client B's page %zu moved from PFN %#llx to %#llx", i,
					 (unsigned long long)pfn[1][i], (unsigned long long)now[i]);
		free(now);
	}
	if (pfn[0][a.k1] == pfn[1][a.k1] || pfn[0][a.k2] == pfn[1][a.k2])
		fail_msg("client A's written pages still map client B's physical pages");
	for (size_t i = 0; i < lay4.nshared; i++)
		if (i != a.k1 && i != a.k2 && pfn[0][i] != pfn[1][i])
			fail_msg("page %zu: no longer shared after writes to other pages", i);
	for (int i = 0; i < 2; i++)
		free(pfn[i]);

	/* the daemon: each write broke one sharer (the KSM pages stay, B maps
	 * them), and A's two new contents are unshared */
	expect_counter(dom, "pages_sharing", sharing - 2);
	expect_counter(dom, "pages_shared", (long long)lay4.nshared + 1);
	expect_counter(dom, "pages_unshared", 2 * (long long)lay4.nuniq + 2);
	printf("  after the writes: pages_sharing %lld (was %lld)\n", sharing - 2, sharing);
	quit_all();
	assert_true(dt_stop(&D));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_labelled_domains, teardown),
		cmocka_unit_test_teardown(test_refused_labels, teardown),
		cmocka_unit_test_teardown(test_per_user, teardown),
		cmocka_unit_test_teardown(test_store_read_only, teardown),
	};

	if (geteuid()) {
		printf("daemon tests need root (PFNs, other users' clients)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
