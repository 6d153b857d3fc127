/* SPDX-License-Identifier: MIT */
/*
 * samepage.h - libsamepage: Kernel Samepage Merging (KSM) in userspace.
 *
 * A program registers memory with samepage_madvise(), the way it would call
 * madvise(MADV_MERGEABLE). A scanner thread inside the process finds pages
 * with identical content and makes them share one physical page,
 * copy-on-write: the page is copied into a private memfd ("the store") and
 * every duplicate is replaced by a MAP_PRIVATE mapping of that store page.
 * The first write to a merged page makes the kernel give the writer a private
 * copy, exactly as for a KSM page. No root, no global switch; merging is
 * confined to the calling process.
 *
 * Knobs and counters carry the names, text values, ranges and errno of
 * /sys/kernel/mm/ksm, so an operator who knows KSM knows samepage.
 *
 * THE CONTRACT FOR REGISTERED MEMORY
 *
 *   - It must be private anonymous memory (MAP_PRIVATE|MAP_ANONYMOUS), mapped
 *     readable and writable, when it is registered.
 *   - It must not be registered with another userfaultfd.
 *   - It must not be used for long-term pins: io_uring fixed buffers, RDMA
 *     memory regions, VFIO DMA. A pinned page that is merged stops receiving
 *     the device's writes.
 *   - It must be unregistered (SAMEPAGE_UNMERGEABLE) before it is unmapped,
 *     remapped or mprotect()ed to PROT_NONE; or released with
 *     samepage_munmap(). Unregistering restores plain anonymous memory with
 *     the same content.
 *   - MADV_DONTNEED needs no unregistering (allocators call it on their own:
 *     glibc trims heaps, calloc trusts trimmed memory to read zeros): a
 *     dropped page reads zeros afterwards, merged or not, written since its
 *     merge or not, as anonymous memory under the kernel's KSM. The call
 *     waits until the engine's event thread has seen it (tens of
 *     microseconds), whatever run is. One race remains: a thread stalled
 *     inside madvise() for more than a second, between the engine seeing the
 *     call and the kernel dropping the pages, may find pages that map a
 *     store page when they are finally dropped reading their old content
 *     instead of zeros.
 *   - MADV_FREE on a merged page (or one merged and written since) fails with
 *     EINVAL, as on any file-backed mapping, and the page keeps its content
 *     (as madvise(2) does, pages of the range before it may have been
 *     freed); on registered pages that are not merged it works as on
 *     anonymous memory. Allocators that fall back to MADV_DONTNEED on EINVAL
 *     (mimalloc does) keep working; glibc uses MADV_DONTNEED only.
 *   - Other protection changes (read-only and back) are kept through merges,
 *     but one racing a merge of the same pages can be undone (the merge reads
 *     the protection just before it remaps): unregister first when a
 *     protection change must not be lost.
 *   - While a page is being merged (a few microseconds) a thread that writes
 *     to it, or a system call that writes into it (read(2), recv(2), ...),
 *     blocks until the merge ends; it never fails and the write is never lost.
 *   - After fork(), the child keeps the merged pages it inherited (they stay
 *     copy-on-write); the engine keeps every store page that existed at the
 *     fork until the engine ends, since the child may still map it. The child
 *     starts with no registered memory and no scanner; MADV_DONTNEED there on
 *     an inherited merged page shows the store page again (its content at
 *     the merge), not zeros.
 *
 * ERRORS
 *
 * Every function returns 0 on success or -1 with errno set, like a system
 * call. EINVAL: bad value, unaligned address, bad advice. ENOENT: unknown
 * knob. ENOMEM: the range is not (entirely) mapped, or out of memory.
 * EBUSY: the kernel would refuse this change now, or the memory is registered
 * with another userfaultfd. EPERM / ENOSYS: userfaultfd
 * is not available to this process (the reason is also printed to stderr once).
 * ETIMEDOUT: samepage_wait_scans() timed out.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef SAMEPAGE_H
#define SAMEPAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SAMEPAGE_API __attribute__((visibility("default")))

#define SAMEPAGE_MERGEABLE   1
#define SAMEPAGE_UNMERGEABLE 2

/*
 * Like madvise(2) with MADV_MERGEABLE / MADV_UNMERGEABLE over
 * [addr, addr + len). addr must be page aligned; len is rounded up to a page.
 * Registering memory starts the scanner thread (with run=1 it merges).
 * Unregistering breaks every merge in the range first, so the range is plain
 * private anonymous memory again when it returns. Registering an already
 * registered range, or unregistering an unregistered one, is not an error.
 * Returns 0, or -1 with errno (EINVAL, ENOMEM, EPERM, ENOSYS).
 */
SAMEPAGE_API int samepage_madvise(void *addr, size_t len, int advice);

/*
 * Unregisters [addr, addr + len) and unmaps it: the safe way to free
 * registered memory. Returns 0, or -1 with errno as munmap(2).
 */
SAMEPAGE_API int samepage_munmap(void *addr, size_t len);

