"""Permissions with `plinth server --auth`, in MLflow's basic-auth model: MLflow's own auth client
(`mlflow.server.get_app_client("basic-auth")`) administers roles, role permissions, assignments and
per-user grants; the `mlflow` client of one team cannot see or change another team's experiments,
runs and models; and the permission matrix (no grant, READ, EDIT, MANAGE × read, update, delete on
another user's experiment, run and registered model) answers as MLflow's levels say."""

import shutil
import tempfile

import pytest
import requests

from conftest import PlinthServer

ADMIN = ("admin", "admin-password-1")
PASSWORD = "team-password-12"


def start(default_permission):
    data_dir = tempfile.mkdtemp(prefix="plinth-perm-")
    srv = PlinthServer(
        data_dir,
        extra_args=["--auth", "--default-permission", default_permission],
        env={"PLINTH_ADMIN_USER": ADMIN[0], "PLINTH_ADMIN_PASSWORD": ADMIN[1]},
    ).start()
    return srv, data_dir


def server_with(default_permission):
    srv, data_dir = start(default_permission)
    yield srv
    srv.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def closed_server():
    """Nothing is readable unless granted (MLflow's default_permission = NO_PERMISSIONS)."""
    yield from server_with("NO_PERMISSIONS")


@pytest.fixture
def open_server():
    """MLflow's default: every signed-in user reads everything (READ)."""
    yield from server_with("READ")


class Client:
    """One user's REST calls: (status, body)."""

    def __init__(self, url, user):
        self.url, self.auth = url, (user, PASSWORD) if isinstance(user, str) else user

    def call(self, method, path, **kw):
        version = "3.0" if path.startswith(("roles/", "users/permissions", "users/roles", "users/current")) else "2.0"
        r = requests.request(method, f"{self.url}/api/{version}/mlflow/{path}", auth=self.auth, timeout=30, **kw)
        body = r.json() if r.content else {}
        return r.status_code, body

    def ok(self, method, path, **kw):
        status, body = self.call(method, path, **kw)
        assert status == 200, (method, path, status, body)
        return body


def admin_client(url, monkeypatch):
    from mlflow.server import get_app_client

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    return get_app_client("basic-auth", tracking_uri=url)


def own_resources(c: Client, tag: str):
    """An experiment with a run, and a registered model with a version, made by `c` (so it manages them)."""
    exp = c.ok("POST", "experiments/create", json={"name": f"exp-{tag}"})["experiment_id"]
    run = c.ok("POST", "runs/create", json={"experiment_id": exp})["run"]["info"]["run_id"]
    c.ok("POST", "registered-models/create", json={"name": f"model-{tag}"})
    c.ok("POST", "model-versions/create", json={"name": f"model-{tag}", "source": f"runs:/{run}/model", "run_id": run})
    return exp, run, f"model-{tag}"


