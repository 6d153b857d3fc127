/* SPDX-License-Identifier: MIT */
/* cpulist.c - CPU sets in the kernel's list format (see cpulist.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/cpulist.h"

void sp_cpus_set(struct sp_cpus *c, int cpu)
{
	c->bits[cpu / 64] |= 1ull << (cpu % 64);
}

int sp_cpus_has(const struct sp_cpus *c, int cpu)
{
	return cpu >= 0 && cpu < SP_MAXCPU && (c->bits[cpu / 64] >> (cpu % 64)) & 1;
}

int sp_cpus_count(const struct sp_cpus *c)
{
	int n = 0;

	for (int i = 0; i < SP_MAXCPU / 64; i++)
		n += __builtin_popcountll(c->bits[i]);
	return n;
}

static int parse_num(const char **s, long *out)
{
	char *end;

	if (!isdigit((unsigned char)**s))
		return -EINVAL;
	*out = strtol(*s, &end, 10);
	*s = end;
	return *out < SP_MAXCPU ? 0 : -EINVAL;
}

int sp_cpus_parse(const char *s, struct sp_cpus *out)
{
	memset(out, 0, sizeof(*out));
	while (*s && *s != '\n') {
		long a, b;

		if (parse_num(&s, &a))
			return -EINVAL;
		b = a;
		if (*s == '-') {
			s++;
			if (parse_num(&s, &b) || b < a)
				return -EINVAL;
		}
		for (long i = a; i <= b; i++)
			sp_cpus_set(out, (int)i);
		if (*s == ',')
			s++;
		else if (*s && *s != '\n')
			return -EINVAL;
	}
	return 0;
}

char *sp_cpus_format(const struct sp_cpus *c, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = 0;
	for (int i = 0; i < SP_MAXCPU; i++) {
		int j = i;

		if (!sp_cpus_has(c, i))
			continue;
		while (sp_cpus_has(c, j + 1))
			j++;
		if (j == i)
			used += snprintf(buf + used, used < len ? len - used : 0, "%s%d", used ? "," : "", i);
		else
			used += snprintf(buf + used, used < len ? len - used : 0, "%s%d-%d", used ? "," : "", i, j);
		i = j;
	}
	return buf;
}

void sp_cpus_and(const struct sp_cpus *a, const struct sp_cpus *b, struct sp_cpus *out)
{
	for (int i = 0; i < SP_MAXCPU / 64; i++)
		out->bits[i] = a->bits[i] & b->bits[i];
}

void sp_cpus_andnot(const struct sp_cpus *a, const struct sp_cpus *b, struct sp_cpus *out)
{
	for (int i = 0; i < SP_MAXCPU / 64; i++)
		out->bits[i] = a->bits[i] & ~b->bits[i];
}
