/* SPDX-License-Identifier: MIT */
/*
 * preload.h - libsamepage-preload.so: unmodified programs on the userspace
 * engine. Internal to the library (nothing here is exported).
 *
 *   sys.c        system calls made directly, never through the interposers
 *   arena.c      the library's own memory: one reservation, never merged
 *   wrap.c       what the engine's objects call instead of libc (-Wl,--wrap)
 *   maps.c       /proc/self/maps without stdio or malloc; what is excluded
 *   set.c        sets of address ranges
 *   merge.c      what is mergeable, what is registered, merge-any, fork
 *   interpose.c  the exported libc functions (madvise, munmap, prctl, ...)
 *   fds.c        the descriptors the engine opens, kept from the program
 */
#ifndef SP_PRELOAD_H
#define SP_PRELOAD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PL_PAGE	  4096ul
#define PL_HIDDEN __attribute__((visibility("hidden")))

/* ---- sys.c: the kernel's calls, errno set as libc does ------------------ */
void *pl_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int pl_sys_munmap(void *addr, size_t len);
void *pl_sys_mremap(void *old, size_t oldlen, size_t newlen, int flags, void *new_addr);
int pl_sys_madvise(void *addr, size_t len, int advice);
int pl_sys_mprotect(void *addr, size_t len, int prot);
int pl_sys_ioctl(int fd, unsigned long req, void *arg);
int pl_sys_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);
int pl_sys_close(int fd);
/* 1 if fd is one of the engine's (held by fds.c: its userfaultfd, store, maps,
 * samepaged's sockets, a file wrap.c has open): a program closing every
 * descriptor it did not open must not close those (the number would be
 * reused for the program's own file, and the engine would write there). */
int pl_engine_fd(int fd);
/* all of them (>= 3), sorted: how many, at most max */
#define PL_ENGINE_FDS_MAX 160
int pl_engine_fds(int *out, int max);
/* write(2) all of it to fd 2 (no stdio: no lock a frozen program thread
 * could hold) */
void pl_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- fds.c: every descriptor the engine's code creates is held until it
 * closes it; the program's close, close_range and closefrom skip those ---- */
void pl_fds_hold(int fd);
void pl_fds_drop(int fd);
int pl_fds_list(int *out, int max); /* held ones >= 3, unsorted */
/* around a close by the program: waits out a creation under way */
void pl_fds_close_begin(void);
void pl_fds_close_end(void);
void pl_fds_fork_child(void);
int pl_fds_ioctl_new(int fd, unsigned long req, void *arg); /* USERFAULTFD_IOC_NEW */

/* ---- arena.c ------------------------------------------------------------- */
/* Reserves the arena (idempotent; 0 or -errno). Everything the library and
 * the engine allocate lives in it: the engine's threads never touch memory
 * that could be registered, so never block on a frozen page. */
int pl_arena_init(void);
int pl_arena_has(uintptr_t lo, uintptr_t hi); /* overlaps the arena */
void pl_arena_bounds(uintptr_t *lo, uintptr_t *hi);
/* page runs (zeroed), for thread stacks, scratch buffers, big arrays */
void *pl_pages(size_t len);
void pl_pages_free(void *p, size_t len);
void *pl_malloc(size_t n);
void *pl_calloc(size_t n, size_t k);
void *pl_realloc(void *p, size_t n);
/* Room for n elements of elem bytes in the growing array *v of *cap
 * (doubled, 16 at first). 0, or -ENOMEM with *v and *cap as they were. */
int pl_reserve(void **v, size_t *cap, size_t n, size_t elem);
void pl_free(void *p);
void pl_arena_lock_all(void);
void pl_arena_unlock_all(void);
void pl_arena_reinit_locks(void);

/* ---- maps.c -------------------------------------------------------------- */
struct pl_vma {
	uintptr_t start, end;
	int prot;      /* PROT_* */
	int shared;    /* 's' */
	uint64_t ino;  /* 0: anonymous */
	int named;     /* has a name: [heap], [stack], a path, ... */
	char name[24]; /* the start of it ("[stack]", "[vvar]", ...) */
};
/* Calls fn on each mapping of /proc/self/maps in order; stops when fn
 * returns non-zero (returned). -errno if the file cannot be read. */
int pl_maps_each(int (*fn)(void *ctx, const struct pl_vma *v), void *ctx);
/* Ranges the engine must never register: the arena, and the writable
 * segments of every loaded object but the program (this library's .data
 * and .bss, libc's, ...: the engine's threads write them). fn per range. */
void pl_excluded_each(void (*fn)(void *ctx, uintptr_t lo, uintptr_t hi), void *ctx);
/* The inode of mapping-backing store pages (the engine's memfd), 0 none. */
uint64_t pl_store_ino(void);

/* ---- set.c --------------------------------------------------------------- */
struct pl_range {
	uintptr_t lo, hi;
};
struct pl_set {
	struct pl_range *r; /* sorted, disjoint, not touching */
	size_t n, cap;
};
int pl_set_add(struct pl_set *s, uintptr_t lo, uintptr_t hi); /* 0, -ENOMEM */
int pl_set_del(struct pl_set *s, uintptr_t lo, uintptr_t hi); /* 0, -ENOMEM */
int pl_set_overlaps(const struct pl_set *s, uintptr_t lo, uintptr_t hi);
int pl_set_covers(const struct pl_set *s, uintptr_t lo, uintptr_t hi);
/* Copies of the parts of s inside [lo, hi) into out (a fresh set). */
int pl_set_clip(const struct pl_set *s, uintptr_t lo, uintptr_t hi, struct pl_set *out);
/* a minus b, into out (a fresh set) */
int pl_set_minus(const struct pl_set *a, const struct pl_set *b, struct pl_set *out);
int pl_set_copy(const struct pl_set *a, struct pl_set *out);
void pl_set_clear(struct pl_set *s);
void pl_set_free(struct pl_set *s);
uint64_t pl_set_bytes(const struct pl_set *s);

/* ---- merge.c ------------------------------------------------------------- */
/* Set-up, from the constructor or the first interposed call. */
void pl_init(void);
/* 1 when the cheap path is right: nothing mergeable, merge-any off. */
int pl_idle(void);
/* A recursion guard: the library's own calls into libc (setenv, dlsym)
 * may come back through the interposers; they pass straight through. */
extern __thread int pl_inside __attribute__((tls_model("initial-exec")));

int pl_madv_mergeable(uintptr_t lo, uintptr_t hi);    /* 0 or -errno */
int pl_madv_unmergeable(uintptr_t lo, uintptr_t hi);  /* 0 or -errno */
int pl_madv_free(void *addr, size_t len, int advice); /* the call's result */
int pl_munmap(void *addr, size_t len);		      /* the call's result */
void *pl_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *pl_mremap(void *old, size_t oldlen, size_t newlen, int flags, void *new_addr);
int pl_mprotect(void *addr, size_t len, int prot);
int pl_merge_any_set(int on); /* 0 or -errno, as PR_SET_MEMORY_MERGE */
int pl_merge_any_get(void);
/* 1 when [lo, hi) holds memory the engine registered (UFFDIO_REGISTER
 * there would be refused with EBUSY). */
int pl_registered(uintptr_t lo, uintptr_t hi);
/* envp with what merge-any needs across execve added; envp itself when
 * nothing is missing. Free with pl_env_free. */
char **pl_env_for_exec(char *const envp[]);
void pl_env_free(char **env, char *const envp[]);

#endif /* SP_PRELOAD_H */
