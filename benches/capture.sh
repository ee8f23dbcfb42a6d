#!/usr/bin/env bash
# What keeping exchanges costs the proxy (issue 25): wrk against two proxies (fixtures/proxy_bench.rs,
# the library's Proxy alone) in front of the same fixture HTTP service (fixtures/http_echo.rs),
# one keeping nothing (CAPTURE=0), one keeping each exchange (heads, the first 64 KiB of each
# body: the default), measured in turns (off, on, off, on) with GETs and with 1 KiB POSTs whose
# body is echoed; then the keeping proxy's RSS over 1,000,000 requests.
# Targets: throughput with capture on >= 0.9x with it off; RSS bounded by the store's bounds
# (64 MiB of exchanges at most) and flat after 1M requests.
# Usage: benches/capture.sh [DURATION] [CONNECTIONS] [WRK_THREADS] [PROXY_THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
CONNS=${2:-50}
WRK_THREADS=${3:-2}
PROXY_THREADS=${4:-1}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --quiet --example http_echo --example proxy_bench
BIN=$PWD/target/release/examples

source benches/lib.sh

backend=$(free_port); off=$(free_port); on=$(free_port)
"$BIN/http_echo" "$backend" 1 >/dev/null & pids+=($!)
mkfifo "$work/ctl_off" "$work/ctl_on"
CAPTURE=0 "$BIN/proxy_bench" proxy "$off" "$backend" "$PROXY_THREADS" <"$work/ctl_off" >"$work/off.out" & pids+=($!)
CAPTURE=1 "$BIN/proxy_bench" proxy "$on" "$backend" "$PROXY_THREADS" <"$work/ctl_on" >"$work/on.out" & on_pid=$!; pids+=($on_pid)
exec 4>"$work/ctl_off" 5>"$work/ctl_on"
wait_port "$backend"; wait_port "$off"; wait_port "$on"

head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 >"$work/body"
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
local f = io.open("$work/body", "rb"); wrk.body = f:read("*a"); f:close()
wrk.headers["Content-Type"] = "text/plain"
LUA

run() { # port script duration
    local script=()
    [ -n "$2" ] && script=(-s "$2")
    wrk --latency -t"$WRK_THREADS" -c"$CONNS" -d"$3" "${script[@]}" "http://127.0.0.1:$1/" | awk '
        function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return v*1000; if (v ~ /s$/) return v*1000000; return v }
        /Requests\/sec/ { rps = $2 } /^ +99%/ { p99 = us($2) }
        END { printf "%d %d\n", rps, p99 }'
}

for port in "$off" "$on"; do run "$port" "" 2s >/dev/null; done # warm up
echo "wrk -t$WRK_THREADS -c$CONNS -d$DURATION (keep-alive), proxy threads: $PROXY_THREADS, cores: $(nproc); turns: off, on, off, on"
for kind in GET POST; do
    script=""; [ "$kind" = POST ] && script="$work/post.lua"
    declare -a offs=() ons=()
    for turn in 1 2; do
        read -r r p < <(run "$off" "$script" "$DURATION"); offs+=("$r/$p")
        read -r r p < <(run "$on" "$script" "$DURATION"); ons+=("$r/$p")
    done
    sum() { local t=0; for x in "$@"; do t=$(( t + ${x%/*} )); done; echo $t; }
    so=$(sum "${offs[@]}"); sn=$(sum "${ons[@]}")
    echo "$kind  capture off (req/s / p99 us): ${offs[*]}   on: ${ons[*]}   on/off: $(awk "BEGIN{printf \"%.3f\", $sn / $so}")"
done

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$on_pid/status"; }
count() { echo >&5; sleep 0.2; tail -n1 "$work/on.out"; }
rounds=""
while :; do
    run "$on" "$work/post.lua" 5s >/dev/null
    sleep 0.2
    n=$(count); rounds="$rounds $(( n / 1000 ))k:$(( $(rss_kb) / 1024 ))MB"
    [ "$n" -ge 1000000 ] && break
done
run "$on" "$work/post.lua" 5s >/dev/null; sleep 0.2
n=$(count); rounds="$rounds $(( n / 1000 ))k:$(( $(rss_kb) / 1024 ))MB"
echo "capturing proxy's RSS after each round of 1 KiB POSTs (requests:RSS):$rounds"
