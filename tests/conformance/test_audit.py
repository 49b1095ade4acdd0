"""The audit trail through the real clients: with `--auth`, alice (basic) and bob (a token) change models with
the `mlflow` client; `GET /api/2.0/plinth/audit` answers who moved which alias from which version to which,
with each request's id, filtered by actor, action, resource and time; the model page says it in a sentence;
no secret is in it; nothing deletes it. (conftest.py's session check holds the whole suite's mutations against
the shared server's trail.)"""

import time
import urllib.request

import pytest
import requests

from test_auth import as_token, as_user, auth_server  # noqa: F401  (the fixture)

ADMIN = ("admin", "admin-password-1")


def trail(url, auth=ADMIN, **params):
    r = requests.get(f"{url}/api/2.0/plinth/audit", params=params, auth=auth, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_alias_moves_are_recorded_with_who_before_after_and_request_id(auth_server, monkeypatch):  # noqa: F811
    import mlflow

    url = auth_server.url
    for user in ["alice", "bob"]:
        requests.post(f"{url}/api/2.0/mlflow/users/create", json={"username": user, "password": f"{user}-password"},
                      auth=ADMIN, timeout=10).raise_for_status()
    made = requests.post(f"{url}/api/2.0/plinth/tokens/create", json={"name": "ci"},
                         auth=("bob", "bob-password"), timeout=10)
    made.raise_for_status()
    bob_secret, bob_token = made.json()["secret"], made.json()["token"]["id"]

    started = int(time.time() * 1000)
    as_user(monkeypatch, "alice", "alice-password")
    mlflow.set_tracking_uri(url)
    client = mlflow.MlflowClient(url, registry_uri=url)
    exp = client.create_experiment("audited")
    run = client.create_run(exp)
    client.set_terminated(run.info.run_id)
    client.create_registered_model("recs")
    v1 = client.create_model_version("recs", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    v2 = client.create_model_version("recs", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_registered_model_alias("recs", "champion", v1.version)
    # alice made the model, so she manages it and lets bob move its aliases (MLflow's per-user grant).
    r = requests.post(f"{url}/api/3.0/mlflow/users/permissions/grant", auth=("alice", "alice-password"), timeout=10,
                      json={"username": "bob", "resource_type": "registered_model", "resource_id": "recs",
                            "permission": "EDIT"})
    assert r.status_code == 200, r.text

    as_token(monkeypatch, bob_secret)
    client = mlflow.MlflowClient(url, registry_uri=url)
    client.set_registered_model_alias("recs", "champion", v2.version)
    # A request id the caller chose is kept.
    r = requests.delete(f"{url}/api/2.0/mlflow/registered-models/alias", json={"name": "recs", "alias": "champion"},
                        headers={"Authorization": f"Bearer {bob_secret}", "X-Request-Id": "bob-req-42"}, timeout=10)
    assert r.status_code == 200, r.text

    records = trail(url, resource="models/recs")["records"]
    actions = [(r["action"], r["resource"], r["actor"]) for r in records]
    bob = f"bob (token {bob_token})"
    assert actions == [
        ("alias.delete", "models/recs/aliases/champion", bob),
        ("alias.set", "models/recs/aliases/champion", bob),
        ("alias.set", "models/recs/aliases/champion", "alice"),
        ("version.create", "models/recs/versions/2", "alice"),
        ("version.create", "models/recs/versions/1", "alice"),
        ("model.create", "models/recs", "alice"),
    ]
    delete, move, first = records[0], records[1], records[2]
    assert (first["before"], first["after"]) == (None, "1")
    assert (move["before"], move["after"]) == ("1", "2")
    assert (delete["before"], delete["after"], delete["request_id"]) == ("2", None, "bob-req-42")
    assert all(r["request_id"] and started - 1000 <= r["time"] <= time.time() * 1000 + 1000 for r in records)
    assert len({r["request_id"] for r in records}) == len(records)
    assert [r["seq"] for r in records] == sorted((r["seq"] for r in records), reverse=True)

    # Filters: a user by any credential, one credential, an action, a time window, paging.
    assert {r["actor"] for r in trail(url, actor="bob")["records"]} == {bob, "bob"}
    assert [r["action"] for r in trail(url, actor=bob)["records"]] == ["alias.delete", "alias.set"]
    assert [r["resource"] for r in trail(url, action="run.create")["records"]] == [f"runs/{run.info.run_id}"]
    assert trail(url, action="run.update")["records"][0]["after"] == "FINISHED"
    assert trail(url, since=int(time.time() * 1000) + 60_000)["records"] == []
    page1 = trail(url, resource="models/recs", max_results=4)
    page2 = trail(url, resource="models/recs", max_results=4, page_token=page1["next_page_token"])
    assert [r["seq"] for r in page1["records"] + page2["records"]] == [r["seq"] for r in records]
    assert "next_page_token" not in page2

    # `plinth audit` prints the same trail (a table, or the server's JSON).
    import os
    import subprocess

    from conftest import PLINTH_BIN
    env = {**os.environ, "MLFLOW_TRACKING_USERNAME": ADMIN[0], "MLFLOW_TRACKING_PASSWORD": ADMIN[1]}
    env.pop("MLFLOW_TRACKING_TOKEN", None)
    out = subprocess.run([PLINTH_BIN, "audit", "--resource", "models/recs", "--action", "alias.set", "--tracking-uri",
                          url], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["TIME", "ACTOR", "ACTION"] and len(lines) == 3, out.stdout
    assert "bob (token" in lines[1] and "alias.set" in lines[1] and "models/recs/aliases/champion" in lines[1]
    out = subprocess.run([PLINTH_BIN, "audit", "--actor", "alice", "--json", "--tracking-uri", url], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert {r["actor"] for r in __import__("json").loads(out.stdout)["records"]} == {"alice"}

    # The model page tells it.
    req = urllib.request.Request(f"{url}/ui/models/recs")
    req.add_header("Authorization", "Basic " + __import__("base64").b64encode(b"alice:alice-password").decode())
    html = urllib.request.urlopen(req, timeout=10).read().decode()
    assert "@champion moved from v1 to v2 by <strong>" + bob + "</strong>" in html
    assert "@champion set to v1 by <strong>alice</strong>" in html

    # Account changes are in it for administrators (never a secret), not for others.
    everything = trail(url, max_results=1000)["records"]
    assert {"user.create", "token.create"} <= {r["action"] for r in everything}
    text = repr(everything)
    for secret in [bob_secret, "bob-password", "alice-password", "admin-password-1"]:
        assert secret not in text
    as_alice = trail(url, auth=("alice", "alice-password"), max_results=1000)["records"]
    assert as_alice and not any(r["resource"].startswith(("users/", "tokens/")) for r in as_alice)


def test_the_trail_refuses_bad_queries_and_cannot_be_changed(auth_server):  # noqa: F811
    url = auth_server.url
    for params, needle in [
        ({"action": "alias.move"}, "action"),
        ({"max_results": 0}, "max_results"),
        ({"max_results": 5000}, "max_results"),
        ({"since": 10, "until": 5}, "since"),
        ({"page_token": "x"}, "page_token"),
        ({"since": "yesterday"}, "since"),
    ]:
        r = requests.get(f"{url}/api/2.0/plinth/audit", params=params, auth=ADMIN, timeout=10)
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", (params, r.text)
        assert needle in r.json()["message"]
    assert requests.get(f"{url}/api/2.0/plinth/audit", timeout=10).status_code == 401
    for method in ["DELETE", "PATCH", "PUT", "POST"]:
        r = requests.request(method, f"{url}/api/2.0/plinth/audit", json={}, auth=ADMIN, timeout=10)
        assert r.status_code == 405, (method, r.status_code)
