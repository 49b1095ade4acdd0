"""Artifacts through the mlflow-artifacts proxy, logged models and the model
registry, through the real `mlflow` client: a sklearn model logged,
registered, aliased, and loaded back by alias."""

import os
import uuid

import mlflow
import numpy as np
import pytest
from mlflow.exceptions import MlflowException


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_artifacts_files_and_directories(client, tmp_path):
    mlflow.set_experiment(unique("artifacts"))
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.json").write_text('{"b": 1}')
    big = os.urandom(3 * 1024 * 1024)
    (src / "big.bin").write_bytes(big)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(src / "a.txt"))
        mlflow.log_artifacts(str(src), artifact_path="tree")
        mlflow.log_artifact(str(empty), artifact_path="misc")
        mlflow.log_text("hello text", "notes/hello.txt")
        mlflow.log_dict({"x": [1, 2]}, "notes/d.json")
    rid = run.info.run_id
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")

    top = sorted((f.path, f.is_dir) for f in client.list_artifacts(rid))
    assert top == [("a.txt", False), ("misc", True), ("notes", True), ("tree", True)]
    tree = {f.path: f for f in client.list_artifacts(rid, "tree")}
    assert set(tree) == {"tree/a.txt", "tree/big.bin", "tree/sub"}
    assert tree["tree/big.bin"].file_size == len(big)

    out = tmp_path / "out"
    local = client.download_artifacts(rid, "tree", str(out))
    assert open(os.path.join(local, "a.txt")).read() == "alpha"
    assert open(os.path.join(local, "sub", "b.json")).read() == '{"b": 1}'
    assert open(os.path.join(local, "big.bin"), "rb").read() == big
    assert mlflow.artifacts.load_text(f"runs:/{rid}/notes/hello.txt") == "hello text"
    assert mlflow.artifacts.load_dict(f"runs:/{rid}/notes/d.json") == {"x": [1, 2]}
    got_empty = mlflow.artifacts.download_artifacts(f"runs:/{rid}/misc/empty.txt", dst_path=str(tmp_path / "e"))
    assert open(got_empty).read() == ""


