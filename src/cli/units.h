/* SPDX-License-Identifier: MIT */
/* units.h - numbers for people: bytes in binary units, rates, durations. */
#ifndef SP_UNITS_H
#define SP_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* "1.5 GiB", "512 KiB", "17 B" into buf; returns buf. */
char *sp_fmt_bytes(char *buf, size_t len, double bytes);
/* pages of 4 KiB as bytes */
char *sp_fmt_pages(char *buf, size_t len, uint64_t pages);
/* "1.2 s", "35 ms", "4 min 10 s", "2 h 5 min" */
char *sp_fmt_duration(char *buf, size_t len, double seconds);

#endif