/*
 * Knobs and counters by their /sys/kernel/mm/ksm names, values as text
 * (a trailing newline is accepted, as sysfs does). samepage_get() writes the
 * value without a newline, NUL terminated. Counters are read-only (EACCES on
 * write, as sysfs file permissions would give). Returns 0, or -1 with errno:
 * ENOENT unknown name, EINVAL bad value, EBUSY change refused now, ERANGE
 * buffer too small.
 */
SAMEPAGE_API int samepage_set(const char *name, const char *value);
SAMEPAGE_API int samepage_get(const char *name, char *buf, size_t len);

/* A consistent snapshot of every counter, named like /sys/kernel/mm/ksm. */
struct samepage_stats {
	uint64_t pages_shared;	     /* store pages in use (KSM pages)           */
	uint64_t pages_sharing;	     /* sharers beyond the first, summed          */
	uint64_t pages_unshared;     /* unique pages in the unstable index        */
	uint64_t pages_volatile;     /* tracked pages changing too fast to merge  */
	uint64_t pages_scanned;	     /* pages visited, all time                   */
	uint64_t pages_skipped;	     /* pages smart_scan skipped, all time        */
	uint64_t full_scans;	     /* completed passes over registered memory   */
	uint64_t ksm_zero_pages;     /* pages dropped to the zero page            */
	uint64_t stable_node_chains; /* contents with more than max_page_sharing  */
	uint64_t stable_node_dups;   /* store pages that belong to a chain        */
	int64_t general_profit;	     /* bytes saved minus metadata, see man page  */
	/* Engine-only figures (not in the kernel's sysfs). */
	uint64_t rmap_items;	   /* tracked pages (like ksm_rmap_items)       */
	uint64_t metadata_bytes;   /* engine memory for tracking                */
	uint64_t mappings;	   /* kernel mappings the engine created        */
	uint64_t mappings_budget;  /* mappings it may still create              */
	uint64_t longest_batch_ns; /* longest uninterrupted scan batch          */
	uint64_t batches;	   /* uninterrupted scan batches so far         */
	uint64_t batches_over;	   /* of which longer than batch_usecs          */
	uint64_t scan_cpu_ns;	   /* scanner thread CPU time                   */
};
SAMEPAGE_API int samepage_stats(struct samepage_stats *out);

/*
 * Per-range figures, like /proc/PID/ksm_stat for [addr, addr + len): pages
 * of the range the engine tracks, how many of them are merged into a store
 * page or dropped to the zero page, and the profit formula of ksm_stat:
 * (merging_pages + zero_pages) * 4096 - rmap_items * (size of an item).
 * Returns 0, or -1 with errno EINVAL (unaligned addr).
 */
struct samepage_region_stats {
	uint64_t registered_pages; /* pages of the range that are registered    */
	uint64_t rmap_items;	   /* ksm_rmap_items: pages tracked (seen present) */
	uint64_t merging_pages;	   /* ksm_merging_pages: mapping a store page     */
	uint64_t zero_pages;	   /* ksm_zero_pages                              */
	int64_t profit;		   /* ksm_process_profit, for this range          */
};
SAMEPAGE_API int samepage_region_stats(void *addr, size_t len, struct samepage_region_stats *out);

/*
 * The counters of samepage_stats() as Prometheus text exposition (metric
 * names samepage_engine_<counter>), for an application that embeds the
 * engine and serves /metrics itself. NUL terminated. Returns 0, or -1 with
 * errno EINVAL (no buffer) or ERANGE (buffer too small; 4 KiB is enough).
 */
SAMEPAGE_API int samepage_metrics(char *buf, size_t len);

/*
 * Uses samepaged, the merging daemon listening at socket_path (NULL: the
 * SAMEPAGE_DAEMON environment variable, else /run/samepage/samepaged.sock),
 * instead of a scanner thread in this process: memory registered from now
 * on is merged with that of the other processes of this process's merge
 * domain (the daemon's configuration decides it; SAMEPAGE_DOMAIN asks for a
 * labelled one). Setting SAMEPAGE_DAEMON has the same effect at the first
 * call. Every other function keeps its contract; knobs and counters are the
 * domain's, and only root or the daemon's admin group may change knobs
 * (EACCES). Returns 0, or -1 with errno: EBUSY memory is already registered
 * with the in-process engine, ENOENT/ECONNREFUSED no daemon there, EACCES
 * the daemon's configuration admits no domain for this process, ENOTCONN
 * (later calls) the daemon went away: registered memory stays as it is and
 * is registered again when the daemon is back.
 */
SAMEPAGE_API int samepage_connect(const char *socket_path);

/*
 * Blocks until n more full scans have completed or timeout_ms passes
 * (timeout_ms < 0: no limit). Scans only happen while run is 1 and memory
 * is registered. Returns 0, or -1 with errno ETIMEDOUT.
 */
SAMEPAGE_API int samepage_wait_scans(unsigned n, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif /* SAMEPAGE_H */
