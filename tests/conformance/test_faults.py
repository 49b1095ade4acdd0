"""Faults of the systems under the replicas, through HTTP, as clients see them:

- PostgreSQL restarted under load: while it is down every replica answers 503 with `Retry-After` (fast, never a
  hang or a crash), and once it is back they reconnect by themselves; every acknowledged write is there.
- The object store unreachable: artifact calls fail with 503 and `Retry-After`, metadata calls keep working, and
  artifacts work again once the store is back.

Run in the test command's scale pass (PostgreSQL and S3 set up by scripts/test.sh). The PostgreSQL test restarts a
cluster of its own (scripts/pg.sh); the object store is cut off by a TCP relay in front of Garage, stopped and
started by the test.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import requests

from conftest import POSTGRES, S3, Nginx, PlinthServer, eventually

API = "/api/2.0"
PG_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "pg.sh")


def pg_sh(cmd: str, directory: str) -> str:
    out = subprocess.run([PG_SH, cmd, directory], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(not POSTGRES, reason="the scale pass (PLINTH_TEST_POSTGRES) has PostgreSQL's binaries")
def test_postgres_restarting_under_load_answers_503_then_recovers():
    work = tempfile.mkdtemp(prefix="plinth-pgfault-")
    pg = os.path.join(work, "pg")
    url = pg_sh("start", pg)
    servers = [PlinthServer(os.path.join(work, "data"), store=url) for _ in range(2)]
    os.makedirs(servers[0].data_dir)
    nginx = None
    try:
        for s in servers:
            s.start()
        nginx = Nginx([s.port for s in servers])
        exp = requests.post(f"{nginx.url}{API}/mlflow/experiments/create", json={"name": f"pg-{uuid.uuid4().hex}"},
                            timeout=30).json()["experiment_id"]
        run_id = requests.post(f"{nginx.url}{API}/mlflow/runs/create", json={"experiment_id": exp},
                               timeout=30).json()["run"]["info"]["run_id"]

        acknowledged, answers, stop = [], [], threading.Event()

        def load():
            step = 0
            while not stop.is_set():
                body = {"run_id": run_id, "key": "loss", "value": step, "timestamp": 1000 + step, "step": step}
                started = time.time()
                try:
                    r = requests.post(f"{nginx.url}{API}/mlflow/runs/log-metric", json=body, timeout=15)
                    answers.append((r.status_code, r.headers.get("Retry-After"), time.time() - started, r.text))
                    if r.status_code == 200:
                        acknowledged.append(step)
                except requests.RequestException as e:
                    answers.append((None, None, time.time() - started, str(e)))
                step += 1
                time.sleep(0.01)

        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(1.0)
        before_outage = len(answers)
        pg_sh("stop", pg)
        time.sleep(3.0)
        during = answers[before_outage:]
        acknowledged_before_restart = len(acknowledged)
        pg_sh("start", pg)
        # Back by themselves: writes succeed again within seconds.
        eventually(lambda: len(acknowledged) > acknowledged_before_restart + 20, timeout=30,
                   what="writes succeeding again")
        stop.set()
        worker.join(timeout=30)

        assert before_outage > 0 and all(a[0] == 200 for a in answers[:before_outage])
        unavailable = [a for a in during if a[0] == 503]
        assert unavailable, f"503s while the database was down: {during[:5]}"
        assert all(a[1] for a in unavailable), "every 503 says when to retry"
        assert all(a[3] and "error_code" in a[3] for a in unavailable), "in MLflow's error shape"
        assert all(a[0] in (200, 503) for a in answers), [a for a in answers if a[0] not in (200, 503)][:3]
        assert max(a[2] for a in answers) < 12, "no request hung while the database was away"
        for s in servers:
            assert s.proc.poll() is None, "no replica crashed"
        history = requests.get(f"{nginx.url}{API}/mlflow/metrics/get-history",
                               params={"run_id": run_id, "metric_key": "loss", "max_results": 100000},
                               timeout=30).json()["metrics"]
        assert {int(m["step"]) for m in history} >= set(acknowledged), "every acknowledged write survived"
    finally:
        if nginx:
            nginx.stop()
        for s in servers:
            s.stop()
        pg_sh("stop", pg)
        shutil.rmtree(work, ignore_errors=True)


class Relay:
    """A TCP relay to `target` on a fixed local port, that can be cut (every connection closed, the port refusing)
    and restored."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.listener = None
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.start()

    def start(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        # shutdown() wakes the thread blocked in accept() (a bare close() would leave the port listening).
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                except OSError:
                    pass
            self.conns.clear()


@pytest.mark.skipif(not S3, reason="the scale pass (PLINTH_TEST_S3) keeps artifacts in Garage")
def test_the_object_store_unreachable_fails_artifact_calls_with_503_and_metadata_keeps_working():
    endpoint = os.environ["AWS_ENDPOINT_URL"].removeprefix("http://").rstrip("/")
    host, port = endpoint.rsplit(":", 1)
    relay = Relay((host, int(port)))
    data = tempfile.mkdtemp(prefix="plinth-s3fault-")
    srv = PlinthServer(data, env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{relay.port}"})
    try:
        srv.start()
        exp = requests.post(f"{srv.url}{API}/mlflow/experiments/create", json={"name": f"s3-{uuid.uuid4().hex}"},
                            timeout=30).json()["experiment_id"]
        run = requests.post(f"{srv.url}{API}/mlflow/runs/create", json={"experiment_id": exp}, timeout=30).json()
        run_id = run["run"]["info"]["run_id"]
        art = f"{srv.url}{API}/mlflow-artifacts/artifacts/{exp}/{run_id}/artifacts"
        assert requests.put(f"{art}/a.txt", data=b"before", timeout=30).status_code == 200

        relay.cut()
        for call in (lambda: requests.put(f"{art}/b.txt", data=b"during", timeout=60),
                     lambda: requests.get(f"{art}/a.txt", timeout=60),
                     lambda: requests.get(f"{srv.url}{API}/mlflow-artifacts/artifacts",
                                          params={"path": f"{exp}/{run_id}/artifacts"}, timeout=60)):
            started = time.time()
            r = call()
            assert r.status_code == 503, (r.status_code, r.text)
            assert r.headers.get("Retry-After"), "says when to retry"
            assert "error_code" in r.json() and "unavailable" in r.text.lower(), r.text
            assert time.time() - started < 30, "fails within the store's bounded retries"
        # Metadata does not depend on the bucket.
        body = {"run_id": run_id, "key": "m", "value": 1.0, "timestamp": 1, "step": 0}
        assert requests.post(f"{srv.url}{API}/mlflow/runs/log-metric", json=body, timeout=30).status_code == 200
        got = requests.get(f"{srv.url}{API}/mlflow/runs/get", params={"run_id": run_id}, timeout=30)
        assert got.status_code == 200 and got.json()["run"]["data"]["metrics"][0]["key"] == "m"
        found = requests.post(f"{srv.url}{API}/mlflow/runs/search", json={"experiment_ids": [exp]}, timeout=30)
        assert found.status_code == 200 and len(found.json()["runs"]) == 1

        relay.start()
        eventually(lambda: requests.get(f"{art}/a.txt", timeout=30).status_code == 200, timeout=30,
                   what="artifacts back")
        assert requests.get(f"{art}/a.txt", timeout=30).content == b"before"
        assert requests.get(f"{art}/b.txt", timeout=30).status_code == 404, "a failed upload left nothing"
        assert srv.proc.poll() is None
    finally:
        srv.stop()
        relay.cut()
        shutil.rmtree(data, ignore_errors=True)


def test_sigterm_lets_in_flight_requests_finish(fresh_server):
    """Graceful shutdown: a request under way when SIGTERM arrives still gets its answer; new connections are
    refused; the process exits by itself."""
    srv = fresh_server.start()
    exp = requests.post(f"{srv.url}{API}/mlflow/experiments/create", json={"name": f"term-{uuid.uuid4().hex}"},
                        timeout=30).json()["experiment_id"]
    body = f'{{"name": "after-sigterm-{uuid.uuid4().hex}"}}'.encode()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
        s.sendall(f"POST {API}/mlflow/experiments/create HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        time.sleep(0.3)  # the head is in: the request is in flight
        srv.proc.terminate()
        time.sleep(0.5)
        s.sendall(body)
        reply = s.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
    assert srv.proc.wait(timeout=30) == 0, "exits cleanly once drained"
    assert exp
