#!/bin/bash
# cli_hostile.sh - the KSM toolkit on hostile input (issue 15): process names
# with invalid UTF-8, quotes and newlines; binary junk, unparsable values,
# directories and FIFOs in place of sysfs and /proc files; counters at
# LLONG_MAX; non-finite numbers on the command line; targets that exit
# between samples. Output must stay valid (strict UTF-8 JSON, promtool-clean
# metrics, one line per name), nothing may hang, invalid values are flagged
# and left out, and exit statuses follow one rule. Trees are copies of
# tests/fixtures/doctor/healthy made here (a FIFO cannot be committed).
# Every wait has a deadline; what is started is stopped on exit.
# Usage: cli_hostile.sh SAMEPAGE TESTSDIR
set -u
bin=$(readlink -f "$1")
fix=$2/fixtures/doctor
tmp=$(mktemp -d /tmp/sp-hostile.XXXXXX)
fail=0
kids=()
cleanup() {
	for p in "${kids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
pass() { echo "PASS: $*"; }
flunk() { echo "FAIL: $*"; fail=1; }

# host NAME: a fresh copy of the healthy tree
host() {
	rm -rf "${tmp:?}/$1"
	cp -r "$fix/healthy" "$tmp/$1"
	echo "$tmp/$1"
}
ksm() { echo "$1/sys/kernel/mm/ksm"; }
# sp HOST CMD ARGS...: samepage CMD on HOST's tree, at most 20 s (124: it hung)
sp() {
	local h=$1 cmd=$2
	shift 2
	timeout 20 "$bin" "$cmd" --sysfs-root "$h/sys" --proc-root "$h/proc" "$@"
}
# strict_json FILE [-l] [PYTHON]: FILE is one JSON document (one per line with
# -l) in strict UTF-8 with no NaN/Infinity; PYTHON then runs with d bound
strict_json() {
	python3 - "$@" <<'PY'
import json, sys
lines = "-l" in sys.argv[1:]
args = [a for a in sys.argv[1:] if a != "-l"]
raw = open(args[0], "rb").read()
def no_const(c):
    raise ValueError("non-finite number in JSON: " + c)
text = raw.decode("utf-8")  # strict: raises on invalid UTF-8
docs = [json.loads(l, parse_constant=no_const) for l in text.splitlines() if l] if lines else [json.loads(text, parse_constant=no_const)]
for d in docs:
    exec(args[1] if len(args) > 1 else "pass")
PY
}
# utf8_text FILE: FILE is strict UTF-8 without control characters but newline
utf8_text() {
	python3 -c '
import sys
t = open(sys.argv[1], "rb").read().decode("utf-8")
bad = [c for c in t if (ord(c) < 32 and c != "\n") or 0x7f <= ord(c) <= 0x9f]
assert not bad, bad' "$1"
}
promtool_ok() { ! command -v promtool >/dev/null || promtool check metrics <"$1" >/dev/null 2>&1; }

# --- 1: invalid UTF-8 and quotes from the host ---------------------------------
h=$(host utf8)
printf 'r\xff"} 1\n' >"$h/proc/100/comm"
sed -i 's/(redis-server)/(r\xff"} 1)/' "$h/proc/100/stat"
printf '\xff\xfe\x1b[31m\n' >"$(ksm "$h")/ksm_junk" # a file samepage does not know: an extra
printf '\xff\xfe[none]\n' >"$(ksm "$h")/advisor_mode"
sp "$h" status --interval 0 --json >"$tmp/out" 2>/dev/null
strict_json "$tmp/out" '
assert d["processes"][0]["comm"] == "r\\xff\"} 1", d["processes"]
assert d["counters"]["ksm_junk"] == "\\xff\\xfe\x1b[31m", d["counters"]
assert d["invalid"] == {"advisor_mode": "\\xff\\xfe[none]"} and d["advisor_mode"] is None, d["invalid"]' &&
	pass "status --json: invalid UTF-8 escaped as \\xNN, strict UTF-8 out" || flunk "status --json UTF-8: $(head -c 300 "$tmp/out")"
sp "$h" status --interval 0 >"$tmp/out" 2>/dev/null
utf8_text "$tmp/out" && grep -qF 'r\xff"} 1' "$tmp/out" && grep -qF '\xff\xfe\x1b[31m' "$tmp/out" &&
	pass "status: names escaped for people, no raw bytes or escapes" || flunk "status text UTF-8"
sp "$h" top --json -n 1 -d 0.05 >"$tmp/out" 2>/dev/null
strict_json "$tmp/out" -l 'assert d["processes"][0]["comm"] == "r\\xff\"} 1" and d["invalid"]["advisor_mode"] == "\\xff\\xfe[none]"' &&
	pass "top --json: strict UTF-8" ||
	flunk "top --json UTF-8"
sp "$h" exporter --once --top-processes 5 >"$tmp/out" 2>/dev/null
utf8_text "$tmp/out" && promtool_ok "$tmp/out" && grep -qF 'comm="r\\xff\"} 1"} ' "$tmp/out" &&
	pass "exporter: label value valid UTF-8, escaped, promtool clean" || flunk "exporter UTF-8: $(grep comm= "$tmp/out" | head -2)"

# a live process names itself: estimate reads the real /proc
# named NAME_PY: a python3 that sets its comm to the bytes NAME_PY and waits; its pid in $named
named() {
	python3 -c "
import ctypes, sys, time
ctypes.CDLL(None).prctl(15, ctypes.c_char_p($1), 0, 0, 0)
sys.stdout.write('x'); sys.stdout.flush()
b = bytearray(b'\x5a') * (4096 * 64)
time.sleep(60)" >"$tmp/ready" &
	named=$!
	kids+=("$named")
	local deadline=$((SECONDS + 10))
	until [ -s "$tmp/ready" ]; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.05
	done
	rm -f "$tmp/ready"
}
named "b'x\\xff\\xfe\"\\\\q'" || flunk "named process did not start"
"$bin" estimate --pid $named --all-anon --json --no-progress >"$tmp/out" 2>/dev/null
strict_json "$tmp/out" 'assert d["processes"][0]["comm"] == "x\\xff\\xfe\"\\q", d["processes"][0]["comm"]' &&
	pass "estimate --json: a comm with invalid UTF-8 escaped" || flunk "estimate --json UTF-8: $(grep comm "$tmp/out")"
"$bin" estimate --pid $named --all-anon --no-progress >"$tmp/out" 2>/dev/null
utf8_text "$tmp/out" && grep -qF 'x\xff\xfe"\\q' "$tmp/out" && pass "estimate: comm escaped in the summary" ||
	flunk "estimate summary UTF-8"
kill $named

# --- 6: a comm with a newline, parentheses, a quote and a backslash -------------
named "b'a) (b\\nc \"x\\\\'" || flunk "named process did not start"
"$bin" estimate --comm $'a) (b\nc "x\\' --all-anon --json --no-progress >"$tmp/out" 2>"$tmp/err"
strict_json "$tmp/out" "assert [p['pid'] for p in d['processes']] == [$named], d['processes']
assert d['processes'][0]['comm'] == 'a) (b\\nc \"x\\\\', repr(d['processes'][0]['comm'])" &&
	pass "estimate --comm: the whole name, newline and all, found and kept" || flunk "--comm with a newline: $(cat "$tmp/err")"
"$bin" estimate --pid $named --all-anon --no-progress >"$tmp/out" 2>/dev/null
grep -qF ' a) (b\nc "x\\ ' "$tmp/out" && pass "estimate: the whole comm shown escaped on one line" ||
	flunk "comm with a newline shown: $(grep -F 'a) (b' "$tmp/out")"
kill $named
h=$(host comm)
printf 'a) (b\nc "x\\\n' >"$h/proc/100/comm"
sp "$h" status --interval 0 --json >"$tmp/out" 2>/dev/null
strict_json "$tmp/out" 'assert d["processes"][0]["comm"] == "a) (b\nc \"x\\", d["processes"]' &&
	pass "status: comm read to its last newline only" || flunk "status comm newline"

# --- 8: unparsable values are flagged and left out -------------------------------
h=$(host junk)
echo abc >"$(ksm "$h")/run"
echo -1 >"$(ksm "$h")/pages_sharing"
echo 12x >"$(ksm "$h")/full_scans"
rm "$(ksm "$h")/pages_unshared" && mkdir "$(ksm "$h")/pages_unshared"
sp "$h" status --interval 0 --json >"$tmp/out" 2>"$tmp/err"
strict_json "$tmp/out" '
assert set(d["invalid"]) == {"run", "pages_sharing", "full_scans", "pages_unshared"}, d["invalid"]
assert d["invalid"]["run"] == "abc" and d["invalid"]["pages_sharing"] == "-1"
assert d["knobs"]["run"] is None and d["counters"]["pages_sharing"] is None
assert d["savings"]["saved_bytes"] is None and d["savings"]["sharing_per_shared"] is None' &&
	[ "$(grep -c "warning: run: invalid value 'abc'" "$tmp/err")" = 1 ] &&
	pass "status --json: invalid values null, listed, warned once" || flunk "status --json invalid: $(cat "$tmp/err")"
sp "$h" status --interval 0.05 >"$tmp/out" 2>/dev/null
grep -q "^KSM: run=?, INVALID" "$tmp/out" && grep -q "^  run .*INVALID" "$tmp/out" &&
	! grep -q "stopped (merges kept)" "$tmp/out" && ! grep -q -- "-4.00 KiB" "$tmp/out" &&
	pass "status: invalid values flagged, no made-up figures" || flunk "status invalid: $(head -12 "$tmp/out")"
sp "$h" top --json -n 3 -d 0.05 >"$tmp/out" 2>"$tmp/err"
[ "$(grep -c "warning: full_scans:" "$tmp/err")" = 1 ] && strict_json "$tmp/out" -l 'assert d["rates"]["full_scans_per_second"] is None' &&
	pass "top: warned once over 4 readings, no rate from an invalid counter" || flunk "top invalid: $(cat "$tmp/err")"
sp "$h" exporter --once >"$tmp/out" 2>/dev/null
promtool_ok "$tmp/out" && grep -q '^samepage_ksm_up 0$' "$tmp/out" && ! grep -q '^node_ksmd_full_scans_total' "$tmp/out" &&
	! grep -q '^node_ksmd_run ' "$tmp/out" && ! grep -q '^samepage_ksm_saved_bytes' "$tmp/out" &&
	grep -q '^samepage_ksm_invalid{file="full_scans"} 1$' "$tmp/out" &&
	pass "exporter: invalid values left out, named, samepage_ksm_up 0" || flunk "exporter invalid: $(grep -E 'up|invalid|full_scans' "$tmp/out")"
sp "$h" doctor --json >"$tmp/out" 2>/dev/null
strict_json "$tmp/out" 'assert "invalid-values" in [f["id"] for f in d["findings"]], d' && pass "doctor: invalid values are a finding" ||
	flunk "doctor invalid"

# --- 9: FIFOs (and a directory) in place of files: nothing hangs -----------------
h=$(host fifo)
for f in "$(ksm "$h")/pages_shared" "$(ksm "$h")/advisor_mode" "$h/proc/vmstat" "$h/proc/meminfo" "$h/proc/37/status" \
	"$h/proc/100/ksm_stat" "$h/proc/self/mounts" "$h/proc/sys/kernel/numa_balancing" "$h/sys/devices/system/cpu/online"; do
	rm -f "$f" && mkfifo "$f"
done
for c in "status --interval 0 --json" "doctor --json" "top --json -n 1 -d 0.05" "exporter --once" "tune --once --dry-run"; do
	# shellcheck disable=SC2086
	sp "$h" $c >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ $rc != 124 ] && pass "FIFOs: $c returns (status $rc)" || flunk "FIFOs: $c hung"
