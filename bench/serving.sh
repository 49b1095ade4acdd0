#!/usr/bin/env bash
# Serving throughput on this machine, in one run, with one load generator
# (bench/loadgen): Plinth's top-10 recommendations from an ALS model with
# 10,000 items (REST recommend endpoint and the OIP infer endpoint — both served
# from the per-user top-100 precomputed at load — and, with an item filter,
# scored live) against
# a minimal axum server returning a fixed JSON body (the HTTP ceiling), at
# concurrency 1, 16 and 64. Prints each figure and the ratio to the ceiling.
# Not a test: it asserts nothing.
#
#   bench/serving.sh                 # BENCH_SECONDS=10 per measurement
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${PLINTH_CACHE:-$HOME/.cache/plinth}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
SECONDS_PER_TEST="${BENCH_SECONDS:-10}"
USERS="${BENCH_USERS:-20000}"
ITEMS="${BENCH_ITEMS:-10000}"
cargo build --release --locked -p plinth-cli -p plinth-loadgen >&2
PLINTH="$CARGO_TARGET_DIR/release/plinth"
LOADGEN="$CARGO_TARGET_DIR/release/plinth-loadgen"

source bench/lib.sh

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
  --register bench-recs --data-dir "$WORK/plinth-data" --json >/dev/null

PORT=$(free_port); URL="http://127.0.0.1:$PORT"
"$PLINTH" server --port "$PORT" --data-dir "$WORK/plinth-data" 2>"$WORK/server.log" & PIDS+=($!)
wait_up "$URL/health"
curl -fs -X POST "$URL/api/2.0/plinth/deployments/create" -H 'content-type: application/json' \
  -d '{"name": "bench", "variants": [{"name": "a", "model": "bench-recs/1"}]}' >/dev/null
FPORT=$(free_port); FURL="http://127.0.0.1:$FPORT"
"$LOADGEN" --url "$FURL" serve-fixed & PIDS+=($!)
wait_up "$FURL/"

REC='{"user": "u{i}", "k": 10}'
# An item filter bypasses the per-user top-100 precomputed at load: live scoring.
LIVE='{"user": "u{i}", "k": 10, "exclude_items": ["item0"]}'
OIP='{"inputs": [{"name": "user", "datatype": "BYTES", "shape": [1], "data": ["u{i}"]}, {"name": "k", "datatype": "INT32", "shape": [1], "data": [10]}]}'
run() { "$LOADGEN" --url "$1" post --path "$2" --body "$3" --vary "$USERS" --concurrency "$4" --seconds "$SECONDS_PER_TEST" --name "$5"; }
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
echo "(a) GBDT via ONNX vs 'mlflow models serve': not measured yet — ONNX serving is not built (see issue notes)."
