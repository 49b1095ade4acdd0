"""A shadow variant receives mirrored traffic from every endpoint (REST
recommend and similar, REST OIP infer, gRPC OIP infer) for every model kind
(recommender, tabular, ONNX): each request served by a variant is run again
on the shadow, off the request path, and logged apart (`shadow: true`) with
the same unit, endpoint and request id. Clients are the real `tritonclient`
(HTTP and gRPC) and plain HTTP."""

import subprocess
import time
import uuid

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from skl2onnx import to_onnx
from sklearn.datasets import make_regression
from sklearn.linear_model import LinearRegression, Ridge

from conftest import PLINTH_BIN, settled


def plinth(server, *args):
    subprocess.run([PLINTH_BIN, *args, "--tracking-uri", server.url, "--json"], check=True, capture_output=True,
                   timeout=300)


def deploy(server, model, served, shadow):
    name = f"shadowed-{uuid.uuid4().hex[:6]}"
    spec = {"name": name, "variants": [{"name": "main", "model": f"{model}/{served}", "weight": 1}],
            "shadow": {"name": "mirror", "model": f"{model}/{shadow}"}}
    r = requests.post(f"{server.url}/api/2.0/plinth/deployments/create", json=spec, timeout=60)
    assert r.status_code == 200, r.text
    return name


def exposures(server, name, unit):
    """The unit's records once the shadow's (async, flushed within 200 ms) are in."""
    deadline = time.time() + 10
    while True:
        found = requests.get(f"{server.url}/api/2.0/plinth/deployments/exposures",
                             params={"name": name, "unit": unit}, timeout=30).json()["exposures"]
        if any(e["shadow"] for e in found) or time.time() > deadline:
            return found
        time.sleep(0.1)


def assert_mirrored(server, name, unit, endpoint, request_id=None):
    found = exposures(server, name, unit)
    primary = [e for e in found if not e["shadow"]]
    shadow = [e for e in found if e["shadow"]]
    assert len(primary) == 1 and primary[0]["variant"] == "main", found
    assert len(shadow) == 1 and shadow[0]["variant"] == "mirror", f"{endpoint}: no mirrored record: {found}"
    for e in found:
        assert e["endpoint"] == endpoint, found
    assert shadow[0]["model_version"] != primary[0]["model_version"], "the shadow runs its own version"
    if request_id:
        assert {e["request_id"] for e in found} == {request_id}, found


@pytest.fixture(scope="module")
def recommender(server, tmp_path_factory):
    data = tmp_path_factory.mktemp("shadow-recs") / "ratings.tsv"
    data.write_text("".join(f"user{u}\titem{(u + i) % 30}\n" for u in range(60) for i in range(8)))
    model = f"shadow-recs-{uuid.uuid4().hex[:6]}"
    for algo in ["als", "item-knn"]:
        plinth(server, "train", "recommender", "--data", str(data), "--algo", algo, "--factors", "4",
               "--register", model)
    return deploy(server, model, 1, 2)


@pytest.fixture(scope="module")
def tabular(server, tmp_path_factory):
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame({"budget": rng.normal(size=n), "genre": rng.choice(["drama", "comedy"], n)})
    frame["revenue"] = frame["budget"] * 3 + (frame["genre"] == "drama") + rng.normal(scale=0.1, size=n)
    path = tmp_path_factory.mktemp("shadow-tab") / "titles.csv"
    frame.to_csv(path, index=False)
    model = f"shadow-tab-{uuid.uuid4().hex[:6]}"
    for algo in ["gbdt", "linear"]:
        plinth(server, "train", "tabular", "--data", str(path), "--target", "revenue", "--task", "regression",
               "--algo", algo, "--rounds", "20", "--register", model)
    return deploy(server, model, 1, 2)


@pytest.fixture(scope="module")
def onnx_model(server):
    X, y = make_regression(n_samples=200, n_features=4, random_state=0)
    X = X.astype(np.float32)
    model = f"shadow-onnx-{uuid.uuid4().hex[:6]}"
    mlflow.set_experiment("shadow-serving")
    for est in [LinearRegression(), Ridge(alpha=10.0)]:
        with mlflow.start_run():
            mlflow.onnx.log_model(to_onnx(est.fit(X, y), X[:1]), name="model", registered_model_name=model)
    return deploy(server, model, 1, 2)


