/* SPDX-License-Identifier: MIT */
/*
 * uffd.c - userfaultfd as the engine's freeze.
 *
 * Write-protect mode: a write to a protected page blocks its thread in the
 * kernel until the range is woken (after the remap) or unprotected. Store
 * mappings are registered in minor mode too, and UFFD_FEATURE_EVENT_REMOVE
 * reports MADV_DONTNEED: together they make a dropped merged page read
 * zeros (local.c, "The event thread"). Since events make their callers wait
 * until they are read, local.c reads the descriptor at all times.
 *
 * Opening follows the kernel's own rules: the userfaultfd(2) syscall works
 * for kernel-mode faults only with CAP_SYS_PTRACE or
 * vm.unprivileged_userfaultfd=1; /dev/userfaultfd works for whoever may open
 * it. UFFD_USER_MODE_ONLY would let a read(2) into a frozen page fail with
 * EFAULT, so it is used only when SAMEPAGE_ALLOW_USER_MODE_ONLY=1 says the
 * application accepts that.
 *
 * Features: UFFD_FEATURE_WP_HUGETLBFS_SHMEM is required, because merged
 * pages are memfd-backed and must be protectable again once a write has
 * broken their copy-on-write; UFFD_FEATURE_EVENT_REMOVE and
 * UFFD_FEATURE_MINOR_SHMEM, for MADV_DONTNEED on merged pages (all three:
 * Linux 5.19+). UFFD_FEATURE_EVENT_UNMAP is never requested: it would make
 * the engine's own MAP_FIXED remap wait for itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mem/local.h"

static int handshake(int fd, uint64_t want, uint64_t *got)
{
	struct uffdio_api api = {.api = UFFD_API, .features = want};

	if (ioctl(fd, UFFDIO_API, &api))
		return -errno;
	*got = api.features;
	return 0;
}

static int open_fd(int user_mode_only)
{
	int flags = O_CLOEXEC | O_NONBLOCK | (user_mode_only ? UFFD_USER_MODE_ONLY : 0);
	int fd = (int)syscall(SYS_userfaultfd, flags);
	int dev, err;

	if (fd >= 0 || user_mode_only)
		return fd >= 0 ? fd : -errno;
	err = errno;
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -err;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	err = errno;
	close(dev);
	return fd >= 0 ? fd : -err;
}

int sp_uffd_open(struct sp_uffd *u, char *why, size_t whylen)
{
	return sp_uffd_open_dev(u, -1, why, whylen);
}

int sp_uffd_open_dev(struct sp_uffd *u, int dev, char *why, size_t whylen)
{
	const char *allow = getenv("SAMEPAGE_ALLOW_USER_MODE_ONLY");
	int fd, err;

	memset(u, 0, sizeof(*u));
	u->fd = -1;
	if (dev >= 0) {
		/* handed over by samepaged: works without any privilege */
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		fd = fd >= 0 ? fd : -errno;
	} else {
		fd = open_fd(0);
	}
	if (fd < 0 && fd != -ENOSYS && allow && !strcmp(allow, "1")) {
		fd = open_fd(1);
		u->user_mode_only = fd >= 0;
	}
	if (fd < 0) {
		if (fd == -ENOSYS)
			snprintf(why, whylen, "userfaultfd is not available in this kernel (CONFIG_USERFAULTFD)");
		else
			snprintf(why, whylen,
				 "userfaultfd for kernel-mode faults is not permitted: needs CAP_SYS_PTRACE, "
				 "vm.unprivileged_userfaultfd=1 or access to /dev/userfaultfd (%s); "
				 "SAMEPAGE_ALLOW_USER_MODE_ONLY=1 accepts that read(2) into a page being merged "
				 "may fail with EFAULT",
				 strerror(-fd));
		return fd;
	}
	err = handshake(fd, UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_MINOR_SHMEM,
			&u->features);
	if (err) {
		snprintf(why, whylen,
			 "userfaultfd lacks write-protection of shared memory, minor faults on shared memory or "
			 "remove events (UFFD_FEATURE_WP_HUGETLBFS_SHMEM, _MINOR_SHMEM, _EVENT_REMOVE; "
			 "Linux 5.19+): %s",
			 strerror(-err));
		close(fd);
		return err == -EINVAL ? -ENOSYS : err;
	}
	u->fd = fd;
	return 0;
}

void sp_uffd_close(struct sp_uffd *u)
{
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
}

int sp_uffd_register(struct sp_uffd *u, uintptr_t addr, size_t len)
{
	struct uffdio_register r = {.range = {.start = addr, .len = len}, .mode = UFFDIO_REGISTER_MODE_WP};

	return ioctl(u->fd, UFFDIO_REGISTER, &r) ? -errno : 0;
}

/* Store mappings: write-protect and minor mode (anonymous memory cannot
 * have minor mode: EINVAL). */
int sp_uffd_register_store(struct sp_uffd *u, uintptr_t addr, size_t len)
{
	struct uffdio_register r = {.range = {.start = addr, .len = len},
				    .mode = UFFDIO_REGISTER_MODE_WP | UFFDIO_REGISTER_MODE_MINOR};

	return ioctl(u->fd, UFFDIO_REGISTER, &r) ? -errno : 0;
}

int sp_uffd_continue(struct sp_uffd *u, uintptr_t addr, size_t len)
{
	struct uffdio_continue c = {.range = {.start = addr, .len = len}};

	return ioctl(u->fd, UFFDIO_CONTINUE, &c) ? -errno : 0;
}

int sp_uffd_unregister(struct sp_uffd *u, uintptr_t addr, size_t len)
{
	struct uffdio_range r = {.start = addr, .len = len};

	return ioctl(u->fd, UFFDIO_UNREGISTER, &r) ? -errno : 0;
}

int sp_uffd_protect(struct sp_uffd *u, uintptr_t addr, size_t len, int on)
{
	struct uffdio_writeprotect wp = {.range = {.start = addr, .len = len},
					 .mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0};

	int registered = 0;

	while (ioctl(u->fd, UFFDIO_WRITEPROTECT, &wp)) {
		if (errno == EAGAIN) { /* a remove event not read yet: let the event thread run */
			sched_yield();
			continue;
		}
		/* not registered (a store mapping whose registration failed):
		 * register it now */
		if (on && !registered && (errno == ENOENT || errno == EINVAL)) {
			registered = 1;
			if (!sp_uffd_register_store(u, addr, len) || !sp_uffd_register(u, addr, len))
				continue;
		}
		return -errno;
	}
	return 0;
}

int sp_uffd_wake(struct sp_uffd *u, uintptr_t addr, size_t len)
{
	struct uffdio_range r = {.start = addr, .len = len};

	return ioctl(u->fd, UFFDIO_WAKE, &r) ? -errno : 0;
}
