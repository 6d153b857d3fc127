/* SPDX-License-Identifier: MIT */
/*
 * sys.c - the kernel's memory calls made directly. The library exports
 * mmap, munmap, ... to the program; its own calls and the engine's must not
 * go through those (they would unregister what the engine is remapping),
 * so they come here. syscall(2) is libc's, not interposed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload/preload.h"

void *pl_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

int pl_sys_munmap(void *addr, size_t len)
{
	return (int)syscall(SYS_munmap, addr, len);
}

void *pl_sys_mremap(void *old, size_t oldlen, size_t newlen, int flags, void *new_addr)
{
	return (void *)syscall(SYS_mremap, old, oldlen, newlen, flags, new_addr);
}

int pl_sys_madvise(void *addr, size_t len, int advice)
{
	return (int)syscall(SYS_madvise, addr, len, advice);
}

int pl_sys_mprotect(void *addr, size_t len, int prot)
{
	return (int)syscall(SYS_mprotect, addr, len, prot);
}

int pl_sys_ioctl(int fd, unsigned long req, void *arg)
{
	return (int)syscall(SYS_ioctl, fd, req, arg);
}

int pl_sys_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)
{
	return (int)syscall(SYS_prctl, option, a2, a3, a4, a5);
}

int pl_sys_close(int fd)
{
	return (int)syscall(SYS_close, fd);
}

void pl_say(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n, saved = errno;
	size_t off = 0;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf)) {
		n = sizeof(buf) - 1;
		buf[n - 1] = '\n';
	}
	while (off < (size_t)n) {
		ssize_t w = write(2, buf + off, (size_t)n - off);

		if (w <= 0 && errno != EINTR)
			break;
		off += w > 0 ? (size_t)w : 0;
	}
	errno = saved;
}
