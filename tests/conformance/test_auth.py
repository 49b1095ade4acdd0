"""`plinth server --auth` with the real clients: the `mlflow` client signs in with
MLFLOW_TRACKING_USERNAME/PASSWORD (HTTP basic) and with MLFLOW_TRACKING_TOKEN (bearer),
and MLflow's own auth client (`mlflow.server.get_app_client("basic-auth")`) manages users."""

import shutil
import tempfile

import pytest
import requests

from conftest import PlinthServer


@pytest.fixture
def auth_server(monkeypatch):
    import mlflow

    # mlflow's global URI, as the session's server set it (None: mlflow then reads MLFLOW_TRACKING_URI again).
    from mlflow.tracking._tracking_service import utils as tracking_utils

    previous = tracking_utils._tracking_uri
    data_dir = tempfile.mkdtemp(prefix="plinth-auth-")
    srv = PlinthServer(
        data_dir,
        extra_args=["--auth"],
        env={"PLINTH_ADMIN_USER": "admin", "PLINTH_ADMIN_PASSWORD": "admin-password-1"},
    ).start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.url)
    for k in ["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"]:
        monkeypatch.delenv(k, raising=False)
    yield srv
    if previous is None:
        tracking_utils._tracking_uri = None
    else:
        mlflow.set_tracking_uri(previous)
    srv.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def as_user(monkeypatch, username, password):
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


def as_token(monkeypatch, token):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)


def test_mlflow_auth_client_manages_users(auth_server, monkeypatch):
    from mlflow.exceptions import RestException
    from mlflow.server import get_app_client

    as_user(monkeypatch, "admin", "admin-password-1")
    auth = get_app_client("basic-auth", tracking_uri=auth_server.url)
    alice = auth.create_user(username="alice", password="alice-password")
    assert alice.username == "alice" and not alice.is_admin and alice.id > 0
    assert auth.get_user("alice").id == alice.id
    with pytest.raises(RestException, match="RESOURCE_ALREADY_EXISTS"):
        auth.create_user(username="alice", password="again-password")
    auth.update_user_admin("alice", True)
    assert auth.get_user("alice").is_admin
    auth.update_user_password("alice", "alice-password-2")
    auth.create_user(username="temp", password="temp-password")
    auth.delete_user("temp")
    with pytest.raises(RestException, match="RESOURCE_DOES_NOT_EXIST"):
        auth.get_user("temp")

    # The new password works; the old one does not.
    as_user(monkeypatch, "alice", "alice-password-2")
    assert get_app_client("basic-auth", tracking_uri=auth_server.url).get_user("alice").is_admin
    as_user(monkeypatch, "alice", "alice-password")
    with pytest.raises(RestException, match="UNAUTHENTICATED"):
        get_app_client("basic-auth", tracking_uri=auth_server.url).get_user("alice")


def test_mlflow_client_logs_with_basic_auth_and_with_a_token(auth_server, monkeypatch):
    import mlflow
    from mlflow.exceptions import MlflowException

    # Anonymous: refused.
    with pytest.raises(MlflowException, match="UNAUTHENTICATED"):
        mlflow.MlflowClient(auth_server.url).search_experiments()

    as_user(monkeypatch, "admin", "admin-password-1")
    requests.post(
        f"{auth_server.url}/api/2.0/mlflow/users/create",
        json={"username": "bob", "password": "bob-password"},
        auth=("admin", "admin-password-1"),
        timeout=10,
    ).raise_for_status()

    as_user(monkeypatch, "bob", "bob-password")
    mlflow.set_tracking_uri(auth_server.url)
    mlflow.set_experiment("auth-basic")
    with mlflow.start_run() as run:
        mlflow.log_param("alpha", "0.5")
        mlflow.log_metric("rmse", 0.25, step=1)
        mlflow.log_text("hello", "notes/hello.txt")
    client = mlflow.MlflowClient(auth_server.url, registry_uri=auth_server.url)
    got = client.get_run(run.info.run_id)
    assert got.data.params == {"alpha": "0.5"} and got.data.metrics == {"rmse": 0.25}
    assert [f.path for f in client.list_artifacts(run.info.run_id, "notes")] == ["notes/hello.txt"]

    # A token of bob's, made through the API, logs the same way with MLFLOW_TRACKING_TOKEN.
    made = requests.post(
        f"{auth_server.url}/api/2.0/plinth/tokens/create",
        json={"name": "notebook"},
        auth=("bob", "bob-password"),
        timeout=10,
    )
    made.raise_for_status()
    secret = made.json()["secret"]
    as_token(monkeypatch, secret)
    with mlflow.start_run() as run2:
        mlflow.log_metric("rmse", 0.2)
        mlflow.log_text("model", "model/notes.txt")
    client = mlflow.MlflowClient(auth_server.url, registry_uri=auth_server.url)
    assert client.get_run(run2.info.run_id).data.metrics == {"rmse": 0.2}
    client.create_registered_model("auth-model")
    mv = client.create_model_version("auth-model", f"runs:/{run2.info.run_id}/model", run_id=run2.info.run_id)
    client.set_registered_model_alias("auth-model", "champion", mv.version)
    assert client.get_model_version_by_alias("auth-model", "champion").version == mv.version

    # Revoked: the next call is refused.
    token_id = made.json()["token"]["id"]
    requests.post(
        f"{auth_server.url}/api/2.0/plinth/tokens/revoke",
        json={"token_id": token_id},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    ).raise_for_status()
    with pytest.raises(MlflowException, match="UNAUTHENTICATED"):
        mlflow.MlflowClient(auth_server.url).search_experiments()


