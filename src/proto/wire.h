/* SPDX-License-Identifier: MIT */
/*
 * wire.h - the messages between samepaged and its clients.
 *
 * Two AF_UNIX SOCK_SEQPACKET connections per client (a message is one
 * packet, so a malformed length can never desynchronise the stream):
 *
 *   control  the client library (or the samepage command) asks, the daemon
 *            answers: HELLO, ATTACH, REGISTER, UNREGISTER, STATS, ...
 *   agent    a socketpair the client hands over in ATTACH: the daemon asks,
 *            a thread of the client library answers. It carries what only
 *            the process itself can do to its own address space: map store
 *            pages over frozen runs, map zeros, copy merged pages back.
 *
 * Everything else the daemon does to a client's memory it does itself:
 * reads with process_vm_readv, page state from /proc/PID/pagemap, freezing
 * and thawing with UFFDIO_WRITEPROTECT on the client's userfaultfd (handed
 * over in ATTACH).
 *
 * Every message starts with struct sp_msg; the body follows. Integers are
 * the machine's own (both ends run on one host). A message longer than
 * SP_MSG_MAX, shorter than its type's body or of an unknown type ends the
 * connection.
 */
#ifndef SP_PROTO_WIRE_H
#define SP_PROTO_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define SP_WIRE_VERSION	  2 /* 2: SP_A_BATCH replaced SP_A_REMAP and SP_A_WAKE_BLOCKED */
#define SP_MSG_MAX	  65536
#define SP_NAME_MAX	  64
#define SP_DEFAULT_SOCKET "/run/samepage/samepaged.sock"

enum sp_msg_type {
	/* control: client -> daemon, each answered by SP_M_REPLY */
	SP_M_HELLO = 1,	   /* body sp_hello; reply body sp_hello_ok, fds: store [, /dev/userfaultfd] */
	SP_M_ATTACH,	   /* body sp_attach, fds: userfaultfd, agent socket */
	SP_M_REGISTER,	   /* body sp_range_msg */
	SP_M_UNREGISTER,   /* body sp_range_msg */
	SP_M_REGION_STATS, /* body sp_range_msg; reply body struct samepage_region_stats */
	SP_M_STATS,	   /* no body; reply body struct samepage_stats (the domain's) */
	SP_M_GET,	   /* body sp_knob_msg (value empty); reply body text */
	SP_M_SET,	   /* body sp_knob_msg: root or the admin group only */
	SP_M_STATUS,	   /* body none or sp_status_req; reply body text: domains, clients (sp_wire_status) */
	SP_M_FORK,	   /* no body: the client forks, its child keeps store mappings (pins them) */
	/* agent: daemon -> client, each answered by SP_M_REPLY */
	SP_A_BATCH = 64,  /* body sp_remap_msg[] done in order (npages 0: wake_blocked); reply body int32 err each */
	SP_A_ZAP,	  /* body sp_range_msg */
	SP_A_UNMERGE,	  /* body sp_range_msg */
	SP_A_RESTORE,	  /* body sp_range_msg */
	SP_A_EVENTS,	  /* no body; reply body: uint64_t addresses now plain anonymous */
	SP_M_REPLY = 128, /* body: int32 err (0 or -errno), then the answer */
};

/* STATUS after the first page: the blocks before skip were had already */
struct sp_status_req {
	uint32_t skip;
	uint32_t pad;
};

struct sp_msg {
	uint32_t type;
	uint32_t len; /* of the body */
};

struct sp_reply {
	int32_t err;
	uint32_t pad;
	int64_t budget; /* agent replies: mappings the client may still get */
};

struct sp_hello {
	uint32_t version;
	uint32_t flags;
	char label[SP_NAME_MAX]; /* domain label asked for ("" none) */
};

struct sp_hello_ok {
	uint32_t version;
	uint32_t flags;		  /* SP_HELLO_DEVUFFD: a /dev/userfaultfd fd follows */
	char domain[SP_NAME_MAX]; /* the domain the client was put in */
};
#define SP_HELLO_DEVUFFD 1

struct sp_attach {
	uint64_t work_addr; /* where the client's "events pending" int lives */
};

struct sp_range_msg {
	uint64_t start, len; /* bytes */
};

struct sp_remap_msg {
	uint64_t addr, npages, pg;
	int32_t joins;
	uint32_t pad;
};

struct sp_knob_msg {
	char name[SP_NAME_MAX];
	char value[SP_NAME_MAX];
	char domain[SP_NAME_MAX]; /* SP_M_SET from the command: "" all domains */
};

/* Connects to a samepaged socket (SOCK_SEQPACKET, close-on-exec): the
 * descriptor, or -errno (-ENAMETOOLONG, -ENOENT, -ECONNREFUSED, ...). */
int sp_wire_connect(const char *path);
/* Sends one message with up to 4 descriptors. 0 or -errno. */
int sp_wire_send(int fd, uint32_t type, const void *body, size_t len, const int *fds, int nfds);
/* Receives one message into buf (cap bytes, header included), waiting at
 * most timeout_ms (-1 forever). Received descriptors go to fds (up to 4,
 * *nfds set; pass NULL to close any). Returns the body length, or -errno:
 * -ECONNRESET the peer closed, -ETIMEDOUT, -EMSGSIZE too long, -EPROTO
 * malformed. */
long sp_wire_recv(int fd, void *buf, size_t cap, int *fds, int *nfds, int timeout_ms);
/* Sends and waits for the SP_M_REPLY: its err, the answer copied to out
 * (at most outlen bytes, *got set when not NULL). Returns err, or -errno
 * of the transport. */
int sp_wire_call(int fd, uint32_t type, const void *body, size_t len, const int *fds, int nfds, void *out,
		 size_t outlen, size_t *got, int *rfds, int *nrfds, int timeout_ms, int64_t *budget);
/* The whole STATUS text, asked page by page: the daemon's line, then a
 * blank line before each block (a domain's or a client's). A client that
 * connects or leaves between two pages can be missed or shown twice.
 * *text is malloc'd (free it). 0 or -errno. */
int sp_wire_status(int fd, char **text, int timeout_ms);
/* Answers with SP_M_REPLY. 0 or -errno. */
int sp_wire_reply(int fd, int err, int64_t budget, const void *body, size_t len, const int *fds, int nfds);

#endif /* SP_PROTO_WIRE_H */
