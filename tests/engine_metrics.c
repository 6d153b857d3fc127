/* SPDX-License-Identifier: MIT */
/*
 * engine_metrics.c - samepage_metrics(): the engine's counters in the
 * Prometheus text format. Merges a known workload and checks that every
 * sample line is well formed (name, value), that each has HELP and TYPE
 * lines, and that the values equal samepage_stats(); and the errno for a
 * missing or too small buffer.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "enginetest.h"

#define NP 256

static double value_of(const char *text, const char *name)
{
	char key[128];
	const char *p;

	snprintf(key, sizeof(key), "\n%s ", name);
	p = strstr(text, key);
	assert_non_null(p);
	return strtod(p + strlen(key), NULL);
}

static void test_metrics_text(void **state)
{
	char *m = t_map(NP), buf[8192], copy[8192], small[64];
	struct samepage_stats st;
	int samples = 0;

	(void)state;
	for (size_t i = 0; i < NP; i++)
		t_fill(m + i * TPAGE, (uint32_t)(i % 8) + 1);
	assert_int_equal(samepage_madvise(m, NP * TPAGE, SAMEPAGE_MERGEABLE), 0);
	assert_true(et_wait_merged(8, NP - 8, ET_PATIENCE_MS));
	assert_int_equal(samepage_metrics(buf, sizeof(buf)), 0);
	assert_int_equal(samepage_stats(&st), 0);
	assert_int_equal((uint64_t)value_of(buf, "samepage_engine_pages_shared"), st.pages_shared);
	assert_int_equal((uint64_t)value_of(buf, "samepage_engine_pages_sharing"), st.pages_sharing);
	/* every line: a comment, or "name value" with a name that was typed */
	memcpy(copy, buf, sizeof(copy));
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		char name[128], type[160];
		double v;

		if (line[0] == '#')
			continue;
		assert_int_equal(sscanf(line, "%127s %lf", name, &v), 2);
		for (char *c = name; *c; c++)
			assert_true((*c >= 'a' && *c <= 'z') || *c == '_');
		snprintf(type, sizeof(type), "# TYPE %s ", name);
		assert_non_null(strstr(copy, type));
		samples++;
	}
	assert_true(samples >= 19);
	assert_int_equal(samepage_metrics(small, sizeof(small)), -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(samepage_metrics(NULL, 10), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(samepage_munmap(m, NP * TPAGE), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metrics_text),
	};
	int rc = et_start();

	if (rc)
		return rc;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
