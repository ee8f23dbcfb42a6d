#!/usr/bin/env bash
# CPU (ticks and % of one core, from /proc over a fixed window) and peak memory (VmHWM) of the
# dashboard, each TUI in a tmux terminal of 160x45:
#   (a) idle: 20 quiet services for IDLE seconds (target: <= 2 ticks of the dashboard)
#   (b) flood: 10 services each printing ~10,000 lines a second for FLOOD seconds, devstack and
#       mprocs side by side on the same commands (target: the dashboard <= 25% of a core and
#       <= 40 MB, below mprocs)
# Each for the dashboard in the stack's own process (`devstack`), and attached (`devstack up -d`,
# then `devstack attach`): there the attach process and the stack process are measured apart.
# Usage: benches/tui_cpu.sh [FLOOD_SECONDS] [IDLE_SECONDS]
#   (mprocs: `cargo install mprocs`, or MPROCS=/path/to/mprocs)
set -euo pipefail
cd "$(dirname "$0")/.."
FLOOD=${1:-10}
IDLE=${2:-20}
cargo build --release --quiet
BIN=$PWD/target/release/devstack
MPROCS=${MPROCS:-$(command -v mprocs || true)}
work=$(mktemp -d)
sock="devstack-bench-$$"
cleanup() {
    tmux -L "$sock" kill-server 2>/dev/null || true
    for d in idle flood; do (cd "$work/$d" 2>/dev/null && "$BIN" down >/dev/null 2>&1) || true; done
    rm -rf "$work"
}
trap cleanup EXIT
tps=$(getconf CLK_TCK)

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
peak_mb() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
pct() { awk "BEGIN{printf \"%.1f\", $1 * 100 / $tps / $2}"; }

# window SECONDS PID...: CPU ticks of each PID over the window, then its peak memory, as
# "ticks pct% peakMB" per PID on one line each.
window() {
    local secs=$1
    shift
    local -a t0
    local i=0
    for p in "$@"; do t0[$i]=$(ticks "$p"); i=$((i + 1)); done
    sleep "$secs"
    i=0
    for p in "$@"; do
        local d=$(($(ticks "$p") - t0[$i]))
        echo "$d ticks, $(pct "$d" "$secs")% of a core, peak $(peak_mb "$p") MB"
        i=$((i + 1))
    done
}

tui() { tmux -L "$sock" new-session -d -s b -x 160 -y 45 -c "$1" "exec $2"; }
pane_pid() { tmux -L "$sock" display -p -t b '#{pane_pid}'; }
stop_tui() { tmux -L "$sock" kill-server 2>/dev/null || true; sleep 1; }

# in_process DIR SECONDS [SETTLE]: the dashboard in the stack's own process, measured from
# SETTLE seconds (default 3) after its start.
in_process() {
    tui "$1" "$BIN"
    sleep "${3:-3}"
    window "$2" "$(pane_pid)"
    stop_tui
}

# attached DIR SECONDS [SETTLE]: `up -d`, then `attach`; the attach process, then the stack
# process, from SETTLE seconds (default 3) after the start.
attached() {
    (cd "$1" && "$BIN" up -d >/dev/null 2>&1)
    local stack
    stack=$(cat "$1/.devstack/lock")
    tui "$1" "$BIN attach"
    sleep "${3:-3}"
    local out
    out=$(window "$2" "$(pane_pid)" "$stack")
    echo "  attach: $(echo "$out" | sed -n 1p)"
    echo "  stack:  $(echo "$out" | sed -n 2p)"
    stop_tui
    (cd "$1" && "$BIN" down >/dev/null 2>&1)
}

mkdir -p "$work/idle" "$work/flood"
for i in $(seq -w 1 20); do printf '[services.quiet%s]\nrun = "sleep 100000"\n' "$i"; done > "$work/idle/devstack.toml"
FLOOD_CMD='while :; do seq -f "line %g of a flooding service, padded to look like a real log line" 1 1000; sleep 0.1; done'
{
    for i in $(seq -w 1 10); do printf "[services.flood%s]\nrun = '%s'\n" "$i" "$FLOOD_CMD"; done
} > "$work/flood/devstack.toml"
{
    echo "procs:"
    for i in $(seq -w 1 10); do printf "  flood%s:\n    shell: '%s'\n" "$i" "$FLOOD_CMD"; done
} > "$work/flood/mprocs.yaml"

# Uptimes show seconds in a service's first minute only: a stack is idle (nothing on the screen
# changes) from then on. Its first minute is measured too.
echo "idle, 20 quiet services, ${IDLE}s (target: dashboard <= 2 ticks):"
echo "  in-process, settled (from 62 s): $(in_process "$work/idle" "$IDLE" 62)"
echo "  in-process, first minute (from 3 s, uptimes tick each second): $(in_process "$work/idle" "$IDLE")"
echo " attached, settled (from 62 s):"
attached "$work/idle" "$IDLE" 62
if [ -n "$MPROCS" ]; then
    {
        echo "procs:"
        for i in $(seq -w 1 20); do printf "  quiet%s:\n    shell: 'sleep 100000'\n" "$i"; done
    } > "$work/idle/mprocs.yaml"
    tui "$work/idle" "$MPROCS --config $work/idle/mprocs.yaml"
    sleep 3
    echo "  mprocs:     $(window "$IDLE" "$(pane_pid)")"
    stop_tui
fi
echo "flood, 10 x ~10k lines/s, ${FLOOD}s (target: dashboard <= 25% of a core, <= 40 MB):"
echo "  in-process: $(in_process "$work/flood" "$FLOOD")"
echo " attached:"
attached "$work/flood" "$FLOOD"
if [ -n "$MPROCS" ]; then
    tui "$work/flood" "$MPROCS --config $work/flood/mprocs.yaml"
    sleep 3
    echo "  mprocs:     $(window "$FLOOD" "$(pane_pid)")"
    stop_tui
else
    echo "mprocs not found: install it with 'cargo install mprocs' or set MPROCS"
fi
