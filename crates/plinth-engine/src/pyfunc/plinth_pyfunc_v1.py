"""Loads a model trained by Plinth as an MLflow ``python_function`` model.

Plinth writes this file into every model it trains (``model/code/``) and
names it in the model's ``MLmodel``, so that

    mlflow.pyfunc.load_model("models:/<name>@<alias>").predict(...)

works with nothing but numpy and pandas installed: no Plinth package, no
server. It reads the files Plinth itself serves from (``plinth_model.json``
and the model file it names) and computes what Plinth's server answers.

Recommenders (``plinth-recommender``). Input: a DataFrame with a ``user``
column (or a list / Series of user ids). Params: ``k`` (default 10) and
``exclude_seen`` (default true). Output: one row per recommendation,
columns ``user``, ``rank`` (1 = best), ``item``, ``score`` and
``fallback`` ("popularity" for a user the model never saw, who gets the
most popular items, else None). With an ``item`` column as well, each
(user, item) pair is scored instead: the input comes back with ``score``
(NaN for an unknown item) and ``fallback``.

Tabular models (``plinth-tabular``). Input: a DataFrame with a column per
feature, named as in training (others are ignored; None/NaN is missing;
categories unseen in training are missing). Output: ``prediction``
(regression); ``probability`` of the positive class and ``label``
(binary); ``probability_<class>`` per class and ``label`` (multiclass).
"""

import json
import math
import os
import struct

import numpy as np
import pandas as pd

