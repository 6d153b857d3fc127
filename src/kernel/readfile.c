/* SPDX-License-Identifier: MIT */
/* readfile.c - opening kernel files without blocking on impostors (see readfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/readfile.h"

/* An fd of path if it is a regular file, or -errno. */
static int open_regular(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

long sp_read_small(const char *path, char *buf, size_t len)
{
	size_t n = 0;
	int fd = open_regular(path);

	if (len)
		buf[0] = 0;
	if (fd < 0)
		return fd;
	while (n + 1 < len) {
		ssize_t r = read(fd, buf + n, len - 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			r = -errno;
			close(fd);
			return (long)r;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (len)
		buf[n] = 0;
	return (long)n;
}

FILE *sp_fopen_small(const char *path)
{
	int fd = open_regular(path);
	FILE *f;

	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	f = fdopen(fd, "re");
	if (!f) {
		int err = errno;

		close(fd);
		errno = err;
	}
	return f;
}
