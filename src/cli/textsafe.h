/* SPDX-License-Identifier: MIT */
/*
 * textsafe.h - text from the host, made safe to print.
 *
 * Process names (any process picks its own with PR_SET_NAME), mapping
 * names, sysfs and /proc contents are bytes, not text: they may hold
 * invalid UTF-8, newlines, terminal escapes, quotes. Every output of the
 * command goes through here:
 *
 *   human text     sp_safe(): invalid UTF-8 as \xNN, control characters as
 *                  \n, \t, \r or \xNN, a backslash as \\ (so the escaping is
 *                  unambiguous and a name stays on one line);
 *   JSON           sp_json_print(): json-c copies string bytes through
 *                  unchecked, so invalid UTF-8 in any key or value is
 *                  written as the six characters \\xNN (the string "\xNN");
 *                  numbers are made with sp_json_double(), which gives null
 *                  for an infinite or NaN value (JSON has none);
 *   Prometheus     sp_text(.., SP_TEXT_CONTROLS): label values are UTF-8,
 *                  their \, " and newline escaped by the writer.
 */
#ifndef SP_CLI_TEXTSAFE_H
#define SP_CLI_TEXTSAFE_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdio.h>

enum {
	SP_TEXT_BYTES = 0,     /* invalid UTF-8 bytes as \xNN (always)     */
	SP_TEXT_CONTROLS = 1,  /* control characters as \n \t \r \xNN     */
	SP_TEXT_BACKSLASH = 2, /* \ as \\                                 */
	SP_TEXT_HUMAN = 1 | 2,
};

/* Copies src into dst (len bytes with the NUL) as valid UTF-8, escaped as
 * flags say; stops before an escape or character that would not fit.
 * Returns dst. */
char *sp_text(char *dst, size_t len, const char *src, int flags);

/* sp_text(SP_TEXT_HUMAN) into one of a few rotating static buffers, for
 * printf arguments; longer text is cut. Not thread-safe. */
const char *sp_safe(const char *s);

/* 1 if s is valid UTF-8 */
int sp_utf8_valid(const char *s);

/* A JSON number, or null when x is infinite or NaN. */
struct json_object *sp_json_double(double x);

/* Prints o and a newline on f with invalid UTF-8 escaped, and notes that
 * this command's JSON answer went out (see sp_json_printed in cli.h). */
void sp_json_print(FILE *f, struct json_object *o, int flags);

#endif /* SP_CLI_TEXTSAFE_H */