META_FILE = "plinth_model.json"
RECOMMENDER = "plinth-recommender"
TABULAR = "plinth-tabular"
MAGIC = b"PLINTHRM"
FORMAT_VERSION = 1
MISSING = {"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "?"}
# What counts as zero for `zero_missing` splits (LightGBM's kZeroThreshold).
ZERO = float(np.float32(1e-35))


def _load_pyfunc(path, model_config=None):
    with open(os.path.join(path, META_FILE), encoding="utf-8") as f:
        meta = json.load(f)
    flavor = meta.get("flavor")
    file = os.path.join(path, meta.get("file", "model.plinth"))
    if flavor == RECOMMENDER:
        return Recommender(file)
    if flavor == TABULAR:
        return Tabular(file)
    raise ValueError(f"{path}: not a Plinth model this loader knows (flavor {flavor!r})")


# ---------------------------------------------------------------- recommenders


def _read_recommender(file):
    with open(file, "rb") as f:
        data = f.read()
    if data[:8] != MAGIC:
        raise ValueError(f"{file}: not a Plinth recommender model")
    (version,) = struct.unpack_from("<I", data, 8)
    if version != FORMAT_VERSION:
        raise ValueError(f"{file}: model format version {version}; this loader reads {FORMAT_VERSION}")
    (length,) = struct.unpack_from("<Q", data, 12)
    header = json.loads(data[20 : 20 + length])
    at = 20 + length
    arrays = {}
    for a in header["arrays"]:
        name, size = a["name"], a["bytes"]
        dtype = "<u8" if name.endswith("_indptr") else "<u4" if name.endswith("_indices") else "<f4"
        if at + size > len(data):
            raise ValueError(f"{file}: truncated model file (array {name})")
        arrays[name] = np.frombuffer(data, dtype=dtype, count=size // np.dtype(dtype).itemsize, offset=at)
        at += size
    return header, arrays


class Recommender:
    def __init__(self, file):
        header, a = _read_recommender(file)
        self.engine = header["engine"]
        self.algo = header["algo"]
        self.user_ids = list(header["user_ids"])
        self.item_ids = list(header["item_ids"])
        self.users = {u: i for i, u in enumerate(self.user_ids)}
        self.items = {u: i for i, u in enumerate(self.item_ids)}
        self.seen_indptr = a["seen_indptr"].astype(np.int64)
        self.seen_indices = a["seen_indices"].astype(np.int64)
        self.seen_values = a.get("seen_values", np.ones(len(self.seen_indices), np.float32))
        self.popularity = a["popularity"]
        n_items, n_users = len(self.item_ids), len(self.user_ids)
        if self.engine == "factors":
            f = int(header["factors"])
            self.user_factors = a["user_factors"].reshape(n_users, f)
            self.item_factors = a["item_factors"].reshape(n_items, f)
        elif self.engine == "item_knn":
            self.sim_indptr = a["sim_indptr"].astype(np.int64)
            self.sim_indices = a["sim_indices"].astype(np.int64)
            self.sim_values = a["sim_values"]
        elif self.engine != "popularity":
            raise ValueError(f"{file}: unknown engine {self.engine!r}")

    def _seen(self, u):
        lo, hi = self.seen_indptr[u], self.seen_indptr[u + 1]
        return self.seen_indices[lo:hi], self.seen_values[lo:hi]

    def scores(self, u):
        """Every item's score for the user with index `u` (float32, as served)."""
        if self.engine == "factors":
            x = self.user_factors[u].astype(np.float64)
            return (self.item_factors.astype(np.float64) @ x).astype(np.float32)
        if self.engine == "item_knn":
            out = np.zeros(len(self.item_ids), np.float64)
            items, weights = self._seen(u)
            for i, w in zip(items, weights):
                lo, hi = self.sim_indptr[i], self.sim_indptr[i + 1]
                np.add.at(out, self.sim_indices[lo:hi], float(w) * self.sim_values[lo:hi].astype(np.float64))
            return out.astype(np.float32)
        return self.popularity.copy()

    def recommend(self, user, k=10, exclude_seen=True):
        """[(item id, score)] best first, and the fallback used (or None)."""
        u = self.users.get(str(user))
        scores = self.popularity.copy() if u is None else self.scores(u)
        skip = np.isnan(scores)
        if u is not None and exclude_seen:
            skip[self._seen(u)[0]] = True
        candidates = np.flatnonzero(~skip)
        # Best score first; equal scores by item position, as the server ranks.
        order = candidates[np.lexsort((candidates, -scores[candidates].astype(np.float64)))][:k]
        return [(self.item_ids[i], float(scores[i])) for i in order], None if u is not None else "popularity"

    def predict(self, model_input, params=None):
        params = params or {}
        k = int(params.get("k", 10))
        if k < 0:
            raise ValueError("k must be at least 0")
        exclude_seen = bool(params.get("exclude_seen", True))
        frame = _frame(model_input, "user")
        if "user" not in frame.columns:
            raise ValueError(f"the input needs a 'user' column (got {', '.join(map(str, frame.columns))})")
        if "item" in frame.columns:
            return self._score_pairs(frame)
        rows = []
        for user in frame["user"]:
            items, fallback = self.recommend(_id(user), k, exclude_seen)
            rows += [(user, rank, item, score, fallback) for rank, (item, score) in enumerate(items, 1)]
        return pd.DataFrame(rows, columns=["user", "rank", "item", "score", "fallback"])

    def _score_pairs(self, frame):
        out = frame.copy()
        cache, scores, fallbacks = {}, [], []
        for user, item in zip(frame["user"], frame["item"]):
            u = self.users.get(_id(user))
            if u not in cache:
                cache[u] = self.popularity if u is None else self.scores(u)
            i = self.items.get(_id(item))
            scores.append(math.nan if i is None else float(cache[u][i]))
            fallbacks.append("popularity" if u is None else None)
        out["score"] = scores
        out["fallback"] = fallbacks
        return out


def _id(v):
    """Ids may be strings or integers; both name the same id."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _frame(model_input, column):
    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, pd.Series):
        return model_input.to_frame(column)
    if isinstance(model_input, dict):
        return pd.DataFrame(model_input)
    return pd.DataFrame({column: list(np.asarray(model_input, dtype=object).ravel())})


# ---------------------------------------------------------------- tabular models


def _label(x):
    """How a number names a category: integers without `.0`."""
    if x == math.floor(x) and abs(x) < 1e15:
        return str(int(x))
    return repr(float(x))


def _missing(v):
    if v is None:
        return True
    if isinstance(v, (float, np.floating)):
        return math.isnan(v)
    return isinstance(v, str) and v.strip() in MISSING


class Tabular:
    def __init__(self, file):
        with open(file, encoding="utf-8") as f:
            doc = json.load(f)
        self.schema = doc["schema"]
        self.task = self.schema["task"]
        self.classes = self.schema["classes"]
        self.features = self.schema["features"]
        if "gbdt" in doc:
            self.model = _Gbdt(doc["gbdt"])
        elif "linear" in doc:
            self.model = _Linear(doc["linear"])
        else:
            raise ValueError(f"{file}: no model in it (expected 'gbdt' or 'linear')")

    def encode(self, frame):
        """The rows as the model's inputs: [rows, features], missing as NaN."""
        x = np.full((len(frame), len(self.features)), np.nan)
        for j, feature in enumerate(self.features):
            name = feature["name"]
            if name not in frame.columns:
                raise ValueError(f"column '{name}', a feature of the model, is missing")
            values = frame[name].tolist()
            if feature["kind"] == "numeric":
                for i, v in enumerate(values):
                    if _missing(v):
                        continue
                    try:
                        x[i, j] = float(v.strip() if isinstance(v, str) else v)
                    except (TypeError, ValueError):
                        raise ValueError(f"row {i + 1}, column '{name}': {v!r} is not a number") from None
            else:
                index = {level: k for k, level in enumerate(feature["levels"])}
                for i, v in enumerate(values):
                    if _missing(v):
                        continue
                    if isinstance(v, (bool, np.bool_)):
                        text = str(int(v))
                    elif isinstance(v, (int, float, np.integer, np.floating)):
                        text = _label(float(v))
                    else:
                        text = str(v).strip()
                    k = index.get(text)
                    if k is not None:
                        x[i, j] = k
        return x

    def predict(self, model_input, params=None):
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        p = self.model.predict(self.encode(frame))
        if self.task == "regression":
            return pd.DataFrame({"prediction": p[:, 0]}, index=frame.index)
        if self.task == "binary":
            labels = [self.classes[int(q >= 0.5)] for q in p[:, 0]]
            return pd.DataFrame({"probability": p[:, 0], "label": labels}, index=frame.index)
        out = pd.DataFrame({f"probability_{c}": p[:, k] for k, c in enumerate(self.classes)}, index=frame.index)
        out["label"] = [self.classes[int(k)] for k in np.argmax(p, axis=1)]
        return out


def _link(objective, raw):
    kind = objective["type"]
    if kind == "logistic":
        return 1.0 / (1.0 + np.exp(-raw))
    if kind == "softmax":
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return raw


class _Gbdt:
    def __init__(self, doc):
        self.objective = doc["objective"]
        self.outputs = int(self.objective.get("classes", 1)) if self.objective["type"] == "softmax" else 1
        self.base = np.asarray(doc["base"], dtype=np.float64)
        self.trees = [self._arrays(t["nodes"]) for t in doc["trees"]]

    @staticmethod
    def _arrays(nodes):
        n = len(nodes)
        t = {
            "leaf": np.zeros(n, bool),
            "value": np.zeros(n),
            "feature": np.zeros(n, np.int64),
            "threshold": np.zeros(n),
            "missing_left": np.zeros(n, bool),
            "zero_missing": np.zeros(n, bool),
            "left": np.zeros(n, np.int64),
            "right": np.zeros(n, np.int64),
        }
        for i, node in enumerate(nodes):
            if node["node"] == "leaf":
                t["leaf"][i], t["value"][i] = True, node["value"]
            else:
                threshold = node["threshold"]
                t["feature"][i] = node["feature"]
                t["threshold"][i] = math.inf if threshold is None else threshold
                t["missing_left"][i] = node["missing_left"]
                t["zero_missing"][i] = node.get("zero_missing", False)
                t["left"][i], t["right"][i] = node["left"], node["right"]
        return t

    def predict(self, x):
        rows = x.shape[0]
        raw = np.tile(self.base, (rows, 1))
        every = np.arange(rows)
        for r, t in enumerate(self.trees):
            at = np.zeros(rows, np.int64)
            active = ~t["leaf"][at]
            while active.any():
                i, node = every[active], at[active]
                v = x[i, t["feature"][node]]
                missing = np.isnan(v) | (t["zero_missing"][node] & (np.abs(v) <= ZERO))
                left = np.where(missing, t["missing_left"][node], v <= t["threshold"][node])
                at[i] = np.where(left, t["left"][node], t["right"][node])
                active = ~t["leaf"][at]
            raw[:, r % self.outputs] += t["value"][at]
        return _link(self.objective, raw)


class _Linear:
    def __init__(self, doc):
        self.objective = doc["objective"]
        self.inputs = doc["inputs"]
        self.width = int(doc["width"])
        outputs = int(self.objective.get("classes", 1)) if self.objective["type"] == "softmax" else 1
        self.coefficients = np.asarray(doc["coefficients"], dtype=np.float64).reshape(outputs, self.width + 1)

    def design(self, x):
        z = np.zeros((x.shape[0], self.width))
        at = 0
        for j, input in enumerate(self.inputs):
            v = x[:, j]
            if input["kind"] == "numeric":
                z[:, at] = np.where(np.isnan(v), 0.0, (v - input["mean"]) / input["scale"])
                at += 1
            else:
                levels = int(input["levels"])
                ok = ~np.isnan(v) & (v >= 0) & (v < levels)
                rows = np.flatnonzero(ok)
                z[rows, at + v[rows].astype(np.int64)] = 1.0
                at += levels
        return z

    def predict(self, x):
        z = self.design(x)
        raw = z @ self.coefficients[:, :-1].T + self.coefficients[:, -1]
        return _link(self.objective, raw)