done
sp "$h" status --interval 0 --json >"$tmp/out" 2>/dev/null
strict_json "$tmp/out" 'assert d["invalid"] == {"pages_shared": "", "advisor_mode": ""}, d["invalid"]; assert d["cow_ksm"] is None' &&
	pass "FIFOs: flagged as invalid, left out" || flunk "FIFOs invalid: $(head -c 300 "$tmp/out")"
h=$(host fifo-exporter)
rm "$(ksm "$h")/full_scans" && mkfifo "$(ksm "$h")/full_scans"
"$bin" exporter --listen 127.0.0.1:0 --sysfs-root "$h/sys" --proc-root "$h/proc" 2>"$tmp/err" &
kids+=("$!")
deadline=$((SECONDS + 10))
until grep -q "listening on" "$tmp/err" || [ $SECONDS -ge $deadline ]; do sleep 0.05; done
port=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$tmp/err")
curl -sf -m 10 "http://127.0.0.1:$port/metrics" >"$tmp/out" && grep -q '^samepage_ksm_invalid{file="full_scans"} 1$' "$tmp/out" &&
	pass "FIFOs: the exporter answers scrapes" || flunk "FIFOs: exporter scrape"

# --- 4: counters at LLONG_MAX saturate -------------------------------------------
h=$(host huge)
echo 9223372036854775807 >"$(ksm "$h")/pages_sharing"
rm -rf "$h/proc/100" # no process: the full scan is sized by the counters' sum
sp "$h" status --interval 0 --json >"$tmp/out" 2>/dev/null
strict_json "$tmp/out" '
assert d["ksmd"]["full_scan_pages"] == 9223372036854775807, d["ksmd"]
assert d["savings"]["saved_bytes"] == 9223372036854775807, d["savings"]' &&
	pass "status: sums and bytes saturate at LLONG_MAX" || flunk "status huge: $(head -c 400 "$tmp/out")"
