"""Starts a real `plinth server` on a free loopback port with a temporary data
dir, points the real `mlflow` client at it, and stops it afterwards."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

PLINTH_BIN = os.environ.get("PLINTH_BIN", "plinth")
# Set (by scripts/test.sh's second pass): every server keeps its metadata in
# PostgreSQL, a database of its own per data dir, instead of SQLite.
POSTGRES = os.environ.get("PLINTH_TEST_POSTGRES")
# Set with it: artifacts go to this S3-compatible bucket (Garage), a prefix per data dir.
S3 = os.environ.get("PLINTH_TEST_S3")
# Set with them (a count, e.g. 3): the shared `server` is that many replicas over the one store and bucket,
# behind nginx round-robin, so the whole suite runs through a load balancer.
REPLICAS = int(os.environ.get("PLINTH_TEST_REPLICAS", "1"))
NGINX = os.environ.get("PLINTH_NGINX", shutil.which("nginx") or "/usr/sbin/nginx")


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


def end_process(proc: subprocess.Popen, kill: bool = False):
    """SIGTERM (or SIGKILL), then SIGKILL if it has not gone in 10 s."""
    if proc.poll() is not None:
        return
    if kill:
        proc.kill()
    else:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class PlinthServer:
    def __init__(self, data_dir: str, port: int | None = None, extra_args: list[str] | None = None,
                 store: str | None = None, env: dict[str, str] | None = None):
        """`store`: a --store URL of the test's own (default: the pass's PostgreSQL, if any); `env`: more
        environment for the process (e.g. another AWS_ENDPOINT_URL)."""
        self.data_dir = data_dir
        self.port = port or free_port()
        self.extra_args = extra_args or []
        # Policies are evaluated every half second here (a minute by default), so their tests decide quickly.
        self.env = {"PLINTH_POLICY_INTERVAL_MS": "500", **os.environ, **(env or {})}
        if store or POSTGRES:
            self.extra_args = ["--store", store or postgres_store(data_dir), *self.extra_args]
        if S3:
            key = data_dir_key(data_dir)
            self.extra_args = ["--artifacts", f"{S3}/{key}", "--exposures", f"{S3}/exposures-{key}", *self.extra_args]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_address(self) -> str:
        """Where gRPC clients connect: the HTTP port itself (Plinth speaks both on one)."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "PlinthServer":
        self.log = open(os.path.join(self.data_dir, f"server-{self.port}.log"), "ab")
        self.proc = subprocess.Popen(
            [PLINTH_BIN, "server", "--port", str(self.port), "--data-dir", self.data_dir, *self.extra_args],
            stdout=self.log,
            stderr=self.log,
            env=self.env,
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
        if self.proc:
            end_process(self.proc, kill)
        self.proc = None


@contextlib.contextmanager
def mlflow_server(work: str, extra_args: list[str] | None = None, env: dict[str, str] | None = None):
    """MLflow's own `mlflow server` from the test venv (SQLite backend in `work`, proxied artifacts), the
    reference the `*_reference.py` tests compare Plinth with; yields its URL and stops it afterwards."""
    port = free_port()
    mlflow_bin = os.path.join(os.path.dirname(sys.executable), "mlflow")
    log = open(os.path.join(work, "mlflow.log"), "ab")
    proc = subprocess.Popen(
        [mlflow_bin, "server", *(extra_args or []), "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{work}/db.sqlite", "--artifacts-destination", f"{work}/artifacts"],
        stdout=log, stderr=log, cwd=work, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {proc.returncode}; see {work}/mlflow.log")
            if time.time() > deadline:
                raise RuntimeError("mlflow server did not start")
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        end_process(proc)
        log.close()


class Nginx:
    """nginx round-robin over `ports` on a free loopback port, with a generated config."""

    def __init__(self, ports: list[int]):
        self.work = tempfile.mkdtemp(prefix="plinth-nginx-")
        self.port = free_port()
        # nginx 1.22 speaks cleartext HTTP/2 (gRPC) only on a listener of its own.
        self.grpc_port = free_port()
        upstreams = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in ports)
        conf = os.path.join(self.work, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
worker_processes 1;
daemon off;
pid {self.work}/nginx.pid;
error_log {self.work}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_max_body_size 0;
    client_body_temp_path {self.work}/body;
    proxy_temp_path {self.work}/proxy;
    fastcgi_temp_path {self.work}/fastcgi;
    uwsgi_temp_path {self.work}/uwsgi;
    scgi_temp_path {self.work}/scgi;
    upstream plinth {{
{upstreams}
        keepalive 16;
    }}
    # Its own pool: a kept-alive HTTP/1.1 connection must never carry gRPC.
    upstream plinth_grpc {{
{upstreams}
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://plinth;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout 300s;
            # A replica that refuses connections: the request goes to the next one.
            proxy_next_upstream error timeout;
        }}
    }}
    server {{
        listen 127.0.0.1:{self.grpc_port} http2;
        location / {{
            grpc_pass grpc://plinth_grpc;
            grpc_set_header Host $http_host;
            grpc_read_timeout 300s;
            grpc_next_upstream error timeout;
        }}
    }}
}}
""")
        self.proc = subprocess.Popen([NGINX, "-p", self.work, "-c", conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        end_process(self.proc)
        shutil.rmtree(self.work, ignore_errors=True)


class Cluster:
    """`n` replicas over one data dir's store and bucket behind nginx; looks like one PlinthServer."""

    def __init__(self, data_dir: str, n: int):
        self.data_dir = data_dir
        self.replicas = [PlinthServer(data_dir).start() for _ in range(n)]
        self.nginx = Nginx([r.port for r in self.replicas])
        self.port = self.nginx.port
        self.url = self.nginx.url
        self.grpc_address = f"127.0.0.1:{self.nginx.grpc_port}"

    def stop(self, kill: bool = False):
        self.nginx.stop()
        for r in self.replicas:
            r.stop(kill=kill)


