#!/usr/bin/env bash
# Serving throughput on this machine, in one run, with one load generator
# (bench/loadgen): Plinth's top-10 recommendations from an ALS model with
# 10,000 items (REST recommend endpoint and the OIP infer endpoint — both served
# from the per-user top-100 precomputed at load — and, with an item filter,
# scored live) against a minimal axum server returning a fixed JSON body (the
# HTTP ceiling), at concurrency 1, 16 and 64, with the ratio to the ceiling;
# then (a) one LightGBM model served by `mlflow models serve` (pyfunc) and by
# Plinth as ONNX, 1- and 100-row requests at concurrency 1, 16 and 64, with
# Plinth's throughput and latency ratios.
# Not a test: it asserts nothing.
#
#   bench/serving.sh                 # BENCH_SECONDS=10 per measurement
#   BENCH_PART=a bench/serving.sh    # only part (a), the GBDT comparison
#   BENCH_PART=rec bench/serving.sh  # only the recommender part
#   PLINTH_BIN=/path/to/plinth ...   # measure that binary instead of this checkout's
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${PLINTH_CACHE:-$HOME/.cache/plinth}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
SECONDS_PER_TEST="${BENCH_SECONDS:-10}"
USERS="${BENCH_USERS:-20000}"
ITEMS="${BENCH_ITEMS:-10000}"
cargo build --release --locked -p plinth-cli -p plinth-loadgen >&2
# PLINTH_BIN: measure another build (e.g. the previous commit's) with the same load.
PLINTH="${PLINTH_BIN:-$CARGO_TARGET_DIR/release/plinth}"
LOADGEN="$CARGO_TARGET_DIR/release/plinth-loadgen"

source bench/lib.sh

PORT=$(free_port); URL="http://127.0.0.1:$PORT"
"$PLINTH" server --port "$PORT" --data-dir "$WORK/plinth-data" 2>"$WORK/server.log" & PIDS+=($!)
wait_up "$URL/health"
run() { "$LOADGEN" --url "$1" post --path "$2" --body "$3" --vary "${VARY:-$USERS}" --concurrency "$4" --seconds "$SECONDS_PER_TEST" --name "$5"; }

if [ "${BENCH_PART:-all}" != a ]; then
echo "== synthetic interactions: $USERS users, $ITEMS items, power-law popularity" >&2
python3 - "$WORK/data.tsv" "$USERS" "$ITEMS" <<'PY'
import random, sys
path, users, items = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(42)
weights = [1.0 / (i + 1) ** 0.8 for i in range(items)]
with open(path, "w") as f:
    for u in range(users):
        for i in set(rng.choices(range(items), weights=weights, k=rng.randint(5, 80))):
            f.write(f"u{u}\titem{i}\n")
PY
"$PLINTH" train recommender --data "$WORK/data.tsv" --algo als --factors 64 --iterations 5 --max-eval-users 500 \
  --register bench-recs --tracking-uri "$URL" --json >/dev/null
curl -fs -X POST "$URL/api/2.0/plinth/deployments/create" -H 'content-type: application/json' \
  -d '{"name": "bench", "variants": [{"name": "a", "model": "bench-recs/1"}]}' >/dev/null
FPORT=$(free_port); FURL="http://127.0.0.1:$FPORT"
"$LOADGEN" --url "$FURL" serve-fixed & PIDS+=($!)
wait_up "$FURL/"

REC='{"user": "u{i}", "k": 10}'
# An item filter bypasses the per-user top-100 precomputed at load: live scoring.
LIVE='{"user": "u{i}", "k": 10, "exclude_items": ["item0"]}'
OIP='{"inputs": [{"name": "user", "datatype": "BYTES", "shape": [1], "data": ["u{i}"]}, {"name": "k", "datatype": "INT32", "shape": [1], "data": [10]}]}'
printf '%-34s %5s %10s %9s %9s %8s %12s\n' measure conc "req/s" "p50 ms" "p99 ms" errors "of ceiling"
for c in 1 16 64; do
  ceil=$(run "$FURL" /fixed '{}' "$c" fixed)
  rec=$(run "$URL" /v1/deployments/bench/recommend "$REC" "$c" recommend)
  oip=$(run "$URL" /v2/models/bench/infer "$OIP" "$c" oip-infer)
  live=$(run "$URL" /v1/deployments/bench/recommend "$LIVE" "$c" recommend-live)
  python3 - "$c" "$ceil" "$rec" "$oip" "$live" <<'PY'