def test_plinth_cli_makes_users_and_tokens_in_the_store(auth_server):
    import os
    import subprocess

    from conftest import PLINTH_BIN

    # The same store as the server's: its data dir, or the pass's PostgreSQL database.
    store_args = ["--data-dir", auth_server.data_dir]
    if "--store" in auth_server.extra_args:
        store_args += ["--store", auth_server.extra_args[auth_server.extra_args.index("--store") + 1]]
    made = subprocess.run(
        [PLINTH_BIN, "users", "create", "carol", *store_args],
        input="carol-password\n", capture_output=True, text=True, timeout=60,
    )
    assert made.returncode == 0, made.stderr
    token = subprocess.run(
        [PLINTH_BIN, "tokens", "create", "--user", "carol", "--name", "ci", *store_args],
        capture_output=True, text=True, timeout=60,
    )
    assert token.returncode == 0, token.stderr
    secret = token.stdout.strip()
    assert secret.startswith("plinth_")
    me = requests.get(
        f"{auth_server.url}/api/2.0/mlflow/users/current", headers={"Authorization": f"Bearer {secret}"}, timeout=10
    )
    assert me.status_code == 200 and me.json()["user"]["username"] == "carol"
    # The plinth CLI's own remote commands send MLFLOW_TRACKING_TOKEN too.
    listed = subprocess.run(
        [PLINTH_BIN, "models", "list", "--tracking-uri", auth_server.url],
        capture_output=True, text=True, timeout=60, env={**os.environ, "MLFLOW_TRACKING_TOKEN": secret},
    )
    assert listed.returncode == 0, listed.stderr


