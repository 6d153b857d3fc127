#!/bin/bash
# cli_tune.sh - `samepage tune` against copies of a recorded host tree
# (tests/fixtures/doctor/healthy) whose knobs are plain files: --dry-run
# decides and writes nothing; --once writes; the daemon boosts step by step,
# stops KSM when the pressure goes, and on SIGTERM/SIGINT puts every knob
# back; --config and the options; usage errors. Then, as root, the real
# kernel: --dry-run changes no knob, and ksmd's CPUs and nice are set and
# restored. Every wait polls a condition against a deadline.
# Usage: cli_tune.sh SAMEPAGE TESTSDIR
set -u
bin=$(readlink -f "$1")
fix=$2/fixtures/doctor
tmp=$(mktemp -d /tmp/sp-tune.XXXXXX)
fail=0
bg=
cleanup() {
	[ -n "$bg" ] && kill "$bg" 2>/dev/null && wait "$bg" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

pass() { echo "PASS: $*"; }
flunk() { echo "FAIL: $*"; fail=1; }

# wait_for SECONDS CMD...: poll CMD until it succeeds or the deadline passes
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.05
	done
}

# host NAME [AVAIL_KB]: a fresh copy of the healthy tree, MemTotal 16 GiB
host() {
	local h=$tmp/$1
	rm -rf "$h"
	cp -r "$fix/healthy" "$h"
	printf 'MemTotal:       16777216 kB\nMemFree:        %s kB\nMemAvailable:   %s kB\n' "${2:-1000000}" \
		"${2:-1000000}" >"$h/proc/meminfo"
	echo "$h"
}
knob() { cat "$1/sys/kernel/mm/ksm/$2"; }
knob_is() { [ "$(knob "$1" "$2")" = "$3" ]; }
setk() { echo "$3" >"$1/sys/kernel/mm/ksm/$2"; }
tune() {
	local h=$1
	shift
	"$bin" tune --sysfs-root "$h/sys" --proc-root "$h/proc" "$@"
}
# tune_bg LOG HOST ARGS...: the daemon in the background, its pid in $bg
tune_bg() {
	local log=$1 h=$2
	shift 2
	"$bin" tune --sysfs-root "$h/sys" --proc-root "$h/proc" "$@" >"$log" 2>&1 &
	bg=$!
}

# --- --dry-run: decisions printed, nothing written ---------------------------
h=$(host dry)
cp -r "$h" "$tmp/dry.orig"
out=$(tune "$h" --once --dry-run)
rc=$?
[ $rc = 0 ] && grep -q "would set advisor_mode none -> scan-time: this kernel has the advisor" <<<"$out" &&
	grep -q "start: mode scan-time, every 60 s; threshold 3276 MiB" <<<"$out" &&
	diff -r "$tmp/dry.orig" "$h" >/dev/null && pass "dry run, scan-time: defers to the advisor, writes nothing" ||
	flunk "dry run scan-time (rc $rc): $out"
out=$(tune "$h" --once --dry-run --mode ksmtuned --json)
python3 -c '
import json, sys
ev = [json.loads(l) for l in sys.stdin]
assert ev[0]["action"] == "start" and ev[-1]["action"] == "exit", ev
d = {e["knob"]: e for e in ev if e["action"] == "would-set"}
assert set(d) == {"pages_to_scan", "sleep_millisecs"}, d
assert d["pages_to_scan"]["old"] == 100 and d["pages_to_scan"]["new"] == 400, d
assert "MemAvailable 976 MiB < threshold 3276 MiB: boost 100 +300 = 400" in d["pages_to_scan"]["reason"], d
assert d["sleep_millisecs"]["old"] == 20 and d["sleep_millisecs"]["new"] == 10, d
for e in ev:
    assert e["time"] and e["reason"], e' <<<"$out" && diff -r "$tmp/dry.orig" "$h" >/dev/null &&
	pass "dry run, ksmtuned, --json: boost and sleep decided, nothing written" || flunk "dry run ksmtuned json: $out"

