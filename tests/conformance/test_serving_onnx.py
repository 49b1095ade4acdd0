"""ONNX models served natively: scikit-learn (skl2onnx) and LightGBM
(onnxmltools) models logged with `mlflow.onnx.log_model`, registered,
deployed, and queried with the real `tritonclient` over HTTP (JSON and binary
tensors) and gRPC. Predictions must match the library that trained them."""

import time
import uuid

import lightgbm as lgb
import mlflow
import numpy as np
import onnx
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType as LgbFloat
from skl2onnx import to_onnx
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from tritonclient.utils import InferenceServerException

N_FEATURES = 20


def register(server, onnx_model, name):
    mlflow.set_experiment("onnx-serving")
    with mlflow.start_run():
        info = mlflow.onnx.log_model(onnx_model, name="model", registered_model_name=name)
    assert str(info.registered_model_version) == "1"
    return f"{name}/1"


def deploy(server, variants, shadow=None):
    name = f"onnx-{uuid.uuid4().hex[:6]}"
    spec = {"name": name, "variants": variants}
    if shadow:
        spec["shadow"] = shadow
    r = requests.post(f"{server.url}/api/2.0/plinth/deployments/create", json=spec, timeout=60)
    assert r.status_code == 200, r.text
    return name


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=600, n_features=N_FEATURES, noise=5.0, random_state=0)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def gbdt(server, regression):
    X, y = regression
    model = GradientBoostingRegressor(n_estimators=60, max_depth=4, random_state=0).fit(X, y)
    ref = register(server, to_onnx(model, X[:1]), f"gbdt-{uuid.uuid4().hex[:6]}")
    return model, deploy(server, [{"name": "gbdt", "model": ref, "weight": 1}])


@pytest.fixture(scope="module")
def lightgbm_classifier(server):
    X, y = make_classification(n_samples=800, n_features=N_FEATURES, random_state=1)
    X = X.astype(np.float32)
    model = lgb.LGBMClassifier(n_estimators=50, num_leaves=15, verbose=-1).fit(X, y)
    # Exported as is: onnxmltools ends the graph with a ZipMap.
    proto = convert_lightgbm(model, initial_types=[("input", LgbFloat([None, N_FEATURES]))], target_opset=15)
    assert any(n.op_type == "ZipMap" for n in proto.graph.node)
    ref = register(server, proto, f"lgbm-{uuid.uuid4().hex[:6]}")
    return X, model, deploy(server, [{"name": "lgbm", "model": ref, "weight": 1}])


@pytest.fixture
def triton(server):
    c = httpclient.InferenceServerClient(server.url.removeprefix("http://"), connection_timeout=30, network_timeout=30)
    yield c
    c.close()


def features(X, binary, name="X"):
    t = httpclient.InferInput(name, list(X.shape), "FP32")
    t.set_data_from_numpy(X, binary_data=binary)
    return t


def test_metadata_shows_the_model_signature(triton, gbdt):
    _, name = gbdt
    meta = triton.get_model_metadata(name)
    assert meta["platform"] == "onnx"
    assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, N_FEATURES]}]
    assert meta["outputs"][0]["datatype"] == "FP32"
    assert triton.is_model_ready(name)
    # tritonclient's model-configuration call answers too.
    config = triton.get_model_config(name)
    assert config["name"] == name and config["max_batch_size"] == 0
    assert config["input"] == [{"name": "X", "data_type": "TYPE_FP32", "dims": [-1, N_FEATURES]}]
    assert config["output"][0]["data_type"] == "TYPE_FP32"


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("rows", [1, 100])
def test_gbdt_predictions_match_scikit_learn(triton, gbdt, regression, binary, rows):
    model, name = gbdt
    X, _ = regression
    out_name = triton.get_model_metadata(name)["outputs"][0]["name"]
    result = triton.infer(name, [features(X[:rows], binary)],
                          outputs=[httpclient.InferRequestedOutput(out_name, binary_data=binary)], request_id="r-1")
    got = result.as_numpy(out_name).reshape(-1)
    np.testing.assert_allclose(got, model.predict(X[:rows]), rtol=1e-4, atol=1e-3)
    response = result.get_response()
    assert response["id"] == "r-1"
    assert response["model_version"] == "1"
    assert response["parameters"]["variant"] == "gbdt"


