//! The load generator both servers face in `bench/run.sh`: plain HTTP with
//! MLflow's REST API, so Plinth and `mlflow server` get identical requests.
//! Prints one JSON object per measurement on stdout.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

/// The same allocator as `plinth`, so the fixed-JSON ceiling is measured
/// on the same footing.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Cli {
    /// Base URL of the tracking server.
    #[arg(long)]
    url: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// log-metric requests from N concurrent clients for a fixed time.
    LogMetric {
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// log-batch requests of `size` metrics each, one after another.
    LogBatch {
        #[arg(long, default_value_t = 1000)]
        size: usize,
        #[arg(long, default_value_t = 20)]
        requests: usize,
    },
    /// Creates `runs` runs, each with metrics and params, in a new experiment.
    Seed {
        #[arg(long, default_value_t = 10_000)]
        runs: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// POSTs `body` (with `{i}` replaced by a counter modulo `vary`) to
    /// `path` from N concurrent clients for a fixed time.
    Post {
        #[arg(long)]
        path: String,
        #[arg(long)]
        body: String,
        #[arg(long, default_value_t = 1)]
        vary: u64,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// A label for the output line.
        #[arg(long, default_value = "post")]
        name: String,
    },
    /// Serves a fixed JSON body on `--url`'s port: the HTTP ceiling of this
    /// machine (axum, the same stack as Plinth), until killed.
    ServeFixed,
    /// search-runs latency with a metric filter and a metric ordering.
    Search {
        #[arg(long)]
        experiment_id: String,
        #[arg(long, default_value_t = 10)]
        repeat: usize,
    },
}

/// Every request carries `Authorization: Bearer $BENCH_TOKEN` when it is set
/// (a server with `--auth`), and `X-MLFLOW-WORKSPACE: $BENCH_WORKSPACE` when
/// that is (MLflow's workspace header).
fn client() -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(token) = std::env::var("BENCH_TOKEN")
        && !token.is_empty()
    {
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
    }
    if let Ok(workspace) = std::env::var("BENCH_WORKSPACE")
        && !workspace.is_empty()
    {
        headers.insert("x-mlflow-workspace", workspace.parse()?);
    }
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .pool_max_idle_per_host(256)
        .default_headers(headers)
        .build()?)
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<Value> {
    let r = http.post(url).json(body).send().await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{url}: {status} {v}");
    }
    Ok(v)
}

async fn new_run(http: &reqwest::Client, base: &str, experiment_id: &str) -> anyhow::Result<String> {
    let v = post(
        http,
        &format!("{base}/api/2.0/mlflow/runs/create"),
        &json!({"experiment_id": experiment_id, "start_time": 0}),
    )
    .await?;
    v["run"]["info"]["run_id"].as_str().map(str::to_string).context("no run id")
}

