/* SPDX-License-Identifier: MIT */
/*
 * fds.c - the descriptors the library opens, kept from the program.
 *
 * Programs close descriptors they did not open: daemons close every number
 * from 3 up (close in a loop, closefrom, close_range), sometimes while
 * other threads run. The engine opens some for good (its userfaultfd, the
 * store, pagemap, samepaged's sockets) and some for a moment (a read of
 * /proc/self/maps by the sweeper). A number closed under the engine is
 * reused by the program's next open, and the engine reads or writes the
 * program's file: a sweep reading a truncated /proc/self/maps took every
 * merged range for unmapped and unregistered it.
 *
 * So every descriptor the engine's code creates (open, socket, socketpair,
 * memfd_create, userfaultfd, descriptors received with SCM_RIGHTS: those
 * calls are wrapped with -Wl,--wrap) is held here from the moment it exists
 * until the engine closes it (close is wrapped too), and the program's
 * close, close_range and closefrom skip what is held (interpose.c).
 *
 * Between the system call that creates a descriptor and the line that
 * holds it, a program's close could still take the number. The two sides
 * shake hands: a creator announces itself (opening) and backs off while a
 * close is under way (closing); a close announces itself and waits for
 * creators under way. Both announcements are sequentially consistent, so
 * at least one side sees the other. A close in a signal handler that
 * interrupted a creation on its own thread does not wait (it would wait
 * for itself). The waits are a system call long (the creators in between
 * never block: recvmsg is called with MSG_DONTWAIT, after poll).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload/preload.h"

#define NHELD 128

static int held[NHELD]; /* fd + 1; 0: a free slot */
static int opening, closing;
static __thread int creating __attribute__((tls_model("initial-exec")));

void pl_fds_hold(int fd)
{
	if (fd < 0)
		return;
	for (int i = 0; i < NHELD; i++) {
		int free_slot = 0;

		if (__atomic_compare_exchange_n(&held[i], &free_slot, fd + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			return;
	}
	/* more than NHELD at once: the engine never has; unprotected */
}

void pl_fds_drop(int fd)
{
	for (int i = 0; i < NHELD; i++) {
		int want = fd + 1;

		if (__atomic_compare_exchange_n(&held[i], &want, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			return;
	}
}

int pl_fds_list(int *out, int max)
{
	int n = 0;

	for (int i = 0; i < NHELD && n < max; i++) {
		int v = __atomic_load_n(&held[i], __ATOMIC_SEQ_CST);

		if (v > 3)
			out[n++] = v - 1;
	}
	return n;
}

/* ---- the handshake ------------------------------------------------------- */

static void create_begin(void)
{
	for (;;) {
		__atomic_add_fetch(&opening, 1, __ATOMIC_SEQ_CST);
		if (!__atomic_load_n(&closing, __ATOMIC_SEQ_CST))
			break;
		__atomic_sub_fetch(&opening, 1, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&closing, __ATOMIC_SEQ_CST))
			sched_yield();
	}
	creating++;
}

static void create_end(void)
{
	creating--;
	__atomic_sub_fetch(&opening, 1, __ATOMIC_SEQ_CST);
}

void pl_fds_close_begin(void)
{
	__atomic_add_fetch(&closing, 1, __ATOMIC_SEQ_CST);
	if (creating)
		return;
	while (__atomic_load_n(&opening, __ATOMIC_SEQ_CST))
		sched_yield();
}

void pl_fds_close_end(void)
{
	__atomic_sub_fetch(&closing, 1, __ATOMIC_SEQ_CST);
}

/* A fork child has only the forking thread: none is creating or closing. */
void pl_fds_fork_child(void)
{
	__atomic_store_n(&opening, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&closing, 0, __ATOMIC_SEQ_CST);
	creating = 0;
}

/* ---- what the engine's objects call (-Wl,--wrap) --------------------------- */

int __wrap_open(const char *path, int flags, ...);
int __wrap_socket(int domain, int type, int protocol);
int __wrap_socketpair(int domain, int type, int protocol, int sv[2]);
int __wrap_memfd_create(const char *name, unsigned flags);
ssize_t __wrap_recvmsg(int fd, struct msghdr *mh, int flags);
long __wrap_syscall(long nr, ...);
long __real_syscall(long nr, ...);
int __wrap_close(int fd);

int __wrap_open(const char *path, int flags, ...)
{
	unsigned mode = 0;
	int fd, saved;

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;

		va_start(ap, flags);
		mode = va_arg(ap, unsigned);
		va_end(ap);
	}
	create_begin();
	fd = (int)__real_syscall(SYS_openat, AT_FDCWD, path, flags, mode);
	saved = errno;
	pl_fds_hold(fd);
	create_end();
	errno = saved;
	return fd;
}

int __wrap_socket(int domain, int type, int protocol)
{
	int fd, saved;

	create_begin();
	fd = (int)__real_syscall(SYS_socket, domain, type, protocol);
	saved = errno;
	pl_fds_hold(fd);
	create_end();
	errno = saved;
	return fd;
}

int __wrap_socketpair(int domain, int type, int protocol, int sv[2])
{
	int rc, saved;

	create_begin();
	rc = (int)__real_syscall(SYS_socketpair, domain, type, protocol, sv);
	saved = errno;
	if (!rc) {
		pl_fds_hold(sv[0]);
		pl_fds_hold(sv[1]);
	}
	create_end();
	errno = saved;
	return rc;
}

int __wrap_memfd_create(const char *name, unsigned flags)
{
	int fd, saved;

	create_begin();
	fd = (int)__real_syscall(SYS_memfd_create, name, flags);
	saved = errno;
	pl_fds_hold(fd);
	create_end();
	errno = saved;
	return fd;
}

ssize_t __wrap_recvmsg(int fd, struct msghdr *mh, int flags)
{
	ssize_t n;
	int saved;

	create_begin();
	n = __real_syscall(SYS_recvmsg, fd, mh, flags);
	saved = errno;
	if (n >= 0)
		for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				int d;

				memcpy(&d, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				pl_fds_hold(d);
			}
		}
	create_end();
	errno = saved;
	return n;
}

/* syscall(2): userfaultfd creates a descriptor; the rest pass through (six
 * arguments read whatever the caller passed, as libc's syscall does) */
long __wrap_syscall(long nr, ...)
{
	long a[6], r;
	va_list ap;
	int saved;

	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr != SYS_userfaultfd)
		return __real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	create_begin();
	r = __real_syscall(nr, a[0]);
	saved = errno;
	pl_fds_hold((int)r);
	create_end();
	errno = saved;
	return r;
}

/* ioctl(USERFAULTFD_IOC_NEW) on /dev/userfaultfd (arena.c's __wrap_ioctl) */
int pl_fds_ioctl_new(int fd, unsigned long req, void *arg)
{
	int r, saved;

	create_begin();
	r = pl_sys_ioctl(fd, req, arg);
	saved = errno;
	pl_fds_hold(r);
	create_end();
	errno = saved;
	return r;
}

int __wrap_close(int fd)
{
	pl_fds_drop(fd);
	return pl_sys_close(fd);
}
