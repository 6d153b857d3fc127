/* SPDX-License-Identifier: MIT */
/*
 * demo.c - `samepage demo`: the engine on memory shaped like a VM's.
 *
 * Builds a region (512 MiB by default) out of the kinds of pages a host sees
 * in guest memory, in shuffled segments:
 *   zero      runs of zeroed pages (freed guest memory)              25%
 *   blocks    copies of 64 "library" blocks of 32 distinct pages    35%
 *             (the same file loaded by several guests)
 *   popular   single pages of 128 common contents, scattered       10%
 *   unique    pages no other page equals                           30%
 * registers it with libsamepage, runs the scanner flat out until the
 * counters settle, and shows resident memory before and after from
 * /proc/self/smaps_rollup and /proc/meminfo next to the KSM counters. Then it
 * proves the memory still behaves: every page is compared with the content
 * it was given, and a write to one page of every merged content lands in a
 * private copy without disturbing the others.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/textsafe.h"
#include "cli/progress.h"
#include "cli/units.h"
#include "core/core.h"
#include "samepage.h"
#include "util/clock.h"

#define PAGE 4096ul

enum kind { K_ZERO, K_BLOCK, K_POPULAR, K_UNIQUE };

struct layout {
	size_t npages;
	uint32_t *tag; /* per page: content tag, 0 = zeros */
	size_t count[4];
};

struct memsnap {
	long rss, pss, pss_anon, pss_shmem;    /* kB, smaps_rollup */
	long mem_available, anon_pages, shmem; /* kB, meminfo      */
};

