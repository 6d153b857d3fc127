/* SPDX-License-Identifier: MIT */
/*
 * ksm_knobs.c - the knob table (src/core/knobs.c) against the running
 * kernel: every writable file of /sys/kernel/mm/ksm is written a set of
 * texts (signs, hex, spaces, newlines, overflows, booleans, modes), and the
 * kernel's answer (accepted, EINVAL, ERANGE, EBUSY) and the value it then
 * shows must be what sp_knob_parse_value and sp_knob_refused predict. Then
 * the advisor's refusal of pages_to_scan and the reset on a change of
 * advisor_mode. Needs root (skipped otherwise); every knob is put back,
 * also when the test is killed (t_ksm_save).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/knobs.h"
#include "kernel/ksm.h"
#include "testlib.h"

static const char *const probes[] = {
	"0",
	"1",
	"2",
	"+7\n",
	"010",
	"0x10",
	" 1",
	"1 ",
	"1\n\n",
	"\n",
	"-1",
	"-+5",
	"+-1",
	"1e3",
	"4294967295",
	"4294967296",
	"4294967297",
	"2147483647",
	"2147483648",
	"-2147483649",
	"18446744073709551615",
	"18446744073709551616",
	"99999999999999999999999",
	"y",
	"N",
	"on",
	"OFF",
	"of",
	"o",
	"t",
	"f",
	"enable",
	"d",
	"10",
	"x",
	"none",
	"scan-time",
	"scan-time\n",
	"none \n",
	"scan",
};

/* 0 or -errno of writing text to the knob, as one write(2) */
static int write_knob(const char *name, const char *text)
{
	char path[256];
	ssize_t w;
	int fd, err = 0;

	snprintf(path, sizeof(path), "/sys/kernel/mm/ksm/%s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	w = write(fd, text, strlen(text));
	if (w < 0)
		err = -errno;
	close(fd);
	return err;
}

static void state_now(struct sp_knob_state *st)
{
	struct sp_ksm k;

	assert_int_equal(sp_ksm_read("/sys", &k), 0);
	st->shared = sp_ksm_get(&k, "pages_shared", 0) > 0;
	st->advisor = sp_ksm_get(&k, "advisor_mode", 0) != SP_ADVISOR_NONE;
}

/* the knob's value as written back ("none" for "[none] scan-time") */
static void current(int idx, char *buf, size_t len)
{
	struct sp_ksm k;

	assert_int_equal(sp_ksm_read("/sys", &k), 0);
	if (!k.present[idx])
		fail_msg("%s: '%s' not read as valid (%s)", sp_knob_table[idx].name, k.text[idx], k.invalid[idx]);
	sp_ksm_writable_text(&k, idx, buf, len);
}

static void every_knob_every_text(void **state)
{
	int checked = 0;

	(void)state;
	t_ksm_set("run", "2"); /* no KSM pages: no EBUSY, unless the kernel keeps some */
	t_ksm_set("run", "0");
	t_ksm_set("advisor_mode", "none");
	for (size_t i = 0; i < sp_knob_count; i++) {
		const struct sp_knob *k = &sp_knob_table[i];
		int idx = sp_knob_index(k->name);
		char before[64], after[64], want[64];

		if (idx < 0 || k->type == SP_KNOB_COUNTER || !strcmp(k->name, "run"))
			continue; /* run: 1 would start ksmd; its rules are probed below */
		current(idx, before, sizeof(before));
		for (size_t p = 0; p < sizeof(probes) / sizeof(probes[0]); p++) {
			struct sp_knob_state st;
			unsigned long long v = 0;
			int predicted, got;

			state_now(&st);
			predicted = sp_knob_parse_value(k, probes[p], &v);
			if (!predicted) {
				sp_knob_format_input(k, v, want, sizeof(want));
				predicted = sp_knob_refused(k, &st, strcmp(want, before) != 0);
			}
			got = write_knob(k->name, probes[p]);
			if (got != predicted)
				fail_msg("%s <- '%s': kernel %d, table %d", k->name, probes[p], got, predicted);
			if (!got) {
				current(idx, after, sizeof(after));
				if (strcmp(after, want))
					fail_msg("%s <- '%s': kernel shows %s, table %s", k->name, probes[p], after,
						 want);
				assert_int_equal(write_knob(k->name, before), 0);
			}
			checked++;
		}
	}
	printf("%d writes answered as the table predicts\n", checked);
}

static void run_and_the_advisor(void **state)
{
	const struct sp_knob *run = sp_knob_find("run"), *pts = sp_knob_find("pages_to_scan");
	static const char *const run_probes[] = {"3", "-1", "+0\n", "on", "4294967296", "0x0", "0 "};
	struct sp_knob_state st;
	unsigned long long v;
	char buf[64];

	(void)state;
	for (size_t p = 0; p < sizeof(run_probes) / sizeof(run_probes[0]); p++)
		assert_int_equal(write_knob("run", run_probes[p]), sp_knob_parse_value(run, run_probes[p], &v));
	/* pages_to_scan is the advisor's while advisor_mode is scan-time */
	assert_int_equal(write_knob("advisor_min_pages_to_scan", "777"), 0);
	assert_int_equal(write_knob("advisor_mode", "scan-time"), 0);
	state_now(&st);
	assert_true(st.advisor);
	assert_int_equal(write_knob("pages_to_scan", "100"), sp_knob_refused(pts, &st, 1));
	assert_int_equal(sp_knob_refused(pts, &st, 1), -EINVAL);
	current(sp_knob_index("pages_to_scan"), buf, sizeof(buf));
	assert_string_equal(buf, "777"); /* the change reset it to advisor_min_pages_to_scan */
	/* a write of the same mode is no change: no reset */
	assert_int_equal(write_knob("advisor_min_pages_to_scan", "888"), 0);
	assert_int_equal(write_knob("advisor_mode", "scan-time"), 0);
	current(sp_knob_index("pages_to_scan"), buf, sizeof(buf));
	assert_string_equal(buf, "777");
	assert_int_equal(write_knob("advisor_mode", "none"), 0);
	current(sp_knob_index("pages_to_scan"), buf, sizeof(buf));
	assert_string_equal(buf, "100"); /* the kernel's default */
	assert_int_equal(sp_knob_find("advisor_mode")->effect, SP_EFFECT_ADVISOR_RESET);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_knob_every_text),
		cmocka_unit_test(run_and_the_advisor),
	};

	if (!t_ksm_available()) {
		printf("the kernel's KSM is not writable here (not root, or no KSM): skipped\n");
		return 77;
	}
	t_ksm_save();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
