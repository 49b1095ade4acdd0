#!/usr/bin/env bash
# ALS at scale: 20 million distinct synthetic interactions (1M users, 100k
# items, power-law popularity), 5% held out per user. Reports time per iteration and peak memory.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${PLINTH_CACHE:-$HOME/.cache/plinth}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
VENV="$CACHE/bench-venv"
[ -x "$VENV/bin/python" ] || { python3 -m venv "$VENV"; "$VENV/bin/pip" install -q -r bench/requirements-recommenders.txt; }
cargo build --release --locked -p plinth-cli >&2
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
N="${SCALE_N:-20000000}"; ITER="${SCALE_ITERATIONS:-5}"
"$VENV/bin/python" bench/scale.py "$WORK/synthetic.tsv" "$N" "${SCALE_USERS:-1000000}" "${SCALE_ITEMS:-100000}"
/usr/bin/time -v "$CARGO_TARGET_DIR/release/plinth" train recommender --data "$WORK/synthetic.tsv" --algo als \
  --factors 64 --iterations "$ITER" --split random:0.05 --max-eval-users 10000 --json --data-dir "$WORK/pd" >"$WORK/out.json" 2>"$WORK/time.txt" || { cat "$WORK/time.txt"; exit 1; }
python3 - "$WORK/out.json" "$WORK/time.txt" "$ITER" <<'PY'
import json, re, sys
out = json.loads(open(sys.argv[1]).read().splitlines()[-1])
t = open(sys.argv[2]).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", t).group(1)
it = int(sys.argv[3])
m = out["metrics"]
print(f"interactions (train) {out['data']['train_interactions']}, users {out['data']['users']}, items {out['data']['items']}")
print(f"ALS train: {m['train_seconds']:.1f} s for {it} iterations = {m['train_seconds'] / it:.2f} s/iteration (incl. per-iteration loss)")
print(f"peak memory {rss / 1024:.0f} MiB; whole command (load, split, train, evaluate 10k users, track) {wall}")
print(f"ndcg_at_10 {m['ndcg_at_10']:.4f} on {out['data']['evaluated_users']} users")
PY
