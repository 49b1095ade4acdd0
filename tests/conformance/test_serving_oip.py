"""Serving through the Open Inference Protocol with the real `tritonclient`
(HTTP, JSON and binary tensor modes): a recommender trained and registered
by `plinth train`, deployed with two variants, queried as a KServe v2 model."""

import subprocess
import uuid

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import PLINTH_BIN


@pytest.fixture(scope="module")
def deployment(server, tmp_path_factory):
    data = tmp_path_factory.mktemp("recs") / "ratings.tsv"
    rows = []
    for u in range(80):
        base = 0 if u < 40 else 25
        rows += [f"user{u}\titem{base + i}\n" for i in range(25) if (u + i) % 3]
    data.write_text("".join(rows))
    model = f"recs-{uuid.uuid4().hex[:6]}"
    for algo in ["als", "item-knn"]:
        subprocess.run(
            [PLINTH_BIN, "train", "recommender", "--data", str(data), "--algo", algo, "--factors", "8",
             "--register", model, "--tracking-uri", server.url, "--json"],
            check=True, capture_output=True, timeout=300,
        )
    name = f"home-{uuid.uuid4().hex[:6]}"
    spec = {"name": name, "variants": [{"name": "als", "model": f"{model}/1", "weight": 1},
                                       {"name": "knn", "model": f"{model}/2", "weight": 1}]}
    r = requests.post(f"{server.url}/api/2.0/plinth/deployments/create", json=spec, timeout=30)
    assert r.status_code == 200, r.text
    return name


@pytest.fixture
def triton(server):
    c = httpclient.InferenceServerClient(server.url.removeprefix("http://"), connection_timeout=30, network_timeout=30)
    yield c
    c.close()


def text(values):
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def infer(triton, name, users, binary, k=5, version=""):
    user = httpclient.InferInput("user", [len(users)], "BYTES")
    user.set_data_from_numpy(np.array(users, dtype=object), binary_data=binary)
    kk = httpclient.InferInput("k", [1], "INT32")
    kk.set_data_from_numpy(np.array([k], dtype=np.int32), binary_data=binary)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ["items", "scores", "variant", "model_version"]]
    return triton.infer(name, [user, kk], outputs=outputs, model_version=version, request_id="req-42")


def test_health_and_metadata(triton, deployment):
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready(deployment)
    meta = triton.get_model_metadata(deployment)
    assert meta["name"] == deployment
    assert {i["name"] for i in meta["inputs"]} == {"user", "k", "exclude_seen"}
    assert "binary_tensor_data" in triton.get_server_metadata()["extensions"]
    assert not triton.is_model_ready("no-such-model")


@pytest.mark.parametrize("binary", [False, True])
def test_infer_json_and_binary(triton, deployment, binary):
    users = [f"user{u}" for u in range(10)]
    result = infer(triton, deployment, users, binary)
    items, scores = result.as_numpy("items"), result.as_numpy("scores")
    assert items.shape == (10, 5) and scores.shape == (10, 5)
    assert all(i.startswith("item") for i in text(items.flatten()))
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "each row ranked best first"
    variants = text(result.as_numpy("variant"))
    assert set(variants) <= {"als", "knn"}
    assert result.get_response()["id"] == "req-42"
    # Sticky: the same users get the same variants again.
    again = infer(triton, deployment, users, not binary)
    assert text(again.as_numpy("variant")) == variants
    assert text(again.as_numpy("items").flatten()) == text(items.flatten())


def test_version_pins_the_variant(triton, deployment):
    result = infer(triton, deployment, ["user1", "user50"], True, version="2")
    assert text(result.as_numpy("variant")) == ["knn", "knn"]
    assert list(result.as_numpy("model_version")) == [2, 2]


