/* SPDX-License-Identifier: MIT */
/*
 * budget.c - how many more mappings merges may create.
 *
 * A merged page whose store page does not continue its left neighbour's
 * costs a kernel mapping (VMA), and vm.max_map_count (default 65530) bounds
 * a process's mappings: past it, the application's own mmap() would fail.
 * The engine keeps a reserve for the application (an eighth of the limit,
 * at least 1024), counts the process's mappings from /proc/self/maps at
 * full-scan boundaries when the budget runs low (at most every 250 ms), and
 * between counts assumes the worst: every remap adds two mappings.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mem/local.h"

#define RECOUNT_NS 250000000ull

static long read_long(const char *path, long def)
{
	char buf[64];
	long v = def;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return def;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = 0;
		if (sscanf(buf, "%ld", &v) != 1)
			v = def;
	}
	return v;
}

long sp_count_mappings(void)
{
	char buf[65536];
	long lines = 0;
	ssize_t n;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	close(fd);
	return lines;
}

void sp_budget_init(struct sp_budget *bg)
{
	memset(bg, 0, sizeof(*bg));
	bg->max_map_count = read_long("/proc/sys/vm/max_map_count", 65530);
	bg->reserve = bg->max_map_count / 8 > 1024 ? bg->max_map_count / 8 : 1024;
	bg->counted = sp_count_mappings();
}

long sp_budget_left(const struct sp_budget *bg)
{
	return bg->max_map_count - bg->reserve - bg->counted - bg->added;
}

/* A count reads all of /proc/self/maps (tens of milliseconds with a few
 * hundred thousand mappings), so it is done when it matters: when the
 * pessimistic estimate says less than a quarter of the budget is left, and
 * otherwise every 10 s to give back what coalescing saved. With nothing
 * left, also when the engine added nothing since the last count: the
 * application's own mappings took the budget, and it may have unmapped
 * them since (without this, merging stopped for good). */
int sp_budget_due(const struct sp_budget *bg, uint64_t now_ns)
{
	uint64_t since = now_ns - bg->counted_at_ns;

	if (since < RECOUNT_NS)
		return 0;
	if (sp_budget_left(bg) <= 0)
		return 1;
	if (!bg->added)
		return 0;
	return sp_budget_left(bg) < bg->max_map_count / 4 || since >= 10000000000ull;
}

void sp_budget_set(struct sp_budget *bg, long counted, long added_during, uint64_t now_ns)
{
	if (counted < 0)
		return;
	bg->counted = counted;
	bg->added -= added_during < bg->added ? added_during : bg->added;
	bg->counted_at_ns = now_ns;
	bg->max_map_count = read_long("/proc/sys/vm/max_map_count", bg->max_map_count);
}

void sp_budget_recount(struct sp_budget *bg, uint64_t now_ns)
{
	long added = bg->added;

	if (sp_budget_due(bg, now_ns))
		sp_budget_set(bg, sp_count_mappings(), added, now_ns);
}
