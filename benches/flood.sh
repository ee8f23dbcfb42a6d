#!/usr/bin/env bash
# Throughput of service output: one service prints 1,000,000 lines of 100 bytes, under
#   raw     the command alone through a PTY: script -qfc CMD /dev/null > /dev/null
#   devstack  devstack up --headless > /dev/null (every line also goes to .devstack/logs/)
#   honcho  honcho start > /dev/null, same command in a Procfile
# and prints the times, the ratios and devstack's peak RSS.
# Targets: devstack <= 1.5x raw, >= 5x faster than honcho, peak RSS <= 40 MB.
# Usage: benches/flood.sh [LINES]   (installs honcho with pip if it is missing)
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${1:-1000000}
cargo build --release --quiet
BIN=$PWD/target/release/devstack
command -v honcho >/dev/null || python3 -m pip install --quiet honcho
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# 99 characters and a newline per line.
CMD="yes $(printf 'x%.0s' $(seq 99) | cut -c1-99) | head -n $LINES"
printf '[services.spew]\nrun = "%s"\nrestart = "no"\n' "$CMD" > "$work/devstack.toml"
printf 'spew: %s\n' "$CMD" > "$work/Procfile"

# Runs a command in $work; prints "seconds max_rss_kb".
measure() {
    (cd "$work" && /usr/bin/time -f "%e %M" -o "$work/time.txt" bash -c "$1" > /dev/null 2>&1) || true
    cat "$work/time.txt"
}

best() { # best of N runs: "seconds rss"
    local n=$1 cmd=$2 best_t="" best_rss=""
    for _ in $(seq "$n"); do
        read -r t rss <<< "$(measure "$cmd")"
        if [ -z "$best_t" ] || awk "BEGIN{exit !($t < $best_t)}"; then best_t=$t; fi
        if [ -z "$best_rss" ] || [ "$rss" -gt "$best_rss" ]; then best_rss=$rss; fi
        rm -rf "$work/.devstack"
    done
    echo "$best_t $best_rss"
}

read -r raw raw_rss <<< "$(best 3 "script -qfc \"$CMD\" /dev/null")"
read -r dev dev_rss <<< "$(best 3 "$BIN up --headless")"
read -r hon hon_rss <<< "$(best 1 "honcho start")"

echo "lines: $LINES x 100 bytes"
printf 'raw PTY:  %6.2fs\n' "$raw"
printf 'devstack: %6.2fs  (%.2fx raw; target <= 1.5x)\n' "$dev" "$(awk "BEGIN{print $dev/$raw}")"
printf 'honcho:   %6.2fs  (devstack is %.1fx faster; target >= 5x)\n' "$hon" "$(awk "BEGIN{print $hon/$dev}")"
printf 'devstack peak RSS: %.1f MB (target <= 40 MB)\n' "$(awk "BEGIN{print $dev_rss/1024}")"
printf 'peak RSS of the largest process: raw PTY %.1f MB, devstack %.1f MB, honcho %.1f MB\n' \
    "$(awk "BEGIN{print $raw_rss/1024}")" "$(awk "BEGIN{print $dev_rss/1024}")" "$(awk "BEGIN{print $hon_rss/1024}")"
