#!/bin/bash
# cli_exporter.sh - `samepage exporter` under slow clients, on a recorded
# host tree (no root): 1100 connections from 127.0.0.2 that send a request
# line and then trickle a header line every second (faster than the idle
# timeout) must not starve scrapes from 127.0.0.1 - the per-address limit
# refuses all but a few of them, and the server waits with epoll, so no
# descriptor over FD_SETSIZE breaks it - and its log stays a few lines. Then
# an idle connection is closed after --timeout. Loopback only; every wait
# has a deadline; everything started is stopped on exit.
# Usage: cli_exporter.sh SAMEPAGE TESTSDIR
set -u
bin=$(readlink -f "$1")
fix=$2/fixtures/doctor/healthy
tmp=$(mktemp -d /tmp/sp-exporter.XXXXXX)
fail=0
srv=
cleanup() {
	[ -n "$srv" ] && kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
pass() { echo "PASS: $*"; }
flunk() { echo "FAIL: $*"; fail=1; }

# start_exporter ARGS...: in the background on a free port of 127.0.0.1; sets srv and port
start_exporter() {
	"$bin" exporter --listen 127.0.0.1:0 --sysfs-root "$fix/sys" --proc-root "$fix/proc" "$@" 2>"$tmp/err" &
	srv=$!
	local deadline=$((SECONDS + 10))
	until grep -q "listening on" "$tmp/err"; do
		[ $SECONDS -lt $deadline ] && kill -0 $srv 2>/dev/null || return 1
		sleep 0.05
	done
	port=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$tmp/err")
}
stop_exporter() {
	kill "$srv" 2>/dev/null
	wait "$srv" 2>/dev/null
	srv=
}

# --- 1100 slow clients from 127.0.0.2; scrapes from 127.0.0.1 keep working ---
start_exporter || { flunk "exporter did not start: $(cat "$tmp/err")"; exit 1; }
python3 - "$port" <<'PY' && pass "scrapes succeed under 1100 slow clients" || flunk "scrapes under slow clients"
import resource, selectors, socket, subprocess, sys, time

port, n, trickle_s, run_s = int(sys.argv[1]), 1100, 1.0, 8.0
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 200)), hard))
sel = selectors.DefaultSelector()
socks = []
for i in range(n):
    s = socket.socket()
    s.setblocking(False)
    s.bind(("127.0.0.2", 0))
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    socks.append(s)
    sel.register(s, selectors.EVENT_WRITE)
deadline, pending = time.monotonic() + 10, set(socks)
while pending and time.monotonic() < deadline:
    for key, _ in sel.select(0.5):
        sel.unregister(key.fileobj)
        pending.discard(key.fileobj)
open_ = []
for s in socks:
    try:
        s.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        open_.append(s)
    except OSError:
        s.close()
ok = bad = 0
end, next_trickle = time.monotonic() + run_s, 0.0
while time.monotonic() < end:
    if time.monotonic() >= next_trickle:
        still = []
        for s in open_:
            try:
                s.send(b"X-Slow: 1\r\n")
                still.append(s)
            except OSError:
                s.close()
        open_, next_trickle = still, time.monotonic() + trickle_s
    r = subprocess.run(["curl", "-sf", "-m", "10", "http://127.0.0.1:%d/metrics" % port], capture_output=True)
    if r.returncode == 0 and b"samepage_ksm_up 1" in r.stdout:
        ok += 1
    else:
        bad += 1
        print("scrape failed: curl status", r.returncode, file=sys.stderr)
    time.sleep(0.2)
# connections the server kept (the rest it closed: a send or a read fails)
kept = 0
for s in open_:
    try:
        s.send(b"X-Slow: 2\r\n")
        kept += s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        kept += 1
    except OSError:
        pass
    s.close()
print("scrapes ok %d, failed %d; slow connections the server kept: %d of %d" % (ok, bad, kept, n))
sys.exit(0 if ok >= 3 and bad == 0 and kept <= 64 else 1)
PY
lines=$(wc -l <"$tmp/err")
[ "$lines" -le 8 ] && pass "log rate-limited: $lines lines for 1100 refused clients" ||
	{ flunk "log not rate-limited: $lines lines"; head -5 "$tmp/err"; }
stop_exporter

# --- an idle connection is closed after --timeout -----------------------------
start_exporter --timeout 1 || { flunk "exporter --timeout 1 did not start"; exit 1; }
python3 - "$port" <<'PY' && pass "idle connection closed after --timeout" || flunk "idle connection kept"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(20)
t0 = time.monotonic()
try:
    data = s.recv(1)
except OSError:
    data = b""
took = time.monotonic() - t0
print("closed after %.1f s" % took)
sys.exit(0 if data == b"" and took < 9 else 1)  # a loaded machine may be slow to wake
PY
stop_exporter

# --- options ---------------------------------------------------------------------
for a in "--max-connections 0" "--max-connections-per-ip x" "--timeout 0" "--timeout inf"; do
	"$bin" exporter --once $a --sysfs-root "$fix/sys" --proc-root "$fix/proc" >/dev/null 2>&1
	[ $? = 2 ] && pass "exporter $a -> 2" || flunk "exporter $a"
done
"$bin" exporter --help | grep -q -- "--max-connections-per-ip" && pass "--help names the limits" || flunk "--help"
exit $fail