# --- --once: the decisions are written and kept ------------------------------
h=$(host once)
setk "$h" run 0
out=$(tune "$h" --once --mode ksmtuned)
rc=$?
[ $rc = 0 ] && [ "$(knob "$h" pages_to_scan)" = 400 ] && [ "$(knob "$h" sleep_millisecs)" = 10 ] &&
	[ "$(knob "$h" run)" = 1 ] && grep -q " set pages_to_scan 100 -> 400: MemAvailable" <<<"$out" &&
	grep -q " set run 0 -> 1: MemAvailable 976 MiB < threshold 3276 MiB" <<<"$out" &&
	pass "--once --mode ksmtuned: pages_to_scan, sleep_millisecs, run written" || flunk "--once ksmtuned (rc $rc): $out"
h=$(host once-advisor)
out=$(tune "$h" --once --target-scan-time 60 --max-cpu 40)
[ "$(knob "$h" advisor_mode)" = scan-time ] && [ "$(knob "$h" advisor_target_scan_time)" = 60 ] &&
	[ "$(knob "$h" advisor_max_cpu)" = 40 ] && [ "$(knob "$h" pages_to_scan)" = 100 ] &&
	! grep -q " pages_to_scan [0-9]" <<<"$out" && pass "--once scan-time: advisor set, pages_to_scan never written" ||
	flunk "--once advisor: $out"
# no advisor: tune sizes pages_to_scan (1000000 pages x 50 ms / 100 = at least 500 s)
h=$(host once-noadvisor)
rm "$h"/sys/kernel/mm/ksm/advisor_*
sed -i 's/^ksm_rmap_items .*/ksm_rmap_items 1000000/' "$h/proc/100/ksm_stat"
setk "$h" sleep_millisecs 50
out=$(tune "$h" --once)
[ "$(knob "$h" pages_to_scan)" = 250 ] &&
	grep -q "set pages_to_scan 100 -> 250: full scan 500 s (at least 1000000 pages / pages_to_scan 100 x sleep_millisecs 50)" <<<"$out" &&
	pass "--once scan-time without the advisor: a too-slow scan raises pages_to_scan" || flunk "--once no advisor: $out"

# --- the daemon: boosts each interval, stops, restores on SIGTERM -----------
h=$(host daemon)
setk "$h" run 0
tune_bg "$tmp/daemon.log" "$h" --mode ksmtuned --interval 0.1
wait_for 20 knob_is "$h" pages_to_scan 1250 && [ "$(knob "$h" run)" = 1 ] &&
	grep -q "set pages_to_scan 1000 -> 1250: .*capped at npages_max" "$tmp/daemon.log" &&
	pass "daemon: boosted 100 -> 400 -> ... -> 1250, capped" || flunk "daemon boost: $(cat "$tmp/daemon.log")"
printf 'MemTotal:       16777216 kB\nMemFree:        9000000 kB\nMemAvailable:   9000000 kB\n' >"$h/proc/meminfo"
wait_for 20 knob_is "$h" run 0 && grep -q "set run 1 -> 0: MemAvailable 8789 MiB >= threshold" "$tmp/daemon.log" &&
	pass "daemon: pressure gone, KSM stopped" || flunk "daemon stop: $(cat "$tmp/daemon.log")"
kill -TERM $bg
wait $bg
rc=$?
bg=
[ $rc = 0 ] && [ "$(knob "$h" pages_to_scan)" = 100 ] && [ "$(knob "$h" sleep_millisecs)" = 20 ] &&
	[ "$(knob "$h" run)" = 0 ] && grep -q "restore pages_to_scan 1250 -> 100: its value when tune started" "$tmp/daemon.log" &&
	grep -q "exit: Terminated" "$tmp/daemon.log" && pass "SIGTERM: every knob back to its value at start" ||
	flunk "SIGTERM restore (rc $rc): $(cat "$tmp/daemon.log")"

