#!/usr/bin/env bash
# Time to analyse an online experiment, Plinth against the same analysis in
# Python (pyarrow reads the same Parquet segments, pandas joins, tea-tasting
# analyses), in one run on this machine: 10 million exposures and 50 million
# events (written by bench/loadgen's plinth-experiment-data through the
# server's own segment writer) for one metric — minutes watched (`play`,
# sum) in a 24-hour window after each unit's first exposure, CUPED on the
# day before, fixed horizon. Prints both times, the ratio and both answers.
# Targets (issue 15): under 5 s, and at least 10x faster than the Python reference. Not a test.
#
#   bench/analysis.sh                             # 2M units, 10M exposures, 50M events
#   BENCH_SCALE=0.1 bench/analysis.sh             # a tenth of that
#   PLINTH_BIN=/path/to/plinth ...                # measure that binary instead of this checkout's
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
SCALE="${BENCH_SCALE:-1}"
cargo build --release --locked -p plinth-cli -p plinth-loadgen >&2
PLINTH="${PLINTH_BIN:-$CARGO_TARGET_DIR/release/plinth}"
GEN="$CARGO_TARGET_DIR/release/plinth-experiment-data"
source bench/lib.sh
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/plinth"
VENV="$CACHE/analysis-venv"
ensure_venv "$VENV" bench/requirements-analysis.txt tea_tasting pandas pyarrow

PORT=$(free_port); URL="http://127.0.0.1:$PORT"
"$PLINTH" server --port "$PORT" --data-dir "$WORK/data" 2>"$WORK/server.log" & PIDS+=($!)
wait_up "$URL/health"
python3 -c 'print("".join(f"u{u}\titem{(u * 7 + i) % 50}\n" for u in range(100) for i in range(5)), end="")' >"$WORK/i.tsv"
for _ in 1 2; do
  "$PLINTH" train recommender --data "$WORK/i.tsv" --algo popularity --register bench-analysis --tracking-uri "$URL" \
    --json >/dev/null
done
curl -fs -X POST "$URL/api/2.0/plinth/deployments/create" -H 'content-type: application/json' \
  -d '{"name": "bench", "variants": [{"name": "a", "model": "bench-analysis/1", "weight": 50},
       {"name": "b", "model": "bench-analysis/2", "weight": 50}]}' >/dev/null

read -r UNITS EXPOSURES EVENTS < <(python3 -c "s=float('$SCALE'); print(int(2e6*s), int(1e7*s), int(5e7*s))")
echo "== writing $UNITS units, $EXPOSURES exposures, $EVENTS events" >&2
START=$(date +%s)
"$GEN" --dir "$WORK/data/exposures" --deployment bench --units "$UNITS" --exposures "$EXPOSURES" --events "$EVENTS" \
  >"$WORK/written.json"
echo "   written in $(( $(date +%s) - START )) s: $(cat "$WORK/written.json"); $(find "$WORK/data/exposures" -name '*.parquet' | wc -l) segments, $(du -sh "$WORK/data/exposures" | cut -f1)" >&2

Q="name=bench&event=play&aggregate=sum&window=24h&cuped=true&control=a"
echo "== Plinth: GET deployments/analysis (3 times)" >&2
for i in 1 2 3; do
  curl -fs -o "$WORK/plinth.json" -w '%{time_total}\n' "$URL/api/2.0/plinth/deployments/analysis?$Q" >>"$WORK/plinth.times"
done
echo "== Python: pyarrow + pandas + tea-tasting over the same segments" >&2
"$VENV/bin/python" - "$WORK/data/exposures" >"$WORK/python.json" <<'PY'
import json, sys, time
from pathlib import Path
import numpy as np, pandas as pd, pyarrow as pa, pyarrow.compute as pc, pyarrow.dataset as ds
import tea_tasting as tt

root = Path(sys.argv[1])
W = 24 * 3600 * 1000
t0 = time.perf_counter()
exp = ds.dataset(root / "bench", format="parquet").to_table(columns=["time_ms", "variant", "unit", "shadow"])
exp = exp.filter(pc.invert(exp["shadow"])).to_pandas()
first = exp.sort_values("time_ms", kind="stable").drop_duplicates("unit")[["unit", "time_ms", "variant"]]
first = first.rename(columns={"time_ms": "first"})
events = pa.concat_tables([
    ds.dataset(root / "~events" / part, format="parquet").to_table(
        columns=["time_ms", "unit", "value", "event_id"], filter=pc.field("kind") == "play")
    for part in ("bench", "~default")
]).to_pandas()
ev = events.merge(first[["unit", "first"]], on="unit")
d = ev["time_ms"] - ev["first"]
ev = ev[(d >= -W) & (d < W)]
ev = ev[ev["event_id"].isna() | ~ev.duplicated(["unit", "event_id"])]
d = ev["time_ms"] - ev["first"]
value = ev["value"].fillna(0.0)
per_unit = pd.DataFrame({"unit": ev["unit"], "post": value.where(d >= 0, 0.0), "pre": value.where(d < 0, 0.0)})
per_unit = per_unit.groupby("unit", sort=False).sum()
units = first.set_index("unit").join(per_unit).fillna({"post": 0.0, "pre": 0.0}).reset_index()
result = tt.Experiment(play=tt.Mean("post", covariate="pre")).analyze(units, control="a")
seconds = time.perf_counter() - t0
r = result["play"]
print(json.dumps({"seconds": seconds, "units": int(len(units)), "control_mean": r.control, "treatment_mean": r.treatment,
                  "effect": r.effect_size, "effect_ci": [r.effect_size_ci_lower, r.effect_size_ci_upper],
                  "rel_effect": r.rel_effect_size}))
PY
python3 - "$WORK/plinth.times" "$WORK/plinth.json" "$WORK/python.json" <<'PY'
import json, statistics, sys
times = [float(t) for t in open(sys.argv[1]).read().split()]
p = json.load(open(sys.argv[2])); py = json.load(open(sys.argv[3]))
a, b = p["variants"]
print(f"units {a['units'] + b['units']:,} (python {py['units']:,}); "
      f"exposures {a['exposures'] + b['exposures']:,}")
print(f"plinth: first {times[0]:.2f} s, median of {len(times)} {statistics.median(times):.2f} s "
      f"(target < 5 s); python reference {py['seconds']:.2f} s; ratio {py['seconds'] / statistics.median(times):.1f}x "
      f"(first run {py['seconds'] / times[0]:.1f}x; target >= 10x)")
# The CUPED-adjusted means on both lines (a variant's own `mean` is the plain one).
print(f"plinth: a {b['lift']['control_mean']:.6f}, b {b['lift']['treatment_mean']:.6f} (CUPED lift {b['lift']['absolute']:.6f} "
      f"[{b['lift']['absolute_ci_low']:.6f}, {b['lift']['absolute_ci_high']:.6f}], relative {b['lift']['relative']:.6f})")
print(f"python: a {py['control_mean']:.6f}, b {py['treatment_mean']:.6f} (CUPED lift {py['effect']:.6f} "
      f"[{py['effect_ci'][0]:.6f}, {py['effect_ci'][1]:.6f}], relative {py['rel_effect']:.6f})")
PY