def test_bad_requests_get_oip_errors(triton, deployment, server):
    with pytest.raises(InferenceServerException) as e:
        infer(triton, deployment, ["user1"], False, version="9")
    assert "not being served" in str(e.value)
    bad = httpclient.InferInput("wrong", [1], "BYTES")
    bad.set_data_from_numpy(np.array(["user1"], dtype=object))
    with pytest.raises(InferenceServerException) as e:
        triton.infer(deployment, [bad])
    assert "unknown input 'wrong'" in str(e.value)
    with pytest.raises(InferenceServerException):
        infer(triton, "no-such-model", ["user1"], False)
    # Wrong shapes, datatypes and data lengths, straight over HTTP.
    url = f"{server.url}/v2/models/{deployment}/infer"
    for body in [
        {"inputs": [{"name": "user", "datatype": "BYTES", "shape": [2], "data": ["user1"]}]},
        {"inputs": [{"name": "user", "datatype": "FP32", "shape": [1], "data": [1.5]}]},
        {"inputs": [{"name": "user", "datatype": "BYTES", "shape": [1, 2], "data": ["a", "b"]}]},
        {"inputs": [{"name": "user", "datatype": "BYTES", "shape": [1], "data": ["u"]},
                    {"name": "k", "datatype": "INT32", "shape": [1], "data": [0]}]},
        {"inputs": "nope"},
    ]:
        r = requests.post(url, json=body, timeout=10)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]
    r = requests.post(url, data=b"{}", headers={"Inference-Header-Content-Length": "99"}, timeout=10)
    assert r.status_code == 400 and "exceeds" in r.json()["error"]


def test_grpc_same_answers_as_rest(server, deployment, triton):
    import tritonclient.grpc as grpcclient

    g = grpcclient.InferenceServerClient(server.grpc_address)
    try:
        assert g.is_server_live() and g.is_server_ready()
        assert g.is_model_ready(deployment)
        assert not g.is_model_ready("no-such-model")
        meta = g.get_model_metadata(deployment, as_json=True)
        assert {i["name"] for i in meta["inputs"]} == {"user", "k", "exclude_seen"}
        users = [f"user{u}" for u in range(6)] + ["stranger"]
        user = grpcclient.InferInput("user", [len(users)], "BYTES")
        user.set_data_from_numpy(np.array(users, dtype=object))
        k = grpcclient.InferInput("k", [1], "INT32")
        k.set_data_from_numpy(np.array([4], dtype=np.int32))
        result = g.infer(deployment, [user, k], request_id="grpc-1", client_timeout=30)
        assert result.get_response(as_json=True)["id"] == "grpc-1"
        rest = infer(triton, deployment, users, True, k=4)
        assert text(result.as_numpy("items").flatten()) == text(rest.as_numpy("items").flatten())
        assert np.allclose(result.as_numpy("scores"), rest.as_numpy("scores"))
        assert text(result.as_numpy("variant")) == text(rest.as_numpy("variant"))
        bad = grpcclient.InferInput("user", [1], "FP32")
        bad.set_data_from_numpy(np.array([1.5], dtype=np.float32))
        with pytest.raises(InferenceServerException) as e:
            g.infer(deployment, [bad], client_timeout=30)
        assert "BYTES or an integer" in str(e.value)
        with pytest.raises(InferenceServerException) as e:
            g.infer("no-such-model", [user], client_timeout=30)
        assert "not found" in str(e.value).lower()
    finally:
        g.close()


def test_large_batch_runs_off_the_async_workers(triton, deployment):
    # A body above 16 KiB is answered on the blocking pool; same answers.
    users = [f"user{u % 80}" for u in range(3000)] + ["stranger"]
    result = infer(triton, deployment, users, False, k=3)
    items = result.as_numpy("items")
    assert items.shape == (3001, 3)
    small = infer(triton, deployment, users[:80], False, k=3)
    assert text(items[:80].flatten()) == text(small.as_numpy("items").flatten())


def test_exposure_latency_is_end_to_end(server, deployment):
    """A request whose body arrives 300 ms after its head is logged with at
    least that latency: serving measures from the request's arrival, not from
    when the model started ranking."""
    import json
    import socket
    import time

    body = json.dumps({"user": "user-slow-body", "k": 3}).encode()
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(f"POST /v1/deployments/{deployment}/recommend HTTP/1.1\r\nHost: {host}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
        time.sleep(0.3)
        s.sendall(body)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    from conftest import eventually

    found = eventually(lambda: requests.get(f"{server.url}/api/2.0/plinth/deployments/exposures",
                                            params={"name": deployment, "unit": "user-slow-body"},
                                            timeout=30).json()["exposures"], what="the exposure")
    assert len(found) == 1 and found[0]["latency_us"] >= 300_000, found
