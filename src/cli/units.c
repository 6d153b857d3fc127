/* SPDX-License-Identifier: MIT */
/* units.c - human units (see units.h). */
#include <stdio.h>

#include "cli/units.h"

char *sp_fmt_bytes(char *buf, size_t len, double bytes)
{
	static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = bytes < 0 ? -bytes : bytes;
	int i = 0;

	while (v >= 1024 && i < 5) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%s%.0f %s", bytes < 0 ? "-" : "", v, u[i]);
	else
		snprintf(buf, len, "%s%.*f %s", bytes < 0 ? "-" : "", v < 10 ? 2 : v < 100 ? 1 : 0, v, u[i]);
	return buf;
}

char *sp_fmt_pages(char *buf, size_t len, uint64_t pages)
{
	return sp_fmt_bytes(buf, len, (double)pages * 4096.0);
}

char *sp_fmt_duration(char *buf, size_t len, double s)
{
	if (s < 1e-3)
		snprintf(buf, len, "%.0f us", s * 1e6);
	else if (s < 1)
		snprintf(buf, len, "%.0f ms", s * 1e3);
	else if (s < 60)
		snprintf(buf, len, "%.1f s", s);
	else if (s < 3600)
		snprintf(buf, len, "%d min %d s", (int)(s / 60), (int)s % 60);
	else
		snprintf(buf, len, "%d h %d min", (int)(s / 3600), ((int)s % 3600) / 60);
	return buf;
}
