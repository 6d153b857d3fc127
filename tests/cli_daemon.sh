#!/bin/bash
# cli_daemon.sh - `samepage status/set/top/exporter --daemon` against a real
# samepaged on a private socket, with a real client: example_merge, held
# alive with its pages merged (its first line of output goes, line-buffered,
# into a pipe that is already full, so it blocks right after merging until it
# is killed), under a name with a quote, a backslash and a newline, which
# every output must escape. Checks status (text and JSON), set (a value
# round trips through STATUS; bad values, the daemon's EINVAL and EBUSY
# explained; EACCES for another user via setpriv), top, the exporter's
# samepage_daemon_* series (promtool, when installed, and a strict parser),
# and the errors when no samepaged answers. Every wait has a deadline;
# everything started is stopped on exit. Usage: cli_daemon.sh SAMEPAGE TESTSDIR
set -u
bin=$(readlink -f "$1")
build=$(dirname "$bin")
daemon=$build/samepaged
example=$build/example_merge
for t in "$daemon" "$example"; do
	if [ ! -x "$t" ]; then
		echo "SKIP: $t not built (cmake --build BUILD --target samepaged example_merge)"
		exit 0
	fi
done
for t in python3 stdbuf mkfifo; do
	command -v $t >/dev/null || { echo "SKIP: needs $t"; exit 0; }
done
tmp=$(mktemp -d /tmp/sp-cli-daemon.XXXXXX)
chmod 755 "$tmp" # another user (setpriv) reaches the socket and the command
sock=$tmp/sock
fail=0
dpid=
cpid=
cleanup() {
	[ -n "$cpid" ] && kill "$cpid" 2>/dev/null && wait "$cpid" 2>/dev/null
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
	exec 3>&-
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP
pass() { echo "PASS: $*"; }
flunk() { echo "FAIL: $*"; fail=1; }
die() {
	echo "FAIL: $*"
	echo "--- samepaged's log:"
	cat "$tmp/log"
	exit 1
}

# poll CMD until it succeeds or SECONDS pass
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
}

# --- samepaged on a private socket --------------------------------------------
uid=$(id -u)
dom=user:$uid
if [ "$uid" = 0 ]; then
	: >"$tmp/conf" # root may change knobs; other users may not
else
	printf '[daemon]\nadmin_group = %s\n' "$(id -g)" >"$tmp/conf" # so that this user may
fi
"$daemon" --socket "$sock" --config "$tmp/conf" --verbose 2>"$tmp/log" &
dpid=$!
wait_for 10 test -S "$sock" || die "samepaged did not create $sock"

# --- no daemon: a clear error, exit 4 -----------------------------------------
out=$("$bin" status --daemon="$tmp/none" 2>&1)
rc=$?
[ $rc = 4 ] && grep -q "^samepage status: no samepaged at $tmp/none: No such file or directory$" <<<"$out" &&
	pass "status, no socket: exit 4, says so" || flunk "status, no socket: rc $rc: $out"
python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.bind(sys.argv[1])' \
	"$tmp/stale" # a socket file nobody listens on: ECONNREFUSED
for c in status top set; do
	args=()
	[ $c = top ] && args=(-n 1)
	[ $c = set ] && args=(run=1) # after the options: set stops at the first KNOB=VALUE
	out=$("$bin" $c --daemon="$tmp/stale" "${args[@]}" 2>&1 >/dev/null)
	rc=$?
	[ $rc = 4 ] && grep -q "^samepage $c: no samepaged at $tmp/stale: Connection refused$" <<<"$out" &&
		pass "$c, nobody listening: exit 4, Connection refused" || flunk "$c, stale socket: rc $rc: $out"
done
out=$("$bin" status --daemon="$tmp/stale" --json 2>/dev/null)
python3 -c '
import json, sys
o = json.loads(sys.argv[1])
assert o["exit_status"] == 4 and "Connection refused" in o["error"], o' "$out" &&
	pass "status --json, no daemon: {error, exit_status 4}" || flunk "status --json, no daemon: $out"
"$bin" status --domain x >/dev/null 2>&1
[ $? = 2 ] && pass "--domain without --daemon: exit 2" || flunk "--domain without --daemon"