for c in "status --interval 0" "doctor" "top -b -n 1 -d 0.05" "tune --once --dry-run --mode scan-time"; do
	# shellcheck disable=SC2086
	sp "$h" $c >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ $rc -le 1 ] && pass "huge counters: $c (status $rc)" || flunk "huge counters: $c status $rc: $(tail -3 "$tmp/err")"
done
sp "$h" exporter --once >"$tmp/out" 2>/dev/null
promtool_ok "$tmp/out" && grep -q '^node_ksmd_pages_sharing 9.22337203685478e+18$' "$tmp/out" &&
	pass "exporter: huge counters as valid floats" || flunk "exporter huge: $(grep pages_sharing "$tmp/out")"

# --- 5: non-finite and absurd numbers are refused --------------------------------
for a in "--interval inf" "--interval -inf" "--interval nan" "--interval 1e300" "--rate-limit inf" "--rate-limit nan"; do
	# shellcheck disable=SC2086
	timeout 10 "$bin" estimate --pid $$ --samples 2 $a >/dev/null 2>&1
	rc=$?
	[ $rc = 2 ] && pass "estimate $a -> 2" || flunk "estimate $a: status $rc"
done

# --- 7: one rule for exit statuses and --json -----------------------------------
# expect_json STATUS CMD...: exits STATUS and prints one JSON object with "error"
expect_json() {
	local want=$1 rc
	shift
	timeout 20 "$@" >"$tmp/out" 2>/dev/null
	rc=$?
	[ $rc = "$want" ] && strict_json "$tmp/out" 'assert isinstance(d, dict) and d.get("error"), d' &&
		pass "$* -> $rc, JSON error" || flunk "$*: status $rc (want $want), stdout: $(head -c 200 "$tmp/out")"
}
expect_json 2 "$bin" estimate --pid , --json
expect_json 2 "$bin" estimate --pid 1,,2 --json
expect_json 2 "$bin" estimate --json --bogus
expect_json 1 "$bin" estimate --json --pid 4194303
expect_json 1 "$bin" estimate --json --cgroup /no/such/cgroup
touch "$tmp/plainfile"
expect_json 1 "$bin" estimate --json --cgroup "$tmp/plainfile"
expect_json 4 "$bin" status --json --sysfs-root "$fix/no-ksm/sys" --proc-root "$fix/no-ksm/proc"
expect_json 4 "$bin" top --json -n 1 --sysfs-root "$fix/no-ksm/sys" --proc-root "$fix/no-ksm/proc"
expect_json 4 "$bin" set --json --sysfs-root "$fix/no-ksm/sys" run=1
expect_json 4 "$bin" doctor --json --sysfs-root "$fix/no-ksm/sys" --proc-root "$fix/no-ksm/proc"
expect_json 2 "$bin" status --json --interval x
expect_json 2 "$bin" tune --json --interval 0
timeout 20 "$bin" tune --json --once --sysfs-root "$fix/no-ksm/sys" --proc-root "$fix/no-ksm/proc" >"$tmp/out" 2>/dev/null
rc=$?
[ $rc = 4 ] && strict_json "$tmp/out" -l 'assert d["action"] == "exit" and d["error"], d' &&
	pass "tune --json on no KSM -> 4, exit event with error" || flunk "tune --json no KSM: $rc $(cat "$tmp/out")"

