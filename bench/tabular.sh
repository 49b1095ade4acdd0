#!/usr/bin/env bash
# Plinth's GBDT vs LightGBM (PyPI) in one run on this machine: breast cancer
# (correctness) and 1M x 50 synthetic classification and regression sets
# (speed), 1 and 2 threads, same rounds/leaves/depth/learning rate.
#   bench/tabular.sh            # BENCH_ROWS=1000000
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${PLINTH_CACHE:-$HOME/.cache/plinth}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
source bench/lib.sh
VENV="$CACHE/venv"
ensure_venv "$VENV" tests/conformance/requirements.txt lightgbm sklearn
cargo build --release --locked -p plinth-ml --example gbdt_bench >&2
"$VENV/bin/python" bench/tabular.py "$CARGO_TARGET_DIR/release/examples/gbdt_bench" "$WORK" "${BENCH_ROWS:-1000000}"
