"""Replicas: several `plinth server` processes over one PostgreSQL database
behave as one server. Runs in the test command's PostgreSQL pass (with
PLINTH_TEST_POSTGRES set); over SQLite there is nothing to share.

- a job submitted through any replica runs on exactly one;
- a replica killed (-9) mid-job loses its lease and another one takes the
  job over and runs it again, its attempt counted;
- a cancel sent to a replica that does not run the job reaches the one that does;
- a replica stopped with SIGTERM gives its job back at once (no lease to wait out, no attempt counted);
- what one replica writes, every replica reads at once;
- through nginx (round-robin over the three), the mlflow client sees one server, and a replica killed under
  load loses no acknowledged write;
- every replica gives a user the same variant, and an alias moved through one replica is served by another
  within 2 s;
- with --auth, a grant revoked through one replica is refused by the others at once.
"""

import os
import shutil
import subprocess
import tempfile
import time

import pytest
import requests

from conftest import POSTGRES, Nginx, PlinthServer

pytestmark = pytest.mark.skipif(not POSTGRES, reason="replicas share a PostgreSQL store (PLINTH_TEST_POSTGRES)")

API = "/api/2.0"


@pytest.fixture
def replicas():
    data_dir = tempfile.mkdtemp(prefix="plinth-replicas-")
    datasets = os.path.join(data_dir, "datasets")
    os.makedirs(datasets)
    rows = ["user,item\n"] + [f"u{u},i{(u * 7 + k) % 300}\n" for u in range(200) for k in range(30)]
    with open(os.path.join(datasets, "d.csv"), "w") as f:
        f.write("".join(rows))
    # One data dir (artifacts on one disk), one database: three processes.
    servers = [PlinthServer(data_dir, extra_args=["--job-lease-ms", "1500"]).start() for _ in range(3)]
    yield servers
    for s in servers:
        s.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def get_job(server, job_id):
    r = requests.get(f"{server.url}{API}/plinth/jobs/get", params={"job_id": job_id}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["job"]


def wait_for(check, timeout=60.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_writes_through_one_replica_are_read_through_all(replicas):
    a, b, c = replicas
    name = f"shared-{time.time_ns()}"
    r = requests.post(f"{a.url}{API}/mlflow/experiments/create", json={"name": name}, timeout=30)
    assert r.status_code == 200, r.text
    exp = r.json()["experiment_id"]
    for s in (b, c):
        got = requests.get(f"{s.url}{API}/mlflow/experiments/get", params={"experiment_id": exp}, timeout=30).json()
        assert got["experiment"]["name"] == name
    # A name taken through one replica is taken for all.
    r = requests.post(f"{c.url}{API}/mlflow/experiments/create", json={"name": name}, timeout=30)
    assert r.status_code == 400 and r.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"


def test_a_killed_replicas_job_is_taken_over_and_cancel_reaches_it(replicas):
    # Hours of epochs: it only ends by being cancelled.
    spec = {"data": "d.csv", "algo": "bpr", "iterations": 10_000_000, "register": "never", "experiment": "replicas"}
    r = requests.post(f"{replicas[0].url}{API}/plinth/jobs/train-recommender", json=spec, timeout=30)
    assert r.status_code == 200, r.text
    job_id = r.json()["job"]["job_id"]
    first = wait_for(lambda: (j := get_job(replicas[1], job_id))["status"] == "RUNNING" and j, what="job start")
    assert first["attempts"] == 1 and first["worker"]
    # Exactly one replica runs it: the others keep claiming nothing.
    time.sleep(2)
    assert get_job(replicas[2], job_id)["worker"] == first["worker"]

    # Kill -9 the replica that holds it (each logs its worker id at start).
    def holder_of(worker):
        return next(s for s in replicas if s.proc and worker in open(s.log.name, errors="replace").read())

    holder = holder_of(first["worker"])
    holder.stop(kill=True)
    survivors = [s for s in replicas if s is not holder]
    # Its lease (1.5 s) ends; another replica claims the job and runs it again.
    taken = wait_for(lambda: (j := get_job(survivors[0], job_id))["status"] == "RUNNING"
                     and j["worker"] != first["worker"] and j, timeout=20, what="takeover")
    assert taken["attempts"] == 2, taken

    # Cancel through the replica that does not run it: the request travels through the store.
    bystander = next(s for s in survivors if s is not holder_of(taken["worker"]))
    r = requests.post(f"{bystander.url}{API}/plinth/jobs/cancel", json={"job_id": job_id}, timeout=60)
    assert r.status_code == 200, r.text
    done = wait_for(lambda: (j := get_job(bystander, job_id))["status"] != "RUNNING" and j, what="cancel")
    assert done["status"] == "CANCELLED", done


def test_a_replica_stopped_with_sigterm_gives_its_job_back_at_once(replicas):
    spec = {"data": "d.csv", "algo": "bpr", "iterations": 10_000_000, "register": "never", "experiment": "replicas"}
    r = requests.post(f"{replicas[0].url}{API}/plinth/jobs/train-recommender", json=spec, timeout=30)
    assert r.status_code == 200, r.text
    job_id = r.json()["job"]["job_id"]
    first = wait_for(lambda: (j := get_job(replicas[1], job_id))["status"] == "RUNNING" and j, what="job start")
    holder = next(s for s in replicas if first["worker"] in open(s.log.name, errors="replace").read())
    holder.stop()  # SIGTERM: drains, releases the lease
    survivors = [s for s in replicas if s is not holder]
    # Taken over long before a lease could have run out (1.5 s here, 30 s by default), the attempt not counted.
    started = time.time()
    taken = wait_for(lambda: (j := get_job(survivors[0], job_id))["status"] == "RUNNING"
                     and j["worker"] != first["worker"] and j, timeout=20, what="takeover")
    assert taken["attempts"] == 1, taken
    assert time.time() - started < 5
    r = requests.post(f"{survivors[1].url}{API}/plinth/jobs/cancel", json={"job_id": job_id}, timeout=60)
    assert r.status_code == 200, r.text
    assert wait_for(lambda: (j := get_job(survivors[0], job_id))["status"] != "RUNNING" and j,
                    what="cancel")["status"] == "CANCELLED"


@pytest.fixture
def balanced(replicas):
    """nginx round-robin over the three replicas, on a free port."""
    nginx = Nginx([s.port for s in replicas])
    yield nginx.url
    nginx.stop()


def test_through_nginx_the_mlflow_client_sees_one_server(balanced, replicas):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=balanced, registry_uri=balanced)
    exp = client.create_experiment(f"nginx-{time.time_ns()}")
    runs = []
    for i in range(6):
        run = client.create_run(exp, run_name=f"r{i}")
        client.log_batch(run.info.run_id,
                         metrics=[mlflow.entities.Metric("acc", i / 10, 1, s) for s in range(50)],
                         params=[mlflow.entities.Param("i", str(i))])
        runs.append(run.info.run_id)
    found = client.search_runs([exp], "metrics.acc > 0.25", order_by=["metrics.acc DESC"])
    assert [r.data.params["i"] for r in found] == ["5", "4", "3"]
    name = f"nginx-model-{time.time_ns()}"
    client.create_registered_model(name)
    client.create_model_version(name, f"runs:/{runs[0]}/model", run_id=runs[0])
    client.set_registered_model_alias(name, "champion", "1")
    # Every replica, asked directly, answers the same.
    for s in replicas:
        direct = mlflow.MlflowClient(tracking_uri=s.url, registry_uri=s.url)
        assert len(direct.get_metric_history(runs[3], "acc")) == 50
        assert direct.get_model_version_by_alias(name, "champion").version == "1"


def test_killing_a_replica_under_load_loses_no_acknowledged_write(balanced, replicas):
    r = requests.post(f"{balanced}{API}/mlflow/experiments/create", json={"name": f"load-{time.time_ns()}"},
                      timeout=30)
    exp = r.json()["experiment_id"]
    run = requests.post(f"{balanced}{API}/mlflow/runs/create", json={"experiment_id": exp}, timeout=30).json()
    run_id = run["run"]["info"]["run_id"]
    acknowledged = []
    for step in range(400):
        if step == 150:
            replicas[0].stop(kill=True)  # mid-stream, without warning
        body = {"run_id": run_id, "key": "loss", "value": step / 7, "timestamp": 1000 + step, "step": step}
        for _ in range(20):  # the client retries what was not acknowledged (a 502 while nginx notices)
            try:
                if requests.post(f"{balanced}{API}/mlflow/runs/log-metric", json=body, timeout=10).status_code == 200:
                    acknowledged.append(step)
                    break
            except requests.RequestException:
                pass
            time.sleep(0.05)
    assert len(acknowledged) == 400, "every point was eventually acknowledged through nginx"
    history = requests.get(f"{replicas[1].url}{API}/mlflow/metrics/get-history",
                           params={"run_id": run_id, "metric_key": "loss", "max_results": 1000}, timeout=30).json()
    assert sorted(int(m["step"]) for m in history["metrics"]) == acknowledged


def test_an_alias_moved_through_one_replica_is_served_by_every_replica_and_ab_is_sticky(replicas):
    from conftest import PLINTH_BIN

    a, b, c = replicas
    data = os.path.join(a.data_dir, "datasets", "d.csv")
    name = f"shared-recs-{time.time_ns()}"

    def train(*extra):
        out = subprocess.run([PLINTH_BIN, "train", "recommender", "--data", data, "--algo", "popularity",
                              "--split", "none", "--register", name, *extra, "--tracking-uri", a.url, "--json"],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr

    train("--alias", "champion")  # version 1, @champion
    dep = f"shared-{time.time_ns()}"
    spec = {"name": dep, "variants": [{"name": "a", "model": f"{name}@champion", "weight": 1},
                                      {"name": "b", "model": f"{name}/1", "weight": 1}]}
    r = requests.post(f"{a.url}{API}/plinth/deployments/create", json=spec, timeout=60)
    assert r.status_code == 200, r.text

    def served(server, user):
        r = requests.post(f"{server.url}/v1/deployments/{dep}/recommend", json={"user": user, "k": 3}, timeout=30)
        return r.json() if r.status_code == 200 else None

    # Every replica serves the deployment, and gives each user the same variant (a hash of salt and user).
    wait_for(lambda: all(served(s, "u1") for s in replicas), timeout=10, what="the deployment on every replica")
    for u in range(40):
        variants = {served(s, f"u{u}")["variant"] for s in replicas}
        assert len(variants) == 1, (u, variants)

    # An alias moved through one replica is served by another within 2 s.
    train()  # version 2
    r = requests.post(f"{b.url}{API}/mlflow/registered-models/alias",
                      json={"name": name, "alias": "champion", "version": "2"}, timeout=30)
    assert r.status_code == 200, r.text
    moved = time.time()
    user = next(f"u{u}" for u in range(200) if served(c, f"u{u}")["variant"] == "a")
    wait_for(lambda: served(c, user)["model_version"] == 2, timeout=5, what="the moved alias on another replica")
    assert time.time() - moved < 2.0


def test_a_revoked_grant_is_refused_by_every_replica_at_once():
    """With --auth: bob's grant on alice's model, read (and cached) by two replicas, is revoked through a third;
    both refuse bob within a second — the change is announced, not waited out (the cache keeps grants 5 s)."""
    data_dir = tempfile.mkdtemp(prefix="plinth-replicas-auth-")
    admin = ("admin", "admin-password-1")
    env = {"PLINTH_ADMIN_USER": admin[0], "PLINTH_ADMIN_PASSWORD": admin[1]}
    servers = [PlinthServer(data_dir, extra_args=["--auth", "--default-permission", "NO_PERMISSIONS"], env=env).start()
               for _ in range(3)]
    try:
        a, b, c = servers
        for user in ["alice", "bob"]:
            r = requests.post(f"{a.url}{API}/mlflow/users/create", json={"username": user, "password": f"{user}-password-1"},
                              auth=admin, timeout=30)
            assert r.status_code == 200, r.text
        alice, bob = ("alice", "alice-password-1"), ("bob", "bob-password-1")
        r = requests.post(f"{a.url}{API}/mlflow/registered-models/create", json={"name": "shared"}, auth=alice, timeout=30)
        assert r.status_code == 200, r.text
        grant = {"username": "bob", "resource_type": "registered_model", "resource_id": "shared", "permission": "READ"}
        r = requests.post(f"{a.url}/api/3.0/mlflow/users/permissions/grant", json=grant, auth=alice, timeout=30)
        assert r.status_code == 200, r.text

        def bob_reads(server):
            return requests.get(f"{server.url}{API}/mlflow/registered-models/get", params={"name": "shared"}, auth=bob,
                                timeout=30).status_code

        for s in (b, c):
            wait_for(lambda s=s: bob_reads(s) == 200, timeout=10, what="the grant on every replica")
        revoke = {k: grant[k] for k in ["username", "resource_type", "resource_id"]}
        r = requests.post(f"{a.url}/api/3.0/mlflow/users/permissions/revoke", json=revoke, auth=alice, timeout=30)
        assert r.status_code == 200, r.text
        revoked = time.time()
        for s in (b, c):
            wait_for(lambda s=s: bob_reads(s) == 404, timeout=10, what="the revocation on every replica")
        assert time.time() - revoked < 2.0, "the replicas waited out their cache instead of hearing the change"
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_a_workspace_and_its_members_reach_every_replica_at_once():
    """With --auth: a workspace made through one replica is worked in through another at once; a user refused
    there (not a member, and so remembered by that replica) is let in within a second once a role in it is
    assigned through a third — the assignment is announced; the same model name lives in two workspaces."""
    data_dir = tempfile.mkdtemp(prefix="plinth-replicas-ws-")
    admin = ("admin", "admin-password-1")
    env = {"PLINTH_ADMIN_USER": admin[0], "PLINTH_ADMIN_PASSWORD": admin[1]}
    servers = [PlinthServer(data_dir, extra_args=["--auth"], env=env).start() for _ in range(3)]
    try:
        a, b, c = servers
        team = {"X-MLFLOW-WORKSPACE": "team-a"}
        r = requests.post(f"{a.url}/api/3.0/mlflow/workspaces", json={"name": "team-a"}, auth=admin, timeout=30)
        assert r.status_code == 201, r.text
        r = requests.post(f"{b.url}{API}/mlflow/registered-models/create", json={"name": "m"}, headers=team,
                          auth=admin, timeout=30)
        assert r.status_code == 200, r.text
        r = requests.post(f"{c.url}{API}/mlflow/registered-models/create", json={"name": "m"}, auth=admin, timeout=30)
        assert r.status_code == 200, r.text
        r = requests.post(f"{a.url}{API}/mlflow/users/create", json={"username": "alice", "password": "alice-password-1"},
                          auth=admin, timeout=30)
        assert r.status_code == 200, r.text
        alice = ("alice", "alice-password-1")

        def alice_reads(server):
            return requests.get(f"{server.url}{API}/mlflow/registered-models/get", params={"name": "m"}, headers=team,
                                auth=alice, timeout=30).status_code

        assert alice_reads(c) == 404, "not a member of team-a"
        role = requests.post(f"{a.url}/api/3.0/mlflow/roles/create", json={"workspace": "team-a", "name": "members"},
                             auth=admin, timeout=30).json()["role"]["id"]
        r = requests.post(f"{a.url}/api/3.0/mlflow/roles/assign", json={"username": "alice", "role_id": role},
                          auth=admin, timeout=30)
        assert r.status_code == 200, r.text
        assigned = time.time()
        wait_for(lambda: alice_reads(c) == 200, timeout=10, what="the membership on another replica")
        assert time.time() - assigned < 2.0, "the replica waited out its cache instead of hearing the assignment"
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
