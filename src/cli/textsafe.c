/* SPDX-License-Identifier: MIT */
/*
 * textsafe.c - bytes from the host as valid, printable UTF-8 (see
 * textsafe.h). The decoder accepts what RFC 3629 allows: no overlong
 * forms, no surrogates, nothing above U+10FFFF.
 */
#include <math.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/textsafe.h"

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if s[0] does not
 * start one. *cp gets the code point. */
static size_t utf8_seq(const unsigned char *s, unsigned *cp)
{
	unsigned c = s[0], min;
	size_t n;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2, min = 0x80, c &= 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3, min = 0x800, c &= 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4, min = 0x10000, c &= 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

int sp_utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned cp;

	while (*p) {
		size_t n = utf8_seq(p, &cp);

		if (!n)
			return 0;
		p += n;
	}
	return 1;
}

static int is_control(unsigned cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

char *sp_text(char *dst, size_t len, const char *src, int flags)
{
	const unsigned char *p = (const unsigned char *)src;
	size_t o = 0;

	if (!len)
		return dst;
	while (*p) {
		char esc[16];
		const char *out = esc;
		size_t n, k;
		unsigned cp;

		n = utf8_seq(p, &cp);
		if (!n) {
			snprintf(esc, sizeof(esc), "\\x%02x", *p);
			n = 1;
		} else if ((flags & SP_TEXT_CONTROLS) && is_control(cp)) {
			if (cp == '\n' || cp == '\t' || cp == '\r')
				snprintf(esc, sizeof(esc), "\\%c", cp == '\n' ? 'n' : cp == '\t' ? 't' : 'r');
			else if (cp < 0x80)
				snprintf(esc, sizeof(esc), "\\x%02x", cp);
			else /* C1 controls: their two bytes */
				snprintf(esc, sizeof(esc), "\\x%02x\\x%02x", p[0], p[1]);
		} else if ((flags & SP_TEXT_BACKSLASH) && cp == '\\') {
			out = "\\\\";
		} else {
			memcpy(esc, p, n);
			esc[n] = 0;
		}
		k = strlen(out);
		if (o + k >= len)
			break;
		memcpy(dst + o, out, k);
		o += k;
		p += n;
	}
	dst[o] = 0;
	return dst;
}

const char *sp_safe(const char *s)
{
	static char buf[8][1024];
	static unsigned i;

	return sp_text(buf[i++ % 8], sizeof(buf[0]), s, SP_TEXT_HUMAN);
}

struct json_object *sp_json_double(double x)
{
	return isfinite(x) ? json_object_new_double(x) : NULL;
}

void sp_json_print(FILE *f, struct json_object *o, int flags)
{
	const unsigned char *p = (const unsigned char *)json_object_to_json_string_ext(o, flags);
	unsigned cp;

	/* json-c writes structure in ASCII and string bytes >= 0x80 as they
	 * are: an invalid byte can only be inside a string, where \\xNN is
	 * the text \xNN */
	while (*p) {
		const unsigned char *run = p;
		size_t n;

		while (*p && (n = utf8_seq(p, &cp)))
			p += n;
		fwrite(run, 1, (size_t)(p - run), f);
		if (*p)
			fprintf(f, "\\\\x%02x", *p++);
	}
	fputc('\n', f);
	fflush(f);
	sp_json_printed = 1;
}
