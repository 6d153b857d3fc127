/* SPDX-License-Identifier: MIT */
/*
 * interpose.c - the libc functions libsamepage-preload.so exports (the only
 * symbols it exports besides samepage.h's API, see preload.map).
 *
 *   madvise      MADV_MERGEABLE / MADV_UNMERGEABLE go to the engine, never
 *                to the kernel (its KSM would merge the same pages), with
 *                the kernel's checks and errno: EINVAL for an unaligned
 *                start or a length that wraps, ENOMEM when part of the range
 *                is not mapped (after the advice is applied to the rest).
 *                MADV_FREE on registered memory is MADV_DONTNEED there (a
 *                merged page is a file page: MADV_FREE would fail with
 *                EINVAL); MADV_DONTNEED is the engine's (zeros, as for
 *                anonymous memory).
 *   munmap, mremap, mmap(MAP_FIXED), mprotect(PROT_NONE)
 *                registered memory in the range is unregistered first
 *                (plain anonymous memory again, content kept), as the
 *                engine's contract asks.
 *   prctl        PR_SET_MEMORY_MERGE / PR_GET_MEMORY_MERGE answered here;
 *                the kernel's is never called. Other options: the kernel.
 *   ioctl        UFFDIO_REGISTER on registered memory: EBUSY, and a line on
 *                stderr (the kernel would refuse it with EBUSY too: the
 *                engine's userfaultfd has that memory).
 *   close, closefrom, close_range
 *                the engine's descriptors stay open (a daemon closing
 *                everything it did not open would otherwise hand their
 *                numbers to its own files, which the engine would write)
 *   execve, execvpe, fexecve, posix_spawn, posix_spawnp
 *                under merge-any, an environment without SAMEPAGE_MERGE_ANY=1
 *                or this library in LD_PRELOAD gets them (the kernel keeps
 *                merge-any across exec).
 */
#include <dlfcn.h>
#include <errno.h>
#include <linux/userfaultfd.h>
#include <spawn.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload/preload.h"

#define PL_EXPORT __attribute__((visibility("default")))

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif

static int fail(int err)
{
	errno = err;
	return -1;
}

/* The kernel's madvise checks: EINVAL for an unaligned start or a length
 * that wraps when rounded up; 0 and nothing done for an empty range. */
static int range_of(void *addr, size_t len, uintptr_t *lo, uintptr_t *hi)
{
	uintptr_t a = (uintptr_t)addr;
	size_t alen = (len + PL_PAGE - 1) & ~(PL_PAGE - 1);

	if ((a & (PL_PAGE - 1)) || (len && !alen) || a + alen < a)
		return -EINVAL;
	*lo = a;
	*hi = a + alen;
	return 0;
}

PL_EXPORT int madvise(void *addr, size_t len, int advice)
{
	uintptr_t lo, hi;
	int err;

	if (advice == MADV_MERGEABLE || advice == MADV_UNMERGEABLE) {
		err = range_of(addr, len, &lo, &hi);
		if (err)
			return fail(-err);
		if (lo == hi || pl_inside)
			return 0;
		pl_init();
		err = advice == MADV_MERGEABLE ? pl_madv_mergeable(lo, hi) : pl_madv_unmergeable(lo, hi);
		return err ? fail(-err) : 0;
	}
	if (advice == MADV_FREE && !pl_inside && !pl_idle())
		return pl_madv_free(addr, len, advice);
	return pl_sys_madvise(addr, len, advice);
}

PL_EXPORT int munmap(void *addr, size_t len)
{
	if (pl_inside || pl_idle())
		return pl_sys_munmap(addr, len);
	return pl_munmap(addr, len);
}

static void *do_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (pl_inside || pl_idle())
		return pl_sys_mmap(addr, len, prot, flags, fd, off);
	return pl_mmap(addr, len, prot, flags, fd, off);
}

PL_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return do_mmap(addr, len, prot, flags, fd, off);
}

PL_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return do_mmap(addr, len, prot, flags, fd, off);
}

PL_EXPORT void *mremap(void *old, size_t oldlen, size_t newlen, int flags, ...)
{
	void *new_addr = NULL;
	va_list ap;

	va_start(ap, flags);
	if (flags & MREMAP_FIXED)
		new_addr = va_arg(ap, void *);
	va_end(ap);
	if (pl_inside || pl_idle())
		return pl_sys_mremap(old, oldlen, newlen, flags, new_addr);
	return pl_mremap(old, oldlen, newlen, flags, new_addr);
}

PL_EXPORT int mprotect(void *addr, size_t len, int prot)
{
	if (pl_inside || pl_idle())
		return pl_sys_mprotect(addr, len, prot);
	return pl_mprotect(addr, len, prot);
}

PL_EXPORT int prctl(int option, ...)
{
	unsigned long a2, a3, a4, a5;
	va_list ap;
	int err;

	va_start(ap, option);
	a2 = va_arg(ap, unsigned long);
	a3 = va_arg(ap, unsigned long);
	a4 = va_arg(ap, unsigned long);
	a5 = va_arg(ap, unsigned long);
	va_end(ap);
	switch (option) {
	case PR_SET_MEMORY_MERGE:
		if (a3 || a4 || a5)
			return fail(EINVAL);
		pl_init();
		err = pl_merge_any_set(a2 != 0);
		return err ? fail(-err) : 0;
	case PR_GET_MEMORY_MERGE:
		if (a2 || a3 || a4 || a5)
			return fail(EINVAL);
		pl_init();
		return pl_merge_any_get();
	default:
		return pl_sys_prctl(option, a2, a3, a4, a5);
	}
}

