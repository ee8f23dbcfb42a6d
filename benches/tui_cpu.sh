#!/usr/bin/env bash
# CPU use of the dashboard, measured from /proc over a fixed window, each TUI in a tmux
# terminal of 160x45:
#   (a) idle: devstack with 20 quiet services (target <= 1% of one core)
#   (b) flood: 10 services each printing ~10,000 lines a second, devstack and mprocs side by
#       side on the same commands (target: devstack uses less CPU than mprocs)
# Usage: benches/tui_cpu.sh [SECONDS]   (mprocs: `cargo install mprocs`, or MPROCS=/path/to/mprocs)
set -euo pipefail
cd "$(dirname "$0")/.."
WINDOW=${1:-10}
cargo build --release --quiet
BIN=$PWD/target/release/devstack
MPROCS=${MPROCS:-$(command -v mprocs || true)}
work=$(mktemp -d)
sock="devstack-bench-$$"
cleanup() { tmux -L "$sock" kill-server 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
tps=$(getconf CLK_TCK)

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure NAME DIR COMMAND: run COMMAND in a tmux pane, let it settle, print CPU % of one core.
measure() {
    tmux -L "$sock" new-session -d -s b -x 160 -y 45 -c "$2" "exec $3"
    sleep 3
    local pid t0 t1
    pid=$(tmux -L "$sock" display -p -t b '#{pane_pid}')
    t0=$(ticks "$pid")
    sleep "$WINDOW"
    t1=$(ticks "$pid")
    tmux -L "$sock" kill-server 2>/dev/null || true
    sleep 1
    awk "BEGIN{printf \"%.2f\", ($t1 - $t0) * 100 / $tps / $WINDOW}"
}

mkdir -p "$work/idle" "$work/flood"
for i in $(seq -w 1 20); do printf '[services.quiet%s]\nrun = "sleep 100000"\n' "$i"; done > "$work/idle/devstack.toml"
FLOOD='while :; do seq -f "line %g of a flooding service, padded to look like a real log line" 1 1000; sleep 0.1; done'
{
    for i in $(seq -w 1 10); do printf "[services.flood%s]\nrun = '%s'\n" "$i" "$FLOOD"; done
} > "$work/flood/devstack.toml"
{
    echo "procs:"
    for i in $(seq -w 1 10); do printf "  flood%s:\n    shell: '%s'\n" "$i" "$FLOOD"; done
} > "$work/flood/mprocs.yaml"

idle=$(measure idle "$work/idle" "$BIN")
echo "idle, 20 quiet services:            devstack ${idle}% of one core (target <= 1%)"
flood=$(measure flood "$work/flood" "$BIN")
echo "flood, 10 x ~10k lines/s:           devstack ${flood}% of one core"
if [ -n "$MPROCS" ]; then
    mp=$(measure flood "$work/flood" "$MPROCS --config $work/flood/mprocs.yaml")
    echo "flood, same commands:               mprocs   ${mp}% of one core"
    awk "BEGIN{printf \"devstack / mprocs: %.2f (target < 1)\n\", $flood / ($mp > 0 ? $mp : 1)}"
else
    echo "mprocs not found: install it with 'cargo install mprocs' or set MPROCS"
fi
