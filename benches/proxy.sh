#!/usr/bin/env bash
# The traffic proxy's cost: wrk against a fixture HTTP service (fixtures/http_echo.rs, keep-alive)
# directly, through devstack's proxy (fixtures/proxy_bench.rs, the library's Proxy alone) and
# through nginx as a reverse proxy (one worker, upstream keep-alive), with the same connections
# and threads. Prints requests/s and p50/p99 (a saturated run, and a one-connection run whose
# latency difference is the added latency), then the proxy's RSS over 1,000,000 requests and the
# cost of attributing a new connection with 20 services running.
# Targets (issue 11): throughput >= nginx and >= 0.8x direct; added latency p50 <= 100 us,
# p99 <= 1 ms; RSS flat and <= 60 MB after 1,000,000 requests; attribution <= 1 ms.
# Usage: benches/proxy.sh [DURATION] [CONNECTIONS] [WRK_THREADS] [PROXY_THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
CONNS=${2:-50}
WRK_THREADS=${3:-2}
PROXY_THREADS=${4:-1}
source benches/lib.sh
need_wrk_nginx
cargo build --release --quiet --example http_echo --example proxy_bench
BIN=$PWD/target/release/examples

on_exit() { stop_nginx; }

backend=$(free_port); proxied=$(free_port); nginxed=$(free_port)
"$BIN/http_echo" "$backend" 1 >/dev/null & pids+=($!)
mkfifo "$work/ctl"
"$BIN/proxy_bench" proxy "$proxied" "$backend" "$PROXY_THREADS" <"$work/ctl" >"$work/proxy.out" & proxy_pid=$!; pids+=($proxy_pid)
exec 4>"$work/ctl"
{ nginx_preamble; cat <<CONF
    upstream backend { server 127.0.0.1:$backend; keepalive 128; }
    server {
        listen 127.0.0.1:$nginxed;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
} >"$work/nginx.conf"
"$NGINX" -c "$work/nginx.conf" -p "$work" -e "$work/error.log" & pids+=($!)
wait_port "$backend"; wait_port "$proxied"; wait_port "$nginxed"

run() { wrk_run "$@"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$proxy_pid/status"; }

for port in "$backend" "$proxied" "$nginxed"; do run "$port" "$CONNS" "$WRK_THREADS" 2s >/dev/null; done # warm up
declare -A rps p50 p99 p50_1 p99_1
for name in direct devstack nginx; do
    case $name in direct) port=$backend ;; devstack) port=$proxied ;; nginx) port=$nginxed ;; esac
    read -r rps[$name] p50[$name] p99[$name] _ < <(run "$port" "$CONNS" "$WRK_THREADS" "$DURATION")
    read -r _ p50_1[$name] p99_1[$name] _ < <(run "$port" 1 1 "$DURATION")
done
echo
echo "wrk -t$WRK_THREADS -c$CONNS -d$DURATION (keep-alive), proxy threads: $PROXY_THREADS, cores: $(nproc)"
printf '%-10s %12s %9s %9s %9s %12s %12s\n' "" "requests/s" "vs direct" "p50 us" "p99 us" "1-conn p50" "1-conn p99"
for name in direct devstack nginx; do
    printf '%-10s %12s %9s %9s %9s %12s %12s\n' "$name" "${rps[$name]}" \
        "$(awk "BEGIN{printf \"%.2f\", ${rps[$name]} / ${rps[direct]}}")" \
        "${p50[$name]}" "${p99[$name]}" "${p50_1[$name]}" "${p99_1[$name]}"
done
echo "devstack vs nginx throughput: $(awk "BEGIN{printf \"%.2f\", ${rps[devstack]} / ${rps[nginx]}}")x"
echo "added latency, one connection: devstack p50 $(( p50_1[devstack] - p50_1[direct] )) us, p99 $(( p99_1[devstack] - p99_1[direct] )) us; nginx p50 $(( p50_1[nginx] - p50_1[direct] )) us, p99 $(( p99_1[nginx] - p99_1[direct] )) us"

# RSS over 1,000,000 proxied requests (and more, in rounds).
count() { echo >&4; sleep 0.2; tail -n1 "$work/proxy.out"; }
sleep 0.2
rounds=""
while :; do
    run "$proxied" "$CONNS" "$WRK_THREADS" 5s >/dev/null
    sleep 0.2
    n=$(count); rounds="$rounds $(( n / 1000 ))k:$(( $(rss_kb) / 1024 ))MB"
    [ "$n" -ge 1000000 ] && break
done
run "$proxied" "$CONNS" "$WRK_THREADS" 5s >/dev/null; sleep 0.2
n=$(count); rounds="$rounds $(( n / 1000 ))k:$(( $(rss_kb) / 1024 ))MB"
echo "proxy RSS after each round (requests:RSS):$rounds"

"$BIN/proxy_bench" attribution 20 10
