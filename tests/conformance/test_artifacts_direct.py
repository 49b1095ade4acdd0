"""Artifacts not served (`--serve-artifacts false`, MLflow's `--no-serve-artifacts`): new experiments keep their
artifacts at `s3://bucket/prefix/<experiment>`, the real `mlflow` client writes and reads the bucket itself with
boto3, and the server still reads what it needs there (listings, downloads, serving a registered model).

Runs in the test command's scale pass, against Garage (PLINTH_TEST_S3).
"""

import os
import shutil
import subprocess
import tempfile
import uuid

import pytest
import requests

from conftest import PLINTH_BIN, S3, PlinthServer, data_dir_key, deploy

pytestmark = pytest.mark.skipif(not S3, reason="needs the S3-compatible server of the scale pass (PLINTH_TEST_S3)")


@pytest.fixture
def direct_server(monkeypatch):
    data_dir = tempfile.mkdtemp(prefix="plinth-direct-")
    srv = PlinthServer(data_dir, extra_args=["--serve-artifacts", "false"]).start()
    # What an mlflow user sets to reach the bucket (boto3 reads them).
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", os.environ["AWS_ENDPOINT_URL"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "garage"))
    yield srv
    srv.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def test_the_mlflow_client_writes_to_the_bucket_and_the_server_reads_it(direct_server, tmp_path):
    import mlflow

    srv = direct_server
    client = mlflow.MlflowClient(srv.url, srv.url)
    exp_id = client.create_experiment(f"direct-{uuid.uuid4().hex[:6]}")
    root = f"{S3}/{data_dir_key(srv.data_dir)}"
    assert client.get_experiment(exp_id).artifact_location == f"{root}/{exp_id}"

    run = client.create_run(exp_id)
    run_id = run.info.run_id
    assert run.info.artifact_uri == f"{root}/{exp_id}/{run_id}/artifacts"
    (tmp_path / "notes.txt").write_text("straight to the bucket")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.csv").write_text("a,b\n1,2\n")
    client.log_artifact(run_id, str(tmp_path / "notes.txt"))
    client.log_artifacts(run_id, str(tmp_path / "sub"), artifact_path="sub")
    client.log_metric(run_id, "m", 1.0)

    # The client reads it back from the bucket itself...
    names = sorted(f.path for f in client.list_artifacts(run_id))
    assert names == ["notes.txt", "sub"]
    out = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="notes.txt", tracking_uri=srv.url,
                                              dst_path=str(tmp_path / "dl"))
    assert open(out).read() == "straight to the bucket"

    # ...and the server reads the same objects: its listing and its download.
    listed = requests.get(f"{srv.url}/api/2.0/mlflow/artifacts/list", params={"run_id": run_id}, timeout=30).json()
    assert listed["root_uri"] == run.info.artifact_uri
    assert sorted(f["path"] for f in listed["files"]) == ["notes.txt", "sub"]
    got = requests.get(f"{srv.url}/get-artifact", params={"run_uuid": run_id, "path": "sub/x.csv"}, timeout=30)
    assert got.status_code == 200 and got.text == "a,b\n1,2\n"


def test_a_model_trained_against_a_direct_server_is_registered_and_served(direct_server, tmp_path):
    srv = direct_server
    data = tmp_path / "plays.csv"
    data.write_text("user,item\n" + "".join(f"u{u},i{(u * 3 + k) % 50}\n" for u in range(80) for k in range(10)))
    name = f"direct-recs-{uuid.uuid4().hex[:6]}"
    out = subprocess.run([PLINTH_BIN, "train", "recommender", "--data", str(data), "--algo", "popularity",
                          "--split", "none", "--register", name, "--alias", "champion", "--tracking-uri", srv.url,
                          "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    version = requests.get(f"{srv.url}/api/2.0/mlflow/registered-models/alias",
                           params={"name": name, "alias": "champion"}, timeout=30).json()["model_version"]
    run = requests.get(f"{srv.url}/api/2.0/mlflow/runs/get", params={"run_id": version["run_id"]}, timeout=30).json()
    assert run["run"]["info"]["artifact_uri"].startswith(S3), "the CLI wrote the model to the bucket itself"
    dep = deploy(srv, f"{name}@champion", "direct")
    r = requests.post(f"{srv.url}/v1/deployments/{dep}/recommend", json={"user": "u1", "k": 3}, timeout=30)
    assert r.status_code == 200 and len(r.json()["items"]) == 3, r.text
