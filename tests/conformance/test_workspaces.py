"""Workspaces (teams on one platform) as MLflow speaks them: the workspace API (`/api/3.0/mlflow/workspaces`,
`server-info`) answers as MLflow's own server started with `--enable-workspaces` does; the real `mlflow` client
(`mlflow.create_workspace`, `mlflow.set_workspace`) keeps two teams' experiments, runs and registered models
apart even under the same names; with `--auth`, a user sees only `default` and the workspaces they hold a role
in, never another team's work, and grants hold in their own workspace only (a matrix: level × operation ×
own/other workspace); the audit trail and the usage report are per workspace."""

import os
import shutil
import tempfile

import pytest
import requests

from conftest import PlinthServer, mlflow_server
from test_permissions import ADMIN, ALLOWED, LEVELS, PASSWORD, Client, admin_client, own_resources, start

API3 = "/api/3.0/mlflow"
API2 = "/api/2.0/mlflow"


def steps(url):
    """The same requests, in order, against one server: (status, body) per step."""
    out = {}

    def call(name, method, path, body=None, workspace=None, api=API3):
        kw = {"timeout": 30, "headers": {"X-MLFLOW-WORKSPACE": workspace} if workspace else {}}
        if method == "GET":
            kw["params"] = body
        elif body is not None:
            kw["json"] = body
        r = requests.request(method, url + api + path, **kw)
        try:
            payload = r.json()
        except ValueError:
            payload = None
        out[name] = (r.status_code, payload)
        return payload

    call("server_info", "GET", "/server-info")
    call("list_first", "GET", "/workspaces")
    call("create", "POST", "/workspaces", {"name": "team-a", "description": "A"})
    call("create_taken", "POST", "/workspaces", {"name": "team-a"})
    call("create_bad_name", "POST", "/workspaces", {"name": "Team_A"})
    call("create_reserved", "POST", "/workspaces", {"name": "api"})
    call("create_short", "POST", "/workspaces", {"name": "a"})
    call("create_no_name", "POST", "/workspaces", {})
    call("get", "GET", "/workspaces/team-a")
    call("get_default", "GET", "/workspaces/default")
    call("get_missing", "GET", "/workspaces/team-z")
    call("update", "PATCH", "/workspaces/team-a", {"description": "AA"})
    call("update_missing", "PATCH", "/workspaces/team-z", {"description": "AA"})
    call("list", "GET", "/workspaces")
    call("experiment_in_a", "POST", "/experiments/create", {"name": "shared"}, "team-a", API2)
    default_exp = call("experiment_in_default", "POST", "/experiments/create", {"name": "shared"}, None, API2)
    call("experiment_taken_in_a", "POST", "/experiments/create", {"name": "shared"}, "team-a", API2)
    call("by_name_in_a", "GET", "/experiments/get-by-name", {"experiment_name": "shared"}, "team-a", API2)
    call("default_experiment_from_a", "GET", "/experiments/get",
         {"experiment_id": (default_exp or {}).get("experiment_id", "0")}, "team-a", API2)
    call("model_in_a", "POST", "/registered-models/create", {"name": "m"}, "team-a", API2)
    call("model_in_default", "POST", "/registered-models/create", {"name": "m"}, None, API2)
    call("unknown_workspace_header", "GET", "/registered-models/get", {"name": "m"}, "team-z", API2)
    call("bad_workspace_header", "GET", "/experiments/search", {"max_results": 1}, "Bad_Name", API2)
    call("delete_default", "DELETE", "/workspaces/default")
    call("delete_bad_mode", "DELETE", "/workspaces/team-a?mode=NOPE")
    call("delete_not_empty", "DELETE", "/workspaces/team-a")
    call("create_b", "POST", "/workspaces", {"name": "team-b"})
    call("delete_empty", "DELETE", "/workspaces/team-b")
    call("delete_gone", "DELETE", "/workspaces/team-b")
    return out


