//! The SQLite backend against the shared conformance suite, plus the
//! properties only the embedded backend has (group commit, reopen).

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should fail loudly

use std::sync::Arc;

use plinth_core::experiments::LifecycleStage;
use plinth_core::runs::{Metric, RunInfo, RunStatus};
use plinth_store::{MetadataStore, SqliteStore, conformance};

fn temp_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("plinth.db")).expect("open");
    (dir, store)
}

#[tokio::test]
async fn sqlite_passes_conformance() {
    let (_dir, store) = temp_store();
    conformance::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_lose_nothing() {
    let (dir, store) = temp_store();
    store.ensure_default_experiment("a".into()).await.expect("default");
    let run_id = plinth_core::ids::new_run_id();
    store
        .create_run(
            RunInfo {
                run_id: run_id.clone(),
                run_name: "r".into(),
                experiment_id: "0".into(),
                user_id: "u".into(),
                status: RunStatus::Running,
                start_time: 0,
                end_time: None,
                artifact_uri: "x".into(),
                lifecycle_stage: LifecycleStage::Active,
            },
            vec![],
        )
        .await
        .expect("run");
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for w in 0..16 {
        let store = store.clone();
        let run_id = run_id.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                store
                    .log_batch(&run_id, vec![Metric::new(format!("w{w}"), i as f64, i, i)], vec![], vec![])
                    .await
                    .expect("log");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    for w in 0..16 {
        let hist = store.get_metric_history(&run_id, &format!("w{w}"), 1000, 0).await.expect("history");
        assert_eq!(hist.items.len(), 100);
    }
    // Reopening sees everything: acknowledged writes are committed.
    drop(store);
    let reopened = SqliteStore::open(dir.path().join("plinth.db")).expect("reopen");
    let run = reopened.get_run(&run_id).await.expect("run");
    assert_eq!(run.data.metrics.len(), 16);
}

/// A database made by the first release (migration 0001 only, with data in
/// it) opens with today's code: every later migration applies, and what was
/// there reads back through the store.
#[tokio::test]
async fn a_first_release_database_upgrades_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plinth.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../migrations/0001_init.sql")).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
             INSERT INTO schema_migrations VALUES (1, 0);
             INSERT INTO experiments VALUES (7, 'old', 'file:///a', 'active', 1, 2);
             INSERT INTO runs VALUES ('r-old', 'first', 7, 'ann', 'FINISHED', 10, 20, 'file:///a/r', 'active', NULL);
             INSERT INTO params VALUES ('r-old', 'lr', '0.1');
             INSERT INTO tags VALUES ('r-old', 'team', 'recs');
             INSERT INTO metrics (run_uuid, key, value, is_nan, timestamp, step) VALUES
                 ('r-old', 'loss', 0.5, 0, 11, 0), ('r-old', 'loss', 0.25, 0, 12, 1), ('r-old', 'loss', 0.25, 0, 12, 1);
             INSERT INTO latest_metrics (run_uuid, key, value, is_nan, timestamp, step) VALUES
                 ('r-old', 'loss', 0.25, 0, 12, 1);
             INSERT INTO registered_models VALUES ('recs', 1, 2, 'kept');
             INSERT INTO model_versions (name, version, creation_time, last_updated_time, current_stage, source,
                                         run_id, status, storage_location)
                 VALUES ('recs', 1, 1, 2, 'None', 'runs:/r-old/model', 'r-old', 'READY', 'file:///a/r/model');
             INSERT INTO registered_model_aliases VALUES ('recs', 'champion', 1);
             INSERT INTO datasets VALUES ('d-1', 7, 'movies', 'abc', 'local', 'file:///m', NULL, NULL);
             INSERT INTO run_datasets VALUES ('r-old', 'd-1',
                 '[{\"key\":\"mlflow.data.context\",\"value\":\"eval\"},{\"key\":\"k\",\"value\":\"v\"}]');",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let exp = store.get_experiment("7").await.unwrap();
    assert_eq!(exp.name, "old");
    let run = store.get_run("r-old").await.unwrap();
    assert_eq!(run.info.status, RunStatus::Finished);
    assert_eq!(run.data.params.len(), 1);
    assert_eq!(run.data.params[0].value, "0.1");
    assert_eq!(run.data.tags.iter().find(|t| t.key == "team").map(|t| t.value.as_str()), Some("recs"));
    assert_eq!(run.data.metrics.iter().find(|m| m.key == "loss").map(|m| m.value), Some(0.25));
    let history = store.get_metric_history("r-old", "loss", 100, 0).await.unwrap();
    let points: Vec<(i64, f64)> = history.items.iter().map(|m: &Metric| (m.step, m.value)).collect();
    assert_eq!(points, vec![(0, 0.5), (1, 0.25)], "the repeated point is kept once, as MLflow keeps it");
    let version = store.get_model_version_by_alias("recs", "champion").await.unwrap();
    assert_eq!((version.version, version.source.as_str()), (1, "runs:/r-old/model"));
    assert_eq!(store.get_registered_model("recs").await.unwrap().description.as_deref(), Some("kept"));
    // The dataset context moved out of the serialized tags into its own column.
    let search = |filter: &str| plinth_store::RunSearch {
        experiment_ids: vec!["7".into()],
        query: plinth_core::query::Query::parse(filter, &[], 10, 0).unwrap(),
        ..Default::default()
    };
    assert_eq!(store.search_runs(search("datasets.context = 'eval'")).await.unwrap().items.len(), 1);
    assert_eq!(store.search_runs(search("datasets.context = 'training'")).await.unwrap().items.len(), 0);
    let summaries = store.search_dataset_summaries(vec!["7".into()], 10).await.unwrap();
    assert_eq!(summaries.iter().map(|d| d.context.as_deref()).collect::<Vec<_>>(), [Some("eval")]);
}

/// Every time the store stamps comes from its clock.
#[tokio::test]
async fn timestamps_come_from_the_injected_clock() {
    use plinth_core::clock::ManualClock;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_000);
    let store = SqliteStore::open_with_clock(dir.path().join("plinth.db"), Default::default(), clock.clone()).unwrap();
    let id = store.create_experiment("clocked".into(), "loc".into(), vec![]).await.unwrap();
    let exp = store.get_experiment(&id).await.unwrap();
    assert_eq!((exp.creation_time, exp.last_update_time), (1_000, 1_000));
    clock.set(5_000);
    store.rename_experiment(&id, "renamed".into()).await.unwrap();
    assert_eq!(store.get_experiment(&id).await.unwrap().last_update_time, 5_000);
    let model = store.create_registered_model("m".into(), None, vec![]).await.unwrap();
    assert_eq!(model.creation_timestamp, 5_000);
    clock.advance(1);
    let model = store.update_registered_model("m", Some("d".into())).await.unwrap();
    assert_eq!((model.creation_timestamp, model.last_updated_timestamp), (5_000, 5_001));
}
