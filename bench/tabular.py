"""Plinth's GBDT against LightGBM (PyPI) on the same data, same rounds, leaves,
depth and learning rate, 1 and 2 threads: training time, time to predict
100,000 rows, test AUC or RMSE, and the ratios. Driven by bench/tabular.sh.
Reports; asserts nothing.

Shapes: breast cancer (correctness), then a sweep of synthetic sets, each
`ROWSxCOLUMNS` of BENCH_SHAPES as binary classification, and ROWS x 50 as
regression. The last line summarises the time ratio over the sweep (worst and
median), since a speed claim must hold on every shape, not on the best.

  python bench/tabular.py GBDT_BENCH_BINARY WORK_DIR [ROWS]
  BENCH_SHAPES=200000x30,1000000x50 python bench/tabular.py ...
"""

import json
import os
import subprocess
import sys
import time

import lightgbm as lgb
import numpy as np
from sklearn.datasets import load_breast_cancer, make_classification, make_regression
from sklearn.metrics import mean_squared_error, roc_auc_score
from sklearn.model_selection import train_test_split

bench, work = sys.argv[1], sys.argv[2]
rows = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
ROUNDS, LEAVES, DEPTH, LR = 100, 63, 6, 0.1

SHAPES = os.environ.get("BENCH_SHAPES", f"200000x30,{rows}x50,100000x200,2000000x10")


def shapes():
    """Each data set when it is used, so only one sweep shape is in memory."""
    yield "breast cancer", "binary", *load_breast_cancer(return_X_y=True)
    for shape in SHAPES.split(","):
        n, cols = (int(v) for v in shape.split("x"))
        informative = max(2, min(20, cols * 2 // 5))
        yield (f"classification {n:,}x{cols}", "binary",
               *make_classification(n_samples=n, n_features=cols, n_informative=informative, random_state=0))
    yield (f"regression {rows:,}x50", "regression",
           *make_regression(n_samples=rows, n_features=50, n_informative=30, noise=10.0, random_state=0))


ratios = []

print(f"{'data':32} {'thr':>3} {'lightgbm s':>10} {'plinth s':>9} {'time ratio':>10} "
      f"{'lgb predict':>11} {'plinth predict':>14} {'lgb quality':>12} {'plinth quality':>14}")
for name, task, X, y in shapes():
    Xtr, Xte, ytr, yte = train_test_split(X.astype(np.float64), y.astype(np.float64), test_size=0.2, random_state=0)
    paths = [os.path.join(work, f) for f in ("xtr", "ytr", "xte", "yte")]
    for arr, path in zip((Xtr, ytr, Xte, yte), paths):
        np.ascontiguousarray(arr).tofile(path)
    for threads in (1, 2):
        params = dict(n_estimators=ROUNDS, num_leaves=LEAVES, max_depth=DEPTH, learning_rate=LR, max_bin=255,
                      min_child_samples=20, n_jobs=threads, verbose=-1)
        model = lgb.LGBMClassifier(**params) if task == "binary" else lgb.LGBMRegressor(**params)
        t = time.perf_counter()
        model.fit(Xtr, ytr)
        lgb_train = time.perf_counter() - t
        timed = Xte[:100_000]
        t = time.perf_counter()
        model.predict_proba(timed) if task == "binary" else model.predict(timed)
        lgb_predict = time.perf_counter() - t
        if task == "binary":
            lgb_quality = roc_auc_score(yte, model.predict_proba(Xte)[:, 1])
        else:
            lgb_quality = mean_squared_error(yte, model.predict(Xte)) ** 0.5
        out = subprocess.run([bench, *paths, str(X.shape[1]), str(threads), task, str(ROUNDS), str(LEAVES),
                              str(DEPTH), str(LR)], check=True, capture_output=True, text=True, timeout=1800)
        p = json.loads(out.stdout.strip().splitlines()[-1])
        quality = p["auc"] if task == "binary" else p["rmse"]
        label = "auc" if task == "binary" else "rmse"
        print(f"{name:32} {threads:>3} {lgb_train:10.2f} {p['train_s']:9.2f} {p['train_s'] / lgb_train:9.2f}x "
              f"{lgb_predict:10.3f}s {p['predict_s']:13.3f}s {label} {lgb_quality:8.5f} {label} {quality:10.5f}")
        sys.stdout.flush()
        if name != "breast cancer":
            ratios.append((p["train_s"] / lgb_train, f"{name} thr={threads}"))

ratios.sort()
print(f"train time ratio over the sweep: median {ratios[len(ratios) // 2][0]:.2f}x, "
      f"worst {ratios[-1][0]:.2f}x ({ratios[-1][1]}), best {ratios[0][0]:.2f}x ({ratios[0][1]})")