def test_lightgbm_classifier_with_zipmap_matches_lightgbm(triton, lightgbm_classifier):
    X, model, name = lightgbm_classifier
    outputs = {o["name"]: o for o in triton.get_model_metadata(name)["outputs"]}
    assert outputs["probabilities"]["shape"] == [-1, 2]
    result = triton.infer(name, [features(X[:50], True, "input")])
    np.testing.assert_allclose(result.as_numpy("probabilities"), model.predict_proba(X[:50]), atol=1e-5)
    np.testing.assert_array_equal(result.as_numpy("label"), model.predict(X[:50]))


def test_grpc_infer(server, lightgbm_classifier):
    X, model, name = lightgbm_classifier
    with grpcclient.InferenceServerClient(server.grpc_address) as c:
        assert c.is_model_ready(name)
        t = grpcclient.InferInput("input", [10, N_FEATURES], "FP32")
        t.set_data_from_numpy(X[:10])
        result = c.infer(name, [t], outputs=[grpcclient.InferRequestedOutput("probabilities")],
                         client_timeout=30)
        np.testing.assert_allclose(result.as_numpy("probabilities"), model.predict_proba(X[:10]), atol=1e-5)


def test_linear_forest_and_neural_network_models(server, triton, regression):
    X, y = regression
    Xc, yc = make_classification(n_samples=400, n_features=N_FEATURES, n_classes=3, n_informative=6, random_state=2)
    Xc = Xc.astype(np.float32)
    cases = [
        (RandomForestRegressor(n_estimators=15, max_depth=6, random_state=0).fit(X, y), X, "predict"),
        (LogisticRegression(max_iter=500).fit(Xc, yc), Xc, "predict_proba"),
        (MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(Xc, yc), Xc, "predict_proba"),
    ]
    for model, data, method in cases:
        proto = to_onnx(model, data[:1], options={"zipmap": False} if method == "predict_proba" else None)
        name = deploy(server, [{"name": "v", "model": register(server, proto, f"m-{uuid.uuid4().hex[:6]}"),
                                "weight": 1}])
        meta = triton.get_model_metadata(name)
        out = meta["outputs"][-1]["name"]
        got = triton.infer(name, [features(data[:30], True)]).as_numpy(out)
        want = getattr(model, method)(data[:30])
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-4, atol=1e-4, err_msg=type(model).__name__)


def test_ab_split_and_shadow_over_onnx_variants(server, triton, regression):
    X, y = regression
    refs = []
    for depth in (2, 5):
        model = GradientBoostingRegressor(n_estimators=20, max_depth=depth, random_state=0).fit(X, y)
        refs.append(register(server, to_onnx(model, X[:1]), f"ab-{uuid.uuid4().hex[:6]}"))
    name = deploy(server, [{"name": "a", "model": refs[0], "weight": 1}, {"name": "b", "model": refs[1], "weight": 1}],
                  shadow={"name": "shadow", "model": refs[1], "weight": 0})
    seen = {}
    for u in range(40):
        headers = {"X-Plinth-Unit": f"unit-{u}"}
        variants = {triton.infer(name, [features(X[:1], False)], headers=headers).get_response()["parameters"]["variant"]
                    for _ in range(2)}
        assert len(variants) == 1, "one unit, one variant"
        seen[f"unit-{u}"] = variants.pop()
    assert set(seen.values()) == {"a", "b"}
    from conftest import eventually

    def served():
        status = requests.get(f"{server.url}/api/2.0/plinth/deployments/get", params={"name": name}, timeout=30)
        return sum(v["requests"] for v in status.json()["deployment"]["variants"])

    # Over replicas each one's counters arrive with its next publication (a busy replica's may come late):
    # the total is known, so wait for it rather than for a pause in the changes.
    eventually(lambda: served() == 80, timeout=15, what="the cluster's count of the 80 requests")
    # The exposure log has every request, on the variant that answered, and
    # the shadow's runs apart (flushed within 200 ms; the shadow runs async).
    deadline = time.time() + 10
    while time.time() < deadline:
        found = requests.get(f"{server.url}/api/2.0/plinth/deployments/exposures",
                             params={"name": name, "max_results": 1000}, timeout=30).json()["exposures"]
        if len(found) >= 160:
            break
        time.sleep(0.1)
    primary = [e for e in found if not e["shadow"]]
    assert len(primary) == 80 and len(found) == 160
    assert all(e["variant"] == seen[e["unit"]] and e["model_version"] == 1 for e in primary)
    assert {e["variant"] for e in found if e["shadow"]} == {"shadow"}