h=$(host daemon-advisor)
tune_bg "$tmp/adv.log" "$h" --interval 0.1 --json
wait_for 20 knob_is "$h" advisor_mode scan-time || flunk "advisor daemon never set advisor_mode"
kill -INT $bg
wait $bg
rc=$?
bg=
[ $rc = 0 ] && [ "$(knob "$h" advisor_mode)" = none ] && [ "$(knob "$h" pages_to_scan)" = 100 ] &&
	grep -q '"action":"restore","knob":"advisor_mode","old":"scan-time","new":"none"' "$tmp/adv.log" &&
	pass "SIGINT: advisor_mode restored" || flunk "SIGINT restore (rc $rc): $(cat "$tmp/adv.log")"

h=$(host norestore)
setk "$h" run 0
tune_bg "$tmp/nr.log" "$h" --mode ksmtuned --interval 0.1 --no-restore
wait_for 20 knob_is "$h" run 1 || flunk "--no-restore daemon never started KSM"
kill -TERM $bg
wait $bg
bg=
[ "$(knob "$h" run)" = 1 ] && ! grep -q restore "$tmp/nr.log" && pass "--no-restore leaves the knobs" ||
	flunk "--no-restore: $(cat "$tmp/nr.log")"

# --- --config, options over it ----------------------------------------------
h=$(host config)
printf '# ksmtuned.conf\nKSM_NPAGES_BOOST=500\nKSM_SLEEP_MSEC="40"\nLOGFILE=/var/log/ksmtuned\n' >"$tmp/ksmtuned.conf"
out=$(tune "$h" --once --dry-run --mode ksmtuned --config "$tmp/ksmtuned.conf" 2>"$tmp/err")
grep -q "would set pages_to_scan 100 -> 600" <<<"$out" && grep -q "would set sleep_millisecs 20 -> 40" <<<"$out" &&
	grep -q "ignored: LOGFILE" "$tmp/err" && pass "--config: KSM_* keys read, LOGFILE noted" || flunk "--config: $out"
out=$(tune "$h" --once --dry-run --mode ksmtuned --config "$tmp/ksmtuned.conf" --boost 200 --npages-max 250 2>/dev/null)
grep -q "would set pages_to_scan 100 -> 250: .*100 +200 = 300, capped at npages_max (64..250)" <<<"$out" &&
	pass "options win over --config" || flunk "options over config: $out"
h=$(host nopressure 9000000)
out=$(tune "$h" --once --dry-run --thres-coef 60)
grep -q "keep run\|would set" <<<"$out" && ! grep -q "would set run 1 -> 0" <<<"$out" &&
	pass "--thres-coef 60: 8789 MiB is under 60% of 16 GiB, KSM kept on" || flunk "--thres-coef: $out"
out=$(tune "$h" --once --dry-run)
grep -q "would set run 1 -> 0" <<<"$out" && pass "no pressure: KSM would stop" || flunk "stop decision: $out"
out=$(tune "$h" --once --dry-run --always-on -v)
grep -q "keep run 1: --always-on" <<<"$out" && pass "--always-on keeps KSM running" || flunk "--always-on: $out"

# --- ksmd's CPUs and nice on a recorded tree (dry run: the pid is not live) ---
out=$("$bin" tune --once --dry-run --ksmd-cpus housekeeping --ksmd-nice 10 --sysfs-root "$fix/isolated/sys" \
	--proc-root "$fix/isolated/proc")
grep -q "would set ksmd_cpus 0-3 -> 0-1: housekeeping CPUs: online 0-3 minus isolated 2-3 and nohz_full 3" <<<"$out" &&
	grep -q "would set ksmd_nice 5 -> 10: --ksmd-nice 10" <<<"$out" &&
	pass "--ksmd-cpus housekeeping, --ksmd-nice decided" || flunk "ksmd dry run: $out"

