#!/usr/bin/env bash
# The proxy before and after a change: the library's Proxy alone (fixtures/proxy_bench.rs) built
# at REV (default: the commit before faults landed, c2e853f) and at the working tree, both in
# front of one fixture HTTP service (fixtures/http_echo.rs), wrk against each in turns, ROUNDS
# times: saturated (50 connections) and one connection (its latency). Prints each round, the
# medians and the ratios after/before. Target (issue 26): with no fault set, throughput and
# latency unchanged (ratios within the rounds' own spread).
# Usage: benches/before_after.sh [REV] [ROUNDS] [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:-c2e853f}
ROUNDS=${2:-5}
DURATION=${3:-10s}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
# Without fat LTO: both sides built alike, and in minutes.
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
cargo build --release --quiet --example http_echo --example proxy_bench
AFTER=$PWD/target/release/examples
old=$(git rev-parse --short "$REV")
tree=${TMPDIR:-/tmp}/devstack-before-$old
[ -d "$tree" ] || git worktree add --detach -q "$tree" "$old"
(cd "$tree" && CARGO_TARGET_DIR=$PWD/../devstack-before-target cargo build --release --quiet --example proxy_bench)
BEFORE=$tree/../devstack-before-target/release/examples

source benches/lib.sh

backend=$(free_port)
"$AFTER/http_echo" "$backend" 1 >/dev/null & pids+=($!)
wait_port "$backend"
proxy() { # BIN: a proxy built so, listening on $port (it lives while its fifo is open)
    port=$(free_port)
    mkfifo "$work/ctl_$port"
    CAPTURE=0 "$1/proxy_bench" proxy "$port" "$backend" 1 <"$work/ctl_$port" >/dev/null & pids+=($!)
    exec {fd}>"$work/ctl_$port"
    wait_port "$port"
}
proxy "$BEFORE"; before=$port
proxy "$AFTER"; after=$port
wrk_run "$before" 50 2 2s >/dev/null; wrk_run "$after" 50 2 2s >/dev/null

median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
echo "proxy_bench at $old (before) and at the working tree (after), wrk -t2 -c50 and -t1 -c1, $DURATION each, in turns; cores: $(nproc)"
printf '%-6s %-7s %10s %8s %8s %11s %11s\n' round side "req/s" "p50 us" "p99 us" "1-conn p50" "1-conn p99"
for r in $(seq "$ROUNDS"); do
    for side in before after; do
        port=${!side}
        read -r rps p50 p99 _ < <(wrk_run "$port" 50 2 "$DURATION")
        read -r _ p50_1 p99_1 _ < <(wrk_run "$port" 1 1 "$DURATION")
        printf '%-6s %-7s %10s %8s %8s %11s %11s\n' "$r" "$side" "$rps" "$p50" "$p99" "$p50_1" "$p99_1"
        echo "$side $rps $p50 $p99 $p50_1 $p99_1" >>"$work/rounds"
    done
done
for col in 2 3 4 5 6; do
    for side in before after; do
        awk -v s="$side" -v c="$col" '$1 == s {print $c}' "$work/rounds" | median >"$work/m_${side}_$col"
    done
done
m() { cat "$work/m_$1_$2"; }
ratio() { awk "BEGIN{printf \"%.3f\", $(m after "$1") / $(m before "$1")}"; }
echo "medians: before $(m before 2) req/s, p50 $(m before 3) us, p99 $(m before 4) us, 1-conn p50 $(m before 5) us, p99 $(m before 6) us"
echo "         after  $(m after 2) req/s, p50 $(m after 3) us, p99 $(m after 4) us, 1-conn p50 $(m after 5) us, p99 $(m after 6) us"
echo "after/before: throughput $(ratio 2)x, p50 $(ratio 3)x, p99 $(ratio 4)x, 1-conn p50 $(ratio 5)x, 1-conn p99 $(ratio 6)x"
