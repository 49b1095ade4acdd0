"""The outside probes of the hardening issue, against the real binary: a
symlink planted in the artifact root, oversized inference bodies, slow
clients at a low descriptor limit, cross-site requests and CSRF, and the
smaller edges (long names, interrupted uploads, 414/431 bodies)."""

import os
import re
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from conftest import PLINTH_BIN, S3, PlinthServer, free_port


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def new_run(url):
    s = requests.Session()
    exp = s.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": f"h-{time.time_ns()}"}).json()
    run = s.post(f"{url}/api/2.0/mlflow/runs/create", json={"experiment_id": exp["experiment_id"]}).json()
    return run["run"]["info"]


@pytest.mark.skipif(bool(S3), reason="links and the artifact directory are the local backend's; artifacts are in S3")
def test_recursive_delete_never_follows_a_planted_link(fresh_server):
    srv = fresh_server.start()
    info = new_run(srv.url)
    root = info["artifact_uri"].removeprefix("mlflow-artifacts:/")
    requests.put(f"{srv.url}/api/2.0/mlflow-artifacts/artifacts/{root}/ok.txt", data=b"ok").raise_for_status()
    outside = tempfile.mkdtemp(prefix="plinth-outside-")
    try:
        os.makedirs(os.path.join(outside, "sub"))
        with open(os.path.join(outside, "sub", "precious"), "wb") as f:
            f.write(b"keep me")
        with open(os.path.join(outside, "big"), "wb") as f:
            f.write(b"x" * 5000)
        arts = os.path.join(srv.data_dir, "artifacts", root)
        os.symlink(outside, os.path.join(arts, "link"))
        os.symlink(os.path.join(outside, "big"), os.path.join(arts, "file-link"))

        listing = requests.get(f"{srv.url}/api/2.0/mlflow-artifacts/artifacts", params={"path": root}).json()
        assert [f["path"] for f in listing["files"]] == ["ok.txt"], listing
        listing = requests.get(f"{srv.url}/api/2.0/mlflow/artifacts/list", params={"run_id": info["run_id"]}).json()
        assert [f["path"] for f in listing["files"]] == ["ok.txt"], listing
        for path in ("link/sub/precious", "file-link", "link"):
            r = requests.get(f"{srv.url}/api/2.0/mlflow-artifacts/artifacts/{root}/{path}")
            assert r.status_code in (400, 404), (path, r.status_code)

        r = requests.delete(f"{srv.url}/api/2.0/mlflow-artifacts/artifacts/{root}")
        assert r.status_code == 200, r.text
        assert open(os.path.join(outside, "sub", "precious"), "rb").read() == b"keep me"
        assert os.path.getsize(os.path.join(outside, "big")) == 5000
        assert not os.path.lexists(os.path.join(arts, "link"))
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def chunks(total: int, size: int = 1 << 20):
    block = b"7" * size
    sent = 0
    while sent < total:
        sent += size
        yield block


@pytest.mark.parametrize("path", ["/v2/models/x/infer", "/v1/deployments/x/recommend"])
def test_oversized_inference_bodies_keep_memory_bounded(fresh_server, path):
    srv = fresh_server.start()
    before = rss_kib(srv.proc.pid)
    # Declared too large: refused before a byte of the body is read.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {1 << 30}\r\n\r\n".encode())
        head = s.recv(4096).decode(errors="replace")
    assert head.startswith("HTTP/1.1 413"), head
    assert '"error"' in head
    # Streamed without a length (chunked): refused once the limit is read.
    peak = 0
    stop = threading.Event()

    def watch():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_kib(srv.proc.pid))
            time.sleep(0.02)

    t = threading.Thread(target=watch)
    t.start()
    try:
        r = requests.post(srv.url + path, data=chunks(1 << 30), timeout=60)
        assert r.status_code == 413, r.status_code
    except requests.exceptions.ConnectionError:
        pass  # the server may close while the client is still sending
    finally:
        stop.set()
        t.join()
    assert peak - before < 150 * 1024, f"RSS grew by {(peak - before) // 1024} MiB"
    assert requests.get(srv.url + "/health", timeout=5).status_code == 200


