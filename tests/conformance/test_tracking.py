"""Experiments, runs, params, metrics, tags, batches and search through the
real `mlflow` client."""

import math
import uuid

import mlflow
import pytest
import requests
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def error_code(excinfo) -> str:
    return excinfo.value.error_code


def test_experiment_lifecycle(client):
    name = unique("exp")
    exp_id = client.create_experiment(name, tags={"team": "recs"})
    exp = client.get_experiment(exp_id)
    assert exp.name == name
    assert exp.tags["team"] == "recs"
    assert exp.lifecycle_stage == "active"
    assert client.get_experiment_by_name(name).experiment_id == exp_id
    assert client.get_experiment_by_name(unique("missing")) is None

    client.rename_experiment(exp_id, name + "-renamed")
    assert client.get_experiment(exp_id).name == name + "-renamed"
    client.set_experiment_tag(exp_id, "k", "v")
    assert client.get_experiment(exp_id).tags["k"] == "v"
    client.delete_experiment_tag(exp_id, "k")
    assert "k" not in client.get_experiment(exp_id).tags

    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"

    with pytest.raises(MlflowException) as e:
        client.create_experiment(name + "-renamed")
    assert error_code(e) == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(MlflowException) as e:
        client.get_experiment("987654321")
    assert error_code(e) == "RESOURCE_DOES_NOT_EXIST"


def test_search_experiments(client):
    prefix = unique("searchexp")
    ids = [client.create_experiment(f"{prefix}-{i}", tags={"idx": str(i)}) for i in range(5)]
    found = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'", order_by=["name DESC"])
    assert [e.name for e in found] == [f"{prefix}-{i}" for i in reversed(range(5))]
    found = client.search_experiments(filter_string=f"name LIKE '{prefix}-%' AND tags.idx = '3'")
    assert [e.experiment_id for e in found] == [ids[3]]
    page = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'", max_results=2, order_by=["name ASC"])
    assert len(page) == 2 and page.token
    page2 = client.search_experiments(
        filter_string=f"name LIKE '{prefix}-%'", max_results=2, order_by=["name ASC"], page_token=page.token
    )
    assert [e.name for e in page2] == [f"{prefix}-2", f"{prefix}-3"]
    client.delete_experiment(ids[0])
    deleted = client.search_experiments(view_type=ViewType.DELETED_ONLY, filter_string=f"name LIKE '{prefix}-%'")
    assert [e.experiment_id for e in deleted] == [ids[0]]


