"""Nothing lost: acknowledged writes survive `kill -9`, 16 concurrent clients
lose nothing, and a crash mid-upload leaves no half-written artifact."""

import socket
import threading
import time

import mlflow
import requests
from mlflow.entities import Metric


def test_acknowledged_writes_survive_kill_9(fresh_server):
    srv = fresh_server.start()
    client = mlflow.MlflowClient(srv.url)
    exp_id = client.create_experiment("durable")
    run = client.create_run(exp_id)
    rid = run.info.run_id
    for i in range(200):
        client.log_metric(rid, "m", float(i), step=i)
    client.log_param(rid, "p", "v")
    client.set_tag(rid, "t", "x")
    srv.stop(kill=True)  # SIGKILL: no shutdown path runs

    srv.start()
    got = client.get_run(rid)
    assert got.data.params == {"p": "v"}
    assert got.data.tags["t"] == "x"
    assert got.data.metrics["m"] == 199.0
    assert len(client.get_metric_history(rid, "m")) == 200


def test_sixteen_concurrent_clients_lose_nothing(fresh_server):
    srv = fresh_server.start()
    client = mlflow.MlflowClient(srv.url)
    exp_id = client.create_experiment("concurrent")
    run_ids = [client.create_run(exp_id).info.run_id for _ in range(4)]
    errors = []
    per_client = 150

    def work(w: int):
        c = mlflow.MlflowClient(srv.url)
        rid = run_ids[w % len(run_ids)]
        try:
            for i in range(per_client):
                if i % 10 == 0:
                    c.log_batch(rid, metrics=[Metric(f"b{w}", float(i), 1, i)])
                else:
                    c.log_metric(rid, f"w{w}", float(i), step=i)
        except Exception as e:  # noqa: BLE001 - every failure counts
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    assert not any("locked" in e for e in errors)
    for w in range(16):
        rid = run_ids[w % len(run_ids)]
        assert len(client.get_metric_history(rid, f"w{w}")) == per_client - per_client // 10
        assert len(client.get_metric_history(rid, f"b{w}")) == per_client // 10


def test_crash_mid_upload_leaves_no_partial_artifact(fresh_server):
    srv = fresh_server.start()
    path = "0/somerun/artifacts/partial.bin"  # the Default experiment: an artifact path names an existing experiment
    total = 64 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(
            f"PUT /api/2.0/mlflow-artifacts/artifacts/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Length: {total}\r\n\r\n".encode()
        )
        s.sendall(b"\0" * (8 * 1024 * 1024))
        time.sleep(0.5)
        srv.stop(kill=True)
    srv.start()
    r = requests.get(f"{srv.url}/api/2.0/mlflow-artifacts/artifacts/{path}", timeout=10)
    assert r.status_code == 404
    listing = requests.get(f"{srv.url}/api/2.0/mlflow-artifacts/artifacts", params={"path": "0/somerun/artifacts"}, timeout=10)
    assert listing.status_code == 200
    assert all(f["path"] != "partial.bin" for f in listing.json().get("files", []))