def test_the_workspace_api_answers_as_mlflows_does():
    work = tempfile.mkdtemp(prefix="mlflow-ws-ref-")
    data_dir = tempfile.mkdtemp(prefix="plinth-ws-ref-")
    try:
        with mlflow_server(work, ["--enable-workspaces"], {**os.environ, "MLFLOW_ENABLE_WORKSPACES": "true"}) as url:
            mlflow = steps(url)
        srv = PlinthServer(data_dir).start()
        try:
            plinth = steps(srv.url)
        finally:
            srv.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)
    for step, (status, body) in mlflow.items():
        got_status, got = plinth[step]
        # MLflow answers INVALID_STATE with 500 (its table puts the code among server errors); a workspace that
        # still holds resources is the caller's to empty, so Plinth answers 400 with the same code.
        if step != "delete_not_empty":
            assert got_status == status, f"{step}: plinth {plinth[step]} vs mlflow {mlflow[step]}"
        if isinstance(body, dict) and "error_code" in body:
            assert (got or {}).get("error_code") == body["error_code"], f"{step}: {plinth[step]} vs {mlflow[step]}"
    for step in ["create", "get", "update"]:
        assert plinth[step][1]["workspace"] == mlflow[step][1]["workspace"], step
    assert [w["name"] for w in plinth["list"][1]["workspaces"]] == ["default", "team-a"]
    assert plinth["list"][1] == mlflow["list"][1]
    assert plinth["server_info"][1]["workspaces_enabled"] is True
    assert plinth["by_name_in_a"][1]["experiment"]["workspace"] == "team-a"
    assert plinth["by_name_in_a"][1]["experiment"]["experiment_id"] == plinth["experiment_in_a"][1]["experiment_id"]
    assert plinth["delete_not_empty"][1]["error_code"] == "INVALID_STATE"


