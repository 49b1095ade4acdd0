#!/usr/bin/env bash
# What authentication costs the hot paths, in one run on this machine: one
# Plinth with auth off and one with --auth (every request carrying a bearer
# API token), each measured for log-metric at 16 clients and the recommend
# endpoint (top-10, ALS, 10,000 items) at 16 clients; then the same with a
# member's token (a user who is no administrator, so every request passes the
# permission check). Measured in rounds (BENCH_ROUNDS, default 4), each
# round measuring the three in turn, the order reversed every other round
# (off, on, member, then member, on, off); a round's ratios compare its own
# measurements, and the table prints each ratio's median over the rounds
# with its range: throughput, and the server's own CPU time per request (its
# process's user + system time over the measurement, from /proc: what auth
# costs the server, whatever the load generator beside it costs this
# machine), and its user time alone (the server's own code, without the
# kernel's scheduling, which moves with how requests happen to coalesce).
# A single round on this 2-core machine moves by several percent
# either way; the median is the figure to read.
# Target: at most 5% throughput lost with auth on. Not a test.
#
#   bench/auth.sh                    # BENCH_SECONDS=10 per measurement, BENCH_ROUNDS=4
#   PLINTH_BIN=/path/to/plinth ...   # measure that binary instead of this checkout's
#   BENCH_PIN=1 bench/auth.sh        # servers on CPU 0, the load generator on CPU 1 (taskset): on a small
#                                    # machine the generator's own cost of sending a token otherwise counts
#                                    # against the server
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
SECONDS_PER_TEST="${BENCH_SECONDS:-10}"
cargo build --release --locked -p plinth-cli -p plinth-loadgen >&2
PLINTH="${PLINTH_BIN:-$CARGO_TARGET_DIR/release/plinth}"
LOADGEN="$CARGO_TARGET_DIR/release/plinth-loadgen"
source bench/lib.sh

python3 - "$WORK/data.tsv" <<'PY'
import random, sys
rng = random.Random(42)
weights = [1.0 / (i + 1) ** 0.8 for i in range(10000)]
with open(sys.argv[1], "w") as f:
    for u in range(20000):
        for i in set(rng.choices(range(10000), weights=weights, k=rng.randint(5, 80))):
            f.write(f"u{u}\titem{i}\n")
PY

