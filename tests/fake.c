/* SPDX-License-Identifier: MIT */
/* fake.c - the test backend (see fake.h). */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fake.h"

#define PAGE SP_PAGE_SIZE

static struct sp_fake *F(struct sp_mem *m)
{
	return (struct sp_fake *)((char *)m - offsetof(struct sp_fake, space));
}

static struct sp_fake *FH(struct sp_host *h)
{
	return (struct sp_fake *)((char *)h - offsetof(struct sp_fake, host));
}

static int inject(int *counter)
{
	if (*counter > 0 && --*counter == 0)
		return 1;
	return 0;
}

static size_t index_of(struct sp_fake *f, uintptr_t addr)
{
	return (addr - (uintptr_t)f->mem) / PAGE;
}

const uint8_t *sp_fake_page(const struct sp_fake *f, size_t page)
{
	if (f->maps[page] >= 0)
		return f->store + (size_t)f->maps[page] * PAGE;
	return f->mem + page * PAGE;
}

uintptr_t sp_fake_addr(const struct sp_fake *f, size_t page)
{
	return (uintptr_t)f->mem + page * PAGE;
}

static long fake_read(struct sp_mem *b, uintptr_t addr, size_t n, void *buf)
{
	struct sp_fake *f = F(b);
	size_t i, p = index_of(f, addr);

	for (i = 0; i < n; i++)
		memcpy((uint8_t *)buf + i * PAGE, sp_fake_page(f, p + i), PAGE);
	return (long)n;
}

static int fake_query(struct sp_mem *b, uintptr_t addr, size_t n, uint8_t *flags)
{
	struct sp_fake *f = F(b);
	size_t i, p = index_of(f, addr);

	f->n_queried += n;
	for (i = 0; i < n; i++) {
		flags[i] = 0;
		if (!f->absent[p + i])
			flags[i] |= SP_PG_PRESENT;
		if (f->maps[p + i] >= 0)
			flags[i] |= SP_PG_FILE;
	}
	return 0;
}

static int fake_freeze(struct sp_mem *b, uintptr_t addr, size_t n)
{
	struct sp_fake *f = F(b);
	size_t i, p = index_of(f, addr);

	if (inject(&f->fail_freeze))
		return -EAGAIN;
	for (i = 0; i < n; i++) {
		if (!f->frozen[p + i])
			f->n_frozen_now++;
		f->frozen[p + i] = 1;
	}
	f->n_freeze++;
	return 0;
}

static void unfreeze(struct sp_fake *f, size_t p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (f->frozen[p + i])
			f->n_frozen_now--;
		f->frozen[p + i] = 0;
	}
}

static int fake_thaw(struct sp_mem *b, uintptr_t addr, size_t n)
{
	struct sp_fake *f = F(b);

	unfreeze(f, index_of(f, addr), n);
	f->n_thaw++;
	return 0;
}

static int fake_remap(struct sp_mem *b, uintptr_t addr, size_t n, uint64_t pg, int joins)
{
	struct sp_fake *f = F(b);
	size_t i, p = index_of(f, addr);

	if (inject(&f->fail_remap) || f->budget <= 0)
		return -ENOMEM;
	if (inject(&f->fail_remap_late)) {
		assert(f->nlate < sizeof(f->late_n) / sizeof(f->late_n[0]));
		f->late_addr[f->nlate] = addr;
		f->late_n[f->nlate++] = (uint32_t)n;
		unfreeze(f, p, n);
		return 0;
	}
	for (i = 0; i < n; i++) {
		f->maps[p + i] = (int64_t)(pg + i);
		f->absent[p + i] = 1; /* a fresh mapping: not faulted in yet */
	}
	unfreeze(f, p, n);
	f->n_joins += joins;
	f->budget -= 1;
	f->n_remap++;
	return 0;
}

static void fake_wake_blocked(struct sp_mem *b)
{
	F(b)->n_wake_blocked++;
}

static size_t fake_failed_remaps(struct sp_mem *b, uintptr_t *addr, uint32_t *n, size_t max)
{
	struct sp_fake *f = F(b);
	size_t k = f->nlate < max ? f->nlate : max;

	f->nlate -= k;
	memcpy(addr, f->late_addr + f->nlate, k * sizeof(*addr));
	memcpy(n, f->late_n + f->nlate, k * sizeof(*n));
	return k;
}

static int fake_zap(struct sp_mem *b, uintptr_t addr, size_t n)
{
	struct sp_fake *f = F(b);
	size_t i, p = index_of(f, addr);

	if (inject(&f->fail_zap))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		memset(f->mem + (p + i) * PAGE, 0, PAGE);
		f->maps[p + i] = -1;
		f->absent[p + i] = 1;
	}
	unfreeze(f, p, n);
	f->n_zap++;
	return 0;
}

static void make_private(struct sp_fake *f, size_t p)
{
	if (f->maps[p] >= 0) {
		memcpy(f->mem + p * PAGE, f->store + (size_t)f->maps[p] * PAGE, PAGE);
		f->maps[p] = -1;
	}
	f->absent[p] = 0;
}

static int fake_unmerge(struct sp_mem *b, uintptr_t addr, size_t n)
{
	struct sp_fake *f = F(b);
	size_t i, p = index_of(f, addr);

	if (inject(&f->fail_unmerge))
		return -ENOMEM;
	for (i = 0; i < n; i++)
		make_private(f, p + i);
	return 0;
}