@pytest.fixture
def open_plinth():
    data_dir = tempfile.mkdtemp(prefix="plinth-ws-")
    srv = PlinthServer(data_dir).start()
    yield srv
    srv.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def test_the_mlflow_client_keeps_two_teams_apart(open_plinth, monkeypatch):
    import mlflow
    from mlflow.exceptions import MlflowException

    for k in ["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_WORKSPACE"]:
        monkeypatch.delenv(k, raising=False)
    mlflow.set_tracking_uri(open_plinth.url)
    mlflow.set_registry_uri(open_plinth.url)
    try:
        for team in ["recs", "studio"]:
            mlflow.create_workspace(team, description=f"the {team} team")
        assert {w.name for w in mlflow.list_workspaces()} == {"default", "recs", "studio"}
        assert mlflow.get_workspace("recs").description == "the recs team"
        made = {}
        for team in ["recs", "studio"]:
            mlflow.set_workspace(team)
            client = mlflow.MlflowClient()
            exp = client.create_experiment("ranking")
            run = client.create_run(exp)
            client.log_metric(run.info.run_id, "ndcg", 0.3 if team == "recs" else 0.1)
            client.set_terminated(run.info.run_id)
            client.create_registered_model("ranker", tags={"team": team})
            client.create_model_version("ranker", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
            client.set_registered_model_alias("ranker", "champion", 1)
            made[team] = (exp, run.info.run_id)
        for team, other in [("recs", "studio"), ("studio", "recs")]:
            mlflow.set_workspace(team)
            client = mlflow.MlflowClient()
            assert [e.experiment_id for e in client.search_experiments() if e.name == "ranking"] == [made[team][0]]
            runs = client.search_runs([made[team][0]])
            assert [r.info.run_id for r in runs] == [made[team][1]]
            assert client.get_registered_model("ranker").tags["team"] == team
            assert client.get_model_version_by_alias("ranker", "champion").run_id == made[team][1]
            # The other team's experiment and run do not exist here, though their ids are known.
            with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST|No Experiment"):
                client.get_experiment(made[other][0])
            with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST|not found"):
                client.get_run(made[other][1])
            with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST|not found"):
                client.log_metric(made[other][1], "x", 1.0)
        mlflow.set_workspace(None)
        client = mlflow.MlflowClient()
        assert not [e for e in client.search_experiments() if e.name == "ranking"]
        with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
            client.get_registered_model("ranker")
        # A workspace that holds work is not deleted; an empty one is.
        with pytest.raises(MlflowException, match="still contains"):
            mlflow.delete_workspace("recs")
        # A workspace's own artifact root holds its new experiments; the proxy's scheme is refused.
        mlflow.update_workspace("studio", default_artifact_root="s3://studio-bucket/mlflow")
        mlflow.set_workspace("studio")
        located = mlflow.MlflowClient().get_experiment(mlflow.MlflowClient().create_experiment("elsewhere"))
        assert located.artifact_location == f"s3://studio-bucket/mlflow/{located.experiment_id}"
        mlflow.set_workspace(None)
        with pytest.raises(MlflowException, match="INVALID_PARAMETER_VALUE"):
            mlflow.create_workspace("proxied", default_artifact_root="mlflow-artifacts:/teams/proxied")
        mlflow.create_workspace("scratch")
        mlflow.delete_workspace("scratch")
        assert "scratch" not in {w.name for w in mlflow.list_workspaces()}
    finally:
        mlflow.set_workspace(None)


def in_ws(c: Client, workspace):
    """`c`'s calls in `workspace` (through MLflow's header)."""

    class InWorkspace(Client):
        def call(self, method, path, **kw):
            kw.setdefault("headers", {})["X-MLFLOW-WORKSPACE"] = workspace
            return super().call(method, path, **kw)

    return InWorkspace(c.url, c.auth)


@pytest.fixture
def two_teams(monkeypatch):
    """`--auth` with MLflow's default READ: workspaces `team-a` (alice) and `team-b` (bob), each user holding a
    role with a workspace-wide USE (members create there) in their own team's workspace."""
    srv, data_dir = start("READ")
    admin = Client(srv.url, ADMIN)
    auth = admin_client(srv.url, monkeypatch)
    for team, user in [("team-a", "alice"), ("team-b", "bob")]:
        requests.post(f"{srv.url}{API3}/workspaces", json={"name": team}, auth=ADMIN, timeout=10).raise_for_status()
        auth.create_user(user, PASSWORD)
        role = auth.create_role(team, "members")
        auth.add_role_permission(role.id, "workspace", "*", "USE")
        auth.assign_role(user, role.id)
    yield srv, admin
    srv.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def test_a_user_sees_only_their_teams_workspace(two_teams):
    srv, admin = two_teams
    alice, bob = Client(srv.url, "alice"), Client(srv.url, "bob")
    listed = requests.get(f"{srv.url}{API3}/workspaces", auth=("alice", PASSWORD), timeout=10).json()
    assert [w["name"] for w in listed["workspaces"]] == ["default", "team-a"]
    everything = requests.get(f"{srv.url}{API3}/workspaces", auth=ADMIN, timeout=10).json()
    assert [w["name"] for w in everything["workspaces"]] == ["default", "team-a", "team-b"]
    hidden = requests.get(f"{srv.url}{API3}/workspaces/team-b", auth=("alice", PASSWORD), timeout=10)
    assert (hidden.status_code, hidden.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    # Only administrators make workspaces.
    refused = requests.post(f"{srv.url}{API3}/workspaces", json={"name": "mine"}, auth=("alice", PASSWORD), timeout=10)
    assert (refused.status_code, refused.json()["error_code"]) == (403, "PERMISSION_DENIED")

    a, b = in_ws(alice, "team-a"), in_ws(bob, "team-b")
    a_exp, a_run, a_model = own_resources(a, "shared")
    b_exp, b_run, b_model = own_resources(b, "shared")
    assert a_model == b_model == "model-shared"
    a.ok("POST", "registered-models/alias", json={"name": a_model, "alias": "champion", "version": "1"})
    # Bob cannot enter team-a, whatever he asks there; its resources do not exist for him from his own workspace.
    status, body = in_ws(bob, "team-a").call("GET", "registered-models/get", params={"name": a_model})
    assert (status, body["error_code"], body["message"]) == (404, "RESOURCE_DOES_NOT_EXIST", "Workspace 'team-a' not found")
    status, body = b.call("GET", "experiments/get", params={"experiment_id": a_exp})
    assert (status, body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    status, body = b.call("POST", "runs/log-metric", json={"run_id": a_run, "key": "m", "value": 1, "timestamp": 1})
    assert (status, body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert b.ok("GET", "registered-models/get", params={"name": b_model})["registered_model"]["aliases"] == []
    found = b.ok("POST", "experiments/search", json={"max_results": 100})["experiments"]
    assert a_exp not in [e["experiment_id"] for e in found] and b_exp in [e["experiment_id"] for e in found]
    runs = b.ok("POST", "runs/search", json={"experiment_ids": [a_exp, b_exp]}).get("runs", [])
    assert [r["info"]["run_id"] for r in runs] == [b_run]
    # In default (everyone's, READ by default) neither team's work is listed.
    names = [m["name"] for m in alice.ok("GET", "registered-models/search").get("registered_models", [])]
    assert a_model not in names

    # The trail is per workspace: alice's alias move is in team-a's, not in default's or team-b's.
    def trail(user, workspace):
        r = requests.get(f"{srv.url}/api/2.0/plinth/audit", params={"resource": f"models/{a_model}"},
                         headers={"X-MLFLOW-WORKSPACE": workspace}, auth=user, timeout=10)
        r.raise_for_status()
        return r.json()["records"]

    moves = [r for r in trail(ADMIN, "team-a") if r["action"] == "alias.set"]
    assert [(r["actor"], r["after"], r["workspace"]) for r in moves] == [("alice", "1", "team-a")]
    assert not [r for r in trail(ADMIN, "team-b") if r["action"] == "alias.set"]
    assert not trail(ADMIN, "default")

    # The Prometheus exposition names every workspace's deployments and workspaces: administrators only.
    assert requests.get(f"{srv.url}/metrics", auth=("alice", PASSWORD), timeout=10).status_code == 403
    assert requests.get(f"{srv.url}/metrics", auth=ADMIN, timeout=10).status_code == 200

    # Usage: the whole platform with a line per workspace, or one workspace's.
    usage = requests.get(f"{srv.url}/api/2.0/plinth/usage", auth=ADMIN, timeout=30).json()
    per = {w["workspace"]: w for w in usage["workspaces"]}
    assert per["team-a"]["active_users"] == 1 and per["team-a"]["runs_created"] == 1
    assert per["team-b"]["versions_registered"] == 1
    assert usage["totals"]["workspaces"] == 3 and usage["active_workspaces"]["day"] >= 2
    one = requests.get(f"{srv.url}/api/2.0/plinth/usage", params={"workspace": "team-a"}, auth=ADMIN, timeout=30)
    one = one.json()
    assert [w["workspace"] for w in one["workspaces"]] == ["team-a"]
    assert one["totals"]["registered_models"] == 1 and one["workspace"] == "team-a"


def test_grants_hold_in_their_own_workspace_only(two_teams, monkeypatch):
    """Each level, granted through a role of team-a on team-a's resources × each operation × the resource in
    the user's own workspace (team-a) or in another (team-b, the same names): only the own one answers."""
    srv, admin = two_teams
    auth = admin_client(srv.url, monkeypatch)
    owners = {"team-a": in_ws(Client(srv.url, "alice"), "team-a"), "team-b": in_ws(Client(srv.url, "bob"), "team-b")}
    for level in LEVELS:
        user = f"member-{level.lower()}"
        auth.create_user(user, PASSWORD)
        role = auth.create_role("team-a", f"level-{level.lower()}")
        auth.assign_role(user, role.id)
        made = {ws: own_resources(owner, level.lower()) for ws, owner in owners.items()}
        exp, _, model = made["team-a"]
        # DENY on each resource is the matrix's "none" (members get the default READ otherwise).
        granted = "DENY" if level == "NONE" else level
        auth.add_role_permission(role.id, "experiment", exp, granted)
        auth.add_role_permission(role.id, "registered_model", model, granted)
        for ws in ["team-a", "team-b"]:
            exp, run, model = made[ws]
            c = in_ws(Client(srv.url, user), ws)
            can_read, can_update, can_delete = ALLOWED[level] if ws == "team-a" else (False, False, False)

            def expect(allowed, readable, method, path, **kw):
                status, body = c.call(method, path, **kw)
                if allowed:
                    assert status == 200, (level, ws, path, status, body)
                else:
                    want = (403, "PERMISSION_DENIED") if readable else (404, "RESOURCE_DOES_NOT_EXIST")
                    assert (status, body.get("error_code")) == want, (level, ws, path, body)

            expect(can_read, can_read, "GET", "experiments/get", params={"experiment_id": exp})
            expect(can_read, can_read, "GET", "runs/get", params={"run_id": run})
            expect(can_read, can_read, "GET", "registered-models/get", params={"name": model})
            expect(can_update, can_read, "POST", "runs/log-metric",
                   json={"run_id": run, "key": "m", "value": 1.0, "timestamp": 1, "step": 0})
            expect(can_update, can_read, "POST", "registered-models/alias",
                   json={"name": model, "alias": "a", "version": "1"})
            expect(can_delete, can_read, "DELETE", "registered-models/delete", json={"name": model})
            expect(can_delete, can_read, "POST", "experiments/delete", json={"experiment_id": exp})


def test_the_ui_works_in_the_workspace_its_user_picks(two_teams):
    """The UI's workspace is a choice on /ui/workspaces (a cookie, with the CSRF token every form carries):
    alice picks team-a and sees its experiments, not default's; team-b is not hers to pick."""
    import re

    srv, admin = two_teams
    in_ws(Client(srv.url, "alice"), "team-a").ok("POST", "experiments/create", json={"name": "a-only-experiment"})
    Client(srv.url, "alice").ok("POST", "experiments/create", json={"name": "default-experiment"})
    s = requests.Session()
    s.auth = ("alice", PASSWORD)
    page = s.get(f"{srv.url}/ui/workspaces", timeout=10)
    assert page.status_code == 200 and "team-a" in page.text and "team-b" not in page.text
    assert "Workspace: <strong>default</strong>" in page.text
    token = re.search(r'name="csrf" value="([0-9a-f]{32})"', page.text).group(1)
    before = s.get(f"{srv.url}/ui/experiments", timeout=10).text
    assert "default-experiment" in before and "a-only-experiment" not in before
    switched = s.post(f"{srv.url}/ui/workspaces", data={"csrf": token, "workspace": "team-a"}, timeout=10)
    assert switched.status_code == 200, switched.text
    after = s.get(f"{srv.url}/ui/experiments", timeout=10).text
    assert "a-only-experiment" in after and "default-experiment" not in after
    assert "Workspace: <strong>team-a</strong>" in after
    # Another team's workspace cannot be picked, nor reached through a forged cookie.
    refused = s.post(f"{srv.url}/ui/workspaces", data={"csrf": token, "workspace": "team-b"}, timeout=10)
    assert refused.status_code == 404
    forged = requests.get(f"{srv.url}/ui/experiments", cookies={"plinth_workspace": "team-b"},
                          auth=("alice", PASSWORD), timeout=10)
    assert forged.status_code == 404 and "a-only-experiment" not in forged.text
