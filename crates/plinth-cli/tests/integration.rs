//! The real `plinth` binary: starts on a free loopback port with embedded
//! defaults, answers, refuses bad configuration, and stops on SIGTERM.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should fail loudly

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_healthy(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn server_starts_with_embedded_defaults_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(["server", "--port", &port.to_string(), "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    assert!(wait_healthy(port), "server did not start");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let body: serde_json::Value = rt.block_on(async {
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get?experiment_id=0"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(body["experiment"]["name"], "Default");
    assert!(dir.path().join("data/plinth.db").exists());
    assert!(dir.path().join("data/artifacts").is_dir());
    // Graceful stop on SIGTERM.
    Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut exited = None;
    while Instant::now() < deadline {
        if let Some(status) = server.0.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(exited.is_some_and(|s| s.success()), "server did not stop cleanly: {exited:?}");
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "prot = 5000\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_plinth")).arg("server").arg("--config").arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid config file"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_plinth")).args(["server", "--host", "nowhere"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid host address"));
}

/// Two taste groups: users 0-29 like items 0-19, users 30-59 like items 20-39.
fn write_blocks(path: &std::path::Path) {
    let mut s = String::from("user,item,rating,timestamp\n");
    for u in 0..60 {
        let base = if u < 30 { 0 } else { 20 };
        for i in 0..20 {
            if (u * 7 + i * 3) % 5 != 0 {
                s.push_str(&format!("u{u},i{},{},{}\n", base + i, 1 + (u + i) % 5, u * 100 + i));
            }
        }
    }
    std::fs::write(path, s).unwrap();
}

fn train(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_plinth")).arg("train").arg("recommender").args(args).output().unwrap()
}

/// The command failed with `expected` in its message, and without a panic.
fn assert_fails(out: &std::process::Output, args: &[&str], expected: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(err.contains(expected), "{args:?}: expected '{expected}' in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn last_json(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[test]
fn trains_evaluates_tracks_and_registers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ratings.csv");
    write_blocks(&data);
    let data_dir = dir.path().join("pd");
    let (data, dd) = (data.to_str().unwrap(), data_dir.to_str().unwrap());
    let common = ["--data", data, "--data-dir", dd, "--json", "--k", "5"];
    let pop = last_json(&train(&[&common[..], &["--algo", "popularity"]].concat()));
    let als = last_json(&train(
        &[
            &common[..],
            &["--algo", "als", "--factors", "8", "--iterations", "8", "--register", "recs", "--alias", "champion"],
        ]
        .concat(),
    ));
    assert_eq!(als["alias"], "champion");
    let knn = last_json(&train(&[&common[..], &["--algo", "item-knn", "--neighbors", "10"]].concat()));
    let bpr = last_json(&train(&[&common[..], &["--algo", "bpr", "--factors", "8", "--iterations", "30"]].concat()));
    let ndcg = |v: &serde_json::Value| v["metrics"]["ndcg_at_5"].as_f64().unwrap();
    for (name, v) in [("als", &als), ("item-knn", &knn), ("bpr", &bpr)] {
        assert!(ndcg(v) > ndcg(&pop) * 1.5, "{name}: {} vs popularity {}", ndcg(v), ndcg(&pop));
    }
    for key in
        ["precision_at_5", "recall_at_5", "map_at_5", "hit_rate_at_5", "coverage_at_5", "ndcg_at_20", "train_seconds"]
    {
        assert!(als["metrics"][key].is_number(), "{key} missing: {als}");
    }
    assert_eq!(als["model_version"], "1");
    assert_eq!(als["data"]["evaluated_users"], 60);

    // The run and the model are in the platform: serve the data dir and look.
    let port = free_port();
    let _server = start_server(port, dd);
    let get = |path: String| get_json(port, &path);
    let run_id = als["run_id"].as_str().unwrap();
    let run = get(format!("/api/2.0/mlflow/runs/get?run_id={run_id}"));
    let metrics = run["run"]["data"]["metrics"].as_array().unwrap();
    assert!(metrics.iter().any(|m| m["key"] == "ndcg_at_5"));
    assert_eq!(run["run"]["info"]["status"], "FINISHED");
    let history = get(format!("/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=train_loss"));
    assert_eq!(history["metrics"].as_array().unwrap().len(), 8, "one loss per iteration");
    let files = get(format!("/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=model"));
    let names: Vec<&str> = files["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert!(names.contains(&"model/model.plinthrec") && names.contains(&"model/plinth_model.json"), "{names:?}");
    let version = get("/api/2.0/mlflow/model-versions/get?name=recs&version=1".into());
    assert_eq!(version["model_version"]["run_id"], run_id);
    let by_alias = get("/api/2.0/mlflow/registered-models/alias?name=recs&alias=champion".into());
    assert_eq!(by_alias["model_version"]["version"], "1");

    // The registry CLI: tables by default, JSON on request, aliases moved and removed.
    let uri = format!("http://127.0.0.1:{port}");
    let models = |args: &[&str]| against(&uri, "models", args);
    let out = models(&["list"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && listing.starts_with("NAME") && listing.contains("@champion=1"), "{listing}");
    let out = models(&["versions", "recs"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(run_id), "{}", String::from_utf8_lossy(&out.stdout));
    let out = models(&["get", "recs", "--json"]);
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["registered_model"]["name"], "recs");
    assert!(models(&["alias", "set", "recs", "staging", "1"]).status.success());
    assert_eq!(
        get("/api/2.0/mlflow/registered-models/alias?name=recs&alias=staging".into())["model_version"]["version"],
        "1"
    );
    assert!(models(&["alias", "delete", "recs", "staging"]).status.success());
    let out = models(&["alias", "set", "recs", "x", "99"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RESOURCE_DOES_NOT_EXIST") && !err.contains("stack backtrace"), "{err}");
}

/// Users 60-79 and items 40-44 appear only after the time cut.
fn write_with_late_newcomers(path: &std::path::Path) {
    write_blocks(path);
    let mut s = std::fs::read_to_string(path).unwrap();
    for u in 60..80 {
        for i in 0..4 {
            s.push_str(&format!("u{u},i{},3,{}\n", if i == 0 { 40 + u % 5 } else { i }, 1_000_000 + u * 10 + i));
        }
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn the_model_holds_only_what_it_trained_on_and_params_read_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ratings.csv");
    write_with_late_newcomers(&data);
    let dd = dir.path().join("pd");
    let (data, dd) = (data.to_str().unwrap(), dd.to_str().unwrap());
    let started = plinth_core_now_ms();
    let report = last_json(&train(&[&["--data", data, "--data-dir", dd][..], &"--json --algo als --factors 8 --iterations 4 --split time:0.08 --regularization 0.05 --solver cg --register late".split(' ').collect::<Vec<_>>()].concat()));
    // 20 users and 5 items exist only after the cut: counted, not in the model.
    assert_eq!(report["data"]["cold_start_users"], 20, "{report}");
    assert_eq!(report["data"]["cold_start_items"], 5, "{report}");
    assert_eq!(report["data"]["users"], 60, "{report}");
    assert_eq!(report["data"]["items"], 40, "{report}");

    let port = free_port();
    let _server = start_server(port, dd);
    let run_id = report["run_id"].as_str().unwrap();
    let run = get_json(port, &format!("/api/2.0/mlflow/runs/get?run_id={run_id}"));
    let params: std::collections::HashMap<String, String> = run["run"]["data"]["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["key"].as_str().unwrap().to_string(), p["value"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(params["regularization"], "0.05");
    assert_eq!(params["solver"], "cg");
    assert_eq!(params["split"], "time:0.08");
    assert_eq!(params["weight_col"], "rating");
    assert_eq!(params["weight_transform"], "none");
    // The run started when the work did, not after it.
    let info = &run["run"]["info"];
    let (start, end) = (info["start_time"].as_i64().unwrap(), info["end_time"].as_i64().unwrap());
    assert!(start <= started + 5_000 && start >= started - 1_000, "start {start} vs launch {started}");
    assert!(end >= start);

    // A newcomer is served the popularity fallback, flagged.
    let out =
        deploy(&["create", "late", "--variant", "a=late/1", "--tracking-uri", &format!("http://127.0.0.1:{port}")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let answer: serde_json::Value = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/v1/deployments/late/recommend"))
            .json(&serde_json::json!({"user": "u70", "k": 3}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(answer["fallback"], "popularity", "{answer}");
}

fn plinth_core_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn trains_on_all_data_with_split_none_and_unit_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ratings.csv");
    write_blocks(&data);
    let dd = dir.path().join("pd");
    let (data, dd) = (data.to_str().unwrap(), dd.to_str().unwrap());
    let report = last_json(&train(
        &[
            &["--data", data, "--data-dir", dd][..],
            &"--json --algo als --factors 8 --iterations 3 --split none --weight-col none --weight-transform log1p"
                .split(' ')
                .collect::<Vec<_>>(),
        ]
        .concat(),
    ));
    assert_eq!(report["data"]["test_interactions"], 0, "{report}");
    assert!(report["metrics"].get("ndcg_at_10").is_none(), "no evaluation without held-out data: {report}");
    let port = free_port();
    let _server = start_server(port, dd);
    let run = get_json(port, &format!("/api/2.0/mlflow/runs/get?run_id={}", report["run_id"].as_str().unwrap()));
    let tags = run["run"]["data"]["tags"].as_array().unwrap();
    assert!(tags.iter().any(|t| t["key"] == "plinth.evaluation"), "{tags:?}");
    let params = run["run"]["data"]["params"].as_array().unwrap();
    assert!(params.iter().any(|p| p["key"] == "weight_col" && p["value"] == "none"), "{params:?}");
    assert!(params.iter().any(|p| p["key"] == "split" && p["value"] == "none"), "{params:?}");
    // Weights too large for alpha are called out.
    let counts = dir.path().join("counts.csv");
    let mut s = String::from("user,item,plays\n");
    for u in 0..30 {
        for i in 0..10 {
            s.push_str(&format!("u{u},i{i},{}\n", 500 + u * i * 40));
        }
    }
    std::fs::write(&counts, s).unwrap();
    let report = last_json(&train(
        &[
            &["--data", counts.to_str().unwrap(), "--data-dir", dd][..],
            &"--json --algo als --factors 4 --iterations 2".split(' ').collect::<Vec<_>>(),
        ]
        .concat(),
    ));
    assert!(report["data"]["warning"].as_str().unwrap().contains("log1p"), "{report}");
}

#[test]
fn jobs_are_submitted_listed_and_cancelled_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let dd = dir.path().join("pd");
    std::fs::create_dir_all(dd.join("datasets")).unwrap();
    write_blocks(&dd.join("datasets/ratings.csv"));
    let dd = dd.to_str().unwrap();
    let port = free_port();
    let _server = start_server(port, dd);
    let uri = format!("http://127.0.0.1:{port}");
    let jobs = |args: &[&str]| against(&uri, "jobs", args);
    let spec = r#"{"data": "ratings.csv", "algo": "als", "factors": 4, "iterations": 2, "register": "jobbed"}"#;
    let out = jobs(&["submit", "recommender", "--spec", spec, "--wait", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["job"]["status"], "SUCCEEDED", "{done}");
    let id = done["job"]["job_id"].as_str().unwrap();
    let out = jobs(&["list"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.starts_with("JOB") && listing.contains(id) && listing.contains("SUCCEEDED"), "{listing}");
    let out = jobs(&["get", id]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("model     jobbed version 1"));
    let out = jobs(&["cancel", id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("INVALID_STATE"), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = jobs(&["submit", "recommender", "--spec", r#"{"data": "../etc/passwd", "algo": "als"}"#]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("Invalid data path"));
    // The UI lists it with its run.
    let page = get_text(port, "/ui/jobs");
    assert!(page.contains(id) && page.contains("/ui/runs/"), "{page}");
}

#[test]
fn bad_training_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dd = dir.path().join("pd");
    let dd = dd.to_str().unwrap();
    let file = |name: &str, content: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = dir.path().join("good.csv");
    write_blocks(&good);
    let good = good.to_str().unwrap();
    let check =
        |args: &[&str], expected: &str| assert_fails(&train(&[args, &["--data-dir", dd]].concat()), args, expected);
    let bad_weight = file("bad.csv", "user,item,rating\na,b,1\na,c,lots\n");
    check(&["--data", &bad_weight, "--algo", "als"], "bad.csv:3: column 2 ('rating'): 'lots' is not a number");
    check(&["--data", good, "--algo", "als", "--weight-col", "stars"], "no weight column 'stars'");
    let empty = file("empty.csv", "");
    check(&["--data", &empty, "--algo", "als"], "empty");
    let unknown = file("unknown.csv", "user,item,rating\nnobody,i1,1\n");
    check(&["--data", good, "--test-data", &unknown, "--algo", "als"], "every test user is unknown");
    check(&["--data", good, "--algo", "als", "--k", "0"], "--k must be at least 1");
    check(&["--data", good, "--algo", "als", "--regularization", "-1"], "regularization must be >= 0");
    check(&["--data", good, "--algo", "nope"], "unknown algorithm");
    check(&["--data", good, "--algo", "als", "--split", "random:2"], "invalid split");
    check(&["--data", good, "--algo", "als", "--weight-transform", "sqrt"], "unknown weight transform");
    let missing = dir.path().join("missing.csv");
    check(&["--data", missing.to_str().unwrap(), "--algo", "als"], "cannot open");
}

fn start_server(port: u16, data_dir: &str) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(["server", "--port", &port.to_string(), "--data-dir", data_dir])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    assert!(wait_healthy(port), "server did not start");
    server
}

/// GET on the local server at `port`, as JSON.
fn get_json(port: u16, path: &str) -> serde_json::Value {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let url = format!("http://127.0.0.1:{port}{path}");
        let r = reqwest::Client::new().get(url).timeout(Duration::from_secs(10)).send().await.unwrap();
        r.json().await.unwrap()
    })
}

/// `plinth <command> <args> --tracking-uri <uri>`.
fn against(uri: &str, command: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_plinth")).arg(command).args(args).args(["--tracking-uri", uri]).output().unwrap()
}

fn get_text(port: u16, path: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let url = format!("http://127.0.0.1:{port}{path}");
        let r = reqwest::Client::new().get(url).timeout(Duration::from_secs(10)).send().await.unwrap();
        r.text().await.unwrap()
    })
}

fn deploy(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_plinth")).arg("deploy").args(args).output().unwrap()
}

#[test]
fn deploys_through_the_cli_and_serves_again_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ratings.csv");
    write_blocks(&data);
    let data_dir = dir.path().join("pd");
    let (data, dd) = (data.to_str().unwrap(), data_dir.to_str().unwrap());
    last_json(&train(
        &[
            &["--data", data, "--data-dir", dd][..],
            &"--json --algo als --factors 8 --register recs".split(' ').collect::<Vec<_>>(),
        ]
        .concat(),
    ));
    let port = free_port();
    let uri = format!("http://127.0.0.1:{port}");
    let server = start_server(port, dd);

    let out = deploy(&["create", "home", "--variant", "a=recs/1:3", "--variant", "b=recs/1:1", "--tracking-uri", &uri]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["deployment"]["variants"][0]["model_version"], 1, "{created}");
    let bad = deploy(&["create", "other", "--variant", "a=nope/1", "--tracking-uri", &uri]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nope"), "{}", String::from_utf8_lossy(&bad.stderr));
    let bad = deploy(&["create", "other", "--variant", "a", "--tracking-uri", &uri]);
    assert!(!bad.status.success());

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let recommend = |user: &str| -> serde_json::Value {
        rt.block_on(async {
            let r = reqwest::Client::new()
                .post(format!("{uri}/v1/deployments/home/recommend"))
                .json(&serde_json::json!({"user": user, "k": 3}))
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.json().await.unwrap()
        })
    };
    let before = recommend("u1");
    assert_eq!(before["items"].as_array().unwrap().len(), 3);

    // kill -9, restart on the same data dir: the deployment is back, same answer.
    drop(server);
    let _server = start_server(port, dd);
    let after = recommend("u1");
    assert_eq!((&after["variant"], &after["items"]), (&before["variant"], &before["items"]));
    let out = deploy(&["list", "--json", "--tracking-uri", &uri]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["deployments"][0]["name"], "home", "{listed}");
    // For people: a table, times as dates, not epoch milliseconds.
    let out = deploy(&["list", "--tracking-uri", &uri]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("NAME") && table.contains("home") && table.contains("a=recs/1"), "{table}");
    assert!(!table.contains(&listed["deployments"][0]["updated_time"].to_string()), "{table}");
    let out = deploy(&["get", "home", "--tracking-uri", &uri]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("variant   a=recs/1"));
    let out = deploy(&["update", "home", "--variant", "a=recs/1", "--shadow", "s=recs/1", "--tracking-uri", &uri]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // An update that does not mention the shadow keeps it; --no-shadow removes it.
    let out = deploy(&["update", "home", "--variant", "a=recs/1:2", "--tracking-uri", &uri]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let kept: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(kept["deployment"]["shadow"]["name"], "s", "{kept}");
    let out = deploy(&["update", "home", "--variant", "a=recs/1", "--no-shadow", "--tracking-uri", &uri]);
    let removed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(removed["deployment"]["shadow"].is_null(), "{removed}");
    assert!(deploy(&["delete", "home", "--tracking-uri", &uri]).status.success());
    assert!(!deploy(&["get", "home", "--tracking-uri", &uri]).status.success());
}

/// A table of 3,000 titles: two numeric features (one with missing values),
/// a genre, and three targets driven by them.
fn write_titles(path: &std::path::Path, rows: usize, genres: &[&str]) {
    let mut s = String::from("budget,buzz,genre,revenue,hit,tier,release\n");
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    for i in 0..rows {
        let (budget, buzz, g) = (next() * 10.0, next(), (next() * genres.len() as f64) as usize);
        let effect = [0.0, 2.0, -1.5, 1.0][g % 4];
        let revenue = 3.0 * budget + effect * 4.0 + 10.0 * buzz * buzz + next();
        let hit = if revenue > 20.0 { "hit" } else { "flop" };
        let tier = if revenue < 12.0 {
            "low"
        } else if revenue < 24.0 {
            "mid"
        } else {
            "high"
        };
        let buzz = if i % 13 == 0 { String::new() } else { format!("{buzz:.4}") };
        s.push_str(&format!("{budget:.4},{buzz},{},{revenue:.4},{hit},{tier},2020-{:02}\n", genres[g], 1 + i % 12));
    }
    std::fs::write(path, s).unwrap();
}

fn train_tabular(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_plinth")).args(["train", "tabular"]).args(args).output().unwrap()
}

#[test]
fn tabular_models_train_evaluate_track_and_register() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("titles.csv");
    write_titles(&data, 3000, &["drama", "comedy", "horror", "family"]);
    let data_dir = dir.path().join("pd");
    let (data, dd) = (data.to_str().unwrap(), data_dir.to_str().unwrap());
    let common = ["--data", data, "--data-dir", dd, "--json", "--drop", "revenue,tier,hit,release"];
    // --drop lists every target; the one trained on is the target, the rest stay out.
    let binary = last_json(&train_tabular(
        &[&common[..], &["--target", "hit", "--task", "binary", "--rounds", "60", "--register", "hits"]].concat(),
    ));
    assert!(binary["metrics"]["auc"].as_f64().unwrap() > 0.95, "{binary}");
    for key in ["logloss", "accuracy", "f1", "train_seconds"] {
        assert!(binary["metrics"][key].is_number(), "{key} missing: {binary}");
    }
    assert_eq!(binary["model_version"], "1");
    assert_eq!(binary["data"]["features"], 3);
    let multi = last_json(&train_tabular(
        &[&common[..], &["--target", "tier", "--task", "multiclass", "--rounds", "60", "--split", "time:release:0.25"]]
            .concat(),
    ));
    assert!(multi["metrics"]["accuracy"].as_f64().unwrap() > 0.85, "{multi}");
    assert!(multi["metrics"]["macro_f1"].is_number());
    let regression = last_json(&train_tabular(
        &[&common[..], &["--target", "revenue", "--task", "regression", "--rounds", "150"]].concat(),
    ));
    assert!(regression["metrics"]["r2"].as_f64().unwrap() > 0.95, "{regression}");
    assert_eq!(regression["data"]["rounds_trained"], 150);
    let stopped = last_json(&train_tabular(
        &[&common[..], &["--target", "hit", "--task", "binary", "--rounds", "2000", "--early-stopping", "5"]].concat(),
    ));
    let rounds = stopped["data"]["rounds_trained"].as_u64().unwrap();
    assert!(rounds < 2000, "early stopping kept {rounds} rounds");
    // It says where it stopped (patience 5 past the best) and which round it kept.
    assert_eq!(stopped["data"]["best_round"].as_u64().unwrap(), rounds);
    assert_eq!(stopped["data"]["rounds_run"].as_u64().unwrap(), rounds + 5, "{stopped}");
    assert!(stopped["metrics"]["auc"].as_f64().unwrap() > 0.95, "{stopped}");
    // A test file with a genre training never saw: encoded as missing, counted.
    let test = dir.path().join("new.csv");
    write_titles(&test, 200, &["drama", "documentary"]);
    let with_test = last_json(&train_tabular(
        &[&common[..], &["--target", "revenue", "--task", "regression", "--test-data", test.to_str().unwrap()]]
            .concat(),
    ));
    assert!(with_test["data"]["unseen_categories"].as_u64().unwrap() > 50, "{with_test}");

    // Tracked: the validation curve, the model with its encoding, feature importance.
    let port = free_port();
    let _server = start_server(port, dd);
    let get = |path: String| get_json(port, &path);
    let run_id = binary["run_id"].as_str().unwrap();
    let history = get(format!("/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=valid_logloss"));
    let curve = history["metrics"].as_array().unwrap();
    assert_eq!(curve.len(), 60, "one validation loss per round");
    assert!(curve[59]["value"].as_f64() < curve[0]["value"].as_f64(), "the loss goes down");
    let files = get(format!("/api/2.0/mlflow/artifacts/list?run_id={run_id}"));
    let names: Vec<&str> = files["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert!(names.contains(&"feature_importance.json") && names.contains(&"model"), "{names:?}");
    let version = get("/api/2.0/mlflow/model-versions/get?name=hits&version=1".into());
    assert_eq!(version["model_version"]["run_id"], run_id);
}

#[test]
fn linear_models_train_track_and_register() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("titles.csv");
    write_titles(&data, 3000, &["drama", "comedy", "horror", "family"]);
    let data_dir = dir.path().join("pd");
    let (data, dd) = (data.to_str().unwrap(), data_dir.to_str().unwrap());
    let common = ["--data", data, "--data-dir", dd, "--json", "--algo", "linear", "--drop", "revenue,tier,hit,release"];
    let regression = last_json(&train_tabular(
        &[&common[..], &["--target", "revenue", "--task", "regression", "--register", "revenue-linear"]].concat(),
    ));
    // Revenue is linear in budget and genre, quadratic in buzz.
    assert!(regression["metrics"]["r2"].as_f64().unwrap() > 0.9, "{regression}");
    assert_eq!(regression["model_version"], "1");
    let binary = last_json(&train_tabular(&[&common[..], &["--target", "hit", "--task", "binary"]].concat()));
    assert!(binary["metrics"]["auc"].as_f64().unwrap() > 0.95, "{binary}");
    let multi = last_json(&train_tabular(
        &[&common[..], &["--target", "tier", "--task", "multiclass", "--l2", "0.001"]].concat(),
    ));
    assert!(multi["metrics"]["accuracy"].as_f64().unwrap() > 0.8, "{multi}");
    assert!(multi["data"]["iterations"].as_u64().unwrap() > 3, "{multi}");

    let port = free_port();
    let _server = start_server(port, dd);
    let get = |path: String| get_json(port, &path);
    let run_id = binary["run_id"].as_str().unwrap();
    let history = get(format!("/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=train_loss"));
    let curve: Vec<f64> = history["metrics"].as_array().unwrap().iter().map(|m| m["value"].as_f64().unwrap()).collect();
    assert!(curve.len() > 3 && curve.windows(2).all(|w| w[1] <= w[0]), "the solver's loss never rises: {curve:?}");
    let run = get(format!("/api/2.0/mlflow/runs/get?run_id={run_id}"));
    let params = run["run"]["data"]["params"].as_array().unwrap();
    assert!(params.iter().any(|p| p["key"] == "algo" && p["value"] == "linear"), "{params:?}");
    let version = get("/api/2.0/mlflow/model-versions/get?name=revenue-linear&version=1".into());
    assert_eq!(version["model_version"]["run_id"], regression["run_id"]);
}

#[test]
fn bad_tabular_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dd = dir.path().join("pd");
    let dd = dd.to_str().unwrap();
    let file = |name: &str, content: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = dir.path().join("titles.csv");
    write_titles(&good, 300, &["drama", "comedy"]);
    let good = good.to_str().unwrap();
    let check = |args: &[&str], expected: &str| {
        assert_fails(&train_tabular(&[args, &["--data-dir", dd]].concat()), args, expected)
    };
    let binary = ["--task", "binary", "--target", "hit"];
    check(&[&["--data", good][..], &["--task", "binary", "--target", "gross"]].concat(), "no target column 'gross'");
    let constant = file("constant.csv", "x,y\n1,5\n2,5\n3,5\n4,5\n5,5\n");
    check(&["--data", &constant, "--task", "regression", "--target", "y"], "constant");
    let infinite = file("inf.csv", "x,y\n1,5\n2,inf\n3,5\n4,6\n5,5\n");
    check(&["--data", &infinite, "--task", "regression", "--target", "y"], "row 2");
    check(&["--data", good, "--task", "binary", "--target", "tier"], "use --task multiclass");
    let words = file("words.csv", "budget,buzz,genre,revenue,hit,tier,release\nlots,0.5,drama,3,hit,low,2020-01\n");
    check(
        &[&["--data", good, "--test-data", &words][..], &binary[..], &["--drop", "revenue,tier,release"]].concat(),
        "row 1, column 'budget': 'lots' is not a number",
    );
    check(&[&["--data", good][..], &["--task", "ranking", "--target", "hit"]].concat(), "unknown task");
    check(&[&["--data", good, "--split", "random:2"][..], &binary[..]].concat(), "bad split");
    check(&[&["--data", good, "--algo", "forest"][..], &binary[..]].concat(), "unknown algorithm");
    check(
        &[&["--data", good, "--algo", "linear", "--max-depth", "3"][..], &binary[..]].concat(),
        "max depth applies to gbdt",
    );
    check(&[&["--data", good, "--algo", "linear", "--l2=-1"][..], &binary[..]].concat(), "l2 must be finite");
    check(&[&["--data", good, "--rounds", "0"][..], &binary[..]].concat(), "rounds must be at least 1");
    check(&[&["--data", good, "--features", "budget,nope"][..], &binary[..]].concat(), "no column 'nope'");
}
