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
