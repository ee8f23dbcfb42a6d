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
# - bandwidth=200KB: a 2 MB answer (a POST echoed) paced to within 10% of 200 KB/s over 10 s.
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
# The added delay, paired: requests with the fault (/slow) and without (/fast) in turns on one
# proxy, so that what the machine adds cancels out.
cat >"$work/pair.py" <<'PY'
import http.client, sys, time, statistics, concurrent.futures as cf
port, n = int(sys.argv[1]), int(sys.argv[2])
def one(path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t = time.perf_counter(); c.request("GET", path); c.getresponse().read()
    return path, (time.perf_counter() - t) * 1000
with cf.ThreadPoolExecutor(10) as ex:
    got = list(ex.map(one, ["/slow", "/fast"] * n))
p50 = lambda path: statistics.median(t for p, t in got if p == path)
print("%.2f %.2f" % (p50("/slow"), p50("/fast")))
PY
proxy "echo latency=200ms path=/slow"; lat=$port
read -r slow fast < <(python3 "$work/pair.py" "$lat" 200)
echo "latency=200ms: p50 straight $direct ms, through the proxy $through ms; in turns on one proxy, with the fault $slow ms, without $fast ms: added $(awk "BEGIN{printf \"%.2f\", $slow - $fast}") ms (target 200 ± 1)"
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
proxy "echo bandwidth=200KB"; slow=$port
head -c 2000000 /dev/zero >"$work/two_mb"
# (`Expect:` empty: curl would otherwise wait up to 1 s for a 100 Continue before sending.)
read -r took size < <(curl -s -o /dev/null -H 'Expect:' -w '%{time_total} %{size_download}\n' --data-binary @"$work/two_mb" "http://127.0.0.1:$slow/")
echo "bandwidth=200KB: $size bytes in $took s: $(awk "BEGIN{printf \"%.1f\", $size / $took / 1000}") KB/s (target 200 ± 10%)"
