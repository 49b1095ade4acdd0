#!/usr/bin/env bash
# The web UI at scale: seeds BENCH_RUNS runs (default 100,000, 200 distinct
# metric keys) into a fresh Plinth and times the runs page and the compare
# page for 200 runs.
#   bench/ui.sh            # BENCH_RUNS=100000
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${PLINTH_CACHE:-$HOME/.cache/plinth}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
source bench/lib.sh
VENV="$CACHE/venv"
ensure_venv "$VENV" tests/conformance/requirements.txt requests
cargo build --release --locked --bin plinth >&2
PORT=$(free_port)
setsid "$CARGO_TARGET_DIR/release/plinth" server --port "$PORT" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
PIDS+=(-$!)
wait_up "http://127.0.0.1:$PORT/health"
"$VENV/bin/python" bench/ui.py "http://127.0.0.1:$PORT" "${BENCH_RUNS:-100000}"
