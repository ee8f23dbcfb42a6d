#!/usr/bin/env bash
# Faults on an edge (issue 26), their accuracy and cost, through the library's proxy
# (fixtures/proxy_bench.rs, FAULT= sets faults first) in front of the fixture HTTP service
# (fixtures/http_echo.rs), each case on a proxy of its own:
# - cost: wrk through a proxy with no fault, and with a fault set on another service (the check
#   every request then makes), in turns; targets: unchanged (ratios ~1.0).
# - latency=200ms: the added delay's p50 (through the proxy minus straight to the service) within
#   ±1 ms; jitter=50ms: spread evenly over ±50 ms (stddev of a uniform: 28.9 ms).
# - error=503 rate=0.3 over 1,000 requests: within the binomial 99.9% band (300 ± 48).
# - first=10 of 50 requests: exactly 10.
# - a fault on another caller's edge (orders->echo): this caller's latency unchanged.
# Usage: benches/fault.sh [DURATION] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5s}
CONNS=${2:-50}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --quiet --example http_echo --example proxy_bench
BIN=$PWD/target/release/examples

source benches/lib.sh

backend=$(free_port)
"$BIN/http_echo" "$backend" 1 >/dev/null & pids+=($!)
wait_port "$backend"
proxy() { # FAULT words: a proxy with them set, listening on $port (it lives while its fifo is open)
    port=$(free_port)
    mkfifo "$work/ctl_$port"
    FAULT="$1" CAPTURE=0 "$BIN/proxy_bench" proxy "$port" "$backend" 1 <"$work/ctl_$port" >/dev/null & pids+=($!)
    exec {fd}>"$work/ctl_$port"
    wait_port "$port"
}

proxy ""; none=$port
proxy "elsewhere latency=1s"; other=$port
rps() { wrk -t2 -c"$CONNS" -d"$1" "http://127.0.0.1:$2/" | awk '/Requests\/sec/ {print int($2)}'; }
rps 2s "$none" >/dev/null; rps 2s "$other" >/dev/null
a1=$(rps "$DURATION" "$none"); b1=$(rps "$DURATION" "$other"); a2=$(rps "$DURATION" "$none"); b2=$(rps "$DURATION" "$other")
echo "cost: no fault $a1, $a2 req/s; a fault set on another service $b1, $b2 req/s; ratio $(awk "BEGIN{printf \"%.3f\", ($b1+$b2)/($a1+$a2)}")"

# Timed GETs, each on a connection of its own, CONCURRENCY at once: their statuses and times.
cat >"$work/get.py" <<'PY'
import http.client, sys, time, statistics, concurrent.futures as cf
port, n, conc = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def one(_):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t = time.perf_counter(); c.request("GET", "/"); r = c.getresponse(); r.read()
    return r.status, (time.perf_counter() - t) * 1000
with cf.ThreadPoolExecutor(conc) as ex:
    got = list(ex.map(one, range(n)))
ms = [t for _, t in got]
print(sum(1 for s, _ in got if s == 503), *("%.2f" % v for v in (statistics.median(ms), statistics.pstdev(ms), min(ms), max(ms))))
PY
get() { python3 "$work/get.py" "$@"; }

read -r _ direct _ _ _ < <(get "$backend" 200 10)
read -r _ through _ _ _ < <(get "$none" 200 10)
proxy "echo latency=200ms"; lat=$port
read -r _ held _ _ _ < <(get "$lat" 200 20)
echo "latency=200ms: p50 straight $direct ms, through the proxy $through ms, with the fault $held ms: added $(awk "BEGIN{printf \"%.2f\", $held - $through}") ms (target 200 ± 1)"
proxy "echo latency=200ms jitter=50ms"; jit=$port
read -r _ p50 sd lo hi < <(get "$jit" 400 40)
echo "jitter=50ms: p50 $p50 ms, stddev $sd ms (uniform ±50: 28.9), min $lo, max $hi"
proxy "echo error=503 rate=0.3"; rate=$port
read -r errs _ _ _ _ < <(get "$rate" 1000 20)
echo "rate=0.3: $errs of 1000 answered 503 (99.9% band: 252 to 348)"
proxy "echo error=503 first=10"; first=$port
read -r errs _ _ _ _ < <(get "$first" 50 5)
echo "first=10: $errs of 50 answered 503 (exactly 10)"
proxy "orders->echo latency=200ms"; edge=$port
read -r _ other_edge _ _ _ < <(get "$edge" 200 10)
echo "a fault on orders->echo: this caller's p50 $other_edge ms (no fault: $through ms)"