/* A deterministic page pattern per tag; tag 0 is all zeros. */
static void fill(uint8_t *p, uint32_t tag)
{
	uint64_t *w = (uint64_t *)p, x = tag * 0x9E3779B97F4A7C15ull;

	for (size_t i = 0; i < PAGE / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = tag ? x : 0;
	}
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Tags: 1..128 popular, 1000+ block pages, 1e6+ unique. Segments are drawn
 * at random, but a kind that is ahead of its share of pages gives way to
 * the kind furthest behind, so the mix holds at any size. */
static int build_layout(struct layout *l, size_t npages, uint64_t seed)
{
	static const unsigned share[4] = {25, 35, 10, 30};
	uint32_t unique = 1000000;
	size_t i = 0;

	l->npages = npages;
	l->tag = calloc(npages, sizeof(*l->tag));
	if (!l->tag)
		return -ENOMEM;
	memset(l->count, 0, sizeof(l->count));
	while (i < npages) {
		uint64_t r = rnd(&seed) % 100;
		enum kind k = r < 25 ? K_ZERO : r < 60 ? K_BLOCK : r < 70 ? K_POPULAR : K_UNIQUE;
		uint32_t block = (uint32_t)(rnd(&seed) % 64);
		size_t len, j;

		if (l->count[k] * 100 > share[k] * (i + 1)) {
			double worst = 2;

			for (int m = 0; m < 4; m++) {
				double ratio = (double)l->count[m] * 100 / ((double)share[m] * (double)(i + 1));

				if (ratio < worst) {
					worst = ratio;
					k = (enum kind)m;
				}
			}
		}
		len = k == K_ZERO ? 1 + rnd(&seed) % 64 : k == K_BLOCK ? 32 : k == K_POPULAR ? 1 : 1 + rnd(&seed) % 64;
		if (len > npages - i)
			len = npages - i;
		for (j = 0; j < len; j++) {
			uint32_t t = 0;

			if (k == K_BLOCK)
				t = 1000 + block * 32 + (uint32_t)j;
			else if (k == K_POPULAR)
				t = 1 + (uint32_t)(rnd(&seed) % 128);
			else if (k == K_UNIQUE)
				t = unique++;
			l->tag[i + j] = t;
		}
		l->count[k] += len;
		i += len;
	}
	return 0;
}

static long read_kb(const char *path, const char *key)
{
	char line[256];
	size_t klen = strlen(key);
	long v = -1;
	FILE *f = fopen(path, "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			v = strtol(line + klen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static void snap(struct memsnap *m)
{
	const char *r = "/proc/self/smaps_rollup", *mi = "/proc/meminfo";

	m->rss = read_kb(r, "Rss");
	m->pss = read_kb(r, "Pss");
	m->pss_anon = read_kb(r, "Pss_Anon");
	m->pss_shmem = read_kb(r, "Pss_Shmem");
	m->mem_available = read_kb(mi, "MemAvailable");
	m->anon_pages = read_kb(mi, "AnonPages");
	m->shmem = read_kb(mi, "Shmem");
}

/* Runs the scanner until pages_sharing and ksm_zero_pages held still for
 * two full scans. Returns 0, or -1 on timeout. */
static int settle(struct samepage_stats *st, double timeout_s, int progress)
{
	struct sp_progress pr;
	uint64_t last_sharing = UINT64_MAX, last_zero = UINT64_MAX;
	int still = 0;
	double t0 = sp_mono_s();
	char note[96];

	sp_progress_start(&pr, "merging", 0, progress);
	while (still < 2) {
		if (sp_mono_s() - t0 > timeout_s) {
			sp_progress_done(&pr);
			return -1;
		}
		if (samepage_wait_scans(1, 2000) && errno != ETIMEDOUT)
			return -1;
		samepage_stats(st);
		if (st->pages_sharing == last_sharing && st->ksm_zero_pages == last_zero && st->full_scans >= 2)
			still++;
		else
			still = 0;
		last_sharing = st->pages_sharing;
		last_zero = st->ksm_zero_pages;
		snprintf(note, sizeof(note), "full scans %llu, pages_sharing %llu, ksm_zero_pages %llu",
			 (unsigned long long)st->full_scans, (unsigned long long)st->pages_sharing,
			 (unsigned long long)st->ksm_zero_pages);
		sp_progress_update(&pr, st->pages_scanned, note);
	}
	sp_progress_done(&pr);
	return 0;
}

/* Every page still holds what it was given; returns mismatches. */
static size_t verify(const uint8_t *mem, const struct layout *l)
{
	uint8_t want[PAGE];
	size_t bad = 0;

	for (size_t i = 0; i < l->npages; i++) {
		fill(want, l->tag[i]);
		bad += memcmp(mem + i * PAGE, want, PAGE) != 0;
	}
	return bad;
}

/* Writes into every 97th page (most of them merged): the write must land
 * in that page alone. Then undoes the writes and checks every page again.
 * Returns mismatches. */
static size_t write_check(uint8_t *mem, struct layout *l, size_t *writes)
{
	uint8_t want[PAGE];
	size_t bad = 0;

	*writes = 0;
	for (size_t i = 0; i < l->npages; i += 97) {
		mem[i * PAGE + 100] ^= 0x5a;
		(*writes)++;
	}
	for (size_t i = 0; i < l->npages; i++) {
		fill(want, l->tag[i]);
		if (i % 97 == 0)
			want[100] ^= 0x5a;
		bad += memcmp(mem + i * PAGE, want, PAGE) != 0;
	}
	for (size_t i = 0; i < l->npages; i += 97)
		mem[i * PAGE + 100] ^= 0x5a;
	return bad + verify(mem, l);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: samepage demo [--size MIB] [--pages-to-scan N] [--timeout SEC] [--json] [--no-progress]\n\n"
		   "Runs the userspace KSM engine on memory shaped like a virtual machine's (zero\n"
		   "pages, blocks shared between \"guests\", popular pages, unique pages) and shows\n"
		   "the resident memory it saves, the KSM counters, and that writes still work.\n\n"
		   "  --size MIB           memory to build (default 512)\n"
		   "  --pages-to-scan N    scanner batch (default 100000, sleep_millisecs 0)\n"
		   "  --timeout SEC        give up waiting for the counters to settle (default 120)\n"
		   "  --json               machine-readable result on stdout\n"
		   "  --no-progress        no progress line on stderr\n");
}

static json_object *snap_json(const struct memsnap *m)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "rss_kb", json_object_new_int64(m->rss));
	json_object_object_add(o, "pss_kb", json_object_new_int64(m->pss));
	json_object_object_add(o, "pss_anon_kb", json_object_new_int64(m->pss_anon));
	json_object_object_add(o, "pss_shmem_kb", json_object_new_int64(m->pss_shmem));
	json_object_object_add(o, "mem_available_kb", json_object_new_int64(m->mem_available));
	json_object_object_add(o, "anon_pages_kb", json_object_new_int64(m->anon_pages));
	json_object_object_add(o, "shmem_kb", json_object_new_int64(m->shmem));
	return o;
}