def test_sklearn_model_register_alias_load(client):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    name = unique("clf")

    mlflow.set_experiment(unique("models"))
    with mlflow.start_run() as run:
        mlflow.log_param("C", 1.0)
        info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2])
    assert info.model_id
    logged = client.get_logged_model(info.model_id)
    assert logged.source_run_id == run.info.run_id
    assert logged.status.to_proto() == 2 or str(logged.status).endswith("READY")

    mv = mlflow.register_model(info.model_uri, name)
    assert mv.version == "1"
    mv2 = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    assert mv2.version == "2"
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")
    by_alias = client.get_model_version_by_alias(name, "champion")
    assert by_alias.version == "1"
    assert by_alias.run_id == run.info.run_id
    assert "champion" in client.get_registered_model(name).aliases

    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    np.testing.assert_allclose(loaded.predict(X[:20]), model.predict(X[:20]))
    loaded_v = mlflow.sklearn.load_model(f"models:/{name}/1")
    np.testing.assert_allclose(loaded_v.predict_proba(X[:5]), model.predict_proba(X[:5]))

    # Moving the alias moves what loads.
    client.set_registered_model_alias(name, "champion", "2")
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    client.delete_registered_model_alias(name, "challenger")
    with pytest.raises(MlflowException) as e:
        client.get_model_version_by_alias(name, "challenger")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_registry_crud_search_tags_stages(client):
    name = unique("reg")
    client.create_registered_model(name, tags={"team": "recs"}, description="first")
    with pytest.raises(MlflowException) as e:
        client.create_registered_model(name)
    assert e.value.error_code == "RESOURCE_ALREADY_EXISTS"

    exp_id = client.create_experiment(unique("regexp"))
    run = client.create_run(exp_id)
    src = f"{run.info.artifact_uri}/model"
    v1 = client.create_model_version(name, src, run_id=run.info.run_id, tags={"k": "v"}, description="v1")
    v2 = client.create_model_version(name, src, run_id=run.info.run_id)
    assert (v1.version, v2.version) == ("1", "2")
    assert client.get_model_version(name, "1").tags == {"k": "v"}
    assert client.get_model_version_download_uri(name, "1") == src

    client.update_registered_model(name, description="second")
    assert client.get_registered_model(name).description == "second"
    client.update_model_version(name, "2", description="two")
    assert client.get_model_version(name, "2").description == "two"
    client.set_registered_model_tag(name, "owner", "me")
    client.delete_registered_model_tag(name, "team")
    assert client.get_registered_model(name).tags == {"owner": "me"}
    client.set_model_version_tag(name, "2", "validated", "yes")
    client.delete_model_version_tag(name, "1", "k")
    assert client.get_model_version(name, "1").tags == {}

    found = client.search_registered_models(filter_string=f"name = '{name}'")
    assert [m.name for m in found] == [name]
    found = client.search_registered_models(filter_string=f"name LIKE '{name[:8]}%'")
    assert name in [m.name for m in found]
    versions = client.search_model_versions(f"name = '{name}'")
    assert sorted(v.version for v in versions) == ["1", "2"]
    versions = client.search_model_versions(f"run_id = '{run.info.run_id}'")
    assert len(versions) == 2
    versions = client.search_model_versions(f"name = '{name}' and tags.validated = 'yes'")
    assert [v.version for v in versions] == ["2"]

    client.transition_model_version_stage(name, "1", "Production")
    client.transition_model_version_stage(name, "2", "Production", archive_existing_versions=True)
    assert client.get_model_version(name, "1").current_stage == "Archived"
    latest = client.get_latest_versions(name, stages=["Production"])
    assert [v.version for v in latest] == ["2"]

    new_name = name + "-renamed"
    client.rename_registered_model(name, new_name)
    assert client.get_model_version(new_name, "2").description == "two"
    with pytest.raises(MlflowException) as e:
        client.get_registered_model(name)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    client.delete_model_version(new_name, "1")
    with pytest.raises(MlflowException) as e:
        client.get_model_version(new_name, "1")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as e:
        client.set_registered_model_alias(new_name, "champion", "99")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as e:
        client.set_registered_model_alias(new_name, "latest", "2")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    client.delete_registered_model(new_name)
    with pytest.raises(MlflowException) as e:
        client.get_registered_model(new_name)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_multipart_upload_setting_falls_back_to_streamed_put(client, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", "1024")
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", "1024")
    data = os.urandom(64 * 1024)
    f = tmp_path / "large.bin"
    f.write_bytes(data)
    exp_id = client.create_experiment(unique("mpu"))
    run = client.create_run(exp_id)
    client.log_artifact(run.info.run_id, str(f))
    got = client.download_artifacts(run.info.run_id, "large.bin", str(tmp_path / "out"))
    assert open(got, "rb").read() == data


def test_search_logged_models_filter_order_datasets(client):
    """`mlflow.search_logged_models` as the docs show it: filters on
    attributes, params, tags and metrics; order by attributes and metrics;
    dataset-scoped metrics."""
    exp_id = mlflow.set_experiment(unique("lm-search")).experiment_id
    with mlflow.start_run() as run:
        a = mlflow.initialize_logged_model(name="model", params={"lr": "0.1"}, tags={"team": "recs"})
        b = mlflow.initialize_logged_model(name="another_model", params={"lr": "0.2"}, tags={"team": "search"})
        ds = mlflow.data.from_numpy(np.arange(6).reshape(3, 2), name="eval", digest="d1")
        mlflow.log_metric("acc", 0.6, model_id=a.model_id, dataset=ds)
        mlflow.log_metric("acc", 0.9, model_id=b.model_id, dataset=ds)
        mlflow.log_metric("loss", 0.1, model_id=a.model_id)

    def names(**kwargs):
        return [m.name for m in mlflow.search_logged_models(experiment_ids=[exp_id], output_format="list", **kwargs)]

    assert names() == ["another_model", "model"]
    assert names(filter_string="name = 'another_model'") == ["another_model"]
    assert names(filter_string=f"source_run_id = '{run.info.run_id}' AND params.lr = '0.1'") == ["model"]
    assert names(filter_string="tags.team LIKE 'sea%'") == ["another_model"]
    assert names(filter_string="metrics.acc > 0.7") == ["another_model"]
    assert names(order_by=[{"field_name": "creation_time", "ascending": True}]) == ["model", "another_model"]
    assert names(order_by=[{"field_name": "metrics.acc", "ascending": True}]) == ["model", "another_model"]
    assert names(order_by=[{"field_name": "metrics.loss", "ascending": False}]) == ["model", "another_model"]
    assert names(datasets=[{"dataset_name": "eval", "dataset_digest": "d1"}], filter_string="metrics.acc < 0.7") == [
        "model"
    ]
    assert names(datasets=[{"dataset_name": "other"}]) == []
    page = client.search_logged_models(experiment_ids=[exp_id], max_results=1)
    assert len(page) == 1 and page.token
    rest = client.search_logged_models(experiment_ids=[exp_id], max_results=1, page_token=page.token)
    assert [m.name for m in rest] == ["model"] and not rest.token

    with pytest.raises(MlflowException) as e:
        names(filter_string="metrics.acc LIKE 'x'")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as e:
        names(order_by=[{"field_name": "params.lr"}])
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
