#!/usr/bin/env bash
# Restarts under load (issue 27): a service that takes 1 s to boot (fixtures/http_echo behind
# `sleep 1`), restarted RESTARTS times in a row while wrk (keep-alive GETs, 20 connections) and
# a POST loop (4 keep-alive connections, each answer checked against its body) run against it:
#   blue-green       devstack, `rollout = "blue-green"` (the default)
#   restart          devstack, `rollout = "restart"` (stop, then start; the proxy holds callers)
#   plain stop-start the service on its port with nothing in front, killed and started again
# Prints for each: the failed requests (wrk's errors and non-2xx, failed POSTs), wrk's p99 during
# the restarts beside its p99 without any, and for blue-green the switchover times the log gives.
# Targets: blue-green fails no request; its p99 during the switches within 2x the p99 without.
# Usage: benches/rollout.sh [RESTARTS] [MODE...] (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
RESTARTS=${1:-20}
shift || true
MODES=("${@:-blue-green restart plain}")
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --quiet --bin devstack --example http_echo
BIN=$PWD/target/release
source benches/lib.sh
on_exit() { for d in "$work"/bg "$work"/restart; do [ -f "$d/devstack.toml" ] && "$BIN/devstack" -f "$d/devstack.toml" down >/dev/null 2>&1 || true; done; }

# wrk for DURATION on PORT: "requests errors p99_us".
load() { # port duration
    wrk --latency -t2 -c20 -d"$2" "http://127.0.0.1:$1/" | awk '
        function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return v*1000; if (v ~ /s$/) return v*1000000; return v }
        / requests in / { n = $1 } /^ +99%/ { p99 = us($2) }
        /Socket errors/ { gsub(",", ""); e += $4 + $6 + $8 + $10 } /Non-2xx/ { e += $NF }
        END { printf "%d %d %d\n", n, e, p99 }'
}
# POSTs on 4 keep-alive connections until the file STOP exists: "sent failed".
cat >"$work/posts.py" <<'PY'
import http.client, os, sys, threading
port, stop = int(sys.argv[1]), sys.argv[2]
counts = [0, 0]
def loop(k):
    conn, n = None, 0
    while not os.path.exists(stop):
        n += 1
        body = f"post {k} {n}".encode()
        try:
            conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/echo", body)
            r = conn.getresponse()
            ok = r.status == 200 and r.read() == body
        except Exception:
            ok, conn = False, None
        counts[0] += 1
        counts[1] += not ok
        if not ok and conn:
            conn.close(); conn = None
threads = [threading.Thread(target=loop, args=(k,)) for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(counts[0], counts[1])
PY

# One case: MODE (blue-green, restart) under devstack, or `plain`.
case_run() { # mode
    local mode=$1 port; port=$(free_port)
    local dir="$work/${mode/blue-green/bg}" restart
    mkdir -p "$dir"
    if [ "$mode" = plain ]; then
        start() { (sleep 1; exec "$BIN/examples/http_echo" "$port" >/dev/null) & plain_pid=$!; pids+=($plain_pid); wait_port "$port"; }
        start
        restart() { kill "$plain_pid"; wait "$plain_pid" 2>/dev/null || true; start; }
    else
        cat >"$dir/devstack.toml" <<TOML
[services.api]
run = "sleep 1; exec $BIN/examples/http_echo \$PORT"
port = $port
rollout = "$mode"
[services.api.health]
http = "/"
interval = "100ms"
TOML
        "$BIN/devstack" -f "$dir/devstack.toml" up -d --wait >/dev/null
        restart() { "$BIN/devstack" -f "$dir/devstack.toml" restart api >/dev/null; }
    fi
    read -r _ _ quiet_p99 < <(load "$port" 10s)
    rm -f "$work/stop"
    python3 "$work/posts.py" "$port" "$work/stop" >"$work/posts.out" & posts=$!
    load "$port" "$(( RESTARTS * 3 / 2 + 5 ))s" >"$work/load.out" & loading=$!
    sleep 2
    local t0; t0=$(date +%s.%N)
    for _ in $(seq "$RESTARTS"); do restart; done
    local took; took=$(awk "BEGIN{print $(date +%s.%N) - $t0}")
    wait "$loading"; touch "$work/stop"; wait "$posts"
    read -r n errors p99 <"$work/load.out"
    read -r sent failed <"$work/posts.out"
    printf '%-17s %3d restarts in %5.1fs; wrk: %7d requests, %4d failed, p99 %6d us (without restarts %6d us: %.2fx); POSTs: %6d sent, %4d failed\n' \
        "$mode" "$RESTARTS" "$took" "$n" "$errors" "$p99" "$quiet_p99" "$(awk "BEGIN{print $p99 / $quiet_p99}")" "$sent" "$failed"
    if [ "$mode" = blue-green ]; then
        "$BIN/devstack" -f "$dir/devstack.toml" logs api -n 100000 | python3 -c '
import re, statistics, sys
text = sys.stdin.read()
after = [float(v) / (1000 if u == "ms" else 1) for v, u in re.findall(r"switched to pid \d+ after ([\d.]+)(ms|s)", text)]
drained = [int(m) for m in re.findall(r"drained in (\d+)ms", text)]
if after:
    print(f"  switched after (new process ready): min {min(after):.2f}s, median {statistics.median(after):.2f}s, max {max(after):.2f}s over {len(after)}")
if drained:
    print(f"  old process drained in: median {statistics.median(drained):.0f} ms, max {max(drained)} ms over {len(drained)}")'
    fi
    [ "$mode" = plain ] || "$BIN/devstack" -f "$dir/devstack.toml" down >/dev/null
}

echo "restarts under load: wrk -t2 -c20 (keep-alive GET) + 4 POST loops; a 1 s boot; cores: $(nproc)"
for mode in ${MODES[*]}; do case_run "$mode"; done
