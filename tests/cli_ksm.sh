#!/bin/bash
# cli_ksm.sh - the KSM toolkit against this machine's real kernel KSM (root):
# `samepage run` really gets a program merged; set round trips and the
# kernel's errnos as messages (EINVAL, EBUSY, the advisor's EINVAL); status
# and top output parsed; the exporter scraped with curl and checked with
# promtool (or a strict parser). Holds /tmp/samepage-ksm.lock throughout
# and restores every knob on any exit. Usage: cli_ksm.sh SAMEPAGE TESTSDIR
set -u
bin=$(readlink -f "$1")
ksm=/sys/kernel/mm/ksm
if [ "$(id -u)" != 0 ] || [ ! -w $ksm/run ]; then
	echo "SKIP: needs root and a writable $ksm"
	exit 0
fi
# one user of the kernel's KSM at a time (the C tests take the same lock);
# taken by this shell itself, so a signal to it reaches the restore below
exec 9>>/tmp/samepage-ksm.lock
flock 9
fail=0
pass() { echo "PASS: $*"; }
flunk() { echo "FAIL: $*"; fail=1; }

# --- save every writable knob; restore on any exit ---------------------------
declare -A saved
for f in $(find $ksm/ -maxdepth 1 -type f -perm -u=w); do # root passes -w on read-only files
	v=$(cat "$f")
	[[ $v == *"["* ]] && v=$(sed 's/.*\[\(.*\)\].*/\1/' <<<"$v")
	saved[$(basename "$f")]=$v
done
pids=()
restore() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	echo 2 >$ksm/run; echo 0 >$ksm/run
	echo "${saved[advisor_mode]}" >$ksm/advisor_mode # resets pages_to_scan: first
	for n in "${!saved[@]}"; do
		case $n in run | advisor_mode) ;; *) echo "${saved[$n]}" >$ksm/$n ;; esac
	done
	echo "${saved[run]}" >$ksm/run
}
trap restore EXIT
# killed (ctest's timeout, ^C, a closed terminal): exit, which restores
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

# poll CMD until it succeeds or SECONDS pass
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
}

# --- set: round trips, validation, the kernel's errnos ----------------------
out=$("$bin" set pages_to_scan=1234 sleep_millisecs=7)
[ $? = 0 ] && [ "$(cat $ksm/pages_to_scan)" = 1234 ] && [ "$(cat $ksm/sleep_millisecs)" = 7 ] &&
	grep -q "^pages_to_scan: ${saved[pages_to_scan]} -> 1234$" <<<"$out" && pass "set round trip, old -> new" ||
	flunk "set round trip: $out"
out=$("$bin" set --json use_zero_pages=on | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["changes"][0]["new"])')
[ "$out" = 1 ] && [ "$(cat $ksm/use_zero_pages)" = 1 ] && pass "set boolean on -> 1 (json)" || flunk "set bool: $out"
before=$(cat $ksm/pages_to_scan)
out=$("$bin" set pages_to_scan=5 max_page_sharing=1 2>&1)
[ $? = 2 ] && [ "$(cat $ksm/pages_to_scan)" = "$before" ] && grep -q "from 2 to" <<<"$out" &&
	pass "bad value: nothing written, range named, status 2" || flunk "bad value: $out"
out=$("$bin" set bogus_knob=1 2>&1)
[ $? = 2 ] && grep -q "unknown knob 'bogus_knob'" <<<"$out" && pass "unknown knob refused" || flunk "unknown: $out"
out=$("$bin" set full_scans=0 2>&1)
[ $? = 2 ] && grep -q "read-only counter" <<<"$out" && pass "counter refused" || flunk "counter: $out"
out=$("$bin" set advisor_mode=scan-time 2>&1) && out=$("$bin" set pages_to_scan=200 2>&1)
[ $? = 1 ] && grep -q "advisor sets pages_to_scan" <<<"$out" && pass "EINVAL under the advisor explained" ||
	flunk "advisor EINVAL: $out"
out=$("$bin" set advisor_mode=none 2>&1)
grep -q "pages_to_scan: .* -> 100 (changed by the kernel)" <<<"$out" && pass "kernel's side effect reported" ||
	flunk "side effect: $out"
setpriv --reuid=65534 --regid=65534 --clear-groups "$bin" set sleep_millisecs=30 >/dev/null 2>&1
[ $? = 3 ] && pass "not root -> status 3" || flunk "not root"

# --- run: a program started by samepage run really merges -----------------
"$bin" set pages_to_scan=20000 sleep_millisecs=10 >/dev/null
"$bin" run --ksmd -v -- python3 -c '
import time
b = bytearray(b"\x5a") * (4096 * 4000)   # 4000 identical pages
time.sleep(60)' 2>/tmp/sp-run.$$ &
pids+=($!)
wait_for 10 pgrep -P $! python3 >/dev/null
child=$(pgrep -P $! python3)
grep -q "ksm_merge_any: yes" /tmp/sp-run.$$ && grep -q "run: 0 -> 1" /tmp/sp-run.$$ &&
	pass "run: verified merge_any, ksmd switched on" || flunk "run report: $(cat /tmp/sp-run.$$)"
rm -f /tmp/sp-run.$$
merging() { [ "$(awk '/ksm_merging_pages/ {print $2}' /proc/$child/ksm_stat 2>/dev/null)" -ge 3900 ] 2>/dev/null; }
wait_for 30 merging && pass "run: ksm_stat shows $(awk '/ksm_merging_pages/ {print $2}' /proc/$child/ksm_stat) merging pages" ||
	flunk "run: not merged: $(cat /proc/$child/ksm_stat)"

