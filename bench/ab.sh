#!/usr/bin/env bash
# Two builds of Plinth on the same machine in one run: a change's before and
# after on the tracking hot paths. Each binary serves its own data dir; both
# are measured alternately (A, B, B, A) for log-metric, runs/create (a
# state change, so it also writes an audit record) and, without BENCH_AUTH,
# top-10 recommend on a deployment of a popularity model (the serving hot
# path: assignment, ranking, the exposure record) at 16 clients, and the
# ratio B/A printed. Not a test.
#
#   bench/ab.sh OLD_PLINTH NEW_PLINTH          # BENCH_SECONDS=10 per measurement
#   BENCH_AUTH=member bench/ab.sh OLD NEW      # both with --auth, every request as a signed-in user who is
#                                              # no administrator (the permission check's path)
#   BENCH_WORKSPACE_B=team-a bench/ab.sh NEW NEW   # B's requests in a workspace of their own (made first; with
#                                              # BENCH_AUTH=member the member holds a role there): the header's cost
#   git worktree add /tmp/old <rev> && (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old/target cargo build --release -p plinth-cli)
#   # a "before" binary, in a target dir of its own: cargo names workspace crates by their path inside the
#   # workspace, so two checkouts building into one target dir take each other's crates for fresh
set -euo pipefail
cd "$(dirname "$0")/.."
A="${1:?the before binary}"; B="${2:?the after binary}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
SECONDS_PER_TEST="${BENCH_SECONDS:-10}"
cargo build --release --locked -p plinth-loadgen >&2
LOADGEN="$CARGO_TARGET_DIR/release/plinth-loadgen"
source bench/lib.sh

