//! `plinth jobs ...`: training jobs on a running server (its
//! `/api/2.0/plinth/jobs/*` API): submit, list, get, cancel.

use std::path::PathBuf;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Target, call, print_json, table, text, time};

#[derive(Debug, clap::Subcommand)]
pub enum JobsCommand {
    /// Queue a training: `plinth jobs submit recommender --spec '{"data": "ml-100k/u.data", "algo": "als"}'`
    /// (the `plinth train` flags as JSON keys; data paths relative to the server's datasets directory).
    Submit {
        /// recommender or tabular.
        kind: String,
        /// The spec as JSON text, or `@file.json`.
        #[arg(long)]
        spec: String,
        /// Wait until the job ends, printing its progress.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        out: Output,
    },
    /// Jobs, newest first.
    List {
        /// At most this many (default 50).
        #[arg(long, default_value_t = 50)]
        max_results: i64,
        #[command(flatten)]
        out: Output,
    },
    /// One job with its progress, result or error.
    Get {
        job_id: String,
        #[command(flatten)]
        out: Output,
    },
    /// Withdraw a queued job.
    Cancel {
        job_id: String,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Debug, clap::Args)]
pub struct Output {
    /// Print the server's JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

const API: &str = "/api/2.0/plinth/jobs";

fn spec(raw: &str) -> anyhow::Result<Value> {
    let text = match raw.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(PathBuf::from(path)).with_context(|| format!("cannot read {path}"))?,
        None => raw.to_string(),
    };
    let v: Value = serde_json::from_str(&text).context("--spec is not valid JSON")?;
    if !v.is_object() {
        bail!("--spec must be a JSON object of training settings");
    }
    Ok(v)
}

fn progress(job: &Value) -> String {
    match (&job["progress"]["stage"], job["progress"]["done"].as_u64(), job["progress"]["total"].as_u64()) {
        (Value::String(stage), Some(done), Some(total)) => format!("{stage} {done}/{total}"),
        _ => "-".into(),
    }
}

fn describe(job: &Value) -> String {
    let mut lines = vec![
        format!("job       {}", text(&job["job_id"])),
        format!("kind      {}", text(&job["kind"])),
        format!("status    {}", text(&job["status"])),
        format!("progress  {}", progress(job)),
        format!("created   {}", time(job["created_time"].as_i64())),
        format!("started   {}", time(job["started_time"].as_i64())),
        format!("finished  {}", time(job["finished_time"].as_i64())),
    ];
    if let Some(e) = job["error"].as_str() {
        lines.push(format!("error     {e}"));
    }
    if let Some(run) = job["result"]["run_id"].as_str() {
        lines.push(format!("run       {run}"));
    }
    if let (Some(m), Some(v)) = (job["result"]["model_name"].as_str(), job["result"]["model_version"].as_str()) {
        lines.push(format!("model     {m} version {v}"));
    }
    lines.join("\n")
}

fn print(out: &Output, v: &Value) -> anyhow::Result<()> {
    if out.json {
        print_json(v)?;
    } else {
        println!("{}", describe(&v["job"]));
    }
    Ok(())
}

pub async fn run(cmd: JobsCommand) -> anyhow::Result<()> {
    match cmd {
        JobsCommand::Submit { kind, spec: raw, wait, out } => {
            let path = match kind.as_str() {
                "recommender" => "train-recommender",
                "tabular" => "train-tabular",
                other => bail!("unknown job kind '{other}': expected recommender or tabular"),
            };
            let base = &out.target.tracking_uri;
            let mut v = call(base, Method::POST, &format!("{API}/{path}"), Some(spec(&raw)?)).await?;
            if wait {
                let id = text(&v["job"]["job_id"]);
                loop {
                    v = call(base, Method::GET, &format!("{API}/get"), Some(json!({"job_id": id}))).await?;
                    let status = text(&v["job"]["status"]);
                    if !out.json {
                        eprintln!("{id}: {status} {}", progress(&v["job"]));
                    }
                    if !matches!(status.as_str(), "QUEUED" | "RUNNING") {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
            print(&out, &v)?;
            if wait && v["job"]["status"] != "SUCCEEDED" {
                bail!("job {} ended {}", text(&v["job"]["job_id"]), text(&v["job"]["status"]));
            }
        }
        JobsCommand::List { max_results, out } => {
            let body = json!({"max_results": max_results.to_string()});
            let v = call(&out.target.tracking_uri, Method::GET, &format!("{API}/list"), Some(body)).await?;
            if out.json {
                return print_json(&v);
            }
            let rows: Vec<Vec<String>> = v["jobs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|j| {
                    vec![
                        text(&j["job_id"]),
                        text(&j["kind"]),
                        text(&j["status"]),
                        time(j["created_time"].as_i64()),
                        j["result"]["run_id"].as_str().unwrap_or("-").to_string(),
                    ]
                })
                .collect();
            println!("{}", table(&["JOB", "KIND", "STATUS", "CREATED", "RUN"], &rows));
        }
        JobsCommand::Get { job_id, out } => {
            let v = call(&out.target.tracking_uri, Method::GET, &format!("{API}/get"), Some(json!({"job_id": job_id})))
                .await?;
            print(&out, &v)?;
        }
        JobsCommand::Cancel { job_id, out } => {
            let v =
                call(&out.target.tracking_uri, Method::POST, &format!("{API}/cancel"), Some(json!({"job_id": job_id})))
                    .await?;
            print(&out, &v)?;
        }
    }
    Ok(())
}