# --- usage ---------------------------------------------------------------------
help=$("$bin" tune --help)
rc=$?
missing=
for o in mode interval config thres-coef thres-const boost decay npages-min npages-max sleep-msec \
	target-scan-time max-cpu max-pages always-on ksmd-cpus ksmd-nice dry-run once no-restore json verbose \
	sysfs-root proc-root help; do
	grep -q -- "--$o" <<<"$help" || missing="$missing $o"
done
[ $rc = 0 ] && [ -z "$missing" ] && pass "--help lists every option" || flunk "--help (rc $rc) lacks:$missing"
h=$(host usage)
bad() {
	local want=$1 out rc
	shift
	out=$(tune "$h" --once "$@" 2>&1)
	rc=$?
	[ $rc = 2 ] && grep -q -- "$want" <<<"$out" && pass "tune $* -> 2 ($want)" || flunk "tune $*: rc $rc: $out"
}
bad "unrecognized option" --bogus
bad "must be scan-time or ksmtuned" --mode fast
bad "give it negative" --decay 50
bad "npages_min 2000 is above npages_max 1250" --npages-min 2000
bad "not an integer from -20 to 19" --ksmd-nice 40
bad "not a CPU list" --dry-run --ksmd-cpus 1-x
bad "is not procfs" --ksmd-cpus 0
bad "No such file" --config "$tmp/none.conf"
printf 'KSM_NPAGES_MAX=10\nKSM_THRES_COEF=abc\n' >"$tmp/bad.conf"
bad "line 2: KSM_THRES_COEF=abc" --config "$tmp/bad.conf"
bad "unexpected argument" extra
diff -r "$fix/healthy/sys" "$h/sys" >/dev/null && pass "usage errors changed nothing" || flunk "usage errors wrote"

# --- the real kernel (root) ---------------------------------------------------
ksm=/sys/kernel/mm/ksm
if [ "$(id -u)" != 0 ] || [ ! -w $ksm/run ]; then
	echo "SKIP: real-kernel checks need root and a writable $ksm"
	exit $fail
fi
exec 9>/tmp/samepage-ksm.lock
flock 9 # the ksm_* and cli_ksm tests change knobs: not while they run
knobs() { for f in $(find $ksm/ -maxdepth 1 -type f -perm -u=w | sort); do echo "$(basename "$f")=$(cat "$f")"; done; }
before=$(knobs)
out=$("$bin" tune --once --dry-run -v)
rc=$?
out2=$("$bin" tune --once --dry-run -v --mode ksmtuned --json)
after=$(knobs)
[ $rc = 0 ] && grep -Eq " (would set|keep) (run|advisor_mode|pages_to_scan) " <<<"$out" &&
	grep -q '"action":"exit"' <<<"$out2" && [ "$before" = "$after" ] &&
	pass "real kernel: --dry-run prints decisions, every knob unchanged" ||
	flunk "real kernel dry run (rc $rc): $out / $(diff <(echo "$before") <(echo "$after"))"

# real writes: both modes, then SIGTERM; every knob must come back (advisor_mode
# before pages_to_scan, or the kernel refuses it). A safety net restores them
# should tune not.
declare -A saved
for f in $(find $ksm/ -maxdepth 1 -type f -perm -u=w); do
	v=$(cat "$f")
	[[ $v == *"["* ]] && v=$(sed 's/.*\[\(.*\)\].*/\1/' <<<"$v")
	saved[$(basename "$f")]=$v