PL_EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (req == UFFDIO_REGISTER && arg && !pl_inside && !pl_idle()) {
		const struct uffdio_register *r = arg;
		uintptr_t lo = (uintptr_t)r->range.start, hi = lo + (uintptr_t)r->range.len;

		if (hi > lo && pl_registered(lo, hi)) {
			pl_say("samepage: %s[%d]: UFFDIO_REGISTER of %#lx-%#lx refused (EBUSY): samepage's engine "
			       "has that memory registered for merging; unregister it first "
			       "(madvise MADV_UNMERGEABLE)\n",
			       program_invocation_short_name, (int)getpid(), (unsigned long)lo, (unsigned long)hi);
			return fail(EBUSY);
		}
	}
	return pl_sys_ioctl(fd, req, arg);
}

/* ---- descriptors ----------------------------------------------------------- */

PL_EXPORT int close(int fd)
{
	int rc = 0;

	if (pl_inside)
		return pl_sys_close(fd);
	pl_fds_close_begin(); /* (no descriptor of the engine's half-made) */
	if (!pl_engine_fd(fd))
		rc = pl_sys_close(fd);
	/* else as if closed; the number stays the engine's */
	pl_fds_close_end();
	return rc;
}

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* close_range(2) on [first, last] around the engine's descriptors */
static int close_range_around(unsigned first, unsigned last, unsigned flags)
{
	int fds[PL_ENGINE_FDS_MAX], n = (flags & CLOSE_RANGE_CLOEXEC) ? 0 : pl_engine_fds(fds, PL_ENGINE_FDS_MAX);
	unsigned lo = first;

	/* (the engine's are close-on-exec already: CLOEXEC ranges as asked) */
	for (int i = 0; i < n && lo <= last; i++) {
		unsigned fd = (unsigned)fds[i];

		if (fd < lo || fd > last)
			continue;
		if (fd > lo && syscall(SYS_close_range, lo, fd - 1, flags))
			return -1;
		if (fd == last)
			return 0;
		lo = fd + 1;
	}
	return lo <= last ? (int)syscall(SYS_close_range, lo, last, flags) : 0;
}

static int close_around(unsigned first, unsigned last, unsigned flags)
{
	int rc, saved;

	pl_fds_close_begin();
	rc = close_range_around(first, last, flags);
	saved = errno;
	pl_fds_close_end();
	errno = saved;
	return rc;
}

PL_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	if (pl_inside || first > last)
		return (int)syscall(SYS_close_range, first, last, flags);
	return close_around(first, last, (unsigned)flags);
}

PL_EXPORT void closefrom(int lowfd)
{
	close_around(lowfd < 0 ? 0u : (unsigned)lowfd, ~0u, 0);
}

/* ---- exec ------------------------------------------------------------------------ */

static void *next(const char *name)
{
	void *p;

	pl_inside++;
	p = dlsym(RTLD_NEXT, name);
	pl_inside--;
	return p;
}

PL_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	char **env = pl_env_for_exec(envp);
	int rc = (int)syscall(SYS_execve, path, argv, env), saved = errno;

	pl_env_free(env, envp);
	errno = saved;
	return rc;
}

PL_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	static int (*real)(const char *, char *const[], char *const[]);
	char **env;
	int rc, saved;

	if (!real)
		real = (int (*)(const char *, char *const[], char *const[]))next("execvpe");
	if (!real)
		return fail(ENOSYS);
	env = pl_env_for_exec(envp);
	rc = real(file, argv, env);
	saved = errno;
	pl_env_free(env, envp);
	errno = saved;
	return rc;
}

PL_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	static int (*real)(int, char *const[], char *const[]);
	char **env;
	int rc, saved;

	if (!real)
		real = (int (*)(int, char *const[], char *const[]))next("fexecve");
	if (!real)
		return fail(ENOSYS);
	env = pl_env_for_exec(envp);
	rc = real(fd, argv, env);
	saved = errno;
	pl_env_free(env, envp);
	errno = saved;
	return rc;
}

typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
			char *const[], char *const[]);

static int spawn(spawn_fn *real, const char *name, pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
		 const posix_spawnattr_t *at, char *const argv[], char *const envp[])
{
	char **env;
	int rc;

	if (!*real)
		*real = (spawn_fn)next(name);
	if (!*real)
		return ENOSYS;
	env = pl_env_for_exec(envp);
	rc = (*real)(pid, path, fa, at, argv, env);
	pl_env_free(env, envp);
	return rc;
}

PL_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
			  const posix_spawnattr_t *at, char *const argv[], char *const envp[])
{
	static spawn_fn real;

	return spawn(&real, "posix_spawn", pid, path, fa, at, argv, envp);
}

PL_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
			   const posix_spawnattr_t *at, char *const argv[], char *const envp[])
{
	static spawn_fn real;

	return spawn(&real, "posix_spawnp", pid, file, fa, at, argv, envp);
}