AUTH="${BENCH_AUTH:-}"
declare -A URL TOKEN EXP BIN=([a]="$A" [b]="$B") WS=([a]="" [b]="${BENCH_WORKSPACE_B:-}")
for side in a b; do
  port=$(free_port); URL[$side]="http://127.0.0.1:$port"; TOKEN[$side]=""; EXP[$side]="0"
  if [ "$AUTH" = member ]; then
    PLINTH_ADMIN_USER=bench PLINTH_ADMIN_PASSWORD=bench-password \
      "${BIN[$side]}" server --port "$port" --data-dir "$WORK/$side" --auth 2>"$WORK/$side.log" & PIDS+=($!)
  else
    "${BIN[$side]}" server --port "$port" --data-dir "$WORK/$side" 2>"$WORK/$side.log" & PIDS+=($!)
  fi
  wait_up "${URL[$side]}/health"
  if [ "$AUTH" = member ]; then
    curl -fs -u bench:bench-password -H 'content-type: application/json' \
      -d '{"username": "member", "password": "member-password"}' "${URL[$side]}/api/2.0/mlflow/users/create" >/dev/null
    TOKEN[$side]=$(curl -fs -u member:member-password -H 'content-type: application/json' -d '{"name": "bench"}' \
      "${URL[$side]}/api/2.0/plinth/tokens/create" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
  fi
  ws="${WS[$side]}"; admin=(); as_user=()
  if [ "$AUTH" = member ]; then admin=(-u bench:bench-password); as_user=(-u member:member-password); fi
  if [ -n "$ws" ]; then
    curl -fs "${admin[@]}" -H 'content-type: application/json' -d "{\"name\": \"$ws\"}" \
      "${URL[$side]}/api/3.0/mlflow/workspaces" >/dev/null
    if [ "$AUTH" = member ]; then
      role=$(curl -fs "${admin[@]}" -H 'content-type: application/json' -d "{\"workspace\": \"$ws\", \"name\": \"members\"}" \
        "${URL[$side]}/api/3.0/mlflow/roles/create" | python3 -c 'import json,sys; print(json.load(sys.stdin)["role"]["id"])')
      curl -fs "${admin[@]}" -H 'content-type: application/json' \
        -d "{\"role_id\": $role, \"resource_type\": \"workspace\", \"resource_pattern\": \"*\", \"permission\": \"USE\"}" \
        "${URL[$side]}/api/3.0/mlflow/roles/permissions/add" >/dev/null
      curl -fs "${admin[@]}" -H 'content-type: application/json' -d "{\"username\": \"member\", \"role_id\": $role}" \
        "${URL[$side]}/api/3.0/mlflow/roles/assign" >/dev/null
    fi
  fi
  if [ "$AUTH" = member ] || [ -n "$ws" ]; then
    # The caller's own experiment (the Default one is only readable to a member, and not in another workspace).
    EXP[$side]=$(curl -fs "${as_user[@]}" -H 'content-type: application/json' -H "X-MLFLOW-WORKSPACE: ${ws:-default}" \
      -d '{"name": "ab"}' "${URL[$side]}/api/2.0/mlflow/experiments/create" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["experiment_id"])')
  fi
done

if [ -z "$AUTH" ]; then
  python3 -c 'print("".join(f"u{u}\titem{(u * 7 + i) % 50}\n" for u in range(100) for i in range(5)), end="")' >"$WORK/i.tsv"
  for side in a b; do
    "${BIN[$side]}" train recommender --data "$WORK/i.tsv" --algo popularity --register ab-recs \
      --tracking-uri "${URL[$side]}" --json >/dev/null
    curl -fs -X POST "${URL[$side]}/api/2.0/plinth/deployments/create" -H 'content-type: application/json' \
      -d '{"name": "ab", "variants": [{"name": "a", "model": "ab-recs/1"}]}' >/dev/null
  done
fi

measure() { # side round
  local side=$1 round=$2
  export BENCH_WORKSPACE="${WS[$side]}"
  BENCH_TOKEN="${TOKEN[$side]}" "$LOADGEN" --url "${URL[$side]}" log-metric --concurrency 16 --seconds "$SECONDS_PER_TEST" \
    | sed "s/^{/{\"side\": \"$side\", \"round\": $round, \"what\": \"log-metric\", /" >>"$WORK/results.jsonl"
  BENCH_TOKEN="${TOKEN[$side]}" "$LOADGEN" --url "${URL[$side]}" post --path /api/2.0/mlflow/runs/create \
    --body "{\"experiment_id\": \"${EXP[$side]}\"}" \
    --vary 1 --concurrency 16 --seconds "$SECONDS_PER_TEST" --name create-run \
    | sed "s/^{/{\"side\": \"$side\", \"round\": $round, \"what\": \"create-run\", /" >>"$WORK/results.jsonl"
  if [ -z "$AUTH" ]; then
    "$LOADGEN" --url "${URL[$side]}" post --path /v1/deployments/ab/recommend --body '{"user": "u{i}", "k": 10}' \
      --vary 100 --concurrency 16 --seconds "$SECONDS_PER_TEST" --name recommend \
      | sed "s/^{/{\"side\": \"$side\", \"round\": $round, \"what\": \"recommend\", /" >>"$WORK/results.jsonl"
  fi
}
echo "== measuring: A, B, B, A (${SECONDS_PER_TEST}s each)" >&2
measure a 1; measure b 1; measure b 2; measure a 2

cp "$WORK/results.jsonl" "${BENCH_RESULTS:-/dev/null}" 2>/dev/null || true
python3 - "$WORK/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def mean(what, side, key):
    v = [r[key] for r in rows if r["what"] == what and r["side"] == side]
    return sum(v) / len(v)
print(f"{'measure (16 clients)':<24} {'A (before)':>11} {'B (after)':>11} {'B/A':>8}")
for what in ["log-metric", "create-run", "recommend"]:
    if not any(r["what"] == what for r in rows):
        continue
    a, b = mean(what, "a", "rps"), mean(what, "b", "rps")
    print(f"{what + ' req/s':<24} {a:>11.1f} {b:>11.1f} {b / a:>7.3f}x")
    a, b = mean(what, "a", "p99_ms"), mean(what, "b", "p99_ms")
    print(f"{what + ' p99 ms':<24} {a:>11.2f} {b:>11.2f} {b / a:>7.3f}x")
errors = {s: sum(r.get("errors", 0) for r in rows if r["side"] == s) for s in ["a", "b"]}
print(f"errors: A {errors['a']}, B {errors['b']}")
PY