def test_bad_tensors_get_a_clear_4xx(server, gbdt, regression):
    _, name = gbdt
    X, _ = regression
    url = f"{server.url}/v2/models/{name}/infer"

    def post(inputs):
        r = requests.post(url, json={"inputs": inputs}, timeout=30)
        assert r.status_code == 400, r.text
        return r.json()["error"]

    row = X[0].tolist()
    assert "missing input 'X'" in post([])
    assert "unknown input 'features'" in post([{"name": "features", "datatype": "FP32", "shape": [1, 20], "data": row}])
    assert "datatype FP64, the model takes FP32" in post([{"name": "X", "datatype": "FP64", "shape": [1, 20], "data": row}])
    assert "shape [1, 19]" in post([{"name": "X", "datatype": "FP32", "shape": [1, 19], "data": row[:19]}])
    assert "needs 20 elements" in post([{"name": "X", "datatype": "FP32", "shape": [1, 20], "data": row[:5]}])
    r = requests.post(f"{server.url}/v2/models/{name}/versions/7/infer",
                      json={"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 20], "data": row}]}, timeout=30)
    assert r.status_code == 404 and "error" in r.json()
    r = requests.post(f"{server.url}/api/2.0/plinth/deployments/create",
                      json={"name": "recs-on-onnx", "variants": []}, timeout=30)
    assert r.status_code == 400


def test_models_that_cannot_serve_fail_at_deploy_time(server, regression):
    X, y = regression
    # A model in a flavor Plinth does not run (sklearn pickle).
    from sklearn.linear_model import LinearRegression

    mlflow.set_experiment("onnx-serving")
    name = f"pickle-{uuid.uuid4().hex[:6]}"
    with mlflow.start_run():
        mlflow.sklearn.log_model(LinearRegression().fit(X, y), name="model", registered_model_name=name)
    r = requests.post(f"{server.url}/api/2.0/plinth/deployments/create",
                      json={"name": f"d-{name}", "variants": [{"name": "v", "model": f"{name}/1", "weight": 1}]},
                      timeout=60)
    assert r.status_code == 400, r.text
    assert "'onnx' flavor" in r.json()["message"] and "sklearn" in r.json()["message"]
    # An ONNX graph with an operator no runtime knows.
    node = onnx.helper.make_node("NoSuchOp", ["X"], ["Y"])
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [None, 2])],
                                   [onnx.helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [None, 2])])
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    ref = register(server, proto, f"bad-{uuid.uuid4().hex[:6]}")
    r = requests.post(f"{server.url}/api/2.0/plinth/deployments/create",
                      json={"name": f"d-{uuid.uuid4().hex[:6]}", "variants": [{"name": "v", "model": ref, "weight": 1}]},
                      timeout=60)
    assert r.status_code == 400, r.text
    assert "NoSuchOp" in r.json()["message"]


def test_variants_of_one_deployment_must_share_a_signature(server, regression, lightgbm_classifier, gbdt):
    X, y = regression
    def model_of(deployment):
        r = requests.get(f"{server.url}/api/2.0/plinth/deployments/get", params={"name": deployment}, timeout=30)
        return r.json()["deployment"]["variants"][0]["model"]

    gbdt_ref, lgbm_ref = model_of(gbdt[1]), model_of(lightgbm_classifier[2])
    r = requests.post(f"{server.url}/api/2.0/plinth/deployments/create",
                      json={"name": f"mixed-{uuid.uuid4().hex[:6]}",
                            "variants": [{"name": "a", "model": gbdt_ref, "weight": 1},
                                         {"name": "b", "model": lgbm_ref, "weight": 1}]}, timeout=60)
    assert r.status_code == 400, r.text
    assert "signature" in r.json()["message"]