# --- a client, merged and held alive --------------------------------------------
name=$'ex"q\\m\nrg' # its comm: a quote, a backslash, a newline
cp "$example" "$tmp/$name"
mkfifo "$tmp/fifo"
exec 3<>"$tmp/fifo"
python3 - "$tmp/fifo" <<'PY' || die "could not fill the pipe"
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK)
for chunk in (b"x" * 4096, b"x"):
    try:
        while True:
            os.write(fd, chunk)
    except BlockingIOError:
        pass
PY
# (stdbuf preloads a library: a SAMEPAGE_SANITIZE build's ASan must allow it)
SAMEPAGE_DAEMON=$sock ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
	stdbuf -oL "$tmp/$name" >&3 2>"$tmp/client.err" &
cpid=$!
merged() {
	kill -0 $cpid 2>/dev/null || return 2
	"$bin" status --daemon="$sock" -i 0 --json 2>/dev/null | python3 -c '
import json, sys
o = json.load(sys.stdin)
c = [c for c in o["clients"] if c["pid"] == int(sys.argv[1])]
sys.exit(0 if c and c[0]["ksm_merging_pages"] > 0 else 1)' $cpid
}
wait_for 60 merged || { echo "client: $(cat "$tmp/client.err")"; die "example_merge did not get merged pages"; }
pass "example_merge (pid $cpid) merged and held"

# --- status ---------------------------------------------------------------------
out=$("$bin" status --daemon="$sock" 2>&1)
rc=$?
[ $rc = 0 ] && grep -q "^samepaged pid $dpid at $sock: 1 domain, .*1 client" <<<"$out" &&
	grep -q "^Domain $dom: run=1, merging; 1 client, 64.0 MiB registered$" <<<"$out" &&
	grep -Eq "^  pages_sharing +[1-9][0-9]* " <<<"$out" && grep -q "^  saved " <<<"$out" &&
	grep -q "^Rates (over 0.5 s)$" <<<"$out" &&
	grep -Eq "^ +$cpid +$uid  ex\"q\\\\\\\\m\\\\nrg +$dom +[1-9][0-9]* " <<<"$out" &&
	pass "status --daemon: domain, counters, rates, client (name escaped)" || flunk "status --daemon: rc $rc: $out"
"$bin" status --daemon="$sock" --json -i 0.2 >"$tmp/status.json"
python3 - "$tmp/status.json" "$dom" "$cpid" "$uid" "$dpid" "$name" <<'PY' && pass "status --daemon --json" || flunk "status --json: $(cat "$tmp/status.json")"
import json, sys
path, dom, cpid, uid, dpid, name = sys.argv[1:]
o = json.load(open(path))
assert o["daemon_pid"] == int(dpid) and o["domain_count"] == 1 and o["interval_seconds"] > 0, o
d = o["domains"][0]
assert d["name"] == dom and d["clients"] == 1 and d["registered_bytes"] == 64 << 20, d
assert d["counters"]["pages_sharing"] > 0 and d["counters"]["pages_shared"] > 0, d
assert d["knobs"]["run"] == 1 and d["knobs"]["advisor_mode"] == "none" and d["knobs"]["scan_threads"] == 1, d
assert d["savings"]["saved_bytes"] == d["counters"]["pages_sharing"] * 4096, d
assert d["rates"]["scanned_per_second"] > 0 and d["scanner"]["full_scan_method"] in ("measured", "projection"), d
c = o["clients"][0]
assert o["client_count"] == 1 and c["pid"] == int(cpid) and c["uid"] == int(uid) and c["domain"] == dom, c
assert c["comm"] == name and c["ksm_merging_pages"] > 0 and c["registered_pages"] == 16384, c
PY
out=$("$bin" status --daemon="$sock" -i 0 --domain "$dom" -n 0)
[ $? = 0 ] && grep -q "^Domain $dom:" <<<"$out" && ! grep -q "PID" <<<"$out" &&
	pass "status --domain, -n 0" || flunk "status --domain: $out"
