#!/bin/bash
# cli_doctor.sh - `samepage doctor` on the recorded host trees in
# tests/fixtures/doctor/: each case reports exactly its findings, each with
# evidence and a fix, and the right exit status. Read-only; no root needed.
# Usage: cli_doctor.sh SAMEPAGE TESTSDIR
set -u
bin=$1
fix=$2/fixtures/doctor
fail=0

pass() { echo "PASS: $*"; }
flunk() { echo "FAIL: $*"; fail=1; }

# case NAME STATUS ID... : doctor --json on the case gives these finding ids
check() {
	local name=$1 want=$2 out rc ids
	shift 2
	out=$("$bin" doctor --json --sysfs-root "$fix/$name/sys" --proc-root "$fix/$name/proc")
	rc=$?
	ids=$(python3 -c '
import json, sys
d = json.load(sys.stdin)
for f in d["findings"]:
    assert f["evidence"] and f["fix"] and f["title"], f
print(" ".join(sorted(f["id"] for f in d["findings"])))' <<<"$out") || { flunk "$name: bad JSON: $out"; return; }
	local expect
	expect=$(tr ' ' '\n' <<<"$*" | sort | tr '\n' ' ' | sed 's/ $//')
	if [ "$rc" = "$want" ] && [ "$ids" = "$expect" ]; then
		pass "$name -> [$ids], status $rc"
	else
		flunk "$name: got [$ids] status $rc, want [$expect] status $want"
	fi
}

check healthy 0
check numa-vm 1 numa-balancing merge-across-nodes
check isolated 1 ksmd-isolated
check slow-scan 1 slow-scan smart-scan-off
check chains 1 max-page-sharing chain-fanout
check idle 1 nothing-mergeable
check container 1 sysfs-readonly
check no-ksm 4 ksm-missing

# the human report carries evidence and the fix command
out=$("$bin" doctor --sysfs-root "$fix/isolated/sys" --proc-root "$fix/isolated/proc")
grep -q "evidence: .*Cpus_allowed_list = 0-3; isolated = 2-3" <<<"$out" && grep -q "fix: *taskset -pc 0-1 37" <<<"$out" &&
	pass "isolated: evidence and fix in the report" || flunk "isolated report: $out"
out=$("$bin" doctor --sysfs-root "$fix/slow-scan/sys" --proc-root "$fix/slow-scan/proc")
grep -q "projection: 4000000 pages / pages_to_scan 100 x sleep_millisecs 20 (13 min 20 s)" <<<"$out" &&
	pass "slow-scan: projection shown with its formula" || flunk "slow-scan report: $out"

# usage errors and --help
"$bin" doctor --help | grep -q "usage: samepage doctor" && pass "doctor --help" || flunk "doctor --help"
"$bin" doctor --bogus >/dev/null 2>&1
[ $? = 2 ] && pass "doctor --bogus -> 2" || flunk "doctor --bogus"

# this host: runs, JSON parses (findings depend on the host)
"$bin" doctor --json | python3 -c 'import json,sys; json.load(sys.stdin)' && pass "doctor on this host" ||
	flunk "doctor on this host"

# the other readers on a fixture: status and exporter
out=$("$bin" status --interval 0 --json --sysfs-root "$fix/numa-vm/sys" --proc-root "$fix/numa-vm/proc")
python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["counters"]["pages_sharing"] == 16320
assert d["savings"]["saved_bytes"] == 16320 * d["savings"]["page_size"]
assert abs(d["savings"]["sharing_per_shared"] - 255) < 1e-9
assert [p["pid"] for p in d["processes"]] == [100, 200]
assert d["ksmd"]["pid"] == 37 and d["ksmd"]["allowed_cpus"] == "0-3"
assert d["ksmd"]["full_scan_method"] == "projection"' <<<"$out" && pass "status on a fixture" || flunk "status on fixture: $out"
"$bin" exporter --once --top-processes 1 --sysfs-root "$fix/numa-vm/sys" --proc-root "$fix/numa-vm/proc" >/tmp/sp-doctor-metrics.$$
grep -q '^samepage_ksm_process_profit_bytes{pid="other",comm="other"} 32000000$' /tmp/sp-doctor-metrics.$$ &&
	grep -q '^node_ksmd_sleep_seconds 0.02$' /tmp/sp-doctor-metrics.$$ &&
	pass "exporter on a fixture: bounded process series, sleep in seconds" || flunk "exporter on a fixture"
rm -f /tmp/sp-doctor-metrics.$$
exit $fail