# What each state-changing endpoint records in the audit trail (the path below `/mlflow/`, `/plinth/` or
# `/mlflow-artifacts/`, the method). Changes to a run's or logged model's content (metrics, params, tags,
# inputs, artifacts written) are the run's own record and not audited; read-only POSTs (searches) neither.
AUDITED = {
    ("POST", "experiments/create"): "experiment.create",
    ("POST", "experiments/update"): "experiment.rename",
    ("POST", "experiments/delete"): "experiment.delete",
    ("POST", "experiments/restore"): "experiment.restore",
    ("POST", "experiments/set-experiment-tag"): "experiment.set_tag",
    ("POST", "experiments/delete-experiment-tag"): "experiment.delete_tag",
    ("POST", "runs/create"): "run.create",
    ("POST", "runs/update"): "run.update",
    ("POST", "runs/delete"): "run.delete",
    ("POST", "runs/restore"): "run.restore",
    ("POST", "logged-models"): "logged_model.create",
    ("PATCH", "logged-models/*"): "logged_model.finalize",
    ("DELETE", "logged-models/*"): "logged_model.delete",
    ("DELETE", "artifacts/**"): "artifact.delete",
    ("POST", "registered-models/create"): "model.create",
    ("POST", "registered-models/rename"): "model.rename",
    ("PATCH", "registered-models/update"): "model.update",
    ("DELETE", "registered-models/delete"): "model.delete",
    ("POST", "registered-models/set-tag"): "model.set_tag",
    ("DELETE", "registered-models/delete-tag"): "model.delete_tag",
    ("POST", "registered-models/alias"): "alias.set",
    ("DELETE", "registered-models/alias"): "alias.delete",
    ("POST", "model-versions/create"): "version.create",
    ("PATCH", "model-versions/update"): "version.update",
    ("DELETE", "model-versions/delete"): "version.delete",
    ("POST", "model-versions/transition-stage"): "version.stage",
    ("POST", "model-versions/set-tag"): "version.set_tag",
    ("DELETE", "model-versions/delete-tag"): "version.delete_tag",
    ("POST", "deployments/create"): "deployment.create",
    ("POST", "deployments/update"): "deployment.update",
    ("POST", "deployments/delete"): "deployment.delete",
    ("POST", "jobs/train-recommender"): "job.submit",
    ("POST", "jobs/train-tabular"): "job.submit",
    ("POST", "jobs/cancel"): "job.cancel",
    ("POST", "users/create"): "user.create",
    ("PATCH", "users/update-password"): "user.password",
    ("PATCH", "users/update-admin"): "user.admin",
    ("DELETE", "users/delete"): "user.delete",
    ("POST", "tokens/create"): "token.create",
    ("POST", "tokens/revoke"): "token.revoke",
}
NOT_AUDITED = {
    ("POST", p) for p in [
        "runs/log-metric", "runs/log-parameter", "runs/set-tag", "runs/delete-tag", "runs/log-batch",
        "runs/log-inputs", "runs/outputs", "runs/log-model", "runs/search", "experiments/search",
        "experiments/search-datasets", "logged-models/search", "logged-models/*/params",
        "registered-models/get-latest-versions", "mpu/create/**", "mpu/complete/**", "mpu/abort/**",
    ]
} | {("PATCH", "logged-models/*/tags"), ("DELETE", "logged-models/*/tags/*"), ("PUT", "artifacts/**")}


def endpoint(method: str, path: str):
    """`(method, pattern)` of an API path, or None for paths outside the APIs (serving, the UI)."""
    for prefix in ["/mlflow-artifacts/", "/mlflow/", "/plinth/"]:
        if prefix in path and path.split(prefix, 1)[0] in ("/api/2.0", "/ajax-api/2.0", "/api/2.0/preview"):
            rest = path.split(prefix, 1)[1].strip("/")
            break
    else:
        return None
    for (m, pattern) in list(AUDITED) + list(NOT_AUDITED):
        if m != method:
            continue
        parts, want = rest.split("/"), pattern.split("/")
        if want[-1] == "**" and len(parts) >= len(want) and all(w in ("*", p) for w, p in zip(want[:-1], parts)):
            return (m, pattern)
        if len(parts) == len(want) and all(w in ("*", p) for w, p in zip(want, parts)):
            return (m, pattern)
    return (method, rest)


