"""Models trained by Plinth load in Python with MLflow's own client:
`mlflow.pyfunc.load_model("models:/<name>@<alias>")` finds the `MLmodel`
Plinth writes, imports the loader shipped inside the model directory
(numpy and pandas only) and predicts what Plinth's server answers, to 1e-6:
recommenders (every engine, unknown users, seen items) and tabular models
(binary, multiclass, regression; numeric and categorical features, missing
values and unseen categories)."""

import json
import subprocess
import sys
import uuid

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

from conftest import PLINTH_BIN, deploy

TOL = 1e-6


def plinth(server, *args):
    out = subprocess.run([PLINTH_BIN, *args, "--tracking-uri", server.url], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return out




def load(server, ref):
    mlflow.set_tracking_uri(server.url)
    mlflow.set_registry_uri(server.url)
    return mlflow.pyfunc.load_model(f"models:/{ref}")


@pytest.fixture(scope="module")
def interactions(tmp_path_factory):
    rng = np.random.default_rng(7)
    rows = ["user,item,plays\n"]
    for u in range(150):
        group = u % 3
        for i in rng.choice(60, size=12, replace=False):
            item = group * 40 + int(i)
            rows.append(f"u{u},i{item},{int(rng.integers(1, 30))}\n")
    path = tmp_path_factory.mktemp("pyfunc") / "plays.csv"
    path.write_text("".join(rows))
    return path


@pytest.mark.parametrize("algo,extra", [
    ("als", ["--factors", "16", "--weight-transform", "log1p"]),
    ("bpr", ["--factors", "16"]),
    ("item-knn", ["--neighbors", "20"]),
    ("popularity", []),
])
def test_recommender_pyfunc_matches_the_server(server, interactions, algo, extra):
    model = f"rec-{algo}-{uuid.uuid4().hex[:6]}"
    plinth(server, "train", "recommender", "--data", str(interactions), "--algo", algo, "--weight-col", "plays",
           "--split", "none", "--register", model, "--alias", "champion", *extra)
    ref = f"{model}@champion"
    name = deploy(server, ref, "py")
    users = [f"u{u}" for u in range(0, 150, 7)] + ["never-seen"]
    for exclude_seen in [True, False]:
        r = requests.post(f"{server.url}/v1/deployments/{name}/recommend",
                          json={"users": users, "k": 10, "exclude_seen": exclude_seen}, timeout=30)
        assert r.status_code == 200, r.text
        served = {row["user"]: row for row in r.json()["results"]}
        pyfunc = load(server, ref)
        got = pyfunc.predict(pd.DataFrame({"user": users}), params={"k": 10, "exclude_seen": exclude_seen})
        assert list(got.columns) == ["user", "rank", "item", "score", "fallback"]
        for user in users:
            want = served[user]
            mine = got[got.user == user].sort_values("rank")
            assert len(mine) == len(want["items"]) == 10
            fallback = mine["fallback"].iloc[0]
            assert (None if pd.isna(fallback) else fallback) == want["fallback"], user
            for (item, score), w in zip(zip(mine["item"], mine["score"]), want["items"]):
                assert abs(score - w["score"]) <= TOL * max(1.0, abs(w["score"])), (user, item, score, w)
                # Items may only trade places where their scores tie.
                if item != w["item"]:
                    assert abs(score - w["score"]) <= TOL, (user, item, w)
            # Scoring the served (user, item) pairs gives the served scores.
            pairs = pd.DataFrame({"user": user, "item": [w["item"] for w in want["items"]]})
            scored = pyfunc.predict(pairs)
            for s, w in zip(scored["score"], want["items"]):
                assert abs(s - w["score"]) <= TOL * max(1.0, abs(w["score"])), (user, s, w)


def test_recommender_pyfunc_takes_plain_lists_and_integer_ids(server, tmp_path):
    data = tmp_path / "ints.tsv"
    data.write_text("".join(f"{u}\t{100 + (u + i) % 30}\n" for u in range(40) for i in range(6)))
    model = f"rec-int-{uuid.uuid4().hex[:6]}"
    plinth(server, "train", "recommender", "--data", str(data), "--algo", "als", "--factors", "8", "--split", "none",
           "--register", model, "--alias", "prod")
    pyfunc = load(server, f"{model}@prod")
    got = pyfunc.predict([3, 4], params={"k": 3})
    assert list(got["user"]) == [3, 3, 3, 4, 4, 4]
    assert got["fallback"].isna().all()
    name = deploy(server, f"{model}@prod", "py")
    r = requests.post(f"{server.url}/v1/deployments/{name}/recommend", json={"user": 3, "k": 3}, timeout=30)
    assert list(got[got.user == 3]["item"]) == [w["item"] for w in r.json()["items"]]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(11)
    n = 1200
    genre = rng.choice(["drama", "comedy", "horror", "docs"], size=n)
    budget = rng.normal(50, 20, size=n)
    runtime = rng.integers(60, 180, size=n).astype(float)
    lift = {"drama": 0.5, "comedy": 1.0, "horror": -0.5, "docs": -1.0}
    score = np.array([lift[g] for g in genre]) + (budget - 50) / 20 + (runtime - 120) / 60 + rng.normal(0, 0.5, n)
    frame = pd.DataFrame({
        "genre": genre,
        "budget": budget.round(3),
        "runtime": runtime,
        "hit": np.where(score > 0.3, "yes", "no"),
        "tier": np.digitize(score, [-0.7, 0.3, 1.2]).astype(str),
        "revenue": (score * 10 + 40).round(4),
    })
    frame.loc[rng.random(n) < 0.08, "budget"] = np.nan
    frame.loc[rng.random(n) < 0.05, "genre"] = None
    path = tmp_path_factory.mktemp("tab") / "titles.csv"
    frame.to_csv(path, index=False)
    return path, frame


def infer(server, name, frame):
    inputs = [
        {"name": "genre", "datatype": "BYTES", "shape": [len(frame)],
         "data": ["" if g is None or (isinstance(g, float) and np.isnan(g)) else g for g in frame["genre"]]},
        {"name": "budget", "datatype": "FP64", "shape": [len(frame)],
         "data": [None if np.isnan(b) else float(b) for b in frame["budget"]]},
        {"name": "runtime", "datatype": "FP64", "shape": [len(frame)], "data": [float(v) for v in frame["runtime"]]},
    ]
    r = requests.post(f"{server.url}/v2/models/{name}/infer", json={"inputs": inputs}, timeout=60)
    assert r.status_code == 200, r.text
    return {o["name"]: o for o in r.json()["outputs"]}


@pytest.mark.parametrize("task,target,algo", [
    ("binary", "hit", "gbdt"),
    ("binary", "hit", "linear"),
    ("multiclass", "tier", "gbdt"),
    ("multiclass", "tier", "linear"),
    ("regression", "revenue", "gbdt"),
    ("regression", "revenue", "linear"),
])
def test_tabular_pyfunc_matches_the_server(server, table, task, target, algo):
    path, frame = table
    model = f"tab-{task}-{algo}-{uuid.uuid4().hex[:6]}"
    others = [c for c in ["hit", "tier", "revenue"] if c != target]
    plinth(server, "train", "tabular", "--data", str(path), "--target", target, "--task", task, "--algo", algo,
           "--drop", ",".join(others), "--rounds", "40", "--register", model, "--alias", "champion")
    ref = f"{model}@champion"
    name = deploy(server, ref, "py")
    rows = frame.head(300).copy()
    rows.loc[rows.index[:5], "genre"] = "anime"  # unseen in training: missing, as the server treats it
    served = infer(server, name, rows)
    got = load(server, ref).predict(rows[["genre", "budget", "runtime"]])
    if task == "regression":
        np.testing.assert_allclose(got["prediction"], served["prediction"]["data"], rtol=0, atol=TOL)
    elif task == "binary":
        np.testing.assert_allclose(got["probability"], served["probability"]["data"], rtol=0, atol=TOL)
        assert list(got["label"]) == served["label"]["data"]
    else:
        classes = sorted(set(frame["tier"]))
        want = np.asarray(served["probabilities"]["data"]).reshape(len(rows), len(classes))
        mine = got[[f"probability_{c}" for c in classes]].to_numpy()
        np.testing.assert_allclose(mine, want, rtol=0, atol=TOL)
        assert list(got["label"]) == served["label"]["data"]


def test_the_loader_needs_only_numpy_and_pandas(server, table, tmp_path):
    """The model directory, downloaded, loads in a fresh interpreter that
    cannot import mlflow or anything of Plinth's."""
    path, frame = table
    model = f"tab-bare-{uuid.uuid4().hex[:6]}"
    plinth(server, "train", "tabular", "--data", str(path), "--target", "hit", "--task", "binary", "--drop",
           "tier,revenue", "--rounds", "10", "--register", model)
    mlflow.set_tracking_uri(server.url)
    local = mlflow.artifacts.download_artifacts(f"models:/{model}/1", dst_path=str(tmp_path))
    code = f"""
import sys, os, json
sys.modules['mlflow'] = None  # importing mlflow now fails
local = {local!r}
sys.path.insert(0, os.path.join(local, 'code'))
import plinth_pyfunc_v1 as loader
import pandas as pd
m = loader._load_pyfunc(local)
out = m.predict(pd.DataFrame({{'genre': ['drama', None], 'budget': [50.0, None], 'runtime': [120.0, 90.0]}}))
print(json.dumps(list(out['probability'])))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)) == 2
    mlmodel = open(f"{local}/MLmodel").read()
    assert "loader_module: plinth_pyfunc_v1" in mlmodel
    assert open(f"{local}/requirements.txt").read().split() == ["numpy", "pandas"]
