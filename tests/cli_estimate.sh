#!/bin/bash
# cli_estimate.sh - `samepage estimate` on bad input: clear messages and
# distinct exit statuses, never a crash. Usage: cli_estimate.sh SAMEPAGE SRCDIR
# Statuses (src/cli/cli.h): 0 ok, 1 failed / no such process, 2 usage,
# 3 permission denied, 5 partial.
set -u
bin=$1
fail=0

expect() { # expect STATUS PATTERN-ON-STDERR -- ARGS...
	local want=$1 pat=$2 out rc
	shift 3
	out=$("$bin" estimate "$@" 2>&1 >/dev/null)
	rc=$?
	if [ "$rc" != "$want" ] || ! grep -q -- "$pat" <<<"$out"; then
		echo "FAIL: samepage estimate $*: status $rc (want $want), stderr: $out"
		fail=1
	else
		echo "ok: $* -> $rc"
	fi
}

expect 0 "" -- --help
expect 2 "no target" --
expect 2 "invalid pid" -- --pid abc
expect 2 "max-page-sharing" -- --pid 1 --max-page-sharing 1
expect 2 "use-zero-pages" -- --pid 1 --use-zero-pages 2
expect 2 "rate-limit" -- --pid 1 --rate-limit 0
expect 1 "no such process" -- --pid 4194303
expect 1 "kernel thread" -- --pid 2
expect 1 "no process named" -- --comm no-such-command-xyz
# --domains: samepaged's config, named and absent or wrong: bad usage, with
# the file and line (tests/cli_estimate_domains.c checks the figures)
conf=$(mktemp)
printf '[domain a]\nusers = 0\nmax_page_sharing = 1\n' >"$conf"
expect 2 "$conf:3: max_page_sharing: invalid value" -- --pid 1 --domains="$conf"
expect 2 "no-such-dir/samepaged.conf: No such file or directory" -- --pid 1 --domains=/no-such-dir/samepaged.conf
rm -f "$conf"

# a process of our own: complete, JSON parses
sleep 30 &
victim=$!
# (until it has exec'd, $victim is the forked shell, which the exec replaces)
deadline=$((SECONDS + 10))
until [ "$(cat /proc/$victim/comm 2>/dev/null)" = sleep ] || [ $SECONDS -ge $deadline ]; do sleep 0.02; done
out=$("$bin" estimate --pid $victim --json --all-anon)
rc=$?
[ $rc = 0 ] || { echo "FAIL: own process: status $rc"; fail=1; }
python3 -c 'import json,sys; d=json.load(sys.stdin); assert "pages_sharing" in d["predicted"]; assert d["processes"][0]["status"]=="ok"' <<<"$out" ||
	{ echo "FAIL: JSON"; fail=1; }

# one target gone, one alive: partial result, status 5
sleep 30 &
gone=$!
kill $gone; wait $gone 2>/dev/null
"$bin" estimate --pid $victim,$gone --all-anon >/dev/null 2>&1
rc=$?
# the gone pid is reported before the scan: that is "no such process", the rest is complete
[ $rc = 0 ] || { echo "FAIL: one missing pid of two: status $rc"; fail=1; }

# no permission: an unprivileged user reading a root process
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$bin" estimate --pid $victim 2>&1 >/dev/null)
	rc=$?
	if [ $rc != 3 ] || ! grep -q "permission denied" <<<"$out"; then
		echo "FAIL: no permission: status $rc, $out"
		fail=1
	else
		echo "ok: no permission -> 3"
	fi
fi
kill $victim 2>/dev/null
exit $fail
