/* SPDX-License-Identifier: MIT */
/*
 * vmas.c - /proc/PID/smaps into struct sp_vma, with the KSM verdict of each
 * VMA (see vmas.h for the rules).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/readfile.h"
#include "kernel/vmas.h"

/* VmFlags letters that make a VMA incompatible with KSM */
static const char *const incompatible[] = {"sh", "ms", "pf", "io", "de", "ht", "mm"};

static uint32_t vm_flags(const char *s)
{
	uint32_t f = SP_VMA_COMPATIBLE;

	while (*s) {
		while (*s == ' ')
			s++;
		if (!s[0] || !s[1] || s[0] == '\n')
			break;
		if (s[0] == 'm' && s[1] == 'g')
			f |= SP_VMA_MERGEABLE;
		for (size_t i = 0; i < sizeof(incompatible) / sizeof(incompatible[0]); i++)
			if (s[0] == incompatible[i][0] && s[1] == incompatible[i][1])
				f &= ~SP_VMA_COMPATIBLE;
		s += 2;
	}
	return f;
}

/* "start-end perms offset dev inode [name]": 1 for a header line */
static int parse_header(const char *line, struct sp_vma *v)
{
	unsigned long long start, end;
	int name_at = 0;
	char perms[8];

	if (sscanf(line, "%llx-%llx %7s %*s %*s %*s %n", &start, &end, perms, &name_at) < 3 || !name_at)
		return 0;
	memset(v, 0, sizeof(*v));
	v->start = (uintptr_t)start;
	v->end = (uintptr_t)end;
	snprintf(v->name, sizeof(v->name), "%s", line + name_at);
	v->name[strcspn(v->name, "\n")] = 0;
	return 1;
}

int sp_vmas_parse(FILE *f, struct sp_vma_list *out)
{
	char line[512];
	struct sp_vma *cur = NULL;

	out->n = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long kb;

		/* headers start with a lowercase hex address, fields with a
		 * capitalised name */
		if ((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f')) {
			struct sp_vma v;

			if (parse_header(line, &v)) {
				if (out->n == out->cap) {
					size_t cap = out->cap ? out->cap * 2 : 64;
					struct sp_vma *p = realloc(out->v, cap * sizeof(*p));

					if (!p)
						return -ENOMEM;
					out->v = p;
					out->cap = cap;
				}
				out->v[out->n] = v;
				cur = &out->v[out->n++];
				continue;
			}
			return -EINVAL;
		}
		if (!cur)
			return -EINVAL;
		if (sscanf(line, "Anonymous: %llu kB", &kb) == 1)
			cur->anon_kb = kb;
		else if (sscanf(line, "KSM: %llu kB", &kb) == 1)
			cur->ksm_kb = kb;
		else if (!strncmp(line, "VmFlags:", 8))
			cur->flags = vm_flags(line + 8);
	}
	return 0;
}

int sp_vmas_read(const char *proc, int pid, struct sp_vma_list *out)
{
	char path[256];
	FILE *f;
	int err;

	snprintf(path, sizeof(path), "%s/%d/smaps", proc, pid);
	f = sp_fopen_small(path);
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	err = sp_vmas_parse(f, out);
	if (!err && ferror(f))
		err = errno == ESRCH ? -ESRCH : -EIO;
	fclose(f);
	return err;
}

void sp_vmas_free(struct sp_vma_list *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}
