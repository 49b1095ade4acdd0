//! The real HTTP server on a free loopback port: the MLflow API end to end,
//! and every kind of bad input answered with a 4xx and MLflow's error shape.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should fail loudly

use std::net::SocketAddr;
use std::sync::Arc;

use plinth_artifacts::ArtifactStore;
use plinth_engine::Platform;
use plinth_server::ServerConfig;
use plinth_store::SqliteStore;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct TestServer {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    async fn start(config: ServerConfig) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("plinth.db")).unwrap();
        let artifacts = ArtifactStore::local(dir.path().join("artifacts")).unwrap();
        let platform = Platform::new(Arc::new(store), artifacts).await.unwrap();
        std::fs::create_dir_all(dir.path().join("datasets")).unwrap();
        let jobs = plinth_engine::jobs::JobRunner::start(platform.clone(), dir.path().join("datasets")).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = plinth_server::app(platform, jobs, config);
        tokio::spawn(plinth_server::serve(listener, app, async {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().unwrap();
        TestServer { addr, dir, http, shutdown: Some(tx) }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.http.post(self.url(path)).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A raw request, so that paths reach the server exactly as written.
    async fn raw(&self, request: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf)).await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, text)
    }

    async fn create_run(&self) -> String {
        let (_, exp) = self.post("/api/2.0/mlflow/experiments/create", json!({"name": "e"})).await;
        let (s, run) = self
            .post("/api/2.0/mlflow/runs/create", json!({"experiment_id": exp["experiment_id"], "start_time": 1}))
            .await;
        assert_eq!(s, 200, "{run}");
        run["run"]["info"]["run_id"].as_str().unwrap().to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn assert_error(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error_code"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

#[tokio::test]
async fn tracking_roundtrip_over_http() {
    let srv = TestServer::start(ServerConfig::default()).await;
    let run_id = srv.create_run().await;
    let (s, _) = srv
        .post(
            "/api/2.0/mlflow/runs/log-batch",
            json!({"run_id": run_id, "metrics": [{"key": "m", "value": "NaN", "timestamp": "5", "step": 1}],
                   "params": [{"key": "p", "value": "1"}], "tags": [{"key": "t", "value": ""}]}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, run) = srv.get(&format!("/api/2.0/mlflow/runs/get?run_id={run_id}")).await;
    assert_eq!(s, 200);
    assert_eq!(run["run"]["data"]["metrics"][0]["value"], "NaN");
    assert_eq!(run["run"]["data"]["metrics"][0]["timestamp"], 5);
    assert_eq!(run["run"]["info"]["artifact_uri"].as_str().map(|u| u.starts_with("mlflow-artifacts:/")), Some(true));
    // The UI's prefix serves the same API.
    let (s, _) = srv.get(&format!("/ajax-api/2.0/mlflow/runs/get?run_id={run_id}")).await;
    assert_eq!(s, 200);
    // Repeated query keys become lists (GET search endpoints).
    let (s, body) = srv
        .get("/api/2.0/mlflow/registered-models/search?order_by=name%20ASC&order_by=creation_timestamp%20DESC")
        .await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test]
async fn malformed_and_mistyped_requests_are_400() {
    let srv = TestServer::start(ServerConfig::default()).await;
    let run_id = srv.create_run().await;
    let r = srv.http.post(srv.url("/api/2.0/mlflow/experiments/create")).body("{not json").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error_code"], "BAD_REQUEST");
    let (s, b) = srv.post("/api/2.0/mlflow/experiments/create", json!([1, 2])).await;
    assert_error(s, &b, 400, "BAD_REQUEST");
    let (s, b) = srv.post("/api/2.0/mlflow/experiments/create", json!({"name": {"nested": 1}})).await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    let (s, b) = srv.post("/api/2.0/mlflow/experiments/create", json!({})).await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    assert!(b["message"].as_str().unwrap().contains("'name'"));
    let metric = |v: Value| json!({"run_id": run_id, "key": "m", "value": v, "timestamp": 1});
    let (s, b) = srv.post("/api/2.0/mlflow/runs/log-metric", metric(json!("abc"))).await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    let (s, b) = srv.post("/api/2.0/mlflow/runs/log-metric", metric(json!([1]))).await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    let (s, b) = srv
        .post("/api/2.0/mlflow/runs/log-metric", json!({"run_id": run_id, "key": "m", "value": 1, "timestamp": "soon"}))
        .await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    let (s, b) =
        srv.post("/api/2.0/mlflow/runs/log-metric", json!({"run_id": run_id, "value": 1, "timestamp": 1})).await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    let (s, b) = srv.post("/api/2.0/mlflow/runs/update", json!({"run_id": run_id, "status": "DONE"})).await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    let (s, b) = srv.post("/api/2.0/mlflow/experiments/search", json!({"page_token": "%%%"})).await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    let (s, b) = srv.post("/api/2.0/mlflow/experiments/search", json!({"max_results": 0})).await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    let (s, b) =
        srv.post("/api/2.0/mlflow/runs/search", json!({"experiment_ids": ["1"], "filter": "metrics.m >"})).await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn over_long_values_follow_mlflow_limits() {
    let srv = TestServer::start(ServerConfig::default()).await;
    let run_id = srv.create_run().await;
    let (s, b) = srv.post("/api/2.0/mlflow/experiments/create", json!({"name": "x".repeat(501)})).await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    let (s, b) = srv
        .post("/api/2.0/mlflow/runs/log-parameter", json!({"run_id": run_id, "key": "p", "value": "v".repeat(6001)}))
        .await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    let (s, b) =
        srv.post("/api/2.0/mlflow/runs/set-tag", json!({"run_id": run_id, "key": "k".repeat(251), "value": "v"})).await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn unknown_ids_are_404() {
    let srv = TestServer::start(ServerConfig::default()).await;
    let (s, b) = srv.get("/api/2.0/mlflow/runs/get?run_id=doesnotexist").await;
    assert_error(s, &b, 404, "RESOURCE_DOES_NOT_EXIST");
    let (s, b) = srv.get("/api/2.0/mlflow/experiments/get?experiment_id=12345").await;
    assert_error(s, &b, 404, "RESOURCE_DOES_NOT_EXIST");
    let (s, b) = srv.get("/api/2.0/mlflow/registered-models/get?name=nope").await;
    assert_error(s, &b, 404, "RESOURCE_DOES_NOT_EXIST");
    let (s, b) = srv.get("/api/2.0/mlflow/model-versions/get?name=nope&version=abc").await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    let (s, b) = srv.get("/api/2.0/mlflow/logged-models/m-0000").await;
    assert_error(s, &b, 404, "RESOURCE_DOES_NOT_EXIST");
    let (s, b) = srv.get("/api/2.0/mlflow/no/such/endpoint").await;
    assert_error(s, &b, 404, "ENDPOINT_NOT_FOUND");
    let r = srv.http.get(srv.url("/api/2.0/mlflow/runs/create")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
}

#[tokio::test]
async fn artifact_paths_cannot_escape_the_root() {
    let srv = TestServer::start(ServerConfig::default()).await;
    let secret = srv.dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    for path in [
        "/api/2.0/mlflow-artifacts/artifacts/..%2Fsecret.txt",
        "/api/2.0/mlflow-artifacts/artifacts/%2e%2e/secret.txt",
        "/api/2.0/mlflow-artifacts/artifacts/a/%2e%2e/%2e%2e/secret.txt",
        "/api/2.0/mlflow-artifacts/artifacts//etc/passwd",
        "/api/2.0/mlflow-artifacts/artifacts?path=..%2F..",
        "/api/2.0/mlflow-artifacts/artifacts?path=%2Fetc",
    ] {
        let (status, text) = srv.raw(&format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).await;
        assert!((400..500).contains(&status), "{path}: {text}");
        assert!(!text.contains("top secret") && !text.contains("root:"), "{path}");
    }
    let (status, _) = srv
        .raw("PUT /api/2.0/mlflow-artifacts/artifacts/%2e%2e/evil.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nevil")
        .await;
    assert_eq!(status, 400);
    assert!(!srv.dir.path().join("evil.txt").exists());
    // A symlink planted inside the root is not followed.
    std::os::unix::fs::symlink(srv.dir.path(), srv.dir.path().join("artifacts/link")).unwrap();
    let (status, text) = srv
        .raw("GET /api/2.0/mlflow-artifacts/artifacts/link/secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(!text.contains("top secret"));
    // Run artifact listing checks its path too.
    let run_id = srv.create_run().await;
    let (s, b) = srv.get(&format!("/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=..%2F..")).await;
    assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let srv = TestServer::start(ServerConfig { max_request_bytes: 4096, max_artifact_bytes: 10_000 }).await;
    let big = json!({"name": "x".repeat(10_000)});
    let (s, b) = srv.post("/api/2.0/mlflow/experiments/create", big).await;
    assert_error(s, &b, 413, "REQUEST_LIMIT_EXCEEDED");
    let r = srv
        .http
        .put(srv.url("/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts/big.bin"))
        .body(vec![0u8; 20_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let (s, _) = srv.get("/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts/big.bin").await;
    assert_eq!(s, 404, "a refused upload leaves nothing");
}

#[tokio::test]
async fn logged_model_search_filters_and_rejects_bad_input() {
    let srv = TestServer::start(ServerConfig::default()).await;
    let search = |body: Value| srv.post("/api/2.0/mlflow/logged-models/search", body);
    let (s, b) = search(json!({"experiment_ids": ["0"]})).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = search(json!({"experiment_ids": ["0"], "filter": "metrics.acc > 0.5 AND name = 'm'",
        "order_by": [{"field_name": "metrics.acc", "ascending": false}, {"field_name": "creation_time"}]}))
    .await;
    assert_eq!((s, &b), (200, &json!({"models": []})));
    for bad in [
        json!({"filter": "metrics.acc LIKE 'x'"}),
        json!({"filter": "name ="}),
        json!({"filter": "run_name = 'x'"}),
        json!({"order_by": [{"field_name": "params.lr"}]}),
        json!({"order_by": [{"ascending": true}]}),
        json!({"order_by": [{"field_name": "name", "ascending": "yes"}]}),
        json!({"datasets": [{"dataset_digest": "d"}]}),
        json!({"order_by": [{"field_name": "metrics.a", "dataset_digest": "d"}]}),
        json!({"max_results": 0}),
    ] {
        let (s, b) = search(bad.clone()).await;
        assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_runs_as_a_polled_job() {
    let srv = TestServer::start(ServerConfig::default()).await;
    let mut data = String::new();
    for u in 0..40 {
        let base = if u < 20 { 0 } else { 15 };
        for i in 0..15 {
            if (u + i) % 4 != 0 {
                data.push_str(&format!("{u}\t{}\n", base + i));
            }
        }
    }
    std::fs::write(srv.dir.path().join("datasets/toy.tsv"), data).unwrap();
    let (s, b) = srv
        .post(
            "/api/2.0/plinth/jobs/train-recommender",
            json!({"data": "toy.tsv", "algo": "als", "factors": 8, "iterations": 5, "register": "toy-recs", "k": 5}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let job_id = b["job"]["job_id"].as_str().unwrap().to_string();
    assert_eq!(b["job"]["status"], "QUEUED");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let job = loop {
        let (s, b) = srv.get(&format!("/api/2.0/plinth/jobs/get?job_id={job_id}")).await;
        assert_eq!(s, 200, "{b}");
        if b["job"]["status"] == "SUCCEEDED" || b["job"]["status"] == "FAILED" {
            break b["job"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "job did not finish: {b}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(job["status"], "SUCCEEDED", "{job}");
    assert!(job["result"]["metrics"]["ndcg_at_5"].as_f64().unwrap() > 0.0);
    assert_eq!(job["result"]["model_version"], "1");
    let run_id = job["result"]["run_id"].as_str().unwrap();
    let (s, run) = srv.get(&format!("/api/2.0/mlflow/runs/get?run_id={run_id}")).await;
    assert_eq!(s, 200);
    assert_eq!(run["run"]["info"]["status"], "FINISHED");
    let (s, list) = srv.get("/api/2.0/plinth/jobs/list").await;
    assert_eq!(s, 200);
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);

    // Bad requests are refused at submission.
    for body in [
        json!({"data": "../plinth.db", "algo": "als"}),
        json!({"data": "/etc/passwd", "algo": "als"}),
        json!({"data": "missing.tsv", "algo": "als"}),
        json!({"data": "toy.tsv", "algo": "als", "k": 0}),
        json!({"data": "toy.tsv", "algo": "als", "regularization": -1.0}),
        json!({"data": "toy.tsv", "algo": "nope"}),
        json!({"data": "toy.tsv", "algo": "als", "unknown_flag": 1}),
        json!({"algo": "als"}),
    ] {
        let (s, b) = srv.post("/api/2.0/plinth/jobs/train-recommender", body.clone()).await;
        assert_error(s, &b, 400, "INVALID_PARAMETER_VALUE");
    }
    let (s, b) = srv.get("/api/2.0/plinth/jobs/get?job_id=job-nope").await;
    assert_error(s, &b, 404, "RESOURCE_DOES_NOT_EXIST");
}
