/* SPDX-License-Identifier: MIT */
/*
 * maps.c - lines of /proc/self/maps: the one parser the local backend uses
 * (registering memory, and finding a mapping's protection where the
 * PROCMAP_QUERY ioctl is missing).
 */
#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>

#include "mem/local.h"

int sp_maps_parse(const char *line, struct sp_maps_line *v)
{
	char perms[8];
	unsigned long long s, e, off, ino;
	unsigned maj, mnr;

	if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu", &s, &e, perms, &off, &maj, &mnr, &ino) != 7)
		return -1;
	v->start = (uintptr_t)s;
	v->end = (uintptr_t)e;
	v->prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
		  (perms[2] == 'x' ? PROT_EXEC : 0);
	v->private = perms[3] == 'p';
	v->inode = ino;
	return 0;
}

int sp_maps_find(uintptr_t addr, struct sp_maps_line *v)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sp_maps_parse(line, v) || addr < v->start || addr >= v->end)
			continue;
		fclose(f);
		return 0;
	}
	fclose(f);
	return -ENOMEM;
}
