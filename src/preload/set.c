/* SPDX-License-Identifier: MIT */
/* set.c - sets of address ranges: sorted, disjoint, never touching. */
#include <errno.h>
#include <string.h>

#include "preload/preload.h"

static int reserve(struct pl_set *s, size_t n)
{
	return pl_reserve((void **)&s->r, &s->cap, n, sizeof(*s->r));
}

/* first range whose hi >= lo (that is, touching or after lo) */
static size_t first_touching(const struct pl_set *s, uintptr_t lo)
{
	size_t a = 0, b = s->n;

	while (a < b) {
		size_t m = (a + b) / 2;

		if (s->r[m].hi < lo)
			a = m + 1;
		else
			b = m;
	}
	return a;
}

int pl_set_add(struct pl_set *s, uintptr_t lo, uintptr_t hi)
{
	size_t i, j;

	if (lo >= hi)
		return 0;
	i = first_touching(s, lo);
	j = i;
	while (j < s->n && s->r[j].lo <= hi)
		j++;
	if (i == j) { /* nothing touches: insert */
		if (reserve(s, s->n + 1))
			return -ENOMEM;
		memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof(s->r[0]));
		s->r[i] = (struct pl_range){lo, hi};
		s->n++;
		return 0;
	}
	/* [i, j) touch: one range */
	if (s->r[i].lo < lo)
		lo = s->r[i].lo;
	if (s->r[j - 1].hi > hi)
		hi = s->r[j - 1].hi;
	s->r[i] = (struct pl_range){lo, hi};
	memmove(&s->r[i + 1], &s->r[j], (s->n - j) * sizeof(s->r[0]));
	s->n -= j - i - 1;
	return 0;
}

int pl_set_del(struct pl_set *s, uintptr_t lo, uintptr_t hi)
{
	size_t i, j;

	if (lo >= hi)
		return 0;
	i = first_touching(s, lo);
	if (i < s->n && s->r[i].hi == lo)
		i++;
	if (i == s->n || s->r[i].lo >= hi)
		return 0;
	if (s->r[i].lo < lo && s->r[i].hi > hi) { /* splits one */
		if (reserve(s, s->n + 1))
			return -ENOMEM;
		memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof(s->r[0]));
		s->n++;
		s->r[i].hi = lo;
		s->r[i + 1].lo = hi;
		return 0;
	}
	if (s->r[i].lo < lo) {
		s->r[i].hi = lo;
		i++;
	}
	j = i;
	while (j < s->n && s->r[j].hi <= hi)
		j++;
	if (j < s->n && s->r[j].lo < hi)
		s->r[j].lo = hi;
	memmove(&s->r[i], &s->r[j], (s->n - j) * sizeof(s->r[0]));
	s->n -= j - i;
	return 0;
}

int pl_set_overlaps(const struct pl_set *s, uintptr_t lo, uintptr_t hi)
{
	size_t i;

	if (lo >= hi || !s->n)
		return 0;
	i = first_touching(s, lo);
	if (i < s->n && s->r[i].hi == lo)
		i++;
	return i < s->n && s->r[i].lo < hi;
}

int pl_set_covers(const struct pl_set *s, uintptr_t lo, uintptr_t hi)
{
	size_t i;

	if (lo >= hi)
		return 1;
	i = first_touching(s, lo);
	if (i < s->n && s->r[i].hi == lo)
		i++;
	return i < s->n && s->r[i].lo <= lo && s->r[i].hi >= hi;
}

int pl_set_clip(const struct pl_set *s, uintptr_t lo, uintptr_t hi, struct pl_set *out)
{
	size_t i = first_touching(s, lo);

	memset(out, 0, sizeof(*out));
	for (; i < s->n && s->r[i].lo < hi; i++) {
		uintptr_t a = s->r[i].lo > lo ? s->r[i].lo : lo, b = s->r[i].hi < hi ? s->r[i].hi : hi;

		if (a < b && pl_set_add(out, a, b)) {
			pl_set_free(out);
			return -ENOMEM;
		}
	}
	return 0;
}

int pl_set_copy(const struct pl_set *a, struct pl_set *out)
{
	memset(out, 0, sizeof(*out));
	if (reserve(out, a->n))
		return -ENOMEM;
	if (a->n)
		memcpy(out->r, a->r, a->n * sizeof(a->r[0]));
	out->n = a->n;
	return 0;
}

int pl_set_minus(const struct pl_set *a, const struct pl_set *b, struct pl_set *out)
{
	if (pl_set_copy(a, out))
		return -ENOMEM;
	for (size_t i = 0; i < b->n; i++)
		if (pl_set_del(out, b->r[i].lo, b->r[i].hi)) {
			pl_set_free(out);
			return -ENOMEM;
		}
	return 0;
}

void pl_set_clear(struct pl_set *s)
{
	s->n = 0;
}

void pl_set_free(struct pl_set *s)
{
	pl_free(s->r);
	memset(s, 0, sizeof(*s));
}

uint64_t pl_set_bytes(const struct pl_set *s)
{
	uint64_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		n += s->r[i].hi - s->r[i].lo;
	return n;
}