static void print_human(const struct layout *l, const struct memsnap *b, const struct memsnap *a,
			const struct samepage_stats *st, double secs, size_t bad, size_t writes)
{
	char x[32], y[32], z[32];

	printf("Memory built: %s in %zu pages: %zu zero, %zu in shared blocks, %zu popular, %zu unique\n",
	       sp_fmt_pages(x, sizeof(x), l->npages), l->npages, l->count[K_ZERO], l->count[K_BLOCK],
	       l->count[K_POPULAR], l->count[K_UNIQUE]);
	printf("Settled in %.1f s (%llu full scans, scanner CPU %.2f s)\n\n", secs, (unsigned long long)st->full_scans,
	       st->scan_cpu_ns / 1e9);
	printf("%-34s %12s %12s %12s\n", "", "before", "after", "saved");
#define ROW(label, f, sign)                                                                \
	printf("%-34s %12s %12s %12s\n", label, sp_fmt_bytes(x, sizeof(x), b->f * 1024.0), \
	       sp_fmt_bytes(y, sizeof(y), a->f * 1024.0), sp_fmt_bytes(z, sizeof(z), sign *(b->f - a->f) * 1024.0))
	ROW("Pss (smaps_rollup)", pss, 1);
	ROW("Pss_Anon (smaps_rollup)", pss_anon, 1);
	ROW("Pss_Shmem: the page store", pss_shmem, 1);
	ROW("AnonPages (meminfo)", anon_pages, 1);
	ROW("Shmem (meminfo)", shmem, 1);
	ROW("MemAvailable (meminfo)", mem_available, -1);
#undef ROW
	printf("\nKSM counters (libsamepage, /sys/kernel/mm/ksm names)\n");
	printf("  pages_shared   %10llu   pages_sharing  %10llu   ksm_zero_pages %llu\n",
	       (unsigned long long)st->pages_shared, (unsigned long long)st->pages_sharing,
	       (unsigned long long)st->ksm_zero_pages);
	printf("  pages_unshared %10llu   pages_volatile %10llu   stable_node_chains %llu, dups %llu\n",
	       (unsigned long long)st->pages_unshared, (unsigned long long)st->pages_volatile,
	       (unsigned long long)st->stable_node_chains, (unsigned long long)st->stable_node_dups);
	printf("  general_profit %s  = (pages_sharing + ksm_zero_pages) x 4 KiB - metadata - mappings x %d B\n",
	       sp_fmt_bytes(x, sizeof(x), (double)st->general_profit), SP_MAPPING_COST);
	printf("  engine metadata %s (%.1f bytes per tracked page), %llu mappings made, longest batch %.2f ms\n",
	       sp_fmt_bytes(y, sizeof(y), (double)st->metadata_bytes), (double)st->metadata_bytes / (double)l->npages,
	       (unsigned long long)st->mappings, st->longest_batch_ns / 1e6);
	printf("\nAfter merging: all %zu pages read back as written: %s; %zu writes into merged pages "
	       "landed in private copies: %s\n",
	       l->npages, bad ? "NO" : "yes", writes, bad ? "NO" : "yes");
}

