"""Replicas: several `plinth server` processes over one PostgreSQL database
behave as one server. Runs in the test command's PostgreSQL pass (with
PLINTH_TEST_POSTGRES set); over SQLite there is nothing to share.

- a job submitted through any replica runs on exactly one;
- a replica killed (-9) mid-job loses its lease and another one takes the
  job over and runs it again, its attempt counted;
- a cancel sent to a replica that does not run the job reaches the one that does;
- what one replica writes, every replica reads at once.
"""

import os
import shutil
import tempfile
import time

import pytest
import requests

from conftest import POSTGRES, PlinthServer

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
