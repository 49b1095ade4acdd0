#!/usr/bin/env bash
# Plinth's recommenders vs `implicit` (PyPI) on the shared MovieLens data, in
# one run on this machine, on exactly the same split. Reports; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${PLINTH_CACHE:-$HOME/.cache/plinth}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
source bench/lib.sh
VENV="$CACHE/bench-venv"
ensure_venv "$VENV" bench/requirements-recommenders.txt implicit threadpoolctl
cargo build --release --locked -p plinth-cli >&2
DATA="${PLINTH_SHARED_DATA:-../shared/data}"
# implicit's own BLAS threads would oversubscribe; it sets its threads itself.
export OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
# PLINTH_BIN: measure another build (e.g. the previous commit's) on the same data.
"$VENV/bin/python" bench/recommenders.py "${PLINTH_BIN:-$CARGO_TARGET_DIR/release/plinth}" "$DATA/ml-100k" "$DATA/ml-latest-small"
