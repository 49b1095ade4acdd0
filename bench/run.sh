#!/usr/bin/env bash
# Plinth vs `mlflow server` (SQLite backend), side by side on this machine, in
# one run, with the same load generator (bench/loadgen). Prints each figure
# and the ratio. Not a test: it asserts nothing.
#
#   bench/run.sh                      # full run (10,000 runs for search)
#   BENCH_SECONDS=10 BENCH_RUNS=10000 bench/run.sh
#   PLINTH_BIN=/path/to/plinth bench/run.sh   # measure that binary instead of this checkout's
#   PLINTH_BEFORE_BIN=/path/to/old/plinth bench/run.sh   # before/after: that binary in MLflow's place
#   PLINTH_BEFORE_BIN=$PLINTH PLINTH_BEFORE_ARGS="--fsync-commits true" bench/run.sh
#                                     # one binary, two settings (PLINTH_ARGS: the first server's extra flags)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${PLINTH_CACHE:-$HOME/.cache/plinth}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
VENV="$CACHE/venv"
SECONDS_PER_TEST="${BENCH_SECONDS:-10}"
RUNS="${BENCH_RUNS:-10000}"

if [ ! -x "$VENV/bin/mlflow" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r tests/conformance/requirements.txt
fi
cargo build --release --locked -p plinth-cli -p plinth-loadgen >&2
# PLINTH_BIN: measure another build (e.g. the previous commit's) with the same load.
PLINTH="${PLINTH_BIN:-$CARGO_TARGET_DIR/release/plinth}"
LOADGEN="$CARGO_TARGET_DIR/release/plinth-loadgen"

source bench/lib.sh

measure() { # name url args...
  local name=$1 url=$2; shift 2
  timeout 3600 "$LOADGEN" --url "$url" "$@" | tee -a "$WORK/$name.jsonl" >&2
}

# Each server gets the machine to itself: start it, measure, stop it.
# Before/after a change: the old binary takes MLflow's place, same load.
PEER=mlflow
[ -n "${PLINTH_BEFORE_BIN:-}" ] && PEER=before
for target in plinth "$PEER"; do
  port=$(free_port); url="http://127.0.0.1:$port"
  if [ "$target" = plinth ]; then
    # shellcheck disable=SC2086 # extra flags split on spaces on purpose
    "$PLINTH" server --port "$port" --data-dir "$WORK/plinth" ${PLINTH_ARGS:-} >"$WORK/plinth.log" 2>&1 &
  elif [ "$target" = before ]; then
    # shellcheck disable=SC2086
    "$PLINTH_BEFORE_BIN" server --port "$port" --data-dir "$WORK/before" ${PLINTH_BEFORE_ARGS:-} >"$WORK/before.log" 2>&1 &
  else
    "$VENV/bin/mlflow" server --backend-store-uri "sqlite:///$WORK/mlflow.db" --artifacts-destination "$WORK/mlflow-artifacts" \
      --host 127.0.0.1 --port "$port" >"$WORK/mlflow.log" 2>&1 &
  fi
  pid=$!; PIDS+=($pid)
  timeout 120 bash -c "$(declare -f wait_up); wait_up $url/health"
  sleep 5 # let every worker finish starting
  echo "== $target: log-metric, 16 clients, ${SECONDS_PER_TEST}s" >&2
  measure "$target" "$url" log-metric --concurrency 16 --seconds "$SECONDS_PER_TEST"
  echo "== $target: log-batch of 1000 metrics" >&2
  measure "$target" "$url" log-batch --size 1000 --requests "${BENCH_BATCHES:-50}"
  echo "== $target: seeding $RUNS runs" >&2
  seed=$(timeout 3600 "$LOADGEN" --url "$url" seed --runs "$RUNS" --concurrency 16)
  echo "$seed" | tee -a "$WORK/$target.jsonl" >&2
  exp=$(echo "$seed" | python3 -c 'import json,sys; print(json.load(sys.stdin)["experiment_id"])')
  echo "== $target: search-runs over $RUNS runs (metric filter, metric order)" >&2
  measure "$target" "$url" search --experiment-id "$exp" --repeat "${BENCH_SEARCHES:-30}"
  pkill -TERM -P "$pid" 2>/dev/null || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done

python3 - "$WORK/plinth.jsonl" "$WORK/$PEER.jsonl" "$RUNS" "$PEER" <<'PY'
import json, sys
def load(p):
    return {d["bench"]: d for d in map(json.loads, open(p))}
p, m, runs, peer = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = [
    ("log-metric req/s, 16 clients", p["log_metric"]["rps"], m["log_metric"]["rps"], True),
    ("log-metric p99 ms, 16 clients", p["log_metric"]["p99_ms"], m["log_metric"]["p99_ms"], False),
    ("log-batch 1000 metrics, p50 ms", p["log_batch"]["p50_ms"], m["log_batch"]["p50_ms"], False),
    (f"seed {runs} runs (create+log-batch), s", p["seed"]["seconds"], m["seed"]["seconds"], False),
    (f"search-runs over {runs} runs, p50 ms", p["search_runs"]["p50_ms"], m["search_runs"]["p50_ms"], False),
]
print(f"{'measure':44} {'plinth':>12} {peer:>12} {'plinth advantage':>18}")
for name, pv, mv, higher_better in rows:
    ratio = pv / mv if higher_better else mv / pv
    print(f"{name:44} {pv:12.2f} {mv:12.2f} {ratio:17.1f}x")
print(f"errors: plinth {p['log_metric']['errors']}, {peer} {m['log_metric']['errors']}; search returned plinth {p['search_runs']['returned']}, {peer} {m['search_runs']['returned']}")
PY