out=$("$bin" status --daemon="$sock" -i 0 --domain nosuch 2>&1)
[ $? = 1 ] && grep -q "has no domain 'nosuch'" <<<"$out" && pass "status --domain nosuch: exit 1" ||
	flunk "status --domain nosuch: $out"
out=$(SAMEPAGE_DAEMON=$sock "$bin" status --daemon -i 0 2>&1)
[ $? = 0 ] && grep -q "^samepaged pid $dpid at $sock:" <<<"$out" &&
	pass "--daemon alone takes \$SAMEPAGE_DAEMON" || flunk "--daemon with SAMEPAGE_DAEMON: $out"

# knob K of the domain, from status --json
knob() {
	"$bin" status --daemon="$sock" -i 0 --json | python3 -c '
import json, sys
print(json.load(sys.stdin)["domains"][0]["knobs"][sys.argv[1]])' "$1"
}

# --- set --------------------------------------------------------------------------
old=$(knob pages_to_scan)
out=$("$bin" set --daemon="$sock" pages_to_scan=1234 sleep_millisecs=+7 2>&1)
rc=$?
[ $rc = 0 ] && [ "$(knob pages_to_scan)" = 1234 ] && [ "$(knob sleep_millisecs)" = 7 ] &&
	grep -q "^$dom: pages_to_scan: $old -> 1234$" <<<"$out" && grep -q "^$dom: sleep_millisecs: 20 -> 7$" <<<"$out" &&
	grep -q "^domains made later: pages_to_scan: -> 1234$" <<<"$out" &&
	pass "set round trip through STATUS, old -> new" || flunk "set: rc $rc: $out"
out=$("$bin" set --daemon="$sock" --domain "$dom" --json sleep_millisecs=20)
python3 -c '
import json, sys
o = json.loads(sys.argv[1])
c = o["changes"]
assert "error" not in o and len(c) == 1, o
assert c[0] == {"domain": sys.argv[2], "knob": "sleep_millisecs", "old": "7", "new": "20", "written": True,
                "by_daemon": False}, c' "$out" "$dom" && [ "$(knob sleep_millisecs)" = 20 ] &&
	pass "set --domain --json" || flunk "set --domain --json: $out"
out=$("$bin" set --daemon="$sock" -n pages_to_scan=99)
[ $? = 0 ] && grep -q "^$dom: pages_to_scan: 1234 -> 99 (dry run)$" <<<"$out" && [ "$(knob pages_to_scan)" = 1234 ] &&
	pass "set -n writes nothing" || flunk "set -n: $out"
for a in "pages_to_scan=abc" "pages_to_scan=0x10" "run=3" "use_zero_pages=maybe"; do
	out=$("$bin" set --daemon="$sock" sleep_millisecs=5 $a 2>&1)
	rc=$?
	[ $rc = 2 ] && grep -q "Invalid argument" <<<"$out" && [ "$(knob sleep_millisecs)" = 20 ] &&
		pass "set $a: EINVAL, exit 2, nothing written" || flunk "set $a: rc $rc: $out"
done
for a in "nosuch=1" "pages_shared=1" "novalue"; do
	"$bin" set --daemon="$sock" $a >/dev/null 2>&1
	[ $? = 2 ] && pass "set $a: exit 2" || flunk "set $a"
done
out=$("$bin" set --daemon="$sock" scan_threads=2 2>&1)
rc=$?
[ $rc = 1 ] && grep -q "refused scan_threads=2: Invalid argument" <<<"$out" && grep -q "one scanner per domain" <<<"$out" &&
	[ "$(knob scan_threads)" = 1 ] && pass "samepaged's EINVAL explained, exit 1" || flunk "scan_threads=2: rc $rc: $out"
out=$("$bin" set --daemon="$sock" max_page_sharing=10 2>&1)
rc=$?
[ $rc = 1 ] && grep -q "Device or resource busy" <<<"$out" &&
	grep -q "samepage set --daemon=$sock run=2 max_page_sharing=10 run=1" <<<"$out" &&
	pass "EBUSY (merged pages exist) explained with the fix" || flunk "EBUSY: rc $rc: $out"
