/* SPDX-License-Identifier: MIT */
/*
 * qemuguest.c - QEMU guests in tests; see qemuguest.h.
 */
#include <elf.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "qemuguest.h"

/* 1 if path is an x86-64 ELF executable without a program interpreter:
 * the guest has no libc, so only a static busybox runs there */
static int is_static_elf(const char *path)
{
	Elf64_Ehdr eh;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ok = 0;

	if (fd < 0)
		return 0;
	if (pread(fd, &eh, sizeof(eh), 0) == sizeof(eh) && !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
	    eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_machine == EM_X86_64) {
		ok = 1;
		for (int i = 0; i < eh.e_phnum && ok; i++) {
			Elf64_Phdr ph;

			if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (uint64_t)i * eh.e_phentsize)) !=
			    sizeof(ph))
				ok = 0;
			else if (ph.p_type == PT_INTERP)
				ok = 0;
		}
	}
	close(fd);
	return ok;
}

const char *qg_kernel(void)
{
	static char path[PATH_MAX];
	glob_t g;

	if (glob("/boot/vmlinuz-*", 0, NULL, &g))
		return NULL;
	snprintf(path, sizeof(path), "%s", g.gl_pathv[g.gl_pathc - 1]);
	globfree(&g);
	return path;
}

const char *qg_missing(void)
{
	if (access(QG_QEMU, X_OK))
		return QG_QEMU " is missing (apt-get install qemu-system-x86)";
	if (!is_static_elf(QG_BUSYBOX))
		return "a static " QG_BUSYBOX " is missing (apt-get install busybox-static)";
	if (!qg_kernel())
		return "no kernel image in /boot (apt-get install linux-image-amd64)";
	return NULL;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

void qg_make_initramfs(const char *dir, const char *init)
{
	char path[PATH_MAX], cmd[3 * PATH_MAX];

	snprintf(path, sizeof(path), "%s/root", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	for (const char *const *d = (const char *const[]){"bin", "proc", "tmp", NULL}; *d; d++) {
		snprintf(path, sizeof(path), "%s/root/%s", dir, *d);
		assert_int_equal(mkdir(path, 0755), 0);
	}
	snprintf(path, sizeof(path), "%s/root/init", dir);
	write_file(path, init, 0755);
	snprintf(cmd, sizeof(cmd),
		 "cp " QG_BUSYBOX " %s/root/bin/busybox && cd %s/root && " QG_BUSYBOX " find . | " QG_BUSYBOX
		 " cpio -o -H newc >%s/initrd.cpio 2>/dev/null",
		 dir, dir, dir);
	assert_int_equal(system(cmd), 0);
}

pid_t qg_start(const char *dir, int g, int mib, const char *const *wrap)
{
	char serial[PATH_MAX + 16], initrd[PATH_MAX], out[PATH_MAX], mem[16];
	const char *argv[64];
	int n = 0;
	pid_t pid;

	snprintf(serial, sizeof(serial), "file:%s/guest%d.log", dir, g);
	snprintf(initrd, sizeof(initrd), "%s/initrd.cpio", dir);
	snprintf(out, sizeof(out), "%s/guest%d.run", dir, g);
	snprintf(mem, sizeof(mem), "%d", mib);
	unlink(serial + 5); /* a guest started earlier under this number */
	for (; wrap && wrap[n] && n < 32; n++)
		argv[n] = wrap[n];
	if (n) {
		/* QEMU dies with the wrapper, which dies with the test */
		argv[n++] = "setpriv";
		argv[n++] = "--pdeathsig";
		argv[n++] = "KILL";
	}
	for (const char *const *a = (const char *const[]){QG_QEMU,
							  "-accel",
							  "tcg",
							  "-machine",
							  "pc,mem-merge=on",
							  "-m",
							  mem,
							  "-smp",
							  "1",
							  "-display",
							  "none",
							  "-nodefaults",
							  "-no-reboot",
							  "-serial",
							  serial,
							  "-kernel",
							  qg_kernel(),
							  "-initrd",
							  initrd,
							  "-append",
							  "console=ttyS0 panic=-1 quiet",
							  NULL};
	     *a; a++)
		argv[n++] = *a;
	argv[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		int null = open("/dev/null", O_RDWR), fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL); /* no guest outlives the test */
		setpgid(0, 0);			  /* the test kills the group */
		dup2(null, 0);
		dup2(fd >= 0 ? fd : null, 1);
		dup2(fd >= 0 ? fd : null, 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	setpgid(pid, pid); /* (whichever runs first) */
	return pid;
}

char *qg_console(const char *dir, int g, char *buf, size_t len)
{
	char path[PATH_MAX];
	int fd;
	off_t size;
	ssize_t n = 0;

	snprintf(path, sizeof(path), "%s/guest%d.log", dir, g);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		size = lseek(fd, 0, SEEK_END);
		if (size > (off_t)len - 1)
			size -= (off_t)len - 1;
		else
			size = 0;
		n = pread(fd, buf, len - 1, size);
		close(fd);
	}
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

int qg_printed(const char *dir, int g, const char *marker)
{
	static char buf[1 << 20];
	char path[PATH_MAX];
	int fd;
	ssize_t n = 0;

	snprintf(path, sizeof(path), "%s/guest%d.log", dir, g);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = 0;
	return strstr(buf, marker) != NULL;
}

void qg_cleanup(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		fprintf(stderr, "  could not remove %s\n", dir);
}
