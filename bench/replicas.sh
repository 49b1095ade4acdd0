#!/usr/bin/env bash
# Plinth at scale, side by side on this machine, in one run, with one load
# generator (bench/loadgen), over a throwaway PostgreSQL (scripts/pg.sh):
#   (1) `mlflow server` on PostgreSQL (psycopg 3) vs Plinth on the same
#       PostgreSQL: log-metric at 16 clients, log-batch of 1000 metrics, and
#       search over seeded runs (Plinth: BENCH_RUNS, 100,000 by default;
#       MLflow: BENCH_MLFLOW_RUNS, 1,000 — it seeds at a few dozen requests/s);
#   (2) Plinth on PostgreSQL: one replica directly vs three replicas behind
#       nginx (round-robin), log-metric at 16 clients. On a 2-core machine this
#       shows the balancer's and the replicas' overhead, not scaling: all
#       replicas, nginx, PostgreSQL and the load share the same two cores.
# Prints each figure and the ratio. Not a test: it asserts nothing.
#
#   bench/replicas.sh
#   BENCH_SECONDS=10 BENCH_RUNS=100000 BENCH_MLFLOW_RUNS=1000 bench/replicas.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${PLINTH_CACHE:-$HOME/.cache/plinth}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
SECONDS_PER_TEST="${BENCH_SECONDS:-10}"
RUNS="${BENCH_RUNS:-100000}"
MLFLOW_RUNS="${BENCH_MLFLOW_RUNS:-1000}"
VENV="$CACHE/replicas-venv"
NGINX="${PLINTH_NGINX:-$(command -v nginx || echo "$CACHE/tools/nginx/usr/sbin/nginx")}"

cargo build --release --locked -p plinth-cli -p plinth-loadgen >&2
PLINTH="$CARGO_TARGET_DIR/release/plinth"
LOADGEN="$CARGO_TARGET_DIR/release/plinth-loadgen"
source bench/lib.sh

# MLflow's server with the PostgreSQL driver its SQLAlchemy loads for postgresql:// URIs.
ensure_venv "$VENV" bench/requirements-replicas.txt mlflow psycopg
[ -x "$NGINX" ] || { echo "nginx not found (scripts/test.sh unpacks it into $CACHE/tools)" >&2; exit 1; }

PG_URL="$(scripts/pg.sh start "$WORK/pg")"
trap 'stop_all; scripts/pg.sh stop "$WORK/pg"; cleanup' EXIT
BASE="${PG_URL%/*}"
for db in plinth_bench mlflow_bench plinth_lb; do
  psql "$PG_URL" -qc "CREATE DATABASE $db"
done

measure() { # file url args...
  local file=$1 url=$2; shift 2
  timeout 3600 "$LOADGEN" --url "$url" "$@" | tee -a "$WORK/$file.jsonl" >&2
}
start_plinth() { # port db extra...
  local port=$1 db=$2; shift 2
  "$PLINTH" server --port "$port" --data-dir "$WORK/plinth-data" --store "$BASE/$db" "$@" \
    >>"$WORK/plinth-$port.log" 2>&1 &
  PIDS+=($!)
  timeout 120 bash -c "$(declare -f wait_up); wait_up http://127.0.0.1:$port/health"
}
stop_all() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}

# (1) Each server gets the machine (and the database) to itself.
for target in plinth mlflow; do
  port=$(free_port); url="http://127.0.0.1:$port"
  if [ "$target" = plinth ]; then
    start_plinth "$port" plinth_bench
    runs=$RUNS
  else
    "$VENV/bin/mlflow" server --backend-store-uri "$BASE/mlflow_bench" --artifacts-destination "$WORK/mlflow-artifacts" \
      --host 127.0.0.1 --port "$port" >"$WORK/mlflow.log" 2>&1 &
    PIDS+=($!)
    timeout 300 bash -c "$(declare -f wait_up); wait_up $url/health"
    runs=$MLFLOW_RUNS
  fi
  sleep 3
  echo "== $target on PostgreSQL: log-metric, 16 clients, ${SECONDS_PER_TEST}s" >&2
  measure "$target" "$url" log-metric --concurrency 16 --seconds "$SECONDS_PER_TEST"
  echo "== $target on PostgreSQL: log-batch of 1000 metrics" >&2
  measure "$target" "$url" log-batch --size 1000 --requests "${BENCH_BATCHES:-30}"
  echo "== $target on PostgreSQL: seeding $runs runs" >&2
  seed=$(timeout 3600 "$LOADGEN" --url "$url" seed --runs "$runs" --concurrency 16)
  echo "$seed" | tee -a "$WORK/$target.jsonl" >&2
  exp=$(echo "$seed" | python3 -c 'import json,sys; print(json.load(sys.stdin)["experiment_id"])')
  echo "== $target on PostgreSQL: search-runs over $runs runs" >&2
  measure "$target" "$url" search --experiment-id "$exp" --repeat "${BENCH_SEARCHES:-30}"
  stop_all