def test_runs_params_metrics_tags(client):
    mlflow.set_experiment(unique("fluent"))
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"algo": "als", "factors": 64})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metric("nan_metric", float("nan"))
        mlflow.set_tag("stage", "dev")
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("child_metric", 3.0)
    run = client.get_run(parent.info.run_id)
    assert run.info.run_name == "parent"
    assert run.info.status == "FINISHED"
    assert run.info.end_time is not None
    assert run.data.params == {"lr": "0.1", "algo": "als", "factors": "64"}
    assert run.data.metrics["loss"] == pytest.approx(0.2)
    assert math.isnan(run.data.metrics["nan_metric"])
    assert run.data.tags["stage"] == "dev"
    history = client.get_metric_history(parent.info.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    assert [round(m.value, 3) for m in history] == [1.0, 0.5, 0.333, 0.25, 0.2]
    child_run = client.get_run(child.info.run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert [r.info.run_id for r in children] == [child.info.run_id]

    # Params are immutable.
    with pytest.raises(MlflowException) as e:
        client.log_param(parent.info.run_id, "lr", 0.2)
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    client.log_param(parent.info.run_id, "lr", 0.1)  # same value: fine

    client.delete_tag(parent.info.run_id, "stage")
    assert "stage" not in client.get_run(parent.info.run_id).data.tags
    client.set_terminated(parent.info.run_id, status="KILLED")
    assert client.get_run(parent.info.run_id).info.status == "KILLED"
    client.update_run(parent.info.run_id, name="renamed")
    assert client.get_run(parent.info.run_id).info.run_name == "renamed"

    client.delete_run(child.info.run_id)
    assert client.get_run(child.info.run_id).info.lifecycle_stage == "deleted"
    client.restore_run(child.info.run_id)
    assert client.get_run(child.info.run_id).info.lifecycle_stage == "active"


def test_log_batch_and_history_paging(client, server):
    exp_id = client.create_experiment(unique("batch"))
    run = client.create_run(exp_id)
    rid = run.info.run_id
    metrics = [Metric("m", float(i), 1000 + i, i) for i in range(1000)]
    client.log_batch(rid, metrics=metrics, params=[Param("p", "1")], tags=[RunTag("t", "x")])
    history = client.get_metric_history(rid, "m")
    assert len(history) == 1000
    got = client.get_run(rid)
    assert got.data.metrics["m"] == 999.0
    assert got.data.params["p"] == "1"

    # The client splits big batches itself; the server's own limits, over raw HTTP:
    url = server.url + "/api/2.0/mlflow/runs/log-batch"
    too_many = [{"key": "m", "value": 1.0, "timestamp": 1, "step": i} for i in range(1001)]
    r = requests.post(url, json={"run_id": rid, "metrics": too_many}, timeout=30)
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    params = [{"key": f"k{i}", "value": "v"} for i in range(101)]
    r = requests.post(url, json={"run_id": rid, "params": params}, timeout=30)
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    big_tags = [{"key": f"k{i}", "value": "v" * 7999} for i in range(100)]
    long_metrics = [{"key": "m" * 240, "value": 1.0, "timestamp": 1, "step": i} for i in range(900)]
    r = requests.post(url, json={"run_id": rid, "tags": big_tags, "metrics": long_metrics}, timeout=30)
    assert r.status_code == 400 and "at most" in r.json()["message"]
    with pytest.raises(MlflowException) as e:
        client.log_param(rid, "long", "x" * 6001)
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"


def test_search_runs_filters_order_paging(client):
    exp_id = client.create_experiment(unique("searchruns"))
    ids = []
    for i in range(12):
        r = client.create_run(exp_id, run_name=f"r{i:02d}", tags={"group": "a" if i % 3 == 0 else "b"})
        client.log_metric(r.info.run_id, "acc", i / 10.0)
        client.log_param(r.info.run_id, "algo", "als" if i % 2 == 0 else "bpr")
        if i < 6:
            client.set_terminated(r.info.run_id)
        ids.append(r.info.run_id)

    def names(runs):
        return [r.info.run_name for r in runs]

    runs = client.search_runs([exp_id], "metrics.acc > 0.5 AND params.algo = 'als'", order_by=["metrics.acc DESC"])
    assert names(runs) == ["r10", "r08", "r06"]
    runs = client.search_runs([exp_id], "tags.group = 'a'", order_by=["attributes.start_time ASC"])
    assert names(runs) == ["r00", "r03", "r06", "r09"]
    runs = client.search_runs([exp_id], "attributes.status = 'FINISHED'")
    assert len(runs) == 6
    runs = client.search_runs([exp_id], "attributes.run_name LIKE 'r0%'", order_by=["attributes.run_name ASC"])
    assert names(runs) == [f"r{i:02d}" for i in range(10)]
    runs = client.search_runs([exp_id], "attributes.run_name ILIKE 'R1%'")
    assert sorted(names(runs)) == ["r10", "r11"]
    runs = client.search_runs([exp_id], f"attributes.run_id IN ('{ids[0]}', '{ids[1]}')")
    assert sorted(names(runs)) == ["r00", "r01"]
    runs = client.search_runs([exp_id], "params.algo NOT IN ('als')")
    assert len(runs) == 6
    runs = client.search_runs([exp_id], "params.algo != 'als' AND metrics.acc <= 0.3")
    assert sorted(names(runs)) == ["r01", "r03"]
    runs = client.search_runs([exp_id], order_by=["params.algo ASC", "metrics.acc ASC"])
    assert names(runs)[:2] == ["r00", "r02"]

    seen = []
    token = None
    while True:
        page = client.search_runs([exp_id], order_by=["metrics.acc DESC"], max_results=5, page_token=token)
        seen.extend(r.info.run_id for r in page)
        token = page.token
        if not token:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == 12

    df = mlflow.search_runs([exp_id], filter_string="metrics.acc >= 1.0")
    assert list(df["tags.mlflow.runName"]) == ["r10", "r11"] or sorted(df["tags.mlflow.runName"]) == ["r10", "r11"]

    client.delete_run(ids[0])
    assert len(client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)) == 1
    assert len(client.search_runs([exp_id], run_view_type=ViewType.ALL)) == 12

    with pytest.raises(MlflowException) as e:
        client.search_runs([exp_id], "metrics.acc > 'x'")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as e:
        client.search_runs([exp_id], "metrics.acc > 1 OR metrics.acc < 0")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"


def test_log_inputs_datasets(client):
    import pandas as pd

    mlflow.set_experiment(unique("datasets"))
    df = pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]})
    dataset = mlflow.data.from_pandas(df, name="toy")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training")
    got = client.get_run(run.info.run_id)
    assert [d.dataset.name for d in got.inputs.dataset_inputs] == ["toy"]
    found = client.search_runs([run.info.experiment_id], "datasets.name = 'toy'")
    assert [r.info.run_id for r in found] == [run.info.run_id]


def test_error_codes(client):
    with pytest.raises(MlflowException) as e:
        client.get_run("0" * 32)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    exp_id = client.create_experiment(unique("errors"))
    run = client.create_run(exp_id)
    with pytest.raises(MlflowException) as e:
        client.log_metric(run.info.run_id, "../escape", 1.0)
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as e:
        client.set_tag(run.info.run_id, "t", "x" * 8001)
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    client.delete_run(run.info.run_id)
    with pytest.raises(MlflowException) as e:
        client.log_metric(run.info.run_id, "m", 1.0)
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as e:
        client.delete_experiment("0")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