async fn new_experiment(http: &reqwest::Client, base: &str, prefix: &str) -> anyhow::Result<String> {
    let name = format!("{prefix}-{}", std::process::id() as u128 * 1_000_000 + Instant::now().elapsed().as_nanos());
    let v = post(http, &format!("{base}/api/2.0/mlflow/experiments/create"), &json!({"name": name})).await?;
    v["experiment_id"].as_str().map(str::to_string).context("no experiment id")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let http = client()?;
    let base = cli.url.trim_end_matches('/').to_string();
    match cli.cmd {
        Cmd::ServeFixed => {
            let addr = base.trim_start_matches("http://").to_string();
            let body = json!({"user": "u1", "variant": "a", "model": "m", "model_version": 1,
                "items": (0..10).map(|i| json!({"item": format!("item{i}"), "score": 0.5})).collect::<Vec<_>>()});
            let body = body.to_string();
            let app = axum::Router::new().fallback(move || {
                let body = body.clone();
                async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], body) }
            });
            let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("bind {addr}"))?;
            axum::serve(listener, app).await?;
        }
        Cmd::Post { path, body, vary, concurrency, seconds, name } => {
            let ok = Arc::new(AtomicU64::new(0));
            let failed = Arc::new(AtomicU64::new(0));
            let counter = Arc::new(AtomicU64::new(0));
            let url = format!("{base}{path}");
            // Warm up connections and caches.
            let _ =
                http.post(&url).header("content-type", "application/json").body(body.replace("{i}", "0")).send().await;
            let deadline = Instant::now() + Duration::from_secs_f64(seconds);
            let start = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let (http, url, body, ok, failed, counter) =
                    (http.clone(), url.clone(), body.clone(), ok.clone(), failed.clone(), counter.clone());
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let i = counter.fetch_add(1, Ordering::Relaxed) % vary.max(1);
                        let b = body.replace("{i}", &i.to_string());
                        let t = Instant::now();
                        let r = http.post(&url).header("content-type", "application/json").body(b).send().await;
                        let good = match r {
                            Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                            _ => false,
                        };
                        if good {
                            ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    lat
                }));
            }
            let mut lat = Vec::new();
            for t in tasks {
                lat.extend(t.await?);
            }
            let elapsed = start.elapsed().as_secs_f64();
            lat.sort_by(f64::total_cmp);
            let ok = ok.load(Ordering::Relaxed);
            println!(
                "{}",
                json!({"bench": name, "concurrency": concurrency, "requests": ok, "errors": failed.load(Ordering::Relaxed),
                       "rps": ok as f64 / elapsed, "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99)})
            );
        }
        Cmd::LogMetric { concurrency, seconds } => {
            let exp = new_experiment(&http, &base, "bench-log-metric").await?;
            let ok = Arc::new(AtomicU64::new(0));
            let failed = Arc::new(AtomicU64::new(0));
            let deadline = Instant::now() + Duration::from_secs_f64(seconds);
            let mut tasks = Vec::new();
            for w in 0..concurrency {
                let run_id = new_run(&http, &base, &exp).await?;
                let (http, base, ok, failed) = (http.clone(), base.clone(), ok.clone(), failed.clone());
                tasks.push(tokio::spawn(async move {
                    let url = format!("{base}/api/2.0/mlflow/runs/log-metric");
                    let mut lat = Vec::new();
                    let mut step = 0i64;
                    while Instant::now() < deadline {
                        let body = json!({"run_id": run_id, "key": format!("m{w}"), "value": step as f64, "timestamp": 1, "step": step});
                        let t = Instant::now();
                        match post(&http, &url, &body).await {
                            Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                        };
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                        step += 1;
                    }
                    lat
                }));
            }
            let start = Instant::now();
            let mut lat = Vec::new();
            for t in tasks {
                lat.extend(t.await?);
            }
            let elapsed = start.elapsed().as_secs_f64().max(seconds);
            lat.sort_by(f64::total_cmp);
            let ok = ok.load(Ordering::Relaxed);
            println!(
                "{}",
                json!({"bench": "log_metric", "concurrency": concurrency, "requests": ok, "errors": failed.load(Ordering::Relaxed),
                       "rps": ok as f64 / elapsed, "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99)})
            );
        }
        Cmd::LogBatch { size, requests } => {
            let exp = new_experiment(&http, &base, "bench-log-batch").await?;
            let run_id = new_run(&http, &base, &exp).await?;
            let url = format!("{base}/api/2.0/mlflow/runs/log-batch");
            let mut lat = Vec::new();
            for r in 0..requests {
                let metrics: Vec<Value> = (0..size)
                    .map(|i| json!({"key": format!("k{}", i % 10), "value": i as f64, "timestamp": 1, "step": (r * size + i) as i64}))
                    .collect();
                let t = Instant::now();
                post(&http, &url, &json!({"run_id": run_id, "metrics": metrics})).await?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat.sort_by(f64::total_cmp);
            println!(
                "{}",
                json!({"bench": "log_batch", "size": size, "requests": requests, "p50_ms": percentile(&lat, 0.5),
                       "mean_ms": lat.iter().sum::<f64>() / lat.len() as f64, "metrics_per_s": size as f64 / (percentile(&lat, 0.5) / 1000.0)})
            );
        }
        Cmd::Seed { runs, concurrency } => {
            let exp = new_experiment(&http, &base, "bench-search").await?;
            let next = Arc::new(AtomicU64::new(0));
            let start = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let (http, base, exp, next) = (http.clone(), base.clone(), exp.clone(), next.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        if i >= runs {
                            return Ok::<_, anyhow::Error>(());
                        }
                        let run_id = new_run(&http, &base, &exp).await?;
                        let metrics: Vec<Value> = (0..5)
                            .map(|k| json!({"key": format!("metric_{k}"), "value": ((i * 7919 + k * 104729) % 10007) as f64 / 10007.0, "timestamp": 1, "step": 0}))
                            .collect();
                        let algo = ["als", "bpr", "knn"][i % 3];
                        let params = vec![json!({"key": "algo", "value": algo})];
                        post(&http, &format!("{base}/api/2.0/mlflow/runs/log-batch"), &json!({"run_id": run_id, "metrics": metrics, "params": params}))
                            .await?;
                    }
                }));
            }
            for t in tasks {
                t.await??;
            }
            println!(
                "{}",
                json!({"bench": "seed", "experiment_id": exp, "runs": runs, "seconds": start.elapsed().as_secs_f64()})
            );
        }
        Cmd::Search { experiment_id, repeat } => {
            let url = format!("{base}/api/2.0/mlflow/runs/search");
            let body = json!({"experiment_ids": [experiment_id], "filter": "metrics.metric_0 > 0.5 and params.algo = 'als'",
                              "order_by": ["metrics.metric_1 DESC"], "max_results": 100});
            let mut lat = Vec::new();
            let mut returned = 0;
            for _ in 0..repeat {
                let t = Instant::now();
                let v = post(&http, &url, &body).await?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                returned = v["runs"].as_array().map_or(0, Vec::len);
            }
            lat.sort_by(f64::total_cmp);
            println!(
                "{}",
                json!({"bench": "search_runs", "repeat": repeat, "returned": returned, "p50_ms": percentile(&lat, 0.5), "max_ms": percentile(&lat, 1.0)})
            );
        }
    }
    Ok(())
}