class RequestLog:
    """Every request this test process sends to `url` through `requests` (what the `mlflow` client uses), each
    with an `X-Request-Id` of its own, and how it was answered: the suite's mutations, to hold up against the
    audit trail."""

    def __init__(self, url: str):
        import itertools

        import requests.adapters

        self.url, self.sent, self._ids = url, [], itertools.count(1)
        self._adapter = requests.adapters.HTTPAdapter
        self._send = self._adapter.send
        log = self

        def send(adapter, request, *args, **kwargs):
            if not request.url.startswith(log.url.rstrip("/") + "/"):
                return log._send(adapter, request, *args, **kwargs)
            request_id = request.headers.setdefault("X-Request-Id", f"suite-{next(log._ids)}")
            response = log._send(adapter, request, *args, **kwargs)
            path = urllib.parse.urlsplit(request.url).path
            log.sent.append((request.method, path, response.status_code, request_id))
            return response

        self._adapter.send = send

    def close(self):
        self._adapter.send = self._send

    def check_audit_trail(self, url: str):
        """Each successful audited request has exactly one record, of its action, with its request id; every
        state-changing request the suite made is either audited or listed as content."""
        import requests

        unclassified = sorted({(m, p) for m, p, status, _ in self.sent
                               if m in ("POST", "PUT", "PATCH", "DELETE") and status < 300
                               and (e := endpoint(m, p)) is not None and e not in AUDITED and e not in NOT_AUDITED})
        assert not unclassified, f"state-changing endpoints neither audited nor listed as content: {unclassified}"
        records, token = [], None
        while True:
            params = {"max_results": 1000, **({"page_token": token} if token else {})}
            body = requests.get(f"{url}/api/2.0/plinth/audit", params=params, timeout=30).json()
            records += body["records"]
            token = body.get("next_page_token")
            if not token:
                break
        by_id: dict[str, list[str]] = {}
        for r in records:
            by_id.setdefault(r["request_id"] or "", []).append(r["action"])
        missing, counted = [], 0
        for m, p, status, request_id in self.sent:
            e = endpoint(m, p) if status < 300 else None
            if e in AUDITED:
                counted += 1
                if by_id.get(request_id) != [AUDITED[e]]:
                    missing.append((m, p, request_id, by_id.get(request_id)))
        assert not missing, f"{len(missing)} of {counted} audited requests lack their one record: {missing[:10]}"
        assert counted > 0, "the suite made no audited request through requests"
        print(f"audit trail: {counted} audited requests, each with its record; {len(records)} records in all")


@pytest.fixture(scope="session")
def server():
    data_dir = tempfile.mkdtemp(prefix="plinth-conf-")
    srv = Cluster(data_dir, REPLICAS) if REPLICAS > 1 else PlinthServer(data_dir).start()
    os.environ["MLFLOW_TRACKING_URI"] = srv.url
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "30"
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    requests_log = RequestLog(srv.url)
    try:
        yield srv
        requests_log.close()
        requests_log.check_audit_trail(srv.url)
    finally:
        requests_log.close()
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


def eventually(check, timeout: float = 5.0, what: str = "condition"):
    """`check()`'s first truthy value, polled: what one replica counted reaches another's answers
    within its publication interval (serving counters ~1 s, exposure records ~200 ms)."""
    deadline = time.time() + timeout
    while True:
        value = check()
        if value or time.time() > deadline:
            assert value, f"timed out waiting for {what}"
            return value
        time.sleep(0.05)


def settled(read, reads: int = 4, timeout: float = 10.0):
    """`read()` once it gives the same value `reads` times in a row, 0.2 s apart: behind a balancer each
    read may reach another replica, and all of them must have caught up."""
    deadline = time.time() + timeout
    last, same = read(), 1
    while same < reads and time.time() < deadline:
        time.sleep(0.2)
        value = read()
        last, same = value, (same + 1 if value == last else 1)
    return last


def register_recommender(server, directory, prefix, algos=("popularity",)):
    """A registered recommender, one version per algorithm in `algos`, trained by `plinth train` on a small
    interactions file written into `directory` (users `user0`…`user59`, items `item0`…`item39`); its name."""
    import uuid

    data = os.path.join(directory, "interactions.tsv")
    with open(data, "w") as f:
        f.write("".join(f"user{u}\titem{(u * 7 + i) % 40}\n" for u in range(60) for i in range(8)))
    model = f"{prefix}-{uuid.uuid4().hex[:6]}"
    for algo in algos:
        subprocess.run([PLINTH_BIN, "train", "recommender", "--data", data, "--algo", algo, "--register", model,
                        "--tracking-uri", server.url, "--json"], check=True, capture_output=True, timeout=300)
    return model


def deploy(server, ref, prefix="dep"):
    """A one-variant deployment of model `ref` (`name/version` or `name@alias`); returns its name."""
    import uuid

    import requests

    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    r = requests.post(f"{server.url}/api/2.0/plinth/deployments/create",
                      json={"name": name, "variants": [{"name": "a", "model": ref}]}, timeout=60)
    assert r.status_code == 200, r.text
    return name
