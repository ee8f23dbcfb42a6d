#!/usr/bin/env bash
# Stack-up overhead of `devstack ci`: a 10-service stack in three dependency levels
# (1 → 3 → 6 services), each ready DELAY seconds after it starts (a `log` probe matches its
# "ready" line). The slowest chain's own readiness time is 3 × DELAY; the overhead is the ci wall
# time (start, wait for ready, stop everything) minus that. Target: <= 150 ms.
# Beside it, the same stack started by hand one service after another, each once the one before
# is ready (how a script, or process-compose's sequential mode, brings a stack up).
# Usage: benches/stackup.sh [DELAY_SECONDS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
DELAY=${1:-0.3}
RUNS=${2:-5}
cargo build --release --quiet
BIN=$PWD/target/release/devstack
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{
    svc() { # name, deps
        printf '[services.%s]\nrun = "sleep %s; echo ready; exec sleep 300"\ngrace = "1s"\n' "$1" "$DELAY"
        [ -n "$2" ] && printf 'depends_on = [%s]\n' "$2"
        printf '[services.%s.health]\nlog = "^ready$"\n\n' "$1"
    }
    svc s0 ""
    for i in 1 2 3; do svc "s$i" '"s0"'; done
    for i in 4 5 6 7 8 9; do svc "s$i" "\"s$(( (i % 3) + 1 ))\""; done
} > "$work/devstack.toml"

chain_ms=$(awk "BEGIN{print 3 * $DELAY * 1000}")
best_wall=""; best_ready=""
for _ in $(seq "$RUNS"); do
    start=$(date +%s%N)
    ready=$(cd "$work" && "$BIN" ci 2>&1 >/dev/null | sed -n 's/.*every service is ready (took \(.*\))/\1/p')
    end=$(date +%s%N)
    wall=$(( (end - start) / 1000000 ))
    case "$ready" in *ms) ready_ms=${ready%ms} ;; *s) ready_ms=$(awk "BEGIN{print ${ready%s} * 1000}") ;; *) echo "ci failed"; exit 1 ;; esac
    if [ -z "$best_wall" ] || [ "$wall" -lt "$best_wall" ]; then best_wall=$wall; best_ready=$ready_ms; fi
done
echo "10 services, 3 levels, each ready after ${DELAY}s: slowest chain ${chain_ms} ms"
echo "devstack ci wall time (best of $RUNS): ${best_wall} ms, of which ready after ${best_ready} ms"
echo "overhead: $(awk "BEGIN{print $best_wall - $chain_ms}") ms wall (target <= 150 ms); $(awk "BEGIN{print $best_ready - $chain_ms}") ms to ready"

# The same services by hand, one after another in dependency order, each once the last is ready.
best_seq=""
for _ in $(seq "$RUNS"); do
    pids=()
    start=$(date +%s%N)
    for i in $(seq 0 9); do
        out="$work/seq$i.out"
        : > "$out"
        sh -c "sleep $DELAY; echo ready; exec sleep 300" > "$out" & pids+=($!)
        until grep -qx ready "$out"; do sleep 0.005; done
    done
    end=$(date +%s%N)
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    seq_ms=$(( (end - start) / 1000000 ))
    if [ -z "$best_seq" ] || [ "$seq_ms" -lt "$best_seq" ]; then best_seq=$seq_ms; fi
done
echo "sequential start by hand (best of $RUNS): ${best_seq} ms to ready ($(awk "BEGIN{printf \"%.2f\", $best_seq / $best_ready}")x devstack's)"

# Both again under hyperfine (mean and spread over the runs), when it is installed: the
# sequential start as a script of its own.
if command -v hyperfine >/dev/null; then
    cat > "$work/sequential.sh" <<SEQ
#!/usr/bin/env bash
pids=()
for i in \$(seq 0 9); do
    out="$work/seq\$i.out"; : > "\$out"
    sh -c "sleep $DELAY; echo ready; exec sleep 300" > "\$out" & pids+=(\$!)
    until grep -qx ready "\$out"; do sleep 0.005; done
done
kill "\${pids[@]}"
SEQ
    chmod +x "$work/sequential.sh"
    (cd "$work" && hyperfine --style none --runs "$RUNS" --export-json "$work/hf.json" \
        -n "devstack ci" "$BIN ci" -n sequential "$work/sequential.sh" >/dev/null 2>&1)
    python3 - "$work/hf.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"hyperfine {r['command']}: mean {r['mean'] * 1000:.0f} ms ± {r['stddev'] * 1000:.0f} ms over {len(r['times'])} runs")
PY
fi