done
safety() {
	[ -n "$bg" ] && kill "$bg" 2>/dev/null && wait "$bg" 2>/dev/null
	bg=
	echo "${saved[advisor_mode]}" >$ksm/advisor_mode
	for n in "${!saved[@]}"; do
		case $n in run | advisor_mode) ;; *) [ "$(cat $ksm/$n)" = "${saved[$n]}" ] || echo "${saved[$n]}" >$ksm/$n ;; esac
	done
	echo "${saved[run]}" >$ksm/run
}
trap 'safety; cleanup' EXIT
real_run() { # LOG WANT_FILE WANT_VALUE ARGS...: run until the knob shows, then SIGTERM
	local log=$1 file=$2 value=$3 rc
	shift 3
	"$bin" tune --interval 0.1 --thres-coef 100 "$@" >"$log" 2>&1 &
	bg=$!
	wait_for 20 grep -q "^$value\$\|\[$value\]" $ksm/$file || flunk "real $*: $file never became $value: $(cat "$log")"
	kill -TERM $bg
	wait $bg
	rc=$?
	bg=
	return $rc
}
real_run "$tmp/real1.log" pages_to_scan 1250 --mode ksmtuned --npages-max 1250 --boost 100000
rc=$?
after=$(knobs)
[ $rc = 0 ] && [ "$before" = "$after" ] && grep -q " set pages_to_scan " "$tmp/real1.log" &&
	pass "real kernel, ksmtuned: pages_to_scan written, every knob restored on SIGTERM" ||
	flunk "real ksmtuned (rc $rc): $(cat "$tmp/real1.log") / $(diff <(echo "$before") <(echo "$after"))"
if [ -e $ksm/advisor_mode ] && [ "${saved[advisor_mode]}" = none ]; then
	echo 1234 >$ksm/pages_to_scan # not the value advisor_mode=none resets it to
	before=$(knobs)
	real_run "$tmp/real2.log" advisor_mode scan-time --target-scan-time 77 --max-cpu 33
	rc=$?
	after=$(knobs)
	[ $rc = 0 ] && [ "$before" = "$after" ] && grep -q " set advisor_mode none -> scan-time" "$tmp/real2.log" &&
		grep -q " restore pages_to_scan [0-9]* -> 1234" "$tmp/real2.log" && ! grep -q "error" "$tmp/real2.log" &&
		pass "real kernel, advisor: set, then advisor_mode and pages_to_scan restored in order" ||
		flunk "real advisor (rc $rc): $(cat "$tmp/real2.log") / $(diff <(echo "$before") <(echo "$after"))"
fi

pid=$(for d in /proc/[0-9]*; do [ "$(cat "$d/comm" 2>/dev/null)" = ksmd ] && basename "$d"; done | head -1)
if [ -z "$pid" ]; then
	echo "SKIP: no ksmd thread"
	exit $fail
fi
cpus0=$(awk '/^Cpus_allowed_list/ {print $2}' /proc/$pid/status)
nice0=$(awk '{print $19}' /proc/$pid/stat)
want_nice=$([ "$nice0" = 10 ] && echo 15 || echo 10)
want_cpus=0 # (a keep when ksmd is on CPU 0 alone already)
h=$(host real-ksmd)
"$bin" tune --sysfs-root "$h/sys" --interval 0.1 --ksmd-cpus $want_cpus --ksmd-nice $want_nice >"$tmp/ksmd.log" 2>&1 &
bg=$!
wait_for 20 grep -q "set ksmd_nice" "$tmp/ksmd.log" &&
	[ "$(awk '/^Cpus_allowed_list/ {print $2}' /proc/$pid/status)" = $want_cpus ] &&
	[ "$(awk '{print $19}' /proc/$pid/stat)" = $want_nice ] &&
	pass "real ksmd: CPUs $cpus0 -> $want_cpus, nice $nice0 -> $want_nice" || flunk "real ksmd set: $(cat "$tmp/ksmd.log")"
kill -TERM $bg
wait $bg
bg=
[ "$(awk '/^Cpus_allowed_list/ {print $2}' /proc/$pid/status)" = "$cpus0" ] &&
	[ "$(awk '{print $19}' /proc/$pid/stat)" = "$nice0" ] && pass "real ksmd: CPUs and nice restored on SIGTERM" ||
	flunk "real ksmd restore: $(cat "$tmp/ksmd.log")"
exit $fail
