#![allow(clippy::unwrap_used)] // test helpers: a failed setup should fail loudly
//! The PostgreSQL backend against a real server: the whole conformance
//! suite, replicas migrating and writing at once, and a schema newer than the
//! build. The server is `PLINTH_TEST_POSTGRES` if set (scripts/test.sh starts
//! one), else one this test starts itself with `scripts/pg.sh` and stops.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use plinth_core::clock;
use plinth_core::registry::NewModelVersion;
use plinth_core::runs::Metric;
use plinth_store::{MetadataStore, PostgresStore, conformance};

struct Server {
    url: String,
    dir: Option<tempfile::TempDir>,
}

fn script() -> PathBuf {
    // The crate's directory as cargo gives it when it runs the test (a binary kept from a build in another
    // checkout of the same cache would carry that checkout's path in `env!`).
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../../scripts/pg.sh")
}

impl Server {
    fn start() -> Server {
        if let Ok(url) = std::env::var("PLINTH_TEST_POSTGRES") {
            return Server { url, dir: None };
        }
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(script()).arg("start").arg(dir.path().join("pg")).output().unwrap();
        assert!(out.status.success(), "cannot start PostgreSQL: {}", String::from_utf8_lossy(&out.stderr));
        let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
        Server { url, dir: Some(dir) }
    }

    /// A new, empty database on the server, and its URL.
    async fn database(&self, name: &str) -> String {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let db = format!("plinth_{name}_{}", std::process::id());
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")).await.unwrap();
        client.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
        let base = self.url.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
        format!("{base}/{db}")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = Command::new(script()).arg("stop").arg(dir.path().join("pg")).status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_backend() {
    let server = Server::start();

    // The behaviour every backend must show.
    let url = server.database("conformance").await;
    let store = PostgresStore::connect(&url, clock::system()).await.unwrap();
    conformance::run_all(&store).await;

    // Three replicas start at once on one empty database: one migrates, none fails.
    let url = server.database("replicas").await;
    let replicas: Vec<Arc<PostgresStore>> =
        futures::future::join_all((0..3).map(|_| PostgresStore::connect(&url, clock::system())))
            .await
            .into_iter()
            .map(|r| Arc::new(r.unwrap()))
            .collect();
    replicas[0].ensure_default_experiment("mlflow-artifacts:/0".into()).await.unwrap();

    // Writers on every replica lose nothing: 8 tasks log 50 points each to one run...
    let exp = replicas[0].create_experiment("shared".into(), "loc".into(), vec![]).await.unwrap();
    let run = replicas[1].create_run(conformance::info(&exp, "shared", 1), vec![]).await.unwrap().info.run_id;
    let tasks = (0..8).map(|t| {
        let (store, run) = (replicas[t % 3].clone(), run.clone());
        tokio::spawn(async move {
            for i in 0..50 {
                let m = Metric::new("loss", (t * 100 + i) as f64, 1_000 + i as i64, (t * 50 + i) as i64);
                store.log_batch(&run, vec![m], vec![], vec![]).await.unwrap();
            }
        })
    });
    for t in futures::future::join_all(tasks).await {
        t.unwrap();
    }
    let history = replicas[2].get_metric_history(&run, "loss", 1_000, 0).await.unwrap();
    assert_eq!(history.items.len(), 400);
    let latest = replicas[0].get_run(&run).await.unwrap().data.metrics;
    assert_eq!((latest[0].step, latest[0].value), (399, 749.0), "the latest point by step wins, whoever wrote last");

    // ... and versions registered concurrently through all of them are numbered 1..=12, once each.
    replicas[0].create_registered_model("recs".into(), None, vec![]).await.unwrap();
    let tasks = (0..12).map(|i| {
        let store = replicas[i % 3].clone();
        tokio::spawn(async move {
            let new = NewModelVersion { name: "recs".into(), source: format!("s{i}"), ..Default::default() };
            store.create_model_version(new).await.unwrap().version
        })
    });
    let mut versions: Vec<i64> = futures::future::join_all(tasks).await.into_iter().map(|v| v.unwrap()).collect();
    versions.sort();
    assert_eq!(versions, (1..=12).collect::<Vec<_>>());

    // Concurrent experiments with one name: one is created, the others are told it exists.
    let tasks = (0..6).map(|i| {
        let store = replicas[i % 3].clone();
        tokio::spawn(async move { store.create_experiment("race".into(), "loc".into(), vec![]).await.is_ok() })
    });
    let created = futures::future::join_all(tasks).await.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(created, 1);

    // An alias moved through one replica is announced to the others at once (LISTEN/NOTIFY).
    let mut changes = replicas[2].changes().expect("a shared store announces changes");
    changes.borrow_and_update();
    replicas[0].set_alias("recs", "champion", 3).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(2), changes.changed())
        .await
        .expect("announced within 2 s")
        .unwrap();

    // A database whose schema is newer than this build knows is refused, with a sentence.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute("INSERT INTO schema_migrations VALUES (999, 0)").await.unwrap();
    let refused = PostgresStore::connect(&url, clock::system()).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("newer than this Plinth knows"), "{refused}");

    // A wrong URL or an unreachable server is a sentence naming the place, never the password.
    let bad = PostgresStore::connect("postgresql://plinth:secret@127.0.0.1:1/nope", clock::system()).await;
    let message = bad.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("127.0.0.1:1/nope") && !message.contains("secret"), "{message}");
}

/// The database going away and coming back: calls fail at once as
/// `Overloaded` (the server answers 503 + Retry-After), never hang or
/// panic, and the pool reconnects by itself when it is back. Always on a
/// cluster of its own, which it stops and starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_restarting_is_unavailable_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let pg = dir.path().join("pg");
    let start = || {
        let out = Command::new(script()).arg("start").arg(&pg).output().unwrap();
        assert!(out.status.success(), "cannot start PostgreSQL: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let stop = || assert!(Command::new(script()).arg("stop").arg(&pg).status().unwrap().success());
    let url = start();
    let store = PostgresStore::connect(&url, clock::system()).await.unwrap();
    store.ensure_default_experiment("mlflow-artifacts:/0".into()).await.unwrap();
    stop();
    let started = std::time::Instant::now();
    let err = store.get_experiment("0").await.unwrap_err();
    assert_eq!(err.kind(), plinth_core::ErrorKind::Overloaded, "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "failed fast, not hung");
    assert_eq!(start(), url, "the same cluster, the same port");
    let mut recovered = false;
    for _ in 0..50 {
        if store.get_experiment("0").await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "the pool reconnects once the database is back");
    stop();
}
