//! The real HTTP server on a free loopback port: the MLflow API end to end,
//! and every kind of bad input answered with a 4xx and MLflow's error shape.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should fail loudly

use std::net::SocketAddr;

use plinth_engine::Platform;
use plinth_server::ServerConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct TestServer {
    addr: SocketAddr,
    platform: Platform,
    dir: tempfile::TempDir,
    http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// SQLite in the data dir, or, when `PLINTH_TEST_POSTGRES` names a server
/// (scripts/test.sh's PostgreSQL pass), a new database of its own there.
async fn test_store() -> plinth_server::StoreLocation {
    let Ok(server) = std::env::var("PLINTH_TEST_POSTGRES") else {
        return plinth_server::StoreLocation::default();
    };
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let db = format!("plinth_server_{}_{n}", std::process::id());
    let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")).await.unwrap();
    client.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    let base = server.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
    plinth_server::StoreLocation::Postgres(format!("{base}/{db}"))
}

impl TestServer {
    async fn start(config: ServerConfig) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = plinth_server::App::open(plinth_server::AppConfig {
            reload_interval: std::time::Duration::from_millis(200),
            server: config,
            store: test_store().await,
            ..plinth_server::AppConfig::new(dir.path())
        })
        .await
        .unwrap();
        let platform = app.platform.clone();
        tokio::spawn(plinth_server::serve(listener, app.router, plinth_server::ConnLimits::default(), async {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().unwrap();
        TestServer { addr, platform, dir, http, shutdown: Some(tx) }
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
    let r = srv
        .http
        .post(srv.url("/api/2.0/mlflow/experiments/create"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
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
        let (status, text) =
            srv.raw(&format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")).await;
        assert!((400..500).contains(&status), "{path}: {text}");
        assert!(!text.contains("top secret") && !text.contains("root:"), "{path}");
    }
    let (status, _) = srv
        .raw("PUT /api/2.0/mlflow-artifacts/artifacts/%2e%2e/evil.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nConnection: close\r\n\r\nevil")
        .await;
    assert_eq!(status, 400);
    assert!(!srv.dir.path().join("evil.txt").exists());
    // A symlink planted inside the root is not followed.
    std::os::unix::fs::symlink(srv.dir.path(), srv.dir.path().join("artifacts/link")).unwrap();
    let (status, text) = srv
        .raw("GET /api/2.0/mlflow-artifacts/artifacts/link/secret.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
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
    let srv = TestServer::start(ServerConfig {
        max_request_bytes: 4096,
        max_artifact_bytes: 10_000,
        ..ServerConfig::default()
    })
    .await;
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

impl TestServer {
    /// Submits a recommender training job and waits for it to succeed.
    async fn train(&self, body: Value) -> Value {
        self.run_job("train-recommender", body).await
    }

    /// Submits a job of `kind` and waits for it to succeed.
    async fn run_job(&self, kind: &str, body: Value) -> Value {
        let (s, b) = self.post(&format!("/api/2.0/plinth/jobs/{kind}"), body).await;
        assert_eq!(s, 200, "{b}");
        let job_id = b["job"]["job_id"].as_str().unwrap().to_string();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (_, b) = self.get(&format!("/api/2.0/plinth/jobs/get?job_id={job_id}")).await;
            if b["job"]["status"] == "SUCCEEDED" {
                return b["job"].clone();
            }
            assert!(b["job"]["status"] != "FAILED", "{b}");
            assert!(std::time::Instant::now() < deadline, "job did not finish: {b}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// A request in `workspace` (MLflow's `X-MLFLOW-WORKSPACE`): (status, body).
    async fn call_in(&self, workspace: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.http.request(method, self.url(path)).header("X-MLFLOW-WORKSPACE", workspace);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn set_alias(&self, model: &str, alias: &str, version: &str) {
        let (s, b) = self
            .post("/api/2.0/mlflow/registered-models/alias", json!({"name": model, "alias": alias, "version": version}))
            .await;
        assert_eq!(s, 200, "{b}");
    }
}

fn toy_data(srv: &TestServer) {
    let mut data = String::new();
    for u in 0..60 {
        let base = if u < 30 { 0 } else { 20 };
        for i in 0..20 {
            if (u + i) % 3 != 0 {
                data.push_str(&format!("user{u}\titem{}\n", base + i));
            }
        }
    }
    std::fs::write(srv.dir.path().join("datasets/toy.tsv"), data).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployments_serve_ab_splits_log_exposures_and_follow_aliases() {
    let srv = TestServer::start(ServerConfig::default()).await;
    toy_data(&srv);
    let train = json!({"data": "toy.tsv", "algo": "als", "factors": 8, "iterations": 5, "register": "recs", "k": 5});
    srv.train(train.clone()).await;
    srv.train(json!({"data": "toy.tsv", "algo": "popularity", "register": "recs"})).await;
    srv.set_alias("recs", "champion", "1").await;

    // Two variants and a shadow; weights 50/50.
    let spec = json!({"name": "home", "variants": [
        {"name": "a", "model": "recs@champion", "weight": 50},
        {"name": "b", "model": "recs/2", "weight": 50}],
        "shadow": {"name": "s", "model": "recs/1"}});
    let (s, b) = srv.post("/api/2.0/plinth/deployments/create", spec.clone()).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["deployment"]["state"], "READY", "{b}");
    assert_eq!(b["deployment"]["variants"][0]["model_version"], 1);
    let (s, b) = srv.post("/api/2.0/plinth/deployments/create", spec.clone()).await;
    assert_error(s, &b, 400, "RESOURCE_ALREADY_EXISTS");

    // Sticky: the same user always gets the same variant; both variants get users.
    let mut seen = std::collections::HashMap::new();
    for round in 0..2 {
        for u in 0..60 {
            let (s, b) = srv.post("/v1/deployments/home/recommend", json!({"user": format!("user{u}"), "k": 5})).await;
            assert_eq!(s, 200, "{b}");
            assert_eq!(b["items"].as_array().unwrap().len(), 5, "{b}");
            assert!(b["fallback"].is_null());
            let variant = b["variant"].as_str().unwrap().to_string();
            if round == 0 {
                seen.insert(u, variant);
            } else {
                assert_eq!(seen[&u], variant, "user{u} switched variants");
            }
        }
    }
    let a = seen.values().filter(|v| *v == "a").count();
    assert!((10..=50).contains(&a), "a got {a} of 60");

    // The unit header overrides the user as the assignment unit.
    let unit_variant = |unit: &'static str| {
        let srv = &srv;
        async move {
            let r = srv
                .http
                .post(srv.url("/v1/deployments/home/recommend"))
                .header("X-Plinth-Unit", unit)
                .header("X-Request-Id", "req-1")
                .json(&json!({"user": "user1"}))
                .send()
                .await
                .unwrap();
            let b: Value = r.json().await.unwrap();
            assert_eq!(b["request_id"], "req-1");
            b["variant"].as_str().unwrap().to_string()
        }
    };
    assert_eq!(unit_variant("device-7").await, unit_variant("device-7").await);

    // Unknown users get popular items, and the response says so.
    let (s, b) = srv.post("/v1/deployments/home/recommend", json!({"user": "stranger", "k": 3})).await;
    assert_eq!((s, b["fallback"].as_str()), (200, Some("popularity")), "{b}");
    // Batches, filters, similar items.
    let (s, b) = srv
        .post(
            "/v1/deployments/home/recommend",
            json!({"users": ["user1", "user2", 3], "k": 2, "exclude_items": ["item0"], "include_items": ["item0", "item1", "item2", "item3"]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["results"].as_array().unwrap().len(), 3);
    for r in b["results"].as_array().unwrap() {
        for it in r["items"].as_array().unwrap() {
            assert!(["item1", "item2", "item3"].contains(&it["item"].as_str().unwrap()), "{r}");
        }
    }
    let (s, b) = srv.post("/v1/deployments/home/similar", json!({"item": "item1", "k": 3})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["items"].as_array().unwrap().len(), 3);

    // Bad input: OIP-shaped errors, never a panic.
    for (path, body, status) in [
        ("/v1/deployments/home/recommend", json!({"user": "user1", "k": 0}), 400),
        ("/v1/deployments/home/recommend", json!({"user": "user1", "k": 100000}), 400),
        ("/v1/deployments/home/recommend", json!({"k": 5}), 400),
        ("/v1/deployments/home/recommend", json!({"user": "u", "users": ["v"]}), 400),
        ("/v1/deployments/home/recommend", json!({"user": {"x": 1}}), 400),
        ("/v1/deployments/home/recommend", json!({"user": "u", "bogus": 1}), 400),
        ("/v1/deployments/home/similar", json!({"item": "no-such-item"}), 404),
        ("/v1/deployments/nope/recommend", json!({"user": "user1"}), 404),
    ] {
        let (s, b) = srv.post(path, body.clone()).await;
        assert_eq!(s, status, "{body} -> {b}");
        assert!(b["error"].as_str().is_some_and(|m| !m.is_empty()), "{b}");
    }
    let (s, _) = srv.raw("POST /v1/deployments/home/recommend HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{oops").await;
    assert_eq!(s, 400);
    for bad in [
        json!({"name": "x", "variants": []}),
        json!({"name": "x", "variants": [{"name": "a", "model": "recs"}]}),
        json!({"name": "x", "variants": [{"name": "a", "model": "nope@champion"}]}),
        json!({"name": "x", "variants": [{"name": "a", "model": "recs/9"}]}),
        json!({"name": "x", "variants": [{"name": "a", "model": "recs/1", "weight": -1}]}),
        json!({"name": "../x", "variants": [{"name": "a", "model": "recs/1"}]}),
    ] {
        let (s, b) = srv.post("/api/2.0/plinth/deployments/create", bad.clone()).await;
        assert!(s == 400 || s == 404, "{bad} -> {s} {b}");
        assert!(b["message"].as_str().is_some(), "{b}");
    }

    // Exposure log: one record per served user, with variant and version; shadow records apart.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (s, b) = srv.get("/api/2.0/plinth/deployments/exposures?name=home&unit=user5&max_results=1000").await;
    assert_eq!(s, 200, "{b}");
    let records = b["exposures"].as_array().unwrap();
    let served: Vec<_> = records.iter().filter(|e| e["shadow"] == false).collect();
    assert_eq!(served.len(), 2, "{b}");
    assert!(served.iter().all(|e| e["variant"] == seen[&5].as_str() && e["request_id"].is_string()));
    assert!(records.iter().any(|e| e["shadow"] == true && e["variant"] == "s"), "shadow saw the request: {b}");

    // The same log, aggregated: every variant in the deployment's order, then the shadow.
    let (s, all) = srv.get("/api/2.0/plinth/deployments/exposures?name=home&max_results=100000").await;
    assert_eq!(s, 200, "{all}");
    let served_total = all["exposures"].as_array().unwrap().iter().filter(|e| e["shadow"] == false).count();
    let (s, t) = srv.get("/api/2.0/plinth/deployments/traffic?name=home&window_ms=600000&bucket_ms=60000").await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["served"], served_total as u64, "{t}");
    let variants = t["variants"].as_array().unwrap();
    let last = variants.last().unwrap();
    assert_eq!((last["variant"].as_str(), last["shadow"].as_bool()), (Some("s"), Some(true)), "{t}");
    let buckets: u64 = variants[0]["buckets"].as_array().unwrap().iter().map(|b| b["requests"].as_u64().unwrap()).sum();
    assert_eq!(buckets, variants[0]["exposures"].as_u64().unwrap(), "{t}");
    assert!(variants.iter().filter(|v| v["exposures"].as_u64() > Some(0)).all(|v| v["latency_ms"]["p95"].is_number()));
    let (s, b) = srv.get("/api/2.0/plinth/deployments/traffic?name=home&window_ms=600000&bucket_ms=1").await;
    assert_eq!((s, b["error_code"].as_str()), (400, Some("INVALID_PARAMETER_VALUE")), "{b}");
    let (s, b) = srv.get("/api/2.0/plinth/deployments/traffic?name=nope").await;
    assert_eq!((s, b["error_code"].as_str()), (404, Some("RESOURCE_DOES_NOT_EXIST")), "{b}");

    // Move the alias under load: no request fails, variant a serves v3 within 5 s.
    srv.train(train).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for c in 0..4 {
        let (http, url, stop) = (srv.http.clone(), srv.url("/v1/deployments/home/recommend"), stop.clone());
        load.push(tokio::spawn(async move {
            let (mut ok, mut versions) = (0u32, std::collections::BTreeSet::new());
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let r = http.post(&url).json(&json!({"user": format!("user{}", (c * 13 + n) % 60)})).send().await;
                let r = r.expect("request failed during the swap");
                assert_eq!(r.status().as_u16(), 200);
                let b: Value = r.json().await.unwrap();
                if b["variant"] == "a" {
                    versions.insert(b["model_version"].as_i64().unwrap());
                }
                ok += 1;
            }
            (ok, versions)
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    srv.set_alias("recs", "champion", "3").await;
    let moved_at = std::time::Instant::now();
    loop {
        let (_, b) = srv.get("/api/2.0/plinth/deployments/get?name=home").await;
        if b["deployment"]["variants"][0]["model_version"] == 3 {
            break;
        }
        assert!(moved_at.elapsed() < std::time::Duration::from_secs(5), "alias move not picked up: {b}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut versions = std::collections::BTreeSet::new();
    for h in load {
        let (ok, v) = h.await.unwrap();
        assert!(ok > 0);
        versions.extend(v);
    }
    assert!(versions.contains(&1) && versions.contains(&3), "{versions:?}");

    // Weights change without a restart.
    let (s, b) = srv
        .post(
            "/api/2.0/plinth/deployments/update",
            json!({"name": "home", "variants": [{"name": "a", "model": "recs@champion", "weight": 100}, {"name": "b", "model": "recs/2", "weight": 0}]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    for u in 0..20 {
        let (_, b) = srv.post("/v1/deployments/home/recommend", json!({"user": format!("user{u}")})).await;
        assert_eq!(b["variant"], "a", "{b}");
    }
    let r = srv.http.get(srv.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let b = r.text().await.unwrap();
    assert!(b.contains("plinth_serving_requests_total") && b.contains("deployment=\"home\""), "{b}");
    let (s, _) = srv.post("/api/2.0/plinth/deployments/delete", json!({"name": "home"})).await;
    assert_eq!(s, 200);
    let (s, _) = srv.post("/v1/deployments/home/recommend", json!({"user": "user1"})).await;
    assert_eq!(s, 404);
}

/// A GBDT trained by the tabular use case serves through the Open Inference
/// Protocol with exactly the predictions it makes in-process, from raw
/// values (categories as text), one input per feature or one matrix.
/// A team trains, registers and deploys in its own workspace: the job runs
/// there, its model is that workspace's, the deployment serves it at its
/// global address, and none of it is seen from another workspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn teams_train_deploy_and_serve_in_their_own_workspace() {
    use reqwest::Method;
    let srv = TestServer::start(ServerConfig::default()).await;
    toy_data(&srv);
    let (s, b) = srv.post("/api/3.0/mlflow/workspaces", json!({"name": "team-a"})).await;
    assert_eq!(s, 201, "{b}");
    let train = json!({"data": "toy.tsv", "algo": "popularity", "register": "recs", "experiment": "recs-training"});
    let (s, b) = srv.call_in("team-a", Method::POST, "/api/2.0/plinth/jobs/train-recommender", Some(train)).await;
    assert_eq!(s, 200, "{b}");
    let job_id = b["job"]["job_id"].as_str().unwrap().to_string();
    let get_job = format!("/api/2.0/plinth/jobs/get?job_id={job_id}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, b) = srv.call_in("team-a", Method::GET, &get_job, None).await;
        if b["job"]["status"] == "SUCCEEDED" {
            break;
        }
        assert!(b["job"]["status"] != "FAILED" && std::time::Instant::now() < deadline, "{b}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The job, its experiment and its model are team-a's.
    let (s, b) = srv.get(&get_job).await;
    assert_error(s, &b, 404, "RESOURCE_DOES_NOT_EXIST");
    let (s, b) = srv.get("/api/2.0/plinth/jobs/list").await;
    assert_eq!(s, 200, "{b}");
    assert!(b["jobs"].as_array().is_none_or(|j| j.iter().all(|j| j["job_id"] != job_id.as_str())), "{b}");
    let (s, b) = srv.get("/api/2.0/mlflow/registered-models/get?name=recs").await;
    assert_error(s, &b, 404, "RESOURCE_DOES_NOT_EXIST");
    let (s, b) = srv.call_in("team-a", Method::GET, "/api/2.0/mlflow/registered-models/get?name=recs", None).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = srv.get("/api/2.0/mlflow/experiments/get-by-name?experiment_name=recs-training").await;
    assert_error(s, &b, 404, "RESOURCE_DOES_NOT_EXIST");

    // Deployed in team-a; served at its address whatever the caller's workspace.
    let spec = json!({"name": "recs-a", "variants": [{"name": "a", "model": "recs/1"}]});
    let (s, b) = srv.call_in("team-a", Method::POST, "/api/2.0/plinth/deployments/create", Some(spec.clone())).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = srv.post("/v1/deployments/recs-a/recommend", json!({"user": "user1", "k": 3})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["items"].as_array().unwrap().len(), 3, "{b}");
    // Not listed nor found from default; its name is taken there too (a name is an address).
    let (_, b) = srv.get("/api/2.0/plinth/deployments/list").await;
    assert!(b["deployments"].as_array().is_none_or(|d| d.iter().all(|d| d["name"] != "recs-a")), "{b}");
    let (s, b) = srv.get("/api/2.0/plinth/deployments/get?name=recs-a").await;
    assert_error(s, &b, 404, "RESOURCE_DOES_NOT_EXIST");
    let (s, b) = srv.call_in("team-a", Method::GET, "/api/2.0/plinth/deployments/list", None).await;
    assert_eq!(b["deployments"][0]["name"], "recs-a", "{s} {b}");
    let (s, b) = srv.post("/api/2.0/plinth/deployments/create", spec).await;
    assert_error(s, &b, 400, "RESOURCE_ALREADY_EXISTS");
    let (s, b) = srv.post("/api/2.0/plinth/deployments/delete", json!({"name": "recs-a"})).await;
    assert_error(s, &b, 404, "RESOURCE_DOES_NOT_EXIST");
    // A workspace holding work stays.
    let (s, b) = srv.call_in("default", Method::DELETE, "/api/3.0/mlflow/workspaces/team-a", None).await;
    assert_error(s, &b, 400, "INVALID_STATE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tabular_models_serve_the_same_predictions_as_in_process() {
    use plinth_ml::tabular::prepare::Schema;
    use plinth_ml::tabular::table::{TableOptions, read_table};

    let srv = TestServer::start(ServerConfig::default()).await;
    let mut csv = String::from("size,genre,score\n");
    for i in 0..400 {
        let genre = ["drama", "comedy", "horror"][i % 3];
        let size = (i * 37 % 100) as f64 / 10.0;
        let score = size * 2.0 + if genre == "comedy" { 5.0 } else { 0.0 } + (i % 7) as f64 * 0.1;
        csv.push_str(&format!("{size},{genre},{score}\n"));
    }
    let data = srv.dir.path().join("datasets/scores.csv");
    std::fs::write(&data, csv).unwrap();
    // Trained as a job through the native API; a bad spec is refused up front.
    let spec = json!({"data": "scores.csv", "target": "score", "task": "regression", "rounds": 40, "min_leaf": 5,
                      "threads": 1, "register": "scores"});
    let job = srv.run_job("train-tabular", spec).await;
    assert_eq!(job["result"]["model_version"], "1", "{job}");
    assert!(job["result"]["metrics"]["r2"].as_f64().unwrap() > 0.9, "{job}");
    for (bad, expected) in [
        (json!({"data": "scores.csv", "target": "score", "task": "ranking"}), "unknown task"),
        (json!({"data": "../etc/passwd", "target": "score", "task": "regression"}), "Invalid data path"),
        (json!({"data": "scores.csv", "target": "score", "task": "regression", "rounds": 0}), "rounds"),
        (json!({"data": "scores.csv", "target": "score", "task": "regression", "trees": 5}), "unknown field"),
    ] {
        let (s, b) = srv.post("/api/2.0/plinth/jobs/train-tabular", bad).await;
        assert_eq!(s, 400, "{b}");
        assert!(b["message"].as_str().unwrap().contains(expected), "{b}");
    }
    let (s, b) = srv
        .post(
            "/api/2.0/plinth/deployments/create",
            json!({"name": "scores", "variants": [{"name": "a", "model": "scores/1"}]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");

    // In-process: the stored model on the same rows.
    let version =
        srv.platform.resolve_model(&plinth_core::deployments::ModelRef::parse("scores/1").unwrap()).await.unwrap();
    let stored: Value =
        serde_json::from_slice(&srv.platform.read_model_file(&version, "model.json").await.unwrap()).unwrap();
    let schema: Schema = serde_json::from_value(stored["schema"].clone()).unwrap();
    let gbdt: plinth_ml::tabular::gbdt::Gbdt = serde_json::from_value(stored["gbdt"].clone()).unwrap();
    let table = read_table(&data, &TableOptions::default()).unwrap().take(&[0, 1, 2, 3, 4]);
    let encoded = schema.encode(&table, false).unwrap();
    let expected = gbdt.predict(&encoded.x, 5);
    let rows = json!([
        {"name": "size", "datatype": "FP64", "shape": [5], "data": [0.0, 3.7, 7.4, 1.1, 4.8]},
        {"name": "genre", "datatype": "BYTES", "shape": [5, 1], "data": ["drama", "comedy", "horror", "drama", "comedy"]}]);

    let body = json!({"id": "t1", "inputs": [
        {"name": "size", "datatype": "FP64", "shape": [5], "data": [0.0, 3.7, 7.4, 1.1, 4.8]},
        {"name": "genre", "datatype": "BYTES", "shape": [5, 1], "data": ["drama", "comedy", "horror", "drama", "comedy"]}]});
    let (s, b) = srv.post("/v2/models/scores/infer", body).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["id"], "t1");
    let got: Vec<f64> = b["outputs"][0]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(b["outputs"][0]["name"], "prediction");
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() < 1e-9, "served {got:?}, in-process {expected:?}");
    }
    // A genre never seen in training: missing, counted, still answered.
    let (s, b) = srv
        .post(
            "/v2/models/scores/infer",
            json!({"inputs": [
            {"name": "size", "datatype": "FP32", "shape": [1], "data": [2.0]},
            {"name": "genre", "datatype": "BYTES", "shape": [1], "data": ["western"]}]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["parameters"]["unseen_categories"], 1);
    let (s, meta) = srv.get("/v2/models/scores").await;
    assert_eq!(s, 200);
    assert_eq!(meta["platform"], "plinth-tabular");
    assert_eq!(meta["parameters"]["feature_order"], json!(["size", "genre"]));
    // Bad input: missing feature, unknown input, wrong type, a matrix for a model with categories.
    for (inputs, expected) in [
        (json!([{"name": "size", "datatype": "FP64", "shape": [1], "data": [1.0]}]), "missing input 'genre'"),
        (json!([{"name": "budget", "datatype": "FP64", "shape": [1], "data": [1.0]}]), "unknown input 'budget'"),
        (
            json!([{"name": "size", "datatype": "BYTES", "shape": [1], "data": ["big"]},
                {"name": "genre", "datatype": "BYTES", "shape": [1], "data": ["drama"]}]),
            "must hold numbers",
        ),
        (json!([{"name": "features", "datatype": "FP64", "shape": [1, 2], "data": [1.0, 2.0]}]), "all numeric"),
    ] {
        let (s, b) = srv.post("/v2/models/scores/infer", json!({"inputs": inputs})).await;
        assert_eq!(s, 400, "{b}");
        assert!(b["error"].as_str().unwrap().contains(expected), "{b}");
    }

    // A linear model of the same data serves the same way.
    let spec = json!({"data": "scores.csv", "target": "score", "task": "regression", "algo": "linear",
                      "register": "scores-linear"});
    let job = srv.run_job("train-tabular", spec).await;
    assert!(job["result"]["metrics"]["r2"].as_f64().unwrap() > 0.9, "{job}");
    let version = srv
        .platform
        .resolve_model(&plinth_core::deployments::ModelRef::parse("scores-linear/1").unwrap())
        .await
        .unwrap();
    let stored: plinth_ml::tabular::model::TabularFile =
        serde_json::from_slice(&srv.platform.read_model_file(&version, "model.json").await.unwrap()).unwrap();
    assert_eq!(stored.model.algo(), "linear");
    let expected = stored.model.predict(&encoded.x, 5);
    let (s, b) = srv
        .post(
            "/api/2.0/plinth/deployments/create",
            json!({"name": "linear", "variants": [{"name": "a", "model": "scores-linear/1"}]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = srv.post("/v2/models/linear/infer", json!({"inputs": rows})).await;
    assert_eq!(s, 200, "{b}");
    let got: Vec<f64> = b["outputs"][0]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() < 1e-9, "served {got:?}, in-process {expected:?}");
    }

    // The UI's deployments list links to a page per deployment: live totals
    // and the last hour from the exposure log.
    let list = srv.http.get(srv.url("/ui/deployments")).send().await.unwrap().text().await.unwrap();
    assert!(list.contains("href=\"/ui/deployments/scores\"") && list.contains("href=\"/ui/deployments/linear\""));
    let page = srv.http.get(srv.url("/ui/deployments/scores")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Requests per second") && page.contains("<svg class=\"chart\""), "{page}");
    assert!(page.contains("p99 ms"), "latency percentiles per variant");
    assert!(page.contains("Errors per minute"), "errors over time");
}

#[tokio::test]
async fn web_ui_pages_show_real_data_and_escape_everything() {
    let srv = TestServer::start(ServerConfig::default()).await;
    let html = |path: String| {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let url = srv.url(&path);
        async move {
            let r = client.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            (status, headers, r.text().await.unwrap())
        }
    };
    let evil = "<script>alert(1)</script>";
    let (_, exp) = srv.post("/api/2.0/mlflow/experiments/create", json!({"name": format!("{evil} recs")})).await;
    let exp_id = exp["experiment_id"].as_str().unwrap().to_string();
    let mut runs = Vec::new();
    for (name, algo, best) in
        [("<img src=x onerror=alert(1)>", "bpr", 0.1), ("als-1", "als", 0.3), ("als-2", "als", 0.4)]
    {
        let (_, run) = srv
            .post("/api/2.0/mlflow/runs/create", json!({"experiment_id": exp_id, "run_name": name, "start_time": 1000}))
            .await;
        let id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
        let metrics: Vec<Value> = (0..5)
            .map(|s| json!({"key": "ndcg", "value": best * (s + 1) as f64 / 5.0, "timestamp": 1, "step": s}))
            .collect();
        let (s, b) = srv
            .post(
                "/api/2.0/mlflow/runs/log-batch",
                json!({"run_id": id, "metrics": metrics,
                       "params": [{"key": "algo", "value": algo}, {"key": "factors", "value": "64"}],
                       "tags": [{"key": "note", "value": format!("\"><b>{evil}")}]}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        runs.push(id);
    }
    let first = &runs[0];
    for (path, body) in [
        ("notes.txt", format!("hello {evil}")),
        ("metrics.json", r#"{"ndcg": 0.4, "note": "<b>"}"#.to_string()),
        ("sample.csv", "user,item\nu1,<i>x</i>\nu2,i2\nu3,\"a, b\"\n".to_string()),
        ("plot.svg", format!("<svg xmlns='http://www.w3.org/2000/svg'>{evil}</svg>")),
    ] {
        let url = srv.url(&format!("/api/2.0/mlflow-artifacts/artifacts/{exp_id}/{first}/artifacts/{path}"));
        assert!(srv.http.put(url).body(body).send().await.unwrap().status().is_success());
    }
    let no_injection = |page: &str| {
        assert!(
            !page.contains("<script") && !page.contains("<img src=x") && !page.contains("<b>"),
            "unescaped: {page}"
        );
    };

    // `/` sends a browser on to the experiments, or to the run an MLflow link's fragment names.
    let (s, _, root) = html("/".into()).await;
    assert_eq!(s, 200);
    assert!(root.contains("/ui/runs/") && root.contains("href=\"/ui/experiments\""), "{root}");
    let (s, _, page) = html("/ui/experiments".into()).await;
    assert_eq!(s, 200);
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; recs"), "{page}");
    assert!(page.contains("<td class=\"num\">3</td>"), "the experiment's run count: {page}");
    no_injection(&page);
    let (_, headers, css) = html("/ui/assets/style.css".into()).await;
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/css") && css.contains("table"));

    // Runs: filtered and sorted by the store.
    let q = format!("/ui/experiments/{exp_id}?filter=params.algo+%3D+%27als%27&order=metrics.ndcg+DESC");
    let (s, _, page) = html(q).await;
    assert_eq!(s, 200);
    no_injection(&page);
    let (a1, a2) = (page.find(">als-1<").unwrap(), page.find(">als-2<").unwrap());
    assert!(a2 < a1, "sorted by ndcg, best first");
    assert!(!page.contains("onerror"), "the bpr run is filtered out");
    assert!(page.contains("metric </span>ndcg") || page.contains("ndcg"), "a metric column");
    let (s, _, page) = html(format!("/ui/experiments/{exp_id}?filter=metrics.ndcg+%3E%3E+2")).await;
    assert_eq!(s, 200);
    assert!(page.contains("class=\"error\""), "the parser's message in the page: {page}");
    let (s, _, page) = html(format!("/ui/experiments/{exp_id}?cols=metrics.ndcg,params.algo,tags.note&size=25")).await;
    assert_eq!(s, 200);
    assert!(page.contains("&lt;b&gt;&lt;script&gt;"), "the tag column, escaped");
    no_injection(&page);

    // A run: chart, params, lineage, artifacts.
    let (s, _, page) = html(format!("/ui/runs/{first}")).await;
    assert_eq!(s, 200);
    assert!(page.contains("<svg class=\"chart\"") && page.contains("<polyline"), "a metric history chart");
    assert!(page.contains(">factors<") && page.contains("notes.txt") && page.contains("plot.svg"));
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
    no_injection(&page);
    let artifact = |path: &str| html(format!("/ui/runs/{first}/artifacts?path={path}"));
    let (_, _, page) = artifact("notes.txt").await;
    assert!(page.contains("hello &lt;script&gt;alert(1)&lt;/script&gt;"));
    no_injection(&page);
    let (_, _, page) = artifact("metrics.json").await;
    assert!(page.contains("&quot;ndcg&quot;: 0.4") || page.contains("\"ndcg\": 0.4"), "{page}");
    no_injection(&page);
    let (_, _, page) = artifact("sample.csv").await;
    assert!(page.contains("<th>user</th>") && page.contains("<td>&lt;i&gt;x&lt;/i&gt;</td>"), "{page}");
    assert!(page.contains("<td>a, b</td>"), "a quoted field stays whole: {page}");
    let (_, _, page) = artifact("plot.svg").await;
    assert!(page.contains("<img src=\"/ui/runs/"), "images preview as <img>: {page}");
    no_injection(&page);
    for (query, content_type) in
        [("path=plot.svg", "application/octet-stream"), ("path=plot.svg&inline=1", "image/svg+xml")]
    {
        let (s, headers, _) = html(format!("/ui/runs/{first}/download?{query}")).await;
        assert_eq!(s, 200);
        assert_eq!(headers["content-type"], content_type);
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers["content-security-policy"].to_str().unwrap().starts_with("sandbox"));
    }
    let (s, _, _) = html(format!("/ui/runs/{first}/download?path=../../../etc/passwd")).await;
    assert!((400..500).contains(&s), "no way out of the run's artifacts: {s}");
    let (s, _, page) = html("/ui/runs/nope".into()).await;
    assert_eq!(s, 404);
    assert!(page.contains("class=\"error\""));

    // Compare.
    let (s, _, page) = html(format!("/ui/compare?run={}&run={}&run={}", runs[0], runs[1], runs[2])).await;
    assert_eq!(s, 200);
    assert!(page.contains("Comparing 3 runs") && page.contains("class=\"changed\""));
    assert!(page.matches("<svg class=\"chart\"").count() >= 2, "history overlay and scatter");
    no_injection(&page);
    let (s, _, page) = html(format!("/ui/compare?run={}", runs[0])).await;
    assert_eq!(s, 400);
    assert!(page.contains("between 2 and 200"));

    // Models: a version, an alias set after a confirmation.
    srv.post("/api/2.0/mlflow/registered-models/create", json!({"name": "recs"})).await;
    let (s, b) = srv
        .post(
            "/api/2.0/mlflow/model-versions/create",
            json!({"name": "recs", "source": format!("runs:/{}/model", runs[2]), "run_id": runs[2]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, _, page) = html("/ui/models".into()).await;
    assert!(page.contains("href=\"/ui/models/recs\""));
    let (_, _, page) = html("/ui/models/recs".into()).await;
    assert!(page.contains(&format!("/ui/runs/{}", runs[2])));
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    // The page sets the CSRF cookie and puts the same token in its forms.
    let first = client.get(srv.url("/ui/models/recs")).send().await.unwrap();
    let cookie = first.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let text = first.text().await.unwrap();
    let token = text.split("name=\"csrf\" value=\"").nth(1).unwrap()[..32].to_string();
    let without = client
        .post(srv.url("/ui/models/recs/alias"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("alias=champion&version=1&confirm=yes")
        .send()
        .await
        .unwrap();
    assert_eq!(without.status().as_u16(), 403, "a form without the CSRF token is refused");
    let post = |form: &'static [(&'static str, &'static str)]| {
        client
            .post(srv.url("/ui/models/recs/alias"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", cookie.clone())
            .body(format!("{}&csrf={token}", serde_urlencoded::to_string(form).unwrap()))
            .send()
    };
    let r = post(&[("alias", "champion"), ("version", "1")]).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("Set @champion of recs to version 1?"));
    let (s, v) = srv.get("/api/2.0/mlflow/registered-models/alias?name=recs&alias=champion").await;
    assert_eq!(s, 404, "nothing changes before the confirmation: {v}");
    let r = post(&[("alias", "champion"), ("version", "1"), ("confirm", "yes")]).await.unwrap();
    assert!(r.status().is_redirection());
    let (s, v) = srv.get("/api/2.0/mlflow/registered-models/alias?name=recs&alias=champion").await;
    assert_eq!(s, 200, "{v}");
    let r = post(&[("alias", "champion"), ("version", "7")]).await.unwrap();
    assert_eq!(r.status().as_u16(), 404, "an unknown version");
    // A value that does not parse is a page that says so, not axum's plain-text 422.
    let r = post(&[("alias", "champion"), ("version", "seven")]).await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("<html") && text.contains("The form is not valid"), "{text}");

    let (s, _, page) = html("/ui/deployments".into()).await;
    assert_eq!(s, 200);
    assert!(page.contains("No deployments"));
}

#[tokio::test]
async fn roles_choose_what_a_process_serves() {
    use plinth_server::Roles;
    let serving_only =
        TestServer::start(ServerConfig { roles: Roles::parse("serving").unwrap(), ..ServerConfig::default() }).await;
    let (s, b) = serving_only.get("/api/2.0/mlflow/experiments/search?max_results=10").await;
    assert_error(s, &b, 404, "ENDPOINT_NOT_FOUND");
    assert_eq!(serving_only.get("/v2").await.0, 200);
    assert_eq!(serving_only.get("/v2/health/ready").await.0, 200);
    assert_eq!(serving_only.get("/health").await.0, 200);
    let r = serving_only.http.get(serving_only.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = serving_only.http.get(serving_only.url("/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404, "no UI on a serving-only process");

    let api_only =
        TestServer::start(ServerConfig { roles: Roles::parse("api,worker").unwrap(), ..ServerConfig::default() }).await;
    assert_eq!(api_only.get("/api/2.0/mlflow/experiments/search?max_results=10").await.0, 200);
    let (s, b) = api_only.get("/v2/models/anything").await;
    assert_eq!(s, 404);
    assert!(b["error"].as_str().unwrap_or_default().contains("/v2/models/anything"), "{b}");
    let r = api_only.http.get(api_only.url("/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "the UI is part of the api role");
}
