/* SPDX-License-Identifier: MIT */
/*
 * maps.c - /proc/self/maps read with read(2) into a buffer on the stack
 * (no stdio lock, no malloc: the sweeper thread reads it while program
 * threads may be blocked on frozen pages), and the ranges the engine must
 * never register.
 */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/engine.h"
#include "preload/preload.h"

static const char *hex(const char *p, const char *end, uint64_t *out)
{
	uint64_t v = 0;
	int any = 0;

	for (; p < end; p++, any = 1) {
		int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;

		if (d < 0)
			break;
		v = v * 16 + (uint64_t)d;
	}
	*out = v;
	return any ? p : NULL;
}

/* "start-end perms offset dev inode   name" */
static int parse(const char *p, const char *end, struct pl_vma *v)
{
	uint64_t s, e, off, ino = 0;
	const char *q;

	memset(v, 0, sizeof(*v));
	if (!(p = hex(p, end, &s)) || p >= end || *p++ != '-' || !(p = hex(p, end, &e)) || p + 6 > end || *p++ != ' ')
		return -1;
	v->start = (uintptr_t)s;
	v->end = (uintptr_t)e;
	v->prot = (p[0] == 'r' ? PROT_READ : 0) | (p[1] == 'w' ? PROT_WRITE : 0) | (p[2] == 'x' ? PROT_EXEC : 0);
	v->shared = p[3] == 's';
	p += 5;
	if (!(p = hex(p, end, &off)) || p >= end || *p++ != ' ')
		return -1;
	while (p < end && *p != ' ') /* dev */
		p++;
	while (p < end && *p == ' ')
		p++;
	for (; p < end && *p >= '0' && *p <= '9'; p++)
		ino = ino * 10 + (uint64_t)(*p - '0');
	v->ino = ino;
	while (p < end && *p == ' ')
		p++;
	q = p;
	v->named = q < end;
	if (v->named) {
		size_t n = (size_t)(end - q) < sizeof(v->name) - 1 ? (size_t)(end - q) : sizeof(v->name) - 1;

		memcpy(v->name, q, n);
	}
	return 0;
}

int pl_maps_each(int (*fn)(void *ctx, const struct pl_vma *v), void *ctx)
{
	char buf[8192];
	size_t have = 0;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t got = read(fd, buf + have, sizeof(buf) - have);
		char *p = buf, *nl;

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) { /* never half a list: what is missing would look unmapped */
			rc = -errno;
			break;
		}
		if (!got)
			break;
		have += (size_t)got;
		while ((nl = memchr(p, '\n', have - (size_t)(p - buf)))) {
			struct pl_vma v;

			if (!parse(p, nl, &v) && (rc = fn(ctx, &v)))
				goto out;
			p = nl + 1;
		}
		have -= (size_t)(p - buf);
		memmove(buf, p, have);
		if (have == sizeof(buf))
			have = 0; /* a line longer than the buffer: dropped */
	}
out:
	close(fd);
	return rc;
}

struct excl_ctx {
	void (*fn)(void *ctx, uintptr_t lo, uintptr_t hi);
	void *ctx;
	int first;
};

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *p)
{
	struct excl_ctx *x = p;

	(void)size;
	if (x->first) { /* the program itself: its .data and .bss merge */
		x->first = 0;
		return 0;
	}
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo, hi;

		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W))
			continue;
		lo = (info->dlpi_addr + ph->p_vaddr) & ~(PL_PAGE - 1);
		hi = (info->dlpi_addr + ph->p_vaddr + ph->p_memsz + PL_PAGE - 1) & ~(PL_PAGE - 1);
		x->fn(x->ctx, lo, hi);
	}
	return 0;
}

void pl_excluded_each(void (*fn)(void *ctx, uintptr_t lo, uintptr_t hi), void *ctx)
{
	struct excl_ctx x = {fn, ctx, 1};
	uintptr_t lo, hi;

	pl_arena_bounds(&lo, &hi);
	if (lo < hi)
		fn(ctx, lo, hi);
	/* every loaded object's writable segments but the program's: this
	 * library's .data/.bss (the engine's state, written by its threads),
	 * libc's, the loader's, ... */
	dl_iterate_phdr(phdr_cb, &x);
}

uint64_t pl_store_ino(void)
{
	struct stat st;
	int fd;

	if (!__atomic_load_n(&sp_engine.backend_ready, __ATOMIC_ACQUIRE))
		return 0;
	fd = __atomic_load_n(&sp_engine.local.store.fd, __ATOMIC_RELAXED);
	if (fd < 0 || fstat(fd, &st))
		return 0;
	return (uint64_t)st.st_ino;
}

/* The engine's descriptors (>= 3), sorted; how many. */
int pl_engine_fds(int *out, int max)
{
	int n = pl_fds_list(out, max);

	for (int i = 1; i < n; i++) /* (a handful: insertion sort) */
		for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
			int t = out[j];

			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

int pl_engine_fd(int fd)
{
	int fds[PL_ENGINE_FDS_MAX], n;

	if (fd < 3)
		return 0;
	n = pl_engine_fds(fds, PL_ENGINE_FDS_MAX);
	for (int i = 0; i < n; i++)
		if (fds[i] == fd)
			return 1;
	return 0;
}