static int demo(int argc, char **argv)
{
	static const struct option opts[] = {{"size", required_argument, 0, 's'},
					     {"pages-to-scan", required_argument, 0, 'p'},
					     {"timeout", required_argument, 0, 't'},
					     {"json", no_argument, 0, 'j'},
					     {"no-progress", no_argument, 0, 'n'},
					     {"help", no_argument, 0, 'h'},
					     {0, 0, 0, 0}};
	long size_mib = 512, timeout = 120;
	const char *pts = "100000";
	int json = 0, progress = -1, c, rc = SP_EXIT_OK;
	struct layout l;
	struct memsnap before, after;
	struct samepage_stats st;
	size_t bad, writes;
	uint8_t *mem;
	double t0, secs;
	char *end;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			size_mib = strtol(optarg, &end, 10);
			if (*end || size_mib < 1 || size_mib > 1 << 20) {
				sp_errorf("samepage demo: --size takes MiB between 1 and 1048576\n");
				return SP_EXIT_USAGE;
			}
			break;
		case 'p':
			pts = optarg;
			break;
		case 't':
			timeout = strtol(optarg, &end, 10);
			if (*end || timeout < 1) {
				sp_errorf("samepage demo: --timeout takes seconds >= 1\n");
				return SP_EXIT_USAGE;
			}
			break;
		case 'j':
			json = 1;
			break;
		case 'n':
			progress = 0;
			break;
		default:
			rc = sp_opt_common(c, optarg, NULL, usage);
			if (rc != SP_OPT_GO_ON)
				return rc;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return SP_EXIT_USAGE;
	}
	if (build_layout(&l, (size_t)size_mib * 256, 42)) {
		sp_errorf("samepage demo: out of memory\n");
		return SP_EXIT_FAIL;
	}
	mem = mmap(NULL, l.npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("samepage demo: mmap");
		return SP_EXIT_FAIL;
	}
	madvise(mem, l.npages * PAGE, MADV_NOHUGEPAGE); /* as KSM, merge 4 KiB pages */
	for (size_t i = 0; i < l.npages; i++)
		fill(mem + i * PAGE, l.tag[i]);
	snap(&before);

	/* a VM host's settings: zero pages to the zero page, scan flat out */
	if (samepage_set("use_zero_pages", "1") || samepage_set("pages_to_scan", pts) ||
	    samepage_set("sleep_millisecs", "0")) {
		sp_errorf("samepage demo: setting knobs: %s\n", strerror(errno));
		return SP_EXIT_USAGE;
	}
	if (samepage_madvise(mem, l.npages * PAGE, SAMEPAGE_MERGEABLE)) {
		sp_errorf("samepage demo: cannot register memory: %s\n", strerror(errno));
		return errno == EPERM ? SP_EXIT_PERM : SP_EXIT_FAIL;
	}
	t0 = sp_mono_s();
	samepage_set("run", "1");
	if (settle(&st, (double)timeout, progress)) {
		sp_errorf("samepage demo: counters did not settle within %ld s\n", timeout);
		rc = SP_EXIT_FAIL;
	}
	secs = sp_mono_s() - t0;
	samepage_set("run", "0"); /* stop scanning, keep the merges */
	samepage_stats(&st);
	snap(&after);
	bad = write_check(mem, &l, &writes);
	if (bad)
		rc = SP_EXIT_FAIL;

	if (json) {
		json_object *o = json_object_new_object(), *k = json_object_new_object();

		json_object_object_add(o, "pages", json_object_new_int64((int64_t)l.npages));
		json_object_object_add(o, "seconds_to_settle", sp_json_double(secs));
		json_object_object_add(o, "scan_cpu_seconds", sp_json_double((double)st.scan_cpu_ns / 1e9));
		json_object_object_add(o, "before", snap_json(&before));
		json_object_object_add(o, "after", snap_json(&after));
#define KEY(n) json_object_object_add(k, #n, json_object_new_int64((int64_t)st.n))
		KEY(pages_shared);
		KEY(pages_sharing);
		KEY(pages_unshared);
		KEY(pages_volatile);
		KEY(pages_scanned);
		KEY(full_scans);
		KEY(ksm_zero_pages);
		KEY(stable_node_chains);
		KEY(stable_node_dups);
		KEY(general_profit);
		KEY(metadata_bytes);
		KEY(mappings);
#undef KEY
		json_object_object_add(o, "counters", k);
		json_object_object_add(o, "mismatched_pages", json_object_new_int64((int64_t)bad));
		json_object_object_add(o, "writes_checked", json_object_new_int64((int64_t)writes));
		if (rc != SP_EXIT_OK)
			json_object_object_add(o, "error",
					       json_object_new_string(bad ? "pages read back wrong after merging"
									  : "counters did not settle"));
		sp_json_print(stdout, o, JSON_C_TO_STRING_PRETTY);
		json_object_put(o);
	} else {
		print_human(&l, &before, &after, &st, secs, bad, writes);
	}
	samepage_munmap(mem, l.npages * PAGE);
	free(l.tag);
	return rc;
}

SP_COMMAND_JSON(demo, "run the userspace KSM engine on VM-shaped memory and show what it saves", demo);
