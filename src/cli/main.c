/* SPDX-License-Identifier: MIT */
/* main.c - dispatch `samepage SUBCOMMAND ...` to the registered commands. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/textsafe.h"

extern const struct sp_cmd __start_sp_cmds[] __attribute__((weak));
extern const struct sp_cmd __stop_sp_cmds[] __attribute__((weak));

int sp_json_printed;
const char *sp_cmd_name = "";
static char first_error[512];

void sp_errorf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (!first_error[0])
		vsnprintf(first_error, sizeof(first_error), fmt, ap);
	va_end(ap);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

const char *sp_error_message(void)
{
	char *m = first_error;
	size_t n;

	if (!*m)
		return NULL;
	if (!strncmp(m, "samepage ", 9) && strchr(m, ':')) /* "samepage CMD: " */
		m = strchr(m, ':') + 1 + (strchr(m, ':')[1] == ' ');
	n = strlen(m);
	while (n && m[n - 1] == '\n')
		m[--n] = 0;
	return m;
}

/* --json among the options (getopt_long takes unambiguous prefixes) */
static int wants_json(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		size_t n = strlen(argv[i]);

		if (n >= 3 && !strncmp(argv[i], "--json", n))
			return 1;
	}
	return 0;
}

static const char *status_text(int rc)
{
	switch (rc) {
	case SP_EXIT_USAGE:
		return "bad usage";
	case SP_EXIT_PERM:
		return "permission denied";
	case SP_EXIT_NOKSM:
		return "no KSM in this kernel, or /sys read-only";
	case SP_EXIT_PARTIAL:
		return "partial result";
	}
	return "failed";
}

static int run(const struct sp_cmd *c, int argc, char **argv)
{
	int rc;

	sp_cmd_name = c->name;
	rc = c->run(argc, argv);
	if (rc != SP_EXIT_OK && c->json && !sp_json_printed && wants_json(argc, argv)) {
		struct json_object *o = json_object_new_object();
		const char *m = sp_error_message();

		json_object_object_add(o, "error", json_object_new_string(m ? m : status_text(rc)));
		json_object_object_add(o, "exit_status", json_object_new_int(rc));
		fflush(stdout);
		sp_json_print(stdout, o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
		json_object_put(o);
	}
	return rc;
}

static void usage(FILE *f)
{
	const struct sp_cmd *c;

	fprintf(f, "usage: samepage COMMAND [OPTIONS]\n\n"
		   "Memory deduplication for Linux: the kernel's KSM, and KSM in userspace.\n\n"
		   "Commands:\n");
	for (c = __start_sp_cmds; c < __stop_sp_cmds; c++)
		fprintf(f, "  %-10s %s\n", c->name, c->summary);
	fprintf(f, "\n'samepage COMMAND --help' describes a command; so does man samepage-COMMAND.\n");
}

int main(int argc, char **argv)
{
	const struct sp_cmd *c;

	if (argc < 2) {
		usage(stderr);
		return SP_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return SP_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("samepage %s\n", SAMEPAGE_VERSION);
		return SP_EXIT_OK;
	}
	for (c = __start_sp_cmds; c < __stop_sp_cmds; c++)
		if (!strcmp(c->name, argv[1]))
			return run(c, argc - 1, argv + 1);
	fprintf(stderr, "samepage: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return SP_EXIT_USAGE;
}
