"""Platform usage with real activity: with `--auth`, three users (an administrator, alice with a password,
bob with a token) log runs with the `mlflow` client, train through the jobs API (one job succeeds and
registers a model, one fails on its data), deploy the model and serve requests; then
`GET /api/2.0/plinth/usage`, the `/ui/platform` page and the Prometheus gauges show those numbers."""

import base64
import time
import urllib.request

import pytest
import requests

from test_auth import as_user, auth_server  # noqa: F401  (the fixture)

ADMIN = ("admin", "admin-password-1")


@pytest.fixture
def usage_server(auth_server):  # noqa: F811
    """test_auth's server with `--auth`, and two files in its datasets directory for jobs to read."""
    with open(f"{auth_server.data_dir}/datasets/plays.csv", "w") as f:
        f.write("user,item\n" + "".join(f"u{u},i{(u * 7 + k) % 40}\n" for u in range(60) for k in range(6)))
    with open(f"{auth_server.data_dir}/datasets/broken.csv", "w") as f:
        f.write("just-one-column\nx\n")
    return auth_server


def wait_job(url, job_id, auth):
    deadline = time.time() + 120
    while time.time() < deadline:
        job = requests.get(f"{url}/api/2.0/plinth/jobs/get", params={"job_id": job_id}, auth=auth, timeout=10).json()
        if job["job"]["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return job["job"]
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end")


def test_usage_reports_the_activity_of_the_test(usage_server, monkeypatch):
    import mlflow

    url = usage_server.url
    for user in ["alice", "bob"]:
        requests.post(f"{url}/api/2.0/mlflow/users/create", json={"username": user, "password": f"{user}-password"},
                      auth=ADMIN, timeout=10).raise_for_status()
    made = requests.post(f"{url}/api/2.0/plinth/tokens/create", json={"name": "ci"}, auth=("bob", "bob-password"),
                         timeout=10)
    made.raise_for_status()
    bob = {"Authorization": f"Bearer {made.json()['secret']}"}

    # alice: three runs with the mlflow client.
    as_user(monkeypatch, "alice", "alice-password")
    client = mlflow.MlflowClient(url, registry_uri=url)
    exp = client.create_experiment("usage")
    for i in range(3):
        run = client.create_run(exp)
        client.log_metric(run.info.run_id, "loss", 1.0 / (i + 1))
        client.set_terminated(run.info.run_id)

    # bob: a job that trains and registers, and one that fails on its data.
    jobs = []
    for data in ["plays.csv", "broken.csv"]:
        spec = {"data": data, "algo": "popularity", "split": "none", "register": "recs", "experiment": "usage-jobs"}
        r = requests.post(f"{url}/api/2.0/plinth/jobs/train-recommender", json=spec, headers=bob, timeout=30)
        assert r.status_code == 200, r.text
        jobs.append(wait_job(url, r.json()["job"]["job_id"], ADMIN))
    assert [j["status"] for j in jobs] == ["SUCCEEDED", "FAILED"], jobs

    # bob deploys the registered version and it serves five requests.
    r = requests.post(f"{url}/api/2.0/plinth/deployments/create",
                      json={"name": "recs-live", "variants": [{"name": "a", "model": "recs/1"}]}, headers=bob, timeout=60)
    assert r.status_code == 200, r.text
    for _ in range(5):
        r = requests.post(f"{url}/v1/deployments/recs-live/recommend", json={"users": ["u1"], "k": 3}, headers=bob,
                          timeout=10)
        assert r.status_code == 200, r.text

    u = requests.get(f"{url}/api/2.0/plinth/usage", params={"days": 7}, auth=ADMIN, timeout=30)
    assert u.status_code == 200, u.text
    u = u.json()
    assert u["active_users"] == {"day": 3, "week": 3, "window": 3}, u["active_users"]
    assert u["totals"] == {"users": 3, "workspaces": 1, "registered_models": 1, "deployments": 1}
    assert len(u["daily"]) == 7 and u["weekly"]
    today = u["daily"][-1]
    assert today["active_users"] == 3
    # Three of alice's runs and one per job (a job's run starts before its data is read).
    assert (today["runs_created"], today["versions_registered"], today["deployments_created"],
            today["jobs_submitted"]) == (5, 1, 1, 2), today
    assert all(d["changes"] == 0 for d in u["daily"][:-1])

    [lead] = u["lead_times"]
    assert (lead["model"], lead["deployment"]) == ("recs", "recs-live")
    assert lead["first_run_time"] <= lead["registered_time"] <= lead["deployed_time"]
    assert lead["run_to_deploy_ms"] >= lead["registration_to_deploy_ms"] >= 0
    assert u["median_run_to_deploy_ms"] == lead["run_to_deploy_ms"]
    assert u["median_registration_to_deploy_ms"] == lead["registration_to_deploy_ms"]

    [served] = u["served"]
    assert (served["deployment"], served["model"], served["version"], served["stale"]) == ("recs-live", "recs", 1, False)
    assert u["stale_share"] == 0.0

    assert {k: u["jobs"][k] for k in ["submitted", "succeeded", "failed", "cancelled", "unfinished"]} == {
        "submitted": 2, "succeeded": 1, "failed": 1, "cancelled": 0, "unfinished": 0}
    assert u["jobs"]["failure_rate"] == 0.5 and u["jobs"]["median_duration_ms"] >= 0
    assert u["requests"] == [{"deployment": "recs-live", "requests": 5, "errors": 0}]

    # The page shows them.
    req = urllib.request.Request(f"{url}/ui/platform?days=7")
    req.add_header("Authorization", "Basic " + base64.b64encode(b"admin:admin-password-1").decode())
    html = urllib.request.urlopen(req, timeout=10).read().decode()
    assert "<h1>Platform</h1>" in html and "3 / 3 / 3" in html and "recs-live" in html and "50%" in html

    # The deployment's page tells its history.
    req = urllib.request.Request(f"{url}/ui/deployments/recs-live")
    req.add_header("Authorization", "Basic " + base64.b64encode(b"alice:alice-password").decode())
    html = urllib.request.urlopen(req, timeout=10).read().decode()
    assert "created with traffic a=recs/1:1 by <strong>bob (token " in html, html[-2000:]

    # Bad input is a 400 in MLflow's shape; anonymous is refused.
    for params in [{"days": 0}, {"days": 400}, {"stale_days": 0}, {"days": "week"}]:
        r = requests.get(f"{url}/api/2.0/plinth/usage", params=params, auth=ADMIN, timeout=10)
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", (params, r.text)
    assert requests.get(f"{url}/api/2.0/plinth/usage", timeout=10).status_code == 401
    # It names every team's models and deployments: for administrators (the platform's owners) only, the page too.
    r = requests.get(f"{url}/ui/platform", auth=("alice", "alice-password"), timeout=10)
    assert r.status_code == 403 and "recs-live" not in r.text
    r = requests.get(f"{url}/api/2.0/plinth/usage", auth=("alice", "alice-password"), timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (403, "PERMISSION_DENIED")

    # Prometheus: the gauges (computed at start and every minute).
    metrics = requests.get(f"{url}/metrics", auth=ADMIN, timeout=10).text
    for name in ["plinth_usage_active_users", "plinth_usage_users", "plinth_usage_deployments"]:
        assert name in metrics, name
