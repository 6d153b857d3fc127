/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"
#include "util/clock.h"

void t_fill(void *page, uint32_t tag)
{
	uint32_t *w = page;

	for (size_t i = 0; i < TPAGE / 4; i++)
		w[i] = tag ? tag * 2654435761u + (uint32_t)i * 40503u : 0;
}

int t_check(const void *page, uint32_t tag)
{
	const uint32_t *w = page;

	for (size_t i = 0; i < TPAGE / 4; i++)
		if (w[i] != (tag ? tag * 2654435761u + (uint32_t)i * 40503u : 0))
			return 0;
	return 1;
}

uint64_t t_now_ms(void)
{
	return sp_mono_ns() / 1000000;
}

void *t_map(size_t npages)
{
	void *p = mmap(NULL, npages * TPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		abort();
	}
	return p;
}

#define KSM "/sys/kernel/mm/ksm/"
/* advisor_mode first: setting it resets pages_to_scan */
static const char *knobs[] = {"advisor_mode",
			      "pages_to_scan",
			      "sleep_millisecs",
			      "max_page_sharing",
			      "merge_across_nodes",
			      "use_zero_pages",
			      "smart_scan",
			      "stable_node_chains_prune_millisecs",
			      "advisor_max_cpu",
			      "advisor_target_scan_time",
			      "advisor_min_pages_to_scan",
			      "advisor_max_pages_to_scan"};
#define NKNOBS (sizeof(knobs) / sizeof(knobs[0]))
static char saved[NKNOBS][64];
static char saved_run[16];
static int have_saved;

/* KSM "knob" into path (no snprintf: these run in signal handlers too) */
static void knob_path(char *path, size_t len, const char *knob)
{
	size_t a = strlen(KSM), b = strlen(knob);

	if (a + b + 1 > len)
		b = len - a - 1;
	memcpy(path, KSM, a);
	memcpy(path + a, knob, b);
	path[a + b] = 0;
}

static int read_text(const char *knob, char *buf, size_t len)
{
	char path[256];
	int fd;
	ssize_t n;

	knob_path(path, sizeof(path), knob);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = 0;
	return 0;
}

int t_ksm_set(const char *knob, const char *value)
{
	char path[256];
	int fd, ok;

	knob_path(path, sizeof(path), knob);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ok = write(fd, value, strlen(value)) == (ssize_t)strlen(value);
	close(fd);
	return ok ? 0 : -1;
}

long t_ksm_get(const char *knob)
{
	char buf[64];

	if (read_text(knob, buf, sizeof(buf)))
		return -1;
	return strtol(buf, NULL, 10);
}

int t_ksm_available(void)
{
	return access(KSM "run", W_OK) == 0;
}

static const int fatal[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};

static void on_fatal(int sig)
{
	t_ksm_restore(); /* open/read/write/close only: async-signal-safe */
	signal(sig, SIG_DFL);
	raise(sig);
}

/* A descriptor of T_KSM_LOCK this process inherited, -1 if none. Under
 * `flock /tmp/samepage-ksm.lock CMD` the lock is held through that very
 * descriptor (one open file), so taking it again through it succeeds at
 * once, where a fresh open() of the file would wait for ever on our own
 * caller. */
static int inherited_lock(void)
{
	struct stat want, st;
	struct dirent *e;
	DIR *d;
	int fd = -1;

	if (stat(T_KSM_LOCK, &want) || !(d = opendir("/proc/self/fd")))
		return -1;
	while (fd < 0 && (e = readdir(d))) {
		int n = atoi(e->d_name);

		if (e->d_name[0] < '0' || e->d_name[0] > '9' || n == dirfd(d))
			continue;
		if (!fstat(n, &st) && st.st_dev == want.st_dev && st.st_ino == want.st_ino &&
		    !flock(n, LOCK_EX | LOCK_NB))
			fd = n;
	}
	closedir(d);
	return fd;
}

