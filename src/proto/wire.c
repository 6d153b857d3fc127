/* SPDX-License-Identifier: MIT */
/*
 * wire.c - one message per SOCK_SEQPACKET packet, descriptors as
 * SCM_RIGHTS; see wire.h.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto/wire.h"

#define MAX_FDS 4

int sp_wire_connect(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd, err;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	memcpy(a.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int sp_wire_send(int fd, uint32_t type, const void *body, size_t len, const int *fds, int nfds)
{
	struct sp_msg h = {.type = type, .len = (uint32_t)len};
	struct iovec iov[2] = {{.iov_base = &h, .iov_len = sizeof(h)}, {.iov_base = (void *)body, .iov_len = len}};
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
	ssize_t n;

	if (len + sizeof(h) > SP_MSG_MAX || nfds < 0 || nfds > MAX_FDS)
		return -EMSGSIZE;
	if (nfds) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EPIPE ? -ECONNRESET : -errno;
	return (size_t)n == sizeof(h) + len ? 0 : -EPROTO;
}

static int wait_in(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int r;

	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r ? 0 : -ETIMEDOUT;
}

long sp_wire_recv(int fd, void *buf, size_t cap, int *fds, int *nfds, int timeout_ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = buf, .iov_len = cap};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	const struct sp_msg *h = buf;
	int got_fds[MAX_FDS], ngot = 0, err;
	ssize_t n;

	if (nfds)
		*nfds = 0;
	err = wait_in(fd, timeout_ms);
	if (err)
		return err;
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int d;

			memcpy(&d, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (ngot < MAX_FDS)
				got_fds[ngot++] = d;
			else
				close(d);
		}
	}
	if (!fds || !nfds) {
		while (ngot)
			close(got_fds[--ngot]);
	} else {
		memcpy(fds, got_fds, sizeof(int) * (size_t)ngot);
		*nfds = ngot;
	}
	if (n == 0)
		err = -ECONNRESET;
	else if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		err = -EMSGSIZE;
	else if ((size_t)n < sizeof(*h) || h->len != (size_t)n - sizeof(*h))
		err = -EPROTO;
	if (err) {
		if (fds && nfds)
			while (*nfds)
				close(fds[--*nfds]);
		return err;
	}
	return (long)h->len;
}

int sp_wire_reply(int fd, int err, int64_t budget, const void *body, size_t len, const int *fds, int nfds)
{
	char buf[SP_MSG_MAX];
	struct sp_reply r = {.err = err, .budget = budget};

	if (sizeof(r) + len + sizeof(struct sp_msg) > sizeof(buf))
		return -EMSGSIZE;
	memcpy(buf, &r, sizeof(r));
	if (len)
		memcpy(buf + sizeof(r), body, len);
	return sp_wire_send(fd, SP_M_REPLY, buf, sizeof(r) + len, fds, nfds);
}

int sp_wire_call(int fd, uint32_t type, const void *body, size_t len, const int *fds, int nfds, void *out,
		 size_t outlen, size_t *got, int *rfds, int *nrfds, int timeout_ms, int64_t *budget)
{
	static __thread char buf[SP_MSG_MAX];
	const struct sp_msg *h = (const void *)buf;
	struct sp_reply r;
	long n;
	int err = sp_wire_send(fd, type, body, len, fds, nfds);

	if (err)
		return err;
	n = sp_wire_recv(fd, buf, sizeof(buf), rfds, nrfds, timeout_ms);
	if (n < 0)
		return (int)n;
	if (h->type != SP_M_REPLY || (size_t)n < sizeof(r)) {
		if (rfds && nrfds)
			while (*nrfds)
				close(rfds[--*nrfds]);
		return -EPROTO;
	}
	memcpy(&r, buf + sizeof(*h), sizeof(r));
	n -= (long)sizeof(r);
	if (out) {
		size_t k = (size_t)n < outlen ? (size_t)n : outlen;

		memcpy(out, buf + sizeof(*h) + sizeof(r), k);
		if (got)
			*got = k;
	}
	if (budget)
		*budget = r.budget;
	return r.err;
}

/* The blocks of a STATUS page (after its first line), without the last
 * block if it is "more N" (then *next is N; else 0). */
static void page_blocks(const char *page, size_t n, const char **from, size_t *len, uint32_t *next)
{
	const char *nl = memchr(page, '\n', n), *end = page + n, *more;

	*next = 0;
	*from = nl ? nl + 1 : end;
	*len = (size_t)(end - *from);
	/* "\nmore N\n" at the very end */
	if (*len >= 8 && end[-1] == '\n') {
		for (more = end - 2; more > *from && *more != '\n'; more--)
			;
		if (*more == '\n' && end - more > 6 && !memcmp(more, "\nmore ", 6)) {
			*next = (uint32_t)strtoul(more + 6, NULL, 10);
			*len = (size_t)(more - *from);
		}
	}
}

int sp_wire_status(int fd, char **text, int timeout_ms)
{
	char *page = malloc(SP_MSG_MAX + 1), *all = NULL;
	size_t got = 0, have = 0, cap = 0;
	struct sp_status_req q = {0};
	int err = page ? 0 : -ENOMEM;

	/* at most as many pages as there can be blocks */
	for (int pages = 0; !err && pages < 65536; pages++) {
		const char *from;
		size_t len, head;
		uint32_t next;

		err = sp_wire_call(fd, SP_M_STATUS, q.skip ? &q : NULL, q.skip ? sizeof(q) : 0, NULL, 0, page,
				   SP_MSG_MAX, &got, NULL, NULL, timeout_ms, NULL);
		if (err)
			break;
		page_blocks(page, got, &from, &len, &next);
		head = pages ? 0 : (size_t)(from - page); /* the daemon's line: once */
		if (have + head + len + 1 > cap) {
			char *more = realloc(all, (have + head + len + 1) * 2);

			if (!more) {
				err = -ENOMEM;
				break;
			}
			all = more;
			cap = (have + head + len + 1) * 2;
		}
		memcpy(all + have, page, head);
		memcpy(all + have + head, from, len);
		have += head + len;
		all[have] = 0;
		if (!next || next <= q.skip) /* (a daemon going backwards: stop) */
			break;
		q.skip = next;
	}
	free(page);
	if (err) {
		free(all);
		return err;
	}
	*text = all;
	return 0;
}