done

# (2) One replica directly, then three behind nginx.
port=$(free_port)
start_plinth "$port" plinth_lb
echo "== one replica, direct: log-metric, 16 clients" >&2
measure direct "http://127.0.0.1:$port" log-metric --concurrency 16 --seconds "$SECONDS_PER_TEST"
upstreams="        server 127.0.0.1:$port;"
for _ in 1 2; do
  p=$(free_port)
  start_plinth "$p" plinth_lb
  upstreams="$upstreams
        server 127.0.0.1:$p;"
done
lb=$(free_port)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    upstream plinth {
$upstreams
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$lb;
        location / {
            proxy_pass http://plinth;
            proxy_http_version 1.1;
            proxy_set_header Host \$http_host;
            proxy_set_header Connection "";
        }
    }
}
EOF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
PIDS+=($!)
timeout 60 bash -c "$(declare -f wait_up); wait_up http://127.0.0.1:$lb/health"
echo "== three replicas behind nginx: log-metric, 16 clients" >&2
measure nginx "http://127.0.0.1:$lb" log-metric --concurrency 16 --seconds "$SECONDS_PER_TEST"
stop_all

python3 - "$WORK" "$RUNS" "$MLFLOW_RUNS" <<'PY'
import json, sys
work, runs, mruns = sys.argv[1], sys.argv[2], sys.argv[3]
def load(name):
    return {d["bench"]: d for d in map(json.loads, open(f"{work}/{name}.jsonl"))}
p, m, d, n = load("plinth"), load("mlflow"), load("direct"), load("nginx")
print(f"{'measure (both on PostgreSQL)':46} {'plinth':>12} {'mlflow':>12} {'plinth advantage':>18}")
rows = [
    ("log-metric req/s, 16 clients", p["log_metric"]["rps"], m["log_metric"]["rps"], True),
    ("log-metric p99 ms, 16 clients", p["log_metric"]["p99_ms"], m["log_metric"]["p99_ms"], False),
    ("log-batch 1000 metrics, p50 ms", p["log_batch"]["p50_ms"], m["log_batch"]["p50_ms"], False),
]
for name, pv, mv, hb in rows:
    print(f"{name:46} {pv:12.2f} {mv:12.2f} {(pv / mv if hb else mv / pv):17.1f}x")
print(f"{f'search-runs p50 ms (plinth {runs} runs, mlflow {mruns})':46} {p['search_runs']['p50_ms']:12.2f} "
      f"{m['search_runs']['p50_ms']:12.2f} {'(sizes differ)':>18}")
print(f"{f'seed runs/s (plinth {runs}, mlflow {mruns})':46} {int(runs) / p['seed']['seconds']:12.1f} "
      f"{int(mruns) / m['seed']['seconds']:12.1f}")
print()
print(f"{'plinth on PostgreSQL, log-metric, 16 clients':46} {'req/s':>12} {'p99 ms':>12} {'vs direct':>18}")
for name, r in [("one replica, direct", d), ("three replicas behind nginx", n)]:
    print(f"{name:46} {r['log_metric']['rps']:12.1f} {r['log_metric']['p99_ms']:12.2f} "
          f"{r['log_metric']['rps'] / d['log_metric']['rps']:17.2f}x")
print(f"errors: plinth {p['log_metric']['errors']}, mlflow {m['log_metric']['errors']}, direct "
      f"{d['log_metric']['errors']}, nginx {n['log_metric']['errors']}")
PY
