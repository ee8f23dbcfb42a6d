# What the benches' scripts share (sourced): a work folder and the pids to kill, both cleaned
# up on exit (`on_exit`, when a script defines it, runs first); a free port; waiting for one.
work=$(mktemp -d)
pids=()
cleanup() {
    if declare -F on_exit >/dev/null; then on_exit; fi
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; echo "nothing on $1"; exit 1; }
# wrk's "Requests/sec", its 50%/99% latencies in microseconds and its request count.
wrk_run() { # port connections threads duration
    wrk --latency -t"$3" -c"$2" -d"$4" "http://127.0.0.1:$1/" | awk '
        function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return v*1000; if (v ~ /s$/) return v*1000000; return v }
        /Requests\/sec/ { rps = $2 } /^ +50%/ { p50 = us($2) } /^ +99%/ { p99 = us($2) }
        / requests in / { n = $1 }
        END { printf "%d %d %d %d\n", rps, p50, p99, n }'
}
# The start of an nginx.conf for a bench: one worker in the foreground, everything it writes in
# $work, no access log; the caller writes the rest of its `http` block and closes it.
nginx_preamble() {
    cat <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/body; proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fcgi; uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
CONF
}
# wrk and nginx, installed when missing; NGINX: nginx's path (Debian's is off a user's PATH).
need_wrk_nginx() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq && apt-get install -y -qq "${missing[@]}"
    fi
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}
# Stop the nginx a bench started from its nginx_preamble (its pid file is in $work).
stop_nginx() {
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid" 2>/dev/null)" 2>/dev/null || true
}