def host(server):
    return server.url.removeprefix("http://")


def grpc_host(server):
    return server.grpc_address


def test_recommender_rest_recommend_and_similar_are_mirrored(server, recommender):
    for endpoint, body in [("recommend", {"user": "user3", "k": 3}), ("similar", {"item": "item4", "k": 3})]:
        unit, rid = f"unit-{endpoint}-{uuid.uuid4().hex[:6]}", f"rid-{uuid.uuid4().hex[:6]}"
        r = requests.post(f"{server.url}/v1/deployments/{recommender}/{endpoint}", json=body,
                          headers={"X-Plinth-Unit": unit, "X-Request-Id": rid}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["variant"] == "main"
        assert_mirrored(server, recommender, unit, endpoint, rid)


def recommender_inputs(module):
    user = module.InferInput("user", [1], "BYTES")
    user.set_data_from_numpy(np.array(["user5"], dtype=object))
    return [user]


def tabular_inputs(module):
    budget = module.InferInput("budget", [2], "FP64")
    budget.set_data_from_numpy(np.array([0.5, -1.0]))
    genre = module.InferInput("genre", [2], "BYTES")
    genre.set_data_from_numpy(np.array(["drama", "comedy"], dtype=object))
    return [budget, genre]


def onnx_inputs(module):
    x = module.InferInput("X", [3, 4], "FP32")
    x.set_data_from_numpy(np.arange(12, dtype=np.float32).reshape(3, 4))
    return [x]


KINDS = [("recommender", recommender_inputs), ("tabular", tabular_inputs), ("onnx_model", onnx_inputs)]


@pytest.mark.parametrize("kind,inputs", KINDS, ids=[k for k, _ in KINDS])
def test_oip_infer_over_rest_is_mirrored_for_every_kind(server, request, kind, inputs):
    name = request.getfixturevalue(kind)
    unit, rid = f"rest-{uuid.uuid4().hex[:6]}", f"oip-{uuid.uuid4().hex[:6]}"
    c = httpclient.InferenceServerClient(host(server), connection_timeout=30, network_timeout=30)
    try:
        result = c.infer(name, inputs(httpclient), request_id=rid, headers={"X-Plinth-Unit": unit})
    finally:
        c.close()
    assert result.get_response()["parameters"]["variant"] == "main"
    assert_mirrored(server, name, unit, "infer", rid)


@pytest.mark.parametrize("kind,inputs", KINDS, ids=[k for k, _ in KINDS])
def test_oip_infer_over_grpc_is_mirrored_for_every_kind(server, request, kind, inputs):
    name = request.getfixturevalue(kind)
    unit, rid = f"grpc-{uuid.uuid4().hex[:6]}", f"oip-{uuid.uuid4().hex[:6]}"
    c = grpcclient.InferenceServerClient(grpc_host(server))
    try:
        result = c.infer(name, inputs(grpcclient), request_id=rid, headers={"x-plinth-unit": unit},
                         client_timeout=30)
    finally:
        c.close()
    assert result.get_response(as_json=True)["parameters"]["variant"]["string_param"] == "main"
    assert_mirrored(server, name, unit, "infer", rid)


def test_a_failed_request_is_counted_and_not_mirrored(server, recommender):
    def status():
        d = requests.get(f"{server.url}/api/2.0/plinth/deployments/get", params={"name": recommender},
                         timeout=30).json()["deployment"]
        return d["variants"][0], d["shadow"]

    main, mirror = settled(status)
    r = requests.post(f"{server.url}/v1/deployments/{recommender}/similar", json={"item": "no-such-item"},
                      timeout=30)
    assert r.status_code == 404 and "no-such-item" in r.json()["error"], r.text
    main_after, mirror_after = settled(status)
    assert main_after["errors"] == main["errors"] + 1, "counted, once"
    assert mirror_after["requests"] == mirror["requests"], "a failed request is not mirrored"