def test_slow_clients_do_not_lock_out_normal_ones():
    data_dir = tempfile.mkdtemp(prefix="plinth-slow-")
    port = free_port()

    def low_fd_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    log = open(os.path.join(data_dir, "server.log"), "ab")
    proc = subprocess.Popen([PLINTH_BIN, "server", "--port", str(port), "--data-dir", data_dir],
                            stdout=log, stderr=log, preexec_fn=low_fd_limit)
    url = f"http://127.0.0.1:{port}"
    slow = []
    try:
        for _ in range(200):
            try:
                if requests.get(url + "/health", timeout=1).status_code == 200:
                    break
            except requests.exceptions.ConnectionError:
                time.sleep(0.05)
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            slow.append(s)
        # Keep trickling a byte now and then while a normal client works.
        deadline = time.time() + 8
        ok = 0
        while time.time() < deadline:
            for s in slow[::10]:
                try:
                    s.send(b"a")
                except OSError:
                    pass
            r = requests.post(url + "/api/2.0/mlflow/experiments/search", json={"max_results": 1}, timeout=5)
            assert r.status_code == 200
            ok += 1
        assert ok >= 10
        assert proc.poll() is None
        with open(os.path.join(data_dir, "server.log"), "rb") as f:
            assert b"Too many open files" not in f.read()
    finally:
        for s in slow:
            s.close()
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_headers_sent_slowly_are_timed_out(fresh_server):
    srv = fresh_server.start()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    start = time.time()
    s.settimeout(30)
    data = s.recv(4096)  # the server closes (or answers 408) after the header timeout
    assert time.time() - start < 20
    s.close()
    assert data == b"" or data.startswith(b"HTTP/1.1 408")


def set_alias(url, model, alias, version, **kw):
    return requests.post(f"{url}/api/2.0/mlflow/registered-models/alias",
                         json={"name": model, "alias": alias, "version": version}, **kw)


@pytest.fixture
def two_versions(server):
    name = f"csrf-{time.time_ns()}"
    info = new_run(server.url)
    requests.post(f"{server.url}/api/2.0/mlflow/registered-models/create", json={"name": name}).raise_for_status()
    for _ in range(2):
        requests.post(f"{server.url}/api/2.0/mlflow/model-versions/create",
                      json={"name": name, "source": f"{info['artifact_uri']}/m", "run_id": info["run_id"]}
                      ).raise_for_status()
    set_alias(server.url, name, "champion", "1").raise_for_status()
    return name


def champion(url, name):
    r = requests.get(f"{url}/api/2.0/mlflow/registered-models/alias", params={"name": name, "alias": "champion"})
    return r.json()["model_version"]["version"]