# --- status and top while merged --------------------------------------------
"$bin" status --json --interval 0.3 >/tmp/sp-status.$$
python3 - "$child" /tmp/sp-status.$$ <<'PY' && pass "status --json: knobs, savings, ksmd, process row" || flunk "status --json"
import json, os, sys
child, path = int(sys.argv[1]), sys.argv[2]
d = json.load(open(path))
files = set(os.listdir("/sys/kernel/mm/ksm"))
assert files == set(d["knobs"]) | set(d["counters"]), files ^ (set(d["knobs"]) | set(d["counters"]))
assert d["counters"]["pages_sharing"] >= 3900
assert d["savings"]["saved_bytes"] == d["counters"]["pages_sharing"] * d["savings"]["page_size"]
assert d["ksmd"]["pid"] > 0 and d["ksmd"]["cpu_percent"] is not None
assert d["ksmd"]["full_scan_seconds"] is not None
row = [p for p in d["processes"] if p["pid"] == child]
assert row and row[0]["ksm_merge_any"] and row[0]["ksm_merging_pages"] >= 3900, d["processes"]
PY
rm -f /tmp/sp-status.$$
out=$("$bin" status --interval 0.2)
grep -q "pages_sharing x page size" <<<"$out" && grep -qE "^ +[0-9]+ +python3 " <<<"$out" &&
	pass "status: formulas and process table" || flunk "status text: $out"
"$bin" top --json -n 2 -d 0.3 | python3 -c '
import json, sys
lines = [json.loads(l) for l in sys.stdin]
assert len(lines) == 2
for d in lines:
    r = d["rates"]
    assert r["interval_seconds"] > 0.2 and "cow_breaks_per_second" in r and "merged_per_second" in r
' && pass "top --json: 2 readings with rates" || flunk "top --json"
out=$("$bin" top -b -n 1 -d 0.1)
grep -q "COW breaks/s" <<<"$out" && pass "top -b: rates shown" || flunk "top -b: $out"

# --- EBUSY while pages are shared, and the fix it names -----------------------
out=$("$bin" set max_page_sharing=512 2>&1)
[ $? = 1 ] && grep -q "Device or resource busy" <<<"$out" && grep -q "samepage set run=2 max_page_sharing=512 run=1" <<<"$out" &&
	pass "EBUSY explained with the fix" || flunk "EBUSY: $out"

# --- exporter: scraped with curl, checked by promtool -------------------------
"$bin" exporter --listen 127.0.0.1:0 2>/tmp/sp-exp.$$ &
pids+=($!)
wait_for 10 grep -q "listening on" /tmp/sp-exp.$$
port=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' /tmp/sp-exp.$$)
rm -f /tmp/sp-exp.$$
curl -sf "http://127.0.0.1:$port/metrics" >/tmp/sp-metrics.$$ || flunk "curl /metrics"
if command -v promtool >/dev/null; then
	promtool check metrics </tmp/sp-metrics.$$ && pass "promtool check metrics" || flunk "promtool"
fi
python3 - "$child" /tmp/sp-metrics.$$ <<'PY' && pass "metrics: node_ksmd names, extras, process series" || flunk "metrics content"
import re, sys
child, text = sys.argv[1], open(sys.argv[2]).read()
line = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.e+]+|NaN|[+-]Inf)$')
types, seen = {}, {}
for l in text.splitlines():
    if l.startswith("# TYPE "):
        _, _, n, t = l.split(" ")
        assert n not in types, "TYPE twice: " + n
        types[n] = t
    elif l.startswith("# HELP ") or not l:
        continue
    else:
        m = line.match(l)
        assert m, "bad line: " + l
        assert m.group(1) in types, "no TYPE: " + l
        seen[m.group(1) + (m.group(2) or "")] = float(m.group(5))
for n in ["node_ksmd_full_scans_total", "node_ksmd_pages_sharing", "node_ksmd_sleep_seconds", "node_ksmd_run",
          "samepage_ksmd_cpu_seconds_total", "samepage_ksm_pages_skipped_total", "samepage_ksm_zero_pages",
          "samepage_ksm_stable_node_dups", 'samepage_ksm_advisor_mode{mode="none"}']:
    assert n in seen, n
assert types["node_ksmd_full_scans_total"] == "counter"
assert seen["node_ksmd_pages_sharing"] >= 3900 and seen["node_ksmd_run"] == 1
assert any(k.startswith('samepage_ksm_process_profit_bytes{pid="%s"' % child) for k in seen)
PY
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/nothing")
[ "$code" = 404 ] && pass "exporter: 404 elsewhere" || flunk "exporter 404: $code"
rm -f /tmp/sp-metrics.$$

# --- restore, and check it took -----------------------------------------------
restore
trap - EXIT
bad=
for n in "${!saved[@]}"; do
	v=$(cat $ksm/$n)
	[[ $v == *"["* ]] && v=$(sed 's/.*\[\(.*\)\].*/\1/' <<<"$v")
	[ "$v" = "${saved[$n]}" ] || bad="$bad $n=$v"
done
[ -z "$bad" ] && [ "$(cat $ksm/pages_sharing)" = 0 ] && pass "every knob restored, pages_sharing 0" || flunk "not restored:$bad"
exit $fail
