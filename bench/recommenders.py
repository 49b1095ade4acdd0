"""Plinth's recommenders vs the `implicit` library, side by side on exactly the
same split: writes a per-user random 80/20 split (seed 42, every rating a
positive) to train/test files, trains both on them with the same
hyperparameters on 1 and on 2 threads, and prints nDCG@10, training time and
the ratios. Usage: recommenders.py PLINTH_BIN DATASET_DIR... (ml-100k, ml-latest-small).

Besides the real data sets, a sweep of synthetic shapes (BENCH_SYNTHETIC,
`USERSxITEMSxINTERACTIONS`, comma-separated; empty for none): users in taste
clusters, Zipf item popularity, log-normal activity, so shapes differ in
size and density but not in kind. BPR runs BENCH_SYNTHETIC_BPR_ITERS epochs
there (default 100) to keep the sweep short. BENCH_REPEAT=N takes each
time as the median of N runs, alternating the two libraries. The last lines summarise each
engine's time ratio over every data set and thread count: a speed claim must
hold on every shape, not on the best one."""

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.sparse as sp

PLINTH = sys.argv[1]
DATASETS = sys.argv[2:]
FACTORS, REG, ALPHA, ITERS = 64, 0.05, 1.0, 15
# BPR and kNN get the same settings in both libraries. BPR: implicit's default
# learning rate (0.01) and 100 epochs leave both far from converged on these
# data; 0.05 and 500 epochs is what both need to beat popularity clearly.
BPR_LR, BPR_REG, BPR_ITERS = 0.05, 0.01, 500
# implicit's item-item kNN keeps the item itself among its K neighbours, so it
# gets K + 1 for the same 20 real neighbours.
NEIGHBORS = 20
ALGOS = os.environ.get("BENCH_ALGOS", "als,als-cholesky,item-knn,bpr").split(",")
SYNTHETIC = os.environ.get("BENCH_SYNTHETIC", "6000x3700x1000000,50000x20000x1000000,2000x500x300000")
SYNTHETIC_BPR_ITERS = int(os.environ.get("BENCH_SYNTHETIC_BPR_ITERS", "100"))
# Each time is the median of REPEAT runs (this machine is noisy; 3 for figures to report).
REPEAT = int(os.environ.get("BENCH_REPEAT", "1"))


