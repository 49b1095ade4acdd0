"""Plinth against MLflow's own server, on the same requests.

MLflow 3.17's `mlflow server` (from the test venv, SQLite backend, proxied
artifacts) is the reference: each scenario runs against both servers and
the answers (status, `error_code`, and the fields that matter) must agree.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import requests

from conftest import mlflow_server


@pytest.fixture(scope="module")
def reference():
    work = tempfile.mkdtemp(prefix="mlflow-ref-")
    with mlflow_server(work) as url:
        yield url
    shutil.rmtree(work, ignore_errors=True)


API = "/api/2.0/mlflow"


class Side:
    """One server and the ids its setup produced."""

    def __init__(self, url: str, tag: str):
        self.url = url
        self.s = requests.Session()
        suffix = f"{tag}-{time.time_ns()}"
        self.exp = self.post("experiments/create", {"name": f"ref-{suffix}"}).json()["experiment_id"]
        run = self.post("runs/create", {"experiment_id": self.exp, "start_time": 1}).json()["run"]["info"]
        self.run, self.artifact_uri = run["run_id"], run["artifact_uri"]
        self.model = f"refmodel-{suffix}"
        assert self.post("registered-models/create", {"name": self.model}).status_code == 200

    def post(self, path, body, **kw):
        return self.s.post(f"{self.url}{API}/{path}", json=body, timeout=30, **kw)

    def get(self, path, params, prefix=API):
        return self.s.get(f"{self.url}{prefix}/{path}", params=params, timeout=30)

    def fill(self, value):
        """Replaces {run}, {exp}, {model}, {artifact_uri} in strings and containers."""
        if isinstance(value, str):
            return (value.replace("{run}", self.run).replace("{exp}", self.exp)
                    .replace("{model}", self.model).replace("{artifact_uri}", self.artifact_uri))
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        return value


def outcome(r):
    try:
        body = r.json()
    except ValueError:
        body = None
    code = body.get("error_code") if isinstance(body, dict) else None
    return r.status_code, code


@pytest.fixture(scope="module")
def sides(server, reference):
    return Side(server.url, "plinth"), Side(reference, "mlflow")


POSTS = [
    # Item 7: JSON types are checked as protobuf's JSON parser checks them.
    ("experiments/create", {"name": 123}),
    ("experiments/create", {"name": "typed-{run}", "artifact_location": 9.0}),
    ("experiments/create", {"name": ["x"]}),
    ("runs/log-metric", {"run_id": "{run}", "key": 123, "value": 1, "timestamp": 1}),
    ("runs/log-metric", {"run_id": "{run}", "key": "k", "value": "abc", "timestamp": 1}),
    ("runs/log-metric", {"run_id": 31, "key": "k", "value": 1, "timestamp": 1}),
    ("runs/log-metric", {"run_id": " {run} ", "key": "k", "value": 1, "timestamp": 1}),
    ("runs/log-parameter", {"run_id": "{run}", "key": "k", "value": 1}),
    ("runs/log-parameter", {"run_id": "{run}", "key": 7, "value": "v"}),
    ("runs/set-tag", {"run_id": "{run}", "key": "k", "value": 1}),
    ("runs/set-tag", {"run_id": "{run}", "key": "k", "value": True}),
    # Item 10: MLflow 3.17 accepts log-inputs without datasets (and an empty list).
    ("runs/log-inputs", {"run_id": "{run}"}),
    ("runs/log-inputs", {"run_id": "{run}", "datasets": []}),
    # Item 6: the right-to-left override is accepted by MLflow's server.
    ("experiments/create", {"name": "rtl-{run}\u202eevil"}),
    # Items 4 and 8: model-version sources.
    ("model-versions/create", {"name": "{model}", "source": "runs:/deadbeef/model", "run_id": "deadbeef"}),
    ("model-versions/create", {"name": "{model}", "source": "s3://bucket/key", "run_id": "deadbeef"}),
    ("model-versions/create", {"name": "{model}", "source": "mlflow-artifacts:/1/deadbeef/artifacts/m",
                               "run_id": "deadbeef"}),
    ("model-versions/create", {"name": "{model}", "source": "/etc/passwd"}),
    ("model-versions/create", {"name": "{model}", "source": "file:///etc/passwd"}),
    ("model-versions/create", {"name": "{model}", "source": "/etc/passwd", "run_id": "{run}"}),
    ("model-versions/create", {"name": "{model}", "source": "runs:/{run}/../../../etc", "run_id": "{run}"}),
    ("model-versions/create", {"name": "{model}", "source": "runs:/{run}/model%00", "run_id": "{run}"}),
    ("model-versions/create", {"name": "{model}", "source": "runs:/{run}/..%2f..%2fetc", "run_id": "{run}"}),
    ("model-versions/create", {"name": "{model}", "source": "runs:/{run}/model"}),
    ("model-versions/create", {"name": "{model}", "source": "runs:/{run}/model", "run_id": "{run}"}),
    ("model-versions/create", {"name": "{model}", "source": "{artifact_uri}/model", "run_id": "{run}"}),
    ("model-versions/create", {"name": "{model}", "source": "{artifact_uri}/../../other", "run_id": "{run}"}),
    ("model-versions/create", {"name": "{model}", "source": "http://169.254.169.254/latest", "run_id": "{run}"}),
    ("model-versions/create", {"name": "{model}", "source": "models:/m-doesnotexist"}),
    ("model-versions/create", {"name": "{model}", "source": "s3://bucket"}),
]


@pytest.mark.parametrize("path,body", POSTS, ids=[f"{i}-{p}" for i, (p, _) in enumerate(POSTS)])
def test_post_answers_match(sides, path, body):
    plinth, ref = sides
    got = outcome(plinth.post(path, plinth.fill(body)))
    want = outcome(ref.post(path, ref.fill(body)))
    assert got == want, f"{path} {body}: plinth {got}, mlflow {want}"


def test_wrong_content_type_matches(sides):
    plinth, ref = sides
    for headers in ({"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}):
        answers = []
        for side in sides:
            r = side.s.post(f"{side.url}{API}/experiments/create", data=json.dumps({"name": "ct"}),
                            headers=headers, timeout=30)
            answers.append((outcome(r), r.json().get("message")))
        assert answers[0] == answers[1], headers


def log_steps(side, n=10):
    metrics = [{"key": "loss", "value": float(i), "timestamp": 1000 + i, "step": i} for i in range(n)]
    assert side.post("runs/log-batch", {"run_id": side.run, "metrics": metrics}).status_code == 200


INTERVALS = [
    {"metric_key": "loss", "run_ids": ["{run}"]},
    {"metric_key": "loss", "run_ids": ["{run}"], "start_step": 0, "end_step": 4},
    {"metric_key": "loss", "run_ids": ["{run}"], "start_step": 2, "end_step": 7, "max_results": 3},
    {"metric_key": "loss", "run_ids": ["{run}"], "max_results": 4},
    {"metric_key": "loss", "run_ids": ["{run}"], "max_results": 1},
    {"metric_key": "loss"},
    {"metric_key": "loss", "run_ids": [f"r{i}" for i in range(101)]},
    {"metric_key": "loss", "run_ids": ["{run}"], "max_results": 0},
    {"metric_key": "loss", "run_ids": ["{run}"], "max_results": 2501},
    {"metric_key": "loss", "run_ids": ["{run}"], "start_step": 5, "end_step": 1},
    {"metric_key": "loss", "run_ids": ["{run}"], "start_step": 5},
    {"metric_key": "loss", "run_ids": ["doesnotexist"]},
    {"run_ids": ["{run}"]},
]


@pytest.fixture(scope="module")
def logged(sides):
    for side in sides:
        log_steps(side)
    return sides


@pytest.mark.parametrize("params", INTERVALS, ids=[str(i) for i in range(len(INTERVALS))])
def test_history_bulk_interval_matches(logged, params):
    answers = []
    for side in logged:
        r = side.get("metrics/get-history-bulk-interval", side.fill(params))
        steps = [m["step"] for m in r.json().get("metrics", [])] if r.status_code == 200 else None
        answers.append((outcome(r), steps))
    assert answers[0] == answers[1], params


def test_history_bulk_matches(logged):
    answers = []
    for side in logged:
        r = side.get("metrics/get-history-bulk", {"run_id": [side.run, "nope"], "metric_key": "loss"},
                     prefix="/ajax-api/2.0/mlflow")
        answers.append((outcome(r), [(m["step"], m["value"]) for m in r.json().get("metrics", [])]))
        missing = side.get("metrics/get-history-bulk", {"metric_key": "loss"}, prefix="/ajax-api/2.0/mlflow")
        answers.append(outcome(missing))
    assert answers[0:2] == answers[2:4]


def test_repeated_points_are_kept_once(sides):
    """The exact same (key, value, timestamp, step) logged twice is one point
    in MLflow's history; the same step with another value is two."""
    answers = []
    for side in sides:
        r = side.post("runs/create", {"experiment_id": "0", "start_time": 1})
        run = r.json()["run"]["info"]["run_id"]
        same = {"key": "dup", "value": 1.5, "timestamp": 5, "step": 1}
        for body in [same, same, {**same, "value": 2.5}]:
            assert side.post("runs/log-metric", {"run_id": run, **body}).status_code == 200
        side.post("runs/log-batch", {"run_id": run, "metrics": [same, same]})
        h = side.get("metrics/get-history", {"run_id": run, "metric_key": "dup"})
        answers.append(sorted((m["step"], m["value"]) for m in h.json()["metrics"]))
    assert answers[0] == answers[1] == [(1, 1.5), (1, 2.5)]


