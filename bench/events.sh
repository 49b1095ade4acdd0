#!/usr/bin/env bash
# Outcome events ingested through `POST /v1/events`, in one run on this
# machine: batches of 1,000 events (distinct units and event ids, a value
# each, half naming the deployment) at 16 clients (bench/loadgen), each
# request answered once its events are written (group commit); prints events
# per second, latency, the segments written and the events read back.
# Target (issue 15): at least 500,000 events/s on this 2-core machine. Not a test.
#
#   bench/events.sh                  # BENCH_SECONDS=10
#   BENCH_PIN=1 bench/events.sh      # server on CPU 0, the load generator on CPU 1
#   PLINTH_BIN=/path/to/plinth ...   # measure that binary instead of this checkout's
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
SECONDS_PER_TEST="${BENCH_SECONDS:-10}"
cargo build --release --locked -p plinth-cli -p plinth-loadgen >&2
PLINTH="${PLINTH_BIN:-$CARGO_TARGET_DIR/release/plinth}"
LOADGEN="$CARGO_TARGET_DIR/release/plinth-loadgen"
source bench/lib.sh

PORT=$(free_port); URL="http://127.0.0.1:$PORT"
"${SERVER_CPU[@]}" "$PLINTH" server --port "$PORT" --data-dir "$WORK/data" 2>"$WORK/server.log" & PIDS+=($!)
wait_up "$URL/health"
python3 -c 'print("".join(f"u{u}\titem{(u * 7 + i) % 50}\n" for u in range(100) for i in range(5)), end="")' >"$WORK/i.tsv"
"$PLINTH" train recommender --data "$WORK/i.tsv" --algo popularity --register bench-events --tracking-uri "$URL" \
  --json >/dev/null
curl -fs -X POST "$URL/api/2.0/plinth/deployments/create" -H 'content-type: application/json' \
  -d '{"name": "bench", "variants": [{"name": "a", "model": "bench-events/1"}]}' >/dev/null

BODY=$(python3 -c '
import json
events = [{"unit": f"u{{i}}-{k}", "kind": "play", "value": 12.5, "event_id": f"e{{i}}-{k}", **({"deployment": "bench"} if k % 2 else {})}
          for k in range(1000)]
print(json.dumps(events))')
echo "== POST /v1/events, 1,000 events a request, 16 clients, ${SECONDS_PER_TEST}s" >&2
OUT=$("${CLIENT_CPU[@]}" "$LOADGEN" --url "$URL" post --path /v1/events --body "$BODY" --vary 1000000000 \
  --concurrency 16 --seconds "$SECONDS_PER_TEST" --name events)
SEGMENTS=$(find "$WORK/data/exposures/~events" -name '*.parquet' | wc -l)
python3 - "$OUT" "$SEGMENTS" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print(f"events/s {r['rps'] * 1000:,.0f}  (requests/s {r['rps']:.1f}, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
      f"errors {r['errors']}); segments written {sys.argv[2]}; target >= 500,000 events/s")
PY