def test_mlflow_auth_client_administers_roles_and_grants(open_server, monkeypatch):
    from mlflow.exceptions import RestException

    auth = admin_client(open_server.url, monkeypatch)
    auth.create_user("alice", PASSWORD)
    bob = auth.create_user("bob", PASSWORD)
    alice = Client(open_server.url, "alice")
    exp, run, model = own_resources(alice, "a")

    role = auth.create_role("default", "recs-team", description="recommendations")
    assert (role.name, role.workspace, role.description, role.permissions) == ("recs-team", "default", "recommendations", [])
    p = auth.add_role_permission(role.id, "experiment", exp, "EDIT")
    assert (p.role_id, p.resource_type, p.resource_pattern, p.permission) == (role.id, "experiment", exp, "EDIT")
    auth.add_role_permission(role.id, "registered_model", "*", "READ")
    assignment = auth.assign_role("bob", role.id)
    assert (assignment.user_id, assignment.role_id) == (bob.id, role.id)
    # A user's own grants live in a personal role (`__user_<id>__`), listed as MLflow lists it.
    assert [r.name for r in auth.list_roles("default")] == ["__user_2__", "recs-team"]
    assert [r.name for r in auth.list_user_roles("bob")] == ["recs-team"]
    assert [a.user_id for a in auth.list_role_users(role.id)] == [bob.id]
    assert len(auth.get_role(role.id).permissions) == 2
    assert {x.permission for x in auth.list_role_permissions(role.id)} == {"EDIT", "READ"}
    assert auth.update_role(role.id, description="recs and ranking").description == "recs and ranking"

    # The grant decides what bob may do with alice's experiment: EDIT logs, but does not delete.
    result = auth.get_user_permission("bob", "experiment", exp)
    assert (result.permission, result.allowed) == ("EDIT", True)
    as_bob = Client(open_server.url, "bob")
    as_bob.ok("POST", "runs/log-metric", json={"run_id": run, "key": "ndcg", "value": 0.3, "timestamp": 1, "step": 0})
    status, body = as_bob.call("POST", "experiments/delete", json={"experiment_id": exp})
    assert (status, body["error_code"]) == (403, "PERMISSION_DENIED")
    p = auth.update_role_permission(p.id, "MANAGE")
    assert p.permission == "MANAGE"
    assert auth.get_user_permission("bob", "experiment", exp).permission == "MANAGE"
    auth.remove_role_permission(p.id)
    assert auth.get_user_permission("bob", "experiment", exp).permission == "READ", "the default where nothing is granted"

    # Per-user grants: alice manages her model, so she may share it herself.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    from mlflow.server import get_app_client

    as_alice = get_app_client("basic-auth", tracking_uri=open_server.url)
    as_alice.grant_user_permission("bob", "registered_model", model, "EDIT")
    with pytest.raises(RestException, match="RESOURCE_ALREADY_EXISTS"):
        as_alice.grant_user_permission("bob", "registered_model", model, "READ")
    assert as_alice.get_user_permission("bob", "registered_model", model).permission == "EDIT"
    as_bob.ok("POST", "registered-models/alias", json={"name": model, "alias": "champion", "version": "1"})
    as_alice.revoke_user_permission("bob", "registered_model", model)
    with pytest.raises(RestException, match="RESOURCE_DOES_NOT_EXIST"):
        as_alice.revoke_user_permission("bob", "registered_model", model)
    status, body = as_bob.call("POST", "registered-models/alias", json={"name": model, "alias": "champion", "version": "1"})
    assert (status, body["error_code"]) == (403, "PERMISSION_DENIED")
    # Only administrators (and workspace administrators) manage roles; nobody shares what they do not manage.
    with pytest.raises(RestException, match="PERMISSION_DENIED"):
        as_alice.create_role("default", "alices-own")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "bob")
    with pytest.raises(RestException, match="PERMISSION_DENIED"):
        get_app_client("basic-auth", tracking_uri=open_server.url).grant_user_permission("bob", "experiment", exp, "MANAGE")

    # Bad input: MLflow's messages, 400s.
    auth = admin_client(open_server.url, monkeypatch)
    with pytest.raises(RestException, match="Invalid permission 'WRITE'"):
        auth.add_role_permission(role.id, "experiment", exp, "WRITE")
    with pytest.raises(RestException, match="Invalid resource type 'table'"):
        auth.add_role_permission(role.id, "table", exp, "READ")
    with pytest.raises(RestException, match="supports only wildcard"):
        auth.add_role_permission(role.id, "run", run, "READ")
    with pytest.raises(RestException, match="Workspace-wide grants accept only"):
        auth.add_role_permission(role.id, "workspace", "*", "READ")
    with pytest.raises(RestException, match="already exists"):
        auth.create_role("default", "recs-team")
    with pytest.raises(RestException, match="reserved '__user_' prefix"):
        auth.create_role("default", "__user_7__")
    with pytest.raises(RestException, match="Role with id=999 not found"):
        auth.get_role(999)
    with pytest.raises(RestException, match="Workspace 'studio' not found"):
        auth.create_role("studio", "editors")

    # Every change is in the audit trail, as its actor.
    trail = requests.get(f"{open_server.url}/api/2.0/plinth/audit", auth=ADMIN, params={"max_results": 200}, timeout=30).json()
    actions = [(r["actor"], r["action"]) for r in trail["records"]]
    for expected in [("admin", "role.create"), ("admin", "role.permission_add"), ("admin", "role.assign"),
                     ("admin", "role.permission_update"), ("admin", "role.permission_remove"),
                     ("alice", "permission.grant"), ("alice", "permission.revoke")]:
        assert expected in actions, expected

    auth.unassign_role("bob", role.id)
    assert [r.name for r in auth.list_user_roles("bob")] == [f"__user_{bob.id}__"]
    auth.delete_role(role.id)
    assert "recs-team" not in [r.name for r in auth.list_roles("default")]