def test_search_datasets_matches(sides):
    answers = []
    for side in sides:
        ds = {"dataset": {"name": "ratings", "digest": "abc123", "source_type": "local", "source": "ratings.csv"},
              "tags": [{"key": "mlflow.data.context", "value": "training"}]}
        assert side.post("runs/log-inputs", {"run_id": side.run, "datasets": [ds]}).status_code == 200
        r = side.s.post(f"{side.url}/ajax-api/2.0/mlflow/experiments/search-datasets",
                        json={"experiment_ids": [side.exp]}, timeout=30)
        summaries = [{k: v for k, v in d.items() if k != "experiment_id"} for d in r.json()["dataset_summaries"]]
        answers.append((r.status_code, summaries))
        bad = side.s.post(f"{side.url}/ajax-api/2.0/mlflow/experiments/search-datasets", json={}, timeout=30)
        answers.append(outcome(bad))
    assert answers[0:2] == answers[2:4]


def test_relative_artifact_location_is_resolved(sides):
    for side in sides:
        name = f"rel-{time.time_ns()}"
        exp = side.post("experiments/create", {"name": name, "artifact_location": "relative/dir"}).json()
        loc = side.get("experiments/get", {"experiment_id": exp["experiment_id"]}).json()["experiment"]
        loc = loc["artifact_location"]
        assert os.path.isabs(loc.removeprefix("file://")) and loc.endswith("/relative/dir"), (side.url, loc)


