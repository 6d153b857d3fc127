/* SPDX-License-Identifier: MIT */
/*
 * store.c - the page store: one memfd, one page per stable page.
 *
 * The engine maps the whole memfd once, shared, over a large reservation of
 * address space, so a stable page's content is a pointer away (no pread, no
 * remapping as the store grows). The file grows by ftruncate in steps;
 * freed pages are punched (FALLOC_FL_PUNCH_HOLE), which returns their memory
 * at once, and kept on a stack for reuse by single-page merges. Runs are
 * carved from the end so that their pages are consecutive, which is what
 * lets a run of merged pages be one mapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mem/local.h"

#define GROW_PAGES (16384ull) /* 64 MiB of file size per step (sparse) */

int sp_store_init(struct sp_store *s, uint64_t reserve_pages)
{
	memset(s, 0, sizeof(*s));
	s->fd = memfd_create("samepage-store", MFD_CLOEXEC);
	if (s->fd < 0)
		return -errno;
	s->reserve = reserve_pages;
	s->view = mmap(NULL, reserve_pages << 12, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, s->fd, 0);
	if (s->view == MAP_FAILED) {
		int err = -errno;

		close(s->fd);
		s->fd = -1;
		s->view = NULL;
		return err;
	}
	return 0;
}

void sp_store_destroy(struct sp_store *s)
{
	if (s->view)
		munmap(s->view, s->reserve << 12);
	if (s->fd >= 0)
		close(s->fd);
	free(s->free);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}

int sp_store_alloc(struct sp_store *s, size_t n, uint64_t *pg)
{
	if (n == 1 && s->nfree) {
		*pg = s->free[--s->nfree];
		s->used++;
		return 0;
	}
	if (s->next + n > s->reserve)
		return -ENOMEM;
	if (s->next + n > s->size) {
		uint64_t want = s->size + GROW_PAGES;

		if (want < s->next + n)
			want = s->next + n;
		if (want > s->reserve)
			want = s->reserve;
		if (ftruncate(s->fd, (off_t)(want << 12)))
			return -errno;
		s->size = want;
	}
	*pg = s->next;
	s->next += n;
	s->used += n;
	return 0;
}

void sp_store_free(struct sp_store *s, uint64_t pg)
{
	fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(pg << 12), 4096);
	s->used--;
	if (pg + 1 == s->next) { /* the end: give it back to the bump allocator */
		s->next--;
		return;
	}
	if (s->nfree == s->free_cap) {
		uint64_t ncap = s->free_cap ? s->free_cap * 2 : 1024;
		uint64_t *nf = realloc(s->free, ncap * sizeof(*nf));

		if (!nf)
			return; /* the page is punched; only its offset is lost */
		s->free = nf;
		s->free_cap = ncap;
	}
	s->free[s->nfree++] = pg;
}
