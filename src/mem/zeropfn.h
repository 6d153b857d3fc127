/* SPDX-License-Identifier: MIT */
/*
 * zeropfn.h - the page frame of the kernel's shared zero page.
 *
 * pagemap shows a page that maps the shared zero page as present, with the
 * zero page's frame number (visible with CAP_SYS_ADMIN only). Backends use
 * the number to tell "never written" from "written": a wrong number would
 * make a real page look like the zero page and hide it from the scan.
 */
#ifndef SP_ZEROPFN_H
#define SP_ZEROPFN_H

#include <stdint.h>

/* The frame number, or 0 when it cannot be known for certain (frames are
 * hidden, or the kernel did not map the zero page on a read fault). */
uint64_t sp_zero_pfn(void);

#endif /* SP_ZEROPFN_H */
