"""Starts a real `plinth server` on a free loopback port with a temporary data
dir, points the real `mlflow` client at it, and stops it afterwards."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

PLINTH_BIN = os.environ.get("PLINTH_BIN", "plinth")
# Set (by scripts/test.sh's second pass): every server keeps its metadata in
# PostgreSQL, a database of its own per data dir, instead of SQLite.
POSTGRES = os.environ.get("PLINTH_TEST_POSTGRES")
# Set with it: artifacts go to this S3-compatible bucket (Garage), a prefix per data dir.
S3 = os.environ.get("PLINTH_TEST_S3")


def data_dir_key(data_dir: str) -> str:
    import hashlib

    return hashlib.sha256(os.path.realpath(data_dir).encode()).hexdigest()[:16]


def postgres_store(data_dir: str) -> str:
    """The database for `data_dir` (created on first use), as a --store URL."""
    db = "plinth_" + data_dir_key(data_dir)
    exists = subprocess.run(["psql", POSTGRES, "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{db}'"],
                            capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    if exists != "1":
        subprocess.run(["psql", POSTGRES, "-qc", f"CREATE DATABASE {db}"], capture_output=True, timeout=30, check=True)
    return POSTGRES.rsplit("/", 1)[0] + "/" + db


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PlinthServer:
    def __init__(self, data_dir: str, port: int | None = None, extra_args: list[str] | None = None):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.extra_args = extra_args or []
        if POSTGRES:
            self.extra_args = ["--store", postgres_store(data_dir), *self.extra_args]
        if S3:
            self.extra_args = ["--artifacts", f"{S3}/{data_dir_key(data_dir)}", *self.extra_args]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "PlinthServer":
        self.log = open(os.path.join(self.data_dir, f"server-{self.port}.log"), "ab")
        self.proc = subprocess.Popen(
            [PLINTH_BIN, "server", "--port", str(self.port), "--data-dir", self.data_dir, *self.extra_args],
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"plinth server exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("plinth server did not become healthy in time")

    def stop(self, kill: bool = False):
        if self.proc and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture(scope="session")
def server():
    data_dir = tempfile.mkdtemp(prefix="plinth-conf-")
    srv = PlinthServer(data_dir).start()
    os.environ["MLFLOW_TRACKING_URI"] = srv.url
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "30"
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    yield srv
    srv.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def fresh_server():
    """A server of its own, for tests that kill it."""
    data_dir = tempfile.mkdtemp(prefix="plinth-crash-")
    srv = PlinthServer(data_dir)
    yield srv
    srv.stop(kill=True)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def client(server):
    import mlflow

    mlflow.set_tracking_uri(server.url)
    mlflow.set_registry_uri(server.url)
    return mlflow.MlflowClient(server.url, server.url)


def deploy(server, ref, prefix="dep"):
    """A one-variant deployment of model `ref` (`name/version` or `name@alias`); returns its name."""
    import uuid

    import requests

    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    r = requests.post(f"{server.url}/api/2.0/plinth/deployments/create",
                      json={"name": name, "variants": [{"name": "a", "model": ref}]}, timeout=60)
    assert r.status_code == 200, r.text
    return name