out=$("$bin" set --daemon="$sock" advisor_mode=scan-time 2>&1)
[ $? = 0 ] && grep -q "^$dom: advisor_mode: none -> scan-time$" <<<"$out" &&
	grep -q "^$dom: pages_to_scan: 1234 -> [0-9]* (changed by samepaged)$" <<<"$out" &&
	pass "advisor_mode: pages_to_scan reset, reported as changed by samepaged" || flunk "advisor_mode: $out"
out=$("$bin" set --daemon="$sock" pages_to_scan=777 2>&1)
rc=$?
[ $rc = 1 ] && grep -q "Invalid argument" <<<"$out" && grep -q "advisor_mode=none pages_to_scan=777" <<<"$out" &&
	pass "the advisor's EINVAL explained with the fix" || flunk "advisor EINVAL: rc $rc: $out"
"$bin" set --daemon="$sock" advisor_mode=none pages_to_scan=1234 >/dev/null &&
	[ "$(knob advisor_mode)" = none ] && [ "$(knob pages_to_scan)" = 1234 ] &&
	pass "set in order: advisor_mode=none, then pages_to_scan" || flunk "advisor_mode=none pages_to_scan=1234"
out=$("$bin" set --daemon="$sock" --domain nosuch run=1 2>&1)
[ $? = 1 ] && grep -q "has no domain 'nosuch'" <<<"$out" && pass "set --domain nosuch: exit 1" ||
	flunk "set --domain nosuch: $out"
if [ "$uid" = 0 ] && command -v setpriv >/dev/null; then
	cp "$bin" "$tmp/samepage" # reachable by another user whatever the build directory's mode
	out=$(setpriv --reuid 65534 --regid 65534 --clear-groups "$tmp/samepage" set --daemon="$sock" pages_to_scan=5 2>&1)
	rc=$?
	[ $rc = 3 ] && grep -q "refused pages_to_scan=5: Permission denied" <<<"$out" &&
		grep -q "only root or the daemon's admin group may change knobs" <<<"$out" && [ "$(knob pages_to_scan)" = 1234 ] &&
		pass "another user: EACCES explained, exit 3, nothing changed" || flunk "EACCES: rc $rc: $out"
	out=$(setpriv --reuid 65534 --regid 65534 --clear-groups "$tmp/samepage" set --daemon="$sock" --domain "$dom" \
		pages_to_scan=5 2>&1)
	rc=$?
	[ $rc = 3 ] && grep -q "Permission denied" <<<"$out" && pass "another user, --domain: EACCES too, exit 3" ||
		flunk "EACCES with --domain: rc $rc: $out"
	# another user reads status: every domain, or (samepaged hides other
	# tenants' counters) a header saying that domains are not shown
	out=$(setpriv --reuid 65534 --regid 65534 --clear-groups "$tmp/samepage" status --daemon="$sock" -i 0 2>&1)
	[ $? = 0 ] && { grep -q "^Domain $dom:" <<<"$out" ||
		grep -q "^samepaged pid $dpid at $sock: 1 domain (0 shown to this user)," <<<"$out"; } &&
		pass "another user may read status" || flunk "status as another user: $out"
else
	echo "SKIP: EACCES for another user (needs root and setpriv)"
fi

# --- top ---------------------------------------------------------------------------
out=$("$bin" top --daemon="$sock" -b -d 0.3 -n 2 2>&1)
rc=$?
[ $rc = 0 ] && [ "$(grep -c "^samepaged pid $dpid at $sock: .*; rates over" <<<"$out")" = 2 ] &&
	python3 -c '
import sys
rows = [l.split() for l in sys.argv[1].splitlines() if l.startswith("  " + sys.argv[2] + " ")]
assert len(rows) == 2, rows
for r in rows:  # DOMAIN RUN CLIENTS REGISTERED(2) SAVED(2) PROFIT(2) SCANNED/s SCANS/s MERGED/s FULL SCAN
    assert r[1:5] == ["1", "1", "64.0", "MiB"], r
    assert float(r[9]) > 0 and float(r[10]) >= 0 and float(r[11]) >= 0, r' "$out" "$dom" &&
	grep -Eq "^ +$cpid +$uid  " <<<"$out" && pass "top --daemon -b: two refreshes, domain rates, client" ||
	flunk "top --daemon: rc $rc: $out"