# a target that exits between two samples: a partial result, like one exiting during the first
python3 -c "
import sys, time
b = bytearray(b'\x5a') * (4096 * 256)
open(sys.argv[1], 'w').close()
time.sleep(120)" "$tmp/victim-ready" &
victim=$!
kids+=("$victim")
# its memory filled (until then $victim may still be the forked shell)
deadline=$((SECONDS + 20))
until [ -e "$tmp/victim-ready" ] || [ $SECONDS -ge $deadline ]; do sleep 0.02; done
"$bin" estimate --pid $victim --samples 2 --interval 5 --all-anon --json --no-progress >"$tmp/out" 2>"$tmp/err" &
est=$!
# the first sample is done when estimate sleeps (clock_nanosleep, syscall 230)
deadline=$((SECONDS + 20))
until [ "$(cut -d' ' -f1 /proc/$est/syscall 2>/dev/null)" = 230 ] || [ $SECONDS -ge $deadline ]; do sleep 0.02; done
kill $victim
wait $est
rc=$?
[ $rc = 5 ] && strict_json "$tmp/out" '
p = d["processes"][0]
assert d["partial"] and p["status"] == "exited" and p["pages"] > 0, p' &&
	pass "target exiting between samples: status 5, partial JSON" || flunk "exit between samples: status $rc, $(cat "$tmp/err")"
exit $fail