def median(xs):
    return sorted(xs)[len(xs) // 2]


def synthetic(users, items, interactions, seed=0):
    """(user, item, 0) rows of the given shape: 32 taste clusters, 70% of a
    user's draws from their cluster, Zipf(0.8) popularity within and across
    clusters, each user's distinct items drawn until their activity is met."""
    rng = np.random.default_rng(seed)
    clusters = 32
    pop = 1.0 / np.arange(1, items + 1) ** 0.8
    rng.shuffle(pop)
    item_cluster = rng.integers(0, clusters, items)
    cdf_all = np.cumsum(pop) / pop.sum()
    cdf_cluster = []
    for c in range(clusters):
        w = np.where(item_cluster == c, pop, 0.0)
        cdf_cluster.append(np.cumsum(w) / w.sum())
    activity = rng.lognormal(0.0, 1.0, users)
    counts = np.clip(np.round(activity / activity.sum() * interactions), 2, items // 2).astype(int)
    user_cluster = rng.integers(0, clusters, users)
    rows = []
    for u in range(users):
        n, picked = counts[u], np.empty(0, dtype=np.int64)
        for _ in range(100):  # draw until the user has n distinct items
            want = 2 * (n - len(picked)) + 8
            inside = rng.binomial(want, 0.7)
            draws = np.concatenate([np.searchsorted(cdf_cluster[user_cluster[u]], rng.random(inside)),
                                    np.searchsorted(cdf_all, rng.random(want - inside))])
            picked = np.unique(np.concatenate([picked, np.minimum(draws, items - 1)]))
            if len(picked) >= n:
                break
        picked = rng.permutation(picked)[:n]
        rows.extend((f"u{u}", f"i{i}", 0) for i in np.sort(picked))
    return rows


def load(path):
    rows = []
    if path.endswith("u.data"):
        for line in open(path):
            u, i, r, t = line.split("\t")
            rows.append((u, i, int(t)))
    else:
        with open(path) as f:
            next(f)
            for line in f:
                u, i, r, t = line.strip().split(",")
                rows.append((u, i, int(t)))
    return rows


def split(rows, seed=42, frac=0.2):
    rng = np.random.default_rng(seed)
    by_user = {}
    for u, i, t in rows:
        by_user.setdefault(u, {})[i] = t
    train, test = [], []
    for u in sorted(by_user):
        items = sorted(by_user[u])
        n = len(items)
        held = min(int(round(n * frac)), n - 1)
        order = rng.permutation(n)
        test_idx = set(order[:held].tolist())
        for k, i in enumerate(items):
            (test if k in test_idx else train).append((u, i))
    return train, test


def write(path, pairs):
    with open(path, "w") as f:
        for u, i in pairs:
            f.write(f"{u}\t{i}\n")


def plinth(train_path, test_path, algo, threads, workdir):
    solver = "cholesky" if algo == "als-cholesky" else "cg"
    algo = "als" if algo.startswith("als") else algo
    cmd = [PLINTH, "train", "recommender", "--data", train_path, "--test-data", test_path, "--algo", algo,
           "--threads", str(threads), "--json", "--data-dir", os.path.join(workdir, "plinth-data"),
           "--experiment", "bench-recommenders"]
    if algo == "als":
        cmd += ["--factors", str(FACTORS), "--regularization", str(REG), "--alpha", str(ALPHA), "--iterations", str(ITERS),
                "--solver", solver]
    if algo == "bpr":
        cmd += ["--factors", str(FACTORS), "--iterations", str(BPR_ITERS), "--learning-rate", str(BPR_LR),
                "--regularization", str(BPR_REG)]
    if algo == "item-knn":
        cmd += ["--neighbors", str(NEIGHBORS)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=3600).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return result["metrics"]["ndcg_at_10"], result["metrics"]["train_seconds"]


def implicit_run(train_pairs, test_pairs, algo, threads):
    from implicit.als import AlternatingLeastSquares
    from implicit.bpr import BayesianPersonalizedRanking
    from implicit.evaluation import ndcg_at_k
    from implicit.nearest_neighbours import CosineRecommender
    from threadpoolctl import threadpool_limits

    users = {u: n for n, u in enumerate(sorted({u for u, _ in train_pairs} | {u for u, _ in test_pairs}))}
    items = {i: n for n, i in enumerate(sorted({i for _, i in train_pairs} | {i for _, i in test_pairs}))}

    def matrix(pairs):
        r = [users[u] for u, _ in pairs]
        c = [items[i] for _, i in pairs]
        return sp.csr_matrix((np.ones(len(pairs), dtype=np.float32), (r, c)), shape=(len(users), len(items)))

    train, test = matrix(train_pairs), matrix(test_pairs)
    if algo.startswith("als"):
        model = AlternatingLeastSquares(factors=FACTORS, regularization=REG, alpha=ALPHA, iterations=ITERS,
                                        use_cg=algo == "als", num_threads=threads, random_state=42,
                                        calculate_training_loss=False)
    elif algo == "bpr":
        model = BayesianPersonalizedRanking(factors=FACTORS, iterations=BPR_ITERS, learning_rate=BPR_LR,
                                            regularization=BPR_REG, num_threads=threads, random_state=42)
    elif algo == "item-knn":
        model = CosineRecommender(K=NEIGHBORS + 1, num_threads=threads)
    else:
        return None, None
    with threadpool_limits(limits=threads):
        t = time.perf_counter()
        model.fit(train, show_progress=False)
        seconds = time.perf_counter() - t
        ndcg = ndcg_at_k(model, train, test, K=10, show_progress=False, num_threads=threads)
    return ndcg, seconds


def sets(real_bpr_iters=BPR_ITERS):
    for ds in DATASETS:
        path = os.path.join(ds, "u.data") if os.path.exists(os.path.join(ds, "u.data")) else os.path.join(ds, "ratings.csv")
        yield os.path.basename(ds), load(path), real_bpr_iters
    for shape in filter(None, SYNTHETIC.split(",")):
        users, items, interactions = (int(v) for v in shape.split("x"))
        yield f"synth {shape}", synthetic(users, items, interactions), SYNTHETIC_BPR_ITERS


def main():
    global BPR_ITERS
    print(f"{'dataset':26} {'algo':12} {'thr':>3} {'plinth ndcg':>11} {'implicit':>9} {'diff':>7} "
          f"{'plinth s':>9} {'implicit s':>10} {'time ratio':>10}")
    ratios = {}
    for name, rows, bpr_iters in sets():
        BPR_ITERS = bpr_iters
        train_pairs, test_pairs = split(rows)
        users, items = len({u for u, _, _ in rows}), len({i for _, i, _ in rows})
        print(f"# {name}: {users:,} users, {items:,} items, {len(rows):,} interactions "
              f"(density {len(rows) / (users * items):.4f}), BPR {bpr_iters} epochs")
        with tempfile.TemporaryDirectory() as work:
            train_path, test_path = os.path.join(work, "train.tsv"), os.path.join(work, "test.tsv")
            write(train_path, train_pairs)
            write(test_path, test_pairs)
            pop, _ = plinth(train_path, test_path, "popularity", 1, work)
            print(f"{name:26} {'popularity':12} {1:>3} {pop:11.4f}")
            for algo in ALGOS:
                for threads in [1, 2]:
                    # Alternate the two; the median time of REPEAT runs each.
                    runs = [(plinth(train_path, test_path, algo, threads, work),
                             implicit_run(train_pairs, test_pairs, algo, threads)) for _ in range(REPEAT)]
                    pn, ps = runs[0][0][0], median([r[0][1] for r in runs])
                    inn, ins = runs[0][1][0], median([r[1][1] for r in runs])
                    ratios.setdefault(algo, []).append((ps / ins, f"{name} thr={threads}"))
                    print(f"{name:26} {algo:12} {threads:>3} {pn:11.4f} {inn:9.4f} {pn - inn:+7.4f} "
                          f"{ps:9.3f} {ins:10.3f} {ps / ins:9.2f}x   (vs popularity {pn / pop:.2f}x)")
                    sys.stdout.flush()
    print("time ratio (plinth / implicit) over every data set and thread count:")
    for algo, rs in ratios.items():
        rs.sort()
        print(f"  {algo:12} median {rs[len(rs) // 2][0]:.2f}x  worst {rs[-1][0]:.2f}x ({rs[-1][1]})  "
              f"best {rs[0][0]:.2f}x ({rs[0][1]})")


if __name__ == "__main__":
    main()