"$bin" top --daemon="$sock" --json -d 0.3 -n 2 >"$tmp/top.json"
python3 - "$tmp/top.json" "$dom" "$cpid" <<'PY' && pass "top --daemon --json: one object per line, rates" || flunk "top --json: $(cat "$tmp/top.json")"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 2, lines
for l in lines:
    o = json.loads(l)
    d = o["domains"][0]
    assert d["name"] == sys.argv[2] and d["rates"]["full_scans_per_second"] >= 0, d
    assert o["clients"][0]["pid"] == int(sys.argv[3]), o
PY

# --- exporter ------------------------------------------------------------------------
"$bin" exporter --once --daemon="$sock" >"$tmp/metrics" 2>"$tmp/exporter.err" ||
	flunk "exporter --once --daemon: $(cat "$tmp/exporter.err")"
if command -v promtool >/dev/null; then
	promtool check metrics <"$tmp/metrics" && pass "promtool check metrics" || flunk "promtool"
fi
python3 - "$tmp/metrics" "$dom" "$cpid" <<'PY' && pass "metrics: samepage_daemon_* by domain, clients by pid, labels escaped" || flunk "metrics content"
import re, sys
text, dom, cpid = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
line = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\[\\"n]|[^"\\\n])*",?)*\})? (-?[0-9.e+]+)$')
types, series = {}, {}
for l in text.splitlines():
    if l.startswith("# TYPE "):
        _, _, n, t = l.split(" ")
        assert n not in types, "TYPE twice: " + n
        types[n] = t
    elif l.startswith("#") or not l:
        continue
    else:
        m = line.match(l)
        assert m, "malformed: " + repr(l)
        assert m.group(1) in types, "no TYPE: " + l
        series[l.rsplit(" ", 1)[0]] = float(l.rsplit(" ", 1)[1])
d = '{domain="%s"}' % dom
assert series["samepage_daemon_up"] == 1, series
assert series["samepage_daemon_domains"] == 1
assert series["samepage_daemon_pages_sharing" + d] > 0
assert series["samepage_daemon_pages_to_scan" + d] == 1234
assert series["samepage_daemon_full_scans_total" + d] > 0 and types["samepage_daemon_full_scans_total"] == "counter"
assert series["samepage_daemon_sleep_seconds" + d] == 0.02
assert series["samepage_daemon_saved_bytes" + d] == series["samepage_daemon_pages_sharing" + d] * 4096
assert series['samepage_daemon_advisor_mode{domain="%s",mode="none"}' % dom] == 1
c = 'samepage_daemon_client_merging_pages{pid="%s",domain="%s",comm="ex\\"q\\\\m\\\\nrg"}' % (cpid, dom)
assert series[c] > 0, [k for k in series if "client" in k]
assert any(k.startswith("node_ksmd_") or k.startswith("samepage_ksm_up") for k in series)  # the kernel's too
PY
out=$("$bin" exporter --once --daemon="$tmp/stale" 2>&1 >"$tmp/metrics")
[ $? = 0 ] && grep -q "^samepage_daemon_up 0$" "$tmp/metrics" && grep -q "no samepaged at $tmp/stale" <<<"$out" &&
	pass "exporter, no daemon: samepage_daemon_up 0 and a warning" || flunk "exporter without daemon: $out"
"$bin" exporter --help | grep -q -- "--daemon\[=SOCKET\]" && "$bin" status --help | grep -q -- "--daemon" &&
	"$bin" set --help | grep -q -- "--domain NAME" && "$bin" top --help | grep -q -- "--daemon" &&
	pass "--help names --daemon" || flunk "--help"

# --- samepaged stopped: the same clear error --------------------------------------------
kill "$cpid" && wait "$cpid" 2>/dev/null
cpid=
kill "$dpid" && wait "$dpid" 2>/dev/null
dpid=
out=$("$bin" status --daemon="$sock" 2>&1)
rc=$?
[ $rc = 4 ] && grep -Eq "no samepaged at $sock: (Connection refused|No such file or directory)" <<<"$out" &&
	pass "samepaged stopped: exit 4, clear error" || flunk "after stop: rc $rc: $out"
exit $fail