def test_artifact_downloads_name_and_type(sides):
    answers = []
    for side in sides:
        root = side.artifact_uri.removeprefix("mlflow-artifacts:/")
        for name in ("notes.txt", "plot%20one.png", "MLmodel", "weights.bin"):
            put = side.s.put(f"{side.url}/api/2.0/mlflow-artifacts/artifacts/{root}/{name}", data=b"x", timeout=30)
            assert put.status_code == 200
            r = side.s.get(f"{side.url}/api/2.0/mlflow-artifacts/artifacts/{root}/{name}", timeout=30)
            answers.append((name, r.status_code, r.headers.get("Content-Type"), r.headers.get("Content-Disposition"),
                            r.headers.get("X-Content-Type-Options")))
        legacy = side.s.get(f"{side.url}/get-artifact", params={"run_id": side.run, "path": "notes.txt"}, timeout=30)
        answers.append(("legacy", legacy.status_code, legacy.headers.get("Content-Type"), legacy.content))
        escape = side.s.get(f"{side.url}/get-artifact", params={"run_id": side.run, "path": "../x"}, timeout=30)
        answers.append(("escape",) + outcome(escape))
    half = len(answers) // 2
    assert answers[:half] == answers[half:]


def test_model_version_artifact_download(sides):
    answers = []
    for side in sides:
        root = side.artifact_uri.removeprefix("mlflow-artifacts:/")
        assert side.s.put(f"{side.url}/api/2.0/mlflow-artifacts/artifacts/{root}/mv/MLmodel", data=b"flavors: {}",
                          timeout=30).status_code == 200
        mv = side.post("model-versions/create", {"name": side.model, "source": f"{side.artifact_uri}/mv",
                                                 "run_id": side.run}).json()["model_version"]
        r = side.s.get(f"{side.url}/model-versions/get-artifact",
                       params={"name": side.model, "version": mv["version"], "path": "MLmodel"}, timeout=30)
        answers.append((r.status_code, r.headers.get("Content-Type"), r.content))
    assert answers[0] == answers[1]


def test_plinth_trains_into_mlflows_own_server(reference, tmp_path):
    """The CLI's remote tracker (the MLflow DTOs it shares with the server)
    reads MLflow's own answers: a training run lands in MLflow's server with
    its params and metrics, its artifacts uploaded, a registered version and
    an alias."""
    from conftest import PLINTH_BIN

    rows = ["user,item\n"] + [f"u{u},i{(u * 7 + k) % 40}\n" for u in range(60) for k in range(8)]
    data = tmp_path / "plays.csv"
    data.write_text("".join(rows))
    name = f"remote-{time.time_ns()}"
    out = subprocess.run(
        [PLINTH_BIN, "train", "recommender", "--data", str(data), "--algo", "popularity", "--experiment", name,
         "--register", name, "--alias", "champion", "--tracking-uri", reference, "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    s = requests.Session()
    got = s.get(f"{reference}{API}/registered-models/alias", params={"name": name, "alias": "champion"},
                timeout=30).json()["model_version"]
    assert got["version"] == "1"
    run = s.get(f"{reference}{API}/runs/get", params={"run_id": got["run_id"]}, timeout=30).json()["run"]
    assert run["info"]["status"] == "FINISHED"
    assert any(p["key"] == "algo" and p["value"] == "popularity" for p in run["data"]["params"])
    assert run["data"]["metrics"], run["data"]
    listed = s.get(f"{reference}{API}/artifacts/list", params={"run_id": got["run_id"]}, timeout=30).json()
    assert listed.get("files"), listed