import json, sys
c = sys.argv[1]
ceil, rec, oip, live = (json.loads(a) for a in sys.argv[2:6])
for label, m in [("fixed JSON (axum ceiling)", ceil), ("plinth recommend top-10 (REST)", rec),
                 ("plinth OIP infer top-10 (REST)", oip), ("plinth recommend, live scoring", live)]:
    print(f"{label:34} {c:>5} {m['rps']:10.0f} {m['p50_ms']:9.2f} {m['p99_ms']:9.2f} {m['errors']:8d} {m['rps'] / ceil['rps']:11.0%}")
PY
done
fi

if [ "${BENCH_PART:-all}" = rec ]; then exit 0; fi
echo "== (a) one LightGBM GBDT (100 trees, 31 leaves, 20 features): 'mlflow models serve' (pyfunc) vs Plinth (ONNX)" >&2
VENV="$CACHE/venv"
ensure_venv "$VENV" tests/conformance/requirements.txt mlflow lightgbm onnxmltools
"$VENV/bin/python" bench/gbdt_model.py "$WORK" "$URL" bench-gbdt
curl -fs -X POST "$URL/api/2.0/plinth/deployments/create" -H 'content-type: application/json' \
  -d '{"name": "gbdt", "variants": [{"name": "a", "model": "bench-gbdt/1"}]}' >/dev/null
MPORT=$(free_port); MURL="http://127.0.0.1:$MPORT"
# Its own process group: mlflow starts a uvicorn child, stopped with it.
PATH="$VENV/bin:$PATH" setsid "$VENV/bin/mlflow" models serve -m "$WORK/mlflow-model" --env-manager local -h 127.0.0.1 -p "$MPORT" \
  >"$WORK/mlflow-serve.log" 2>&1 & PIDS+=("-$!")
wait_up "$MURL/ping"
# Both answer what LightGBM itself predicts for the same 100 rows.
"$VENV/bin/python" - "$WORK" "$URL" "$MURL" <<'PY'
import json, sys, urllib.request
import numpy as np
work, plinth, mlflow_url = sys.argv[1:4]
def post(url, path):
    req = urllib.request.Request(url, data=open(path, "rb").read(), headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=60))
expected = np.load(f"{work}/expected.npy")
p = np.array(post(f"{plinth}/v2/models/gbdt/infer", f"{work}/oip-100.json")["outputs"][0]["data"])
m = np.array(post(f"{mlflow_url}/invocations", f"{work}/mlflow-100.json")["predictions"])
print(f"max |prediction - lightgbm|: plinth (ONNX, float32) {np.abs(p - expected).max():.2e}, "
      f"mlflow {np.abs(m - expected).max():.2e}")
PY
printf '%-34s %5s %10s %9s %9s %8s\n' measure conc "req/s" "p50 ms" "p99 ms" errors
for rows in 1 100; do
  for c in 1 16 64; do
    mlf=$(VARY=1 run "$MURL" /invocations "$(cat "$WORK/mlflow-$rows.json")" "$c" "mlflow-$rows")
    pl=$(VARY=1 run "$URL" /v2/models/gbdt/infer "$(cat "$WORK/oip-$rows.json")" "$c" "plinth-$rows")
    python3 - "$rows" "$c" "$mlf" "$pl" <<'PY'
import json, sys
rows, c = sys.argv[1:3]
mlf, pl = json.loads(sys.argv[3]), json.loads(sys.argv[4])
for label, m in [(f"mlflow models serve, {rows} row(s)", mlf), (f"plinth OIP (ONNX), {rows} row(s)", pl)]:
    print(f"{label:34} {c:>5} {m['rps']:10.0f} {m['p50_ms']:9.2f} {m['p99_ms']:9.2f} {m['errors']:8d}")
print(f"{'  ratio plinth/mlflow':34} {c:>5} {pl['rps'] / mlf['rps']:9.1f}x {mlf['p50_ms'] / pl['p50_ms']:8.1f}x "
      f"{mlf['p99_ms'] / pl['p99_ms']:8.1f}x   (throughput, p50 and p99 lower by)")
PY
  done
done