def test_cross_site_requests_change_nothing(server, two_versions):
    url, name = server.url, two_versions
    body = f'{{"name": "{name}", "alias": "champion", "version": "2"}}'
    # A form or text/plain POST (no preflight in a browser) from a foreign page.
    r = requests.post(f"{url}/api/2.0/mlflow/registered-models/alias", data=body,
                      headers={"Content-Type": "text/plain", "Origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["error_code"] == "PERMISSION_DENIED"
    r = requests.post(f"{url}/api/2.0/mlflow/registered-models/alias", data=body,
                      headers={"Content-Type": "text/plain"})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    r = set_alias(url, name, "champion", "2", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    r = set_alias(url, name, "champion", "2", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert champion(url, name) == "1"
    # The UI's form without its CSRF token, as a cross-site form sends it.
    r = requests.post(f"{url}/ui/models/{name}/alias", data={"alias": "champion", "version": "2", "confirm": "yes"},
                      allow_redirects=False)
    assert r.status_code == 403
    assert champion(url, name) == "1"
    # DNS rebinding: a foreign name in Host is refused, IP literals and localhost are not.
    r = requests.get(f"{url}/api/2.0/mlflow/experiments/search", headers={"Host": "evil.example"})
    assert r.status_code == 403
    assert requests.get(f"{url}/api/2.0/mlflow/experiments/search",
                        headers={"Host": f"localhost:{server.port}"}).status_code == 200
    assert requests.get(f"{url}/health", headers={"Host": "evil.example"}).status_code == 200
    # Same-origin requests still work.
    r = set_alias(url, name, "champion", "2", headers={"Origin": url})
    assert r.status_code == 200
    set_alias(url, name, "champion", "1").raise_for_status()


def test_ui_forms_carry_csrf_tokens_and_pages_cannot_be_framed(server, two_versions):
    url, name = server.url, two_versions
    s = requests.Session()
    page = s.get(f"{url}/ui/models/{name}")
    assert page.status_code == 200
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    token = re.search(r'name="csrf" value="([0-9a-f]{32})"', page.text).group(1)
    # A wrong token is refused; the right one passes (confirm step, then the move).
    r = s.post(f"{url}/ui/models/{name}/alias", data={"alias": "champion", "version": "2", "csrf": "0" * 32})
    assert r.status_code == 403
    r = s.post(f"{url}/ui/models/{name}/alias", data={"alias": "champion", "version": "2", "csrf": token})
    assert r.status_code == 200 and "Move @champion" in r.text
    r = s.post(f"{url}/ui/models/{name}/alias",
               data={"alias": "champion", "version": "2", "confirm": "yes", "csrf": token})
    assert r.status_code in (200, 303), r.status_code
    assert champion(url, name) == "2"


def test_smaller_edges(fresh_server):
    # An interrupted upload's staged file, left long ago, is removed on start (the local
    # backend's; in S3 an unfinished multipart upload is never visible).
    staged = os.path.join(fresh_server.data_dir, "artifacts", "1", "r", "artifacts", "model.bin#12")
    if not S3:
        os.makedirs(os.path.dirname(staged))
        with open(staged, "wb") as f:
            f.write(b"partial")
        old = time.time() - 7200
        os.utime(staged, (old, old))
    srv = fresh_server.start()
    for _ in range(100):
        if not os.path.exists(staged):
            break
        time.sleep(0.05)
    assert not os.path.exists(staged)

    info = new_run(srv.url)
    root = info["artifact_uri"].removeprefix("mlflow-artifacts:/")
    r = requests.put(f"{srv.url}/api/2.0/mlflow-artifacts/artifacts/{root}/{'a' * 300}.txt", data=b"x")
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"

    # Uploads have their own (much larger) limit: the request-body cap does not apply to them.
    big = b"z" * (20 << 20)
    r = requests.put(f"{srv.url}/api/2.0/mlflow-artifacts/artifacts/{root}/big.bin", data=big)
    assert r.status_code == 200, r.text
    r = requests.get(f"{srv.url}/api/2.0/mlflow-artifacts/artifacts/{root}/big.bin")
    assert r.content == big

    r = requests.get(f"{srv.url}/api/2.0/mlflow/experiments/get", params={"experiment_id": "1" * 20000})
    assert r.status_code == 414 and r.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    r = requests.get(f"{srv.url}/api/2.0/mlflow/experiments/search", headers={"X-Big": "b" * 70000})
    assert r.status_code == 431 and r.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    r = requests.get(f"{srv.url}/v2/models/x/infer")
    assert r.status_code == 405 and "error" in r.json()


def test_busy_port_fails_before_touching_the_data_dir():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        parent = tempfile.mkdtemp(prefix="plinth-busy-")
        data_dir = os.path.join(parent, "data")
        try:
            r = subprocess.run([PLINTH_BIN, "server", "--port", str(port), "--data-dir", data_dir],
                               capture_output=True, timeout=30)
            assert r.returncode != 0
            assert b"cannot listen" in r.stderr
            assert not os.path.exists(data_dir)
        finally:
            shutil.rmtree(parent, ignore_errors=True)
