"""LightGBM boosters logged with `mlflow.lightgbm.log_model` are imported
into Plinth's own trees and served natively (no Python, no ONNX): the
predictions must equal LightGBM's own to 1e-6, missing values and zeros
included, for binary, multiclass and regression models."""

import uuid

import lightgbm as lgb
import mlflow
import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from sklearn.datasets import make_classification, make_regression

from conftest import deploy

N_FEATURES = 12


def with_gaps(X, seed):
    """A tenth of the values missing and a tenth exactly zero."""
    rng = np.random.default_rng(seed)
    X = X.copy()
    X[rng.random(X.shape) < 0.1] = np.nan
    X[rng.random(X.shape) < 0.1] = 0.0
    return X


def register_booster(booster, name):
    mlflow.set_experiment("lightgbm-serving")
    with mlflow.start_run():
        info = mlflow.lightgbm.log_model(booster, name="model", registered_model_name=name)
    assert str(info.registered_model_version) == "1"
    return f"{name}/1"




def served(server, name, X, outputs):
    """One `features` matrix as a binary FP64 tensor (it carries NaN)."""
    with httpclient.InferenceServerClient(server.url.removeprefix("http://"), connection_timeout=30,
                                          network_timeout=30) as c:
        t = httpclient.InferInput("features", list(X.shape), "FP64")
        t.set_data_from_numpy(X.astype(np.float64), binary_data=True)
        result = c.infer(name, [t], outputs=[httpclient.InferRequestedOutput(o, binary_data=True) for o in outputs])
        return [result.as_numpy(o) for o in outputs]


def train(X, y, **params):
    base = dict(num_leaves=15, learning_rate=0.1, verbose=-1, seed=0)
    return lgb.train({**base, **params}, lgb.Dataset(X, y), num_boost_round=60)


def test_binary_booster_serves_lightgbm_probabilities(server):
    X, y = make_classification(n_samples=3000, n_features=N_FEATURES, random_state=3)
    X = with_gaps(X, 1)
    booster = train(X[:2500], y[:2500], objective="binary")
    name = deploy(server, register_booster(booster, f"lgb-bin-{uuid.uuid4().hex[:6]}"), "lgb")
    meta = requests.get(f"{server.url}/v2/models/{name}", timeout=30).json()
    assert meta["parameters"]["feature_order"] == booster.feature_name()
    assert meta["parameters"]["positive_class"] == meta["parameters"]["classes"][1]
    (p,) = served(server, name, X[2500:], ["probability"])
    np.testing.assert_allclose(p.reshape(-1), booster.predict(X[2500:]), rtol=1e-6, atol=1e-6)
    # Plain JSON can say "missing" too: null is NaN.
    row = X[2500]
    body = {"inputs": [{"name": "features", "datatype": "FP64", "shape": [1, N_FEATURES],
                        "data": [None if np.isnan(v) else float(v) for v in row]}]}
    r = requests.post(f"{server.url}/v2/models/{name}/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["parameters"]["positive_class"] == meta["parameters"]["classes"][1]
    prob = next(o for o in answer["outputs"] if o["name"] == "probability")["data"][0]
    assert abs(prob - booster.predict(X[2500:2501])[0]) < 1e-6


def test_zero_as_missing_and_multiclass(server):
    X, y = make_classification(n_samples=3000, n_features=N_FEATURES, n_informative=6, n_classes=3,
                               random_state=4)
    X = with_gaps(X, 2)
    booster = train(X[:2500], y[:2500], objective="multiclass", num_class=3, zero_as_missing=True)
    name = deploy(server, register_booster(booster, f"lgb-multi-{uuid.uuid4().hex[:6]}"), "lgb")
    probs, labels = served(server, name, X[2500:], ["probabilities", "label"])
    expected = booster.predict(X[2500:])
    np.testing.assert_allclose(probs, expected, rtol=1e-6, atol=1e-6)
    assert [int(v) for v in labels.reshape(-1).astype(str)] == list(expected.argmax(axis=1))


def test_regression_booster_matches_to_1e6(server):
    X, y = make_regression(n_samples=3000, n_features=N_FEATURES, noise=5.0, random_state=5)
    X = with_gaps(X, 3)
    booster = train(X[:2500], y[:2500], objective="regression", num_leaves=31)
    name = deploy(server, register_booster(booster, f"lgb-reg-{uuid.uuid4().hex[:6]}"), "lgb")
    (p,) = served(server, name, X[2500:], ["prediction"])
    np.testing.assert_allclose(p.reshape(-1), booster.predict(X[2500:]), rtol=1e-6, atol=1e-6)


def test_pickled_scikit_learn_wrapper_is_refused_with_the_fix(server):
    X, y = make_classification(n_samples=300, n_features=N_FEATURES, random_state=6)
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y)
    name = f"lgb-pkl-{uuid.uuid4().hex[:6]}"
    mlflow.set_experiment("lightgbm-serving")
    with mlflow.start_run():
        mlflow.lightgbm.log_model(model, name="model", registered_model_name=name)
    r = requests.post(f"{server.url}/api/2.0/plinth/deployments/create",
                      json={"name": name, "variants": [{"name": "a", "model": f"{name}/1"}]}, timeout=60)
    assert r.status_code == 400, r.text
    assert "booster_" in r.json()["message"]


def test_plinth_import_of_a_model_file_serves_and_loads_in_mlflow(server, tmp_path):
    import os
    import subprocess

    X, y = make_regression(n_samples=2000, n_features=N_FEATURES, random_state=7)
    X = with_gaps(X, 4)
    booster = train(X[:1500], y[:1500], objective="regression")
    path = tmp_path / "model.txt"
    booster.save_model(str(path))
    name = f"lgb-import-{uuid.uuid4().hex[:6]}"
    plinth = os.environ["PLINTH_BIN"]
    out = subprocess.run([plinth, "import", "lightgbm", str(path), "--register", name, "--tracking-uri", server.url,
                          "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    deployment = deploy(server, f"{name}/1", "lgb")
    (p,) = served(server, deployment, X[1500:], ["prediction"])
    np.testing.assert_allclose(p.reshape(-1), booster.predict(X[1500:]), rtol=1e-6, atol=1e-6)
    # MLflow's own client loads the imported version back as a booster.
    loaded = mlflow.lightgbm.load_model(f"models:/{name}/1")
    np.testing.assert_allclose(loaded.predict(X[1500:1510]), booster.predict(X[1500:1510]))
    # A file that is not a LightGBM model is refused before anything is tracked.
    bad = tmp_path / "bad.txt"
    bad.write_text("hello")
    out = subprocess.run([plinth, "import", "lightgbm", str(bad), "--tracking-uri", server.url],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "not a LightGBM text model" in out.stderr