void t_ksm_save(void)
{
	int lock;

	if (have_saved)
		return;
	/* one user of the kernel's KSM at a time, across processes */
	if (inherited_lock() < 0) {
		lock = open(T_KSM_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
		if (lock >= 0)
			flock(lock, LOCK_EX); /* held until exit */
	}
	for (size_t i = 0; i < NKNOBS; i++)
		if (read_text(knobs[i], saved[i], sizeof(saved[i])))
			saved[i][0] = 0;
	read_text("run", saved_run, sizeof(saved_run));
	have_saved = 1;
	atexit(t_ksm_restore);
	/* killed (ctest's timeout, ^C, a closed terminal): restore, then die
	 * of the same signal so the caller sees what happened */
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++) {
		struct sigaction sa = {.sa_handler = on_fatal};

		sigemptyset(&sa.sa_mask);
		sigaction(fatal[i], &sa, NULL);
	}
}

void t_ksm_restore(void)
{
	/* once, whichever comes first: exit, a signal, an explicit call */
	if (!__atomic_exchange_n(&have_saved, 0, __ATOMIC_SEQ_CST))
		return;
	t_ksm_set("run", "2");
	t_ksm_set("run", "0");
	for (size_t i = 0; i < NKNOBS; i++) {
		char *v = saved[i], *l = strchr(v, '[');

		if (!v[0])
			continue;
		if (l) { /* "[none] scan-time": the bracketed word is the value */
			char word[64];
			size_t n = 0;

			while (l[1 + n] && l[1 + n] != ']' && n < sizeof(word) - 1) {
				word[n] = l[1 + n];
				n++;
			}
			word[n] = 0;
			t_ksm_set(knobs[i], word);
		} else {
			t_ksm_set(knobs[i], v);
		}
	}
	t_ksm_set("run", saved_run[0] ? saved_run : "0");
}

int t_ksmd_pid(void)
{
	char path[64], comm[32];

	for (int pid = 2; pid < 1 << 16; pid++) {
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strcmp(comm, "ksmd\n")) {
			fclose(f);
			return pid;
		}
		fclose(f);
	}
	return -1;
}

long long t_pss_kib(int pid)
{
	char path[64], line[256];
	long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "Pss:", 4))
			v = atoll(line + 4);
	if (f)
		fclose(f);
	return v;
}

double t_ksmd_cpu(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return 0;
	}
	fclose(f);
	p = strrchr(buf, ')');
	/* after the command: state ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime stime */
	if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
		return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	return 0;
}

void t_diff_layout(uint32_t *tags)
{
	static const size_t group_size[] = {1000, 300, 257, 256, 2};
	uint64_t s = 12345;
	size_t n = 0;

	for (size_t g = 0; g < sizeof(group_size) / sizeof(group_size[0]); g++)
		for (size_t i = 0; i < group_size[g]; i++)
			tags[n++] = (uint32_t)g + 1;
	for (size_t i = 0; i < T_DIFF_NZERO; i++)
		tags[n++] = 0;
	for (size_t i = 0; i < T_DIFF_NUNIQUE; i++)
		tags[n++] = 100 + (uint32_t)i;
	t_shuffle(tags, T_DIFF_NPAGES, &s);
}

void t_shuffle(uint32_t *a, size_t n, uint64_t *seed)
{
	for (size_t i = n ? n - 1 : 0; i > 0; i--) {
		size_t j;
		uint32_t t;

		*seed ^= *seed << 13;
		*seed ^= *seed >> 7;
		*seed ^= *seed << 17;
		j = *seed % (i + 1);
		t = a[i];
		a[i] = a[j];
		a[j] = t;
	}
}

void t_ksm_counters(struct t_ksm_counters *c)
{
	c->shared = t_ksm_get("pages_shared");
	c->sharing = t_ksm_get("pages_sharing");
	c->chains = t_ksm_get("stable_node_chains");
	c->dups = t_ksm_get("stable_node_dups");
	c->zero = t_ksm_get("ksm_zero_pages");
}
