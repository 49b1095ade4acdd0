"""Writes a synthetic implicit-feedback file for the ALS scale run: N distinct
(user, item) interactions, U users, I items, power-law item popularity and
user activity (seeded). Usage: scale.py OUT.tsv [N U I]."""

import sys

import numpy as np

out = sys.argv[1]
n, n_users, n_items = (int(x) for x in (sys.argv[2:5] if len(sys.argv) > 4 else (20_000_000, 1_000_000, 100_000)))
rng = np.random.default_rng(42)


def power_law(size, n, exponent):
    # Inverse-CDF sampling of a bounded power law over ranks 1..n, shuffled ids.
    u = rng.random(size)
    ranks = np.floor(n ** u ** exponent).astype(np.int64) - 1
    ranks = np.clip(ranks, 0, n - 1)
    return rng.permutation(n)[ranks]


# Oversample, keep distinct pairs, then N of them in random order.
m = int(n * 1.8)
keys = np.unique(power_law(m, n_users, 0.6) * n_items + power_law(m, n_items, 1.5))
while len(keys) < n:
    more = power_law(n, n_users, 0.6) * n_items + power_law(n, n_items, 1.5)
    keys = np.unique(np.concatenate([keys, more]))
keys = rng.permutation(keys)[:n]
users, items = keys // n_items, keys % n_items
with open(out, "w") as f:
    chunk = 1_000_000
    for start in range(0, n, chunk):
        block = np.stack([users[start:start + chunk], items[start:start + chunk]], axis=1)
        f.write("\n".join(f"{u}\t{i}" for u, i in block.tolist()))
        f.write("\n")
print(f"wrote {n} interactions to {out}", file=sys.stderr)
