#!/usr/bin/env bash
# A service served elsewhere (issue 28): the added latency of a `url` service through devstack
# against calling its remote end directly. nginx over TLS (one worker, a self-signed certificate)
# stands in for the remote end; wrk calls it directly over HTTPS, and through devstack's port over
# plain HTTP, where devstack speaks TLS to it (`url = "https://localhost:PORT"`, `insecure = true`),
# keep-alive on both legs; beside them, nginx doing the same (plain HTTP in, TLS to the remote end,
# keep-alive upstream, one worker) as the anchor of what a proxy adds on this machine. Prints
# requests/s and p50/p99 for one connection (the difference is the added latency) and for 50, in
# turns, ROUNDS times.
# Usage: benches/remote.sh [DURATION] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
ROUNDS=${2:-3}
source benches/lib.sh
need_wrk_nginx
CARGO_PROFILE_RELEASE_LTO=${CARGO_PROFILE_RELEASE_LTO:-false} cargo build --release --quiet --bin devstack
BIN=$PWD/target/release
on_exit() {
    [ -f "$work/stack/devstack.toml" ] && "$BIN/devstack" -f "$work/stack/devstack.toml" down >/dev/null 2>&1 || true
    stop_nginx
}

remote=$(free_port); local_port=$(free_port); nginxed=$(free_port)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
{ nginx_preamble; cat <<CONF
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$remote ssl;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        location / { return 200 "remote end\n"; }
    }
    upstream remote { server 127.0.0.1:$remote; keepalive 128; }
    server {
        listen 127.0.0.1:$nginxed;
        location / {
            proxy_pass https://remote;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host localhost;
            proxy_ssl_session_reuse on;
        }
    }
}
CONF
} >"$work/nginx.conf"
"$NGINX" -c "$work/nginx.conf" -p "$work" -e "$work/error.log" & pids+=($!)
wait_port "$remote"; wait_port "$nginxed"
mkdir -p "$work/stack"
cat >"$work/stack/devstack.toml" <<TOML
[services.billing]
url = "https://localhost:$remote"
insecure = true
port = $local_port
TOML
"$BIN/devstack" -f "$work/stack/devstack.toml" up -d --wait >/dev/null
wait_port "$local_port"

# wrk on URL: "rps p50_us p99_us".
load() { # url connections threads
    wrk --latency -t"$3" -c"$2" -d"$DURATION" "$1" | awk '
        function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return v*1000; if (v ~ /s$/) return v*1000000; return v }
        /Requests\/sec/ { rps = $2 } /^ +50%/ { p50 = us($2) } /^ +99%/ { p99 = us($2) }
        END { printf "%d %d %d\n", rps, p50, p99 }'
}
printf "%-32s %10s %9s %9s\n" "case" "req/s" "p50 us" "p99 us"
for round in $(seq "$ROUNDS"); do
    for conns in 1 50; do
        threads=$([ "$conns" = 1 ] && echo 1 || echo 2)
        read -r drps dp50 dp99 < <(load "https://127.0.0.1:$remote/" "$conns" "$threads")
        read -r prps pp50 pp99 < <(load "http://127.0.0.1:$local_port/" "$conns" "$threads")
        read -r nrps np50 np99 < <(load "http://127.0.0.1:$nginxed/" "$conns" "$threads")
        printf "%-32s %10s %9s %9s\n" "round $round, $conns conn, direct (TLS)" "$drps" "$dp50" "$dp99"
        printf "%-32s %10s %9s %9s\n" "round $round, $conns conn, via devstack" "$prps" "$pp50" "$pp99"
        printf "%-32s %10s %9s %9s\n" "round $round, $conns conn, via nginx" "$nrps" "$np50" "$np99"
        for who in devstack nginx; do
            if [ "$who" = devstack ]; then r=$prps p=$pp50 p9=$pp99; else r=$nrps p=$np50 p9=$np99; fi
            awk -v w="$who" -v d="$dp50" -v p="$p" -v d9="$dp99" -v p9="$p9" -v dr="$drps" -v pr="$r" -v c="$conns" \
                'BEGIN { printf "  %-8s added (%s conn): p50 %+d us, p99 %+d us; throughput %.3fx direct\n", w, c, p - d, p9 - d9, pr / dr }'
        done
    done
done
"$BIN/devstack" -f "$work/stack/devstack.toml" traffic | head -3