static int fake_restore(struct sp_mem *b, uintptr_t addr, size_t n)
{
	struct sp_fake *f = F(b);

	if (inject(&f->fail_restore))
		return -ENOMEM;
	return fake_unmerge(b, addr, n);
}

static int fake_store_alloc(struct sp_host *h, size_t n, int nid, uint64_t *pg)
{
	struct sp_fake *f = FH(h);

	f->last_alloc_nid = nid;
	size_t i, run = 0;

	if (inject(&f->fail_alloc))
		return -ENOMEM;
	for (i = 0; i < f->store_cap; i++) { /* first fit of n free pages */
		run = f->store_used[i] ? 0 : run + 1;
		if (run == n) {
			*pg = i + 1 - n;
			for (size_t k = *pg; k <= i; k++)
				f->store_used[k] = 1;
			f->store_pages_used += n;
			return 0;
		}
	}
	return -ENOMEM;
}

static void *fake_store_page(struct sp_host *h, uint64_t pg)
{
	return FH(h)->store + pg * PAGE;
}

static void fake_store_free(struct sp_host *h, uint64_t pg)
{
	struct sp_fake *f = FH(h);

	/* punch: anyone still mapping it would now read zeros */
	memset(f->store + pg * PAGE, 0, PAGE);
	f->store_used[pg] = 0;
	f->store_pages_used--;
}

static long fake_map_budget(struct sp_mem *b)
{
	return F(b)->budget;
}

static int fake_node(struct sp_mem *b, uintptr_t addr, size_t n, int *nodes)
{
	struct sp_fake *f = F(b);
	size_t p = index_of(f, addr);

	for (size_t i = 0; i < n; i++)
		nodes[i] = f->node_of ? f->node_of[p + i] : 0;
	return 0;
}

static uint64_t fake_now_ns(struct sp_host *h)
{
	struct sp_fake *f = FH(h);

	f->clock_ns += f->clock_step_ns;
	return f->clock_ns;
}

static uint64_t fake_writes(struct sp_mem *b)
{
	return F(b)->writes;
}

static const struct sp_mem_ops fake_mem_ops = {
	.read = fake_read,
	.query = fake_query,
	.freeze = fake_freeze,
	.thaw = fake_thaw,
	.remap = fake_remap,
	.wake_blocked = fake_wake_blocked,
	.failed_remaps = fake_failed_remaps,
	.zap = fake_zap,
	.unmerge = fake_unmerge,
	.restore = fake_restore,
	.map_budget = fake_map_budget,
	.node = fake_node,
	.writes = fake_writes,
};

static const struct sp_host_ops fake_host_ops = {
	.store_alloc = fake_store_alloc,
	.store_page = fake_store_page,
	.store_free = fake_store_free,
	.now_ns = fake_now_ns,
	.cpu_ns = fake_now_ns,
};

int sp_fake_init(struct sp_fake *f, size_t npages, size_t store_pages)
{
	memset(f, 0, sizeof(*f));
	f->space.ops = &fake_mem_ops;
	f->host.ops = &fake_host_ops;
	f->npages = npages;
	f->store_cap = store_pages;
	f->budget = 1 << 30;
	f->mem = aligned_alloc(PAGE, npages * PAGE);
	f->maps = malloc(npages * sizeof(*f->maps));
	f->frozen = calloc(npages, 1);
	f->absent = calloc(npages, 1);
	f->store = calloc(store_pages, PAGE);
	f->store_used = calloc(store_pages, 1);
	if (!f->mem || !f->maps || !f->frozen || !f->absent || !f->store || !f->store_used) {
		sp_fake_destroy(f);
		return -ENOMEM;
	}
	memset(f->mem, 0, npages * PAGE);
	for (size_t i = 0; i < npages; i++)
		f->maps[i] = -1;
	return 0;
}

int sp_fake_init_sharing(struct sp_fake *f, size_t npages, const struct sp_fake *owner)
{
	int err = sp_fake_init(f, npages, 1);

	if (err)
		return err;
	free(f->store);
	free(f->store_used);
	f->store = owner->store;
	f->store_used = owner->store_used;
	f->store_cap = owner->store_cap;
	f->shares_store = 1;
	return 0;
}

void sp_fake_destroy(struct sp_fake *f)
{
	free(f->mem);
	free(f->maps);
	free(f->frozen);
	free(f->absent);
	if (!f->shares_store) {
		free(f->store);
		free(f->store_used);
	}
	free(f->node_of);
	memset(f, 0, sizeof(*f));
}

void sp_fake_write(struct sp_fake *f, size_t page, size_t off, const void *data, size_t len)
{
	if (f->frozen[page])
		f->n_write_while_frozen++;
	if (!f->foreign)
		f->writes++;
	make_private(f, page);
	memcpy(f->mem + page * PAGE + off, data, len);
}

void sp_fake_fill(struct sp_fake *f, size_t page, uint32_t tag)
{
	uint8_t buf[PAGE];

	for (size_t i = 0; i < PAGE; i += 4) {
		uint32_t v = tag ? tag * 2654435761u + (uint32_t)i : 0;

		memcpy(buf + i, &v, 4);
	}
	sp_fake_write(f, page, 0, buf, PAGE);
}
