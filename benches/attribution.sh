#!/usr/bin/env bash
# Finding the caller when the stack's processes hold many files (issue 23, item 1): a stack
# process holding 0, 5,000 and 15,000 sockets; new connections through the proxy one after
# another (the `external` caller, whose lookup reads the most), the lookup's own time, and 50
# curls at once. Targets: the rate with 5,000 held >= 0.5x the rate with none; attribution
# p99 <= 1 ms; 50 parallel curls p99 <= 50 ms.
# Usage: benches/attribution.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-5}
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
cargo build --release --quiet --example http_echo --example proxy_bench
BIN=$PWD/target/release/examples
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN/http_echo" "$port" 1 >/dev/null & echo_pid=$!
trap 'kill $echo_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
declare -A rate
for n in 0 5000 15000; do
    line=$("$BIN/proxy_bench" fds "$n" "$SECONDS_EACH" "$port")
    echo "$line"
    rate[$n]=$(sed -E 's/.*new connections ([0-9]+)\/s.*/\1/' <<<"$line")
done
echo "new-connection rate vs none held: 5,000 fds $(awk "BEGIN{printf \"%.2f\", ${rate[5000]} / ${rate[0]}}")x, 15,000 fds $(awk "BEGIN{printf \"%.2f\", ${rate[15000]} / ${rate[0]}}")x"
