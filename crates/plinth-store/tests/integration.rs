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
