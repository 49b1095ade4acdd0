"""Seeds one experiment with many runs (default 100,000; each logs 10 params
and 20 of 200 distinct metric keys) through Plinth's REST API, then times the
web UI's pages as a browser would fetch them: the runs page (50 rows; default
order, sorted by a metric, filtered by a metric and a param) and the compare
page for 200 runs. Reports the median and 95th percentile of the server's
answer time (loopback, so the time is the server's). Reports; asserts nothing.

  python bench/ui.py URL [RUNS]
"""

import concurrent.futures as cf
import random
import statistics
import sys
import time
import urllib.parse

import requests

url = sys.argv[1]
n_runs = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
KEYS, PER_RUN, REPEATS = 200, 20, 20
session = requests.Session()


def post(path, body):
    r = session.post(url + path, json=body, timeout=60)
    r.raise_for_status()
    return r.json()


exp = post("/api/2.0/mlflow/experiments/create", {"name": f"ui-bench-{int(time.time())}"})["experiment_id"]


def seed(i):
    s = requests.Session()
    rng = random.Random(i)
    run = s.post(url + "/api/2.0/mlflow/runs/create",
                 json={"experiment_id": exp, "run_name": f"run-{i}", "start_time": 1_700_000_000_000 + i},
                 timeout=60).json()["run"]["info"]["run_id"]
    keys = rng.sample(range(KEYS), PER_RUN)
    metrics = [{"key": f"m{k:03d}", "value": rng.random(), "timestamp": 1, "step": 0} for k in keys]
    params = [{"key": f"p{j}", "value": str(rng.randint(0, 50))} for j in range(9)]
    params.append({"key": "algo", "value": rng.choice(["als", "bpr", "knn", "pop"])})
    s.post(url + "/api/2.0/mlflow/runs/log-batch", json={"run_id": run, "metrics": metrics, "params": params},
           timeout=60).raise_for_status()
    return run


t = time.perf_counter()
run_ids = []
with cf.ThreadPoolExecutor(16) as pool:
    for run_id in pool.map(seed, range(n_runs), chunksize=64):
        run_ids.append(run_id)
        if len(run_ids) % 10_000 == 0:
            print(f"  seeded {len(run_ids):,} of {n_runs:,} runs ({time.perf_counter() - t:.0f} s)", file=sys.stderr,
                  flush=True)
print(f"seeded {n_runs:,} runs x ({PER_RUN} of {KEYS} metric keys, 10 params) in {time.perf_counter() - t:.0f} s")


def timed(path):
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        r = session.get(url + path, timeout=120)
        times.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], len(r.content)


def runs_page(**q):
    return f"/ui/experiments/{exp}?" + urllib.parse.urlencode({"size": 50, **q})


cases = [
    ("runs page, newest first", runs_page()),
    ("runs page, sorted by metric m007", runs_page(order="metrics.m007 DESC")),
    ("runs page, filter m007 > 0.9 and algo = 'als'", runs_page(filter="metrics.m007 > 0.9 and params.algo = 'als'",
                                                                 order="metrics.m007 DESC")),
    ("runs page, page 100 (offset 4,950)", runs_page(offset=4950)),
    ("compare 200 runs", "/ui/compare?" + urllib.parse.urlencode([("run", r) for r in run_ids[:200]])),
]
print(f"{'page':52} {'p50 ms':>8} {'p95 ms':>8} {'KiB':>7}")
for name, path in cases:
    p50, p95, size = timed(path)
    print(f"{name:52} {p50:8.1f} {p95:8.1f} {size / 1024:7.0f}")