def test_one_team_cannot_see_or_change_another_teams_work(closed_server, monkeypatch):
    from mlflow import MlflowClient
    from mlflow.exceptions import RestException

    auth = admin_client(closed_server.url, monkeypatch)
    auth.create_user("alice", PASSWORD)
    auth.create_user("bob", PASSWORD)

    # Alice's team works through the mlflow client.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    client = MlflowClient(tracking_uri=closed_server.url, registry_uri=closed_server.url)
    exp = client.create_experiment("recs-alice")
    run = client.create_run(exp).info.run_id
    client.log_metric(run, "ndcg_at_10", 0.31)
    client.create_registered_model("recs-alice-model")
    client.create_model_version("recs-alice-model", f"runs:/{run}/model", run_id=run)
    client.set_registered_model_alias("recs-alice-model", "champion", "1")

    # Bob sees none of it: not in searches, and asked by id or name it does not exist.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "bob")
    client = MlflowClient(tracking_uri=closed_server.url, registry_uri=closed_server.url)
    assert "recs-alice" not in [e.name for e in client.search_experiments()]
    assert client.search_runs([exp]) == []
    assert client.search_registered_models() == []
    assert client.search_model_versions("name = 'recs-alice-model'") == []
    for call in [lambda: client.get_experiment(exp), lambda: client.get_run(run),
                 lambda: client.get_registered_model("recs-alice-model"),
                 lambda: client.get_model_version_by_alias("recs-alice-model", "champion"),
                 lambda: client.log_metric(run, "x", 1.0),
                 lambda: client.set_registered_model_alias("recs-alice-model", "champion", "1"),
                 lambda: client.delete_registered_model("recs-alice-model")]:
        with pytest.raises(RestException, match="RESOURCE_DOES_NOT_EXIST"):
            call()
    assert client.get_experiment_by_name("recs-alice") is None
    # What bob makes is his: he may create in the default workspace, and alice cannot see it.
    own = client.create_experiment("recs-bob")
    assert [e.name for e in client.search_experiments() if e.name.startswith("recs-")] == ["recs-bob"]
    # The trail shows bob nothing of alice's.
    trail = requests.get(f"{closed_server.url}/api/2.0/plinth/audit", auth=("bob", PASSWORD), timeout=30).json()
    assert {r["resource"] for r in trail["records"]} == {f"experiments/{own}"}, trail
    # Jobs: bob's training job (its experiment and model made as his) is his; alice sees none of it.
    with open(f"{closed_server.data_dir}/datasets/plays.csv", "w") as f:
        f.write("user,item\n" + "".join(f"u{u},i{(u * 7 + k) % 40}\n" for u in range(60) for k in range(6)))
    spec = {"data": "plays.csv", "algo": "popularity", "split": "none", "register": "recs-bob-model",
            "experiment": "recs-bob-jobs"}
    r = requests.post(f"{closed_server.url}/api/2.0/plinth/jobs/train-recommender", json=spec, auth=("bob", PASSWORD),
                      timeout=30)
    assert r.status_code == 200, r.text
    job = r.json()["job"]["job_id"]
    as_alice = ("alice", PASSWORD)
    listed = requests.get(f"{closed_server.url}/api/2.0/plinth/jobs/list", auth=as_alice, timeout=30).json()["jobs"]
    assert job not in [j["job_id"] for j in listed]
    for method, path, kw in [("GET", "jobs/get", {"params": {"job_id": job}}),
                             ("POST", "jobs/cancel", {"json": {"job_id": job}})]:
        r = requests.request(method, f"{closed_server.url}/api/2.0/plinth/{path}", auth=as_alice, timeout=30, **kw)
        assert (r.status_code, r.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST"), r.text
    # …and may not make a job write into bob's experiment or model.
    r = requests.post(f"{closed_server.url}/api/2.0/plinth/jobs/train-recommender", json=spec, auth=as_alice, timeout=30)
    assert (r.status_code, r.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST"), r.text
    bob_jobs = requests.get(f"{closed_server.url}/api/2.0/plinth/jobs/list", auth=("bob", PASSWORD), timeout=30)
    assert job in [j["job_id"] for j in bob_jobs.json()["jobs"]]

    # Serving: bob deploys what his job registered; alice can neither see the deployment nor call it.
    from test_usage import wait_job

    assert wait_job(closed_server.url, job, ("bob", PASSWORD))["status"] == "SUCCEEDED"
    r = requests.post(f"{closed_server.url}/api/2.0/plinth/deployments/create", auth=("bob", PASSWORD), timeout=60,
                      json={"name": "bob-live", "variants": [{"name": "a", "model": "recs-bob-model/1"}]})
    assert r.status_code == 200, r.text
    call = f"{closed_server.url}/v1/deployments/bob-live/recommend"
    r = requests.post(call, json={"user": "u1", "k": 3}, auth=("bob", PASSWORD), timeout=30)
    assert r.status_code == 200, r.text
    r = requests.post(call, json={"user": "u1", "k": 3}, auth=as_alice, timeout=30)
    assert r.status_code == 404 and "error" in r.json(), r.text
    r = requests.get(f"{closed_server.url}/v2/models/bob-live", auth=as_alice, timeout=30)
    assert r.status_code == 404, r.text
    r = requests.get(f"{closed_server.url}/api/2.0/plinth/deployments/list", auth=as_alice, timeout=30)
    assert "bob-live" not in r.text
    # …nor point a deployment of hers at bob's model.
    r = requests.post(f"{closed_server.url}/api/2.0/plinth/deployments/create", auth=as_alice, timeout=60,
                      json={"name": "alice-live", "variants": [{"name": "a", "model": "recs-bob-model/1"}]})
    assert (r.status_code, r.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST"), r.text

    # Nor does the UI.
    page = requests.get(f"{closed_server.url}/ui/models", auth=("bob", PASSWORD), timeout=30)
    assert page.status_code == 200 and "recs-alice-model" not in page.text
    page = requests.get(f"{closed_server.url}/ui/experiments/{exp}", auth=("bob", PASSWORD), timeout=30)
    assert page.status_code == 404 and "recs-alice" not in page.text


LEVELS = ["NONE", "READ", "EDIT", "MANAGE"]
# What each level may do to another user's resource: read, update, delete.
ALLOWED = {"NONE": (False, False, False), "READ": (True, False, False), "EDIT": (True, True, False),
           "MANAGE": (True, True, True)}


def test_permission_matrix(closed_server, monkeypatch):
    """Each level (granted through a role) × each operation, on the owner's resources and the user's own."""
    auth = admin_client(closed_server.url, monkeypatch)
    auth.create_user("owner", PASSWORD)
    owner = Client(closed_server.url, "owner")
    for level in LEVELS:
        user = f"user-{level.lower()}"
        auth.create_user(user, PASSWORD)
        exp, run, model = own_resources(owner, level.lower())
        if level != "NONE":
            role = auth.create_role("default", f"team-{level.lower()}")
            auth.add_role_permission(role.id, "experiment", exp, level)
            auth.add_role_permission(role.id, "registered_model", model, level)
            auth.assign_role(user, role.id)
        c = Client(closed_server.url, user)
        can_read, can_update, can_delete = ALLOWED[level]

        def expect(allowed, readable, method, path, **kw):
            status, body = c.call(method, path, **kw)
            if allowed:
                assert status == 200, (level, path, status, body)
            else:
                # What the user may not read does not exist for them; what they may read but not change is refused.
                want = (403, "PERMISSION_DENIED") if readable else (404, "RESOURCE_DOES_NOT_EXIST")
                assert (status, body.get("error_code")) == want, (level, path, body)

        expect(can_read, can_read, "GET", "experiments/get", params={"experiment_id": exp})
        expect(can_read, can_read, "GET", "runs/get", params={"run_id": run})
        expect(can_read, can_read, "GET", "registered-models/get", params={"name": model})
        expect(can_read, can_read, "GET", "model-versions/get", params={"name": model, "version": "1"})
        expect(can_update, can_read, "POST", "runs/log-metric",
               json={"run_id": run, "key": "m", "value": 1.0, "timestamp": 1, "step": 0})
        expect(can_update, can_read, "POST", "runs/create", json={"experiment_id": exp})
        expect(can_update, can_read, "POST", "experiments/set-experiment-tag",
               json={"experiment_id": exp, "key": "k", "value": "v"})
        expect(can_update, can_read, "POST", "registered-models/alias", json={"name": model, "alias": "a", "version": "1"})
        expect(can_update, can_read, "PATCH", "registered-models/update", json={"name": model, "description": "d"})
        expect(can_delete, can_read, "DELETE", "model-versions/delete", json={"name": model, "version": "1"})
        expect(can_delete, can_read, "POST", "runs/delete", json={"run_id": run})
        expect(can_delete, can_read, "DELETE", "registered-models/delete", json={"name": model})
        expect(can_delete, can_read, "POST", "experiments/delete", json={"experiment_id": exp})
        # Searches list exactly what may be read.
        names = [m["name"] for m in c.ok("GET", "registered-models/search").get("registered_models", [])]
        assert (model in names) == (can_read and not can_delete), (level, names)
        # On their own resources every user may do everything.
        mine_exp, mine_run, mine_model = own_resources(c, f"own-{level.lower()}")
        c.ok("POST", "runs/log-metric", json={"run_id": mine_run, "key": "m", "value": 1.0, "timestamp": 1, "step": 0})
        c.ok("POST", "registered-models/alias", json={"name": mine_model, "alias": "a", "version": "1"})
        c.ok("DELETE", "registered-models/delete", json={"name": mine_model})
        c.ok("POST", "experiments/delete", json={"experiment_id": mine_exp})
    # An administrator is never restricted.
    admin = Client(closed_server.url, ADMIN)
    exp, run, model = own_resources(owner, "for-admin")
    admin.ok("POST", "runs/log-metric", json={"run_id": run, "key": "m", "value": 1.0, "timestamp": 1, "step": 0})
    admin.ok("DELETE", "registered-models/delete", json={"name": model})
