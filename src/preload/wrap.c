/* SPDX-License-Identifier: MIT */
/*
 * wrap.c - libc calls of the engine's objects that would otherwise write
 * memory the program owns, or take locks a program thread may hold while
 * it waits on a frozen page (linked with -Wl,--wrap=SYMBOL):
 *
 *   fopen/fgets/fclose  stdio takes the global list lock and mallocs the
 *                       FILE in the program's heap: a small reader of its
 *                       own, in static slots, instead (the engine only
 *                       reads /proc/self/maps line by line)
 *   fprintf(stderr)     formatted on the stack, one write(2); a message of
 *                       a failed set-up is kept for the library to report
 *   strerror            strerrordesc_np: no locale, no translation lookup
 *   pthread_create      the stack (and with it the thread's static TLS) in
 *                       the arena, guard page below; pthread_join frees it
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "preload/preload.h"

#define NFILES	   16
#define STACK_SIZE (2ul << 20)
#define MAX_JOIN   64

/* ---- stdio ----------------------------------------------------------------- */

struct pl_file {
	int used;
	int fd;
	size_t pos, len;
	char buf[4096];
};

static struct pl_file files[NFILES];

FILE *__wrap_fopen(const char *path, const char *mode);
char *__wrap_fgets(char *s, int n, FILE *f);
int __wrap_fclose(FILE *f);
int __wrap_fprintf(FILE *f, const char *fmt, ...);
char *__wrap_strerror(int err);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
int __wrap_pthread_join(pthread_t t, void **ret);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
int __real_pthread_join(pthread_t t, void **ret);

FILE *__wrap_fopen(const char *path, const char *mode)
{
	int fd;

	if (mode[0] != 'r' || strchr(mode, '+')) {
		errno = EINVAL; /* the engine only reads */
		return NULL;
	}
	for (int i = 0; i < NFILES; i++) {
		int free_slot = 0;

		if (!__atomic_compare_exchange_n(&files[i].used, &free_slot, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			continue;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			__atomic_store_n(&files[i].used, 0, __ATOMIC_RELEASE);
			return NULL;
		}
		files[i].fd = fd;
		files[i].pos = files[i].len = 0;
		return (FILE *)(void *)&files[i];
	}
	errno = EMFILE;
	return NULL;
}

char *__wrap_fgets(char *s, int n, FILE *stream)
{
	struct pl_file *f = (struct pl_file *)(void *)stream;
	int k = 0;

	if (n <= 0)
		return NULL;
	while (k < n - 1) {
		if (f->pos == f->len) {
			ssize_t got;

			do
				got = read(f->fd, f->buf, sizeof(f->buf));
			while (got < 0 && errno == EINTR);
			if (got <= 0)
				break;
			f->pos = 0;
			f->len = (size_t)got;
		}
		s[k++] = f->buf[f->pos++];
		if (s[k - 1] == '\n')
			break;
	}
	if (!k)
		return NULL;
	s[k] = 0;
	return s;
}

int __wrap_fclose(FILE *stream)
{
	struct pl_file *f = (struct pl_file *)(void *)stream;

	close(f->fd); /* (fds.c's: no longer held) */
	__atomic_store_n(&f->used, 0, __ATOMIC_RELEASE);
	return 0;
}

/* The engine's messages: on stderr by one write, or kept (pl_keep) when
 * the library reports a failed set-up itself, in one line of its own. */
__thread char *pl_keep __attribute__((tls_model("initial-exec")));
__thread size_t pl_keep_len __attribute__((tls_model("initial-exec")));

int __wrap_fprintf(FILE *f, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	if (f != stderr) {
		n = vfprintf(f, fmt, ap);
		va_end(ap);
		return n;
	}
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return n;
	if (pl_keep && pl_keep_len) {
		snprintf(pl_keep, pl_keep_len, "%s", buf);
		pl_keep[strcspn(pl_keep, "\n")] = 0;
	} else {
		pl_say("%s", buf);
	}
	return n;
}

char *__wrap_strerror(int err)
{
	const char *s = strerrordesc_np(err);

	return (char *)(s ? s : "Unknown error");
}

/* ---- threads ----------------------------------------------------------------- */

struct start {
	void *(*fn)(void *);
	void *arg;
};

static struct {
	pthread_mutex_t lock;
	struct {
		pthread_t t;
		void *stack;
	} j[MAX_JOIN];
	int n;
} joinable = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *trampoline(void *p)
{
	struct start s = *(struct start *)p;
	sigset_t all;

	pl_free(p);
	pl_inside = 1; /* an engine thread: never the program's */
	/* the program's signal handlers run on its own threads, where its
	 * calls are seen (and never on a stack of the arena) */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	return s.fn(s.arg);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	struct start *s = pl_malloc(sizeof(*s));
	char *stack = pl_pages(STACK_SIZE);
	pthread_attr_t a;
	int err, detached = PTHREAD_CREATE_JOINABLE;

	if (!s || !stack) {
		pl_free(s);
		pl_pages_free(stack, STACK_SIZE);
		return EAGAIN;
	}
	s->fn = fn;
	s->arg = arg;
	pl_sys_mprotect(stack, PL_PAGE, PROT_NONE); /* guard */
	pthread_attr_init(&a);
	if (attr)
		pthread_attr_getdetachstate(attr, &detached);
	pthread_attr_setdetachstate(&a, detached);
	pthread_attr_setstack(&a, stack + PL_PAGE, STACK_SIZE - PL_PAGE);
	err = __real_pthread_create(t, &a, trampoline, s);
	pthread_attr_destroy(&a);
	if (err) {
		pl_free(s);
		pl_sys_mprotect(stack, PL_PAGE, PROT_READ | PROT_WRITE);
		pl_pages_free(stack, STACK_SIZE);
		return err;
	}
	if (detached == PTHREAD_CREATE_JOINABLE) {
		pthread_mutex_lock(&joinable.lock);
		if (joinable.n < MAX_JOIN) { /* else its stack stays (never happens) */
			joinable.j[joinable.n].t = *t;
			joinable.j[joinable.n].stack = stack;
			joinable.n++;
		}
		pthread_mutex_unlock(&joinable.lock);
	}
	return 0;
}

int __wrap_pthread_join(pthread_t t, void **ret)
{
	int err = __real_pthread_join(t, ret);

	if (err)
		return err;
	pthread_mutex_lock(&joinable.lock);
	for (int i = 0; i < joinable.n; i++) {
		if (!pthread_equal(joinable.j[i].t, t))
			continue;
		pl_sys_mprotect(joinable.j[i].stack, PL_PAGE, PROT_READ | PROT_WRITE);
		pl_pages_free(joinable.j[i].stack, STACK_SIZE);
		joinable.j[i] = joinable.j[--joinable.n];
		break;
	}
	pthread_mutex_unlock(&joinable.lock);
	return 0;
}