declare -A URL TOKEN PID
for mode in off on; do
  port=$(free_port); URL[$mode]="http://127.0.0.1:$port"
  if [ "$mode" = on ]; then
    PLINTH_ADMIN_USER=bench PLINTH_ADMIN_PASSWORD=bench-password \
      "${SERVER_CPU[@]}" "$PLINTH" server --port "$port" --data-dir "$WORK/$mode" --auth 2>"$WORK/$mode.log" & PIDS+=($!)
  else
    "${SERVER_CPU[@]}" "$PLINTH" server --port "$port" --data-dir "$WORK/$mode" 2>"$WORK/$mode.log" & PIDS+=($!)
  fi
  PID[$mode]=$!
  wait_up "${URL[$mode]}/health"
  TOKEN[$mode]=""
  if [ "$mode" = on ]; then
    TOKEN[$mode]=$(curl -fs -u bench:bench-password -H 'content-type: application/json' -d '{"name": "bench"}' \
      "${URL[$mode]}/api/2.0/plinth/tokens/create" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
  fi
  PLINTH_TOKEN="${TOKEN[$mode]}" "$PLINTH" train recommender --data "$WORK/data.tsv" --algo als --factors 64 \
    --iterations 5 --max-eval-users 500 --register bench-recs --tracking-uri "${URL[$mode]}" --json >/dev/null
  auth=(); [ -n "${TOKEN[$mode]}" ] && auth=(-H "Authorization: Bearer ${TOKEN[$mode]}")
  curl -fs "${auth[@]}" -X POST "${URL[$mode]}/api/2.0/plinth/deployments/create" -H 'content-type: application/json' \
    -d '{"name": "bench", "variants": [{"name": "a", "model": "bench-recs/1"}]}' >/dev/null
done

# A member: a signed-in user who is no administrator, so every request goes through the permission check
# (their grants, cached; the run's experiment, remembered). Same server as "on".
URL[member]="${URL[on]}"; PID[member]="${PID[on]}"
curl -fs -u bench:bench-password -H 'content-type: application/json' \
  -d '{"username": "member", "password": "member-password"}' "${URL[on]}/api/2.0/mlflow/users/create" >/dev/null
TOKEN[member]=$(curl -fs -u member:member-password -H 'content-type: application/json' -d '{"name": "bench"}' \
  "${URL[on]}/api/2.0/plinth/tokens/create" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')

REC='{"user": "u{i}", "k": 10}'
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # the process's user + system time, in clock ticks
user_ticks() { awk '{print $14}' "/proc/$1/stat"; } # its user time alone: its own code, not the kernel's scheduling
run() { # mode round what loadgen-args...
  local mode=$1 round=$2 what=$3; shift 3
  local t0 u0 out t1 u1
  t0=$(cpu_ticks "${PID[$mode]}"); u0=$(user_ticks "${PID[$mode]}")
  out=$(BENCH_TOKEN="${TOKEN[$mode]}" "${CLIENT_CPU[@]}" "$LOADGEN" --url "${URL[$mode]}" "$@")
  t1=$(cpu_ticks "${PID[$mode]}"); u1=$(user_ticks "${PID[$mode]}")
  echo "$out" | sed "s/^{/{\"mode\": \"$mode\", \"round\": $round, \"what\": \"$what\", \"cpu_ticks\": $((t1 - t0)), \"user_ticks\": $((u1 - u0)), /" \
    >>"$WORK/results.jsonl"
}
measure() { # mode round
  local mode=$1 round=$2
  run "$mode" "$round" log-metric log-metric --concurrency 16 --seconds "$SECONDS_PER_TEST"
  run "$mode" "$round" recommend post --path /v1/deployments/bench/recommend --body "$REC" --vary 20000 \
    --concurrency 16 --seconds "$SECONDS_PER_TEST" --name recommend
}
ROUNDS="${BENCH_ROUNDS:-4}"
echo "== measuring: $ROUNDS rounds of off, on, member (every other round reversed; ${SECONDS_PER_TEST}s each)" >&2
for round in $(seq 1 "$ROUNDS"); do
  order=(off on member); [ $((round % 2)) -eq 0 ] && order=(member on off)
  for mode in "${order[@]}"; do measure "$mode" "$round"; done
done

cp "$WORK/results.jsonl" "${BENCH_RESULTS:-/dev/null}" 2>/dev/null || true
python3 - "$WORK/results.jsonl" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
tick = 1.0 / float(sys.argv[2])
for r in rows:
    r["cpu_us"] = r["cpu_ticks"] * tick * 1e6 / max(r["requests"], 1)
    r["user_us"] = r["user_ticks"] * tick * 1e6 / max(r["requests"], 1)
at = {(r["what"], r["mode"], r["round"]): r for r in rows}
rounds = sorted({r["round"] for r in rows})
def median(what, mode, key):
    return statistics.median(at[(what, mode, n)][key] for n in rounds)
def ratios(what, mode, key):
    return sorted(at[(what, mode, n)][key] / at[(what, "off", n)][key] for n in rounds)
def ratio(what, mode, key):
    v = ratios(what, mode, key)
    return f"{statistics.median(v):.3f}x ({v[0]:.3f}-{v[-1]:.3f})"
print(f"{len(rounds)} rounds; values are medians over the rounds, ratios the median of each round's ratio (its range)")
print(f"{'measure (16 clients)':<28} {'auth off':>9} {'on, admin':>10} {'on/off':>22} {'on, member':>11} {'member/off':>22}")
for what in ["log-metric", "recommend"]:
    for key, label, fmt in [("rps", "req/s", ".1f"), ("p99_ms", "p99 ms", ".2f"), ("cpu_us", "server CPU us/req", ".2f"),
                              ("user_us", "server user CPU us/req", ".2f")]:
        off, on, member = (median(what, m, key) for m in ["off", "on", "member"])
        print(f"{what + ' ' + label:<28} {off:>9{fmt}} {on:>10{fmt}} {ratio(what, 'on', key):>22} {member:>11{fmt}} "
              f"{ratio(what, 'member', key):>22}")
errors = {m: sum(r.get("errors", 0) for r in rows if r["mode"] == m) for m in ["off", "on", "member"]}
print(f"errors: off {errors['off']}, on {errors['on']}, member {errors['member']}")
PY