def test_serving_keys_call_one_deployment_only(auth_server, tmp_path):
    import subprocess

    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    from conftest import PLINTH_BIN

    url, admin = auth_server.url, ("admin", "admin-password-1")
    data = tmp_path / "plays.csv"
    data.write_text("user,item\n" + "".join(f"u{u},i{(u * 3 + k) % 30}\n" for u in range(40) for k in range(5)))
    made = requests.post(f"{url}/api/2.0/plinth/tokens/create", json={"name": "train"}, auth=admin, timeout=10).json()
    out = subprocess.run([PLINTH_BIN, "train", "recommender", "--data", str(data), "--algo", "popularity", "--split",
                          "none", "--register", "keyed", "--tracking-uri", url],
                         env={**__import__("os").environ, "PLINTH_TOKEN": made["secret"]},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for name in ["keyed-a", "keyed-b"]:
        r = requests.post(f"{url}/api/2.0/plinth/deployments/create",
                          json={"name": name, "variants": [{"name": "a", "model": "keyed/1"}]}, auth=admin, timeout=60)
        assert r.status_code == 200, r.text

    r = requests.post(f"{url}/api/2.0/plinth/deployments/keys/create",
                      json={"deployment": "keyed-a", "name": "recs-frontend", "expires_in_days": 30}, auth=admin,
                      timeout=10)
    assert r.status_code == 200, r.text
    key, secret = r.json()["key"], r.json()["secret"]
    assert secret.startswith("plinth_sk_") and key["deployment"] == "keyed-a" and key["kind"] == "serving"
    listed = requests.get(f"{url}/api/2.0/plinth/deployments/keys/list", params={"deployment": "keyed-a"}, auth=admin,
                          timeout=10).json()["keys"]
    assert [k["id"] for k in listed] == [key["id"]] and "secret" not in listed[0]
    bad = requests.post(f"{url}/api/2.0/plinth/deployments/keys/create", json={"deployment": "nope"}, auth=admin,
                        timeout=10)
    assert bad.status_code == 404 and bad.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    as_key = {"Authorization": f"Bearer {secret}"}

    # Its own deployment answers; another one, the APIs and the UI refuse it with 403 in their shape.
    body = {"users": ["u1"], "k": 3}
    ok = requests.post(f"{url}/v1/deployments/keyed-a/recommend", json=body, headers=as_key, timeout=10)
    assert ok.status_code == 200, ok.text
    assert requests.get(f"{url}/v2/models/keyed-a", headers=as_key, timeout=10).status_code == 200
    other = requests.post(f"{url}/v1/deployments/keyed-b/recommend", json=body, headers=as_key, timeout=10)
    assert other.status_code == 403 and "keyed-a" in other.json()["error"], other.text
    assert requests.get(f"{url}/v2/models/keyed-b", headers=as_key, timeout=10).status_code == 403
    api = requests.get(f"{url}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, headers=as_key,
                       timeout=10)
    assert api.status_code == 403 and api.json()["error_code"] == "PERMISSION_DENIED", api.text
    assert requests.get(f"{url}/ui/experiments", headers=as_key, timeout=10).status_code == 403
    keyed = requests.post(f"{url}/api/2.0/plinth/deployments/keys/create", json={"deployment": "keyed-a"},
                          headers=as_key, timeout=10)
    assert keyed.status_code == 403, "a serving key makes no keys"

    # Outcome events: a key's are its deployment's; it names no other; nobody posts anonymously.
    played = [{"unit": "u1", "kind": "play"}, {"unit": "u1", "kind": "play", "deployment": "keyed-b"}]
    r = requests.post(f"{url}/v1/events", json=played, headers=as_key, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1 and "for deployment 'keyed-a' only" in r.json()["rejected"][0]["reason"]
    assert requests.post(f"{url}/v1/events", json=played[:1], timeout=10).status_code == 401
    result = requests.get(f"{url}/api/2.0/plinth/deployments/analysis",
                          params={"name": "keyed-a", "event": "play", "window": "1h"}, auth=admin, timeout=30)
    assert result.status_code == 200, result.text
    assert result.json()["variants"][0]["units"] == 1 and result.json()["variants"][0]["mean"] == 1.0
    denied = requests.get(f"{url}/api/2.0/plinth/deployments/analysis", params={"name": "keyed-a", "event": "play"},
                          headers=as_key, timeout=10)
    assert denied.status_code == 403, "a serving key reads no analysis"

    # gRPC: the model it names decides.
    g = grpcclient.InferenceServerClient(auth_server.grpc_address)
    metadata = {"authorization": f"Bearer {secret}"}  # gRPC metadata keys are lower case
    assert g.get_model_metadata("keyed-a", headers=metadata).name == "keyed-a"
    with pytest.raises(InferenceServerException, match="PERMISSION_DENIED"):
        g.get_model_metadata("keyed-b", headers=metadata)

    # `plinth deploy key` makes one too (the secret alone on standard output).
    out = subprocess.run([PLINTH_BIN, "deploy", "key", "keyed-b", "--name", "cli", "--expires-days", "7",
                          "--tracking-uri", url], env={**__import__("os").environ, "PLINTH_TOKEN": made["secret"]},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    cli_key = out.stdout.strip()
    assert cli_key.startswith("plinth_sk_") and "shown once" in out.stderr
    r = requests.post(f"{url}/v1/deployments/keyed-b/recommend", json=body,
                      headers={"Authorization": f"Bearer {cli_key}"}, timeout=10)
    assert r.status_code == 200, r.text

    # Revoked: refused at once (401).
    requests.post(f"{url}/api/2.0/plinth/tokens/revoke", json={"token_id": key["id"]}, auth=admin,
                  timeout=10).raise_for_status()
    gone = requests.post(f"{url}/v1/deployments/keyed-a/recommend", json=body, headers=as_key, timeout=10)
    assert gone.status_code == 401 and "error" in gone.json()
    # The trail names the key's creation and revocation, never its secret.
    records = requests.get(f"{url}/api/2.0/plinth/audit", params={"resource": f"tokens/{key['id']}"}, auth=admin,
                           timeout=10).json()["records"]
    assert [r["action"] for r in records] == ["token.revoke", "token.create"]
    assert "deployment keyed-a" in records[1]["after"] and secret not in repr(records)
